"""The reliable-signaler dialect: raw Engine.IO v3 packets, python-socketio 5, and the real SDK.

signaler.js runs on socket.io-client 2 (Engine.IO v3), which python-socketio 5's client does not
speak, so v3 is spoken by hand over long-polling with aiohttp to see the exact packets; the
python-socketio ``AsyncClient`` runs the same events over Engine.IO v4. The real client
(reliable-signaler 1.0.2's ``signaler.js`` on socket.io-client 2.5.0) runs through its node
driver, drivers/reliable-signaler-sdk/driver.js.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio  # type: ignore[import-untyped]

from squall.clock import LoopClock
from squall.simulator import Simulator
from tests import needs

DEADLINE = 10.0  # real seconds: only ever reached when something is broken
DRIVER_DIR = Path(__file__).resolve().parents[2] / "drivers" / "reliable-signaler-sdk"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    sim = Simulator(clock=LoopClock(timescale=0.01), dialect="reliable-signaler")
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


def records(body: str) -> list[str]:
    """An Engine.IO v3 polling body -> its packets (ASCII here, so lengths are characters)."""
    out = []
    while body:
        size, _, rest = body.partition(":")
        out.append(rest[: int(size)])
        body = rest[int(size) :]
    return out


def payload(*packets: str) -> str:
    return "".join(f"{len(p)}:{p}" for p in packets)


class Poller:
    """One Engine.IO v3 long-polling client, by hand."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http = http
        self.base = base
        self.url = ""
        self.inbox: list[str] = []

    async def open(self, token: str | None = None) -> list[str]:
        url = self.base + "socket.io/?EIO=3&transport=polling&b64=1"
        if token:
            url += f"&token={token}"
        async with self.http.get(url) as r:
            first = records(await r.text())
        sid = json.loads(first[0][1:])["sid"]
        self.url = f"{url}&sid={sid}"
        self.inbox.extend(p for p in first[1:] if p[0] == "4")
        return first

    async def send(self, *packets: str) -> int:
        async with self.http.post(self.url, data=payload(*packets)) as r:
            return r.status

    async def next(self) -> str:
        """The next Engine.IO message packet (``4...``) the server sent."""
        while not self.inbox:
            async with self.http.get(self.url) as r:
                self.inbox.extend(p for p in records(await r.text()) if p[0] == "4")
        return self.inbox.pop(0)


async def test_v3_connects_unasked_and_keeps_answers_and_broadcasts(sim: Simulator) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(DEADLINE)) as http:
        owner, asker, bystander = (Poller(http, sim.url) for _ in range(3))
        first = await owner.open(token="alice")
        # socket.io 2: the default namespace's CONNECT comes with the handshake, unasked
        assert first[0][0] == "0" and first[1:] == ["40"]
        await asker.open()
        await bystander.open()
        for p in (owner, asker, bystander):
            assert await p.next() == "40"
        # asked before it exists: the ack waits (the real server polls every second)
        assert await asker.send('421["get-session-info","room-1"]') == 200
        assert await owner.send('420["keep-in-server","room-1"]') == 200
        assert await owner.next() == "430[]"
        assert await asker.next() == '431["room-1"]'
        # asked once it exists: answered at once, with the room id as kept
        assert await bystander.send('427["get-session-info","room-1"]') == 200
        assert await bystander.next() == '437["room-1"]'
        # `message` goes to every other client, the sender hears nothing
        body = {"sender": "x", "channel": "room-1", "message": {"sdp": 1}}
        assert await owner.send("42" + json.dumps(["message", body])) == 200
        for p in (asker, bystander):
            assert json.loads((await p.next())[2:]) == ["message", body]
        room = sim.core.rooms["room-1"]
        assert {m.permanent_id for m in room.members.values()} >= {"alice"}
        assert len(room.members) == 3  # the keeper and the two who asked for it
        # the keeper leaves: the room is gone, a new ask waits again
        assert await owner.send("41") == 200
        assert await asker.send('422["get-session-info","room-1"]') == 200
        assert await bystander.send('42["message","still here"]') == 200
        assert await asker.next() == '42["message","still here"]'  # not the ack: it waits
        assert sim.dialect.listed("room-1") is None  # type: ignore[attr-defined]


def _frames(sim: Simulator, conn: str | None = None) -> list[tuple[str, str, str]]:
    """(direction, connection, text) of every frame recorded, in transcript order."""
    return [
        (r["dir"], r["conn"], r["text"])
        for r in sim.core.transcript.records
        if r["kind"] == "frame" and (conn is None or r["conn"] == conn)
    ]


async def test_a_waiting_ask_is_answered_after_the_keep_that_wakes_it(sim: Simulator) -> None:
    """The transcript shows the cause first: keep-in-server in, then the asker's ack out."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(DEADLINE)) as http:
        owner, asker = Poller(http, sim.url), Poller(http, sim.url)
        await owner.open(token="alice")
        await asker.open(token="bob")
        for p in (owner, asker):
            assert await p.next() == "40"
        assert await asker.send('425["get-session-info","r1"]') == 200
        await sim.core.transcript.wait_for(
            lambda r: r["kind"] == "frame" and r.get("type") == "get-session-info", DEADLINE
        )
        assert await owner.send('426["keep-in-server","r1"]') == 200
        assert await asker.next() == '435["r1"]'
        order = [f for f in _frames(sim) if f[2] in ('26["keep-in-server","r1"]', '35["r1"]')]
        assert order == [("in", "c1", '26["keep-in-server","r1"]'), ("out", "c2", '35["r1"]')]


async def test_a_socket_that_asked_and_then_keeps_the_room_is_answered(sim: Simulator) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(DEADLINE)) as http:
        solo = Poller(http, sim.url)
        await solo.open(token="alice")
        assert await solo.next() == "40"
        assert await solo.send('421["get-session-info",9]', '422["keep-in-server",9]') == 200
        assert {await solo.next(), await solo.next()} == {"432[]", "431[9]"}


async def test_two_sockets_of_one_user_are_two_members(sim: Simulator) -> None:
    """The core would take a user's second socket for the first one reconnecting (same
    permanent id) and move the membership: the real server keeps both sockets apart."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(DEADLINE)) as http:
        laptop, phone, bob = (Poller(http, sim.url) for _ in range(3))
        await laptop.open(token="alice")
        await phone.open(token="alice")
        await bob.open(token="bob")
        for p in (laptop, phone, bob):
            assert await p.next() == "40"
        assert await phone.send('421["get-session-info","r"]') == 200  # waits, as alice
        assert await laptop.send('422["keep-in-server","r"]') == 200  # alice again
        assert await laptop.next() == "432[]"
        assert await phone.next() == '431["r"]'
        room = sim.core.rooms["r"]
        assert sorted(room.members) == ["c1", "c2"]
        assert sorted(m.permanent_id for m in room.members.values()) == ["alice", "alice#c1"]
        # the phone goes: the laptop kept the room, so it is still listed
        assert await phone.send("41") == 200
        assert await bob.send('423["get-session-info","r"]') == 200
        assert await bob.next() == '433["r"]'
        assert sorted(sim.core.rooms["r"].members) == ["c1", "c3"]


async def test_v3_bad_input_is_answered_and_the_bystander_keeps_working(sim: Simulator) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(DEADLINE)) as http:
        bad, bystander = Poller(http, sim.url), Poller(http, sim.url)
        await bad.open()
        await bystander.open()
        assert await bystander.next() == "40"
        cases = [
            ("42[]", "an EVENT's payload must be a JSON array", "invalid_packet"),
            ("42{not json", "not JSON", "invalid_packet"),
            ('42["nonsense",1]', "unknown event 'nonsense'", "unknown_type"),
            ('42["get-session-info","r"]', "needs an acknowledgement", "invalid_message"),
            ('423["keep-in-server",{"a":1}]', "got a JSON dict", "invalid_message"),
            ('424["keep-in-server",""]', "non-empty string or a number", "invalid_message"),
        ]
        for packet, words, code in cases:
            assert await bad.send(packet) == 200
            seen = await bad.next()
            while seen == "40":
                seen = await bad.next()
            name, err = json.loads(seen[2:])
            assert name == "squall-error" and words in err["error"], (packet, err)
            assert err["code"] == code
        # a namespace this server has not: socket.io 2's ERROR packet
        assert await bad.send("40/other") == 200
        assert await bad.next() == '44/other,"Invalid namespace"'
        # keep-session (signaler.js on reconnect) has no handler: dropped without an answer
        assert await bad.send('42["keep-session","r"]', '42["message","after"]') == 200
        assert await bystander.next() == '42["message","after"]'
        assert sim.core.connections["c1"].closed is False


async def test_v4_python_socketio_client(sim: Simulator) -> None:
    """python-socketio 5 speaks only Engine.IO v4: the same events, Socket.IO v5 packets."""
    owner, asker = socketio.AsyncClient(), socketio.AsyncClient()
    heard: asyncio.Queue[Any] = asyncio.Queue()
    owner.on("message", heard.put_nowait)
    try:
        await owner.connect(sim.url, auth={"token": "alice"}, wait_timeout=DEADLINE)
        await asker.connect(sim.url, wait_timeout=DEADLINE)
        asked = asyncio.ensure_future(asker.call("get-session-info", 7, timeout=DEADLINE))
        await sim.core.transcript.wait_for(
            lambda r: r["kind"] == "frame" and r.get("type") == "get-session-info", DEADLINE
        )
        assert not asked.done()
        assert await owner.call("keep-in-server", 7, timeout=DEADLINE) is None
        assert await asked == 7  # the value as kept: a number stays a number
        await asker.emit("message", {"channel": "7", "message": "hi"})
        assert await asyncio.wait_for(heard.get(), DEADLINE) == {"channel": "7", "message": "hi"}
        assert sim.core.sessions[sim.core.connections["c1"].session.id].user == "alice"  # type: ignore[union-attr]
    finally:
        await owner.disconnect()
        await asker.disconnect()


class SdkDriver:
    """One node driver of the real signaler.js."""

    def __init__(self, proc: asyncio.subprocess.Process, name: str) -> None:
        self.proc = proc
        self.name = name
        self.ids = 0
        self.events: list[dict[str, Any]] = []

    async def line(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), DEADLINE)
        assert raw, f"{self.name}: the driver exited ({self.proc.returncode})"
        return json.loads(raw)  # type: ignore[no-any-return]

    async def cmd(self, cmd: str, **args: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.ids += 1
        me = self.ids
        self.proc.stdin.write((json.dumps({"id": me, "cmd": cmd, "args": args}) + "\n").encode())
        await self.proc.stdin.drain()
        while True:
            msg = await self.line()
            if msg.get("reply") == me:
                return msg
            self.events.append(msg)

    async def event(self, name: str) -> dict[str, Any]:
        for seen in self.events:
            if seen.get("event") == name:
                self.events.remove(seen)
                return seen
        while True:
            msg = await self.line()
            if msg.get("event") == name:
                return msg
            self.events.append(msg)


async def start_driver(name: str) -> SdkDriver:
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(DRIVER_DIR / "driver.js"),
        "--timescale",
        "0.01",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    driver = SdkDriver(proc, name)
    assert (await driver.line())["event"] == "driver_ready"
    return driver


async def test_real_signaler_js_rooms_messages_and_room_deleted(sim: Simulator) -> None:
    needs.node()
    if not (DRIVER_DIR / "node_modules" / "reliable-signaler").is_dir():
        needs.unavailable(f"run npm ci in {DRIVER_DIR}")
    alice, bob = await start_driver("alice"), await start_driver("bob")
    try:
        for d in (alice, bob):
            reply = await d.cmd("connect", url=sim.url, token=d.name)
            assert reply["ok"] and reply["result"]["status"] == "connected", reply
        opens = [r for r in sim.core.transcript.records if r["kind"] == "open"]
        assert all("EIO=3" in r["path"] and "token=***" in r["path"] for r in opens), opens
        # bob asks first: getRoomFromServer's callback waits for alice's room
        asking = asyncio.ensure_future(bob.cmd("join_room", room="lobby"))
        await sim.core.transcript.wait_for(
            lambda r: r["kind"] == "frame" and r.get("type") == "get-session-info", DEADLINE
        )
        created = await alice.cmd("join_room", room="lobby", create=True)
        assert created["ok"], created
        joined = await asking
        assert joined["ok"] and joined["result"]["room"] == "lobby", joined
        # openSignalingChannel: messages routed by channel, both ways
        assert (await alice.cmd("send_message", room="lobby", message={"sdp": "offer"}))["ok"]
        got = await bob.event("message")
        assert got["data"] == {"channel": "lobby", "message": {"sdp": "offer"}}
        assert (await bob.cmd("send_message", room="lobby", message="answer"))["ok"]
        assert (await alice.event("message"))["data"]["message"] == "answer"
        room = sim.core.rooms["lobby"]
        assert sorted(m.permanent_id for m in room.members.values()) == ["alice", "bob"]
        # alice (the creator) leaves: the room is deleted; asking again waits
        assert (await alice.cmd("quit"))["ok"]
        await sim.core.transcript.wait_for(
            lambda r: r["kind"] == "close" and r["conn"] == "c1", DEADLINE
        )
        assert sim.dialect.listed("lobby") is None  # type: ignore[attr-defined]
        waited = await bob.cmd("get_room", room="lobby", timeout=0.5)
        assert waited["ok"] is False and waited["type"] == "CallTimeout", waited
        sent = [r for r in sim.core.transcript.records if r.get("type") == "keep-session"]
        assert not sent  # alice quit: the driver stops signaler.js from reopening
    finally:
        for d in (alice, bob):
            if d.proc.returncode is None:
                d.proc.stdin.close()  # type: ignore[union-attr]
                await asyncio.wait_for(d.proc.wait(), DEADLINE)


def test_profile_is_registered() -> None:
    from squall.conformance.clients import PROFILES

    profile = PROFILES["reliable-signaler-sdk"]
    assert profile.dialect == "reliable-signaler"
    assert re.search(r"reliable-signaler-sdk/driver\.js$", profile.argv[3])
