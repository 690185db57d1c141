"""The reference client on RTCCafe's wire: Socket.IO v5 over Engine.IO v4's WebSocket transport.

The behaviour core (``squall/client/core.py``) speaks reference messages; this wire turns
them into the packets of the RTCCafe signaller (``rtc-cafe-signaller-python`` 0.2.0,
``rtc_cafe_signaller/wrappers/flask_socketio_wrapper.py``, namespace ``/rtc-cafe``) and
back. python-engineio's and python-socketio's packet classes do the text formats; this
module keeps only what a Socket.IO *client* must remember (its namespace sid, its ack ids,
the peers it was told of). What maps to what (docs/dialects/rtccafe.md, "The reference
client's rtccafe mode"):

- **URL**: ``http://host:port/`` becomes ``ws://host:port/socket.io/?EIO=4&transport=websocket``
  (no long-polling, no upgrade). The core's ``auth`` is the namespace ``CONNECT``
  (``40/rtc-cafe,``, with ``{"token": ...}`` as its auth when the client has one); the
  ``CONNECT`` answer's sid is the session and the sid (RTCCafe keeps nothing across
  connections: a recovery token presented is answered ``recovered: false`` by the wire),
  a ``CONNECT_ERROR`` is a final ``auth_failed`` (``forbidden``).
- **keepalive**: the server pings (``2``) and the wire answers ``3`` (the core's ``ping`` ->
  ``pong``). Engine.IO v4 has no client ping: the core's own pings, one per
  ``pingInterval + pingTimeout`` of the open packet (real seconds, so divided by the
  ``timescale``), are answered by the wire when anything came from the server since the
  previous one, and left unanswered (a missed pong) when nothing did: Engine.IO's rule.
- **join** -> ``join {room, id, prevSid}`` with an ack id; the ack -> ``joined`` with the
  peers this wire already knows in that room (none on a first join: the signaller tells
  the joiner nothing). Each peer that hears ``acquire-peers`` answers
  ``acquire-peers-response``, which becomes ``peer_joined`` here, and this wire answers
  each ``acquire-peers`` it hears the same way (the core never sees that reply: it is
  carried as a server ``ping`` whose ``pong`` is the reply's frames).
- **re-keying**: an ``acquire-peers`` / ``acquire-peers-response`` whose ``prevSid`` is a
  peer's sid, or whose permanent ``id`` is known under another sid, -> ``peer_sid_reassigned``
  (the seed's ``reassignPeerSid``); ``peer-disconnection {sid}`` -> ``peer_left``
  (``disconnected``).
- **signals**: ``offer`` / ``answer`` / ``candidate`` -> ``{...data, recipient, id, room}``
  (a signal to no one goes to each known peer of the room); received, the routing keys
  (``id``, ``sid``, ``recipient``, ``room``) are taken out of the data. The signal
  modifier is data here: ``signal_fields`` are added to every validated event (``join``,
  ``acquire-peers-response``, ``offer``, ``answer``, ``candidate``), the CSRF token a
  validator checks. A validator's ``error {error, originalMessage}`` rejects the join it
  answers, or is an ``error`` the application hears.
- **not on this wire**: the signaller has no leave, no messages, no track definitions, no
  pub/sub, no RPC, no drains (RTCCafe's messages and track definitions go peer to peer
  over WebRTC data channels). Each is answered locally with an ``error`` (``unsupported``).
  ``track_frames = False`` says so to the WebRTC extension, which then carries tracks
  and messages over its data channel (docs/webrtc.md).
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from engineio import packet as eio
from socketio import packet as sio

from squall.protocol import messages as m
from squall.protocol.errors import InvalidMessage

from ..wire import Opening, Outgoing, with_query

__all__ = ["RTCCafeClientWire"]

NAMESPACE = "/rtc-cafe"
SIGNALS = ("offer", "answer", "candidate")
ROUTING_KEYS = frozenset({"id", "sid", "recipient", "room"})
UNSUPPORTED = "unsupported"
#: Engine.IO's defaults (python-engineio, socket.io): used until the open packet says.
PING_INTERVAL_MS = 25_000
PING_TIMEOUT_MS = 20_000


@dataclass(frozen=True, slots=True)
class _PendingJoin:
    """An ack id's meaning: the join (the core's ticket) its ack answers."""

    ticket: Any
    room: str
    permanent_id: str


@dataclass
class _Room:
    """What this client knows of one room: its own id in it, and its peers (sid -> id)."""

    permanent_id: str
    peers: dict[str, str] = field(default_factory=dict)
    gone: dict[str, str] = field(default_factory=dict)  # left peers, re-keyed if they return


class RTCCafeClientWire:
    """RTCCafe signalling packets for the reference client's core.

    Options: ``permanent_id`` (the seed's ``permanentId``; by default the client's token,
    else a random one, kept for the wire's life), ``signal_fields`` (``{field: value}`` put
    in every validated event: the signal modifier), ``namespace`` (``/rtc-cafe``), ``path``
    (the Engine.IO path, ``/socket.io/``), ``timescale`` (real seconds per protocol second:
    Engine.IO's intervals are real time), ``server`` (an HTTP prelude's URL, accepted and
    ignored: RTCCafe has none).
    """

    name = "rtccafe"
    #: the signaller has no track frames: the WebRTC extension (squall/client/webrtc/)
    #: sends definitions, removals and requests over the data channel instead
    track_frames = False

    def __init__(
        self,
        *,
        permanent_id: str | None = None,
        signal_fields: dict[str, Any] | None = None,
        namespace: str = NAMESPACE,
        path: str = "/socket.io/",
        timescale: float = 1.0,
        server: str | None = None,
    ) -> None:
        if not timescale > 0:
            raise ValueError(f"rtccafe timescale must be > 0, got {timescale!r}")
        if signal_fields is not None and not isinstance(signal_fields, dict):
            raise ValueError(f"rtccafe signal_fields maps a field to a value: {signal_fields!r}")
        self.permanent_id = permanent_id
        self.signal_fields = dict(signal_fields or {})
        self.namespace = namespace
        self.path = path
        self.timescale = timescale
        self.rooms: dict[str, _Room] = {}  # survives reconnects: how peers are re-keyed
        self._token: str | None = None
        self._ids = itertools.count()
        self._replies = itertools.count(1)
        self._queued: dict[str, list[str]] = {}  # carrier ping id -> frames its pong sends
        self._pending: dict[int, _PendingJoin] = {}
        self._sid: str | None = None
        self._prev_sid: str | None = None
        self._recovering = False
        self._heard = False
        self._interval_ms = PING_INTERVAL_MS + PING_TIMEOUT_MS
        self._partial: sio.Packet | None = None
        self._last_room: str | None = None

    # --- the socket ---------------------------------------------------------------------------

    def opening(
        self,
        url: str,
        *,
        token: str | None,
        jwt: str | None,
        recovery_token: str | None,
        auth_via: str,
    ) -> Opening:
        """A new Engine.IO connection; the namespace CONNECT goes once it is open."""
        self._pending.clear()
        self._queued.clear()
        self._partial = None
        self._sid = None
        self._heard = False
        self._recovering = recovery_token is not None
        self._token = token
        if self.permanent_id is None:
            self.permanent_id = token or uuid.uuid4().hex
        parts = urlsplit(url)
        scheme = {"http": "ws", "https": "wss"}.get(parts.scheme.lower(), parts.scheme.lower())
        if scheme not in ("ws", "wss"):
            raise ValueError(f"rtccafe: a server URL is http(s):// or ws(s)://, not {url!r}")
        path = parts.path if parts.path not in ("", "/") else self.path
        base = urlunsplit((scheme, parts.netloc, path, parts.query, ""))
        return Opening(with_query(base, {"EIO": "4", "transport": "websocket"}), auth_frame=True)

    async def prelude(self, opening: Opening, token: str | None) -> Opening:
        return opening

    # --- out ----------------------------------------------------------------------------------

    def _frame(self, kind: int, data: Any = None, ack: int | None = None) -> str:
        encoded = sio.Packet(kind, data, namespace=self.namespace, id=ack).encode()
        assert isinstance(encoded, str)  # binary packets are never sent by this client
        return str(eio.Packet(eio.MESSAGE, encoded).encode())

    def _event(self, name: str, body: dict[str, Any], ack: int | None = None) -> str:
        return self._frame(sio.EVENT, [name, {**body, **self.signal_fields}], ack)

    def encode(self, msg: m.Message) -> Outgoing:
        match msg:
            case m.Auth():
                auth = {"token": msg.token} if msg.token else None
                shown = {"token": "***"} if msg.token else None
                return Outgoing(
                    (self._frame(sio.CONNECT, auth),), shown=(self._frame(sio.CONNECT, shown),)
                )
            case m.Ping():
                if self._heard:  # the server spoke since the last check: it is alive
                    self._heard = False
                    return Outgoing(answers=(m.Pong(id=msg.id),))
                return Outgoing()  # nothing heard: the core counts a missed pong
            case m.Pong():
                frames = self._queued.pop(str(msg.id), None)
                return Outgoing(tuple(frames) if frames is not None else ())
            case m.Join():
                return self._join(msg)
            case m.SendSignal() if msg.kind in SIGNALS:
                return self._signal(msg)
            case m.ReconnectResponse():
                return Outgoing()  # never asked for on this wire
        return Outgoing(answers=(_unsupported(msg),))

    def _join(self, msg: m.Join) -> Outgoing:
        pid = msg.permanent_id or self.permanent_id or ""
        room = self.rooms.setdefault(msg.room, _Room(pid))
        room.permanent_id = pid
        self._prev_sid = msg.prev_sid
        ack = next(self._ids)
        self._pending[ack] = _PendingJoin(msg.id, msg.room, pid)
        self._last_room = msg.room
        body = {"room": msg.room, "id": pid, "prevSid": msg.prev_sid}
        return Outgoing((self._event("join", body, ack),))

    def _signal(self, msg: m.SendSignal) -> Outgoing:
        room = self.rooms.get(msg.room)
        data = msg.data if isinstance(msg.data, dict) else {"data": msg.data}
        recipients = [msg.to] if msg.to is not None else sorted(room.peers) if room else []
        if not recipients:
            return Outgoing(
                answers=(
                    m.Error(
                        code="unknown_peer",
                        message=f"{msg.kind} to no one: RTCCafe routes a signal to a recipient's"
                        f" sid, and no peer of room {msg.room!r} is known",
                    ),
                )
            )
        pid = room.permanent_id if room else self.permanent_id
        frames = [
            self._event(msg.kind, {**data, "recipient": to, "id": pid, "room": msg.room})
            for to in recipients
        ]
        return Outgoing(frames)

    def _reply(self, frames: list[str]) -> m.Ping:
        """Frames to send in answer to a server packet: a ping whose pong carries them."""
        ref = f"rtccafe:{next(self._replies)}"
        self._queued[ref] = frames
        return m.Ping(id=ref)

    # --- in -----------------------------------------------------------------------------------

    def decode(self, data: str | bytes) -> Sequence[m.Message]:
        self._heard = True
        if isinstance(data, bytes):
            return self._attachment(data)
        try:
            packet = eio.Packet(encoded_packet=data)
        except Exception as exc:  # python-engineio raises bare ValueError / IndexError
            raise InvalidMessage(f"not an Engine.IO packet: {exc}", type="engineio") from None
        if packet.packet_type not in range(len(eio.packet_names)):
            raise InvalidMessage(
                f"unknown Engine.IO packet type {packet.packet_type!r} (expected 0 to 6)",
                type="engineio",
            )
        if packet.packet_type == eio.OPEN:
            info = packet.data if isinstance(packet.data, dict) else {}
            interval, timeout = info.get("pingInterval"), info.get("pingTimeout")
            if isinstance(interval, int) and isinstance(timeout, int):
                self._interval_ms = interval + timeout
            return ()
        if packet.packet_type == eio.PING:
            return (self._reply([str(eio.Packet(eio.PONG, packet.data).encode())]),)
        if packet.packet_type != eio.MESSAGE:
            return ()  # CLOSE (the socket's end follows), NOOP, PONG
        if not isinstance(packet.data, str):
            raise InvalidMessage("an Engine.IO message that is not text", type="engineio")
        try:
            pkt = sio.Packet(encoded_packet=packet.data)
        except Exception as exc:
            raise InvalidMessage(f"not a Socket.IO packet: {exc}", type="socketio") from None
        if pkt.packet_type not in range(len(sio.packet_names)):
            raise InvalidMessage(
                f"unknown Socket.IO packet type {pkt.packet_type!r} (expected 0 to 6)",
                type="socketio",
            )
        if pkt.attachment_count:
            self._partial = pkt
            return ()
        return self._packet(pkt)

    def _attachment(self, data: bytes) -> Sequence[m.Message]:
        partial = self._partial
        if partial is None:
            raise InvalidMessage("a binary frame with no binary packet waiting", type="socketio")
        if not partial.add_attachment(data):
            return ()
        self._partial = None
        return self._packet(partial)

    def _packet(self, pkt: sio.Packet) -> Sequence[m.Message]:
        if pkt.namespace != self.namespace:
            return ()  # the default namespace, never connected by this client
        kind = pkt.packet_type
        if kind == sio.CONNECT:
            return self._connected(pkt.data)
        if kind == sio.CONNECT_ERROR:
            text = pkt.data.get("message") if isinstance(pkt.data, dict) else pkt.data
            return (m.AuthFailed(reason="forbidden", message=f"CONNECT refused: {text}"),)
        if kind in (sio.ACK, sio.BINARY_ACK):
            return self._ack(pkt.id)
        if kind in (sio.EVENT, sio.BINARY_EVENT) and isinstance(pkt.data, list) and pkt.data:
            name, args = pkt.data[0], pkt.data[1:]
            body = args[0] if args and isinstance(args[0], dict) else {}
            return self._on_event(str(name), body)
        return ()  # DISCONNECT: the server's close of the socket follows

    def _connected(self, data: Any) -> Sequence[m.Message]:
        sid = data.get("sid") if isinstance(data, dict) else None
        if not isinstance(sid, str) or not sid:
            raise InvalidMessage(f"a CONNECT answer without a sid: {data!r}", type="connect")
        self._sid = sid
        heartbeat = self._interval_ms / 1000 / self.timescale
        out: list[m.Message] = [
            m.Authenticated(
                session=sid,
                sid=sid,
                user=self._token or sid,
                guest=not self._token,
                recovery_token="",
                heartbeat=heartbeat,
                recovery_buffer_size=0,
                recovery_window=0,
            )
        ]
        if self._recovering:  # RTCCafe keeps nothing across connections
            out.append(m.Recovery(recovered=False, reason="unknown"))
        return out

    def _ack(self, ack: int | None) -> Sequence[m.Message]:
        pending = self._pending.pop(ack, None) if ack is not None else None
        if pending is None or self._sid is None:
            return ()
        room = self.rooms.setdefault(pending.room, _Room(pending.permanent_id))
        peers = [m.Peer(sid=s, permanent_id=p) for s, p in room.peers.items()]
        return (
            m.Joined(
                id=pending.ticket,
                room=pending.room,
                sid=self._sid,
                permanent_id=pending.permanent_id,
                peers=peers,
            ),
        )

    def _on_event(self, name: str, body: dict[str, Any]) -> Sequence[m.Message]:
        if name == "acquire-peers":
            return self._acquire_peers(body)
        if name == "acquire-peers-response":
            room = self._room_for(body.get("sid"), body.get("prevSid"), self._last_room)
            return self._peer(room, body) if room is not None else ()
        if name in SIGNALS:
            return self._signal_in(name, body)
        if name == "peer-disconnection":
            return self._disconnection(body.get("sid"))
        if name == "error":
            return self._error(body)
        return ()  # `sid` (answers a request-sid this client never sends), anything else

    def _room_for(self, sid: Any, prev: Any, hint: str | None) -> str | None:
        """The room a packet without one is about: where the peer (or its old sid) is
        known, else ``hint`` if this client is in it, else its only room."""
        for name, room in self.rooms.items():
            if sid in room.peers or (prev is not None and prev in room.peers):
                return name
        if hint in self.rooms:
            return hint
        return next(iter(self.rooms)) if len(self.rooms) == 1 else None

    def _acquire_peers(self, body: dict[str, Any]) -> Sequence[m.Message]:
        room = self._room_for(body.get("sid"), body.get("prevSid"), self._last_room)
        sid = body.get("sid")
        if room is None or not isinstance(sid, str):
            return ()
        mine = self.rooms[room]
        reply = self._event(
            "acquire-peers-response",
            {"room": room, "recipient": sid, "id": mine.permanent_id, "prevSid": self._prev_sid},
        )
        return (*self._peer(room, body), self._reply([reply]))

    def _peer(self, room: str, body: dict[str, Any]) -> Sequence[m.Message]:
        """A peer announced in ``room``: new, re-keyed (by ``prevSid`` or its id), or known."""
        sid, prev = body.get("sid"), body.get("prevSid")
        if not isinstance(sid, str) or sid == self._sid:
            return ()
        state = self.rooms[room]
        peers, gone = state.peers, state.gone
        known = {**gone, **peers}
        pid = str(body["id"]) if body.get("id") is not None else known.get(prev or "", sid)
        if sid in peers:
            return ()  # already known under this sid
        old = prev if isinstance(prev, str) and prev in known else None
        if old is None:
            old = next((s for s, p in known.items() if p == pid and p != s), None)
        peers[sid] = pid
        gone.pop(sid, None)
        if old is not None:
            peers.pop(old, None)
            gone.pop(old, None)
            return (m.PeerSidReassigned(room=room, permanent_id=pid, old_sid=old, new_sid=sid),)
        return (m.PeerJoined(room=room, peer=m.Peer(sid=sid, permanent_id=pid)),)

    def _signal_in(self, kind: str, body: dict[str, Any]) -> Sequence[m.Message]:
        sender = body.get("sid")
        hint = body.get("room") if isinstance(body.get("room"), str) else self._last_room
        room = self._room_for(sender, None, hint)
        if room is None or not isinstance(sender, str):
            return ()
        pid = self.rooms[room].peers.get(sender) or str(body.get("id") or sender)
        data = {k: v for k, v in body.items() if k not in ROUTING_KEYS | set(self.signal_fields)}
        if set(data) == {"data"}:
            data = data["data"]
        signal = m.Signal.model_validate(
            {
                "room": room,
                "from": sender,
                "from_permanent_id": pid,
                "to": self._sid,
                "kind": kind,
                "data": data,
            }
        )
        return (signal,)

    def _disconnection(self, sid: Any) -> Sequence[m.Message]:
        out: list[m.Message] = []
        for name, room in self.rooms.items():
            pid = room.peers.pop(sid, None) if isinstance(sid, str) else None
            if pid is not None:
                room.gone[sid] = pid
                out.append(m.PeerLeft(room=name, sid=sid, permanent_id=pid, reason="disconnected"))
        return out

    def _error(self, body: dict[str, Any]) -> Sequence[m.Message]:
        """A validator's refusal: of the join in flight it names, else for the application."""
        origin, error = body.get("originalMessage"), body.get("error")
        message = f"the signaller refused {origin!r}: {error}"
        if origin == "join":
            for ack, pending in list(self._pending.items()):
                del self._pending[ack]  # its ack follows: the join did not happen
                self.rooms.pop(pending.room, None)
                return (m.Error(id=pending.ticket, code="rejected", message=message, data=body),)
        return (m.Error(code="rejected", message=message, data=body),)


def _unsupported(msg: m.Message) -> m.Error:
    return m.Error(
        id=getattr(msg, "id", None),
        code=UNSUPPORTED,
        message=f"the rtccafe signaller has no {msg.type!r}"
        + (
            f" {getattr(msg, 'kind', '')!r} (RTCCafe sends messages and track definitions peer"
            " to peer over WebRTC data channels)"
            if isinstance(msg, m.SendSignal)
            else " (it relays offers, answers and candidates between the peers of a room)"
        ),
    )
