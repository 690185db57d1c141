"""One idiom for time: squall reads and waits on time through the injected clock.

:func:`scan` walks every module under squall/ with ``ast`` and reports each direct time
read or wait: ``time.monotonic()`` and friends, ``loop.time()``, ``asyncio.sleep`` (not
``sleep(0)``, a yield), ``asyncio.wait_for`` / ``timeout`` / ``wait(timeout=)``,
``call_later`` / ``call_at`` on anything but a clock, and ``datetime.now()``.
squall/clock.py is the one place allowed to. Every other finding must be listed below
with its reason: :data:`REAL_TIME` (it must stay real time, and why), or
:data:`NOT_YET_ROUTED` (code owned by other work that should go through the clock,
and how). A new direct read fails the test; so does an entry that no longer matches.

The behavioural tests show the routed code follows a compressed clock
(``LoopClock(0.01)``): the toxics that wait on their input (``timeout``,
``limit_time``, through ``Stub.recv_within``), the media tracks' pacing, event
timestamps and waits, and probe timeouts. They never sleep: they await the event, and
check the protocol time that passed against the real time it took.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import functools
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from squall.clock import LoopClock, wait_for
from squall.faults import FaultEvent, ProxyServer
from squall.media.events import Events
from squall.media.probe import TrackProbe
from squall.media.tracks import AUDIO_PTIME, IndexedVideoTrack, ToneAudioTrack

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "squall"
EXEMPT = {"squall/clock.py"}  # the one module that talks to the event loop's time

Key = tuple[str, str, str]  # (path, enclosing function's qualified name, what it calls)

REAL_TIME: dict[Key, str] = {
    # squall/crowd: setting a crowd up and tearing it down are guarded in real seconds (the
    # docstrings say so); the storm under test runs on the cores' own clock
    ("squall/crowd/crowd.py", "Crowd.start", "loop.time"): (
        "start(timeout=) is a real-second guard on opening thousands of sockets"
    ),
    ("squall/crowd/crowd.py", "Crowd.wait_ready", "asyncio.wait_for"): (
        "wait_ready(timeout) is real seconds: a guard, not a protocol duration"
    ),
    ("squall/crowd/crowd.py", "Crowd._wait_change", "loop.time"): (
        "the deadline start() computed in real seconds"
    ),
    ("squall/crowd/crowd.py", "Crowd._wait_change", "asyncio.wait_for"): (
        "re-checks the crowd's counts at least every half real second until that deadline"
    ),
    ("squall/crowd/crowd.py", "Crowd.close", "asyncio.wait"): (
        "teardown waits a bounded number of real seconds for sockets to end"
    ),
    # squall/simulator/dialects/genesys_softphone.py: aiortc negotiates on the wall clock
    ("squall/simulator/dialects/genesys_softphone.py", "CallMedia.offer", "asyncio.wait_for"): (
        "aiortc's ICE gathering runs on the wall clock whatever the simulator's timescale"
    ),
    ("squall/simulator/dialects/genesys_softphone.py", "CallMedia.accept", "asyncio.wait_for"): (
        "waits for the client's candidates and aiortc's connection, both on the wall clock"
    ),
    # squall/faults
    ("squall/faults/api.py", "_guarded", "asyncio.wait"): (
        "Go's 25 s TimeoutHandler guards an HTTP request in real seconds, not a toxic's time"
    ),
    # squall/media
    ("squall/media/member.py", "RoomMember._negotiation_loop", "asyncio.wait_for"): (
        "ANSWER_TIMEOUT guards aiortc and the remote peer, which negotiate on the wall clock"
    ),
    ("squall/media/member.py", "_until_connected", "asyncio.wait_for"): (
        "aiortc's ICE and DTLS connect on the wall clock whatever the media clock"
    ),
    # squall/client/webrtc
    ("squall/client/webrtc/signalling.py", "WireSignalling.connect", "asyncio.wait_for"): (
        "the thin wire adapter has no clock: a real-second guard on a socket's auth"
    ),
    ("squall/client/webrtc/signalling.py", "WireSignalling.request", "asyncio.wait_for"): (
        "a real-second guard on a server's answer over a real socket"
    ),
    ("squall/client/webrtc/signalling.py", "WireSignalling.rejoin", "asyncio.sleep"): (
        "a real pause between socket attempts (the adapter does no backoff, by design)"
    ),
    # squall/chaos
    ("squall/chaos/__main__.py", "soak_many", "time.perf_counter"): (
        "the wall time a soak took, reported as such"
    ),
    ("squall/chaos/soak.py", "play", "time.perf_counter"): "the wall time of one play, reported",
    ("squall/chaos/soak.py", "Run.until", "loop.time"): (
        "SETUP_DEADLINE / QUIET_DEADLINE are real-second guards against a hang"
    ),
    ("squall/chaos/soak.py", "Run.until", "asyncio.wait_for"): "the same real-second guard",
    ("squall/chaos/soak.py", "Run.run", "loop.time"): "the real-second heal and quiet deadlines",
    ("squall/chaos/soak.py", "Run.run", "asyncio.wait_for"): "SETUP_DEADLINE, a real-second guard",
    (
        "squall/chaos/soak.py",
        "Run.crash_server",
        "asyncio.wait_for",
    ): "SETUP_DEADLINE, a real-second guard",
    (
        "squall/chaos/soak.py",
        "Run.shutdown",
        "asyncio.wait_for",
    ): "SETUP_DEADLINE, a real-second guard",
    ("squall/chaos/soak.py", "Run.start_server", "asyncio.sleep"): (
        "a real pause before binding a port the OS has just released: no event to await"
    ),
    # squall/conformance
    ("squall/conformance/clients.py", "DriverProcess.start", "asyncio.wait"): (
        "a real-second guard on a driver process starting"
    ),
    ("squall/conformance/clients.py", "DriverProcess.stop", "asyncio.wait_for"): (
        "a real-second guard on a driver process exiting"
    ),
    ("squall/conformance/report.py", "run_meta", "datetime.now"): "the calendar date of a report",
    ("squall/conformance/run.py", "_run", "time.perf_counter"): "a run's wall time, reported",
    ("squall/conformance/runner.py", "Run.execute", "time.perf_counter"): "a scenario's wall time",
    ("squall/conformance/context.py", "RunContext.until", "loop.time"): (
        "the deadline is already real: ctx.deadline(within) (scaled, floored, plus grace) or real="
    ),
    ("squall/conformance/context.py", "RunContext.until", "asyncio.wait_for"): (
        "the same real deadline, re-checked every poll (20 ms) for state changed without a record"
    ),
    ("squall/conformance/runner.py", "Run._stop", "asyncio.wait_for"): (
        "a real-second guard on one cleanup"
    ),
    ("squall/conformance/context.py", "RunContext.command", "asyncio.wait_for"): (
        "a real-second guard on a driver's reply (computed from clock.real plus grace)"
    ),
    # squall/simulator
    ("squall/simulator/auth.py", "make_guest_jwt", "time.time"): (
        "JWT iat/exp are epoch seconds (RFC 7519) when the caller passes no now"
    ),
    ("squall/simulator/dialects/ringcentral.py", "RingCentralDialect.wall", "time.time"): (
        "read once: the epoch that turns protocol time into wall-clock timestamps"
    ),
    ("squall/simulator/server.py", "SimulatorConnection.process_event", "loop.call_later"): (
        "fragment_timeout is a transport limit in real seconds (docs/protocol.md §9)"
    ),
    ("squall/simulator/sio/engine3.py", "Session3.alive", "loop.call_later"): (
        "Engine.IO v3's heartbeat deadline is a transport limit in real seconds, as in v4"
    ),
    ("squall/simulator/sio/engine3.py", "Session3.close", "loop.call_later"): (
        "a real-second bound on a close packet no poll fetches (the peer is gone)"
    ),
    ("squall/simulator/sio/engine3.py", "EngineIO3._poll", "asyncio.wait_for"): (
        "a long poll is held pingInterval + pingTimeout real seconds, as engine.io holds it"
    ),
    ("squall/simulator/transcript.py", "Transcript.wait_for", "asyncio.wait_for"): (
        "documented real seconds: guards a test against a broken server"
    ),
    ("squall/simulator/peer.py", "FakePeer.connect", "asyncio.wait_for"): (
        "DEADLINE guards the in-process link in real seconds"
    ),
    (
        "squall/simulator/peer.py",
        "FakePeer._request",
        "asyncio.wait_for",
    ): "DEADLINE, a real-second guard",
    ("squall/simulator/demo.py", "Walk.recv", "asyncio.wait_for"): (
        "a demo's real-second guard against a hung server"
    ),
    ("squall/simulator/demo.py", "smoke", "asyncio.wait_for"): "the same demo guard",
}

NOT_YET_ROUTED: dict[Key, str] = {
    # code owned by other work that should go through the clock, and how (none left)
}

TIME_MODULE_CALLS = {
    "time",
    "monotonic",
    "perf_counter",
    "sleep",
    "time_ns",
    "monotonic_ns",
    "perf_counter_ns",
}
ASYNCIO_DEADLINES = {"wait_for", "timeout", "timeout_at"}
DATETIME_NOW = {
    "datetime.datetime.now",
    "datetime.datetime.utcnow",
    "datetime.now",
    "datetime.utcnow",
    "datetime.date.today",
    "date.today",
}


@dataclass(frozen=True)
class Finding:
    path: str
    scope: str
    kind: str
    line: int

    @property
    def key(self) -> Key:
        return (self.path, self.scope, self.kind)

    def __str__(self) -> str:
        return f"{self.path}:{self.line} in {self.scope}: {self.kind}"


class _Scanner(ast.NodeVisitor):
    """Direct time reads and waits in one module, with the function they are in."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.scope: list[str] = []
        self.aliases: dict[str, str] = {}  # local name -> "time", "asyncio.sleep", ...
        self.found: list[Finding] = []

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name in ("time", "asyncio", "datetime"):
                self.aliases[alias.asname or alias.name] = alias.name

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module in ("time", "asyncio", "datetime") and node.level == 0:
            for alias in node.names:
                self.aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"

    def _scoped(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _scoped

    def _dotted(self, expr: ast.expr) -> str:
        if isinstance(expr, ast.Name):
            return self.aliases.get(expr.id, expr.id)
        if isinstance(expr, ast.Attribute):
            base = self._dotted(expr.value)
            return f"{base}.{expr.attr}" if base else ""
        if isinstance(expr, ast.Call):
            base = self._dotted(expr.func)
            return f"{base}()" if base else ""
        return ""

    def _kind(self, node: ast.Call) -> str | None:
        name = self._dotted(node.func)
        head, _, last = name.rpartition(".")
        if head == "time" and last in TIME_MODULE_CALLS:
            return name
        if name == "asyncio.sleep":
            arg = node.args[0] if node.args else None
            return None if isinstance(arg, ast.Constant) and arg.value == 0 else name
        if head == "asyncio" and last in ASYNCIO_DEADLINES:
            return name
        if name in ("asyncio.wait", "asyncio.as_completed"):
            return name if any(k.arg == "timeout" for k in node.keywords) else None
        if name in DATETIME_NOW:
            return "datetime.now"
        if isinstance(node.func, ast.Attribute):
            attr = node.func.attr
            if attr == "time" and not node.args and not node.keywords:
                return "loop.time"
            if attr in ("call_later", "call_at") and not head.lower().endswith("clock"):
                return f"loop.{attr}"
        return None

    def visit_Call(self, node: ast.Call) -> None:
        kind = self._kind(node)
        if kind is not None:
            scope = ".".join(self.scope) or "<module>"
            self.found.append(Finding(self.path, scope, kind, node.lineno))
        self.generic_visit(node)


def scan_source(source: str, path: str = "<string>") -> list[Finding]:
    scanner = _Scanner(path)
    scanner.visit(ast.parse(source))
    return scanner.found


@functools.cache
def scan(package: Path = PACKAGE) -> tuple[Finding, ...]:
    found: list[Finding] = []
    for file in sorted(package.rglob("*.py")):
        rel = file.relative_to(package.parent).as_posix()
        if rel not in EXEMPT:
            found += scan_source(file.read_text(encoding="utf-8"), rel)
    return tuple(found)


# --- the idiom ------------------------------------------------------------------------------


def test_every_direct_time_read_is_listed_with_its_reason() -> None:
    """A new ``loop.time()``, ``asyncio.sleep`` or hand-scaled wait fails here."""
    listed = REAL_TIME.keys() | NOT_YET_ROUTED.keys()
    unlisted = [str(f) for f in scan() if f.key not in listed]
    assert unlisted == [], (
        "direct time reads or waits outside squall/clock.py: use the injected clock "
        "(clock.now(), clock.sleep(), clock.call_later(), squall.clock.wait_for) or, if it "
        "must be real time, say why in a comment and in REAL_TIME here:\n  " + "\n  ".join(unlisted)
    )


def test_no_allow_list_entry_is_stale() -> None:
    """An entry whose code is gone (or now goes through the clock) is removed, not kept."""
    seen = {f.key for f in scan()}
    stale = sorted(k for k in REAL_TIME.keys() | NOT_YET_ROUTED.keys() if k not in seen)
    assert stale == [], f"allow-list entries that match nothing any more: {stale}"


def test_entries_are_either_real_or_to_route_and_say_why() -> None:
    assert not REAL_TIME.keys() & NOT_YET_ROUTED.keys()
    reasons = [*REAL_TIME.values(), *NOT_YET_ROUTED.values()]
    assert [r for r in reasons if len(r.split()) < 3] == []
    routed = ("squall/faults/", "squall/media/", "squall/client/webrtc/")
    assert not [k for k in NOT_YET_ROUTED if k[0].startswith(routed)]


def test_the_scanner_finds_every_pattern_and_spares_the_clock() -> None:
    """The scan can fail: each pattern it looks for is found, clock calls are not."""
    source = textwrap.dedent(
        """
        import asyncio, datetime, time
        from time import monotonic as mono
        import asyncio as aio

        class Toxic:
            async def pipe(self, loop, clock, fut):
                time.monotonic(); mono(); time.perf_counter(); time.time()
                loop.time(); asyncio.get_running_loop().time()
                await asyncio.sleep(0.5); await aio.wait_for(fut, 1)
                await asyncio.wait({fut}, timeout=1)
                async with asyncio.timeout(1): pass
                loop.call_later(1, print); loop.call_at(1, print)
                datetime.datetime.now()
                # through the clock, or not a wait: none of these is a finding
                await asyncio.sleep(0); await asyncio.wait({fut})
                clock.now(); await clock.sleep(1); clock.call_later(1, print)
                self.clock.call_later(1, print); self.core.clock.call_later(1, print)
                stamp.time(1)
        """
    )
    kinds = [f.kind for f in scan_source(source, "x.py")]
    assert kinds == [
        "time.monotonic",
        "time.monotonic",
        "time.perf_counter",
        "time.time",
        "loop.time",
        "loop.time",
        "asyncio.sleep",
        "asyncio.wait_for",
        "asyncio.wait",
        "asyncio.timeout",
        "loop.call_later",
        "loop.call_at",
        "datetime.now",
    ]
    assert {f.scope for f in scan_source(source, "x.py")} == {"Toxic.pipe"}


# --- the clock's wait_for --------------------------------------------------------------------


async def test_wait_for_counts_clock_seconds() -> None:
    """Ten protocol seconds on a 0.01 clock time out after about 0.1 real s, never 10."""
    clock = LoopClock(0.01)
    loop = asyncio.get_running_loop()
    never: asyncio.Future[None] = loop.create_future()
    real, protocol = loop.time(), clock.now()
    with pytest.raises(TimeoutError):
        await wait_for(clock, never, 10)
    assert clock.now() - protocol >= 10 - 1e-6
    assert loop.time() - real < 10 / 2  # compressed: a tenth of a second, with lots of room
    soon = loop.create_future()
    loop.call_soon(soon.set_result, "done")
    assert await wait_for(clock, soon, 10) == "done"


# --- toxics -----------------------------------------------------------------------------------


async def _echo_upstream() -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def _held_open(toxic: dict[str, object], protocol_seconds: float) -> list[FaultEvent]:
    """Connect through a proxy with ``toxic`` on a 0.01 clock; wait for the proxy to close.

    Asserts the connection lasted at least ``protocol_seconds`` of the clock and far less
    than that in real time; returns the proxy's events.
    """
    clock = LoopClock(0.01)
    loop = asyncio.get_running_loop()
    upstream = await _echo_upstream()
    port = upstream.sockets[0].getsockname()[1]
    events: list[FaultEvent] = []
    try:
        async with ProxyServer(port=0, clock=clock, on_event=events.append) as srv:
            proxy = await srv.collection.create(
                {"name": "t", "listen": "127.0.0.1:0", "upstream": f"127.0.0.1:{port}"}
            )
            await srv.collection.add_toxic("t", toxic)
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", int(proxy.listen.rsplit(":", 1)[1])
            )
            real, protocol = loop.time(), clock.now()
            writer.write(b"hello")
            with contextlib.suppress(ConnectionError):
                # EOF, or a reset: the proxy closed it; 30 real s only if scaling is broken
                await asyncio.wait_for(reader.read(), 30)
            elapsed_protocol, elapsed_real = clock.now() - protocol, loop.time() - real
            writer.close()
    finally:
        upstream.close()
        await upstream.wait_closed()
    assert elapsed_protocol >= protocol_seconds * 0.99
    assert elapsed_real < protocol_seconds / 4  # uncompressed it would take protocol_seconds
    return events


async def test_timeout_toxic_waits_its_input_on_the_clock() -> None:
    """``timeout`` (Stub.recv_within): 20 protocol s of silence close the link in ~0.2 real s."""
    events = await _held_open(
        {"type": "timeout", "stream": "upstream", "attributes": {"timeout": 20_000}}, 20.0
    )
    timeouts = [e for e in events if e.action.endswith("timeout")]
    assert timeouts and timeouts[0].detail.get("after_ms") == 20_000


async def test_limit_time_toxic_cuts_on_the_clock() -> None:
    """``limit_time`` waits its deadline through recv_within too: 30 protocol s, ~0.3 real."""
    events = await _held_open(
        {"type": "limit_time", "stream": "downstream", "attributes": {"time": 30_000}}, 30.0
    )
    connect = next(e.time for e in events if e.action == "connect")
    cut = next(e.time for e in events if e.action.endswith("limit_time"))
    assert cut - connect >= 30 * 0.99  # event times are the clock's, in protocol seconds


# --- media ------------------------------------------------------------------------------------


async def test_video_track_paces_frames_on_its_clock() -> None:
    """At 30 fps, frame N comes no sooner than N/30 clock seconds after frame 0."""
    clock = LoopClock(0.01)
    loop = asyncio.get_running_loop()
    track = IndexedVideoTrack(fps=30, clock=clock)
    real = loop.time()
    first = clock.now()
    for n in range(61):
        frame = await track.recv()
        assert frame.pts == n * 3000
        assert clock.now() - first >= n / 30 - 1e-6
    track.stop()
    assert loop.time() - real < 2.0 / 2  # 2 s of video, compressed a hundredfold


async def test_audio_track_paces_frames_on_its_clock() -> None:
    clock = LoopClock(0.01)
    loop = asyncio.get_running_loop()
    track = ToneAudioTrack(clock=clock)
    real = loop.time()
    first = clock.now()
    for n in range(101):
        await track.recv()
        assert clock.now() - first >= n * AUDIO_PTIME - 1e-6
    track.stop()
    assert loop.time() - real < 2.0 / 2


async def test_events_stamp_and_wait_on_their_clock() -> None:
    clock = LoopClock(0.01)
    loop = asyncio.get_running_loop()
    events = Events(clock)
    before = clock.now()
    events.emit("joined", "s1", "lobby")
    assert before <= events.history[0].at <= clock.now()
    real, protocol = loop.time(), clock.now()
    with pytest.raises(TimeoutError, match="no 'left' event within 10s"):
        await events.wait_for("left", timeout=10)
    assert clock.now() - protocol >= 10 - 1e-6
    assert loop.time() - real < 10 / 2


async def test_probe_timeout_and_frames_on_a_compressed_track() -> None:
    """A probe reading a compressed track: 90 frames (3 clock s) arrive, 10**6 time out.

    The timeout can fire only because a track behind its pace still yields to the loop.
    """
    clock = LoopClock(0.01)
    loop = asyncio.get_running_loop()
    probe = TrackProbe(IndexedVideoTrack(fps=30, clock=clock), clock=clock)
    real = loop.time()
    try:
        report = await probe.frames_at_least(90, timeout=60)
        assert report.in_order_share == 1.0 and report.frames >= 90
        with pytest.raises(TimeoutError, match="of 1000000 frames within 5s"):
            await probe.frames_at_least(10**6, timeout=5)
    finally:
        await probe.stop()
    assert loop.time() - real < 8 / 2  # 3 s of frames and a 5 s timeout, compressed


async def test_room_member_shares_one_media_clock_with_its_events() -> None:
    """``connected_at`` and event times come from the same clock, real time by default."""
    from squall.media.member import RoomMember

    clock = LoopClock(0.01)
    member = RoomMember(lambda frame: None, clock=clock)
    default = RoomMember(lambda frame: None)
    try:
        assert member.clock is clock and member.events.clock is clock
        assert default.clock is default.events.clock and default.clock.timescale == 1.0
        shared = RoomMember(lambda frame: None, events=Events(clock))
        assert shared.clock is clock
        await shared.close()
    finally:
        await member.close()
        await default.close()
