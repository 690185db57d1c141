"""RingCentral's WebSocket gateway (WSG) wire format, sans-I/O: ``[meta, body]`` JSON arrays.

Read from the published SDK, ``@rc-ex/ws`` 1.4.2 (``dist/cjs``), which is the final word:

- every frame, both ways, is a JSON array: ``[meta]`` or ``[meta, body]``
  (``utils.js`` ``splitWsgData``: ``JSON.parse`` then destructuring);
- ``meta.type`` is one of ``ClientRequest``, ``ServerNotification``, ``Error``,
  ``ConnectionDetails``, ``Heartbeat`` (``types.d.ts`` ``WsgMeta``). A client sends
  ``ClientRequest`` (a REST call: ``method``, ``path``, ``headers``, ``query``, the body
  as the second element, ``rest.js``) and ``Heartbeat`` (``index.js`` ``pingServer``);
- a server frame carries ``wsc {token, sequence}`` (``index.js`` newWsc listener);
  a response reuses the request's ``messageId`` (``rest.js`` matches on it alone).

This module parses and builds those frames as typed values and says, with a
:class:`~squall.protocol.errors.ProtocolError` subclass, what is wrong with one
that does not parse. It reads no clock and does no I/O: timestamps come in as
epoch seconds. :class:`NotificationTemplate` is the fan-out's fast path: a
notification encoded once per publication, with the per-session ``wsc`` and
subscription spliced in when it is sent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from . import jsontext
from .errors import InvalidMessage, MalformedFrame, UnknownMessageType, UnsupportedFrame

#: meta.type values a client may send (``@rc-ex/ws`` sends only these)
CLIENT_TYPES = frozenset({"ClientRequest", "Heartbeat"})
#: meta.type values a server may send (``types.d.ts`` ``WsgMeta.type``)
SERVER_TYPES = frozenset(
    {"ClientRequest", "ServerNotification", "Error", "ConnectionDetails", "Heartbeat"}
)
#: HTTP verbs a ClientRequest may carry (upper-cased on decode)
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})

RecoveryState = Literal["Successful", "Failed"]

_COMPACT = (",", ":")


def dumps(value: Any) -> str:
    """Compact JSON, UTF-8 kept as is: the one encoding every frame of this module uses."""
    return json.dumps(value, separators=_COMPACT, ensure_ascii=False)


def iso8601(epoch: float) -> str:
    """``1700000000.5`` -> ``2023-11-14T22:13:20.500Z``: RingCentral's timestamp form."""
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def number(value: float) -> int | float:
    """``180.0`` -> ``180``: durations are integers on the wire unless they are not."""
    return int(value) if float(value).is_integer() else value


@dataclass(frozen=True, slots=True)
class Wsc:
    """The WebSocket session context: a recovery token and the frame's sequence number."""

    token: str
    sequence: int

    def __post_init__(self) -> None:
        if not isinstance(self.token, str):
            raise TypeError(f"wsc.token must be a string, got {type(self.token).__name__}")
        if isinstance(self.sequence, bool) or not isinstance(self.sequence, int):
            raise TypeError(f"wsc.sequence must be an integer, got {self.sequence!r}")
        if self.sequence < 0:
            raise ValueError(f"wsc.sequence must be >= 0, got {self.sequence}")

    def to_json(self) -> dict[str, Any]:
        return {"token": self.token, "sequence": self.sequence}


# --- client -> server --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClientRequest:
    """A REST call over the socket (``rest.js`` ``request``). ``body`` None: no second element."""

    message_id: str
    method: str
    path: str
    headers: Mapping[str, Any] = field(default_factory=dict)
    query: Mapping[str, Any] | None = None
    body: Any = None
    type: ClassVar[str] = "ClientRequest"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {sorted(METHODS)}, got {self.method!r}")

    @property
    def route(self) -> str:
        """``GET /restapi/v1.0/account/~``: the key ``on_rpc`` rules are scripted under."""
        return f"{self.method} {self.path}"


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """The keepalive, both ways: the client's has no status; the server's answer has 200."""

    message_id: str | None = None
    status: int | None = None
    headers: Mapping[str, Any] | None = None
    wsc: Wsc | None = None
    type: ClassVar[str] = "Heartbeat"


# --- server -> client --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConnectionDetails:
    """The first frame of every connection (``index.js`` waits for it, or ``Error``, 60 s).

    ``recovery_state`` is set only when the client presented a ``wsc`` token.
    """

    message_id: str
    wsc: Wsc | None
    creation_time: str
    max_connections_per_session: int
    recovery_buffer_size: int
    recovery_timeout: float
    idle_timeout: float
    absolute_timeout: float
    max_active_requests: int
    recovery_state: RecoveryState | None = None
    recovery_error_code: str | None = None
    status: int = 200
    headers: Mapping[str, Any] = field(default_factory=dict)
    type: ClassVar[str] = "ConnectionDetails"

    def __post_init__(self) -> None:
        if self.recovery_state not in (None, "Successful", "Failed"):
            raise ValueError(
                f"recovery_state must be Successful or Failed, got {self.recovery_state!r}"
            )
        if self.recovery_error_code is not None and self.recovery_state is None:
            raise ValueError("recovery_error_code needs a recovery_state")


@dataclass(frozen=True, slots=True)
class ClientResponse:
    """The answer to a ClientRequest: its ``messageId``, an HTTP status and the response body.

    On the wire its meta.type is ``ClientRequest`` too; ``rest.js`` takes 2xx of that type as
    success and anything else as a ``RestException``.
    """

    message_id: str
    status: int
    body: Any = None
    headers: Mapping[str, Any] = field(default_factory=dict)
    wsc: Wsc | None = None
    type: ClassVar[str] = "ClientRequest"

    def __post_init__(self) -> None:
        if isinstance(self.status, bool) or not isinstance(self.status, int):
            raise TypeError(f"status must be an integer, got {self.status!r}")
        if not 100 <= self.status <= 599:
            raise ValueError(f"status must be an HTTP status (100-599), got {self.status}")


@dataclass(frozen=True, slots=True)
class ServerNotification:
    """One event; ``subscription.js`` hands it on only if ``subscriptionId`` is its own."""

    message_id: str
    uuid: str
    event: str
    timestamp: str
    subscription_id: str | None
    owner_id: str | None
    body: Any = None
    wsc: Wsc | None = None
    status: int = 200
    headers: Mapping[str, Any] = field(default_factory=dict)
    type: ClassVar[str] = "ServerNotification"


@dataclass(frozen=True, slots=True)
class WsgError:
    """An ``Error`` frame: ``{errorCode, message}`` with an HTTP-like status in the meta.

    Before ``ConnectionDetails`` it fails the connect (``index.js`` throws
    ``ConnectionException``); with a request's ``messageId`` it fails that request.
    """

    status: int
    error_code: str
    message: str
    message_id: str | None = None
    wsc: Wsc | None = None
    headers: Mapping[str, Any] = field(default_factory=dict)
    type: ClassVar[str] = "Error"


ClientFrame = ClientRequest | Heartbeat
ServerFrame = ConnectionDetails | ClientResponse | ServerNotification | WsgError | Heartbeat
Frame = ClientFrame | ServerFrame


# --- encoding ----------------------------------------------------------------------------------


def _meta(msg: Any, **fields: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"type": msg.type}
    if getattr(msg, "message_id", None) is not None:
        meta["messageId"] = msg.message_id
    meta.update({k: v for k, v in fields.items() if v is not None})
    wsc = getattr(msg, "wsc", None)
    if wsc is not None:
        meta["wsc"] = wsc.to_json()
    return meta


def to_wire(msg: Frame) -> list[Any]:
    """The ``[meta]`` / ``[meta, body]`` array of one frame, as plain JSON values."""
    match msg:
        case ClientRequest():
            meta = {
                "type": msg.type,
                "messageId": msg.message_id,
                "method": msg.method,
                "path": msg.path,
                "headers": dict(msg.headers),
            }
            if msg.query is not None:
                meta["query"] = dict(msg.query)
            return [meta] if msg.body is None else [meta, msg.body]
        case Heartbeat():
            headers = dict(msg.headers) if msg.headers is not None else None
            return [_meta(msg, status=msg.status, headers=headers)]
        case ConnectionDetails():
            body: dict[str, Any] = {
                "creationTime": msg.creation_time,
                "maxConnectionsPerSession": msg.max_connections_per_session,
                "recoveryBufferSize": msg.recovery_buffer_size,
                "recoveryTimeout": number(msg.recovery_timeout),
                "idleTimeout": number(msg.idle_timeout),
                "absoluteTimeout": number(msg.absolute_timeout),
                "maxActiveRequests": msg.max_active_requests,
            }
            if msg.recovery_state is not None:
                body["recoveryState"] = msg.recovery_state
            if msg.recovery_error_code is not None:
                body["recoveryErrorCode"] = msg.recovery_error_code
            return [_meta(msg, status=msg.status, headers=dict(msg.headers)), body]
        case ClientResponse():
            meta = _meta(msg, status=msg.status, headers=dict(msg.headers))
            return [meta] if msg.body is None else [meta, msg.body]
        case ServerNotification():
            return [
                _meta(msg, status=msg.status, headers=dict(msg.headers)),
                {
                    "uuid": msg.uuid,
                    "event": msg.event,
                    "timestamp": msg.timestamp,
                    "subscriptionId": msg.subscription_id,
                    "ownerId": msg.owner_id,
                    "body": msg.body,
                },
            ]
        case WsgError():
            return [
                _meta(msg, status=msg.status, headers=dict(msg.headers)),
                {"errorCode": msg.error_code, "message": msg.message},
            ]
    raise TypeError(f"not a RingCentral frame: {type(msg).__name__}")  # pragma: no cover


def encode(msg: Frame) -> str:
    """One text frame."""
    return dumps(to_wire(msg))


@dataclass(frozen=True, slots=True)
class NotificationTemplate:
    """A ServerNotification encoded once per publication; :meth:`render` splices one session in.

    ``render(token_json, sequence, subscriber)`` equals ``encode(ServerNotification(...))``
    for the same values, at the cost of one string join.
    """

    head: str
    middle: str
    tail: str

    @classmethod
    def build(cls, message_id: str, event: str, timestamp: str, body: Any) -> NotificationTemplate:
        mid = dumps(message_id)
        return cls(
            head=f'[{{"type":"ServerNotification","messageId":{mid},"status":200,"headers":{{}},'
            '"wsc":{"token":',
            middle=f'}}}},{{"uuid":{mid},"event":{dumps(event)},"timestamp":{dumps(timestamp)},'
            '"subscriptionId":',
            tail=f',"body":{dumps(body)}}}]',
        )

    def render(self, token_json: str, sequence: int, subscriber: str) -> str:
        return f'{self.head}{token_json},"sequence":{sequence}{self.middle}{subscriber}{self.tail}'


def subscriber(subscription_id: str | None, owner_id: str | None) -> str:
    """The per-session part of a notification body, for :meth:`NotificationTemplate.render`."""
    return f'{dumps(subscription_id)},"ownerId":{dumps(owner_id)}'


# --- decoding ----------------------------------------------------------------------------------


def _kind(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        type(value), "null" if value is None else "number"
    )


def _split(data: str | bytes) -> tuple[dict[str, Any], Any, bool]:
    """``[meta, body]`` out of one frame; MalformedFrame unless it has that shape."""
    if isinstance(data, bytes | bytearray | memoryview):
        raise UnsupportedFrame(
            "binary frames are not part of the RingCentral WebSocket protocol (JSON text only)"
        )
    try:
        # Strict (jsontext): no NaN, no number beyond a double, no lone surrogate, no nesting
        # past jsontext.MAX_DEPTH: the dialect echoes messageId and records what it reads.
        value = jsontext.loads(data)
    except ValueError as exc:
        raise MalformedFrame(f"frame is not valid JSON: {exc}") from None
    if not isinstance(value, list):
        raise MalformedFrame(f"frame must be a JSON array [meta, body], got {_kind(value)}")
    if not 1 <= len(value) <= 2:
        raise MalformedFrame(
            f"frame must be [meta] or [meta, body], got an array of {len(value)} elements"
        )
    meta = value[0]
    if not isinstance(meta, dict):
        raise MalformedFrame(f"frame's first element (meta) must be an object, got {_kind(meta)}")
    return meta, value[1] if len(value) == 2 else None, len(value) == 2


def _message_id(meta: dict[str, Any]) -> str | None:
    value = meta.get("messageId")
    return value if isinstance(value, str) and value else None


def _type(meta: dict[str, Any], known: frozenset[str], who: str) -> str:
    mtype = meta.get("type")
    ref = _message_id(meta)
    if not isinstance(mtype, str):
        raise InvalidMessage("meta has no string 'type'", ref=ref, problems=["type: missing"])
    if mtype not in known:
        raise UnknownMessageType(
            f"unknown meta.type {mtype!r} (a {who} sends {', '.join(sorted(known))})",
            type=mtype,
            ref=ref,
        )
    return mtype


class _Fields:
    """Collects every problem of one meta, so the error names them all."""

    def __init__(self, mtype: str, meta: dict[str, Any], where: str = "") -> None:
        self.mtype = mtype
        self.meta = meta
        self.where = where  # "body." for the second element
        self.problems: list[str] = []

    def get(self, key: str, kinds: tuple[type, ...], *, required: bool, what: str) -> Any:
        value = self.meta.get(key)
        if value is None:
            if required:
                self.problems.append(f"{self.where}{key}: missing (expected {what})")
            return None
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            self.problems.append(f"{self.where}{key}: expected {what}, got {_kind(value)}")
            return None
        return value

    def check(self) -> None:
        if self.problems:
            raise InvalidMessage(
                f"invalid {self.mtype!r} frame: " + "; ".join(self.problems),
                type=self.mtype,
                ref=_message_id(self.meta),
                problems=self.problems,
            )


def decode_client(data: str | bytes) -> ClientFrame:
    """Parse a frame a client sent: a :class:`ClientRequest` or a :class:`Heartbeat`.

    Raises UnsupportedFrame (binary), MalformedFrame (not ``[meta, body?]``),
    UnknownMessageType (a meta.type clients do not send) or InvalidMessage (fields).
    """
    meta, body, _ = _split(data)
    mtype = _type(meta, CLIENT_TYPES, "client")
    f = _Fields(mtype, meta)
    message_id = f.get("messageId", (str,), required=True, what="a string")
    if message_id == "":
        f.problems.append("messageId: must not be empty")
    if mtype == "Heartbeat":
        f.check()
        return Heartbeat(message_id=message_id)
    method = f.get("method", (str,), required=True, what="an HTTP method string")
    if method is not None and method.upper() not in METHODS:
        f.problems.append(f"method: {method!r} is not one of {', '.join(sorted(METHODS))}")
    path = f.get("path", (str,), required=True, what="a path string")
    if path is not None and not path.startswith("/"):
        f.problems.append(f"path: must start with '/', got {path!r}")
    headers = f.get("headers", (dict,), required=False, what="an object")
    query = f.get("query", (dict,), required=False, what="an object")
    f.check()
    return ClientRequest(
        message_id=message_id,
        method=method.upper(),
        path=path,
        headers=headers or {},
        query=query,
        body=body,
    )


def decode_server(data: str | bytes) -> ServerFrame:
    """Parse a frame a server sent (what a client, or a test, reads). Same errors as above."""
    meta, body, has_body = _split(data)
    mtype = _type(meta, SERVER_TYPES, "server")
    f = _Fields(mtype, meta)
    message_id = f.get("messageId", (str,), required=mtype != "Error", what="a string")
    status = f.get("status", (int,), required=mtype != "Heartbeat", what="an integer status")
    headers = f.get("headers", (dict,), required=False, what="an object") or {}
    wsc = _wsc(f)
    if mtype == "Heartbeat":
        f.check()
        return Heartbeat(message_id, status, headers if "headers" in meta else None, wsc)
    if mtype == "ClientRequest":
        if status is not None and not 100 <= status <= 599:
            f.problems.append(f"status: expected an HTTP status (100-599), got {status}")
        f.check()
        return ClientResponse(message_id, status, body, headers, wsc)
    if not isinstance(body, dict):
        f.problems.append(f"body: expected an object, got {_kind(body) if has_body else 'none'}")
        f.check()
    b = _Fields(mtype, body, "body.")
    if mtype == "Error":
        code = b.get("errorCode", (str,), required=True, what="a string")
        text = b.get("message", (str,), required=False, what="a string") or ""
        f.problems += b.problems
        f.check()
        return WsgError(status, code, text, message_id, wsc, headers)
    if mtype == "ServerNotification":
        uuid = b.get("uuid", (str,), required=False, what="a string") or ""
        event = b.get("event", (str,), required=True, what="a string")
        ts = b.get("timestamp", (str,), required=False, what="a string") or ""
        sub = b.get("subscriptionId", (str,), required=True, what="a string")
        owner = b.get("ownerId", (str,), required=False, what="a string")
        f.problems += b.problems
        f.check()
        return ServerNotification(
            message_id, uuid, event, ts, sub, owner, body.get("body"), wsc, status, headers
        )
    nums = (int, float)
    creation = b.get("creationTime", (str,), required=True, what="a string")
    max_conn = b.get("maxConnectionsPerSession", (int,), required=True, what="an integer")
    buffer_size = b.get("recoveryBufferSize", (int,), required=True, what="an integer")
    recovery_timeout = b.get("recoveryTimeout", nums, required=True, what="a number")
    idle = b.get("idleTimeout", nums, required=True, what="a number")
    absolute = b.get("absoluteTimeout", nums, required=True, what="a number")
    max_requests = b.get("maxActiveRequests", (int,), required=True, what="an integer")
    state = _recovery_state(b)
    error_code = b.get("recoveryErrorCode", (str,), required=False, what="a string")
    if error_code is not None and state is None:
        b.problems.append("body.recoveryErrorCode: present without recoveryState")
    f.problems += b.problems
    f.check()
    return ConnectionDetails(
        message_id=message_id,
        wsc=wsc,
        creation_time=creation,
        max_connections_per_session=max_conn,
        recovery_buffer_size=buffer_size,
        recovery_timeout=recovery_timeout,
        idle_timeout=idle,
        absolute_timeout=absolute,
        max_active_requests=max_requests,
        recovery_state=state,
        recovery_error_code=error_code,
        status=status,
        headers=headers,
    )


def _recovery_state(b: _Fields) -> RecoveryState | None:
    state = b.meta.get("recoveryState")
    if state is None or state in ("Successful", "Failed"):
        return state
    b.problems.append(f"{b.where}recoveryState: expected Successful or Failed, got {state!r}")
    return None


def _wsc(f: _Fields) -> Wsc | None:
    raw = f.get("wsc", (dict,), required=False, what="an object {token, sequence}")
    if raw is None:
        return None
    token, sequence = raw.get("token"), raw.get("sequence")
    if not isinstance(token, str):
        f.problems.append(f"wsc.token: expected a string, got {_kind(token)}")
    if isinstance(sequence, bool) or not isinstance(sequence, int) or sequence < 0:
        f.problems.append(f"wsc.sequence: expected an integer >= 0, got {sequence!r}")
    if f.problems:
        return None
    return Wsc(token, sequence)
