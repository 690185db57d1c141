"""Core rules for rooms, peers, relayed signals and tracks (§8), on fake time."""

from __future__ import annotations

import pytest

from .harness import Harness


def joined(h: Harness, room: str = "lobby", peers: list | None = None) -> None:
    frame = h.sent("join")[-1]
    h.frame(
        type="joined",
        id=frame["id"],
        room=room,
        sid=f"c{h.sids}",
        permanent_id="alice-laptop",
        peers=peers or [],
    )


def test_join_lists_peers_and_tracks_peer_events() -> None:
    h = Harness(permanent_id="alice-laptop")
    h.connect()
    ticket = h.core.join_room("lobby", h.now)
    h.pump()
    assert h.sent("join") == [
        {"type": "join", "id": ticket, "room": "lobby", "permanent_id": "alice-laptop"}
    ]
    joined(h, peers=[{"sid": "c7", "permanent_id": "bob", "tracks": []}])
    assert h.results[ticket]["peers"] == [{"sid": "c7", "permanent_id": "bob", "tracks": []}]
    h.frame(type="peer_joined", room="lobby", peer={"sid": "c8", "permanent_id": "carol"})
    h.frame(
        type="peer_sid_reassigned", room="lobby", permanent_id="bob", old_sid="c7", new_sid="c9"
    )
    h.frame(type="peer_left", room="lobby", sid="c8", permanent_id="carol", reason="left")
    assert h.events("reassign_peer_sid") == [
        {"room": "lobby", "permanent_id": "bob", "old_sid": "c7", "new_sid": "c9"}
    ]
    assert sorted(h.core.rooms["lobby"].peers) == ["c9"]
    assert h.core.rooms["lobby"].peers["c9"]["permanent_id"] == "bob"


def test_rejoin_after_reconnect_with_prev_sid_and_tracks_defined_again() -> None:
    h = Harness(immediate_first_retry=True)
    h.connect()
    h.core.join_room("lobby", h.now)
    h.pump()
    joined(h)
    h.core.define_track("lobby", {"id": "cam", "kind": "video"}, h.now)
    h.pump()
    h.close(1006)
    h.clear()
    h.accept()
    assert h.sent("join")[0]["prev_sid"] == "c1"
    joined(h)
    assert h.sent("track_define") == [
        {
            "type": "track_define",
            "room": "lobby",
            "track": {"id": "cam", "kind": "video", "description": {}},
        }
    ]


def test_send_message_to_one_peer_or_all_and_incoming_signals() -> None:
    h = Harness()
    h.connect()
    h.core.join_room("lobby", h.now)
    h.pump()
    joined(h)
    h.core.send_message({"hi": 1}, h.now, to="c7")
    h.core.send_message("all", h.now)
    h.pump()
    assert h.sent("signal") == [
        {"type": "signal", "room": "lobby", "to": "c7", "kind": "message", "data": {"hi": 1}},
        {"type": "signal", "room": "lobby", "kind": "message", "data": "all"},
    ]
    h.frame(
        type="signal",
        room="lobby",
        **{"from": "c7"},
        from_permanent_id="bob",
        kind="offer",
        data={"sdp": "v=0"},
    )
    assert h.events("signal")[0]["kind"] == "offer"
    assert h.events("signal")[0]["from"] == "c7"


def test_send_message_needs_a_room() -> None:
    h = Harness()
    h.connect()
    with pytest.raises(ValueError, match="room is ambiguous"):
        h.core.send_message("x", h.now)
