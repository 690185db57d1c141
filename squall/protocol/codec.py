"""Sans-I/O codec for the reference protocol: text in, a typed message or a typed error out.

No sockets, no asyncio, no clock. A server decodes with :func:`decode_client`
(what clients may send), a client with :func:`decode_server`. Both raise a
:class:`~squall.protocol.errors.ProtocolError` subclass that names the problem,
the message ``type`` and the offending field.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import TypeAdapter, ValidationError

from . import jsontext
from .errors import InvalidMessage, MalformedFrame, ProtocolError, UnknownMessageType
from .messages import CLIENT_TYPES, SERVER_TYPES, ClientMessage, Message, ServerMessage

_CLIENT: TypeAdapter[Any] = TypeAdapter(ClientMessage)
_SERVER: TypeAdapter[Any] = TypeAdapter(ServerMessage)


def encode(message: Message) -> str:
    """One text frame. ``None`` fields are left out; aliases (``from``) are used."""
    return message.model_dump_json(by_alias=True, exclude_none=True)


def decode_client(data: str | bytes) -> Any:
    """Parse a frame a client sent. Returns one of :data:`ClientMessage`."""
    return _decode(_CLIENT, CLIENT_TYPES, data)


def decode_server(data: str | bytes) -> Any:
    """Parse a frame a server sent. Returns one of :data:`ServerMessage`."""
    return _decode(_SERVER, SERVER_TYPES, data)


def _decode(adapter: TypeAdapter[Any], known: frozenset[str], data: str | bytes) -> Any:
    if isinstance(data, bytes | bytearray | memoryview):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedFrame(f"frame is not valid UTF-8 at byte {exc.start}") from None
    if "NaN" in data or "Infinity" in data:
        # pydantic-core's parser reads NaN and Infinity as numbers; they are not JSON
        # (docs/protocol.md §9: 1007), and no JSON peer could be answered with them.
        try:
            jsontext.loads(data)
        except ValueError as exc:
            raise MalformedFrame(f"frame is not valid JSON: {exc}") from None
    try:
        return adapter.validate_json(data)
    except ValidationError as exc:
        raise _explain(exc, known, data) from None


def _explain(exc: ValidationError, known: frozenset[str], data: str) -> ProtocolError:
    """Turn pydantic's report into the one error a peer should hear about."""
    first = exc.errors(include_url=False)[0]
    kind = first["type"]
    if kind == "json_invalid":
        return MalformedFrame(f"frame is not valid JSON: {first['ctx'].get('error', first['msg'])}")
    if kind == "string_unicode":  # a str with a lone surrogate, handed in directly: not UTF-8
        return MalformedFrame("frame is not valid UTF-8 text: it holds a lone surrogate")
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):  # pydantic stopped before the JSON ended
        return MalformedFrame(f"frame is not valid JSON: {first['msg']}")
    if not isinstance(obj, dict):
        return MalformedFrame(f"frame must be a JSON object, got {type(obj).__name__}")
    mtype = obj.get("type")
    ref = obj.get("id") if isinstance(obj.get("id"), int | str) else None
    if kind == "union_tag_not_found" or not isinstance(mtype, str):
        return InvalidMessage("message has no string 'type' field", ref=ref)
    if kind == "union_tag_invalid" or mtype not in known:
        expected = ", ".join(sorted(known))
        return UnknownMessageType(
            f"unknown message type {mtype!r} (expected one of: {expected})", type=mtype, ref=ref
        )
    problems = [_problem(err) for err in exc.errors(include_url=False)]
    return InvalidMessage(
        f"invalid {mtype!r} message: " + "; ".join(problems), type=mtype, ref=ref, problems=problems
    )


def _problem(err: Any) -> str:
    # loc is (tag, field, ...) for a discriminated union: drop the tag.
    loc = [str(p) for p in err["loc"][1:]] or ["(message)"]
    return f"{'.'.join(loc)}: {err['msg']}"
