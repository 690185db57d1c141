"""Signalling (§8): rooms, relay, sid reassignment, track definitions, over real sockets."""

from __future__ import annotations

from squall.simulator import Simulator

from .conftest import wait_for_record


async def _join(client, room: str = "lobby", **extra):
    await client.send(type="join", id=1, room=room, **extra)
    return await client.expect("joined", room=room)


async def test_join_lists_peers_and_announces_the_newcomer(open_client) -> None:
    alice, bob = await open_client("alice"), await open_client("bob")
    a = await _join(alice)
    assert a["peers"] == [] and a["permanent_id"] == "alice"
    b = await _join(bob, permanent_id="bob-device-1")
    assert b["peers"] == [{"sid": a["sid"], "permanent_id": "alice", "tracks": []}]
    announced = await alice.expect("peer_joined", room="lobby")
    assert announced["peer"] == {"sid": b["sid"], "permanent_id": "bob-device-1", "tracks": []}


async def test_relay_to_one_peer_and_to_the_room(open_client) -> None:
    alice, bob, carol = [await open_client(u) for u in ("alice", "bob", "carol")]
    a = await _join(alice)
    b = await _join(bob)
    await alice.expect("peer_joined")
    await _join(carol)
    await alice.expect("peer_joined")
    await bob.expect("peer_joined")
    await alice.send(type="signal", room="lobby", to=b["sid"], kind="offer", data={"sdp": "o"})
    got = await bob.expect("signal", kind="offer", data={"sdp": "o"}, to=b["sid"])
    assert (got["from"], got["from_permanent_id"]) == (a["sid"], "alice")
    await alice.send(type="signal", room="lobby", kind="message", data="hi all")
    for peer in (bob, carol):
        frame = await peer.expect("signal", kind="message", data="hi all")
        assert "to" not in frame  # null fields are left out on the wire


async def test_signal_to_unknown_peer_is_an_error(open_client) -> None:
    alice = await open_client("alice")
    await _join(alice)
    await alice.send(type="signal", room="lobby", to="c999", kind="candidate", data={})
    err = await alice.expect("error", code="unknown_peer")
    assert err["message"] == "no peer 'c999' in room 'lobby'"


async def test_signal_outside_a_room_is_an_error(open_client) -> None:
    alice = await open_client("alice")
    await alice.send(type="signal", room="nowhere", kind="offer")
    await alice.expect("error", code="not_in_room", message="not a member of room 'nowhere'")


async def test_leave_and_disconnect_are_told_apart(sim: Simulator, open_client) -> None:
    alice, bob, carol = [await open_client(u) for u in ("alice", "bob", "carol")]
    await _join(alice)
    b = await _join(bob)
    await alice.expect("peer_joined")
    c = await _join(carol)
    await alice.expect("peer_joined")
    await bob.expect("peer_joined")
    await bob.send(type="leave", id=9, room="lobby")
    await bob.expect("left", id=9, room="lobby")
    await alice.expect("peer_left", sid=b["sid"], permanent_id="bob", reason="left")
    sim.drop("carol")
    await alice.expect("peer_left", sid=c["sid"], permanent_id="carol", reason="disconnected")


async def test_sid_reassigned_after_a_reconnect(sim: Simulator, open_client) -> None:
    """A peer that drops and rejoins with its permanent id is re-keyed, not a stranger."""
    alice, bob = await open_client("alice"), await open_client("bob")
    await _join(alice)
    old = await _join(bob, permanent_id="bob-1")
    await alice.expect("peer_joined")
    sim.drop("bob")
    await alice.expect("peer_left", reason="disconnected")
    bob2 = await open_client("bob")
    new = await _join(bob2, permanent_id="bob-1", prev_sid=old["sid"])
    moved = await alice.expect("peer_sid_reassigned", permanent_id="bob-1", old_sid=old["sid"])
    assert moved["new_sid"] == new["sid"] != old["sid"]
    # Signals now reach bob at his new sid.
    await alice.send(type="signal", room="lobby", to=new["sid"], kind="answer", data="a")
    await bob2.expect("signal", kind="answer")


async def test_rejoin_before_the_old_socket_is_reaped(sim: Simulator, open_client) -> None:
    """If the old connection still lingers, the rejoin replaces it and re-keys at once."""
    alice, bob = await open_client("alice"), await open_client("bob")
    await _join(alice)
    old = await _join(bob)
    await alice.expect("peer_joined")
    bob2 = await open_client("bob")
    new = await _join(bob2)
    await alice.expect("peer_sid_reassigned", old_sid=old["sid"], new_sid=new["sid"])
    members = sim.rooms()["lobby"]["members"]
    assert [m["permanent_id"] for m in members] == ["alice", "bob"]
    assert members[1]["sid"] == new["sid"]


async def test_tracks_define_request_remove(sim: Simulator, open_client) -> None:
    alice, bob = await open_client("alice"), await open_client("bob")
    a = await _join(alice)
    await alice.send(
        type="track_define",
        room="lobby",
        track={"id": "cam", "kind": "video", "description": {"label": "front"}},
    )
    await wait_for_record(sim, lambda r: r.get("type") == "track_define")
    b = await _join(bob)
    assert b["peers"][0]["tracks"] == [
        {"id": "cam", "kind": "video", "description": {"label": "front"}}
    ]
    await alice.expect("peer_joined")
    await bob.send(type="track_request", room="lobby", to=a["sid"], track_id="cam")
    req = await alice.expect("track_requested", track_id="cam")
    assert req["from"] == b["sid"]
    await alice.send(type="track_define", room="lobby", track={"id": "mic", "kind": "audio"})
    await bob.expect(
        "track_defined", sid=a["sid"], track={"id": "mic", "kind": "audio", "description": {}}
    )
    await alice.send(type="track_remove", room="lobby", track_id="cam")
    await bob.expect("track_removed", sid=a["sid"], track_id="cam")
    await bob.send(type="track_request", room="lobby", to=a["sid"], track_id="cam")
    await bob.expect("error", code="unknown_track")
    await alice.send(type="track_remove", room="lobby", track_id="cam")
    await alice.expect("error", code="unknown_track")
