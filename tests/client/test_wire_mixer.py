"""The reference client in mixer mode: the one behaviour core on Mixer chat's wire.

Each test runs a real StreamingClient(dialect="mixer") against a real
Simulator(dialect="mixer") on loopback; a few check the wire's decisions without sockets.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from squall.client import AuthFailed, RemoteError, StreamingClient
from squall.client.wires.mixer import MixerClientWire
from squall.clock import LoopClock
from squall.protocol import messages as m
from squall.protocol.errors import ProtocolError
from squall.simulator import AuthPolicy, Simulator

from .conftest import DEADLINE, Make, server_record
from .test_integration_driver import start_driver, stop

DIALECT = "mixer"  # the sim and make fixtures of conftest.py speak it


def frames_in(sim: Simulator) -> list[dict[str, Any]]:
    return [r for r in sim.transcript() if r["kind"] == "frame" and r["dir"] == "in"]


def opens(sim: Simulator) -> list[dict[str, Any]]:
    return [r for r in sim.transcript() if r["kind"] == "open"]


# --- auth -------------------------------------------------------------------------------------


async def test_connect_sends_auth_as_a_method_after_a_bare_url(make: Make, sim: Simulator) -> None:
    client, rec = make()
    await client.connect()
    [opened] = opens(sim)
    assert opened["path"] == "/?version=1.0&Client-ID=squall" and opened["credentials"] is False
    auth = json.loads(frames_in(sim)[0]["text"])  # the transcript masks the authkey
    assert auth == {
        "type": "method",
        "method": "auth",
        "arguments": [1, None, "***", None],
        "id": 0,
    }
    [sent] = [s for s in rec.of("sent") if s["type"] == "auth"]
    assert "alice" not in sent["text"] and '"***"' in sent["text"]  # masked for events too
    connected = rec.of("connected")[0]
    assert (connected["session"], connected["sid"], connected["url"]) == ("user-1", "c1", sim.url)
    [session] = sim.sessions()
    assert (session["user"], session["guest"], session["subscriptions"]) == ("alice", False, ["*"])


async def test_wire_options_reach_the_url_and_the_auth_arguments(make: Make, sim: Simulator):
    wire = MixerClientWire(client_id="cid", channel_id=77, user_id=456, user="alice")
    client, rec = make(wire=wire)
    await client.connect()
    assert opens(sim)[0]["path"] == "/?version=1.0&Client-ID=cid"
    assert json.loads(frames_in(sim)[0]["text"])["arguments"] == [77, 456, "***", None]
    assert rec.of("connected")[0]["user"] == "alice"


async def test_anonymous_join_is_a_guest(make: Make, sim: Simulator) -> None:
    client, rec = make(token=None)
    await client.connect()
    assert json.loads(frames_in(sim)[0]["text"])["arguments"] == [1, None, None, None]
    assert rec.of("connected")[0]["user"] == "anonymous"
    assert client.core.user == "anonymous"
    [session] = sim.sessions()
    assert session["guest"] is True


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("invalid_token", "invalid_token"),
        ("expired_token", "invalid_token"),
        ("forbidden", "forbidden"),
    ],
)
async def test_auth_failure_is_final(
    make: Make, sim: Simulator, reason: str, expected: str
) -> None:
    """UNOTFOUND / UACCESS, then the server closes: no reconnect (the SDK's unspool path)."""
    sim.fail_next_auth(reason)
    client, rec = make()
    with pytest.raises(AuthFailed) as info:
        await asyncio.wait_for(client.connect(), DEADLINE)
    assert info.value.reason == expected
    assert rec.of("auth_failed")[0]["reason"] == expected
    assert client.status is StreamingClient.CLOSED
    assert len(opens(sim)) == 1 and "reconnecting" not in rec.names()


async def test_auth_server_error_4006_is_final_too(clock: LoopClock) -> None:
    options = {"auth_errors": {"expired_token": 4006}}
    async with Simulator(dialect="mixer", clock=clock, dialect_options=options) as sim:
        sim.fail_next_auth("expired_token", message="auth backend down")
        client = StreamingClient(
            [sim.url], token="alice", clock=clock, dialect="mixer", open_timeout=100
        )
        with pytest.raises(AuthFailed) as info:
            await asyncio.wait_for(client.connect(), DEADLINE)
        assert (info.value.reason, info.value.message) == (
            "invalid_token",
            "4006: auth backend down",
        )
        assert len(opens(sim)) == 1


async def test_an_unknown_authkey_is_refused(clock: LoopClock) -> None:
    async with Simulator(
        dialect="mixer", clock=clock, auth=AuthPolicy(tokens={"k-123": "alice"})
    ) as sim:
        client = StreamingClient(
            [sim.url], token="nope", clock=clock, dialect="mixer", open_timeout=100
        )
        with pytest.raises(AuthFailed):
            await asyncio.wait_for(client.connect(), DEADLINE)
        good = StreamingClient(
            [sim.url], token="k-123", clock=clock, dialect="mixer", open_timeout=100
        )
        await asyncio.wait_for(good.connect(), DEADLINE)
        assert [s["user"] for s in sim.sessions()] == ["alice"]
        await good.disconnect()


# --- pub/sub ----------------------------------------------------------------------------------


async def test_subscribe_is_local_and_only_subscribed_events_arrive(make: Make, sim: Simulator):
    client, rec = make()
    await client.connect()
    got: asyncio.Queue[Any] = asyncio.Queue()
    assert await client.subscribe(["ChatMessage"], got.put_nowait) == ["ChatMessage"]
    assert [r["type"] for r in frames_in(sim)] == ["auth"]  # no frame: Mixer has no subscribe
    sim.publish("UserJoin", {"id": 1, "username": "carol"})  # not subscribed: dropped
    sim.publish("ChatMessage", {"message": {"message": [{"type": "text", "text": "hi"}]}})
    note = await asyncio.wait_for(got.get(), DEADLINE)
    assert note == {
        "seq": 1,
        "topic": "ChatMessage",
        "payload": {"message": {"message": [{"type": "text", "text": "hi"}]}},
    }
    assert [n["topic"] for n in rec.of("notification")] == ["ChatMessage"]
    await client.unsubscribe(["ChatMessage"])
    sim.publish("ChatMessage", {"n": 2})
    await client.call("ping")  # a round trip: the event, had it counted, came before the reply
    assert len(rec.of("notification")) == 1


async def test_star_subscribes_to_every_event(make: Make, sim: Simulator) -> None:
    client, rec = make()
    await client.connect()
    await client.subscribe(["*"])
    sim.publish("UserJoin", {"id": 1})
    sim.publish("PollStart", {"q": "?"})
    await rec.next("notification", lambda n: n["topic"] == "PollStart", fresh=False)
    assert [(n["seq"], n["topic"]) for n in rec.of("notification")] == [
        (1, "UserJoin"),
        (2, "PollStart"),
    ]


# --- RPC --------------------------------------------------------------------------------------


async def test_call_result_and_errors(make: Make, sim: Simulator) -> None:
    sim.on_rpc("msg", handler=lambda args: {"echo": args})
    sim.on_rpc("purge", error="UACCESS")
    sim.on_rpc("timeout", error={"code": 4001, "message": "user not found", "data": {"u": "bob"}})
    client, _ = make()
    await client.connect()
    assert await client.call("msg", ["hi"]) == {"echo": ["hi"]}
    assert await client.call("msg", "one") == {"echo": ["one"]}  # a scalar is one argument
    assert await client.call("msg") == {"echo": []}
    with pytest.raises(RemoteError) as info:
        await client.call("purge", [42])
    assert (info.value.code, info.value.message) == ("UACCESS", "UACCESS")
    with pytest.raises(RemoteError) as info:
        await client.call("timeout", ["bob", 60])
    assert (info.value.code, info.value.message, info.value.data) == (
        "4001",
        "user not found",
        {"u": "bob"},
    )
    with pytest.raises(RemoteError) as info:
        await client.call("nope")
    assert info.value.code == "4000"  # ErrorCode.UNKNOWN: no such method
    calls = [json.loads(r["text"]) for r in frames_in(sim) if r["op"] == "call"]
    assert [c["id"] for c in calls] == [1, 2, 3, 4, 5, 6]  # packet ids: one counter, auth was 0


async def test_a_no_reply_call_swallows_its_reply(make: Make, sim: Simulator) -> None:
    sim.on_rpc("msg", reply={"id": "m1"})
    client, rec = make()
    await client.connect()
    assert await client.call("msg", ["fire and forget"], no_reply=True) is None
    assert await client.call("msg", ["then"]) == {"id": "m1"}
    assert rec.of("error") == []


async def test_calls_spooled_while_disconnected_go_after_auth(make: Make, sim: Simulator) -> None:
    sim.on_rpc("msg", handler=lambda args: args[0])
    client, _ = make()
    first = asyncio.ensure_future(client.call("msg", ["one"]))
    second = asyncio.ensure_future(client.call("msg", ["two"]))
    await client.connect()
    assert await asyncio.wait_for(asyncio.gather(first, second), DEADLINE) == ["one", "two"]
    assert [r["type"] for r in frames_in(sim)] == ["auth", "msg", "msg"]


async def test_rooms_are_answered_unsupported(make: Make) -> None:
    client, _ = make()
    await client.connect()
    with pytest.raises(RemoteError) as info:
        await client.join_room("lobby")
    assert info.value.code == "unsupported" and "mixer" in info.value.message


# --- keepalive --------------------------------------------------------------------------------


async def test_ping_method_is_the_keepalive_and_silence_reconnects(make: Make, sim: Simulator):
    client, rec = make(ping_interval=2.0, pong_timeout=2.0)
    await client.connect()
    await server_record(sim, lambda r: r["kind"] == "frame" and r.get("op") == "pong")
    assert rec.of("pong_missed") == []
    sim.silence("alice")
    await rec.next("pong_missed", lambda d: d["missed"] == 2)
    await rec.next("connected", lambda d: d["sid"] == "c2")


# --- reconnecting -----------------------------------------------------------------------------


async def test_drop_reconnects_to_a_new_session_and_subscribes_again(make: Make, sim: Simulator):
    client, rec = make()
    await client.connect()
    await client.subscribe(["ChatMessage"])
    sim.publish("ChatMessage", "before")
    await rec.next("notification", fresh=False)
    sim.drop("alice")
    connected = await rec.next("connected")
    assert (connected["session"], connected["sid"]) == ("user-2", "c2")
    failed = rec.of("recovery_failed")[0]  # Mixer cannot recover: said, never silent
    assert failed == {"lost": 0, "reason": "unknown", "replayed": 0, "session": "user-2"}
    await rec.next("resubscribed", fresh=False)
    sim.publish("ChatMessage", "after")
    note = await rec.next("notification")
    assert (note["seq"], note["payload"]) == (1, "after")  # a new session counts from 1 again
    assert rec.of("duplicate") == [] and rec.of("gap") == []
    states = sorted((s["id"], s["state"]) for s in sim.sessions())
    assert states == [("s1", "detached"), ("s2", "open")]


async def test_a_topic_left_while_offline_stays_left(make: Make, sim: Simulator) -> None:
    """The core forgets it locally; the new session's subscriptions do not bring it back."""
    client, rec = make(immediate_first_retry=False, backoff_initial=5.0, jitter=0)
    await client.connect()
    await client.subscribe(["ChatMessage", "UserJoin"])
    sim.drop("alice")
    await rec.next("disconnected")
    assert await client.unsubscribe(["ChatMessage"]) == ["ChatMessage"]
    await rec.next("connected")
    sim.publish("ChatMessage", "unwanted")
    sim.publish("UserJoin", "wanted")
    note = await rec.next("notification", fresh=False)
    assert (note["topic"], note["seq"]) == ("UserJoin", 1)
    await client.call("ping")
    assert [n["topic"] for n in rec.of("notification")] == ["UserJoin"]


async def test_without_recovery_the_reconnect_is_plain(make: Make, sim: Simulator) -> None:
    client, rec = make(recover=False)
    await client.connect()
    sim.drop("alice")
    await rec.next("connected")
    assert rec.of("recovery_failed") == [] and rec.of("recovered") == []


async def test_failover_alternates_between_two_addresses(make: Make, sim: Simulator) -> None:
    second = await sim.listen()
    client, rec = make(urls=[sim.url, second])
    await client.connect()
    assert rec.of("connected")[0]["url"] == sim.url
    sim.drop("alice")
    assert (await rec.next("connected"))["url"] == second
    sim.drop("alice")
    assert (await rec.next("connected"))["url"] == sim.url
    assert [o["path"] for o in opens(sim)] == ["/?version=1.0&Client-ID=squall"] * 3


# --- the driver -------------------------------------------------------------------------------


async def test_driver_in_mixer_mode(sim: Simulator) -> None:
    sim.on_rpc("msg", handler=lambda args: {"echo": args})
    d = await start_driver("--dialect", "mixer")
    connected = await d.run(
        "connect",
        url=sim.url,
        token="alice",
        open_timeout=100,
        mixer={"client_id": "drv", "user_id": 9},
    )
    assert connected["ok"] and connected["result"]["status"] == "connected", connected
    assert opens(sim)[0]["path"] == "/?version=1.0&Client-ID=drv"
    assert (await d.run("subscribe", topics=["ChatMessage"]))["result"] == ["ChatMessage"]
    sim.publish("ChatMessage", {"n": 1})
    note = await d.event("notification")
    assert note["data"] == {"seq": 1, "topic": "ChatMessage", "payload": {"n": 1}}
    assert (await d.run("call", method="msg", params=["hi"]))["result"] == {"echo": ["hi"]}
    failed = await d.run("call", method="nope")
    assert failed["ok"] is False and failed["type"] == "RemoteError"
    assert not any("alice" in json.dumps(line) for line in d.lines if line.get("event") == "sent")
    await stop(d)


# --- the wire alone ---------------------------------------------------------------------------


def test_replies_nobody_awaits_and_the_welcome() -> None:
    wire = MixerClientWire()
    wire.opening("ws://x/", token="t", jwt=None, recovery_token=None, auth_via="query")
    assert wire.decode('{"type":"event","event":"WelcomeEvent","data":{"server":"s"}}') == ()
    [error] = wire.decode('{"type":"reply","id":9,"error":null,"data":1}')
    assert isinstance(error, m.Error) and error.code == "unexpected_reply" and error.id is None


def test_auth_errors_in_the_developer_docs_form_are_auth_failures() -> None:
    wire = MixerClientWire()
    wire.opening("ws://x/", token="t", jwt=None, recovery_token="", auth_via="query")
    wire.encode(m.Auth(token="t"))
    reply = {"type": "reply", "id": 0, "data": None, "error": {"code": 1, "message": "UNOTFOUND"}}
    [failed] = wire.decode(json.dumps(reply))
    assert failed == m.AuthFailed(reason="invalid_token", message="UNOTFOUND")


def test_a_non_auth_error_to_auth_is_reported_not_final() -> None:
    wire = MixerClientWire()
    wire.opening("ws://x/", token="t", jwt=None, recovery_token=None, auth_via="query")
    wire.encode(m.Auth(token="t"))
    reply = {"type": "reply", "id": 0, "data": None, "error": {"code": 4004, "message": "bad"}}
    [error] = wire.decode(json.dumps(reply))
    assert isinstance(error, m.Error) and error.code == "4004"


def test_opt_out_events_go_before_auth_and_their_reply_is_quiet() -> None:
    wire = MixerClientWire(opt_out_events=["UserJoin"])
    wire.opening("ws://x/", token=None, jwt=None, recovery_token=None, auth_via="query")
    out = wire.encode(m.Auth())
    assert [json.loads(f)["method"] for f in out.frames] == ["optOutEvents", "auth"]
    assert wire.decode('{"type":"reply","id":0,"error":null,"data":{}}') == ()


def test_params_json_cannot_hold_are_answered_locally() -> None:
    wire = MixerClientWire()
    out = wire.encode(m.Call(id=5, method="msg", params=[float("nan")]))
    assert out.frames == () and out.answers[0].code == "invalid_params"
    assert json.loads(wire.encode(m.Call(id=6, method="msg")).frames[0])["id"] == 1


def test_an_event_no_topic_can_name_is_a_protocol_error() -> None:
    wire = MixerClientWire()
    wire.encode(m.Subscribe(id=1, topics=["*"]))
    with pytest.raises(ProtocolError):
        wire.decode('{"type":"event","event":"","data":null}')
    assert [n.seq for n in wire.decode('{"type":"event","event":"E","data":1}')] == [1]
