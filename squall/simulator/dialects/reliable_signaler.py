"""Reliable Signaler (seed ``004``) as a dialect: the default namespace over Socket.IO.

The protocol is that of the npm package ``reliable-signaler`` 1.0.2, whose server is
``reliable-signaler.js`` (a socket.io 2 server, so Engine.IO v3 and Socket.IO protocol 4):

==================================  ==========================================================
client event                        server (``reliable-signaler.js`` line)
==================================  ==========================================================
``keep-in-server (roomid, ack?)``   the room is kept; the sender becomes its keeper and a
                                    member of the core room ``String(roomid)``
                                    (:class:`~squall.simulator.ops.Join`); ``ack()`` (18-22).
                                    Every ``get-session-info`` waiting for it is answered.
``get-session-info (roomid, ack)``  ``ack(roomid)`` once the room is kept: at once, or when a
                                    keeper comes (24-37: the real server polls each second);
                                    the asker joins the core room meanwhile
``message (m)``                     ``message m`` to every other client (40:
                                    ``socket.broadcast.emit``); ``message_scope: "room"``
                                    relays it to the sender's rooms through the core instead
``keep-session`` (signaler.js:10)   no handler in the real server: dropped, as there
a socket gone                       the room it kept last is deleted (43-52)
==================================  ==========================================================

An Engine.IO v3 client (socket.io-client 2, what ``signaler.js`` runs on) is in the default
namespace as soon as the Engine.IO handshake is done: the server sends ``0`` unasked, as
socket.io 2 does, and a ``token`` query parameter, if any, authenticates the connection
(otherwise it is a guest named by its sid). An Engine.IO v4 client (socket.io-client 3+,
python-socketio 5) connects with ``0`` as usual; the real server cannot serve it.

Bad input the real server ignores, or crashes on (``get-session-info`` with no ack: a
TypeError at reliable-signaler.js:26 ends the node process), is answered with the event
``squall-error {error, code, originalMessage}``, which signaler.js does not listen to, unless
``answer_errors`` is False. docs/dialects/reliable-signaler.md lists the differences.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from socketio import packet as sio

from .. import events as ev
from .. import ops
from ..auth import make_guest_jwt
from ..seam import CloseReason, Closing, Dialect, Frame, Gate, Handshake, Inbound, WireSession
from ..sio import wire
from ..sio.engine import EngineIOTransport
from . import RFC6455_CLOSE_CODES

NAMESPACE = "/"
KEEP, ASK, MESSAGE, KEEP_SESSION = "keep-in-server", "get-session-info", "message", "keep-session"
ERROR_EVENT = "squall-error"
#: the Relay kind that wakes the askers of a room just kept (no client can send it)
ROOM_KEPT = "squall:room-kept"
#: socket.io 2's answer to a CONNECT for a namespace it does not have (lib/client.js)
INVALID_NAMESPACE = "Invalid namespace"


@dataclass(frozen=True, slots=True)
class RoomKept:
    """A room someone asked for is kept now: the asker's wire answers its waiting acks
    (carried to other sockets as a :data:`ROOM_KEPT` relay in the core room)."""

    room: str
    value: Any


@dataclass(slots=True)
class KeptRoom:
    """One entry of the real server's ``listOfRooms``: the value acked, who kept it."""

    value: Any
    keepers: dict[str, ReliableSignalerWire] = field(default_factory=dict)


class ReliableSignalerWire(wire.NamespaceWire):
    """One Engine.IO connection of a Reliable Signaler client."""

    __slots__ = ("_rs", "asks", "dialect", "kept", "sid", "v3")
    namespace = NAMESPACE

    def __init__(self, dialect: ReliableSignalerDialect, sid: str, *, v3: bool) -> None:
        self.dialect: Dialect = dialect
        self._rs = dialect
        self.sid = sid
        self.v3 = v3
        super().__init__()
        self.kept: str | None = None  # ``currentUser.roomid``: the room deleted when it goes
        self.asks: list[tuple[str, int]] = []  # get-session-info waiting: (room, ack id)

    def greet(self) -> Sequence[Frame]:
        return ()  # v3: ``0`` follows the handshake's authentication (``encode``)

    # --- in ------------------------------------------------------------------------------------

    def _left(self) -> list[str]:
        # the socket leaves: its rooms at once (its kept room is gone, as on a drop)
        self.asks.clear()
        return self._rs.rooms_of(self.sid)

    def _connect(self, pkt: wire.Packet) -> Inbound:
        if pkt.namespace != NAMESPACE:
            body: Any = INVALID_NAMESPACE if self.v3 else {"message": INVALID_NAMESPACE}
            return Inbound("connect", (), frames=wire.connect_error(pkt.namespace, body))
        if self.v3 or self._rs.core.connections[self.sid].session is not None:
            self.connected = True  # v3 is connected already; v4 again after a DISCONNECT
            return Inbound("connect", (), frames=self._connected_frames())
        auth = pkt.data if isinstance(pkt.data, dict) else {}
        token = auth.get("token") if isinstance(auth.get("token"), str) else None
        shown = wire.encode(sio.CONNECT, NAMESPACE, {"token": "***"}, type="connect")[0].data
        return Inbound(
            "connect",
            (self._rs.credentials(self.sid, token),),
            shown=shown if token and isinstance(shown, str) else None,
        )

    def _connected_frames(self) -> tuple[Frame, ...]:
        if self.v3:  # socket.io 2: ``0``, no payload
            return wire.encode(sio.CONNECT, NAMESPACE, type="connect")
        return wire.connected(NAMESPACE, self.sid)

    def _event(self, pkt: wire.Packet) -> Inbound:
        name = pkt.event
        assert name is not None  # the decoder guarantees an EVENT has a name
        args = pkt.args
        if name == KEEP_SESSION:
            return Inbound(name, ())  # sent by signaler.js on reconnect; nothing handles it
        if name == MESSAGE:
            return self._message(args[0] if args else None)
        if name not in (KEEP, ASK):
            return self._bad(
                name,
                f"unknown event {name!r} (this server handles {KEEP!r}, {ASK!r} and {MESSAGE!r})",
                "unknown_type",
            )
        if not args:
            return self._bad(name, f"{name!r} needs a room id (a string or a number)")
        room = _room_key(args[0])
        if room is None:
            shown = type(args[0]).__name__
            return self._bad(
                name,
                f"{name!r} needs a room id (a non-empty string or a number), got a JSON {shown}",
            )
        if name == KEEP:
            return self._keep(room, args[0], pkt.ack)
        if pkt.ack is None:  # the real server calls ``callback`` unchecked and crashes
            return self._bad(name, f"{ASK!r} needs an acknowledgement to answer with the room id")
        return self._ask(room, pkt.ack)

    def _bad(self, name: str, message: str, code: str = "invalid_message") -> Inbound:
        return Inbound(name, (ops.BadInput(message, code, ref=name),))

    def _keep(self, room: str, value: Any, ack: int | None) -> Inbound:
        self.kept = room
        others_wait = self._rs.keep(room, value, self)
        # The askers waiting are answered through the core room they joined, so their acks
        # follow this frame in the transcript (answered here, they would come before it).
        items: tuple[ops.Join | ops.Relay, ...] = self._join(room)
        if others_wait:
            items = (*items, ops.Relay(room, ROOM_KEPT, value))
        acked = wire.ack(NAMESPACE, ack) if ack is not None else ()
        own = self._answer_asks(RoomKept(room, value))  # this socket asked for it itself
        return Inbound(KEEP, items, frames=(*acked, *own))

    def _ask(self, room: str, ack: int) -> Inbound:
        join = self._join(room)
        entry = self._rs.listed(room)
        if entry is not None:
            return Inbound(ASK, join, frames=wire.ack(NAMESPACE, ack, [entry.value]))
        self.asks.append((room, ack))
        self._rs.wait(room, self.sid)
        return Inbound(ASK, join)

    def _join(self, room: str) -> tuple[ops.Join, ...]:
        """Join the core room; a user's second socket in it gets a permanent id of its own.

        The real server knows sockets, not users: under the user's name alone the core would
        take the second socket for the first one reconnecting and move the membership."""
        core = self._rs.core
        conn = core.connections.get(self.sid)
        if conn is None or room in conn.rooms:
            return ()
        user = conn.permanent_id or (conn.session.user if conn.session else self.sid)
        kept = core.rooms.get(room)
        taken = kept is not None and any(
            m.permanent_id == user and m.sid != self.sid for m in kept.members.values()
        )
        return (ops.Join(room, permanent_id=f"{user}#{self.sid}" if taken else None),)

    def _message(self, message: Any) -> Inbound:
        if self._rs.options["message_scope"] == "room":
            rooms = self._rs.rooms_of(self.sid)
            if not rooms:
                return self._bad(
                    MESSAGE,
                    "'message' is relayed to your rooms and you are in none (message_scope: room)",
                    "not_in_room",
                )
            return Inbound(MESSAGE, tuple(ops.Relay(room, MESSAGE, message) for room in rooms))
        self._rs.broadcast(self.sid, message)
        return Inbound(MESSAGE, ())

    # --- out -----------------------------------------------------------------------------------

    def _emit(self, event: str, *args: Any) -> tuple[Frame, ...]:
        return wire.emit(NAMESPACE, event, *args)

    def encode(self, event: Any) -> Sequence[Frame]:
        match event:
            case ev.Authenticated():
                self.connected = True
                return self._connected_frames()
            case ev.AuthFailed():
                text = f"{event.reason}: {event.message}"
                return wire.connect_error(NAMESPACE, text if self.v3 else {"message": text})
            case ev.Relayed() if event.kind == ROOM_KEPT:
                return self._answer_asks(RoomKept(event.room, event.data))
            case ev.Relayed() if event.kind == MESSAGE:
                return self._emit(MESSAGE, event.data)
            case ev.Rejected():
                if not self.connected or not self._rs.options["answer_errors"]:
                    return ()
                body = {"error": event.message, "code": event.code, "originalMessage": event.ref}
                return self._emit(ERROR_EVENT, body)
            case ev.Delivered():
                return (self.deliver(event),)
        # Joined / PeerJoined / PeerLeft (the real server tells nobody), pings (Engine.IO's
        # own), drains and RPC: nothing on this wire.
        return ()

    def _answer_asks(self, event: RoomKept) -> tuple[Frame, ...]:
        frames: list[Frame] = []
        waiting: list[tuple[str, int]] = []
        for room, ack in self.asks:
            if room == event.room:
                frames.extend(wire.ack(NAMESPACE, ack, [event.value]))
            else:
                waiting.append((room, ack))
        self.asks = waiting
        return tuple(frames)

    def deliver(self, event: ev.Delivered) -> Frame:
        """A control-plane publication: the event named by its topic."""
        pub = event.publication
        return wire.emit(NAMESPACE, pub.topic, pub.payload)[0]

    def close(self, reason: CloseReason, detail: str) -> Closing:
        frames: tuple[Frame, ...] = ()
        if self.connected and reason in (CloseReason.POLICY, CloseReason.AUTH_FAILED):
            frames = wire.disconnect(NAMESPACE)  # "io server disconnect"
        self.connected = False
        return Closing(frames, RFC6455_CLOSE_CODES[reason], detail)


def _room_key(roomid: Any) -> str | None:
    """``listOfRooms[roomid]``'s key (JavaScript's ``String(roomid)``) for a usable room id.

    The real server takes anything, but a falsy one (``""``, ``0``) is never found again by
    ``get-session-info`` (``!!listOfRooms[roomid]``), and an object is ``[object Object]``."""
    if isinstance(roomid, bool) or not isinstance(roomid, str | int | float) or not roomid:
        return None
    if isinstance(roomid, float) and roomid.is_integer():
        return str(int(roomid))  # JavaScript prints 3.0 as "3"
    return str(roomid)


class ReliableSignalerDialect(Dialect):
    """The Reliable Signaler server. Options (``Simulator(dialect_options=...)``):

    - ``message_scope``: ``"all"`` (the real server: every other client) or ``"room"`` (the
      members of the sender's rooms, through the core);
    - ``answer_errors``: False drops bad input in silence, as the real server does;
    - ``path``, ``ping_interval``, ``ping_timeout``: the Engine.IO endpoint (real seconds).
    """

    name = "reliable-signaler"
    capabilities = frozenset({"rooms"})
    closes_before_auth = False
    defaults: ClassVar[dict[str, Any]] = {
        "message_scope": "all",
        "answer_errors": True,
        "path": "/socket.io/",
        "ping_interval": 25.0,
        "ping_timeout": 20.0,
    }

    def __init__(self, core: Any, **options: Any) -> None:
        super().__init__(core, **options)
        opts = self.options
        if opts["message_scope"] not in ("all", "room"):
            raise ValueError(
                f"reliable-signaler message_scope is 'all' or 'room': {opts['message_scope']!r}"
            )
        for key in ("ping_interval", "ping_timeout"):
            value = opts[key]
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 1:
                raise ValueError(f"reliable-signaler {key} is whole seconds, at least 1: {value!r}")
        self.kept: dict[str, KeptRoom] = {}  # the real server's ``listOfRooms``
        self.waiting: dict[str, set[str]] = {}  # room -> sids with a get-session-info pending

    # --- the real server's state ---------------------------------------------------------------

    def _gone(self, sid: str, wire_: ReliableSignalerWire) -> bool:
        conn = self.core.connections.get(sid)
        return conn is None or conn.wire is not wire_ or not wire_.connected

    def listed(self, room: str) -> KeptRoom | None:
        """The kept room, unless a keeper whose last room it was has gone (it is deleted)."""
        entry = self.kept.get(room)
        if entry is None:
            return None
        if any(w.kept == room and self._gone(s, w) for s, w in entry.keepers.items()):
            del self.kept[room]
            return None
        return entry

    def keep(self, room: str, value: Any, keeper: ReliableSignalerWire) -> bool:
        """Keep ``room``; True when other sockets wait for it (the keeper wakes them)."""
        entry = self.listed(room)
        if entry is None:
            entry = self.kept[room] = KeptRoom(value)
        entry.value = value  # ``listOfRooms[roomid] = roomid``: the last keeper's value
        entry.keepers = {s: w for s, w in entry.keepers.items() if not self._gone(s, w)}
        entry.keepers[keeper.sid] = keeper
        waiting = self.waiting.pop(room, set())
        return any(sid != keeper.sid and sid in self.core.connections for sid in waiting)

    def wait(self, room: str, sid: str) -> None:
        self.waiting.setdefault(room, set()).add(sid)

    def broadcast(self, sender: str, message: Any) -> None:
        """``socket.broadcast.emit('message', m)``: every other client in the namespace."""
        origin = self.core.connections.get(sender)
        pid = origin.permanent_id or sender if origin is not None else sender
        out = ev.Relayed(NAMESPACE, sender, pid, MESSAGE, message)
        for sid, conn in list(self.core.connections.items()):
            peer = conn.wire
            if (
                sid != sender
                and isinstance(peer, ReliableSignalerWire)
                and peer.connected
                and not conn.closing
            ):
                self.core.emit(conn, out)

    def rooms_of(self, sid: str) -> list[str]:
        conn = self.core.connections.get(sid)
        return sorted(conn.rooms) if conn is not None else []

    def credentials(self, sid: str, token: str | None) -> ops.Authenticate:
        if token:
            return ops.Authenticate(token=token, ref=NAMESPACE)
        secret = self.core.auth.jwt_secret  # no credentials: a guest named by its sid
        return ops.Authenticate(jwt=make_guest_jwt(sid, secret=secret), ref=NAMESPACE)

    # --- the seam ------------------------------------------------------------------------------

    def open(
        self, link_id: str, handshake: Handshake
    ) -> tuple[WireSession, ops.Authenticate | None]:
        query = parse_qs(urlsplit(handshake.path).query)
        v3 = query.get("EIO", [""])[0] == "3"
        session = ReliableSignalerWire(self, link_id, v3=v3)
        if not v3:
            return session, None  # credentials, if any, come with CONNECT
        token = query.get("token", [""])[0] or None
        return session, self.credentials(link_id, token)

    def transport(self, gate: Gate) -> EngineIOTransport:
        opts = self.options
        return EngineIOTransport(
            gate,
            path=opts["path"],
            ping_interval=int(opts["ping_interval"]),
            ping_timeout=int(opts["ping_timeout"]),
            max_payload=self.core.config.max_message_size,
        )
