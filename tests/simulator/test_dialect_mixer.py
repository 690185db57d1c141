"""The mixer dialect: Mixer chat packets over real websockets, against a real Simulator.

Every test speaks the wire by hand (method / reply / event packets), so it sees exactly what
@mixer/chat-client-websocket 1.2.0 would. The last test runs that SDK itself, when node and
its node_modules are on this machine.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode

from squall.clock import LoopClock
from squall.protocol import mixer as wire
from squall.simulator import AuthPolicy, Config, ControlError, Simulator
from squall.simulator import events as ev
from squall.simulator.dialects import mixer as dialect
from squall.simulator.dialects.mixer import MixerDialect, MixerWire
from squall.simulator.http_api import start_http_api
from squall.simulator.seam import CloseReason
from tests import needs

from .conftest import DEADLINE, TIMESCALE, wait_for_record

ANON = object()  # connect(..., auth=ANON): an anonymous join


class MixerClient:
    """A chat client by hand: method packets out, reply and event packets in."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.ids = itertools.count()
        self.welcome: dict[str, Any] = {}

    async def recv(self) -> dict[str, Any]:
        return json.loads(await asyncio.wait_for(self.ws.recv(), DEADLINE))

    async def send(self, method: str, *arguments: Any, id: int | None = None) -> int:
        ref = next(self.ids) if id is None else id
        packet = {"type": "method", "method": method, "arguments": list(arguments), "id": ref}
        await self.ws.send(json.dumps(packet))
        return ref

    async def reply(self, ref: int | None) -> dict[str, Any]:
        packet = await self.recv()
        assert packet["type"] == "reply" and packet["id"] == ref, packet
        assert set(packet) == {"type", "error", "id", "data"}, packet
        return packet

    async def call(self, method: str, *arguments: Any) -> dict[str, Any]:
        return await self.reply(await self.send(method, *arguments))

    async def event(self, name: str) -> Any:
        packet = await self.recv()
        assert packet["type"] == "event" and packet["event"] == name, packet
        return packet["data"]

    async def closed(self) -> tuple[int | None, str]:
        try:
            while True:
                await asyncio.wait_for(self.ws.recv(), DEADLINE)
        except ConnectionClosed as exc:
            return (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else (None, "")


Connect = Callable[..., Awaitable[MixerClient]]


@pytest.fixture
async def start() -> AsyncIterator[Callable[..., Awaitable[Simulator]]]:
    """``await start(**Simulator kwargs)``: a mixer simulator on loopback, stopped afterwards."""
    sims: list[Simulator] = []

    async def _start(**kwargs: Any) -> Simulator:
        kwargs.setdefault("clock", LoopClock(timescale=TIMESCALE))
        # Unauthenticated sockets live long enough for any test (10 protocol s = 0.1 s here).
        kwargs.setdefault("config", Config(auth_timeout=3600))
        sim = Simulator(dialect="mixer", **kwargs)
        sims.append(sim)
        return await sim.start()

    yield _start
    for sim in sims:
        await sim.stop()


@pytest.fixture
async def sim(start) -> Simulator:
    return await start()


@pytest.fixture
async def chat(sim: Simulator) -> AsyncIterator[Connect]:
    """``await chat("alice")``: welcomed and authenticated with authkey ``alice``."""
    opened: list[MixerClient] = []

    async def _open(
        auth: Any = "alice", *, url: str | None = None, query: str = "?version=1.0&Client-ID=cid"
    ) -> MixerClient:
        ws = await connect((url or sim.url) + "chat" + query, compression=None, max_size=None)
        client = MixerClient(ws)
        opened.append(client)
        client.welcome = await client.event("WelcomeEvent")
        if auth is ANON:
            reply = await client.call("auth", 1, None, None, None)
            assert reply["data"] == {"authenticated": False, "roles": []}
        elif auth is not None:
            reply = await client.call("auth", 1, 456, auth, None)
            assert reply["data"] == {"authenticated": True, "roles": ["User"]}, reply
        return client

    yield _open
    await asyncio.gather(*(c.ws.close() for c in opened), return_exceptions=True)


def frames(sim: Simulator, conn: str | None = None) -> list[dict[str, Any]]:
    return [r for r in sim.transcript() if r["kind"] == "frame" and conn in (None, r["conn"])]


# --- opening ----------------------------------------------------------------------------------


async def test_welcome_on_open_and_no_credentials_in_the_url(sim: Simulator, chat: Connect) -> None:
    client = await chat(auth=None)
    assert uuid.UUID(client.welcome["server"])
    opened = next(r for r in sim.transcript() if r["kind"] == "open")
    assert opened["path"] == "/chat?version=1.0&Client-ID=cid"
    assert opened["credentials"] is False and opened["dialect"] == "mixer"
    conn = next(iter(sim.core.connections.values()))
    assert isinstance(conn.wire, MixerWire)
    assert (conn.wire.version, conn.wire.client_id) == ("1.0", "cid")
    assert conn.session is None and sim.sessions() == []
    welcome = frames(sim)[0]
    assert (welcome["dir"], welcome["type"], welcome["op"]) == ("out", "WelcomeEvent", "greet")


async def test_no_subprotocol_is_offered_or_needed(sim: Simulator) -> None:
    async with connect(sim.url, subprotocols=None) as ws:
        assert ws.subprotocol is None
        assert json.loads(await ws.recv())["event"] == "WelcomeEvent"


# --- auth -------------------------------------------------------------------------------------


async def test_auth_subscribes_to_every_event(sim: Simulator, chat: Connect) -> None:
    await chat("alice")
    (session,) = sim.sessions()
    assert (session["user"], session["guest"], session["dialect"]) == ("alice", False, "mixer")
    assert session["subscriptions"] == ["*"]


async def test_authkey_is_looked_up_in_the_auth_policy(start, chat: Connect) -> None:
    sim = await start(auth=AuthPolicy(tokens={"k-123": "alice"}))
    client = MixerClient(await connect(sim.url))
    await client.event("WelcomeEvent")
    reply = await client.call("auth", 1, 456, "k-123")
    assert reply["error"] is None and reply["data"]["authenticated"] is True
    assert [s["user"] for s in sim.sessions()] == ["alice"]
    await client.ws.close()


async def test_roles_option(start) -> None:
    sim = await start(dialect_options={"roles": ["Owner", "Mod"]})
    client = MixerClient(await connect(sim.url))
    await client.event("WelcomeEvent")
    assert (await client.call("auth", 1, 2, "k"))["data"] == {
        "authenticated": True,
        "roles": ["Owner", "Mod"],
    }
    await client.ws.close()


@pytest.mark.parametrize("arguments", [[12345], [12345, None, None, None], [12345, 7, None]])
async def test_anonymous_join_is_a_guest(sim: Simulator, chat: Connect, arguments: list) -> None:
    """Docs (methods/auth): no authkey -> {"authenticated": false, "roles": []}."""
    client = await chat(auth=None)
    reply = await client.call("auth", *arguments)
    assert reply == {
        "type": "reply",
        "error": None,
        "id": 0,
        "data": {"authenticated": False, "roles": []},
    }
    (session,) = sim.sessions()
    assert (session["user"], session["guest"], session["subscriptions"]) == (
        "anonymous",
        True,
        ["*"],
    )


async def test_anonymous_refused_when_guests_are_disabled(start) -> None:
    sim = await start(auth=AuthPolicy(allow_guests=False))
    client = MixerClient(await connect(sim.url))
    await client.event("WelcomeEvent")
    assert (await client.call("auth", 1, None, None, None))["error"] == "UACCESS"
    assert await client.closed() == (1008, "auth failed: forbidden")


@pytest.mark.parametrize(
    ("reason", "error"),
    [
        ("invalid_token", "UNOTFOUND"),
        ("expired_token", "UNOTFOUND"),
        ("missing_credentials", "UNOTFOUND"),
        ("invalid_jwt", "UNOTFOUND"),
        ("forbidden", "UACCESS"),
    ],
)
async def test_each_auth_failure_then_close(
    sim: Simulator, chat: Connect, reason: str, error: str
) -> None:
    """The SDK tests these with === (Socket.js:455,458); the core closes right after."""
    client = await chat(auth=None)
    sim.fail_next_auth(reason)
    reply = await client.call("auth", 1, 456, "alice", None)
    assert (reply["error"], reply["data"]) == (error, None)
    assert await client.closed() == (1008, f"auth failed: {reason}")
    assert sim.sessions() == []


async def test_unknown_and_revoked_authkeys(start) -> None:
    sim = await start(auth=AuthPolicy(tokens={"good": "alice", "old": "bob"}))
    sim.revoke_token("old")
    for key in ("nope", "old"):
        client = MixerClient(await connect(sim.url))
        await client.event("WelcomeEvent")
        assert (await client.call("auth", 1, 2, key))["error"] == "UNOTFOUND"
        assert (await client.closed())[0] == 1008


async def test_auth_server_error_4006(start) -> None:
    """Socket.js:461 reconnects on {code: 4006}; a reason no table names answers it."""
    sim = await start(dialect_options={"auth_errors": {"expired_token": 4006}})
    sim.fail_next_auth("expired_token", message="auth backend down")
    sim.core.auth.fail_next("backend_timeout")  # a reason of the core's own, not in the table
    messages = []
    for _ in range(2):
        client = MixerClient(await connect(sim.url))
        await client.event("WelcomeEvent")
        error = (await client.call("auth", 1, 2, "k"))["error"]
        assert error["code"] == 4006 and error["stacktrace"] == ""
        messages.append(error["message"])
        assert (await client.closed())[0] == 1008
    assert messages == ["auth backend down", "scripted auth failure"]


async def test_string_errors_in_the_developer_docs_form(start) -> None:
    """Docs (methods/auth): {"code": 1, "message": "UNOTFOUND", ...}, which the SDK does not
    recognise as UNOTFOUND: a probe for how a client copes with the documented form."""
    sim = await start(dialect_options={"string_errors": "object"})
    sim.fail_next_auth("invalid_token")
    client = MixerClient(await connect(sim.url))
    await client.event("WelcomeEvent")
    assert (await client.call("auth", 1, 2, "k"))["error"] == {
        "code": 1,
        "message": "UNOTFOUND",
        "stacktrace": "",
        "data": {},
    }


@pytest.mark.parametrize(
    "options",
    [
        {"colour": "blue"},
        {"string_errors": "loud"},
        {"auth_errors": {"forbidden": "NOPE"}},
        {"auth_errors": ["forbidden"]},
        {"auth_errors": {"forbidden": [4006]}},
        {"auth_errors": {"forbidden": True}},
        {"roles": "User"},
    ],
)
def test_bad_dialect_options_are_refused(options: dict) -> None:
    with pytest.raises(ValueError, match="mixer"):
        Simulator(dialect="mixer", dialect_options=options)


async def test_bad_auth_arguments_are_answered_and_auth_can_follow(
    sim: Simulator, chat: Connect
) -> None:
    client = await chat(auth=None)
    reply = await client.call("auth", "1", 456, 789)
    assert reply["error"] == {
        "code": 4004,
        "message": "invalid 'auth' arguments: channelId must be an integer, got string; "
        "authKey must be a string or null, got number",
        "stacktrace": "",
    }
    assert sim.sessions() == []
    assert (await client.call("auth", 1, 456, "alice"))["data"]["authenticated"] is True


async def test_second_auth_is_refused_and_the_session_lives(chat: Connect) -> None:
    client = await chat("alice")
    error = (await client.call("auth", 1, 456, "alice"))["error"]
    assert error["code"] == 4004 and error["message"] == "session is already authenticated"
    assert (await client.call("ping"))["error"] is None


# --- methods before and after auth ------------------------------------------------------------


@pytest.mark.parametrize("method", ["msg", "ping", "history", "vote:start"])
async def test_methods_before_auth_answer_uaccess(
    sim: Simulator, chat: Connect, method: str
) -> None:
    client = await chat(auth=None)
    reply = await client.call(method, "x")
    assert (reply["error"], reply["data"]) == ("UACCESS", None)
    assert (await client.call("auth", 1, 456, "alice"))["error"] is None


async def test_scripted_result_error_and_arguments(sim: Simulator, chat: Connect) -> None:
    seen: list[Any] = []
    sim.on_rpc("msg", handler=lambda args: seen.append(args) or {"id": "m1", "text": args[0]})
    sim.on_rpc("timeout", error={"code": 4001, "message": "user not found", "data": {"u": "bob"}})
    sim.on_rpc("purge", error="UACCESS")
    sim.on_rpc("vote:choose", error="NOVOTE")
    sim.on_rpc("history", reply=[{"id": "h1"}])
    client = await chat("alice")
    assert (await client.call("msg", "Hello world!"))["data"] == {
        "id": "m1",
        "text": "Hello world!",
    }
    assert seen == [["Hello world!"]]
    assert (await client.call("timeout", "bob", "30s"))["error"] == {
        "code": 4001,
        "message": "user not found",
        "stacktrace": "",
        "data": {"u": "bob"},
    }
    assert (await client.call("purge", "bob"))["error"] == "UACCESS"
    assert (await client.call("vote:choose", 0))["error"] == "NOVOTE"  # a scripted code, as is
    assert (await client.call("history", 1))["data"] == [{"id": "h1"}]


async def test_unscripted_method_is_an_unknown_error(chat: Connect) -> None:
    client = await chat("alice")
    assert (await client.call("giveaway:start"))["error"] == {
        "code": 4000,
        "message": "no handler for method 'giveaway:start'",
        "stacktrace": "",
    }


async def test_failing_handler_is_an_unknown_error(sim: Simulator, chat: Connect) -> None:
    sim.on_rpc("msg", handler=lambda args: 1 / 0)
    client = await chat("alice")
    error = (await client.call("msg", "x"))["error"]
    assert error["code"] == 4000 and error["message"] == "ZeroDivisionError: division by zero"


async def test_delayed_reply_comes_after_a_later_one(sim: Simulator, chat: Connect) -> None:
    sim.on_rpc("history", reply=["late"], delay=20.0)  # 0.2 s real
    sim.on_rpc("msg", reply="now")
    client = await chat("alice")
    slow = await client.send("history", 10)
    fast = await client.send("msg", "x")
    assert (await client.reply(fast))["data"] == "now"
    assert (await client.reply(slow))["data"] == ["late"]


async def test_ping_method_is_the_keepalive(sim: Simulator, chat: Connect) -> None:
    """Browsers have no WebSocket ping: the SDK calls `ping` (Socket.js:193)."""
    client = await chat("alice")
    assert await client.call("ping") == {"type": "reply", "error": None, "id": 1, "data": None}
    pong = frames(sim)[-1]
    assert (pong["type"], pong["op"]) == ("reply", "pong")
    sim.silence("alice")
    ref = await client.send("ping")
    await wait_for_record(sim, lambda r: r["kind"] == "withheld" and r["op"] == "pong")
    sim.silence("alice", silent=False)
    assert (await client.call("ping"))["id"] == ref + 1


async def test_websocket_ping_is_answered(chat: Connect) -> None:
    """Node's ws pings at the WebSocket level (Socket.js:189): websockets answers it."""
    client = await chat("alice")
    latency = await asyncio.wait_for(await client.ws.ping(), DEADLINE)
    assert latency >= 0


async def test_opt_out_events_is_answered_before_and_after_auth(
    sim: Simulator, chat: Connect
) -> None:
    """unspool() sends optOutEvents *before* auth (Socket.js:291): answered, not refused."""
    client = await chat(auth=None)
    reply = await client.call("optOutEvents", "UserJoin", "UserLeave")
    assert (reply["error"], reply["data"]) == (None, {})
    await client.call("auth", 1, 456, "alice")
    assert (await client.call("optOutEvents", "UserJoin", "PollStart"))["data"] == {}
    wire_session = next(iter(sim.core.connections.values())).wire
    assert wire_session.opted_out == ("UserJoin", "UserLeave", "PollStart")
    bad = (await client.call("optOutEvents", 3))["error"]
    assert bad["code"] == 4004


# --- events -----------------------------------------------------------------------------------


async def test_publish_fans_out_one_identical_frame(
    sim: Simulator, chat: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    encode_event = wire.encode_event

    def counting(event: str, data: Any) -> str:
        calls.append(event)
        return encode_event(event, data)

    monkeypatch.setattr(wire, "encode_event", counting)
    clients = [await chat("alice"), await chat("bob"), await chat(ANON)]
    outsider = await chat(auth=None)  # welcomed, never authenticated: gets nothing
    calls.clear()
    message = {
        "channel": 1,
        "id": "cfa8a5b0",
        "user_name": "bob",
        "user_id": 7,
        "user_roles": ["User"],
        "message": {"message": [{"type": "text", "data": "hi", "text": "hi"}], "meta": {}},
    }
    assert sim.publish("ChatMessage", message) == {"delivered": 3, "buffered": 0, "overflowed": 0}
    texts = [await c.ws.recv() for c in clients]
    assert calls == ["ChatMessage"]  # one encode for the whole fan-out
    assert texts == [encode_event("ChatMessage", message)] * 3
    assert json.loads(texts[0]) == {"type": "event", "event": "ChatMessage", "data": message}
    assert (await outsider.call("ping"))["error"] == "UACCESS"  # its next frame is this reply
    out = [r for r in frames(sim) if r["op"] == "delivered"]
    assert {r["type"] for r in out} == {"ChatMessage"} and len(out) == 3


async def test_request_reconnect_is_unsupported(sim: Simulator, chat: Connect) -> None:
    """Mixer has no server-requested reconnect: 409, naming the dialect, from both faces."""
    await chat("alice")
    with pytest.raises(ControlError) as err:
        sim.request_reconnect("alice")
    assert err.value.status == 409
    assert str(err.value) == "the mixer dialect has no server-requested reconnect (drain)"
    runner, url = await start_http_api(sim)
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{url}/request_reconnect", json={"session": "alice"}) as resp,
        ):
            assert resp.status == 409
            body = await resp.json()
    finally:
        await runner.cleanup()
    assert body == {
        "error": "the mixer dialect has no server-requested reconnect (drain)",
        "status": 409,
    }
    assert sim.sessions()[0]["drain"] is None


def test_capabilities() -> None:
    assert MixerDialect.capabilities == frozenset({"pubsub", "rpc"})
    assert MixerDialect.closes_before_auth is False
    assert MixerDialect.subprotocols == ()


async def test_several_addresses_share_one_core(sim: Simulator, chat: Connect) -> None:
    second = await sim.listen()
    alice = await chat("alice")
    bob = await chat("bob", url=second)
    again = await chat(auth=None, url=second)
    assert alice.welcome["server"] != bob.welcome["server"]  # each address is its own server
    assert bob.welcome == again.welcome
    assert (
        sim.publish("UserJoin", {"id": 1, "username": "carol", "roles": ["User"]})["delivered"] == 2
    )
    assert await alice.event("UserJoin") == await bob.event("UserJoin")
    assert sorted(s["user"] for s in sim.sessions()) == ["alice", "bob"]


def test_server_id_is_derived_from_the_address() -> None:
    first, again = MixerDialect(None), MixerDialect(None)
    assert first.server_id("127.0.0.1:8001") == again.server_id("127.0.0.1:8001")  # every run
    assert first.server_id("127.0.0.1:8001") != first.server_id("127.0.0.1:8002")


async def test_fixed_server_id(start) -> None:
    sim = await start(dialect_options={"server_id": "cb4fce87-cd05-44db-830e-cccc53a33fab"})
    async with connect(sim.url) as ws:
        assert json.loads(await ws.recv())["data"] == {
            "server": "cb4fce87-cd05-44db-830e-cccc53a33fab"
        }


async def test_drop_then_a_new_connection_is_a_new_session(sim: Simulator, chat: Connect) -> None:
    """No recovery on this wire: the SDK re-sends auth after a reconnect (Socket.js:299)."""
    first = await chat("alice")
    sim.drop("alice")
    assert (await first.closed())[0] is None  # TCP cut: no close frame
    await chat("alice")
    states = sorted((s["id"], s["state"]) for s in sim.sessions())
    assert states == [("s1", "detached"), ("s2", "open")]


# --- bad input --------------------------------------------------------------------------------


@pytest.fixture
async def bystander(sim: Simulator, chat: Connect) -> AsyncIterator[MixerClient]:
    """An authenticated chatter that must notice nothing of another session's trouble."""
    client = await chat("bystander")
    yield client
    sim.publish("ChatMessage", {"text": "after"})
    assert await client.event("ChatMessage") == {"text": "after"}  # nothing came before it
    assert (await client.call("ping"))["error"] is None


@pytest.mark.parametrize("authenticated", [False, True])
@pytest.mark.parametrize(
    ("text", "ref", "error"),
    [
        ('{"type":"method","method":"msg",', None, "UNOTJSON"),
        ("NaN", None, "UNOTJSON"),
        ("[1, 2]", None, "packet must be a JSON object, got array"),
        ('"msg"', None, "packet must be a JSON object, got string"),
        (
            '{"type":"teleport","id":5}',
            5,
            "unknown packet type 'teleport' (a client sends 'method')",
        ),
        ('{"method":"msg","arguments":[],"id":6}', 6, "packet has no string 'type' (got null)"),
        (
            '{"type":"method","method":"msg","arguments":["x"]}',
            None,
            "invalid 'msg' method packet: 'id' is missing",
        ),
        (
            '{"type":"method","method":"msg","arguments":"x","id":7}',
            7,
            "invalid 'msg' method packet: 'arguments' must be an array, got string",
        ),
        (
            '{"type":"method","method":1,"arguments":[],"id":"8"}',
            None,
            "invalid 'method' method packet: 'method' must be a non-empty string, got number; "
            "'id' must be an integer, got string",
        ),
    ],
)
async def test_bad_packets_are_answered_and_the_session_lives(
    sim: Simulator,
    chat: Connect,
    bystander: MixerClient,
    text: str,
    ref: int | None,
    error: str,
    authenticated: bool,
) -> None:
    client = await chat("alice" if authenticated else None)
    await client.ws.send(text)
    reply = await client.reply(ref)
    if error == "UNOTJSON":
        assert reply["error"] == "UNOTJSON"
    else:
        assert reply["error"] == {"code": 4004, "message": error, "stacktrace": ""}
    bad = next(r for r in frames(sim) if r["dir"] == "in" and r["text"] == text)
    assert bad["op"] == "bad_input"
    expected = "UACCESS" if not authenticated else None
    assert (await client.call("ping"))["error"] == expected  # still here, still in order


async def test_binary_frame_closes_1003(
    sim: Simulator, chat: Connect, bystander: MixerClient
) -> None:
    """The SDK cannot parse binary either (Socket.js:315); the server does not pretend to."""
    client = await chat("alice")
    await client.ws.send(b'{"type":"method","method":"ping","arguments":[],"id":1}')
    assert await client.closed() == (1003, "binary frames are not Mixer chat packets (55 bytes)")
    record = next(r for r in frames(sim) if r["dir"] == "in" and r["op"] == "bad_input")
    assert record["text"] == "<55 bytes>"


async def test_oversized_frame_closes_1009(start, bystander_factory) -> None:
    sim = await start(config=Config(auth_timeout=3600, max_message_size=1024))
    bystander = await bystander_factory(sim)
    client = MixerClient(await connect(sim.url, max_size=None))
    await client.event("WelcomeEvent")
    await client.send("msg", "x" * 2000)
    code, _ = await client.closed()
    assert code == 1009  # websockets enforces max_size before the dialect sees the frame
    closed = await wait_for_record(sim, lambda r: r["kind"] == "close" and r["code"] == 1009)
    assert closed["conn"] == "c2"  # the offender, not the bystander (c1)
    await bystander.check(sim)


@pytest.fixture
def bystander_factory() -> Callable[[Simulator], Awaitable[Any]]:
    """The bystander, for tests that start their own simulator."""

    class Bystander:
        def __init__(self, client: MixerClient) -> None:
            self.client = client

        async def check(self, sim: Simulator) -> None:
            sim.publish("ChatMessage", {"text": "after"})
            assert await self.client.event("ChatMessage") == {"text": "after"}

    async def make(sim: Simulator) -> Bystander:
        client = MixerClient(await connect(sim.url))
        await client.event("WelcomeEvent")
        await client.call("auth", 1, 2, "bystander")
        return Bystander(client)

    return make


async def test_invalid_utf8_is_closed_by_the_websocket_layer(
    chat: Connect, bystander: MixerClient
) -> None:
    client = await chat("alice")
    client.ws.protocol.send_frame(Frame(Opcode.TEXT, b"\xff\xfe"))
    client.ws.send_data()
    assert (await client.closed())[0] == 1007


# --- close codes and events without frames ------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "code"),
    [
        (CloseReason.NORMAL, 1000),
        (CloseReason.GOING_AWAY, 1001),
        (CloseReason.POLICY, 1008),
        (CloseReason.AUTH_FAILED, 1008),
        (CloseReason.SERVICE_RESTART, 1012),
        (CloseReason.BAD_FRAME, 1007),
        (CloseReason.UNSUPPORTED_DATA, 1003),
        (CloseReason.TOO_BIG, 1009),
        (CloseReason.INTERNAL_ERROR, 1011),
    ],
)
def test_every_close_reason_has_a_code(reason: CloseReason, code: int) -> None:
    session = MixerWire(MixerDialect(None), "srv", "1.0", None)
    assert session.close(reason, "why") == ((), code, "why")


def test_close_codes_cover_every_reason() -> None:
    assert set(dialect.CLOSE_CODES) == set(CloseReason)


@pytest.mark.parametrize(
    "event",
    [
        ev.ServerPing("srv-1"),
        ev.DrainRequested(600, 1),
        ev.Subscribed(("x",)),
        ev.PeerLeft("r", "c1", "p", "left"),
    ],
)
def test_events_with_no_mixer_frame(event: ev.Event) -> None:
    assert MixerWire(MixerDialect(None), "srv", None, None).encode(event) == ()


async def test_rate_limit_closes_1008(
    sim: Simulator, chat: Connect, bystander: MixerClient
) -> None:
    client = await chat("alice")
    sim.configure(rate_burst=2, rate_limit=0.001)
    for n in range(3):
        await client.send("ping", id=100 + n)
    code, reason = await client.closed()
    assert (code, reason.startswith("rate limit exceeded")) == (1008, True)
    sim.configure(rate_burst=2000, rate_limit=1000)


# --- transcript -------------------------------------------------------------------------------


async def test_transcript_names_wire_types_and_ops_and_hides_the_authkey(start) -> None:
    secret = "b41e9ae6b14df18c59f415419b1f827c"
    sim = await start(auth=AuthPolicy(tokens={secret: "alice"}))
    sim.on_rpc("msg", reply={"ok": True})
    client = MixerClient(await connect(sim.url + "chat?version=1.0&Client-ID=cid"))
    await client.event("WelcomeEvent")
    await client.call("auth", 1, 456, secret, "test-stream-key")
    await client.call("msg", "hello")
    sim.publish("ChatMessage", {"text": "hi"})
    await client.event("ChatMessage")
    await client.ws.send('{"type":"method","method":"auth","arguments":[1,456,"' + secret[:20])
    await client.reply(None)
    rows = [(r["dir"], r["type"], r["op"]) for r in frames(sim)]
    assert rows == [
        ("out", "WelcomeEvent", "greet"),
        ("in", "auth", "authenticate"),
        ("out", "reply", "authenticated"),
        ("in", "msg", "call"),
        ("out", "reply", "replied"),
        ("out", "ChatMessage", "delivered"),
        ("in", None, "bad_input"),
        ("out", "reply", "rejected"),
    ]
    auth = frames(sim)[1]
    assert json.loads(auth["text"])["arguments"] == [1, 456, "***", "***"]
    assert secret[:20] not in sim.core.transcript.to_jsonl()
    assert "test-stream-key" not in sim.core.transcript.to_jsonl()


# --- the real SDK -----------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
SDK_MODULES = Path(
    os.environ.get("SQUALL_MIXER_NODE_MODULES", ROOT / "drivers/mixer-sdk/node_modules")
)

SDK_SCRIPT = r"""
const { Socket } = require('@mixer/client-node');
const s = new Socket(require('ws'), JSON.parse(process.argv[2]), { clientId: 'cid' });
const out = (ev, more = {}) => console.log(JSON.stringify({ ev, ...more }));
s.on('error', (e) => out('error', { name: e.constructor.name, code: e.code }));
s.on('ChatMessage', (d) => out('ChatMessage', { data: d }));
s.on('reconnecting', () => out('reconnecting'));
s.on('connected', () => out('connected'));
s.auth(1, 456, 'alice').then((r) => out('auth', { result: r }));
s.call('msg', ['spooled']).then((r) => out('msg', { result: r }));
s.boot();
require('readline').createInterface({ input: process.stdin }).on('line', (line) => {
  const cmd = JSON.parse(line);
  if (cmd.op === 'msg') s.call('msg', [cmd.text]).then((r) => out('msg', { result: r }));
  if (cmd.op === 'exit') { s.close(); process.exit(0); }
});
"""


async def test_the_real_sdk(start, tmp_path: Path) -> None:
    """@mixer/client-node unchanged: boot, auth, spool, a ChatMessage, a drop, a reconnect."""
    if shutil.which("node") is None or not (SDK_MODULES / "@mixer" / "client-node").is_dir():
        needs.unavailable(
            "needs node and @mixer/client-node 3.5.0 + ws installed (npm ci in drivers/mixer-sdk"
            ", or SQUALL_MIXER_NODE_MODULES)"
        )
    sim = await start(clock=LoopClock())  # the SDK's own timers run in real time
    await sim.listen()
    sim.on_rpc("msg", handler=lambda args: {"echo": args[0]})
    script = tmp_path / "sdk.js"
    script.write_text(SDK_SCRIPT)
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(script),
        json.dumps([u + "chat" for u in sim.urls]),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, "NODE_PATH": str(SDK_MODULES)},
    )
    assert proc.stdin is not None and proc.stdout is not None
    stdout, stdin = proc.stdout, proc.stdin

    seen: list[dict[str, Any]] = []

    async def until(name: str, since: int = 0) -> dict[str, Any]:
        """The first event ``name`` the SDK printed from ``seen[since]`` on (order-free)."""
        while True:
            found = next((e for e in seen[since:] if e["ev"] == name), None)
            if found is not None:
                return found
            line = await asyncio.wait_for(stdout.readline(), DEADLINE)
            assert line, f"the SDK process ended before {name!r}: {seen}"
            seen.append(json.loads(line))
            assert seen[-1]["ev"] != "error", seen

    try:
        assert (await until("auth"))["result"] == {"authenticated": True, "roles": ["User"]}
        assert (await until("msg"))["result"] == {"echo": "spooled"}
        await until("connected")
        sim.publish("ChatMessage", {"message": {"message": [{"type": "text", "text": "hi"}]}})
        assert (await until("ChatMessage"))["data"]["message"]["message"][0]["text"] == "hi"
        mark = len(seen)
        sim.drop("alice")
        await until("reconnecting", mark)
        stdin.write(b'{"op":"msg","text":"while down"}\n')
        await until("connected", mark)
        assert (await until("msg", mark))["result"] == {"echo": "while down"}
        # after the reconnect the SDK re-sent auth before its spool (ids from call() time)
        second = [r for r in frames(sim) if r["dir"] == "in" and r["conn"] == "c2"]
        assert [(r["type"], json.loads(r["text"])["id"]) for r in second] == [
            ("auth", 3),
            ("msg", 2),
        ]
    finally:
        stdin.write(b'{"op":"exit"}\n')
        await asyncio.wait_for(proc.wait(), DEADLINE)
