"""The reference protocol (docs/protocol.md) as a dialect: JSON objects with a ``type``.

Credentials come from the URL query (``token``, ``jwt``, ``recovery_token``), the
``Authorization: Bearer`` header, or a first ``auth`` frame (§2). Close codes
are those of §9.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pydantic_core import to_json

from squall.protocol import codec
from squall.protocol import messages as m
from squall.protocol.errors import (
    MalformedFrame,
    ProtocolError,
)

from .. import events as ev
from .. import ops
from ..seam import CloseReason, Closing, Dialect, Frame, Handshake, Inbound
from ..transcript import REDACTED, redact, redact_text
from . import RFC6455_CLOSE_CODES

CLOSE_CODES: dict[CloseReason, int] = RFC6455_CLOSE_CODES


def _dumps(obj: Any) -> str:
    """Compact JSON through pydantic-core's encoder (the codec's own), ten times json.dumps."""
    return to_json(obj).decode()


def handshake_credentials(handshake: Handshake) -> ops.Authenticate | None:
    """Token, guest JWT and recovery token from the URL query or the Authorization header."""
    query = parse_qs(urlsplit(handshake.path).query)

    def first(key: str) -> str | None:
        values = query.get(key)
        return values[0] if values else None

    token = first("token")
    header = handshake.headers.get("Authorization")
    if token is None and header and header.lower().startswith("bearer "):
        token = header[7:].strip() or None
    jwt, recovery = first("jwt"), first("recovery_token")
    if token is None and jwt is None:
        return None
    return ops.Authenticate(token=token, jwt=jwt, recovery_token=recovery)


#: Decoded client message class -> the operation it asks for (a dict lookup per frame).
_TO_OP: dict[type, Callable[[Any], ops.Operation]] = {
    m.Auth: lambda msg: ops.Authenticate(msg.token, msg.jwt, msg.recovery_token),
    m.Ping: lambda msg: ops.Ping(msg.id),
    m.Pong: lambda msg: ops.Pong(msg.id),
    m.Subscribe: lambda msg: ops.Subscribe(tuple(msg.topics), msg.id),
    m.Unsubscribe: lambda msg: ops.Unsubscribe(tuple(msg.topics), msg.id),
    m.Call: lambda msg: ops.Call(msg.id, msg.method, msg.params, msg.no_reply),
    m.ReconnectResponse: lambda msg: ops.AnswerDrain(msg.status),
    m.Join: lambda msg: ops.Join(msg.room, msg.id, msg.permanent_id, msg.prev_sid),
    m.Leave: lambda msg: ops.Leave(msg.room, msg.id),
    m.SendSignal: lambda msg: ops.Relay(msg.room, msg.kind, msg.data, msg.to),
    m.TrackDefine: lambda msg: ops.DefineTrack(msg.room, msg.track.model_dump()),
    m.TrackRemove: lambda msg: ops.RemoveTrack(msg.room, msg.track_id),
    m.TrackRequest: lambda msg: ops.RequestTrack(msg.room, msg.to, msg.track_id),
}


def _to_op(msg: Any) -> ops.Operation:
    """One decoded client message -> the operation it asks for."""
    return _TO_OP[type(msg)](msg)


def _peer(p: ev.PeerInfo) -> m.Peer:
    return m.Peer.model_validate(
        {"sid": p.sid, "permanent_id": p.permanent_id, "tracks": list(p.tracks)}
    )


def _to_message(event: ev.Event) -> m.Message | None:
    """One core event -> the reference message that shows it (the slow, general path).

    Events carry reasons, kinds and tracks as plain ``str`` and ``dict``; where a message
    narrows them (a ``Literal``, :class:`~squall.protocol.messages.TrackDefinition`) it is
    built with ``model_validate``, so pydantic checks them, as it would the keywords.
    """
    match event:
        case ev.AuthFailed():
            return m.AuthFailed.model_validate({"reason": event.reason, "message": event.message})
        case ev.Subscribed():
            return m.Subscribed(id=event.ref, topics=list(event.topics))
        case ev.Unsubscribed():
            return m.Unsubscribed(id=event.ref, topics=list(event.topics))
        case ev.CallFailed():
            return m.Error(id=event.ref, code=event.code, message=event.message, data=event.data)
        case ev.Rejected():
            return m.Error(id=event.ref, code=event.code, message=event.message, data=event.data)
        case ev.ServerPing():
            return m.Ping(id=event.ref)
        case ev.DrainRequested():
            return m.ReconnectRequest(
                deadline=event.deadline, answer_within=event.answer_within, reason=event.reason
            )
        case ev.Joined():
            return m.Joined(
                id=event.ref,
                room=event.room,
                sid=event.sid,
                permanent_id=event.permanent_id,
                peers=[_peer(p) for p in event.peers],
            )
        case ev.Left():
            return m.Left(id=event.ref, room=event.room)
        case ev.PeerJoined():
            return m.PeerJoined(room=event.room, peer=_peer(event.peer))
        case ev.PeerLeft():
            return m.PeerLeft.model_validate(
                {
                    "room": event.room,
                    "sid": event.sid,
                    "permanent_id": event.permanent_id,
                    "reason": event.reason,
                }
            )
        case ev.PeerSidReassigned():
            return m.PeerSidReassigned(
                room=event.room,
                permanent_id=event.permanent_id,
                old_sid=event.old_sid,
                new_sid=event.new_sid,
            )
        case ev.Relayed():
            return m.Signal.model_validate(
                {
                    "room": event.room,
                    "from": event.sender,
                    "from_permanent_id": event.from_permanent_id,
                    "to": event.to,
                    "kind": event.kind,
                    "data": event.data,
                }
            )
        case ev.TrackDefined():
            return m.TrackDefined.model_validate(
                {"room": event.room, "sid": event.sid, "track": event.track}
            )
        case ev.TrackRemoved():
            return m.TrackRemoved(room=event.room, sid=event.sid, track_id=event.track_id)
        case ev.TrackRequested():
            return m.TrackRequested(room=event.room, sender=event.sender, track_id=event.track_id)
    return None


class ReferenceWire:
    """One connection speaking the reference protocol."""

    __slots__ = ("dialect",)

    def __init__(self, dialect: ReferenceDialect) -> None:
        self.dialect = dialect

    def greet(self) -> Sequence[Frame]:
        return ()

    def receive(self, data: str | bytes) -> Inbound:
        if isinstance(data, bytes):
            return Inbound(
                None,
                (
                    ops.BadInput(
                        "binary frames are not part of the protocol",
                        "unsupported_data",
                        fatal=CloseReason.UNSUPPORTED_DATA,
                    ),
                ),
                shown=f"<{len(data)} bytes>",
            )
        try:
            msg = codec.decode_client(data)
        except MalformedFrame as exc:
            return Inbound(
                None,
                (ops.BadInput(str(exc), exc.code, fatal=CloseReason.BAD_FRAME),),
                shown=redact_text(data),
            )
        except ProtocolError as exc:
            mtype = getattr(exc, "type", None) or None
            return Inbound(
                mtype,
                (ops.BadInput(str(exc), exc.code, ref=getattr(exc, "ref", None)),),
                shown=redact_text(data),
            )
        op = _to_op(msg)
        shown = (
            json.dumps(redact(msg.model_dump(exclude_none=True))) if msg.type == "auth" else None
        )
        return Inbound(msg.type, (op,), shown)

    def encode(self, event: ev.Event) -> Sequence[Frame]:
        match event:
            case ev.Replied():
                body: dict[str, Any] = {"type": "result", "id": event.ref}
                if event.result is not None:
                    body["result"] = event.result
                return (Frame("result", _dumps(body)),)
            case ev.Pong():
                return (
                    Frame(
                        "pong",
                        _dumps({"type": "pong", "id": event.ref})
                        if event.ref is not None
                        else '{"type":"pong"}',
                    ),
                )
            case ev.Authenticated():
                return self._authenticated(event)
        msg = _to_message(event)
        if msg is None:
            return ()
        return (Frame(msg.type, codec.encode(msg)),)

    def _authenticated(self, event: ev.Authenticated) -> Sequence[Frame]:
        fields = {
            "type": "authenticated",
            "session": event.session,
            "sid": event.sid,
            "user": event.user,
            "guest": event.guest,
            "recovery_token": event.recovery_token,
            "heartbeat": event.heartbeat,
            "recovery_buffer_size": event.recovery_buffer_size,
            "recovery_window": event.recovery_window,
        }
        text = _dumps(fields)
        frames = [Frame("authenticated", text, _dumps({**fields, "recovery_token": REDACTED}))]
        rec = event.recovery
        if rec is not None:
            recovery = m.Recovery.model_validate(
                {
                    "recovered": rec.recovered,
                    "replayed": rec.replayed,
                    "lost": rec.lost,
                    "subscriptions": list(rec.subscriptions),
                    "reason": rec.reason,
                }
            )
            frames.append(Frame("recovery", codec.encode(recovery)))
        return frames

    def deliver(self, event: ev.Delivered) -> Frame:
        pub = event.publication
        tail = pub.cache.get("reference")
        if tail is None:
            # The payload is encoded once per publish; only the sequence number differs.
            tail = pub.cache["reference"] = (
                "," + _dumps({"topic": pub.topic, "payload": pub.payload})[1:]
            )
        return Frame("notification", f'{{"type":"notification","seq":{event.seq}{tail}')

    def close(self, reason: CloseReason, detail: str) -> Closing:
        return Closing((), CLOSE_CODES[reason], detail)


class ReferenceDialect(Dialect):
    name = "reference"
    capabilities = frozenset({"pubsub", "rpc", "drain", "recovery", "rooms", "server_ping"})

    def open(
        self, link_id: str, handshake: Handshake
    ) -> tuple[ReferenceWire, ops.Authenticate | None]:
        return ReferenceWire(self), handshake_credentials(handshake)
