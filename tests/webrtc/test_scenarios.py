"""The issue's eight WebRTC scenarios, as pytest tests: real aiortc peers, 127.0.0.1 only.

Each test mirrors one YAML scenario of scenarios/webrtc/ (same id in the docstring):
the YAML runs through the driver under `pytest conformance/`, these test the
library directly.
Media windows are ~1 s: a measurement, not a wait for an event.
"""

from __future__ import annotations

import asyncio
import json

from squall.faults import ProxyServer
from squall.media import IndexedVideoTrack, ToneAudioTrack, TrackProbe, stats_delta, stats_snapshot
from squall.simulator.peer import FakePeer

from .conftest import DEADLINE, MEDIA_WINDOW, connected

FULL_CONNECTION = ["new", "connecting", "connected"]
OFFERER_SIGNALING = ["stable", "have-local-offer", "stable"]
ANSWERER_SIGNALING = ["stable", "have-remote-offer", "stable"]


async def receive(client, owner_sid: str, track_id: str) -> TrackProbe:
    """Request a peer's track and start counting its frames once it is identified."""
    mark = client.events.mark()
    client.request_peer_track(owner_sid, track_id)
    ev = await client.events.wait_for(
        "peer_track_identified",
        lambda sid, tid, track: (sid, tid) == (owner_sid, track_id),
        since=mark,
        timeout=DEADLINE,
    )
    return TrackProbe(ev.args[2])


async def defined(client, track_id: str) -> str:
    """Wait until some peer defines ``track_id``; returns that peer's sid."""
    ev = await client.events.wait_for(
        "peer_track_defined", lambda sid, d: d["id"] == track_id, timeout=DEADLINE
    )
    return str(ev.args[0])


async def camera_shared(make_client, frames: int = 5):
    """alice and bob in "lobby", alice's camera flowing to bob: (alice, bob, bob's probe)."""
    alice = await make_client("alice", room="lobby")
    bob = await make_client("bob", room="lobby")
    alice.add_track(IndexedVideoTrack(), "cam", id="cam")
    probe = await receive(bob, await defined(bob, "cam"), "cam")
    await probe.frames_at_least(frames, timeout=DEADLINE)
    return alice, bob, probe


async def test_two_clients_exchange_video_and_audio(make_client) -> None:
    """webrtc.exchange: each sends video and audio; states, frames and packet counts all move."""
    alice = await make_client("alice", room="lobby")
    bob = await make_client("bob", room="lobby")
    await connected(alice, bob)
    for client in (alice, bob):
        client.add_track(IndexedVideoTrack(), "cam", id="cam")
        client.add_track(ToneAudioTrack(), "mic", id="mic")
    probes = {}
    for me, other in ((alice, bob), (bob, alice)):
        await me.events.wait_for(
            "peer_track_defined", lambda s, d: d["id"] == "mic", timeout=DEADLINE
        )
        probes[me.permanent_id, "cam"] = await receive(me, other.sid, "cam")
        probes[me.permanent_id, "mic"] = await receive(me, other.sid, "mic")
    for probe in probes.values():
        await probe.frames_at_least(10, timeout=DEADLINE)
    a_out = alice.peer(bob.sid).outbound
    before = await stats_snapshot(a_out)
    for probe in probes.values():
        probe.reset()
    await asyncio.sleep(MEDIA_WINDOW)
    delta = stats_delta(before, await stats_snapshot(a_out))
    reports = {key: await p.stop() for key, p in probes.items()}

    for (who, kind), report in reports.items():
        if kind == "cam":
            assert report.frames >= 20, (who, report)
            assert report.in_order_share == 1.0, (who, report)
            assert (report.black, report.frozen, report.missing) == (0, 0, 0), (who, report)
        else:
            assert report.frames >= 35, (who, report)  # 50 frames of 20 ms per second
            assert report.silent <= 2, (who, report)  # Opus may start with a quiet frame
    assert delta["outbound-rtp.video.packetsSent"] > 20
    assert delta["outbound-rtp.audio.packetsSent"] > 35
    for me, other in ((alice, bob), (bob, alice)):
        peer = me.peer(other.sid)
        for log in (peer.out_states, peer.in_states):
            # aiortc (balanced bundle): an m-line added by a renegotiation has its own
            # transport until the answer bundles it, so "connecting" comes back briefly.
            assert log.connection[:3] == FULL_CONNECTION, log.as_dict()
            assert log.connection[-1] == "connected", log.as_dict()
            assert set(log.connection) == {"new", "connecting", "connected"}, log.as_dict()
        assert peer.out_states.signaling[:3] == OFFERER_SIGNALING
        assert set(peer.out_states.signaling) == {"stable", "have-local-offer"}
        assert peer.in_states.signaling[:3] == ANSWERER_SIGNALING
        assert set(peer.in_states.signaling) == {"stable", "have-remote-offer"}
        assert peer.out_states.ice_gathering[:3] == ["new", "gathering", "complete"]
    stats = await a_out.getStats()
    assert {s.type for s in stats.values()} >= {"outbound-rtp", "transport"}


async def test_removed_track_is_seen_as_removed(make_client) -> None:
    """webrtc.remove_track: the owner removes a track; the peer hears it removed, twice over."""
    alice, bob, probe = await camera_shared(make_client)
    mark = bob.events.mark()
    assert alice.remove_track("cam") == "cam"
    assert alice.remove_track("cam") is None
    await bob.events.wait_for("peer_track_definition_removed", since=mark, timeout=DEADLINE)
    await bob.events.wait_for("peer_track_removed", since=mark, timeout=DEADLINE)
    events = [e for e in bob.events.history[mark:] if e.name.startswith("peer_track")]
    assert [(e.name, e.args) for e in events] == [
        ("peer_track_removed", (alice.sid, "cam")),
        ("peer_track_definition_removed", (alice.sid, "cam", "video", {"label": "cam"})),
    ]
    assert bob.get_peer_track_definitions() == {alice.sid: {}}
    assert bob.get_peer_tracks() == {alice.sid: {}}
    # the owner renegotiated: the m-line is inactive, no frame is sent on it any more
    await alice.events.wait_for("connect_to_peer", timeout=DEADLINE)
    transceivers = alice.peer(bob.sid).outbound.getTransceivers()
    await _until(lambda: transceivers[0].currentDirection == "inactive")
    report = await probe.stop()
    assert report.ended and report.in_order_share == 1.0, report


async def test_request_peer_track_from_fake_peer(sim, make_client) -> None:
    """webrtc.request: nothing flows until requested; the fake peer requests and reports ours."""
    alice = await make_client("alice", room="lobby")
    alice.add_track(IndexedVideoTrack(), "cam", id="cam")
    bob = await FakePeer.join(sim, "bob", room="lobby", request=["cam"])
    try:
        bob_sid = await defined(alice, "video")
        await connected_to(alice, bob_sid)
        assert alice.get_peer_tracks() == {bob_sid: {}}  # defined, not requested: no media
        assert set(alice.get_peer_track_definitions()[bob_sid]) == {"video", "audio"}
        probe = await receive(alice, bob_sid, "video")
        mine = await probe.frames_at_least(20, timeout=DEADLINE)
        theirs = await bob.probe("alice", "cam").frames_at_least(20, timeout=DEADLINE)
        await probe.stop()
        assert list(alice.get_peer_tracks()[bob_sid]) == ["video"]
        assert mine.in_order_share == theirs.in_order_share == 1.0
        assert list(bob.report()) == ["alice/cam"]
        # an unknown track is refused by the server, with its words
        mark = alice.events.mark()
        alice.request_peer_track(bob_sid, "nope")
        err = await alice.events.wait_for("signalling_error", since=mark, timeout=DEADLINE)
        assert err.args[0]["message"] == f"peer {bob_sid!r} has no track 'nope'"
    finally:
        await bob.close()


async def test_signalling_reconnect_rekeys_the_peer_and_media_keeps_flowing(make_client) -> None:
    """webrtc.reconnect: a new sid, reassign_peer_sid at the peer, no frame lost meanwhile."""
    alice, bob, probe = await camera_shared(make_client)
    old = alice.sid
    mark = bob.events.mark()
    new = await alice.reconnect()
    assert new != old
    ev = await bob.events.wait_for("reassign_peer_sid", since=mark, timeout=DEADLINE)
    assert ev.args == (old, new)
    assert list(bob.get_peer_tracks()) == [new]
    # the definition came back with the new connection: not announced twice
    assert bob.events.names(mark).count("peer_track_defined") == 0
    seen = probe.frames
    report = await probe.frames_at_least(seen + 15, timeout=DEADLINE)
    await probe.stop()
    assert report.in_order_share == 1.0 and report.missing == 0, report
    assert "disconnect_from_peer" not in bob.events.names()
    # messages and requests reach the re-keyed peer
    bob.send_message("still there?", to=new)
    got = await alice.events.wait_for("message", timeout=DEADLINE)
    assert got.args == (bob.sid, "still there?")


async def test_signalling_under_latency(sim, make_client) -> None:
    """webrtc.latency: 150 ms each way on the signalling path; media still connects and flows."""
    async with ProxyServer(port=0, seed=1) as srv:
        port = int(sim.url.rsplit(":", 1)[1].strip("/"))
        proxy = await srv.collection.create(
            {"name": "sig", "listen": "127.0.0.1:0", "upstream": f"127.0.0.1:{port}"}
        )
        for stream in ("upstream", "downstream"):
            await srv.collection.add_toxic(
                "sig", {"type": "latency", "stream": stream, "attributes": {"latency": 150}}
            )
        from squall.client.webrtc import WebRTCClient

        alice = WebRTCClient(urls=[f"ws://{proxy.listen}/"], token="alice")
        bob = await make_client("bob", room="lobby")
        try:
            await alice.join_room("lobby")
            alice.add_track(IndexedVideoTrack(), "cam", id="cam")
            loop = asyncio.get_running_loop()
            start = loop.time()
            probe = await receive(bob, await defined(bob, "cam"), "cam")
            report = await probe.frames_at_least(15, timeout=DEADLINE)
            elapsed = loop.time() - start
            await probe.stop()
            assert report.in_order_share == 1.0
            # define, request, requested, offer, answer: at least 4 delayed legs of 150 ms
            assert elapsed > 0.6, elapsed
        finally:
            await alice.close()


async def test_a_peer_leaves(make_client) -> None:
    """webrtc.leave: leave_room ends both peer connections and every definition, at both ends."""
    alice, bob, probe = await camera_shared(make_client)
    await connected(alice, bob)
    a_sid = alice.sid
    peer = bob.peer(a_sid)
    mark = bob.events.mark()
    await alice.leave_room("lobby")
    await bob.events.wait_for("disconnect_from_peer", since=mark, timeout=DEADLINE)
    assert [(e.name, e.args) for e in bob.events.history[mark:]] == [
        ("peer_track_removed", (a_sid, "cam")),
        ("peer_track_definition_removed", (a_sid, "cam", "video", {"label": "cam"})),
        ("disconnect_from_peer", (a_sid,)),
    ]
    assert bob.discovered_peers == [] and alice.discovered_peers == []
    await _until(lambda: peer.outbound.connectionState == peer.inbound.connectionState == "closed")
    assert peer.out_states.connection[:3] == FULL_CONNECTION
    assert peer.out_states.connection[-1] == "closed"
    assert peer.in_states.signaling[-1] == "closed"
    await probe.stop()


async def test_renegotiation_adds_a_track_without_disturbing_the_first(make_client) -> None:
    """webrtc.renegotiate: a second track mid-call; the first keeps every frame, in order."""
    alice, bob, cam = await camera_shared(make_client, frames=10)
    peer = alice.peer(bob.sid)
    offers = peer.offers
    alice.add_track(IndexedVideoTrack(), "screen", id="screen")
    await bob.events.wait_for("peer_track_defined", lambda s, d: d["id"] == "screen")
    screen = await receive(bob, alice.sid, "screen")
    await screen.frames_at_least(10, timeout=DEADLINE)
    assert peer.offers == offers + 1
    assert [t.mid for t in peer.outbound.getTransceivers()] == [
        "1",
        "2",
    ]  # the data channel is mid 0
    # remove it and add a third: the removed one's m-line stays, inactive
    alice.remove_track("screen")
    await bob.events.wait_for("peer_track_removed", lambda s, t: t == "screen")
    alice.add_track(IndexedVideoTrack(), "slides", id="slides")
    await bob.events.wait_for("peer_track_defined", lambda s, d: d["id"] == "slides")
    slides = await receive(bob, alice.sid, "slides")
    await slides.frames_at_least(10, timeout=DEADLINE)
    directions = [(t.mid, t.currentDirection) for t in peer.outbound.getTransceivers()]
    assert directions == [("1", "sendonly"), ("2", "inactive"), ("3", "sendonly")]
    report = await cam.stop()
    await screen.stop()
    await slides.stop()
    assert report.in_order_share == 1.0 and report.missing == 0, report
    assert set(peer.out_states.signaling) == {"stable", "have-local-offer"}


async def test_data_channel_messages(sim, make_client) -> None:
    """webrtc.messages: to one peer, to all, and back from the fake peer; never via the server."""
    alice = await make_client("alice", room="lobby")
    bob = await make_client("bob", room="lobby")
    carol = await FakePeer.join(sim, "carol", room="lobby", echo=True, video=False, audio=False)
    try:
        await connected(alice, bob)
        await connected_to(alice, carol.sid)
        await connected_to(bob, carol.sid)
        alice.send_message({"n": 1}, to=bob.sid)
        got = await bob.events.wait_for("message", timeout=DEADLINE)
        assert got.args == (alice.sid, {"n": 1})
        mark = alice.events.mark()
        alice.send_message("hello all")
        ev = await bob.events.wait_for("message", lambda s, m: m == "hello all", timeout=DEADLINE)
        assert ev.args[0] == alice.sid
        echo = await alice.events.wait_for("message", since=mark, timeout=DEADLINE)
        assert echo.args == (carol.sid, {"echo": "hello all"})
        relayed = [
            r
            for r in sim.transcript()
            if r.get("type") == "signal" and json.loads(r["text"]).get("kind") == "message"
        ]
        assert relayed == []
    finally:
        await carol.close()


async def connected_to(client, sid: str) -> None:
    await client.events.wait_for("connect_to_peer", lambda s: s == sid, timeout=DEADLINE)


async def _until(predicate, timeout: float = DEADLINE) -> None:
    """Poll a state aiortc exposes without an event (transceiver direction, closed state)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        if loop.time() > end:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.01)


async def test_remove_peer_track_stops_the_sender(make_client) -> None:
    """webrtc.remove_peer_track: the receiver drops a track; the owner stops sending it."""
    alice, bob, probe = await camera_shared(make_client)
    await connected(alice, bob)
    assert bob.remove_peer_track(alice.sid, "cam") == "cam"
    assert bob.remove_peer_track(alice.sid, "cam") is None
    assert bob.events.of("peer_track_removed") == [(alice.sid, "cam")]
    [transceiver] = alice.peer(bob.sid).outbound.getTransceivers()
    await _until(lambda: transceiver.currentDirection == "inactive")
    assert (await probe.stop()).ended
    assert list(bob.get_peer_track_definitions()[alice.sid]) == ["cam"]  # still requestable


async def test_fake_peer_reconnects_and_its_media_keeps_flowing(sim, make_client) -> None:
    """webrtc.fake_reconnect: the fake peer drops its signalling; the client re-keys it."""
    alice = await make_client("alice", room="lobby")
    bob = await FakePeer.join(sim, "bob", room="lobby", audio=False)
    try:
        old = await defined(alice, "video")
        probe = await receive(alice, old, "video")
        await probe.frames_at_least(5, timeout=DEADLINE)
        mark = alice.events.mark()
        new = await bob.reconnect()
        ev = await alice.events.wait_for("reassign_peer_sid", since=mark, timeout=DEADLINE)
        assert ev.args == (old, new)
        report = await probe.frames_at_least(probe.frames + 15, timeout=DEADLINE)
        await probe.stop()
        assert report.in_order_share == 1.0 and report.missing == 0, report
        assert [e for e in alice.events.names(mark) if "track" in e] == []
    finally:
        await bob.close()
