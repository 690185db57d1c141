"""squall.protocol.ringcentral: [meta, body] frames both ways, typed; errors name the rule."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from squall.protocol import ringcentral as rc
from squall.protocol.errors import (
    InvalidMessage,
    MalformedFrame,
    UnknownMessageType,
    UnsupportedFrame,
)

WSC = rc.Wsc("W", 7)


def test_client_request_as_the_sdk_sends_it() -> None:
    """rest.js: method, path, headers, query in the meta; the body as the second element."""
    text = json.dumps(
        [
            {
                "type": "ClientRequest",
                "messageId": "a7b3/0",
                "method": "post",
                "path": "/restapi/v1.0/subscription",
                "headers": {"X-User-Agent": "Unknown/0.0.1 ringcentral-extensible/ws/0.16"},
            },
            {"deliveryMode": {"transportType": "WebSocket"}, "eventFilters": ["/a"]},
        ]
    )
    req = rc.decode_client(text)
    assert req == rc.ClientRequest(
        message_id="a7b3/0",
        method="POST",
        path="/restapi/v1.0/subscription",
        headers={"X-User-Agent": "Unknown/0.0.1 ringcentral-extensible/ws/0.16"},
        body={"deliveryMode": {"transportType": "WebSocket"}, "eventFilters": ["/a"]},
    )
    assert isinstance(req, rc.ClientRequest)
    assert req.route == "POST /restapi/v1.0/subscription"


def test_client_request_without_body_is_one_element() -> None:
    req = rc.ClientRequest("m", "GET", "/restapi/v1.0/account/~", query={"a": "1"})
    text = rc.encode(req)
    assert json.loads(text) == [
        {
            "type": "ClientRequest",
            "messageId": "m",
            "method": "GET",
            "path": "/restapi/v1.0/account/~",
            "headers": {},
            "query": {"a": "1"},
        }
    ]
    assert rc.decode_client(text) == req


def test_heartbeat_both_ways() -> None:
    """index.js pingServer sends [{type, messageId}]; the server's answer adds status and wsc."""
    assert rc.decode_client('[{"type":"Heartbeat","messageId":"h"}]') == rc.Heartbeat("h")
    answer = rc.Heartbeat("h", 200, {}, WSC)
    text = rc.encode(answer)
    assert text == (
        '[{"type":"Heartbeat","messageId":"h","status":200,"headers":{},'
        '"wsc":{"token":"W","sequence":7}}]'
    )
    assert rc.decode_server(text) == answer


def test_connection_details_carries_recovery_state_only_when_set() -> None:
    details = rc.ConnectionDetails(
        message_id="1",
        wsc=rc.Wsc("W", 1),
        creation_time="2024-01-01T00:00:00.000Z",
        max_connections_per_session=5,
        recovery_buffer_size=100,
        recovery_timeout=180.0,
        idle_timeout=900,
        absolute_timeout=86400,
        max_active_requests=10,
    )
    meta, body = json.loads(rc.encode(details))
    assert meta == {
        "type": "ConnectionDetails",
        "messageId": "1",
        "status": 200,
        "headers": {},
        "wsc": {"token": "W", "sequence": 1},
    }
    assert body == {
        "creationTime": "2024-01-01T00:00:00.000Z",
        "maxConnectionsPerSession": 5,
        "recoveryBufferSize": 100,
        "recoveryTimeout": 180,
        "idleTimeout": 900,
        "absoluteTimeout": 86400,
        "maxActiveRequests": 10,
    }
    assert rc.decode_server(rc.encode(details)) == details
    failed = replace(details, recovery_state="Failed", recovery_error_code="WSG-1005")
    body = json.loads(rc.encode(failed))[1]
    assert (body["recoveryState"], body["recoveryErrorCode"]) == ("Failed", "WSG-1005")
    assert rc.decode_server(rc.encode(failed)) == failed


def test_fractional_durations_stay_fractional() -> None:
    assert rc.number(180.0) == 180 and isinstance(rc.number(180.0), int)
    assert rc.number(1.8) == 1.8


def test_error_frame_and_response() -> None:
    err = rc.WsgError(401, "WSG-401", "Unauthorized", "9")
    assert json.loads(rc.encode(err)) == [
        {"type": "Error", "messageId": "9", "status": 401, "headers": {}},
        {"errorCode": "WSG-401", "message": "Unauthorized"},
    ]
    assert rc.decode_server(rc.encode(err)) == err
    ok = rc.ClientResponse("m", 200, {"id": "SUB-1"}, wsc=WSC)
    assert rc.decode_server(rc.encode(ok)) == ok
    empty = rc.ClientResponse("m", 204)
    assert json.loads(rc.encode(empty)) == [
        {"type": "ClientRequest", "messageId": "m", "status": 204, "headers": {}}
    ]


def test_notification_template_equals_the_general_encoder() -> None:
    """The fan-out path splices; it must write exactly what encode() writes."""
    ts = rc.iso8601(1_700_000_000.5)
    note = rc.ServerNotification("42", "42", "/t", ts, "SUB-1", "alice", {"n": 1}, WSC)
    template = rc.NotificationTemplate.build("42", "/t", ts, {"n": 1})
    spliced = template.render(rc.dumps("W"), 7, rc.subscriber("SUB-1", "alice"))
    assert spliced == rc.encode(note)
    assert rc.decode_server(spliced) == note


@given(
    mid=st.text(min_size=1, max_size=8),
    event=st.text(max_size=12),
    token=st.text(max_size=8),
    seq=st.integers(min_value=0, max_value=2**40),
    sub=st.none() | st.text(max_size=6),
    owner=st.none() | st.text(max_size=6),
    payload=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
        max_leaves=6,
    ),
)
def test_template_matches_encode_for_any_values(
    mid, event, token, seq, sub, owner, payload
) -> None:
    note = rc.ServerNotification(mid, mid, event, "T", sub, owner, payload, rc.Wsc(token, seq))
    template = rc.NotificationTemplate.build(mid, event, "T", payload)
    assert template.render(rc.dumps(token), seq, rc.subscriber(sub, owner)) == rc.encode(note)


def test_iso8601_is_utc_with_milliseconds() -> None:
    assert rc.iso8601(0) == "1970-01-01T00:00:00.000Z"
    assert rc.iso8601(1_700_000_000.5) == "2023-11-14T22:13:20.500Z"


@pytest.mark.parametrize(
    ("frame", "error", "message"),
    [
        (
            b"\x00",
            UnsupportedFrame,
            "binary frames are not part of the RingCentral WebSocket protocol (JSON text only)",
        ),
        (
            "[{",
            MalformedFrame,
            "frame is not valid JSON: Expecting property name enclosed in "
            "double quotes: line 1 column 3 (char 2)",
        ),
        (
            '{"type":"Heartbeat"}',
            MalformedFrame,
            "frame must be a JSON array [meta, body], got object",
        ),
        ("[]", MalformedFrame, "frame must be [meta] or [meta, body], got an array of 0 elements"),
        (
            "[{},{},{}]",
            MalformedFrame,
            "frame must be [meta] or [meta, body], got an array of 3 elements",
        ),
        (
            '["Heartbeat"]',
            MalformedFrame,
            "frame's first element (meta) must be an object, got string",
        ),
        ('[{"messageId":"m"}]', InvalidMessage, "meta has no string 'type'"),
        (
            '[{"type":"Teleport","messageId":"m"}]',
            UnknownMessageType,
            "unknown meta.type 'Teleport' (a client sends ClientRequest, Heartbeat)",
        ),
        (
            '[{"type":"ServerNotification","messageId":"m"}]',
            UnknownMessageType,
            "unknown meta.type 'ServerNotification' (a client sends ClientRequest, Heartbeat)",
        ),
        (
            '[{"type":"Heartbeat"}]',
            InvalidMessage,
            "invalid 'Heartbeat' frame: messageId: missing (expected a string)",
        ),
        (
            '[{"type":"Heartbeat","messageId":""}]',
            InvalidMessage,
            "invalid 'Heartbeat' frame: messageId: must not be empty",
        ),
        (
            '[{"type":"ClientRequest","messageId":"m"}]',
            InvalidMessage,
            "invalid 'ClientRequest' frame: method: missing (expected an HTTP method string); "
            "path: missing (expected a path string)",
        ),
        (
            '[{"type":"ClientRequest","messageId":"m","method":"FETCH","path":"x","headers":[],'
            '"query":"a=1"}]',
            InvalidMessage,
            "invalid 'ClientRequest' frame: method: 'FETCH' is not one of DELETE, GET, HEAD, "
            "OPTIONS, PATCH, POST, PUT; path: must start with '/', got 'x'; headers: expected an "
            "object, got array; query: expected an object, got string",
        ),
        (
            '[{"type":"ClientRequest","messageId":7,"method":true,"path":"/a"}]',
            InvalidMessage,
            "invalid 'ClientRequest' frame: messageId: expected a string, got number; method: "
            "expected an HTTP method string, got boolean",
        ),
    ],
)
def test_decode_client_says_what_is_wrong(frame, error, message) -> None:
    with pytest.raises(error) as info:
        rc.decode_client(frame)
    assert type(info.value) is error
    assert str(info.value) == message


def test_errors_keep_the_message_id_to_answer_with() -> None:
    """A frame with a usable messageId gets an answer the SDK matches to its request."""
    with pytest.raises(UnknownMessageType) as unknown:
        rc.decode_client('[{"type":"Teleport","messageId":"m1"}]')
    assert (unknown.value.type, unknown.value.ref) == ("Teleport", "m1")
    with pytest.raises(InvalidMessage) as invalid:
        rc.decode_client('[{"type":"ClientRequest","messageId":"m2","path":"/a"}]')
    assert (invalid.value.type, invalid.value.ref) == ("ClientRequest", "m2")
    assert invalid.value.problems == ["method: missing (expected an HTTP method string)"]
    with pytest.raises(InvalidMessage) as anonymous:
        rc.decode_client('[{"type":"Heartbeat","messageId":3}]')
    assert anonymous.value.ref is None


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (
            '[{"type":"ConnectionDetails","messageId":"1","status":200},{"creationTime":"t"}]',
            "invalid 'ConnectionDetails' frame: body.maxConnectionsPerSession: missing (expected "
            "an integer); body.recoveryBufferSize: missing (expected an integer); "
            "body.recoveryTimeout: missing (expected a number); body.idleTimeout: missing "
            "(expected a number); "
            "body.absoluteTimeout: missing (expected a number); body.maxActiveRequests: missing "
            "(expected an integer)",
        ),
        (
            '[{"type":"ServerNotification","messageId":"1","status":200,'
            '"wsc":{"token":1,"sequence":-1}},{"event":"/t","subscriptionId":"S"}]',
            "invalid 'ServerNotification' frame: wsc.token: expected a string, got number; "
            "wsc.sequence: expected an integer >= 0, got -1",
        ),
        (
            '[{"type":"Error","status":401}]',
            "invalid 'Error' frame: body: expected an object, got none",
        ),
        (
            '[{"type":"ClientRequest","messageId":"m","status":"200"}]',
            "invalid 'ClientRequest' frame: status: expected an integer status, got string",
        ),
    ],
)
def test_decode_server_says_what_is_wrong(frame, message) -> None:
    with pytest.raises(InvalidMessage) as info:
        rc.decode_server(frame)
    assert str(info.value) == message


def test_decode_server_reads_a_real_gateway_notification() -> None:
    """The example of developers.ringcentral.com/guide/notifications/websockets/receiving."""
    text = json.dumps(
        [
            {
                "type": "ServerNotification",
                "messageId": "2661273919712564939",
                "status": 200,
                "headers": {"RCRequestId": "265348d0-xxxx"},
                "wsc": {"token": "G86G3HLB9HJH45MU7D", "sequence": 4},
            },
            {
                "uuid": "2661273919712564939",
                "event": "/restapi/v1.0/account/233676004/extension/233676004/message-store",
                "timestamp": "2023-04-18T20:25:24.611Z",
                "subscriptionId": "2db5fcc4-xxxx",
                "ownerId": "233676004",
                "body": {"accountId": 233676004},
            },
        ]
    )
    note = rc.decode_server(text)
    assert isinstance(note, rc.ServerNotification)
    assert note.wsc == rc.Wsc("G86G3HLB9HJH45MU7D", 4)
    assert (note.subscription_id, note.body) == ("2db5fcc4-xxxx", {"accountId": 233676004})


def test_values_validate_themselves() -> None:
    with pytest.raises(ValueError, match=re.escape("wsc.sequence must be >= 0, got -1")):
        rc.Wsc("t", -1)
    with pytest.raises(TypeError, match=re.escape("wsc.sequence must be an integer, got True")):
        rc.Wsc("t", True)
    with pytest.raises(ValueError, match="status must be an HTTP status"):
        rc.ClientResponse("m", 99)
    with pytest.raises(ValueError, match="method must be one of"):
        rc.ClientRequest("m", "get", "/a")
    with pytest.raises(ValueError, match="recovery_error_code needs a recovery_state"):
        rc.ConnectionDetails("1", None, "t", 1, 1, 1, 1, 1, 1, None, "WSG-1005")
