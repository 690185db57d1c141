"""The Mixer chat codec (squall.protocol.mixer): packets both ways, and errors that say why."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from squall.protocol import mixer
from squall.protocol.errors import (
    InvalidMessage,
    MalformedFrame,
    UnknownMessageType,
    UnsupportedFrame,
)

# --- client -> server -------------------------------------------------------------------------


def test_decodes_what_the_sdk_sends() -> None:
    """Socket.js:412 sends {type, method, arguments, id}; ids count up from 0."""
    text = '{"type":"method","method":"msg","arguments":["Hello world!"],"id":0}'
    assert mixer.decode_client(text) == mixer.Method("msg", ["Hello world!"], 0)


def test_extra_fields_are_ignored() -> None:
    packet = mixer.decode_client('{"type":"method","method":"ping","arguments":[],"id":3,"x":1}')
    assert packet == mixer.Method("ping", [], 3)


def test_binary_is_not_a_packet() -> None:
    with pytest.raises(UnsupportedFrame, match=r"binary frames are not Mixer chat packets \(2 "):
        mixer.decode_client(b"{}")


@pytest.mark.parametrize(
    "text", ['{"type": "method",', "", "NaN", '{"id": Infinity}', "[" * 100_000]
)
def test_text_that_is_not_json_is_unotjson(text: str) -> None:
    with pytest.raises(MalformedFrame) as err:
        mixer.decode_client(text)
    assert err.value.code == mixer.UNOTJSON
    assert str(err.value).startswith("packet is not valid JSON: ")


@pytest.mark.parametrize(
    ("text", "kind"), [("[1, 2]", "array"), ('"auth"', "string"), ("7", "number"), ("null", "null")]
)
def test_json_that_is_not_an_object(text: str, kind: str) -> None:
    with pytest.raises(InvalidMessage) as err:
        mixer.decode_client(text)
    assert str(err.value) == f"packet must be a JSON object, got {kind}"
    assert err.value.code == "invalid_packet"


def test_packet_without_a_type() -> None:
    with pytest.raises(InvalidMessage, match=r"packet has no string 'type' \(got null\)") as err:
        mixer.decode_client('{"method":"msg","arguments":[],"id":4}')
    assert err.value.ref == 4


def test_unknown_packet_type_keeps_the_id() -> None:
    with pytest.raises(UnknownMessageType) as err:
        mixer.decode_client('{"type":"reply","id":9,"error":null}')
    assert str(err.value) == "unknown packet type 'reply' (a client sends 'method')"
    assert (err.value.type, err.value.ref, err.value.code) == ("reply", 9, "unknown_type")


@pytest.mark.parametrize(
    ("packet", "problems", "ref"),
    [
        ({"method": "msg", "arguments": []}, ["'id' is missing"], None),
        (
            {"method": "msg", "arguments": [], "id": "1"},
            ["'id' must be an integer, got string"],
            None,
        ),
        (
            {"method": "msg", "arguments": [], "id": True},
            ["'id' must be an integer, got boolean"],
            None,
        ),
        ({"method": "msg", "id": 2}, ["'arguments' is missing"], 2),
        (
            {"method": "msg", "arguments": {"a": 1}, "id": 2},
            ["'arguments' must be an array, got object"],
            2,
        ),
        (
            {"method": 5, "arguments": [], "id": 3},
            ["'method' must be a non-empty string, got number"],
            3,
        ),
        (
            {"method": "", "arguments": [], "id": 3},
            ["'method' must be a non-empty string, got string"],
            3,
        ),
    ],
)
def test_method_packet_fields_are_named(packet: dict, problems: list[str], ref: int | None) -> None:
    with pytest.raises(InvalidMessage) as err:
        mixer.decode_client(json.dumps({"type": "method", **packet}))
    assert err.value.problems == problems
    assert err.value.ref == ref
    assert str(err.value).endswith(": " + "; ".join(problems))


def test_every_wrong_field_at_once() -> None:
    with pytest.raises(InvalidMessage) as err:
        mixer.decode_client('{"type":"method","method":null,"arguments":1}')
    assert str(err.value) == (
        "invalid 'method' method packet: 'method' must be a non-empty string, got null; "
        "'arguments' must be an array, got number; 'id' is missing"
    )


# --- auth arguments ----------------------------------------------------------------------------


def test_auth_arguments_as_the_sdk_sends_them() -> None:
    """Socket.js:381 keeps [id, user, authkey, accessKey]; undefined becomes null in JSON."""
    args = mixer.auth_arguments([1, 456, "key", None])
    assert args == mixer.AuthArguments(1, 456, "key", None)
    assert not args.anonymous
    assert args.to_arguments() == [1, 456, "key", None]


@pytest.mark.parametrize("arguments", [[12345], [12345, None, None, None], [12345, 7, None]])
def test_anonymous_auth_has_no_authkey(arguments: list) -> None:
    assert mixer.auth_arguments(arguments).anonymous


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ([], "expected 1 to 4 arguments, got 0"),
        ([1, 2, "k", None, 5], "expected 1 to 4 arguments, got 5"),
        (["1", 2, "k"], "channelId must be an integer, got string"),
        ([True], "channelId must be an integer, got boolean"),
        ([1, "456", "k"], "userId must be an integer or null, got string"),
        ([1, 2, 3], "authKey must be a string or null, got number"),
        ([1, 2, "k", 4], "accessKey must be a string or null, got number"),
    ],
)
def test_bad_auth_arguments_are_named(arguments: list, problem: str) -> None:
    with pytest.raises(InvalidMessage) as err:
        mixer.auth_arguments(arguments, ref=5)
    assert problem in err.value.problems
    assert (err.value.type, err.value.ref) == ("auth", 5)


# --- server -> client --------------------------------------------------------------------------


def test_reply_and_event_text() -> None:
    assert mixer.encode(mixer.Reply(2, {"authenticated": True, "roles": ["User"]})) == (
        '{"type":"reply","error":null,"id":2,"data":{"authenticated":true,"roles":["User"]}}'
    )
    assert mixer.encode(mixer.Reply(0, None, mixer.UNOTFOUND)) == (
        '{"type":"reply","error":"UNOTFOUND","id":0,"data":null}'
    )
    assert mixer.encode(mixer.Event("WelcomeEvent", {"server": "u"})) == (
        '{"type":"event","event":"WelcomeEvent","data":{"server":"u"}}'
    )


def test_error_object_carries_data_only_when_there_is_some() -> None:
    plain = mixer.ErrorPacket(mixer.ErrorCode.AUTH_SERVER_ERROR, "try later")
    assert plain.to_json() == {"code": 4006, "message": "try later", "stacktrace": ""}
    assert mixer.ErrorPacket(1, "UNOTFOUND", "", {}).to_json()["data"] == {}


def test_event_fast_path_matches_the_general_encoder() -> None:
    data = {"message": {"message": [{"type": "text", "text": "héllo \u2603"}]}, "n": [1, 2.5, None]}
    assert mixer.encode_event("ChatMessage", data) == mixer.encode(mixer.Event("ChatMessage", data))
    assert json.loads(mixer.encode_event("ChatMessage", data))["data"] == data


@pytest.mark.parametrize(
    "packet",
    [
        mixer.Reply(3, [1, 2]),
        mixer.Reply(None, None, mixer.UNOTJSON),
        mixer.Reply(4, None, mixer.ErrorPacket(4004, "bad", "", {"x": 1})),
        mixer.Reply(5, None, mixer.ErrorPacket(4000, "no handler")),
        mixer.Event("UserJoin", {"id": 1, "username": "u", "roles": ["User"]}),
    ],
)
def test_server_packets_round_trip(packet: mixer.Reply | mixer.Event) -> None:
    assert mixer.decode_server(mixer.encode(packet)) == packet


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            '{"type":"teleport"}',
            "unknown packet type 'teleport' (a server sends 'reply' or 'event')",
        ),
        (
            '{"type":"event","event":1}',
            "invalid event packet: 'event' must be a string, got number",
        ),
        ('{"type":"reply","id":"1"}', "invalid reply packet: 'id' must be an integer, got string"),
        (
            '{"type":"reply","id":1,"error":5}',
            "invalid reply packet: 'error' must be null, a string",
        ),
    ],
)
def test_bad_server_packets_are_named(text: str, error: str) -> None:
    with pytest.raises((InvalidMessage, UnknownMessageType)) as err:
        mixer.decode_server(text)
    assert str(err.value).startswith(error)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), {1, 2}])
def test_what_json_cannot_hold_is_refused_at_encode(value: Any) -> None:
    """JSON.parse would reject the packet client-side; the encoder names it instead."""
    with pytest.raises((ValueError, TypeError)):
        mixer.encode(mixer.Reply(1, [value]))
    with pytest.raises((ValueError, TypeError)):
        mixer.encode_event("ChatMessage", {"x": value})


methods = st.builds(
    mixer.Method,
    method=st.text(min_size=1),
    arguments=st.lists(
        st.none()
        | st.booleans()
        | st.integers()
        | st.text()
        | st.floats(allow_nan=False, allow_infinity=False)
    ),
    id=st.integers(),
)


@given(methods)
def test_method_round_trip(packet: mixer.Method) -> None:
    assert mixer.decode_client(mixer.encode(packet)) == packet


# --- secrets -----------------------------------------------------------------------------------


def test_redact_masks_authkey_and_access_key_only() -> None:
    packet = mixer.Method("auth", [1, 456, "s3cret", "access"], 0)
    assert mixer.redact_method(packet) == mixer.Method("auth", [1, 456, "***", "***"], 0)
    anonymous = mixer.Method("auth", [1, None, None, None], 0)
    assert mixer.redact_method(anonymous) == anonymous
    msg = mixer.Method("msg", ["not", "secret"], 1)
    assert mixer.redact_method(msg) is msg


def test_redact_text_masks_an_auth_packet_that_did_not_decode() -> None:
    cut = '{"type":"method","method":"auth","arguments":[1,456,"s3cret","acc'
    shown = mixer.redact_text(cut)
    assert "s3cret" not in shown and "acc" not in shown
    assert shown.startswith('{"type":"method","method":"auth","arguments":[1,456,"***"')
    other = '{"type":"method","method":"msg","arguments":["hello"'
    assert mixer.redact_text(other) == other
