"""Socket.IO v5 packets (socket.io-client 3 / 4) as a wire session's frames: sans-I/O.

One Engine.IO connection carries Socket.IO packets for one or more namespaces. This module
turns them into :class:`Packet` values a dialect maps onto core operations, and builds the
packets it answers with; python-socketio's own codec (``socketio.packet``) does the text
format and the binary attachments. What a Socket.IO *server* keeps (connected namespaces,
pending binary packets) is per connection, here; rooms and sessions stay in the core.

Every Socket.IO event is recorded in the transcript as a frame whose wire ``type`` is its
event name (``join``, ``offer``); the other packets are ``connect``, ``disconnect``,
``ack`` and ``connect_error``.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from socketio import packet as sio

from squall.protocol import jsontext

from .. import ops
from ..seam import Frame, Inbound

#: Socket.IO packet type -> the wire type the transcript records (events use their name).
TYPE_NAMES = {
    sio.CONNECT: "connect",
    sio.DISCONNECT: "disconnect",
    sio.ACK: "ack",
    sio.BINARY_ACK: "ack",
    sio.CONNECT_ERROR: "connect_error",
}


@dataclass(frozen=True, slots=True)
class Packet:
    """One whole client packet (its binary attachments already put back in place)."""

    kind: int  # socketio.packet.CONNECT, DISCONNECT, EVENT, ACK (binary ones folded in)
    namespace: str
    data: Any = None
    ack: int | None = None

    @property
    def event(self) -> str | None:
        """The event name of an EVENT (its first argument), None for any other packet."""
        if self.kind == sio.EVENT and isinstance(self.data, list) and self.data:
            name = self.data[0]
            return name if isinstance(name, str) else None
        return None

    @property
    def args(self) -> list[Any]:
        return list(self.data[1:]) if self.kind == sio.EVENT else []

    @property
    def type(self) -> str:
        """The transcript's wire type for this packet."""
        return self.event or TYPE_NAMES.get(self.kind, "event")


class PacketError(ValueError):
    """A frame that is not a Socket.IO v5 packet, said in one sentence."""


class _StrictJSON:
    """python-socketio's ``Packet.json``: reads only JSON a peer can be sent back
    (squall.protocol.jsontext: no NaN, no 1e400, no lone surrogate, at most 200 levels deep;
    ``json.loads`` overflowed the stack on deep nesting, and a NaN relayed to another peer
    is text no JavaScript ``JSON.parse`` reads)."""

    loads = staticmethod(jsontext.loads)
    dumps = staticmethod(json.dumps)


# socketio ships no types, so its Packet is Any to mypy: subclassing it is disallow_subclassing_any
class _ClientPacket(sio.Packet):  # type: ignore[misc]
    json = _StrictJSON


def _placeholder_problem(data: Any, count: int) -> str | None:
    """Why a binary packet's placeholders cannot be filled with ``count`` attachments, or
    None (python-socketio indexes the attachments with ``num`` as it is: an IndexError or a
    TypeError). Iterative: the payload may nest to jsontext's limit."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            if item.get("_placeholder") and "num" in item:
                num = item["num"]
                if isinstance(num, bool) or not isinstance(num, int) or not 0 <= num < count:
                    return (
                        f"a binary placeholder's num must be an attachment index "
                        f"(0 to {count - 1}), got {json.dumps(num)[:40]}"
                    )
            else:
                stack.extend(item.values())
    return None


class Decoder:
    """The client packets of one connection, binary attachments included.

    ``feed(frame)`` returns the whole :class:`Packet` once it is complete, or None while a
    binary event still waits for attachments.
    """

    __slots__ = ("_partial", "_partial_type")

    def __init__(self) -> None:
        self._partial: sio.Packet | None = None
        self._partial_type = "event"

    @property
    def waiting(self) -> str | None:
        """The wire type of the binary packet waiting for attachments, if one is."""
        return self._partial_type if self._partial is not None else None

    def feed(self, frame: str | bytes) -> Packet | None:
        partial = self._partial
        if isinstance(frame, bytes):
            if partial is None:
                raise PacketError("a binary frame arrived with no binary packet waiting for it")
            if not partial.add_attachment(frame):
                return None
            self._partial = None
            return _whole(partial)
        if partial is not None:
            self._partial = None
            raise PacketError(
                f"a text packet arrived while a binary packet still waited for "
                f"{partial.attachment_count - len(partial.attachments)} attachment(s)"
            )
        if not frame:
            raise PacketError("an empty frame is not a Socket.IO packet")
        if not frame.isascii():
            try:
                frame.encode("utf-8")
            except UnicodeEncodeError as exc:  # not off a socket, but a str handed in directly
                raise PacketError(
                    f"character {exc.start} is a lone surrogate "
                    f"(U+{ord(frame[exc.start]):04X}), which UTF-8 cannot carry"
                ) from None
        if frame[0] not in "0123456":  # not str.isdigit: "²" is a digit to it, not to int()
            raise PacketError(f"unknown Socket.IO packet type {frame[0]!r} (expected 0 to 6)")
        try:
            pkt = _ClientPacket(encoded_packet=frame)
        except json.JSONDecodeError as exc:
            raise PacketError(f"the packet's payload is not JSON: {exc.msg} at {exc.pos}") from None
        except ValueError as exc:
            raise PacketError(f"malformed Socket.IO packet: {exc}") from None
        if pkt.packet_type in (sio.BINARY_EVENT, sio.BINARY_ACK) and pkt.attachment_count:
            problem = _placeholder_problem(pkt.data, pkt.attachment_count)
            if problem is not None:
                raise PacketError(problem)
            self._partial = pkt
            self._partial_type = _whole(pkt, check=False).type
            return None
        if pkt.packet_type == sio.CONNECT_ERROR:
            raise PacketError("CONNECT_ERROR (4) is sent by servers, never by clients")
        return _whole(pkt)


def _whole(pkt: sio.Packet, *, check: bool = True) -> Packet:
    kind = {sio.BINARY_EVENT: sio.EVENT, sio.BINARY_ACK: sio.ACK}.get(
        pkt.packet_type, pkt.packet_type
    )
    whole = Packet(kind, pkt.namespace or "/", pkt.data, pkt.id)
    if check and kind == sio.EVENT and whole.event is None:
        raise PacketError(
            "an EVENT's payload must be a JSON array whose first item is the event name, "
            f"got {json.dumps(pkt.data, default=_binary)[:80]}"
        )
    if check and kind == sio.ACK and not isinstance(pkt.data, list):
        raise PacketError("an ACK's payload must be a JSON array of the answer's arguments")
    return whole


def _binary(value: Any) -> str:
    return f"<{len(value)} bytes>" if isinstance(value, bytes | bytearray) else repr(value)


def encode(
    kind: int, namespace: str, data: Any = None, ack: int | None = None, *, type: str
) -> tuple[Frame, ...]:
    """One server packet as frames: the packet, then its binary attachments if it has any."""
    encoded = sio.Packet(kind, data, namespace=namespace, id=ack).encode()
    if isinstance(encoded, str):
        return (Frame(type, encoded),)
    head, *attachments = encoded
    return (Frame(type, head), *(Frame(type, bytes(a)) for a in attachments))


def emit(namespace: str, event: str, *args: Any) -> tuple[Frame, ...]:
    """A server EVENT: ``socket.emit(event, *args)`` in the namespace."""
    return encode(sio.EVENT, namespace, [event, *args], type=event)


def ack(namespace: str, ack_id: int, args: Sequence[Any] = ()) -> tuple[Frame, ...]:
    """The server's answer to a client event that asked for an acknowledgement."""
    return encode(sio.ACK, namespace, list(args), ack_id, type="ack")


def connected(namespace: str, sid: str) -> tuple[Frame, ...]:
    return encode(sio.CONNECT, namespace, {"sid": sid}, type="connect")


def connect_error(namespace: str, data: Any) -> tuple[Frame, ...]:
    """python-socketio 5 answers an unknown namespace with the string ``"Unable to connect"``
    and a refused connection with ``{"message": ...}``; socket.io-client reads both."""
    return encode(sio.CONNECT_ERROR, namespace, data, type="connect_error")


def disconnect(namespace: str) -> tuple[Frame, ...]:
    """The server ends the namespace: socket.io-client does not reconnect after it."""
    return encode(sio.DISCONNECT, namespace, type="disconnect")


def served(namespace: str, namespaces: Collection[str]) -> bool:
    return namespace in namespaces


class NamespaceWire:
    """The receive ladder both Socket.IO dialects share: one namespace, served per connection.

    Decoding, binary packets waiting for attachments, packets for a namespace not joined
    (dropped, as python-socketio does), the client leaving the namespace (its rooms hear it
    at once) and acknowledgements (never asked for by these servers) are the same for every
    dialect here; what ``CONNECT`` and an event mean is each dialect's (:meth:`_connect`,
    :meth:`_event`).
    """

    __slots__ = ("connected", "decoder")
    namespace: str

    def __init__(self) -> None:
        self.decoder = Decoder()
        self.connected = False  # in :attr:`namespace`

    def receive(self, data: str | bytes) -> Inbound:
        try:
            pkt = self.decoder.feed(data)
        except PacketError as exc:
            return Inbound(None, (ops.BadInput(str(exc), "invalid_packet"),))
        if pkt is None:  # a binary event waiting for its attachments
            return Inbound(self.decoder.waiting, ())
        if pkt.kind == sio.CONNECT:
            return self._connect(pkt)
        if pkt.namespace != self.namespace or not self.connected:
            return Inbound(pkt.type, ())  # socket.io drops packets of a namespace not joined
        if pkt.kind == sio.DISCONNECT:
            self.connected = False
            return Inbound("disconnect", tuple(ops.Leave(room) for room in self._left()))
        if pkt.kind == sio.ACK:
            return Inbound("ack", ())  # this server never asks for acknowledgements
        return self._event(pkt)

    def _connect(self, pkt: Packet) -> Inbound:
        raise NotImplementedError

    def _event(self, pkt: Packet) -> Inbound:
        raise NotImplementedError

    def _left(self) -> Sequence[str]:
        """The rooms this connection was in, as it leaves the namespace."""
        raise NotImplementedError
