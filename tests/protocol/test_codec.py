"""The sans-I/O codec: every message round-trips; every bad frame gets a typed, worded error."""

from __future__ import annotations

import pytest

from squall.protocol import (
    InvalidMessage,
    MalformedFrame,
    UnknownMessageType,
    decode_client,
    decode_server,
    encode,
)
from squall.protocol import messages as m

CLIENT_EXAMPLES = [
    m.Auth(token="t", recovery_token="r"),
    m.Ping(id=1),
    m.Pong(id="srv-1"),
    m.Subscribe(id=1, topics=["a", "b"]),
    m.Unsubscribe(id=2, topics=["a"]),
    m.Call(id=3, method="echo", params={"x": [1]}, no_reply=True),
    m.ReconnectResponse(status="pending"),
    m.Join(id=4, room="lobby", permanent_id="p", prev_sid="c1"),
    m.Leave(id=5, room="lobby"),
    m.SendSignal(room="lobby", to="c2", kind="offer", data={"sdp": "v=0"}),
    m.TrackDefine(room="lobby", track=m.TrackDefinition(id="cam", kind="video")),
    m.TrackRemove(room="lobby", track_id="cam"),
    m.TrackRequest(room="lobby", to="c2", track_id="cam"),
]

SERVER_EXAMPLES = [
    m.Authenticated(
        session="s1",
        sid="c1",
        user="u",
        recovery_token="r",
        heartbeat=30,
        recovery_buffer_size=100,
        recovery_window=180,
    ),
    m.AuthFailed(reason="expired_token", message="m"),
    m.Recovery(recovered=False, replayed=3, lost=2, subscriptions=["a"], reason="overflow"),
    m.Notification(seq=7, topic="a", payload=None),
    m.Result(id=1, result=[1]),
    m.Error(id=1, code="busy", message="later", data={"retry": 1}),
    m.ReconnectRequest(deadline=600, answer_within=1),
    m.Joined(room="r", sid="c1", permanent_id="p", peers=[m.Peer(sid="c2", permanent_id="q")]),
    m.PeerSidReassigned(room="r", permanent_id="p", old_sid="c1", new_sid="c9"),
    m.Signal(room="r", sender="c1", from_permanent_id="p", kind="candidate", data={"c": 1}),
    m.TrackRequested(room="r", sender="c2", track_id="cam"),
]


@pytest.mark.parametrize("msg", CLIENT_EXAMPLES, ids=lambda x: x.type)
def test_client_messages_round_trip(msg: m.Message) -> None:
    assert decode_client(encode(msg)) == msg


@pytest.mark.parametrize("msg", SERVER_EXAMPLES, ids=lambda x: x.type)
def test_server_messages_round_trip(msg: m.Message) -> None:
    assert decode_server(encode(msg)) == msg


def test_signal_uses_from_on_the_wire() -> None:
    text = encode(m.Signal(room="r", sender="c1", from_permanent_id="p", kind="offer"))
    assert text == '{"type":"signal","room":"r","from":"c1","from_permanent_id":"p","kind":"offer"}'


def test_bytes_are_decoded_as_utf8() -> None:
    assert decode_client(b'{"type":"ping","id":1}') == m.Ping(id=1)


@pytest.mark.parametrize(
    ("frame", "error", "close_code", "text"),
    [
        (
            "{",
            MalformedFrame,
            1007,
            "frame is not valid JSON: EOF while parsing an object at line 1 column 1",
        ),
        ("3", MalformedFrame, 1007, "frame must be a JSON object, got int"),
        (b"\xc3\x28", MalformedFrame, 1007, "frame is not valid UTF-8 at byte 0"),
        ('{"id": 1}', InvalidMessage, None, "message has no string 'type' field"),
        ('{"type": 5}', InvalidMessage, None, "message has no string 'type' field"),
        (
            '{"type": "authenticated"}',
            UnknownMessageType,
            None,
            "unknown message type 'authenticated' (expected one of: auth, call, join, leave, ping, "
            "pong, reconnect_response, signal, subscribe, track_define, track_remove, "
            "track_request, "
            "unsubscribe)",
        ),
        (
            '{"type": "call", "id": 1}',
            InvalidMessage,
            None,
            "invalid 'call' message: method: Field required",
        ),
        (
            '{"type": "reconnect_response", "status": "later"}',
            InvalidMessage,
            None,
            "invalid 'reconnect_response' message: status: Input should be 'pending' or 'done'",
        ),
    ],
)
def test_bad_frames_are_explained(frame, error, close_code, text) -> None:
    with pytest.raises(error) as info:
        decode_client(frame)
    assert info.value.close_code == close_code
    assert str(info.value) == text


def test_errors_keep_the_reference_of_the_bad_frame() -> None:
    with pytest.raises(InvalidMessage) as info:
        decode_client('{"type": "subscribe", "id": "req-9", "topics": [""]}')
    assert info.value.ref == "req-9"
    assert info.value.problems == ["topics.0: String should have at least 1 character"]
