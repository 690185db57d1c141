"""aiortc meets libwebrtc through the simulator: the reference client's WebRTC extension in this
process, drivers/libwebrtc-peer (@roamhq/wrtc in node) in a driver process, 127.0.0.1 only.

Frames are counted in order at both ends (both stacks paint and read the same frame index),
libwebrtc's trickled candidates are read back from the simulator's transcript, and the media
survives a renegotiation, a track dropped and requested again, and a signalling reconnect
that gives the libwebrtc member a new sid.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from aiortc.mediastreams import MediaStreamError

from squall.client.webrtc import WebRTCClient
from squall.conformance.clients import DriverProcess
from squall.media import IndexedVideoTrack, MediaReport, TrackProbe
from squall.simulator import Simulator
from tests.drivers.helpers import npm_ci

from .conftest import DEADLINE

FOLDER = Path(__file__).resolve().parents[2] / "drivers" / "libwebrtc-peer"
FRAMES = 30  # about a second of 30 fps video per measurement

pytestmark = pytest.mark.timeout(120)


class Node:
    """The libwebrtc driver; ``await ok(cmd, **args)`` -> result, ``await event(name, match)``."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []
        self._changed = asyncio.Event()
        argv = ["node", str(FOLDER / "driver.js"), "--timescale", "1"]
        self.proc = DriverProcess(argv, self._sink)

    def _sink(self, obj: dict[str, Any]) -> None:
        self.lines.append(obj)
        self._changed.set()

    async def ok(self, cmd: str, **args: Any) -> Any:
        _, fut = self.proc.send(cmd, args)
        reply = await asyncio.wait_for(fut, DEADLINE + 5)
        assert reply["ok"], reply
        return reply["result"]

    def mark(self) -> int:
        return len(self.lines)

    async def event(
        self, name: str, match: Callable[[Any], bool] = lambda d: True, *, since: int = 0
    ) -> Any:
        async def find() -> Any:
            seen = since
            while True:
                for line in self.lines[seen:]:
                    if line.get("event") == name and match(line.get("data")):
                        return line["data"]
                seen = len(self.lines)
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(find(), DEADLINE)

    async def report(self, peer: str, track: str, frames: int) -> dict[str, Any]:
        """What libwebrtc counted of ``peer``'s ``track`` once ``frames`` frames are in."""
        result = await self.ok(
            "webrtc.media_report", peer=peer, track=track, frames=frames, timeout=DEADLINE
        )
        assert result["reached"], result
        return next(t for t in result["tracks"] if t["permanent_id"] == peer and t["id"] == track)


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    npm_ci(FOLDER, "@roamhq/wrtc")
    driver = Node()
    await driver.proc.start()
    try:
        yield driver
    finally:
        await driver.proc.stop()


@pytest.fixture
async def pair(sim: Simulator, node: Node) -> AsyncIterator[tuple[WebRTCClient, Node]]:
    """aiortc (alice, joined first) and libwebrtc (bob) connected to each other in "lobby"."""
    alice = WebRTCClient(urls=[sim.url], token="alice")
    try:
        await alice.connect()
        await alice.join_room("lobby")
        await node.ok("connect", url=sim.url, token="bob")
        await node.ok("webrtc.enable")
        await node.ok("join_room", room="lobby")
        await node.event("webrtc.connect_to_peer", lambda d: d["permanent_id"] == "alice")
        await alice.events.wait_for("connect_to_peer", timeout=DEADLINE)
        yield alice, node
    finally:
        await alice.close()


async def identified(alice: WebRTCClient, track_id: str, *, since: int = 0) -> TrackProbe:
    ev = await alice.events.wait_for(
        "peer_track_identified", lambda sid, tid, t: tid == track_id, since=since, timeout=DEADLINE
    )
    return TrackProbe(ev.args[2])


def in_order(report: MediaReport | dict[str, Any]) -> None:
    """At least FRAMES frames, every one decoded, each the previous + 1, none black."""
    if isinstance(report, MediaReport):
        data = {**asdict(report), "in_order_share": report.in_order_share}
    else:
        data = report
    assert data["frames"] >= FRAMES and data["indexed"] >= FRAMES - 1, data
    assert data["in_order_share"] == 1.0 and data["missing"] == 0 and data["frozen"] == 0, data
    assert data["black"] == 0, data


def mark(sim: Simulator) -> int:
    """The index the simulator's next transcript record gets."""
    return len(sim.core.transcript.records)


async def reoffered(sim: Simulator, sid: str, since: int) -> None:
    """``sid`` sent an offer after transcript record ``since``: the owner acted on a stop.

    A stop goes over the data channel, a request through the server: a request sent at
    once can overtake the stop, and an owner ignores a request for a track it still sends.
    """

    def offer(rec: dict[str, Any]) -> bool:
        if rec.get("n", -1) < since or rec.get("kind") != "frame" or rec.get("dir") != "in":
            return False
        if rec.get("conn") != sid or rec.get("type") != "signal":
            return False
        return bool(json.loads(rec["text"]).get("kind") == "offer")

    await sim.core.transcript.wait_for(offer, timeout=DEADLINE)


def defines(track_id: str) -> Callable[[Any], bool]:
    """Matches a ``webrtc.peer_track_defined`` event of ``track_id``."""
    return lambda data: bool(data["track"]["id"] == track_id)


def bob_sid(alice: WebRTCClient) -> str:
    return next(sid for sid, p in alice.member.peers.items() if p.permanent_id == "bob")


async def test_frames_in_order_both_ways_and_candidates_trickled(
    sim: Simulator, pair: tuple[WebRTCClient, Node]
) -> None:
    alice, bob = pair
    alice.add_track(IndexedVideoTrack(), {"label": "front"}, id="cam")
    await bob.ok("webrtc.add_track", kind="video", id="cam", description={"label": "back"})
    await bob.event("webrtc.peer_track_defined", lambda d: d["track"]["id"] == "cam")
    await alice.events.wait_for(
        "peer_track_defined", lambda sid, d: d["id"] == "cam", timeout=DEADLINE
    )
    await bob.ok("webrtc.request_peer_track", peer="alice", id="cam")
    alice.request_peer_track(bob_sid(alice), "cam")
    probe = await identified(alice, "cam")
    in_order(await probe.frames_at_least(FRAMES, timeout=DEADLINE))  # libwebrtc -> aiortc
    in_order(await bob.report("alice", "cam", FRAMES))  # aiortc -> libwebrtc
    await probe.stop()

    # every candidate libwebrtc sent is its own signal frame, and a loopback one
    sid = (await bob.ok("status"))["sid"]
    signals = [
        json.loads(r["text"])
        for r in sim.transcript()
        if r.get("kind") == "frame" and r.get("dir") == "in" and r.get("conn") == sid
        if r.get("type") == "signal"
    ]
    candidates = [s["data"] for s in signals if s["kind"] == "candidate"]
    assert {c["dir"] for c in candidates} == {"out", "in"}, candidates  # both connections trickle
    for c in candidates:
        assert c["candidate"].split()[4] in ("127.0.0.1", "::1"), c
    offers = [s["data"] for s in signals if s["kind"] in ("offer", "answer")]
    assert offers and all("a=candidate" not in o["sdp"] for o in offers)
    # a connection's candidates follow its description: the offer (out), the answer (in)
    kinds = [(s["kind"], s["data"].get("dir")) for s in signals]
    assert kinds.index(("offer", None)) < kinds.index(("candidate", "out")), kinds
    assert kinds.index(("answer", None)) < kinds.index(("candidate", "in")), kinds
    status = await bob.ok("webrtc.status")
    assert status["candidates"]["sent"] == len(candidates)
    # aiortc never trickles: its candidates are in its SDP
    assert status["candidates"]["received"] == 0


async def test_renegotiation_aiortc_offers_again_and_libwebrtc_keeps_every_frame(
    pair: tuple[WebRTCClient, Node],
) -> None:
    alice, bob = pair
    alice.add_track(IndexedVideoTrack(), id="cam")
    await bob.event("webrtc.peer_track_defined", lambda d: d["track"]["id"] == "cam")
    await bob.ok("webrtc.request_peer_track", peer="alice", id="cam")
    first = (await bob.report("alice", "cam", 10))["frames"]
    # aiortc renegotiates twice: libwebrtc answers each new offer on its inbound connection
    for track_id in ("front", "side"):
        alice.add_track(IndexedVideoTrack(), id=track_id)
        await bob.event("webrtc.peer_track_defined", defines(track_id))
        await bob.ok("webrtc.request_peer_track", peer="alice", id=track_id)
        in_order(await bob.report("alice", track_id, FRAMES))
    in_order(await bob.report("alice", "cam", first + FRAMES))  # every frame, through both
    peers = (await bob.ok("webrtc.media_report"))["peers"]
    inbound = next(p for p in peers if p["permanent_id"] == "alice")["inbound"]
    assert inbound["signaling"].count("have-remote-offer") >= 3, inbound
    assert inbound["connection"][-1] == "connected", inbound
    assert alice.member.peer(bob_sid(alice)).offers >= 3  # the first, front, side


async def test_renegotiation_libwebrtc_offers_again_and_the_new_track_flows(
    pair: tuple[WebRTCClient, Node],
) -> None:
    alice, bob = pair
    await bob.ok("webrtc.add_track", kind="video", id="cam")
    await alice.events.wait_for(
        "peer_track_defined", lambda sid, d: d["id"] == "cam", timeout=DEADLINE
    )
    alice.request_peer_track(bob_sid(alice), "cam")
    cam = await identified(alice, "cam")
    await cam.frames_at_least(10, timeout=DEADLINE)
    mark = alice.events.mark()
    await bob.ok("webrtc.add_track", kind="video", id="screen")
    await alice.events.wait_for(
        "peer_track_defined", lambda sid, d: d["id"] == "screen", since=mark, timeout=DEADLINE
    )
    alice.request_peer_track(bob_sid(alice), "screen")
    screen = await identified(alice, "screen", since=mark)
    in_order(await screen.frames_at_least(FRAMES, timeout=DEADLINE))
    peers = (await bob.ok("webrtc.media_report"))["peers"]
    out = next(p for p in peers if p["permanent_id"] == "alice")["outbound"]
    assert out["signaling"].count("have-local-offer") >= 3, out  # empty, cam, screen
    await cam.stop()
    await screen.stop()


@pytest.mark.xfail(
    strict=True,
    raises=MediaStreamError,
    reason="libwebrtc sends an RTCP BYE for a track it keeps sending when it applies the answer "
    "to its re-offer, and aiortc 1.16 ends the receiving track at any BYE "
    "(aiortc/rtcrtpreceiver.py:468-469): docs/webrtc.md, 'A second stack'",
)
async def test_renegotiation_libwebrtc_offers_again_and_the_first_track_survives_at_aiortc(
    pair: tuple[WebRTCClient, Node],
) -> None:
    alice, bob = pair
    await bob.ok("webrtc.add_track", kind="video", id="cam")
    await alice.events.wait_for(
        "peer_track_defined", lambda sid, d: d["id"] == "cam", timeout=DEADLINE
    )
    alice.request_peer_track(bob_sid(alice), "cam")
    cam = await identified(alice, "cam")
    await cam.frames_at_least(10, timeout=DEADLINE)
    mark = alice.events.mark()
    await bob.ok("webrtc.add_track", kind="video", id="screen")
    await alice.events.wait_for(
        "peer_track_defined", lambda sid, d: d["id"] == "screen", since=mark, timeout=DEADLINE
    )
    alice.request_peer_track(bob_sid(alice), "screen")
    screen = await identified(alice, "screen", since=mark)
    await screen.frames_at_least(FRAMES, timeout=DEADLINE)
    try:
        in_order(await cam.frames_at_least(cam.frames + FRAMES, timeout=DEADLINE))
    finally:
        await cam.stop()
        await screen.stop()


async def test_a_track_removed_and_requested_again(
    sim: Simulator, pair: tuple[WebRTCClient, Node]
) -> None:
    alice, bob = pair
    await bob.ok("webrtc.add_track", kind="video", id="cam")
    alice.add_track(IndexedVideoTrack(), id="cam")
    await alice.events.wait_for(
        "peer_track_defined", lambda sid, d: d["id"] == "cam", timeout=DEADLINE
    )
    await bob.event("webrtc.peer_track_defined", lambda d: d["track"]["id"] == "cam")
    # aiortc drops libwebrtc's track: libwebrtc stops sending it (its m-line goes inactive)
    alice.request_peer_track(bob_sid(alice), "cam")
    first = await identified(alice, "cam")
    await first.frames_at_least(10, timeout=DEADLINE)
    since, n = alice.events.mark(), mark(sim)
    assert alice.remove_peer_track(bob_sid(alice), "cam") == "cam"
    await first.stop()
    await reoffered(sim, bob_sid(alice), n)  # libwebrtc made the m-line inactive
    alice.request_peer_track(bob_sid(alice), "cam")
    again = await identified(alice, "cam", since=since)
    in_order(await again.frames_at_least(FRAMES, timeout=DEADLINE))
    await again.stop()
    # libwebrtc drops aiortc's track, then asks for it again
    await bob.ok("webrtc.request_peer_track", peer="alice", id="cam")
    await bob.report("alice", "cam", 10)
    since, n = bob.mark(), mark(sim)
    assert (await bob.ok("webrtc.remove_peer_track", peer="alice", id="cam"))["removed"] == "cam"
    await bob.event("webrtc.peer_track_removed", lambda d: d["id"] == "cam", since=since)
    await reoffered(sim, str(alice.sid), n)  # aiortc made the m-line inactive
    await bob.ok("webrtc.request_peer_track", peer="alice", id="cam")
    await bob.event("webrtc.peer_track_identified", lambda d: d["id"] == "cam", since=since)
    in_order(await bob.report("alice", "cam", FRAMES))  # a new reader: counted from 0
    # the owner removes its track: the receiver hears the track end, then its definition go
    since = bob.mark()
    assert alice.remove_track("cam") == "cam"
    await bob.event("webrtc.peer_track_removed", lambda d: d["id"] == "cam", since=since)
    await bob.event("webrtc.peer_track_definition_removed", lambda d: d["id"] == "cam")


async def test_reconnect_reassigns_the_sid_and_media_keeps_flowing(
    pair: tuple[WebRTCClient, Node],
) -> None:
    alice, bob = pair
    await bob.ok("webrtc.add_track", kind="video", id="cam")
    alice.add_track(IndexedVideoTrack(), id="cam")
    await alice.events.wait_for(
        "peer_track_defined", lambda sid, d: d["id"] == "cam", timeout=DEADLINE
    )
    await bob.event("webrtc.peer_track_defined", lambda d: d["track"]["id"] == "cam")
    alice.request_peer_track(bob_sid(alice), "cam")
    await bob.ok("webrtc.request_peer_track", peer="alice", id="cam")
    probe = await identified(alice, "cam")
    await probe.frames_at_least(10, timeout=DEADLINE)
    # libwebrtc's signalling reconnects: a new sid, re-keyed at aiortc's end, media untouched
    old = bob_sid(alice)
    mark = alice.events.mark()
    status = await bob.ok("reconnect")
    assert status["sid"] != old
    ev = await alice.events.wait_for("reassign_peer_sid", since=mark, timeout=DEADLINE)
    assert ev.args == (old, status["sid"])
    in_order(await probe.frames_at_least(probe.frames + FRAMES, timeout=DEADLINE))
    # aiortc's signalling reconnects: libwebrtc re-keys it
    since = bob.mark()
    alice_old = alice.sid
    alice_new = await alice.reconnect()
    data = await bob.event("webrtc.reassign_peer_sid", since=since)
    assert (data["old_sid"], data["sid"], data["permanent_id"]) == (alice_old, alice_new, "alice")
    seen = (await bob.report("alice", "cam", 1))["frames"]
    in_order(await bob.report("alice", "cam", seen + FRAMES))
    in_order(await probe.frames_at_least(probe.frames + FRAMES, timeout=DEADLINE))
    assert not [line for line in bob.lines if line.get("event") == "webrtc.disconnect_from_peer"]
    assert "disconnect_from_peer" not in [e.name for e in alice.events.history]
    # the data channels still carry messages both ways
    alice.send_message({"n": 1}, to=bob_sid(alice))
    assert (await bob.event("webrtc.message"))["message"] == {"n": 1}
    await bob.ok("webrtc.send_message", to="alice", message="still there?")
    ev = await alice.events.wait_for("message", timeout=DEADLINE)
    assert ev.args == (bob_sid(alice), "still there?")
    await probe.stop()
