"""The rtccafe dialect with real Socket.IO clients, and the same flows against the real server.

Clients are python-socketio 5 ``AsyncClient`` instances over both Engine.IO transports
(long-polling only, WebSocket only, and polling upgraded to WebSocket). The flows marked
``both`` run against squall's ``rtccafe`` dialect and against ``rtc-cafe-signaller-python``
0.2.0 (Flask-SocketIO), started here as a subprocess and stopped by the fixture; where the
two servers differ, the test says so and docs/dialects/rtccafe.md says which is right.
Raw Engine.IO tests speak long-polling by hand with aiohttp to see the exact packets.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
import pytest
import socketio  # type: ignore[import-untyped]

from squall.clock import LoopClock
from squall.simulator import Simulator
from squall.simulator.core import Config
from tests import needs
from tests.rtccafe_server import real_rtccafe_server

NS = "/rtc-cafe"
DEADLINE = 10.0  # real seconds: only ever reached when something is broken
NODE_DIR = Path(__file__).resolve().parents[1] / "node"
TRANSPORTS = {"polling": ["polling"], "websocket": ["websocket"], "upgrade": None}


def csrf_validator(sid: str, event: str, data: Any) -> Any:
    """The validator both servers run: a signal modifier's CSRF token must not be 'bad'."""
    if isinstance(data, dict) and data.get("csrf") == "bad":
        return "bad csrf"
    return None


@pytest.fixture(scope="module")
def real_server() -> Iterator[str]:
    """rtc-cafe-signaller-python 0.2.0 on a free loopback port, for this module's tests."""
    with real_rtccafe_server(csrf=True) as url:
        yield url


@pytest.fixture
async def squall() -> AsyncIterator[Simulator]:
    sim = Simulator(
        clock=LoopClock(timescale=0.01),
        dialect="rtccafe",
        dialect_options={"validator": csrf_validator},
    )
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


class Server(NamedTuple):
    name: str  # squall or real
    url: str


@pytest.fixture(params=["squall", "real"])
def server(request: pytest.FixtureRequest) -> Server:
    """Either server: the flows that take it run against both."""
    if request.param == "real":
        return Server("real", request.getfixturevalue("real_server"))
    sim: Simulator = request.getfixturevalue("squall")
    return Server("squall", sim.url)


class Peer:
    """One RTCCafe client: a python-socketio AsyncClient on /rtc-cafe and what it received."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.inbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    @classmethod
    async def open(cls, url: str, transport: str = "websocket", **options: Any) -> Peer:
        client = socketio.AsyncClient(reconnection=False, **options)
        peer = cls(client)

        async def any_event(event: str, *args: Any) -> None:
            await peer.inbox.put((event, args[0] if len(args) == 1 else list(args)))

        client.on("*", any_event, namespace=NS)
        await client.connect(
            url, namespaces=[NS], transports=TRANSPORTS[transport], wait_timeout=DEADLINE
        )
        return peer

    @property
    def sid(self) -> str:
        sid: str = self.client.get_sid(NS)
        return sid

    async def emit(self, event: str, data: Any) -> None:
        await self.client.emit(event, data, namespace=NS)

    async def call(self, event: str, data: Any) -> Any:
        return await self.client.call(event, data, namespace=NS, timeout=DEADLINE)

    async def next(self, event: str | None = None) -> Any:
        name, data = await asyncio.wait_for(self.inbox.get(), DEADLINE)
        if event is not None:
            assert name == event, f"expected {event!r}, got {name!r} {data!r}"
        return data if event is not None else (name, data)

    async def close(self) -> None:
        await self.client.disconnect()


@pytest.fixture
async def peers() -> AsyncIterator[Any]:
    """``await peers(url, transport)``: clients disconnected when the test ends."""
    opened: list[Peer] = []

    async def _open(url: str, transport: str = "websocket", **options: Any) -> Peer:
        peer = await Peer.open(url, transport, **options)
        opened.append(peer)
        return peer

    yield _open
    await asyncio.gather(*(p.close() for p in opened), return_exceptions=True)


async def joined_pair(peers: Any, url: str, room: str, transport: str = "websocket") -> Any:
    """Alice joins, then Bob: Alice hears ``acquire-peers``, Bob the response."""
    alice = await peers(url, transport)
    bob = await peers(url, transport)
    # an ack orders the joins: Bob's acquire-peers reaches Alice only if she is in already
    assert await alice.call("join", {"room": room, "id": "alice"}) is None
    await bob.emit("join", {"room": room, "id": "bob"})
    assert await alice.next("acquire-peers") == {"id": "bob", "sid": bob.sid, "prevSid": None}
    await alice.emit("acquire-peers-response", {"room": room, "recipient": bob.sid, "id": "alice"})
    assert await bob.next("acquire-peers-response") == {
        "id": "alice",
        "sid": alice.sid,
        "prevSid": None,
    }
    return alice, bob


# --- the signalling flows, on both servers -------------------------------------------------------


@pytest.mark.parametrize("transport", ["polling", "websocket", "upgrade"])
async def test_request_sid_answers_the_namespace_sid(
    server: Server, peers: Any, transport: str
) -> None:
    peer = await peers(server.url, transport)
    assert await peer.call("request-sid", {}) is None  # acknowledged with no arguments
    assert await peer.next("sid") == {"sid": peer.sid}


@pytest.mark.parametrize("transport", ["polling", "websocket"])
async def test_offer_answer_candidate_go_to_the_recipient_only(
    server: Server, peers: Any, transport: str
) -> None:
    alice, bob = await joined_pair(peers, server.url, f"signals-{transport}", transport)
    carol = await peers(server.url, transport)  # a bystander in another room hears nothing
    await carol.call("join", {"room": f"other-{transport}", "id": "carol"})
    await bob.emit("offer", {"recipient": alice.sid, "sdp": "v=0 offer"})
    assert await alice.next("offer") == {
        "id": None,
        "sid": bob.sid,
        "recipient": alice.sid,
        "sdp": "v=0 offer",
    }
    await alice.emit("answer", {"recipient": bob.sid, "id": "alice", "sdp": "v=0 answer"})
    assert await bob.next("answer") == {
        "id": "alice",
        "sid": alice.sid,
        "recipient": bob.sid,
        "sdp": "v=0 answer",
    }
    await alice.emit("candidate", {"recipient": bob.sid, "candidate": {"sdpMid": "0"}})
    assert (await bob.next("candidate"))["candidate"] == {"sdpMid": "0"}
    await carol.call("request-sid", {})
    assert await carol.next() == ("sid", {"sid": carol.sid})  # nothing came before it


async def test_the_senders_own_sid_key_wins_as_in_the_real_server(
    server: Server, peers: Any
) -> None:
    """``{"id": ..., "sid": request.sid, **data}``: a ``sid`` in the data replaces the sender's."""
    alice, bob = await joined_pair(peers, server.url, "spoof")
    await bob.emit("offer", {"recipient": alice.sid, "sid": "forged"})
    assert (await alice.next("offer"))["sid"] == "forged"


async def test_binary_attachments_cross_both_ways(server: Server, peers: Any) -> None:
    alice, bob = await joined_pair(peers, server.url, "binary")
    blob = bytes(range(256)) * 4
    await bob.emit("candidate", {"recipient": alice.sid, "blob": blob, "n": 1})
    got = await alice.next("candidate")
    assert (got["blob"], got["n"], got["sid"]) == (blob, 1, bob.sid)


async def test_a_peer_gone_is_a_peer_disconnection_to_its_rooms(server: Server, peers: Any) -> None:
    alice, bob = await joined_pair(peers, server.url, "gone")
    gone = bob.sid
    await bob.close()
    assert await alice.next("peer-disconnection") == {"sid": gone}


async def test_a_reconnect_re_keys_with_prev_sid(server: Server, peers: Any) -> None:
    alice, bob = await joined_pair(peers, server.url, "rekey")
    old = bob.sid
    await bob.close()
    assert await alice.next("peer-disconnection") == {"sid": old}
    again = await peers(server.url)
    assert again.sid != old
    await again.emit("join", {"room": "rekey", "id": "bob", "prevSid": old})
    assert await alice.next("acquire-peers") == {"id": "bob", "sid": again.sid, "prevSid": old}


async def test_the_validator_answers_error_and_drops_the_event(server: Server, peers: Any) -> None:
    alice, bob = await joined_pair(peers, server.url, "validated")
    assert await bob.call("offer", {"recipient": alice.sid, "csrf": "bad"}) is None
    assert await bob.next("error") == {"error": "bad csrf", "originalMessage": "offer"}
    await bob.emit("offer", {"recipient": alice.sid, "csrf": "good"})
    assert (await alice.next("offer"))["csrf"] == "good"  # the dropped one never came


async def test_an_unknown_namespace_is_refused_as_python_socketio_does(server: Server) -> None:
    async with aiohttp.ClientSession() as http:
        poll = RawPolling(http, server.url)
        await poll.open()
        await poll.send("0/nope,")
        assert await poll.receive() == ['4/nope,"Unable to connect"']
        await poll.send("0")  # the default namespace is admitted, and serves nothing
        [default] = await poll.receive()
        assert default.startswith('0{"sid":"')


@pytest.fixture(scope="session")
def node_client() -> Path:
    """tests/node's socket.io-client 4.8.1, installed from its lock file when missing."""
    needs.node()
    if not (NODE_DIR / "node_modules" / "socket.io-client").is_dir():
        npm = shutil.which("npm") or "npm"
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            pytest.fail(f"npm ci failed in {NODE_DIR}:\n{done.stderr}")
    return NODE_DIR / "rtccafe_client.js"


async def run_node_client(script: Path, url: str, transport: str, major: str) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(script),
        url,
        transport,
        major,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 3 * DEADLINE)
    lines = out.decode().strip().splitlines()
    assert lines, f"node wrote nothing (exit {proc.returncode}): {err.decode()[-2000:]}"
    report: dict[str, Any] = json.loads(lines[-1])
    assert (proc.returncode, report["error"]) == (0, None), err.decode()[-2000:]
    return report


def check_flows(report: dict[str, Any]) -> dict[str, Any]:
    """The events of rtccafe_client.js's flows, in order; returns who had which sid."""
    seen = [(e["who"], e["event"], e["data"]) for e in report["seen"]]
    ids = seen[-1][2]
    alice, bob, again = (ids[name]["sid"] for name in ("alice", "bob", "again"))
    assert seen[:-1] == [
        ("alice", "acquire-peers", {"id": "bob", "sid": bob, "prevSid": None}),
        ("bob", "acquire-peers-response", {"id": "alice", "sid": alice, "prevSid": None}),
        ("alice", "offer", {"id": None, "sid": bob, "recipient": alice, "blob": "0001feff"}),
        ("alice", "peer-disconnection", {"sid": bob}),
        ("alice", "acquire-peers", {"id": "bob", "sid": again, "prevSid": bob}),
    ]
    assert all(who["ack"] is None for who in ids.values())  # request-sid acked with no data
    return ids  # type: ignore[no-any-return]


@pytest.mark.parametrize("transport", ["polling", "websocket", "upgrade"])
async def test_socket_io_client_4_runs_the_flows(
    server: Server, node_client: Path, transport: str
) -> None:
    """The real socket.io-client 4.8.1: request-sid with an ack, join, the response, a
    binary offer, a disconnection and a re-keyed join, in one node process."""
    ids = check_flows(await run_node_client(node_client, server.url, transport, "4"))
    assert all(who["id"] == who["sid"] for who in ids.values())  # Socket.IO 5: one sid


@pytest.mark.parametrize("transport", ["polling", "websocket", "upgrade"])
async def test_socket_io_client_2_runs_the_flows_over_engine_io_3(
    squall: Simulator, node_client: Path, transport: str
) -> None:
    """socket.io-client 2.5.0 (EIO=3) on squall's own v3 layer, the same flows."""
    ids = check_flows(await run_node_client(node_client, squall.url, transport, "2"))
    assert all(who["id"].startswith("/rtc-cafe#") for who in ids.values())  # its own idea
    opens = [r for r in squall.core.transcript.since(0) if r["kind"] == "open"]
    assert opens and all("EIO=3" in r["path"] for r in opens)


async def test_the_real_server_refuses_engine_io_3(real_server: str) -> None:
    async with aiohttp.ClientSession() as http:
        url = real_server + "socket.io/?EIO=3&transport=polling&b64=1"
        async with http.get(url) as refused:
            assert refused.status == 400
            assert "unsupported version" in await refused.text()


# --- where the two servers differ ----------------------------------------------------------------


async def test_a_signal_to_a_peer_in_no_shared_room(server: Server, peers: Any) -> None:
    """The real server routes by sid alone; squall's core relays inside a room, and says so."""
    alice = await peers(server.url)
    bob = await peers(server.url)
    await bob.emit("offer", {"recipient": alice.sid, "sdp": "roomless"})
    if server.name == "squall":
        assert (await bob.next("error"))["error"] == f"no peer {alice.sid!r} shares a room with you"
    else:
        assert (await alice.next("offer"))["sdp"] == "roomless"


async def test_bad_input_is_answered_and_a_bystander_is_untouched(
    squall: Simulator, peers: Any
) -> None:
    """The real server drops these in silence (next test); squall says what was wrong."""
    alice, bob = await joined_pair(peers, squall.url, "bad")
    await bob.emit("dance", {"x": 1})
    assert await bob.next("error") == {
        "error": "unknown event 'dance' in /rtc-cafe",
        "originalMessage": "dance",
    }
    await bob.emit("join", "lobby")
    assert await bob.next("error") == {
        "error": "'join' takes one object argument, got a JSON str",
        "originalMessage": "join",
    }
    await bob.emit("offer", {"sdp": "no recipient"})
    assert (await bob.next("error"))["error"] == "'offer' needs a 'recipient' (the peer's sid)"
    await bob.emit("offer", {"recipient": "c999"})
    assert (await bob.next("error"))["error"] == "no peer 'c999' shares a room with you"
    await bob.emit("join", {"room": "bad", "id": "bob"})
    assert await bob.next("error") == {"error": "already in room 'bad'", "originalMessage": "join"}
    await bob.emit("offer", {"recipient": alice.sid, "sdp": "still works"})
    assert (await alice.next("offer"))["sdp"] == "still works"
    await alice.call("request-sid", {})
    assert await alice.next() == ("sid", {"sid": alice.sid})  # no error reached the bystander
    bad = [
        r
        for r in squall.core.transcript.since(0)
        if r["kind"] == "frame" and r["op"] == "bad_input"
    ]
    assert [r["type"] for r in bad] == ["dance", "join", "offer", "offer"]


async def test_required_fields_check_what_a_signal_modifier_adds(peers: Any) -> None:
    options = {"required_fields": {"csrf": "t0ken"}}
    async with Simulator(dialect="rtccafe", dialect_options=options) as sim:
        peer = await peers(sim.url)
        await peer.emit("join", {"room": "r"})
        assert await peer.next("error") == {
            "error": "missing or wrong 'csrf'",
            "originalMessage": "join",
        }
        assert await peer.call("join", {"room": "r", "csrf": "t0ken"}) is None
        assert [m["sid"] for m in sim.rooms()["r"]["members"]] == [peer.sid]


async def test_an_oversized_poll_ends_that_connection_only(peers: Any) -> None:
    async with Simulator(dialect="rtccafe", config=Config(max_message_size=2000)) as sim:
        alice, bob = await joined_pair(peers, sim.url, "big")
        async with aiohttp.ClientSession() as http:
            poll = RawPolling(http, sim.url)
            await poll.open()
            await poll.send("0/rtc-cafe,")
            [connected] = await poll.receive()
            sid = json.loads(connected.split(",", 1)[1])["sid"]
            await poll.send(f'2/rtc-cafe,["join",{{"room":"big","id":"{sid}"}}]')
            for peer in (alice, bob):
                assert await peer.next("acquire-peers") == {"id": sid, "sid": sid, "prevSid": None}
            status = await poll.send('2/rtc-cafe,["offer",' + "x" * 3000 + "]", check=False)
            assert status == 400
        assert await alice.next("peer-disconnection") == {"sid": sid}
        assert (await bob.next("peer-disconnection")) == {"sid": sid}
        closing = await sim.core.transcript.wait_for(
            lambda r: r["kind"] == "closing" and r["conn"] == sid, DEADLINE
        )
        assert closing["why"] == "too_big"
        assert closing["reason"] == "a long-polling body of 3022 bytes is over the 2000-byte limit"
        await alice.emit("offer", {"recipient": bob.sid, "sdp": "after"})
        assert (await bob.next("offer"))["sdp"] == "after"


async def test_an_oversized_websocket_message_ends_that_connection_only(peers: Any) -> None:
    async with Simulator(dialect="rtccafe", config=Config(max_message_size=2000)) as sim:
        alice, bob = await joined_pair(peers, sim.url, "big-ws")
        gone = bob.sid
        await bob.emit("offer", {"recipient": alice.sid, "sdp": "x" * 3000})
        assert await alice.next("peer-disconnection") == {"sid": gone}
        carol = await peers(sim.url)
        await carol.call("request-sid", {})
        assert await carol.next("sid") == {"sid": carol.sid}


async def test_the_real_server_drops_bad_input_in_silence(real_server: Server, peers: Any) -> None:
    peer = await peers(real_server)
    await peer.emit("dance", {"x": 1})
    await peer.emit("join", "lobby")
    await peer.call("request-sid", {})
    assert await peer.next() == ("sid", {"sid": peer.sid})  # no error came before it


async def test_answer_errors_off_is_as_silent_as_the_real_server(peers: Any) -> None:
    async with Simulator(dialect="rtccafe", dialect_options={"answer_errors": False}) as sim:
        peer = await peers(sim.url)
        await peer.emit("dance", {"x": 1})
        await peer.emit("offer", {"recipient": "c999"})
        await peer.call("request-sid", {})
        assert await peer.next() == ("sid", {"sid": peer.sid})


async def test_a_malformed_packet_is_answered_on_that_session_only(squall: Simulator) -> None:
    async with aiohttp.ClientSession() as http:
        poll = RawPolling(http, squall.url)
        await poll.open()
        await poll.send("0/rtc-cafe,")
        [connected] = await poll.receive()
        sid = json.loads(connected.split(",", 1)[1])["sid"]
        await poll.send('2/rtc-cafe,["join"')
        [error] = await poll.receive()
        assert error.startswith('2/rtc-cafe,["error",{"error":"the packet\'s payload is not JSON')
        await poll.send('2/rtc-cafe,1["request-sid",{}]')
        assert await poll.receive() == [f'2/rtc-cafe,["sid",{{"sid":"{sid}"}}]', "3/rtc-cafe,1[]"]


async def test_a_malformed_engine_io_body_is_a_clear_400(squall: Simulator, peers: Any) -> None:
    """python-engineio answers 200 and logs a traceback; squall says what was wrong."""
    bystander = await peers(squall.url)
    async with aiohttp.ClientSession() as http:
        poll = RawPolling(http, squall.url)
        await poll.open()
        url = f"{poll.base}&sid={poll.sid}"
        async with http.post(url, data=b"x") as r:
            assert r.status == 400
            assert await r.text() == (
                "bad long-polling body: packet 0 has unknown type 'x' (expected 0 to 6)\n"
            )
        async with http.post(url, data=b"4\xff") as r:  # that session is over
            assert (r.status, await r.json()) == (400, f"Invalid session {poll.sid}")
    closing = await squall.core.transcript.wait_for(lambda r: r["kind"] == "closing", DEADLINE)
    assert closing["why"] == "bad_frame"
    await bystander.call("request-sid", {})
    assert await bystander.next("sid") == {"sid": bystander.sid}


# --- the transport: refusals, drops, pings, the transcript ---------------------------------------


async def test_every_event_is_a_frame_named_by_its_event(squall: Simulator, peers: Any) -> None:
    alice, bob = await joined_pair(peers, squall.url, "transcript")
    frames = [r for r in squall.core.transcript.since(0) if r["kind"] == "frame"]
    seen = {(r["dir"], r["type"], r["op"]) for r in frames}
    assert {
        ("in", "connect", "authenticate"),
        ("out", "connect", "authenticated"),
        ("in", "join", "join"),
        ("out", "acquire-peers", "peer_joined"),
        ("in", "acquire-peers-response", "relay"),
        ("out", "acquire-peers-response", "relayed"),
        ("out", "ack", "local"),
    } <= seen
    join = next(r for r in frames if r["type"] == "join" and r["dir"] == "in")
    assert join["text"] == '2/rtc-cafe,1["join",{"room":"transcript","id":"alice"}]'
    rooms = squall.rooms()
    members = {m["permanent_id"]: m["sid"] for m in rooms["transcript"]["members"]}
    assert members == {"alice": alice.sid, "bob": bob.sid}


async def test_a_drop_reconnects_and_the_core_re_keys_the_member(
    squall: Simulator, peers: Any
) -> None:
    alice, bob = await joined_pair(peers, squall.url, "drop")
    old = bob.sid
    reconnected = asyncio.Event()
    bob.client.reconnection = True
    bob.client.reconnection_delay = bob.client.reconnection_delay_max = 0.05
    bob.client.on("connect", reconnected.set, namespace=NS)
    squall.drop(old)  # no code: the TCP connection is cut
    assert await alice.next("peer-disconnection") == {"sid": old}
    await asyncio.wait_for(reconnected.wait(), DEADLINE)
    await bob.emit("join", {"room": "drop", "id": "bob", "prevSid": old})
    assert await alice.next("acquire-peers") == {"id": "bob", "sid": bob.sid, "prevSid": old}
    record = await squall.core.transcript.wait_for(
        lambda r: r["kind"] == "room" and r.get("event") == "reassigned", DEADLINE
    )
    assert (record["old_sid"], record["sid"]) == (old, bob.sid)


async def test_the_control_plane_sends_raw_packets_and_silences(
    squall: Simulator, peers: Any
) -> None:
    alice, bob = await joined_pair(peers, squall.url, "control")
    squall.send(bob.sid, '2/rtc-cafe,["acquire-peers",{"id":"ghost","sid":"c0","prevSid":null}]')
    assert await bob.next("acquire-peers") == {"id": "ghost", "sid": "c0", "prevSid": None}
    squall.silence(bob.sid)
    await alice.emit("offer", {"recipient": bob.sid, "sdp": "withheld"})
    withheld = await squall.core.transcript.wait_for(
        lambda r: r["kind"] == "withheld" and r["type"] == "offer", DEADLINE
    )
    assert withheld["conn"] == bob.sid
    squall.silence(bob.sid, False)
    await alice.emit("offer", {"recipient": bob.sid, "sdp": "heard"})
    assert (await bob.next("offer"))["sdp"] == "heard"  # the withheld one never came


async def test_refuse_connections_refuses_the_engine_io_handshake(squall: Simulator) -> None:
    squall.refuse_connections(1, 503)
    async with aiohttp.ClientSession() as http:
        url = squall.url + "socket.io/?EIO=4&transport=polling"
        async with http.get(url) as refused:
            assert refused.status == 503
        async with http.get(url) as admitted:
            assert admitted.status == 200
            assert (await admitted.text()).startswith('0{"sid":')


async def test_engine_io_pings_and_the_client_answers() -> None:
    options = {"ping_interval": 1}
    async with (
        Simulator(dialect="rtccafe", dialect_options=options) as sim,
        aiohttp.ClientSession() as http,
    ):
        poll = RawPolling(http, sim.url)
        handshake = await poll.open()
        assert handshake["pingInterval"] == 1000
        assert await poll.receive(engine=True) == ["2"]  # a ping, one interval later
        await poll.send("3", engine=True)
        await poll.send("0/rtc-cafe,")
        [connected] = await poll.receive()
        assert connected.startswith('0/rtc-cafe,{"sid":"c')


class RawPolling:
    """Engine.IO v4 long-polling by hand: the packets exactly as the server sends them."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http = http
        self.base = url + "socket.io/?EIO=4&transport=polling"
        self.sid = ""

    async def open(self) -> dict[str, Any]:
        async with self.http.get(self.base, timeout=aiohttp.ClientTimeout(DEADLINE)) as r:
            body = await r.text()
        assert body[0] == "0", body
        handshake: dict[str, Any] = json.loads(body[1:])
        self.sid = handshake["sid"]
        return handshake

    async def send(self, packet: str, *, engine: bool = False, check: bool = True) -> int:
        """One Socket.IO packet in an Engine.IO message (``4``), or a raw Engine.IO packet."""
        body = packet if engine else "4" + packet
        async with self.http.post(f"{self.base}&sid={self.sid}", data=body.encode()) as r:
            assert r.status == 200 or not check, await r.text()
            return r.status

    async def receive(self, *, engine: bool = False) -> list[str]:
        """The next poll's packets: Socket.IO packets (the ``4`` stripped), or raw ones."""
        timeout = aiohttp.ClientTimeout(DEADLINE)
        async with self.http.get(f"{self.base}&sid={self.sid}", timeout=timeout) as r:
            assert r.status == 200, await r.text()
            packets = (await r.text()).split("\x1e")
        if engine:
            return packets
        assert all(p.startswith("4") for p in packets), packets
        return [p[1:] for p in packets]


# --- Engine.IO v3 by hand ------------------------------------------------------------------------


def v3_records(body: str) -> list[str]:
    """``<length>:<packet>`` records (ASCII here, so the length is the character count)."""
    out = []
    while body:
        size, _, rest = body.partition(":")
        out.append(rest[: int(size)])
        body = rest[int(size) :]
    return out


async def test_engine_io_3_polling_by_hand() -> None:
    options = {"ping_interval": 1, "ping_timeout": 1}
    async with Simulator(dialect="rtccafe", dialect_options=options) as sim:
        base = sim.url + "socket.io/?EIO=3&transport=polling&b64=1"
        timeout = aiohttp.ClientTimeout(DEADLINE)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            async with http.get(base) as r:
                [opened] = v3_records(await r.text())
            assert opened[0] == "0"
            handshake = json.loads(opened[1:])
            assert (handshake["pingInterval"], handshake["pingTimeout"]) == (1000, 1000)
            assert handshake["upgrades"] == ["websocket"] and "maxPayload" not in handshake
            url = f"{base}&sid={handshake['sid']}"
            async with http.post(url, data="2:2x12:40/rtc-cafe,") as r:  # a ping, a CONNECT
                assert r.status == 200
            async with http.get(url) as r:
                assert v3_records(await r.text()) == ["3x", '40/rtc-cafe,{"sid":"c1"}']
            async with http.post(url, data="9:not-a-len") as r:
                assert r.status == 400
                assert (await r.json())["message"] == "Bad request"
            closing = await sim.core.transcript.wait_for(lambda r: r["kind"] == "closing", DEADLINE)
            assert closing["why"] == "bad_frame"
            async with http.get(url) as r:  # Engine.IO's close packet, then nothing
                assert v3_records(await r.text()) == ["1"]
            async with http.get(url) as r:
                assert (r.status, await r.json()) == (
                    400,
                    {"code": 1, "message": "Session ID unknown"},
                )
            # a session that never pings is closed after pingInterval + pingTimeout
            async with http.get(base) as r:
                quiet = json.loads(v3_records(await r.text())[0][1:])["sid"]
            gone = await sim.core.transcript.wait_for(
                lambda r: r["kind"] == "close" and r["reason"] == "ping timeout", DEADLINE
            )
            assert gone["conn"] == "c2" and quiet
