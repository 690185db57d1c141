"""The simulator's fake peer exchanges real media with a client."""

from __future__ import annotations

from squall.media import IndexedVideoTrack, TrackProbe
from squall.simulator.peer import FakePeer

from .conftest import DEADLINE


async def test_fake_peer_and_client_exchange(sim, make_client) -> None:
    alice = await make_client("alice", room="lobby")
    cam = alice.add_track(IndexedVideoTrack(), "front")
    bob = await FakePeer.join(sim, "bob", room="lobby")
    try:
        await bob.events.wait_for("peer_track_identified", timeout=DEADLINE)
        ev = await alice.events.wait_for(
            "peer_track_defined", lambda sid, d: d["id"] == "video", timeout=DEADLINE
        )
        alice.request_peer_track(ev.args[0], "video")
        ev = await alice.events.wait_for("peer_track_identified", timeout=DEADLINE)
        probe = TrackProbe(ev.args[2])
        mine = await probe.frames_at_least(15, timeout=DEADLINE)
        theirs = await bob.probe("alice", cam).frames_at_least(15, timeout=DEADLINE)
        await probe.stop()
        assert mine.in_order_share == 1.0 and theirs.in_order_share == 1.0
    finally:
        await bob.close()
