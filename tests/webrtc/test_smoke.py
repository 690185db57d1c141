"""Two clients through the simulator: the shortest path from join to media."""

from __future__ import annotations

from squall.media import IndexedVideoTrack, TrackProbe

from .conftest import DEADLINE, connected


async def test_two_clients_connect_and_exchange_video(make_client) -> None:
    alice = await make_client("alice", room="lobby")
    bob = await make_client("bob", room="lobby")
    await connected(alice, bob)
    cam = alice.add_track(IndexedVideoTrack(), {"label": "front"})
    ev = await bob.events.wait_for("peer_track_defined", timeout=DEADLINE)
    assert ev.args == (alice.sid, {"id": cam, "kind": "video", "description": {"label": "front"}})
    bob.request_peer_track(alice.sid, cam)
    ev = await bob.events.wait_for("peer_track_identified", timeout=DEADLINE)
    probe = TrackProbe(ev.args[2])
    report = await probe.frames_at_least(20, timeout=DEADLINE)
    await probe.stop()
    assert report.in_order_share == 1.0, report
    assert report.black == 0
