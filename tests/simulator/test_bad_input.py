"""Bad input (§9): the offender gets a typed error or the right close; others never notice."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.frames import Frame, Opcode

from squall.simulator import Simulator, ops

from .conftest import wait_for_record


@pytest.fixture
async def bystander(sim: Simulator, open_client):
    """A subscribed session that must see nothing of other sessions' trouble."""
    client = await open_client("bystander")
    await client.send(type="subscribe", id=1, topics=["t"])
    await client.expect("subscribed")
    yield client
    # Still alive, and still served in order.
    sim.publish("t", "after")
    await client.expect("notification", seq=1, payload="after")
    await client.send(type="ping", id="still-here")
    await client.expect("pong", id="still-here")


async def test_malformed_json_closes_1007(bystander, open_client) -> None:
    client = await open_client("alice")
    await client.ws.send('{"type": "ping",')
    code, reason = await client.closed()
    assert code == 1007
    assert reason.startswith("frame is not valid JSON: EOF while parsing")


async def test_json_that_is_not_an_object_closes_1007(bystander, open_client) -> None:
    client = await open_client("alice")
    await client.ws.send("[1, 2]")
    assert await client.closed() == (1007, "frame must be a JSON object, got list")


async def test_invalid_utf8_is_closed_by_the_websocket_layer(bystander, open_client) -> None:
    """A text frame that is not UTF-8 fails the WebSocket itself: 1007 (RFC 6455 §8.1)."""
    client = await open_client("alice")
    client.ws.protocol.send_frame(Frame(Opcode.TEXT, b"\xff\xfe"))
    client.ws.send_data()
    assert (await client.closed())[0] == 1007


async def test_binary_frame_closes_1003(bystander, open_client) -> None:
    client = await open_client("alice")
    await client.ws.send(b"\x00\x01")
    assert await client.closed() == (1003, "binary frames are not part of the protocol")


async def test_unknown_type_gets_an_error_and_the_session_lives(bystander, open_client) -> None:
    client = await open_client("alice")
    await client.send(type="teleport", id=7)
    err = await client.expect("error", id=7, code="unknown_type")
    assert err["message"].startswith("unknown message type 'teleport' (expected one of: auth, call")
    await client.send(type="ping", id=8)
    await client.expect("pong", id=8)


async def test_invalid_fields_name_the_field(bystander, open_client) -> None:
    client = await open_client("alice")
    await client.send(type="subscribe", id=3, topics="news")
    err = await client.expect("error", id=3, code="invalid_message")
    assert err["message"] == "invalid 'subscribe' message: topics: Input should be a valid array"
    await client.send(type="call", id=4, method="echo", extra=1)
    err = await client.expect("error", id=4, code="invalid_message")
    assert err["message"] == "invalid 'call' message: extra: Extra inputs are not permitted"


async def test_message_before_auth_closes_1008(bystander, sim: Simulator, open_client) -> None:
    client = await open_client(None, url=sim.url)
    await client.send(type="subscribe", topics=["t"])
    assert await client.closed() == (
        1008,
        "not authenticated: expected authentication first, got 'subscribe'",
    )


async def test_garbage_before_auth_closes_1008(bystander, sim: Simulator, open_client) -> None:
    client = await open_client(None, url=sim.url)
    await client.send(type="bogus")
    code, reason = await client.closed()
    assert code == 1008 and reason.startswith("not authenticated: unknown message type 'bogus'")


async def test_oversized_frame_closes_1009(bystander, sim: Simulator, open_client) -> None:
    client = await open_client("alice")
    await client.ws.send(
        json.dumps(
            {
                "type": "call",
                "id": 1,
                "method": "echo",
                "params": "x" * (sim.core.config.max_message_size + 1),
            }
        )
    )
    code, _ = await client.closed()
    assert code == 1009
    closed = await wait_for_record(sim, lambda r: r["kind"] == "close" and r["code"] == 1009)
    assert closed["conn"] == "c2"


async def test_flood_closes_1008(bystander, sim: Simulator, open_client) -> None:
    """Frames beyond the burst allowance, faster than the sustained rate, close that session."""
    sim.configure(rate_burst=50, rate_limit=1)
    client = await open_client("alice")
    frame = json.dumps({"type": "ping"})
    for _ in range(60):
        await client.ws.send(frame)
    code, reason = await client.closed()
    assert (code, reason) == (1008, "rate limit exceeded (1/s)")
    sim.configure(rate_burst=2000, rate_limit=1000)


async def test_handler_bug_costs_one_session_only(bystander, sim: Simulator, open_client) -> None:
    """An exception inside the core closes that connection with 1011; the server keeps serving."""
    client = await open_client("alice")

    def broken(conn, msg):
        raise RuntimeError("injected bug")

    sim.core._handlers[ops.Ping] = broken
    await client.send(type="ping", id=1)
    assert (await client.closed())[0] == 1011
    sim.core._handlers[ops.Ping] = sim.core._on_ping
    rec = await wait_for_record(sim, lambda r: r["kind"] == "internal_error")
    assert rec["error"] == "RuntimeError('injected bug')"


async def test_many_bad_clients_at_once(bystander, open_client) -> None:
    """Twenty sessions misbehaving concurrently each get their own close."""
    clients = [await open_client(f"u{i}") for i in range(20)]
    await asyncio.gather(*(c.ws.send("not json") for c in clients))
    codes = await asyncio.gather(*(c.closed() for c in clients))
    assert {code for code, _ in codes} == {1007}


async def test_non_ascii_reason_still_closes_before_auth(
    bystander, sim: Simulator, open_client
) -> None:
    """Close reasons are cut at 123 UTF-8 bytes: 'é' * 80 is 160 bytes; the 1008 still goes out."""
    client = await open_client(None, url=sim.url)
    await client.send(type="é" * 80)
    code, reason = await client.closed()
    assert code == 1008 and len(reason.encode()) <= 123 and reason.startswith("not authenticated")
    rec = await wait_for_record(sim, lambda r: r["kind"] == "close")
    assert rec["code"] == 1008


async def test_drop_with_a_long_non_ascii_reason_closes(
    bystander, sim: Simulator, open_client
) -> None:
    client = await open_client("alice")
    sim.drop("alice", code=4000, reason="ü" * 100)
    code, reason = await client.closed()
    assert code == 4000 and reason == "ü" * 61  # 122 bytes: the 62nd would pass 123
