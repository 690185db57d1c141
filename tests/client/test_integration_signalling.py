"""Rooms, peers, relayed messages, tracks and sid reassignment against the real simulator."""

from __future__ import annotations


async def test_two_peers_meet_message_and_reassign_after_a_drop(make_client, sim) -> None:
    alice, arec = make_client("alice", permanent_id="alice-laptop")
    bob, brec = make_client("bob")
    await alice.connect()
    await bob.connect()
    await alice.join_room("lobby")
    joined = await bob.join_room("lobby")
    assert [p["permanent_id"] for p in joined["peers"]] == ["alice-laptop"]
    peer = await arec.next("peer_joined", fresh=False)
    assert peer["sid"] == bob.sid and peer["permanent_id"] == "bob"

    alice.send_message({"hello": "bob"}, to=bob.sid)
    message = await brec.next("message")
    assert message["message"] == {"hello": "bob"} and message["from_permanent_id"] == "alice-laptop"

    old_sid = alice.sid
    sim.drop("alice")
    reassigned = await brec.next("reassign_peer_sid")
    assert reassigned["old_sid"] == old_sid and reassigned["new_sid"] == alice.sid
    assert [p["sid"] for p in bob.peers("lobby")] == [alice.sid]


async def test_tracks_are_defined_requested_and_redefined_after_a_reconnect(make_client, sim):
    alice, arec = make_client("alice")
    bob, brec = make_client("bob")
    await alice.connect()
    await bob.connect()
    await alice.join_room("lobby")
    await bob.join_room("lobby")
    alice.define_track("lobby", {"id": "cam", "kind": "video", "description": {"l": 1}})
    defined = await brec.next("track_defined")
    assert defined["track"]["id"] == "cam"
    bob.request_track("lobby", alice.sid, "cam")
    requested = await arec.next("track_requested")
    assert requested == {"room": "lobby", "sender": bob.sid, "track_id": "cam"}
    sim.drop("alice")
    await brec.next("track_defined")  # alice defined it again on her new sid
    assert bob.peers("lobby")[0]["tracks"][0]["id"] == "cam"


async def test_leave_room_tells_the_others(make_client, sim) -> None:
    alice, _ = make_client("alice")
    bob, brec = make_client("bob")
    await alice.connect()
    await bob.connect()
    await alice.join_room("lobby")
    await bob.join_room("lobby")
    await alice.leave_room("lobby")
    left = await brec.next("peer_left", fresh=False)
    assert left["reason"] == "left" and left["permanent_id"] == "alice"
