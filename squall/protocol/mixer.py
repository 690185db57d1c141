"""Mixer chat packets, both directions: a typed, sans-I/O codec.

The wire, as ``@mixer/chat-client-websocket`` 1.2.0 speaks it (``socket/Socket.js``) and
the Mixer developer docs describe it: one JSON object per *text* frame.

::

    client  {"type":"method","method":"msg","arguments":["hi"],"id":2}
    server  {"type":"reply","error":null,"id":2,"data":{...}}
            {"type":"event","event":"ChatMessage","data":{...}}

A reply's ``error`` is ``null``, a bare string (``"UNOTFOUND"``, ``"UACCESS"``,
``"UNOTJSON"``) or an object ``{"code": 4000..4006, "message", "stacktrace"}``. The
SDK compares auth errors with ``===`` against the bare strings (``Socket.js:455,458``)
and against ``err.code === 4006`` (``Socket.js:461``), so the form matters.

Errors say what was wrong and leave the answer to the caller (a server dialect, a
test client): :class:`~squall.protocol.errors.UnsupportedFrame` for binary,
:class:`~squall.protocol.errors.MalformedFrame` (code ``UNOTJSON``) for text that is
not JSON, :class:`~squall.protocol.errors.InvalidMessage` for JSON that is not a
packet, :class:`~squall.protocol.errors.UnknownMessageType` for an unknown ``type``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, ClassVar, Final

from . import jsontext
from .errors import InvalidMessage, MalformedFrame, UnknownMessageType, UnsupportedFrame

__all__ = [
    "MASK",
    "STRING_ERRORS",
    "UACCESS",
    "UNOTFOUND",
    "UNOTJSON",
    "AuthArguments",
    "ErrorCode",
    "ErrorPacket",
    "Event",
    "Method",
    "MixerError",
    "Packet",
    "Reply",
    "auth_arguments",
    "decode_client",
    "decode_server",
    "encode",
    "encode_event",
    "redact_method",
    "redact_text",
]


class ErrorCode(IntEnum):
    """Numeric error codes (``ErrorCode`` in the SDK's ``socket/types.d.ts``)."""

    UNKNOWN = 4000
    PURGE_USER_NOT_FOUND = 4001
    PURGE_NO_PERMISSIONS = 4002
    MESSAGE_NOT_FOUND = 4003
    BAD_REQUEST = 4004
    RATE_LIMITED = 4005
    AUTH_SERVER_ERROR = 4006


UNOTFOUND: Final = "UNOTFOUND"  # auth: user id and authkey do not match
UACCESS: Final = "UACCESS"  # no access to the channel (banned, test stream)
UNOTJSON: Final = "UNOTJSON"  # the packet was not JSON (developer docs, "Chat Error List")
STRING_ERRORS: Final = frozenset({UNOTFOUND, UACCESS, UNOTJSON})

MASK: Final = "***"


@dataclass(frozen=True, slots=True)
class ErrorPacket:
    """The object form of a reply error (``IErrorPacket``); ``data`` is the docs' extra field."""

    code: int
    message: str = ""
    stacktrace: str = ""
    data: Any = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "stacktrace": self.stacktrace,
        }
        if self.data is not None:
            out["data"] = self.data
        return out


MixerError = str | ErrorPacket


@dataclass(frozen=True, slots=True)
class Method:
    """Client -> server: call ``method`` with positional ``arguments``; ``id`` correlates."""

    method: str
    arguments: list[Any]
    id: int
    type: ClassVar[str] = "method"


@dataclass(frozen=True, slots=True)
class Reply:
    """Server -> client: the answer to the method with the same ``id`` (None: no known id)."""

    id: int | None
    data: Any = None
    error: MixerError | None = None
    type: ClassVar[str] = "reply"


@dataclass(frozen=True, slots=True)
class Event:
    """Server -> client: something happened in the channel; the SDK emits ``event``."""

    event: str
    data: Any = None
    type: ClassVar[str] = "event"


Packet = Method | Reply | Event


@dataclass(frozen=True, slots=True)
class AuthArguments:
    """The ``auth`` method's ``[channelId, userId, authKey, accessKey?]``.

    The SDK always sends four (``Socket.js:380``; ``undefined`` becomes ``null``); the
    docs allow ``[channelId]`` alone for an anonymous join. No authkey means anonymous.
    """

    channel_id: int
    user_id: int | None = None
    auth_key: str | None = None
    access_key: str | None = None

    @property
    def anonymous(self) -> bool:
        return self.auth_key is None

    def to_arguments(self) -> list[Any]:
        return [self.channel_id, self.user_id, self.auth_key, self.access_key]


# --- decoding ---------------------------------------------------------------------------------


def _loads(data: str | bytes) -> Any:
    if not isinstance(data, str):
        raise UnsupportedFrame(f"binary frames are not Mixer chat packets ({len(data)} bytes)")
    try:
        # Strict: no NaN or Infinity (JSON.parse refuses them too), no number beyond a double,
        # no lone surrogate, no deeper than jsontext.MAX_DEPTH: nothing that cannot be answered.
        return jsontext.loads(data)
    except ValueError as exc:  # JSONDecodeError is a ValueError
        raise MalformedFrame(f"packet is not valid JSON: {exc}", code=UNOTJSON) from None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _object(data: str | bytes) -> dict[str, Any]:
    obj = _loads(data)
    if not isinstance(obj, dict):
        raise InvalidMessage(
            f"packet must be a JSON object, got {_json_type(obj)}", code="invalid_packet"
        )
    return obj


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def decode_client(data: str | bytes) -> Method:
    """One frame from a client: a :class:`Method`, or the error that says what is wrong."""
    obj = _object(data)
    ptype = obj.get("type")
    raw_id = obj.get("id")
    ref = raw_id if _is_int(raw_id) else None
    if ptype != "method":
        if not isinstance(ptype, str):
            raise InvalidMessage(
                f"packet has no string 'type' (got {_json_type(ptype)})",
                ref=ref,
                code="invalid_packet",
            )
        raise UnknownMessageType(
            f"unknown packet type {ptype!r} (a client sends 'method')", type=ptype, ref=ref
        )
    method = obj.get("method")
    name = method if isinstance(method, str) and method else "method"
    problems = []
    if not isinstance(method, str) or not method:
        problems.append(f"'method' must be a non-empty string, got {_json_type(method)}")
    if "arguments" not in obj:
        problems.append("'arguments' is missing")
    elif not isinstance(obj["arguments"], list):
        problems.append(f"'arguments' must be an array, got {_json_type(obj['arguments'])}")
    if "id" not in obj:
        problems.append("'id' is missing")
    elif ref is None:
        problems.append(f"'id' must be an integer, got {_json_type(raw_id)}")
    if problems:
        raise InvalidMessage(
            f"invalid {name!r} method packet: " + "; ".join(problems),
            type=name,
            ref=ref,
            problems=problems,
        )
    assert isinstance(method, str) and ref is not None
    return Method(method, obj["arguments"], ref)


def decode_server(data: str | bytes) -> Reply | Event:
    """One frame from a server: a :class:`Reply` or an :class:`Event` (for test clients)."""
    obj = _object(data)
    ptype = obj.get("type")
    if ptype == "event":
        name = obj.get("event")
        if not isinstance(name, str):
            raise InvalidMessage(
                f"invalid event packet: 'event' must be a string, got {_json_type(name)}",
                type="event",
            )
        return Event(name, obj.get("data"))
    if ptype == "reply":
        raw_id = obj.get("id")
        if raw_id is not None and not _is_int(raw_id):
            raise InvalidMessage(
                f"invalid reply packet: 'id' must be an integer, got {_json_type(raw_id)}",
                type="reply",
            )
        return Reply(raw_id, obj.get("data"), _error_from_json(obj.get("error"), raw_id))
    raise UnknownMessageType(
        f"unknown packet type {ptype!r} (a server sends 'reply' or 'event')",
        type=ptype if isinstance(ptype, str) else "",
    )


def _error_from_json(value: Any, ref: int | None) -> MixerError | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict) and _is_int(value.get("code")):
        return ErrorPacket(
            value["code"],
            str(value.get("message", "")),
            str(value.get("stacktrace", "")),
            value.get("data"),
        )
    raise InvalidMessage(
        "invalid reply packet: 'error' must be null, a string or {code, message}",
        type="reply",
        ref=ref,
    )


def auth_arguments(arguments: Sequence[Any], ref: int | None = None) -> AuthArguments:
    """``auth``'s arguments, typed; :class:`InvalidMessage` naming each wrong one."""
    problems = []
    if not 1 <= len(arguments) <= 4:
        problems.append(f"expected 1 to 4 arguments, got {len(arguments)}")
    padded = [*arguments[:4], None, None, None, None][:4]
    channel, user, key, access = padded
    if not _is_int(channel):
        problems.append(f"channelId must be an integer, got {_json_type(channel)}")
    if user is not None and not _is_int(user):
        problems.append(f"userId must be an integer or null, got {_json_type(user)}")
    if key is not None and not isinstance(key, str):
        problems.append(f"authKey must be a string or null, got {_json_type(key)}")
    if access is not None and not isinstance(access, str):
        problems.append(f"accessKey must be a string or null, got {_json_type(access)}")
    if problems:
        raise InvalidMessage(
            "invalid 'auth' arguments: " + "; ".join(problems),
            type="auth",
            ref=ref,
            problems=problems,
        )
    return AuthArguments(channel, user, key, access)


# --- encoding ---------------------------------------------------------------------------------

_COMPACT = (",", ":")


def _dumps(obj: Any) -> str:
    # allow_nan=False: NaN and Infinity are not JSON, and JSON.parse would reject the whole
    # packet on the client; refusing here names the culprit (a ValueError) at its source.
    return json.dumps(obj, separators=_COMPACT, ensure_ascii=False, allow_nan=False)


def _error_json(error: MixerError | None) -> Any:
    return error.to_json() if isinstance(error, ErrorPacket) else error


def encode(packet: Packet) -> str:
    """Any packet as its wire text (compact, like the SDK's ``JSON.stringify``).

    Raises ValueError for data JSON cannot hold (NaN, Infinity, a non-JSON type)."""
    match packet:
        case Reply():
            return _dumps(
                {
                    "type": "reply",
                    "error": _error_json(packet.error),
                    "id": packet.id,
                    "data": packet.data,
                }
            )
        case Event():
            return encode_event(packet.event, packet.data)
        case Method():
            return _dumps(
                {
                    "type": "method",
                    "method": packet.method,
                    "arguments": packet.arguments,
                    "id": packet.id,
                }
            )
    raise TypeError(f"not a Mixer packet: {type(packet).__name__}")  # pragma: no cover


def encode_event(event: str, data: Any) -> str:
    """An event packet's text: the fan-out path, with no object built on the way."""
    return f'{{"type":"event","event":{_dumps(event)},"data":{_dumps(data)}}}'


# --- secrets ----------------------------------------------------------------------------------


def redact_method(packet: Method) -> Method:
    """``packet`` with its secrets masked: ``auth``'s authKey and accessKey (positions 2, 3)."""
    if packet.method != "auth":
        return packet
    args = [MASK if i >= 2 and arg is not None else arg for i, arg in enumerate(packet.arguments)]
    return Method(packet.method, args, packet.id)


_AUTH_METHOD = re.compile(r'"method"\s*:\s*"auth"')
_ARGUMENTS = re.compile(r'"arguments"\s*:')
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"?')


def redact_text(text: str) -> str:
    """Best effort for text that did not decode: in an ``auth`` packet, mask every string
    after ``"arguments"`` (the authkey is positional, so no key name gives it away)."""
    if not _AUTH_METHOD.search(text):
        return text
    found = _ARGUMENTS.search(text)
    if found is None:
        return _STRING.sub(lambda m: m.group(0) if m.group(0) in _KEEP else f'"{MASK}"', text)
    head, tail = text[: found.end()], text[found.end() :]
    return head + _STRING.sub(lambda m: m.group(0) if m.group(0) in _KEEP else f'"{MASK}"', tail)


# Words of the packet's own structure, which are never secrets.
_KEEP = frozenset({'"type"', '"method"', '"auth"', '"arguments"', '"id"'})
