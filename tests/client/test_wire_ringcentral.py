"""The reference client in ringcentral mode: the one behaviour core on RingCentral's WSG wire.

Each test runs a real StreamingClient with a RingCentralClientWire against a real
Simulator(dialect="ringcentral") on loopback (its wstoken prelude on ``sim.http_url``); a
few check the wire's decisions without sockets.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from squall.client import AuthFailed, ConnectionFailed, RemoteError, StreamingClient
from squall.client.wires.ringcentral import RingCentralClientWire
from squall.clock import LoopClock
from squall.protocol import messages as m
from squall.protocol.errors import ProtocolError
from squall.simulator import Simulator

from .conftest import DEADLINE, Make, Recorder, server_record
from .test_integration_driver import start_driver, stop

DIALECT = "ringcentral"  # the sim and make fixtures of conftest.py speak it

MESSAGES = "/restapi/v1.0/account/~/extension/~/message-store"
PRESENCE = "/restapi/v1.0/account/~/extension/~/presence"


def records(sim: Simulator, kind: str) -> list[dict[str, Any]]:
    return [r for r in sim.transcript() if r["kind"] == kind]


def requests(sim: Simulator) -> list[tuple[str, str]]:
    """``(method, path)`` of every ClientRequest the server got."""
    out = []
    for r in records(sim, "frame"):
        if r["dir"] == "in" and r["type"] == "ClientRequest":
            meta = json.loads(r["text"])[0]
            out.append((meta["method"], meta["path"]))
    return out


def detached(r: dict[str, Any]) -> bool:
    return r["kind"] == "session" and r["state"] == "detached"


# --- the prelude and auth ---------------------------------------------------------------------


async def test_connect_fetches_a_wstoken_then_opens_the_socket(make: Make, sim: Simulator) -> None:
    client, rec = make()
    await client.connect()
    [http] = records(sim, "dialect_http")
    assert (http["method"], http["path"], http["status"]) == ("POST", "/restapi/oauth/wstoken", 200)
    [opened] = records(sim, "open")
    assert opened["path"].startswith("/?access_token=")  # the client's URL, with the WSAT
    assert "wsc" not in opened["path"]
    connected = rec.of("connected")[0]
    assert (connected["session"], connected["sid"], connected["user"]) == ("rc-1", "c1", "~")
    assert connected["url"] == sim.url
    assert client.recovery_token == sim.core.sessions["s1"].recovery_token


async def test_a_wstoken_401_is_a_final_auth_failure(make: Make, sim: Simulator) -> None:
    sim.fail_next_auth("invalid_token")
    client, rec = make()
    with pytest.raises(AuthFailed) as info:
        await asyncio.wait_for(client.connect(), DEADLINE)
    assert info.value.reason == "invalid_token"
    assert rec.of("auth_failed")[0]["reason"] == "invalid_token"
    assert client.status is StreamingClient.CLOSED
    assert len(records(sim, "dialect_http")) == 1 and records(sim, "open") == []


async def test_a_revoked_token_on_reconnect_is_final(make: Make, sim: Simulator) -> None:
    client, rec = make()
    await client.connect()
    sim.revoke_token("alice")
    sim.drop("alice")
    failed = await rec.next("auth_failed")
    assert failed["reason"] == "expired_token"  # wstoken said TokenExpired
    await rec.next("closed", fresh=False)
    assert len(records(sim, "open")) == 1


async def test_an_unreachable_prelude_is_retried(clock: LoopClock, sim: Simulator) -> None:
    wire = RingCentralClientWire(server="http://127.0.0.1:9")  # nothing listens there
    client = StreamingClient(
        [sim.url], token="alice", clock=clock, dialect=wire, max_attempts=2, backoff_initial=0.1
    )  # a refused connect fails at once: the open timer never matters here
    rec = Recorder(client)
    with pytest.raises(ConnectionFailed):
        await asyncio.wait_for(client.connect(), DEADLINE)
    assert len(rec.of("connect_failed")) == 3 and rec.of("auth_failed") == []


async def test_the_socket_can_follow_wstokens_uri(make: Make, sim: Simulator) -> None:
    """follow_uri=True: as the SDK, the socket goes where wstoken's uri says (its /ws path)."""
    wire = RingCentralClientWire(server=sim.http_url, follow_uri=True)
    client, rec = make(wire=wire)
    await client.connect()
    assert records(sim, "open")[0]["path"].startswith("/ws?access_token=")
    sim.drop("alice")
    await rec.next("recovered")
    assert records(sim, "open")[1]["path"].startswith("/ws?access_token=")


# --- pub/sub ----------------------------------------------------------------------------------


async def test_one_subscription_grows_shrinks_and_goes(make: Make, sim: Simulator) -> None:
    client, rec = make()
    await client.connect()
    got: asyncio.Queue[Any] = asyncio.Queue()
    assert await client.subscribe([MESSAGES], got.put_nowait) == [MESSAGES]
    assert await client.subscribe([PRESENCE], got.put_nowait) == [PRESENCE]
    assert sim.sessions()[0]["subscriptions"] == [MESSAGES, PRESENCE]
    sim.publish(MESSAGES, {"id": 1})
    sim.publish("/restapi/v1.0/elsewhere", {"id": 0})  # nobody's filter
    sim.publish(PRESENCE, {"status": "Busy"})
    assert await asyncio.wait_for(got.get(), DEADLINE) == {
        "seq": 1,
        "topic": MESSAGES,
        "payload": {"id": 1},
    }
    assert (await asyncio.wait_for(got.get(), DEADLINE))["seq"] == 2
    await client.unsubscribe([MESSAGES])
    assert sim.sessions()[0]["subscriptions"] == [PRESENCE]
    await client.unsubscribe([PRESENCE])
    assert sim.sessions()[0]["subscriptions"] == []
    assert requests(sim) == [
        ("POST", "/restapi/v1.0/subscription"),
        ("PUT", "/restapi/v1.0/subscription/SUB-1"),
        ("PUT", "/restapi/v1.0/subscription/SUB-1"),
        ("DELETE", "/restapi/v1.0/subscription/SUB-1"),
    ]
    assert rec.of("gap") == [] and rec.of("duplicate") == []


# --- RPC --------------------------------------------------------------------------------------


async def test_rest_calls_result_and_errors(make: Make, sim: Simulator) -> None:
    route = "POST /restapi/v1.0/squall/charge"
    sim.on_rpc(route, error={"code": "402", "message": "card declined"}, times=1)
    sim.on_rpc(route, reply={"ok": True, "receipt": "r-1"}, times=1)  # newest first
    seen: list[Any] = []
    sim.on_rpc("GET /restapi/v1.0/account/~", handler=lambda p: seen.append(p) or {"id": "~"})
    client, _ = make()
    await client.connect()
    assert await client.call(route, {"amount": 5}) == {"ok": True, "receipt": "r-1"}
    with pytest.raises(RemoteError) as info:
        await client.call(route, {"amount": 6})
    assert (info.value.code, info.value.message) == ("402", "card declined")
    assert info.value.data["errorCode"] == "402"
    assert await client.call("get /restapi/v1.0/account/~") == {"id": "~"}
    assert seen == [None]
    with pytest.raises(RemoteError) as info:
        await client.call("GET /restapi/v1.0/nowhere")
    assert info.value.code == "404"
    with pytest.raises(RemoteError) as info:
        await client.call("echo", [1])
    assert info.value.code == "bad_method"  # answered by the wire: not a REST request
    assert [m for m, _ in requests(sim)] == ["POST", "POST", "GET", "GET"]
    assert sim.sessions()[0]["connections"] == 1


async def test_rooms_are_answered_unsupported(make: Make) -> None:
    client, _ = make()
    await client.connect()
    with pytest.raises(RemoteError) as info:
        await client.join_room("lobby")
    assert info.value.code == "unsupported"


# --- keepalive --------------------------------------------------------------------------------


async def test_heartbeat_is_the_ping_and_its_answer_the_pong(make: Make, sim: Simulator) -> None:
    client, rec = make(ping_interval=2.0, pong_timeout=2.0)
    await client.connect()
    await server_record(sim, lambda r: r["kind"] == "frame" and r.get("type") == "Heartbeat")
    await rec.next("packet", lambda p: p["type"] == "pong", fresh=False)
    assert rec.of("pong_missed") == []


# --- recovery ---------------------------------------------------------------------------------


async def test_drop_recovers_and_the_buffered_notification_is_replayed(make: Make, sim: Simulator):
    client, rec = make(immediate_first_retry=False, backoff_initial=5.0, jitter=0)
    await client.connect()
    await client.subscribe([MESSAGES])
    sim.publish(MESSAGES, 1)
    await rec.next("notification", fresh=False)
    sim.drop("alice")
    await server_record(sim, detached)
    assert sim.publish(MESSAGES, 2)["buffered"] == 1
    recovered = await rec.next("recovered")
    assert recovered == {"replayed": 0, "session": "rc-1"}  # RingCentral does not count
    note = await rec.next("notification", fresh=False, predicate=lambda n: n["payload"] == 2)
    assert note["seq"] == 2  # the session's counter goes on
    connected = rec.of("connected")[-1]
    assert (connected["session"], connected["sid"]) == ("rc-1", "c2")
    assert "&wsc=" in records(sim, "open")[-1]["path"]
    assert len(records(sim, "dialect_http")) == 2  # a fresh WSAT for each connect
    assert rec.of("resubscribed") == [] and requests(sim) == [
        ("POST", "/restapi/v1.0/subscription")
    ]
    [session] = sim.sessions()
    assert session["connections"] == 2 and session["subscriptions"] == [MESSAGES]
    sim.publish(MESSAGES, 3)
    assert (await rec.next("notification"))["seq"] == 3
    assert rec.of("gap") == [] and rec.of("duplicate") == []


async def test_an_expired_session_fails_recovery_and_subscribes_again(make: Make, sim: Simulator):
    client, rec = make(immediate_first_retry=False, backoff_initial=5.0)
    await client.connect()
    await client.subscribe([MESSAGES])
    sim.publish(MESSAGES, "first")
    await rec.next("notification", fresh=False)
    sim.drop("alice")
    await server_record(sim, detached)
    sim.expire("s1")
    failed = await rec.next("recovery_failed")
    assert failed == {"lost": 0, "reason": "expired", "replayed": 0, "session": "rc-2"}
    await rec.next("resubscribed")
    assert requests(sim) == [("POST", "/restapi/v1.0/subscription")] * 2  # a new subscription
    sim.publish(MESSAGES, "again")
    note = await rec.next("notification")
    assert (note["seq"], note["payload"]) == (1, "again")  # a new session counts from 1


async def test_a_malformed_wsc_is_dropped_and_the_next_connect_is_plain(
    sim: Simulator, clock: LoopClock
) -> None:
    client = StreamingClient(
        [sim.url],
        token="alice",
        clock=clock,
        recovery_token="made-up",  # e.g. a wsc kept from before a restart of the gateway
        dialect=RingCentralClientWire(server=sim.http_url),
        immediate_first_retry=True,
        open_timeout=100,
    )
    rec = Recorder(client)
    await asyncio.wait_for(client.connect(), DEADLINE)
    paths = [r["path"] for r in records(sim, "open")]
    assert paths[0].endswith("&wsc=***") and "wsc" not in paths[1]  # the transcript masks it
    assert rec.of("error")[0]["code"] == "400"
    assert rec.of("recovery_failed")[0]["reason"] == "unknown"
    await client.disconnect()


# --- the driver -------------------------------------------------------------------------------


async def test_driver_in_ringcentral_mode(sim: Simulator) -> None:
    sim.on_rpc("GET /restapi/v1.0/account/~", reply={"id": "~"})
    d = await start_driver("--dialect", "ringcentral")
    connected = await d.run(
        "connect", url=sim.url, server=sim.http_url, token="alice", open_timeout=100
    )
    assert connected["ok"] and connected["result"]["status"] == "connected", connected
    assert (await d.run("subscribe", topics=[MESSAGES]))["result"] == [MESSAGES]
    sim.publish(MESSAGES, {"n": 1})
    note = await d.event("notification")
    assert note["data"] == {"seq": 1, "topic": MESSAGES, "payload": {"n": 1}}
    assert (await d.run("call", method="GET /restapi/v1.0/account/~"))["result"] == {"id": "~"}
    failed = await d.run("call", method="GET /restapi/v1.0/nowhere")
    assert failed["ok"] is False and failed["type"] == "RemoteError"
    await stop(d)


# --- the wire alone ---------------------------------------------------------------------------


def _opened(wire: RingCentralClientWire, recovery_token: str | None = None) -> None:
    wire.opening("ws://x/", token="t", jwt=None, recovery_token=recovery_token, auth_via="query")


def _details(**body: Any) -> str:
    meta = {"type": "ConnectionDetails", "messageId": "1", "status": 200, "headers": {}}
    meta["wsc"] = {"token": "W", "sequence": 1}
    base = {
        "creationTime": "2026-01-01T00:00:00.000Z",
        "maxConnectionsPerSession": 5,
        "recoveryBufferSize": 100,
        "recoveryTimeout": 180,
        "idleTimeout": 900,
        "absoluteTimeout": 86400,
        "maxActiveRequests": 10,
    }
    return json.dumps([meta, {**base, **body}])


def test_an_error_401_before_connection_details_is_an_auth_failure() -> None:
    wire = RingCentralClientWire()
    _opened(wire)
    frame = [{"type": "Error", "status": 401}, {"errorCode": "WSG-401", "message": "Unauthorized"}]
    assert wire.decode(json.dumps(frame)) == (
        m.AuthFailed(reason="invalid_token", message="WSG-401: Unauthorized"),
    )
    wire.decode(_details())
    [error] = wire.decode(json.dumps(frame))  # after it: the session's error, not auth
    assert isinstance(error, m.Error) and error.code == "401" and error.id is None


def test_the_recovery_answer_follows_connection_details() -> None:
    wire = RingCentralClientWire()
    _opened(wire)
    [auth] = wire.decode(_details())
    assert isinstance(auth, m.Authenticated) and auth.recovery_token == "W"
    assert (auth.recovery_buffer_size, auth.recovery_window, auth.heartbeat) == (100, 180, 60)
    _opened(wire, "W")
    auth, recovery = wire.decode(_details(recoveryState="Successful"))
    assert recovery == m.Recovery(recovered=True) and auth.session == "rc-1"
    _opened(wire, "W")
    auth, recovery = wire.decode(_details(recoveryState="Failed", recoveryErrorCode="WSG-1003"))
    assert recovery == m.Recovery(recovered=False, reason="unknown") and auth.session == "rc-2"


def test_a_replayed_uuid_gets_its_first_seq_and_other_subscriptions_are_dropped() -> None:
    wire = RingCentralClientWire()
    _opened(wire)
    wire.decode(_details())
    [frame] = wire.encode(m.Subscribe(id=1, topics=["/e"])).frames
    mid = json.loads(frame)[0]["messageId"]
    answer = [{"type": "ClientRequest", "messageId": mid, "status": 200}, {"id": "SUB-9"}]
    assert wire.decode(json.dumps(answer)) == (m.Subscribed(id=1, topics=["/e"]),)

    def note(uuid: str, sub: str = "SUB-9") -> str:
        meta = {"type": "ServerNotification", "messageId": uuid, "status": 200}
        return json.dumps([meta, {"uuid": uuid, "event": "/e", "subscriptionId": sub, "body": 1}])

    assert [n.seq for n in wire.decode(note("a"))] == [1]
    assert [n.seq for n in wire.decode(note("b"))] == [2]
    assert [n.seq for n in wire.decode(note("a"))] == [1]  # the core calls it a duplicate
    assert wire.decode(note("c", sub="SUB-1")) == ()


def test_params_json_cannot_hold_and_events_no_topic_can_name() -> None:
    wire = RingCentralClientWire()
    out = wire.encode(m.Call(id=5, method="POST /x", params={"n": float("nan")}))
    assert out.frames == () and out.answers[0].code == "invalid_params"
    _opened(wire)
    wire.decode(_details())
    [frame] = wire.encode(m.Subscribe(id=1, topics=["/e"])).frames
    mid = json.loads(frame)[0]["messageId"]
    wire.decode(
        json.dumps([{"type": "ClientRequest", "messageId": mid, "status": 200}, {"id": "S"}])
    )
    meta = {"type": "ServerNotification", "messageId": "n", "status": 200}
    body = {"uuid": "u", "event": "/" + "e" * 300, "subscriptionId": "S", "body": None}
    with pytest.raises(ProtocolError):
        wire.decode(json.dumps([meta, body]))
