"""The reference client in genesys mode: the one behaviour core on Genesys Cloud streaming.

Each test runs a real StreamingClient with a GenesysClientWire against a real
Simulator(dialect="genesys") on loopback: its REST prelude on ``sim.http_url``, XMPP over
WebSocket (subprotocol ``xmpp``) on ``sim.url``. A few check the wire's decisions on frames
without sockets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

import pytest

from squall.client import AuthFailed, StreamingClient
from squall.client.wires.genesys import GenesysClientWire
from squall.clock import LoopClock
from squall.protocol import genesys as x
from squall.protocol import messages as m
from squall.protocol.errors import ProtocolError
from squall.simulator import Simulator
from squall.simulator.auth import make_guest_jwt
from squall.simulator.dialects.genesys import Channel, GenesysDialect

from .conftest import DEADLINE, Make
from .test_integration_driver import start_driver, stop

DIALECT = "genesys"  # the sim and make fixtures of conftest.py speak it

TOPIC = "v2.users.alice.presence"
CHANNELS = "/api/v2/notifications/channels"


def channels(sim: Simulator) -> dict[str, Channel]:
    """The simulator's notification channels, by id."""
    return cast(GenesysDialect, sim.dialect).channels


def records(sim: Simulator, kind: str) -> list[dict[str, Any]]:
    return [r for r in sim.transcript() if r["kind"] == kind]


def http(sim: Simulator) -> list[tuple[str, str, int]]:
    """``(method, path, status)`` of every REST request the server answered."""
    return [(r["method"], r["path"], r["status"]) for r in records(sim, "dialect_http")]


def frames_in(sim: Simulator) -> list[dict[str, Any]]:
    return [r for r in records(sim, "frame") if r["dir"] == "in"]


async def server_record(sim: Simulator, predicate: Callable[[dict[str, Any]], bool]) -> None:
    """The server records it, now or soon (no event tells the client of it)."""
    await sim.core.transcript.wait_for(predicate, DEADLINE)


# --- the prelude, the stream, auth --------------------------------------------------------------


async def test_connect_runs_the_prelude_then_negotiates_the_stream(
    make: Make, sim: Simulator
) -> None:
    client, rec = make()
    await client.connect()
    assert [(m_, p.partition("?")[0]) for m_, p, _ in http(sim)] == [
        ("GET", "/api/v2/users/me"),
        ("POST", CHANNELS),
    ]
    [opened] = records(sim, "open")
    [channel] = channels(sim)
    assert opened["path"] == f"/stream/channels/{channel}"
    connected = rec.of("connected")[0]
    assert connected["channel"] == channel and connected["user"] == "alice"
    assert connected["jid"].startswith("alice@squall.test/")
    kinds = [r["type"] for r in frames_in(sim)]
    assert kinds[:5] == ["open", "auth", "open", "bind", "pubsub"]  # pubsub: server-side pings
    auth = next(r for r in frames_in(sim) if r["type"] == "auth")
    assert auth["text"].endswith(">***</auth>")
    sent = [e["text"] for e in rec.of("sent")]
    assert any('mechanism="PLAIN">***</auth>' in t for t in sent)
    assert not any("authKey" in t for t in sent)
    assert client.recovery_token == f"genesys-channel:{channel}"


async def test_a_bad_token_is_a_final_auth_failure_at_the_prelude(
    make: Make, sim: Simulator
) -> None:
    sim.revoke_token("alice")
    client, rec = make()
    with pytest.raises(AuthFailed) as info:
        await asyncio.wait_for(client.connect(), DEADLINE)
    assert info.value.reason == "invalid_token"
    assert rec.of("auth_failed")[0]["message"].startswith("GET /api/v2/users/me answered 401")
    assert client.status is StreamingClient.CLOSED
    assert records(sim, "open") == [] and len(http(sim)) == 1


async def test_a_sasl_failure_is_final_on_a_first_connect(make: Make, sim: Simulator) -> None:
    sim.fail_next_auth("invalid_token", count=5)
    client, rec = make()
    with pytest.raises(AuthFailed):
        await asyncio.wait_for(client.connect(), DEADLINE)
    assert rec.of("auth_failed")[0]["message"].startswith("SASL not-authorized")
    assert len(records(sim, "open")) == 1  # no retry, no new channel
    assert [p for _, p, _ in http(sim)].count(f"{CHANNELS}?connectionType=streaming") == 1


async def test_a_scripted_503_on_the_channel_post_is_retried(make: Make, sim: Simulator) -> None:
    sim.on_rpc(
        "POST /api/v2/notifications/channels",
        error={"code": "503", "data": {"retry_after": 2}},
        times=1,
    )
    client, rec = make()
    await asyncio.wait_for(client.connect(), DEADLINE)
    assert [s for m_, _, s in http(sim) if m_ == "POST"] == [503, 200]
    assert "answered 503" in rec.of("connect_failed")[0]["reason"]


# --- pub/sub ----------------------------------------------------------------------------------


async def test_subscriptions_go_over_http_and_notifications_arrive(
    make: Make, sim: Simulator
) -> None:
    client, rec = make()
    await client.connect()
    [channel] = channels(sim)
    await asyncio.wait_for(client.subscribe([TOPIC, "ChatMessage"]), DEADLINE)
    subs = f"{CHANNELS}/{channel}/subscriptions"
    assert ("PUT", subs, 200) in http(sim)
    assert list(channels(sim)[channel].topics) == [TOPIC, "ChatMessage"]
    sim.publish("ChatMessage", {"n": 1})
    note = await rec.next("notification")
    assert (note["topic"], note["payload"], note["seq"]) == ("ChatMessage", {"n": 1}, 1)
    await asyncio.wait_for(client.unsubscribe(["ChatMessage"]), DEADLINE)
    assert list(channels(sim)[channel].topics) == [TOPIC]
    await asyncio.wait_for(client.unsubscribe([TOPIC]), DEADLINE)
    assert http(sim)[-1] == ("DELETE", subs, 204)
    assert list(channels(sim)[channel].topics) == []


async def test_immediate_subscribes_over_xmpp_pubsub(make: Make, sim: Simulator) -> None:
    client, rec = make(wire=GenesysClientWire(server=sim.http_url, immediate=True))
    await client.connect()
    await asyncio.wait_for(client.subscribe([TOPIC]), DEADLINE)
    assert not any(m_ == "PUT" for m_, _, _ in http(sim))
    assert any(TOPIC in r["text"] for r in frames_in(sim) if r["type"] == "pubsub")
    sim.publish(TOPIC, {"presence": "Busy"})
    assert (await rec.next("notification"))["payload"] == {"presence": "Busy"}


async def test_a_guest_uses_anonymous_at_the_jwt_stream(make: Make, sim: Simulator) -> None:
    jwt = make_guest_jwt("visitor", secret=sim.core.auth.jwt_secret)
    client, rec = make(token=None, jwt=jwt)
    await asyncio.wait_for(client.connect(), DEADLINE)
    assert http(sim) == []  # no prelude for a guest
    assert records(sim, "open")[0]["path"].startswith("/stream/jwt/")
    assert 'mechanism="ANONYMOUS"' in next(r for r in frames_in(sim) if r["type"] == "auth")["text"]
    await asyncio.wait_for(client.subscribe([TOPIC]), DEADLINE)  # over pubsub: no token
    sim.publish(TOPIC, {"hello": "guest"})
    assert (await rec.next("notification"))["payload"] == {"hello": "guest"}
    assert rec.of("connected")[0]["channel"] is None


# --- reconnects: the channel is the session ----------------------------------------------------


async def test_a_drop_reconnects_on_the_same_channel_without_http(
    make: Make, sim: Simulator
) -> None:
    client, rec = make()
    await client.connect()
    await asyncio.wait_for(client.subscribe([TOPIC]), DEADLINE)
    before = len(http(sim))
    sim.drop("alice")
    recovered = await rec.next("recovered")
    assert recovered["session"] == "genesys-1"
    await rec.next("connected", fresh=False)
    assert len(http(sim)) == before  # no users/me, no channel, no resubscribe
    first, second = records(sim, "open")
    assert first["path"] == second["path"]
    sim.publish(TOPIC, {"after": "drop"})
    note = await rec.next("notification")
    assert note["payload"] == {"after": "drop"}


async def test_a_gone_channel_means_a_new_channel_and_a_put(make: Make, sim: Simulator) -> None:
    client, rec = make()
    await client.connect()
    await asyncio.wait_for(client.subscribe([TOPIC]), DEADLINE)
    old = rec.of("connected")[0]["channel"]
    sim.expire(next(iter(sim.core.sessions)))
    failed = await rec.next("recovery_failed")
    assert failed["reason"] == "expired"
    await rec.next("resubscribed")
    new = rec.of("connected")[-1]["channel"]
    assert new != old
    assert ("PUT", f"{CHANNELS}/{new}/subscriptions", 200) in http(sim)
    sim.publish(TOPIC, {"after": "expiry"})
    assert (await rec.next("notification"))["payload"] == {"after": "expiry"}


async def test_no_longer_subscribed_moves_to_a_new_channel(make: Make, sim: Simulator) -> None:
    client, rec = make()
    await client.connect()
    await asyncio.wait_for(client.subscribe([TOPIC]), DEADLINE)
    old = rec.of("connected")[0]["channel"]
    body = f'{{"topicName":"v2.system.no_longer_subscribed","eventBody":{{"channelId":"{old}"}}}}'
    event = x.pubsub_event("v2.system.no_longer_subscribed", body, "nls-1", frm="n", to="a")
    sim.send(next(iter(sim.core.sessions)), event)  # nobody subscribes to it: Hawk sends it
    note = await rec.next("notification")
    assert note["topic"] == "no_longer_subscribed"  # as both SDKs name it
    await rec.next("resubscribed")
    assert rec.of("connected")[-1]["channel"] != old
    assert any(r["type"] == "close" for r in frames_in(sim))  # the client closed the old stream


# --- the drain (cxfr) --------------------------------------------------------------------------


async def test_a_cxfr_held_pending_then_done_reconnects_on_the_same_channel(
    make: Make, sim: Simulator, clock: LoopClock
) -> None:
    client, rec = make()
    client.on("request_reconnect", lambda request: request({"pending": True}))
    await client.connect()
    sim.request_reconnect("alice")
    request = await rec.next("request_reconnect")
    assert "urn:xmpp:cxfr" in request.reason
    await clock.sleep(50)  # pending holds past the 1 s answer window
    assert rec.of("disconnected") == []
    client.answer_drain("done")
    await rec.next("recovered")
    first, second = records(sim, "open")
    assert first["path"] == second["path"]
    assert any(r["type"] == "close" for r in frames_in(sim))  # done: <close/>


async def test_an_unanswered_cxfr_reconnects_after_the_answer_window(
    make: Make, sim: Simulator, clock: LoopClock
) -> None:
    client, rec = make()
    at: dict[str, float] = {}
    for name in ("request_reconnect", "disconnected"):
        client.on(name, lambda _data, name=name: at.setdefault(name, clock.now()))
    await client.connect()
    sim.request_reconnect("alice")
    await rec.next("disconnected")
    assert at["disconnected"] - at["request_reconnect"] >= 1.0  # the answer window
    await rec.next("recovered")
    first, second = records(sim, "open")
    assert first["path"] == second["path"]  # the same channel


# --- keepalive -------------------------------------------------------------------------------


async def test_server_pings_are_answered(clock: LoopClock) -> None:
    sim = Simulator(dialect="genesys", clock=clock, dialect_options={"server_ping_interval": 5})
    await sim.start()
    try:
        wire = GenesysClientWire(server=sim.http_url)
        client = StreamingClient(
            [sim.url], token="alice", clock=clock, dialect=wire, open_timeout=100.0
        )
        await asyncio.wait_for(client.connect(), DEADLINE)
        pongs = 0

        def second_pong(r: dict[str, Any]) -> bool:  # XEP-0199 answers to the server's pings
            nonlocal pongs
            pongs += r["kind"] == "frame" and r["dir"] == "in" and r.get("op") == "pong"
            return pongs >= 2

        await server_record(sim, second_pong)
        await asyncio.wait_for(client.disconnect(), DEADLINE)
    finally:
        await sim.stop()


async def test_a_silent_server_gets_a_connection_timeout_stream_error(
    make: Make, sim: Simulator
) -> None:
    client, rec = make()
    await client.connect()
    session = next(iter(sim.core.sessions))
    sim.silence(session)
    await rec.next("disconnected")
    assert [e["missed"] for e in rec.of("pong_missed")] == [1, 2]

    await server_record(sim, lambda r: r["kind"] == "frame" and "stream:error" in r["text"])
    [error] = [r["text"] for r in frames_in(sim) if "stream:error" in r["text"]]
    assert "connection-timeout" in error and "too many missed pongs" in error
    await rec.next("recovered")


async def test_a_revoked_token_after_a_session_is_final_at_the_new_channel(
    make: Make, sim: Simulator
) -> None:
    """not-authorized on the reused channel reads as "expired" (v14); the new channel's POST
    then says 401, which is final."""
    client, rec = make()
    await client.connect()
    sim.revoke_token("alice")
    sim.drop("alice")
    failed = await rec.next("auth_failed")
    assert failed["message"].startswith("POST /api/v2/notifications/channels answered 401")
    await rec.next("closed", fresh=False)
    assert [e["code"] for e in rec.of("error") if e.get("code")] == ["channel_expired"]
    assert len(records(sim, "open")) == 2


# --- the driver -------------------------------------------------------------------------------


async def test_driver_in_genesys_mode(sim: Simulator) -> None:
    d = await start_driver("--dialect", "genesys")
    connected = await d.run(
        "connect", url=sim.url, server=sim.http_url, token="alice", open_timeout=100
    )
    assert connected["ok"] and connected["result"]["status"] == "connected", connected
    channel = (await d.event("connected"))["data"]["channel"]
    assert channel in channels(sim)  # shown, though the recovery token is masked
    assert (await d.run("subscribe", topics=[TOPIC]))["result"] == [TOPIC]
    sim.publish(TOPIC, {"n": 1})
    note = await d.event("notification")
    assert note["data"] == {"seq": 1, "topic": TOPIC, "payload": {"n": 1}}
    await d.run("answer_drain", **{"with": "done"})
    sim.request_reconnect("alice")
    assert (await d.event("drain_requested"))["data"] == {"source": "sdk", "standing": "done"}
    assert (await d.event("drain_answered"))["data"] == {"with": "done"}
    assert (await d.event("connected"))["data"]["channel"] == channel
    await stop(d)


# --- the wire's decisions, without sockets ------------------------------------------------------


def _wire() -> GenesysClientWire:
    wire = GenesysClientWire(server="http://127.0.0.1:9", jid="alice@squall.test")
    wire.opening("ws://127.0.0.1:9/", token="t", jwt=None, recovery_token=None, auth_via="query")
    return wire


def test_a_cxfr_becomes_a_reconnect_request_and_is_answered() -> None:
    wire = _wire()
    query = x.tag(
        "query", {"xmlns": x.NS_CXFR}, x.tag("domain", text="d"), x.tag("server", text="s")
    )
    [msg] = wire.decode(x.iq("set", "cx1", query, frm="squall.test"))
    assert isinstance(msg, m.ReconnectRequest) and msg.reason.endswith("to s")
    [frame] = wire.take_aside().frames
    assert 'type="result"' in frame.text and 'id="cx1"' in frame.text


def test_malformed_xml_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="not well-formed"):
        _wire().decode("<iq type='get'")


def test_a_replayed_item_keeps_its_seq() -> None:
    wire = _wire()
    event = x.pubsub_event(TOPIC, '{"topicName":"t","eventBody":{"a":1}}', "i1", frm="n", to="a")
    [first] = wire.decode(event)
    [again] = wire.decode(event)
    assert isinstance(first, m.Notification) and isinstance(again, m.Notification)
    assert (first.seq, again.seq, first.payload) == (1, 1, {"a": 1})


def test_rpc_and_rooms_are_answered_unsupported() -> None:
    out = _wire().encode(m.Call(id=3, method="GET /api/v2/users/me"))
    [error] = out.answers
    assert isinstance(error, m.Error) and (error.id, error.code) == (3, "unsupported")
