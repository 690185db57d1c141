"""The driver's webrtc.* commands: two reference-client processes, real aiortc, 127.0.0.1 only."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from squall.client.driver import COMMANDS, WEBRTC_COMMANDS
from squall.conformance.clients import DriverProcess
from squall.simulator import Simulator

from .conftest import DEADLINE


class Driven:
    """One driver process; ``await run(cmd, **args)`` -> reply, ``await event(name, match)``."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []
        self._changed = asyncio.Event()
        argv = [sys.executable, "-m", "squall.client.driver", "--timescale", "1"]
        self.proc = DriverProcess(argv, self._sink)

    def _sink(self, obj: dict[str, Any]) -> None:
        self.lines.append(obj)
        self._changed.set()

    async def run(self, cmd: str, **args: Any) -> dict[str, Any]:
        _, fut = self.proc.send(cmd, args)
        return await asyncio.wait_for(fut, DEADLINE + 5)

    async def ok(self, cmd: str, **args: Any) -> Any:
        reply = await self.run(cmd, **args)
        assert reply["ok"], reply
        return reply["result"]

    async def event(self, name: str, match: Callable[[Any], bool] = lambda d: True) -> Any:
        async def find() -> Any:
            while True:
                for line in self.lines:
                    if line.get("event") == name and match(line.get("data")):
                        return line["data"]
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(find(), DEADLINE)

    def events(self, prefix: str = "webrtc.") -> list[str]:
        return [line["event"] for line in self.lines if line.get("event", "").startswith(prefix)]


@pytest.fixture
async def pair(sim: Simulator) -> AsyncIterator[tuple[Driven, Driven]]:
    alice, bob = Driven(), Driven()
    await asyncio.gather(alice.proc.start(), bob.proc.start())
    try:
        for who, d in (("alice", alice), ("bob", bob)):
            await d.ok("connect", url=sim.url, token=who)
            await d.ok("webrtc.enable")
            await d.ok("join_room", room="lobby")
        yield alice, bob
    finally:
        codes = await asyncio.gather(alice.proc.stop(), bob.proc.stop())
        assert codes == [0, 0]


def test_the_driver_announces_the_webrtc_commands() -> None:
    assert set(WEBRTC_COMMANDS) <= set(COMMANDS)
    assert all(c.startswith("webrtc.") for c in WEBRTC_COMMANDS)


async def test_media_report_waits_for_frames_and_stats_rise(pair: tuple[Driven, Driven]) -> None:
    alice, bob = pair
    assert await alice.ok("webrtc.add_track", kind="video", id="cam", description={"l": 1}) == {
        "id": "cam",
        "kind": "video",
    }
    defined = await bob.event("webrtc.peer_track_defined", lambda d: d["track"]["id"] == "cam")
    assert defined["permanent_id"] == "alice"
    assert defined["track"] == {"id": "cam", "kind": "video", "description": {"l": 1}}
    # by permanent id or by sid: both name the peer
    await bob.ok("webrtc.request_peer_track", peer=defined["peer"], id="cam")
    report = await bob.ok("webrtc.media_report", peer="alice", track="cam", frames=20, timeout=10)
    assert report["reached"] is True
    [track] = report["tracks"]
    assert track["permanent_id"] == "alice" and track["id"] == "cam" and track["kind"] == "video"
    assert track["frames"] >= 20 and track["in_order_share"] == 1.0 and track["missing"] == 0
    [peer] = report["peers"]
    assert peer["permanent_id"] == "alice" and peer["connected"] is True
    assert peer["inbound"]["connection"][:3] == ["new", "connecting", "connected"]
    stats = await alice.ok("webrtc.stats", peer="bob", over=0.3)
    assert stats["delta"]["outbound-rtp.video.packetsSent"] > 0
    status = await bob.ok("webrtc.status")
    assert status["peer_tracks"] == {defined["peer"]: ["cam"]}
    assert status["connected_peers"] == [defined["peer"]]
    # a frame count never reached: the reply says so, and still carries the report
    short = await bob.ok(
        "webrtc.media_report", peer="alice", track="cam", frames=10**6, timeout=0.2
    )
    assert short["reached"] is False and short["tracks"][0]["frames"] >= 20
    # remove_peer_track: the receiver's copy ends; asking again gives null
    assert (await bob.ok("webrtc.remove_peer_track", peer="alice", id="cam"))["removed"] == "cam"
    assert (await bob.ok("webrtc.remove_peer_track", peer="alice", id="cam"))["removed"] is None
    await bob.event("webrtc.peer_track_removed", lambda d: d == {**d, "id": "cam"})


async def test_messages_and_the_events_are_forwarded(pair: tuple[Driven, Driven]) -> None:
    alice, bob = pair
    await alice.event("webrtc.connect_to_peer")
    await bob.event("webrtc.connect_to_peer")
    await alice.ok("webrtc.send_message", to="bob", message={"n": 1})
    got = await bob.event("webrtc.message")
    assert got["message"] == {"n": 1} and got["permanent_id"] == "alice"
    await alice.ok("webrtc.remove_track", id="nope")
    await alice.ok("leave_room", room="lobby")
    gone = await bob.event("webrtc.disconnect_from_peer")
    assert gone["permanent_id"] == "alice"
    assert bob.events() == [
        "webrtc.connect_to_peer",
        "webrtc.message",
        "webrtc.disconnect_from_peer",
    ]


async def test_bad_webrtc_commands_get_clear_errors(sim: Simulator) -> None:
    d = Driven()
    await d.proc.start()
    try:
        await d.ok("connect", url=sim.url, token="carol")
        before = await d.run("webrtc.add_track", kind="video")
        assert before["type"] == "CommandError" and "webrtc.enable" in before["error"]
        await d.ok("webrtc.enable")
        await d.ok("join_room", room="lobby")
        bad = await d.run("webrtc.add_track", kind="smell")
        assert not bad["ok"] and "'kind' must be 'video' or 'audio'" in bad["error"]
        nobody = await d.run("webrtc.request_peer_track", peer="zed", id="cam")
        assert not nobody["ok"] and "no peer 'zed'" in nobody["error"]
        missing = await d.run("webrtc.request_peer_track", peer="zed")
        assert not missing["ok"]
        assert (await d.ok("webrtc.enable"))["enabled"] is True  # idempotent
    finally:
        assert await d.proc.stop() == 0


async def test_enable_after_joining_is_refused(sim: Simulator) -> None:
    d = Driven()
    await d.proc.start()
    try:
        await d.ok("connect", url=sim.url, token="dave")
        await d.ok("join_room", room="lobby")
        late = await d.run("webrtc.enable")
        assert not late["ok"] and "before joining" in late["error"]
    finally:
        assert await d.proc.stop() == 0
