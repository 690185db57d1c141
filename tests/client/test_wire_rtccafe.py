"""The reference client in rtccafe mode: the one behaviour core on RTCCafe's Socket.IO wire.

Most tests check the wire's decisions without sockets (it is sans-I/O: frames in, reference
messages out); the last ones run real StreamingClient(dialect="rtccafe") clients against a
real Simulator(dialect="rtccafe") on loopback. The same client against the real server:
test_rtccafe_real_server.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from squall.client import RemoteError, StreamingClient
from squall.client.driver import Driver
from squall.client.webrtc import WebRTCClient
from squall.client.wires.rtccafe import RTCCafeClientWire
from squall.clock import LoopClock
from squall.media import IndexedVideoTrack, ToneAudioTrack, TrackProbe
from squall.media.member import RoomMember
from squall.protocol import messages as m
from squall.protocol.errors import ProtocolError
from squall.simulator import Simulator

from .conftest import DEADLINE, Recorder

OPEN = '0{"sid":"e1","upgrades":[],"pingInterval":1000,"pingTimeout":2000,"maxPayload":1000000}'


def connected(wire: RTCCafeClientWire, sid: str = "me", *, token: str | None = "alice") -> None:
    """Open a connection and take the namespace CONNECT answer."""
    wire.opening("http://127.0.0.1:9/", token=token, jwt=None, recovery_token=None, auth_via="")
    assert wire.decode(OPEN) == ()
    wire.decode(f'40/rtc-cafe,{{"sid":"{sid}"}}')


def event(name: str, body: dict[str, Any]) -> str:
    return "42/rtc-cafe," + json.dumps([name, body])


def sent(frame: str | bytes) -> list[Any]:
    """The ``[event, data]`` of an outgoing EVENT frame (ack id, if any, dropped)."""
    assert isinstance(frame, str) and frame.startswith("42/rtc-cafe,")
    body = frame.removeprefix("42/rtc-cafe,").lstrip("0123456789")
    parsed: list[Any] = json.loads(body)
    return parsed


def joined(wire: RTCCafeClientWire, room: str = "lobby", ticket: int = 7) -> m.Joined:
    out = wire.encode(m.Join(id=ticket, room=room, permanent_id=None, prev_sid=None))
    [frame] = out.frames
    assert isinstance(frame, str)
    ack = frame.removeprefix("42/rtc-cafe,").split("[", 1)[0]
    [msg] = wire.decode(f"43/rtc-cafe,{ack}[]")
    assert isinstance(msg, m.Joined)
    return msg


# --- the socket and the namespace -------------------------------------------------------------


def test_the_url_is_engine_io_4_over_websocket_and_auth_goes_in_connect() -> None:
    wire = RTCCafeClientWire()
    opening = wire.opening(
        "http://127.0.0.1:8000/", token="alice", jwt=None, recovery_token=None, auth_via="query"
    )
    assert opening.url == "ws://127.0.0.1:8000/socket.io/?EIO=4&transport=websocket"
    assert opening.auth_frame and not opening.headers
    out = wire.encode(m.Auth(token="alice"))
    assert out.frames == ('40/rtc-cafe,{"token":"alice"}',)
    assert out.shown == ('40/rtc-cafe,{"token":"***"}',)  # the sent event masks it
    assert wire.encode(m.Auth()).frames == ("40/rtc-cafe,",)
    https = wire.opening(
        "https://h/custom/", token=None, jwt=None, recovery_token=None, auth_via=""
    )
    assert https.url == "wss://h/custom/?EIO=4&transport=websocket"


def test_a_url_that_is_not_http_or_ws_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="ftp://h/"):
        RTCCafeClientWire().opening(
            "ftp://h/", token=None, jwt=None, recovery_token=None, auth_via=""
        )


def test_connect_answer_is_the_session_and_a_recovery_is_answered_failed() -> None:
    wire = RTCCafeClientWire(timescale=0.01)
    wire.opening("http://h/", token="alice", jwt=None, recovery_token="", auth_via="")
    wire.decode(OPEN)
    auth, recovery = wire.decode('40/rtc-cafe,{"sid":"abc"}')
    assert isinstance(auth, m.Authenticated)
    assert (auth.session, auth.sid, auth.user, auth.guest) == ("abc", "abc", "alice", False)
    # pingInterval + pingTimeout of the open packet, real seconds in protocol seconds
    assert auth.heartbeat == pytest.approx(3.0 / 0.01)
    assert recovery == m.Recovery(recovered=False, reason="unknown")


def test_connect_error_is_a_final_auth_failure() -> None:
    wire = RTCCafeClientWire()
    wire.opening("http://h/", token=None, jwt=None, recovery_token=None, auth_via="")
    [failed] = wire.decode('44/rtc-cafe,{"message":"Connection rejected by server"}')
    assert isinstance(failed, m.AuthFailed) and failed.reason == "forbidden"
    assert "Connection rejected by server" in failed.message


def test_a_server_ping_is_answered_with_a_pong_through_the_core() -> None:
    wire = RTCCafeClientWire()
    connected(wire)
    [ping] = wire.decode("2")
    assert isinstance(ping, m.Ping)
    assert wire.encode(m.Pong(id=ping.id)).frames == ("3",)
    assert wire.encode(m.Pong(id=ping.id)).frames == ()  # each carrier answers once


def test_the_cores_ping_is_answered_only_when_the_server_spoke_since_the_last_one() -> None:
    wire = RTCCafeClientWire()
    connected(wire)
    assert wire.encode(m.Ping(id=1)).answers == (m.Pong(id=1),)
    assert wire.encode(m.Ping(id=2)).answers == ()  # silence: the core counts a missed pong
    wire.decode("2")
    assert wire.encode(m.Ping(id=3)).answers == (m.Pong(id=3),)


def test_frames_that_are_not_engine_io_or_socket_io_are_protocol_errors() -> None:
    wire = RTCCafeClientWire()
    connected(wire)
    for bad in ("", "9", '42/rtc-cafe,["join",', "4x"):
        with pytest.raises(ProtocolError):
            wire.decode(bad)
    with pytest.raises(ProtocolError, match="binary"):
        wire.decode(b"\x00")
    with pytest.raises(ProtocolError, match="sid"):
        wire.decode("40/rtc-cafe,{}")


# --- rooms and peers --------------------------------------------------------------------------


def test_join_carries_id_prev_sid_and_the_signal_modifier_and_its_ack_is_joined() -> None:
    wire = RTCCafeClientWire(signal_fields={"csrf": "t0k"})
    connected(wire, "s2")
    out = wire.encode(m.Join(id=4, room="lobby", permanent_id="bob-p", prev_sid="s1"))
    [frame] = out.frames
    assert isinstance(frame, str) and frame.startswith("42/rtc-cafe,0[")
    assert sent(frame) == [
        "join",
        {"room": "lobby", "id": "bob-p", "prevSid": "s1", "csrf": "t0k"},
    ]
    [msg] = wire.decode("43/rtc-cafe,0[]")
    assert msg == m.Joined(id=4, room="lobby", sid="s2", permanent_id="bob-p", peers=[])
    assert wire.decode("43/rtc-cafe,0[]") == ()  # answered once


def test_the_permanent_id_defaults_to_the_token_and_stays_across_connections() -> None:
    wire = RTCCafeClientWire()
    connected(wire, token="carol")
    assert joined(wire).permanent_id == "carol"
    connected(wire, "again", token="carol")
    assert joined(wire).permanent_id == "carol"


def test_acquire_peers_is_a_peer_joined_and_answered_with_acquire_peers_response() -> None:
    wire = RTCCafeClientWire(signal_fields={"csrf": "t"})
    connected(wire, "me")
    joined(wire)
    peer, carrier = wire.decode(event("acquire-peers", {"id": "bob", "sid": "b1", "prevSid": None}))
    assert peer == m.PeerJoined(room="lobby", peer=m.Peer(sid="b1", permanent_id="bob"))
    assert isinstance(carrier, m.Ping)
    [reply] = wire.encode(m.Pong(id=carrier.id)).frames
    assert sent(reply) == [
        "acquire-peers-response",
        {"room": "lobby", "recipient": "b1", "id": "alice", "prevSid": None, "csrf": "t"},
    ]


def test_a_returning_peer_is_re_keyed_by_prev_sid_even_after_its_disconnection() -> None:
    wire = RTCCafeClientWire()
    connected(wire)
    joined(wire)
    wire.decode(event("acquire-peers-response", {"id": "bob", "sid": "b1", "prevSid": None}))
    [left] = wire.decode(event("peer-disconnection", {"sid": "b1"}))
    assert left == m.PeerLeft(room="lobby", sid="b1", permanent_id="bob", reason="disconnected")
    rekeyed, _reply = wire.decode(
        event("acquire-peers", {"id": "bob", "sid": "b2", "prevSid": "b1"})
    )
    assert rekeyed == m.PeerSidReassigned(
        room="lobby", permanent_id="bob", old_sid="b1", new_sid="b2"
    )
    assert not wire.decode(event("peer-disconnection", {"sid": "b1"}))  # not there any more


def test_a_permanent_id_seen_under_a_new_sid_is_re_keyed_without_prev_sid() -> None:
    wire = RTCCafeClientWire()
    connected(wire)
    joined(wire)
    wire.decode(event("acquire-peers-response", {"id": "alice-p", "sid": "a1", "prevSid": None}))
    rekeyed, _reply = wire.decode(
        event("acquire-peers", {"id": "alice-p", "sid": "a2", "prevSid": None})
    )
    assert rekeyed == m.PeerSidReassigned(
        room="lobby", permanent_id="alice-p", old_sid="a1", new_sid="a2"
    )


def test_after_its_own_reconnect_the_client_rejoins_with_the_peers_it_knew() -> None:
    wire = RTCCafeClientWire()
    connected(wire, "me1")
    joined(wire)
    wire.decode(event("acquire-peers-response", {"id": "bob", "sid": "b1", "prevSid": None}))
    connected(wire, "me2")
    again = joined(wire)
    assert again.sid == "me2" and again.peers == [m.Peer(sid="b1", permanent_id="bob")]
    # bob answers the new acquire-peers: already known, so nothing new to tell
    assert wire.decode(event("acquire-peers-response", {"id": "bob", "sid": "b1"})) == ()


def test_a_validators_error_rejects_the_join_and_its_ack_is_ignored() -> None:
    wire = RTCCafeClientWire()
    connected(wire)
    wire.encode(m.Join(id=9, room="vip"))
    body = {"error": "bad csrf", "originalMessage": "join"}
    [error] = wire.decode(event("error", body))
    assert isinstance(error, m.Error) and error.id == 9 and error.code == "rejected"
    assert "bad csrf" in error.message and error.data == body
    assert wire.decode("43/rtc-cafe,0[]") == ()
    [other] = wire.decode(event("error", {"error": "no", "originalMessage": "offer"}))
    assert isinstance(other, m.Error) and other.id is None


# --- signals ----------------------------------------------------------------------------------


def test_signals_go_to_their_recipient_and_come_back_without_routing_keys() -> None:
    wire = RTCCafeClientWire(signal_fields={"csrf": "t"})
    connected(wire, "me")
    joined(wire)
    wire.decode(event("acquire-peers-response", {"id": "bob", "sid": "b1", "prevSid": None}))
    [frame] = wire.encode(
        m.SendSignal(room="lobby", to="b1", kind="offer", data={"sdp": "v=0"})
    ).frames
    assert sent(frame) == [
        "offer",
        {"sdp": "v=0", "recipient": "b1", "id": "alice", "room": "lobby", "csrf": "t"},
    ]
    relayed = {"id": "bob", "sid": "b1", "sdp": "v=1", "recipient": "me", "csrf": "t"}
    [signal] = wire.decode(event("answer", relayed))
    assert isinstance(signal, m.Signal)
    assert (signal.room, signal.sender, signal.from_permanent_id, signal.to) == (
        "lobby",
        "b1",
        "bob",
        "me",
    )
    assert signal.kind == "answer" and signal.data == {"sdp": "v=1"}


def test_a_signal_to_no_one_goes_to_each_known_peer_and_to_an_empty_room_is_an_error() -> None:
    wire = RTCCafeClientWire()
    connected(wire)
    joined(wire)
    lonely = wire.encode(m.SendSignal(room="lobby", kind="candidate", data="c"))
    [error] = lonely.answers
    assert isinstance(error, m.Error) and error.code == "unknown_peer"
    for sid in ("b1", "c1"):
        wire.decode(event("acquire-peers-response", {"id": sid, "sid": sid}))
    frames = wire.encode(m.SendSignal(room="lobby", kind="candidate", data="c")).frames
    assert [sent(f)[1]["recipient"] for f in frames] == ["b1", "c1"]
    assert sent(frames[0])[1]["data"] == "c"


@pytest.mark.parametrize(
    "msg",
    [
        m.Leave(id=3, room="lobby"),
        m.SendSignal(room="lobby", kind="message", data="hi"),
        m.TrackDefine(room="lobby", track=m.TrackDefinition(id="cam", kind="video")),
        m.TrackRequest(room="lobby", to="b1", track_id="cam"),
        m.Subscribe(id=5, topics=["news"]),
        m.Call(id=6, method="echo"),
    ],
)
def test_what_the_signaller_has_no_event_for_is_answered_unsupported(msg: m.Message) -> None:
    wire = RTCCafeClientWire()
    connected(wire)
    out = wire.encode(msg)
    assert out.frames == ()
    [error] = out.answers
    assert isinstance(error, m.Error) and error.code == "unsupported"
    assert error.id == getattr(msg, "id", None)


def test_a_binary_event_is_read_once_its_attachment_arrives() -> None:
    wire = RTCCafeClientWire()
    connected(wire, "me")
    joined(wire)
    wire.decode(event("acquire-peers-response", {"id": "bob", "sid": "b1"}))
    head = '451-/rtc-cafe,["candidate",{"sid":"b1","blob":{"_placeholder":true,"num":0}}]'
    assert wire.decode(head) == ()
    [signal] = wire.decode(b"\x01\x02")
    assert isinstance(signal, m.Signal) and signal.data == {"blob": b"\x01\x02"}


async def test_the_driver_gives_the_wire_its_timescale() -> None:
    driver = Driver(lambda _obj: None, timescale=0.05, dialect="rtccafe")
    driver.config = {"url": "http://127.0.0.1:9/", "rtccafe": {"signal_fields": {"csrf": "x"}}}
    driver._build()
    assert driver.client is not None
    wire = driver.client.core.wire
    assert isinstance(wire, RTCCafeClientWire)
    assert wire.timescale == 0.05 and wire.signal_fields == {"csrf": "x"}


async def test_the_webrtc_extension_works_on_rtccafe_over_the_data_channel() -> None:
    """The wire says its server has no track frames; the member then uses the channel."""
    assert RTCCafeClientWire.track_frames is False
    driver = Driver(lambda _obj: None, dialect="rtccafe")
    driver.config = {"url": "http://127.0.0.1:9/"}
    driver._build()
    reply = await driver.cmd_webrtc_enable({})
    try:
        assert reply["enabled"] is True and "webrtc.request_peer_track" in reply["commands"]
        assert driver.webrtc.rtc.member.tracks_over_server is False
    finally:
        await driver.webrtc.close()


# --- against squall's rtccafe dialect, on loopback ---------------------------------------------


@pytest.fixture
async def sim(clock: LoopClock) -> AsyncIterator[Simulator]:
    simulator = Simulator(
        dialect="rtccafe", clock=clock, dialect_options={"required_fields": {"csrf": "ok"}}
    )
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


async def test_two_clients_meet_signal_and_re_key_after_a_reconnect(
    sim: Simulator, clock: LoopClock
) -> None:
    def make(token: str) -> tuple[StreamingClient, Recorder]:
        wire = RTCCafeClientWire(signal_fields={"csrf": "ok"}, timescale=clock.timescale)
        client = StreamingClient(
            sim.url, token=token, clock=clock, dialect=wire, immediate_first_retry=True
        )
        return client, Recorder(client)

    (alice, arec), (bob, brec) = make("alice"), make("bob")
    try:
        await asyncio.wait_for(asyncio.gather(alice.connect(), bob.connect()), DEADLINE)
        await asyncio.wait_for(alice.join_room("lobby"), DEADLINE)
        await asyncio.wait_for(bob.join_room("lobby"), DEADLINE)
        first = bob.sid
        met = await arec.next("peer_joined", fresh=False)
        assert met["sid"] == first and met["permanent_id"] == "bob"
        await brec.next("peer_joined", fresh=False)
        alice.send_signal("lobby", "offer", {"sdp": "x"}, to=first)
        offer = await brec.next("signal", fresh=False)
        assert offer["from"] == alice.sid and offer["data"] == {"sdp": "x"}
        await asyncio.wait_for(bob.reconnect(), DEADLINE)
        rekey = await arec.next("reassign_peer_sid", fresh=False)
        assert rekey["old_sid"] == first and rekey["new_sid"] == bob.sid != first
        assert [p["sid"] for p in alice.peers("lobby")] == [bob.sid]
    finally:
        await asyncio.wait_for(asyncio.gather(alice.disconnect(), bob.disconnect()), DEADLINE)


async def test_a_join_the_validator_refuses_rejects_join_room(
    sim: Simulator, clock: LoopClock
) -> None:
    wire = RTCCafeClientWire(signal_fields={"csrf": "wrong"}, timescale=clock.timescale)
    client = StreamingClient(sim.url, token="mallory", clock=clock, dialect=wire)
    try:
        await asyncio.wait_for(client.connect(), DEADLINE)
        with pytest.raises(RemoteError, match="csrf"):
            await asyncio.wait_for(client.join_room("lobby"), DEADLINE)
        assert sim.rooms().get("lobby") in (None, [], {})
        assert client.is_connected()
    finally:
        await asyncio.wait_for(client.disconnect(), DEADLINE)


async def test_tracks_go_over_the_data_channel_and_survive_a_reconnect(
    sim: Simulator, clock: LoopClock
) -> None:
    """Defined before the peer joins (announced when the channel opens), requested, still
    known after the receiver's reconnect with a new sid, defined and removed live."""

    def make(token: str) -> WebRTCClient:
        wire = RTCCafeClientWire(signal_fields={"csrf": "ok"}, timescale=clock.timescale)
        client = StreamingClient(
            sim.url, token=token, clock=clock, dialect=wire, immediate_first_retry=True
        )
        return WebRTCClient.over(client, name=token)

    alice, bob = make("alice"), make("bob")
    errors: list[Any] = []
    for rtc in (alice, bob):
        assert rtc.client is not None
        rtc.client.on("error", errors.append)
    try:
        assert alice.client is not None and bob.client is not None
        await asyncio.wait_for(alice.join_room("lobby"), DEADLINE)
        cam = alice.add_track(IndexedVideoTrack(), {"label": "front"})
        await asyncio.wait_for(bob.join_room("lobby"), DEADLINE)
        ev = await bob.events.wait_for("peer_track_defined", timeout=DEADLINE)
        assert ev.args == (
            alice.sid,
            {"id": cam, "kind": "video", "description": {"label": "front"}},
        )
        first = bob.sid
        await asyncio.wait_for(bob.reconnect(), DEADLINE)
        rekey = await alice.events.wait_for("reassign_peer_sid", timeout=DEADLINE)
        assert rekey.args == (first, bob.sid) and bob.sid != first
        assert bob.get_peer_track_definitions() == {
            alice.sid: {cam: {"id": cam, "kind": "video", "description": {"label": "front"}}}
        }
        bob.request_peer_track(str(alice.sid), cam)
        ev = await bob.events.wait_for("peer_track_identified", timeout=DEADLINE)
        probe = TrackProbe(ev.args[2])
        report = await probe.frames_at_least(10, timeout=DEADLINE)
        await probe.stop()
        assert report.missing == 0, report
        mark = bob.events.mark()
        mic = alice.add_track(ToneAudioTrack())
        await bob.events.wait_for("peer_track_defined", lambda _s, d: d["id"] == mic, since=mark)
        alice.remove_track(cam)
        gone = await bob.events.wait_for("peer_track_definition_removed", since=mark)
        assert gone.args == (alice.sid, cam, "video", {"label": "front"})
        bob.send_message({"hi": "alice"})  # no server relay on RTCCafe: the channel only
        heard = await alice.events.wait_for("message", timeout=DEADLINE)
        assert heard.args == (bob.sid, {"hi": "alice"})
        assert [e for e in errors if e.get("code") == "unsupported"] == []
    finally:
        await asyncio.wait_for(asyncio.gather(alice.close(), bob.close()), DEADLINE)


async def test_a_bad_definition_over_the_channel_is_an_error_not_a_track() -> None:
    member = RoomMember(lambda _frame: None, tracks_over_server=False)
    try:
        member.handle(
            {"type": "joined", "room": "lobby", "sid": "me", "permanent_id": "me", "peers": []}
        )
        member.handle(
            {"type": "peer_joined", "room": "lobby", "peer": {"sid": "b1", "permanent_id": "bob"}}
        )
        peer = member.peer("b1")
        member._on_channel_message(peer, json.dumps({"t": "define", "track": {"id": "x"}}))
        member._on_channel_message(
            peer, json.dumps({"t": "define", "track": {"id": "v", "kind": "video"}})
        )
        assert [e.args[0] for e in member.events.history if e.name == "webrtc_error"] == [
            "define from b1: bad track {'id': 'x'}"
        ]
        assert member.get_peer_track_definitions() == {
            "b1": {"v": {"id": "v", "kind": "video", "description": {}}}
        }
        member._on_channel_message(peer, json.dumps({"t": "undefine", "track_id": "v"}))
        assert member.get_peer_track_definitions() == {"b1": {}}
    finally:
        await member.close()
