"""RTCCafe signalling (seed ``002``) as a dialect: the ``/rtc-cafe`` namespace over Socket.IO.

The protocol is that of ``rtc-cafe-signaller-python`` 0.2.0 (Flask-SocketIO,
``rtc_cafe_signaller/wrappers/flask_socketio_wrapper.py``), mapped onto the core's rooms:

=========================================  ==============================================
client event                               server
=========================================  ==============================================
``request-sid``                            ``sid {sid}`` to the sender
``join {room, id?, prevSid?}``             :class:`~squall.simulator.ops.Join`; the others
                                           hear ``acquire-peers {id, sid, prevSid}``
``acquire-peers-response {room,            :class:`~squall.simulator.ops.Relay` to
recipient, id?, prevSid?}``                ``recipient``: ``acquire-peers-response
                                           {id, sid, prevSid}``
``offer`` / ``answer`` / ``candidate``     a Relay to ``recipient`` in a room both are in:
``{recipient, ...}``                       ``{id, sid: <sender>, ...data}`` (the data's own
                                           keys win, as in the real server)
a connection gone                          ``peer-disconnection {sid}`` to each of its rooms
=========================================  ==============================================

The Socket.IO sid of the namespace *is* the core's connection id, so ``recipient`` needs no
translation. A reconnecting client names its permanent ``id`` and its ``prevSid``: the
core re-keys the room member (a ghost) and the others hear ``acquire-peers`` with the
``prevSid``. The ``id`` and ``prevSid`` the others hear are the joiner's own words, as the
real server forwards them, not the core's inference.

An optional validator (``validator``: a callable ``(sid, event, data)`` or
``"module:function"``; ``required_fields``: ``{field: value}`` every validated event must
carry) answers ``error {error, originalMessage: <event>}`` and drops the event, as the real
server does. Bad input the real server drops or fails on in silence (an unknown event, a
payload that is not an object, a missing ``room`` or ``recipient``, an unknown recipient)
is answered the same way unless ``answer_errors`` is False. docs/dialects/rtccafe.md
lists where this dialect and the real server differ, and why.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from socketio import packet as sio

from .. import events as ev
from .. import ops
from ..auth import make_guest_jwt
from ..seam import CloseReason, Closing, Dialect, Frame, Gate, Handshake, Inbound, WireSession
from ..sio import wire
from ..sio.engine import EngineIOTransport
from ..transcript import redact
from . import RFC6455_CLOSE_CODES

if TYPE_CHECKING:
    from ..core import Connection

NAMESPACE = "/rtc-cafe"
#: The events the real server passes through its validator (``request-sid`` is not one).
VALIDATED = frozenset({"join", "acquire-peers-response", "offer", "answer", "candidate"})
#: Signals relayed to ``recipient`` with the sender's sid added.
SIGNALS = frozenset({"offer", "answer", "candidate"})
ACQUIRE_RESPONSE = "acquire-peers-response"

Validator = Callable[[str, str, Any], Any]


@dataclass(frozen=True, slots=True)
class JoinClaim:
    """What a joiner said about itself, for the ``acquire-peers`` the others hear.

    The core broadcasts ``PeerJoined`` / ``PeerSidReassigned`` synchronously inside the
    joiner's ``receive``, so one slot on the dialect carries it from the joiner's wire
    session to the others' (no registry to clean up)."""

    sid: str
    room: str
    id: Any
    prev_sid: Any


class RTCCafeWire(wire.NamespaceWire):
    """One Engine.IO connection of an RTCCafe client."""

    __slots__ = ("_cafe", "_current", "dialect", "sid")
    namespace = NAMESPACE

    def __init__(self, dialect: RTCCafeDialect, sid: str) -> None:
        self.dialect: Dialect = dialect
        self._cafe = dialect
        self.sid = sid
        super().__init__()
        self._current: str | None = None  # the event being handled (an error's originalMessage)

    def greet(self) -> Sequence[Frame]:
        return ()  # the Engine.IO handshake is the transport's; Socket.IO waits for CONNECT

    # --- in ------------------------------------------------------------------------------------

    def receive(self, data: str | bytes) -> Inbound:
        self._current = None
        return super().receive(data)

    def _left(self) -> list[str]:
        # The client left the namespace; its Engine.IO connection stays open until it
        # closes it, as python-socketio's server leaves it. Its rooms hear it at once.
        return self._cafe.rooms_of(self.sid)

    def _connect(self, pkt: wire.Packet) -> Inbound:
        if pkt.namespace == "/":  # Flask-SocketIO admits the default namespace; nothing is there
            return Inbound("connect", (), frames=wire.connected("/", f"{self.sid}-default"))
        if pkt.namespace != NAMESPACE:
            return Inbound(
                "connect", (), frames=wire.connect_error(pkt.namespace, "Unable to connect")
            )
        if self.connected or self._cafe.core.connections[self.sid].session is not None:
            self.connected = True  # again, after a DISCONNECT: the same sid, as python-socketio
            return Inbound("connect", (), frames=wire.connected(NAMESPACE, self.sid))
        auth = pkt.data if isinstance(pkt.data, Mapping) else {}
        token = auth.get("token") if isinstance(auth.get("token"), str) else None
        shown = None
        if auth:
            shown = wire.encode(sio.CONNECT, NAMESPACE, redact(dict(auth)), type="connect")[0].data
        if token:
            op = ops.Authenticate(token=token, ref=NAMESPACE)
        else:  # RTCCafe has no credentials: each connection is a guest named by its sid
            secret = self._cafe.core.auth.jwt_secret
            op = ops.Authenticate(jwt=make_guest_jwt(self.sid, secret=secret), ref=NAMESPACE)
        return Inbound("connect", (op,), shown=shown if isinstance(shown, str) else None)

    def _event(self, pkt: wire.Packet) -> Inbound:
        name = pkt.event
        assert name is not None  # the decoder guarantees an EVENT has a name
        self._current = name
        args = pkt.args
        # A handled event that asked for an ack gets ``[]`` (a Flask-SocketIO handler returns
        # None); one that failed (unknown, malformed) gets none, as there.
        acked = wire.ack(NAMESPACE, pkt.ack) if pkt.ack is not None else ()
        if name == "request-sid":
            return Inbound(name, (), frames=(*self._emit("sid", {"sid": self.sid}), *acked))
        if name not in VALIDATED:
            return self._bad(name, f"unknown event {name!r} in {NAMESPACE}", "unknown_type")
        if len(args) != 1:
            return self._bad(name, f"{name!r} takes one object argument, got {len(args)}")
        data = args[0]
        error = self._cafe.validate(self.sid, name, data)
        if error:
            body = {"error": error, "originalMessage": name}
            return Inbound(name, (), frames=(*self._emit("error", body), *acked))
        if not isinstance(data, dict):
            kind = type(data).__name__
            return self._bad(name, f"{name!r} takes one object argument, got a JSON {kind}")
        item: ops.Join | ops.Relay | ops.BadInput
        if name == "join":
            item = self._join(data)
        elif name == ACQUIRE_RESPONSE:
            item = self._acquire_response(data)
        else:
            item = self._signal(name, data)
        return Inbound(name, (item,), frames=() if isinstance(item, ops.BadInput) else acked)

    def _bad(self, name: str, message: str, code: str = "invalid_message") -> Inbound:
        return Inbound(name, (ops.BadInput(message, code, ref=name),))

    def _join(self, data: dict[str, Any]) -> ops.Join | ops.BadInput:
        room = _room(data)
        if room is None:
            return ops.BadInput("'join' needs a 'room' (a string or a number)", ref="join")
        pid, prev = data.get("id"), data.get("prevSid")
        self._cafe.claim = JoinClaim(self.sid, room, pid, prev)
        return ops.Join(
            room,
            permanent_id=None if pid is None else str(pid),
            prev_sid=prev if isinstance(prev, str) else None,
        )

    def _acquire_response(self, data: dict[str, Any]) -> ops.Relay | ops.BadInput:
        room, recipient = _room(data), data.get("recipient")
        if room is None or not isinstance(recipient, str):
            return ops.BadInput(
                f"{ACQUIRE_RESPONSE!r} needs a 'room' and a 'recipient' (a sid)",
                ref=ACQUIRE_RESPONSE,
            )
        body = {"id": data.get("id"), "prevSid": data.get("prevSid")}
        return ops.Relay(room, ACQUIRE_RESPONSE, body, to=recipient)

    def _signal(self, name: str, data: dict[str, Any]) -> ops.Relay | ops.BadInput:
        recipient = data.get("recipient")
        if not isinstance(recipient, str):
            return ops.BadInput(f"{name!r} needs a 'recipient' (the peer's sid)", ref=name)
        room = self._cafe.shared_room(self.sid, recipient, _room(data))
        if room is None:
            return ops.BadInput(
                f"no peer {recipient!r} shares a room with you", "unknown_peer", ref=name
            )
        return ops.Relay(room, name, data, to=recipient)

    # --- out -----------------------------------------------------------------------------------

    def _emit(self, event: str, *args: Any) -> tuple[Frame, ...]:
        return wire.emit(NAMESPACE, event, *args)

    def encode(self, event: ev.Event) -> Sequence[Frame]:
        match event:
            case ev.Authenticated():
                self.connected = True
                return wire.connected(NAMESPACE, self.sid)
            case ev.AuthFailed():
                return wire.connect_error(
                    NAMESPACE, {"message": f"{event.reason}: {event.message}"}
                )
            case ev.PeerJoined():
                return self._acquire_peers(event.room, event.peer.sid, event.peer.permanent_id)
            case ev.PeerSidReassigned():
                return self._acquire_peers(
                    event.room, event.new_sid, event.permanent_id, event.old_sid
                )
            case ev.PeerLeft():
                return self._emit("peer-disconnection", {"sid": event.sid})
            case ev.Relayed():
                return self._relayed(event)
            case ev.Rejected():
                if not self.connected or not self._cafe.options["answer_errors"]:
                    return ()  # a client not in /rtc-cafe would drop it unread
                origin = event.ref if isinstance(event.ref, str) else self._current
                return self._emit("error", {"error": event.message, "originalMessage": origin})
            case ev.Delivered():
                return (self.deliver(event),)
        # Joined (the real server tells the joiner nothing), Left, pings (Engine.IO's own),
        # drains and RPC: nothing on this wire.
        return ()

    def _acquire_peers(
        self, room: str, sid: str, permanent_id: str, old_sid: str | None = None
    ) -> tuple[Frame, ...]:
        claim = self._cafe.claim
        if claim is not None and claim.sid == sid and claim.room == room:
            pid, prev = claim.id, claim.prev_sid
        else:  # not from a join on this wire (none today): what the core knows
            pid, prev = (None if permanent_id == sid else permanent_id), old_sid
        return self._emit("acquire-peers", {"id": pid, "sid": sid, "prevSid": prev})

    def _relayed(self, event: ev.Relayed) -> tuple[Frame, ...]:
        data = event.data if isinstance(event.data, dict) else {}
        if event.kind == ACQUIRE_RESPONSE:
            body = {"id": data.get("id"), "sid": event.sender, "prevSid": data.get("prevSid")}
        else:  # ``{"id": ..., "sid": request.sid, **data}``: the sender's own keys win
            body = {"id": data.get("id"), "sid": event.sender, **data}
        return self._emit(event.kind, body)

    def deliver(self, event: ev.Delivered) -> Frame:
        """A control-plane publication: the event named by its topic (never subscribed here)."""
        pub = event.publication
        return wire.emit(NAMESPACE, pub.topic, pub.payload)[0]

    def close(self, reason: CloseReason, detail: str) -> Closing:
        frames: tuple[Frame, ...] = ()
        if self.connected and reason in (CloseReason.POLICY, CloseReason.AUTH_FAILED):
            frames = wire.disconnect(NAMESPACE)  # the server ends the namespace: no reconnect
        return Closing(frames, RFC6455_CLOSE_CODES[reason], detail)


def _room(data: Mapping[str, Any]) -> str | None:
    """RTCCafe's room id: "a number or string" (the core keys rooms by their text)."""
    room = data.get("room")
    if isinstance(room, bool) or not isinstance(room, str | int | float):
        return None
    return str(room)


def _load_validator(spec: object) -> Validator | None:
    if spec is None or callable(spec):
        return spec
    if isinstance(spec, str) and ":" in spec:
        module, _, attr = spec.partition(":")
        found: object = getattr(importlib.import_module(module), attr, None)
        if callable(found):
            return found
    raise ValueError(
        "rtccafe validator must be a callable (sid, event, data) or 'module:function', "
        f"got {spec!r}"
    )


class RTCCafeDialect(Dialect):
    """The RTCCafe signaller. Options (``Simulator(dialect_options=...)``):

    - ``validator``: ``(sid, event, data) -> error`` (or ``"module:function"``); a truthy
      error answers ``error {error, originalMessage}`` and drops the event;
    - ``required_fields``: ``{field: value}`` each validated event must carry (a CSRF token
      put in by the client's signal modifier), checked before ``validator``;
    - ``answer_errors``: False drops bad input in silence, as the real server does;
    - ``path``, ``ping_interval``, ``ping_timeout``: the Engine.IO endpoint (real seconds).
    """

    name = "rtccafe"
    capabilities = frozenset({"rooms"})
    closes_before_auth = False
    defaults: ClassVar[dict[str, Any]] = {
        "validator": None,
        "required_fields": {},
        "answer_errors": True,
        "path": "/socket.io/",
        "ping_interval": 25.0,
        "ping_timeout": 20.0,
    }

    def __init__(self, core: Any, **options: Any) -> None:
        super().__init__(core, **options)
        opts = self.options
        self._validator = _load_validator(opts["validator"])
        required = opts["required_fields"]
        if not isinstance(required, Mapping) or not all(isinstance(k, str) for k in required):
            raise ValueError(f"rtccafe required_fields maps a field name to a value: {required!r}")
        for key in ("ping_interval", "ping_timeout"):
            value = opts[key]
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 1:
                raise ValueError(f"rtccafe {key} is whole seconds, at least 1: {value!r}")
        self.claim: JoinClaim | None = None

    def validate(self, sid: str, event: str, data: Any) -> Any:
        """The error to answer this event with, or None: the real server's validator hook."""
        for field, value in self.options["required_fields"].items():
            if not isinstance(data, Mapping) or data.get(field) != value:
                return f"missing or wrong {field!r}"
        if self._validator is not None:
            return self._validator(sid, event, data)
        return None

    def rooms_of(self, sid: str) -> list[str]:
        conn = self.core.connections.get(sid)
        return sorted(conn.rooms) if conn is not None else []

    def shared_room(self, sid: str, peer: str, hint: str | None) -> str | None:
        """A room both ``sid`` and ``peer`` are in (``hint`` first): where a signal goes."""
        conn: Connection | None = self.core.connections.get(sid)
        if conn is None:
            return None
        rooms = self.core.rooms
        candidates = sorted(conn.rooms)
        if hint in conn.rooms:
            candidates.insert(0, hint)
        for name in candidates:
            room = rooms.get(name)
            if room is not None and peer in room.members:
                return name
        return None

    def open(
        self, link_id: str, handshake: Handshake
    ) -> tuple[WireSession, ops.Authenticate | None]:
        return RTCCafeWire(self, link_id), None  # credentials, if any, come with CONNECT

    def transport(self, gate: Gate) -> EngineIOTransport:
        opts = self.options
        return EngineIOTransport(
            gate,
            path=opts["path"],
            ping_interval=int(opts["ping_interval"]),
            ping_timeout=int(opts["ping_timeout"]),
            max_payload=self.core.config.max_message_size,
        )
