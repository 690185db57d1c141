"""The sans-I/O session core of the reference client.

Theory of operation
-------------------
:class:`ClientCore` is fed events (an application call, a socket opened, a
frame received, a socket closed, a timer fired), each with the current
protocol time ``now``, and queues :mod:`actions <squall.client.actions>` that
the caller collects with :meth:`ClientCore.actions` and carries out in order:
open or close a socket, send a frame, set or cancel a named timer, emit an
event, resolve or reject an application operation (a *ticket*). It never reads
a clock, never sleeps and does no I/O, so every rule below is tested by
jumping ``now`` (tests/client/test_core_*.py).

At most one socket exists at a time, numbered ``conn``; reports about any other
number are stale and ignored. The public :class:`~squall.client.states.Status`
moves only through :func:`~squall.client.states.next_status`, the socket's
:class:`~squall.client.phases.Phase` only through :meth:`ClientCore._to_phase`, a
drain only through :meth:`ClientCore._to_drain`, and every timer is one of
:data:`~squall.client.phases.TIMERS`: the tables in states.py and phases.py are
the machine, drawn in docs/client.md.

Rules (sections of docs/protocol.md)
------------------------------------
- §2 The client is *connected* only after ``authenticated`` (and, when a
  recovery token was presented, the ``recovery`` answer that follows it).
  ``auth_failed`` is final: no reconnect, ever (``classify_close``).
- §3 A ping every interval (policy, else the server's ``heartbeat``); a ping not
  answered within ``pong_timeout`` is a miss; ``max_missed_pongs`` consecutive
  misses abandon the socket and reconnect. Server pings are answered at once.
- §4/§7 The topics the application wants are kept; after every connection the
  ones missing from the server's ``subscriptions`` are subscribed again, and any
  it no longer wants are unsubscribed. ``recovered`` / ``recovery_failed`` is
  emitted on every answer: never silent. Duplicate ``seq`` are dropped.
- §5 Calls made while not connected are spooled FIFO and sent once after the
  next ``authenticated``; a call's timeout starts when it is sent; a call in
  flight when the socket ends is rejected (it may or may not have run).
- §6 A ``reconnect_request`` is emitted; no answer within ``drain_answer_within``
  -> reconnect now; ``pending`` holds until ``done`` or the deadline; a 1012
  close reconnects at once, without backoff.
- §8 Rooms are rejoined after a reconnect with ``prev_sid`` = the old sid, and the
  client's own tracks are defined again.
- Failover: every (re)connect takes the next URL, round-robin.
"""

from __future__ import annotations

import logging
import random
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, assert_never

from squall.protocol import messages as m
from squall.protocol.errors import ProtocolError

from .actions import (
    Action,
    CancelTimer,
    Close,
    Emit,
    Loopback,
    OpenSocket,
    Reject,
    Resolve,
    Send,
    SetTimer,
)
from .errors import (
    AuthFailed,
    CallInterrupted,
    CallTimeout,
    ClientClosed,
    ClientError,
    ConnectionFailed,
    NotConnected,
    RemoteError,
)
from .phases import (
    DRAIN_TIMERS,
    SOCKET_TIMERS,
    TIMERS,
    Drain,
    DrainEvent,
    Phase,
    PhaseEvent,
    Timer,
    call_timer,
    next_drain,
    next_phase,
    parse_timer,
)
from .policy import Policy, Verdict, backoff_delays, classify_close
from .states import Status, Trigger, next_status
from .wire import ClientWire, ReferenceClientWire

log = logging.getLogger("squall.client")


class RequestKind(StrEnum):
    """What a request in flight is; decides what its answer, or the socket's end, does."""

    CALL = "call"  # rejected with CallInterrupted when the socket ends (§5)
    SUBSCRIBE = "subscribe"  # sent again on the next connection
    RESUBSCRIBE = "resubscribe"  # the same, for topics confirmed before: emits `resubscribed`
    UNSUBSCRIBE = "unsubscribe"  # resolved when the socket ends: the server forgets them
    JOIN = "join"  # its tickets wait on the room, not on the request
    LEAVE = "leave"  # resolved when the socket ends


@dataclass
class Request:
    """A frame sent with an ``id`` whose answer resolves ``tickets``."""

    kind: RequestKind
    tickets: list[int]
    method: str = ""
    timeout: float = 0.0
    topics: tuple[str, ...] = ()
    room: str = ""


@dataclass
class Spooled:
    message: m.Message
    ticket: int | None = None
    timeout: float = 0.0


@dataclass
class RoomState:
    permanent_id: str | None
    joined: bool = False
    sid: str | None = None
    peers: dict[str, dict[str, Any]] = field(default_factory=dict)
    tracks: dict[str, dict[str, Any]] = field(default_factory=dict)  # our own, re-defined on rejoin
    waiting: list[int] = field(default_factory=list)


class ClientCore:
    """Session state machine of the reference client. See the module docstring for the rules."""

    def __init__(
        self,
        urls: list[str],
        *,
        token: str | None = None,
        jwt: str | None = None,
        policy: Policy | None = None,
        rng: random.Random | None = None,
        recovery_token: str | None = None,
        wire: ClientWire | None = None,
    ) -> None:
        if not urls:
            raise ValueError("at least one URL is needed")
        self.urls = list(urls)
        self.wire: ClientWire = wire or ReferenceClientWire()
        self.token = token
        self.jwt = jwt
        self.policy = policy or Policy()
        self.rng = rng or random.Random()
        self.status = Status.IDLE
        self.phase = Phase.NONE
        self.conn = 0
        self.url: str | None = None
        self.session: str | None = None
        self.sid: str | None = None
        self.user: str | None = None
        self.recovery_token = recovery_token
        self.prev_sid: str | None = None
        self.heartbeat: float | None = None
        self.attempt = 0
        self.final_error: ClientError | None = None  # why the client is CLOSED
        self.wanted: dict[str, None] = {}  # topics, in the order the application asked for them
        self.confirmed: set[str] = set()
        self.rooms: dict[str, RoomState] = {}
        self.spool: deque[Spooled] = deque()
        self._out: list[Action] = []
        self._timers: set[str] = set()
        self._next_url = 0
        self._next_id = 0
        self._ping_id = 0
        self._backoff: Iterator[float] | None = None
        self._auth_failed: ClientError | None = None  # the final error a refusal set
        self._presented_recovery = False
        self._presented_token: str | None = None
        # The token of the session the application last heard of (connected, or a recovery
        # answer): an unanswered recovery can swap sessions behind its back (see _on_recovery).
        self._known_token = recovery_token
        # The session's last notification seq: 0 for a new session (seq counts from 1, §4),
        # None while unknown (a recovery not yet answered, or never answered: which session
        # the next connection resumes is then unknown). _seq_before waits for the answer.
        self._last_seq: int | None = 0
        self._seq_before: int | None = None
        self._outstanding_ping: int | None = None
        self._missed = 0
        self._drain = Drain.NONE
        self._drain_at = 0.0
        self._drain_deadline = 0.0
        self._requests: dict[int, Request] = {}
        self._waiting_subscribe: list[int] = []
        self._ever_confirmed: set[str] = set()
        self._auth_frame = False

    # --- output -----------------------------------------------------------------------------------

    def actions(self) -> list[Action]:
        """Everything queued since the last call, in order; the caller must carry it out."""
        out, self._out = self._out, []
        return out

    def snapshot(self) -> dict[str, Any]:
        """A JSON-serialisable view for status commands and debugging."""
        return {
            "status": self.status.value,
            "phase": self.phase.value,
            "url": self.url,
            "session": self.session,
            "sid": self.sid,
            "user": self.user,
            "attempt": self.attempt,
            "subscriptions": list(self.wanted),
            "rooms": {
                name: {"joined": r.joined, "sid": r.sid, "peers": sorted(r.peers)}
                for name, r in self.rooms.items()
            },
            "spooled": len(self.spool),
            "drain": None if self._drain is Drain.NONE else self._drain.value,
        }

    def _emit(self, event: str, **data: Any) -> None:
        self._out.append(Emit(event, data))

    def _move(self, trigger: Trigger) -> None:
        new = next_status(self.status, trigger)
        if new is not self.status:
            log.debug("status %s -> %s (%s)", self.status.value, new.value, trigger.value)
            previous, self.status = self.status, new
            self._emit("status", status=new.value, previous=previous.value, trigger=trigger.value)

    def _to_phase(self, event: PhaseEvent) -> None:
        """The one place the phase changes; an undeclared move raises AssertionError."""
        new = next_phase(self.phase, event)
        log.debug("phase %s -> %s (%s)", self.phase.value, new.value, event.value)
        self.phase = new

    def _to_drain(self, event: DrainEvent, at: float = 0.0) -> None:
        """The one place a drain moves: the new state's timer is set at ``at``, the others end."""
        self._drain = new = next_drain(self._drain, event)
        keep = DRAIN_TIMERS.get(new)
        for timer in DRAIN_TIMERS.values():
            if timer is not keep:
                self._cancel_timer(timer)
        if keep is not None:
            self._set_timer(keep, at)

    def _set_timer(self, timer: Timer, at: float, ticket: int | None = None) -> None:
        if self.phase not in TIMERS[timer].armed_in:
            raise AssertionError(
                f"client bug: timer {timer.value!r} set in phase {self.phase.value!r}"
                f" (TIMERS allows {', '.join(sorted(TIMERS[timer].armed_in))})"
            )
        name = call_timer(ticket) if ticket is not None else timer.value
        self._timers.add(name)
        self._out.append(SetTimer(name, at))

    def _cancel_timer(self, timer: Timer, ticket: int | None = None) -> None:
        self._cancel_name(call_timer(ticket) if ticket is not None else timer.value)

    def _cancel_name(self, name: str) -> None:
        if name in self._timers:
            self._timers.discard(name)
            self._out.append(CancelTimer(name))

    def _send(self, msg: m.Message) -> None:
        out = self.wire.encode(msg)
        for i, data in enumerate(out.frames):
            self._out.append(Send(self.conn, data))
            shown = out.shown[i] if i < len(out.shown) else None
            if shown is None:
                shown = data if isinstance(data, str) else repr(data)
            self._emit("sent", type=msg.type, text=shown)
        for answer in out.answers:
            self._out.append(Loopback(self.conn, answer))

    def _ticket(self) -> int:
        self._next_id += 1
        return self._next_id

    @property
    def ready(self) -> bool:
        return self.phase is Phase.READY

    # --- application: lifecycle -------------------------------------------------------------------

    def connect(self, now: float) -> None:
        """Connect (from IDLE or CLOSED); ends in ``connected`` or a final ``disconnected``."""
        self._move(Trigger.CONNECT)
        self.attempt = 0
        self._backoff = None
        self._auth_failed = None
        self._open(now)

    def disconnect(self, now: float) -> None:
        """Close for good: no reconnect; every pending operation is rejected with ClientClosed."""
        if self.status in (Status.CLOSED, Status.CLOSING):  # already final: a no-op
            return
        self._move(Trigger.DISCONNECT)
        for name in list(self._timers):
            self._cancel_name(name)
        self._fail_all(ClientClosed("operation"))
        if self.phase is not Phase.NONE:
            self._to_phase(PhaseEvent.CLOSE)
            self._out.append(Close(self.conn, 1000, "client disconnect"))
        else:
            self._closed(None, "client disconnect")

    def reconnect(self, now: float) -> None:
        """Drop the current connection (if any) and connect again at once, without backoff."""
        if self.status in (Status.IDLE, Status.CLOSED):
            self.connect(now)
            return
        if self.status is Status.CLOSING:
            raise NotConnected("cannot reconnect: the client is disconnecting")
        was_ready = self.ready
        if self.phase is not Phase.NONE:
            self._out.append(Close(self.conn, 1000, "client reconnect"))
        self._socket_gone("client reconnect")
        self._move(Trigger.RECONNECT)
        if was_ready:
            self._emit("disconnected", code=1000, reason="client reconnect", reconnecting=True)
        self._cancel_timer(Timer.RETRY)
        self._retry(now, 0.0)

    # --- application: pub/sub (§4) ----------------------------------------------------------------

    def subscribe(self, topics: list[str], now: float) -> int:
        """Want ``topics``; the ticket resolves when the server confirms (now or once connected)."""
        if not topics:
            raise ValueError("subscribe needs at least one topic")
        ticket = self._ticket()
        for topic in topics:
            self.wanted[topic] = None
        if self.ready:
            self._send(m.Subscribe(id=ticket, topics=list(topics)))
            self._requests[ticket] = Request(RequestKind.SUBSCRIBE, [ticket], topics=tuple(topics))
        else:
            self._waiting_subscribe.append(ticket)
        return ticket

    def unsubscribe(self, topics: list[str], now: float) -> int:
        ticket = self._ticket()
        for topic in topics:
            self.wanted.pop(topic, None)
        if self.ready:
            self._send(m.Unsubscribe(id=ticket, topics=list(topics)))
            self._requests[ticket] = Request(
                RequestKind.UNSUBSCRIBE, [ticket], topics=tuple(topics)
            )
        else:  # the server forgets them when recovery fails, or we unsubscribe after it (§7)
            self.confirmed.difference_update(topics)
            self._out.append(Resolve(ticket, list(topics)))
        return ticket

    # --- application: RPC (§5) --------------------------------------------------------------------

    def call(
        self,
        method: str,
        params: Any = None,
        now: float = 0.0,
        *,
        timeout: float | None = None,
        no_reply: bool = False,
    ) -> int:
        """Call ``method``; spooled when not connected. The ticket resolves with the result."""
        ticket = self._ticket()
        msg = m.Call(id=ticket, method=method, params=params, no_reply=no_reply)
        item = Spooled(msg, ticket, self.policy.call_timeout if timeout is None else timeout)
        if self.ready:
            self._send_spooled(item, now)
        else:
            self.spool.append(item)
            self._emit("spooled", type="call", id=ticket, method=method)
        return ticket

    def _send_spooled(self, item: Spooled, now: float) -> None:
        self._send(item.message)
        if item.ticket is None:
            return
        msg = item.message
        assert isinstance(msg, m.Call)
        if msg.no_reply:
            self._out.append(Resolve(item.ticket, None))
            return
        self._requests[item.ticket] = Request(
            RequestKind.CALL, [item.ticket], method=msg.method, timeout=item.timeout
        )
        self._set_timer(Timer.CALL, now + item.timeout, item.ticket)

    # --- application: drain (§6) ------------------------------------------------------------------

    def answer_drain(self, status: str, now: float) -> None:
        """Answer the outstanding reconnect request with ``pending`` or ``done``."""
        if status not in ("pending", "done"):
            raise ValueError(f"answer must be 'pending' or 'done', got {status!r}")
        if not self.ready or self._drain in (Drain.NONE, Drain.DONE):
            raise NotConnected("no reconnect request is outstanding")
        if status == "pending":
            if self._drain is Drain.PENDING:
                return
            self._send(m.ReconnectResponse(status="pending"))
            self._to_drain(DrainEvent.PENDING, self._drain_at + self._drain_deadline)
            return
        self._send(m.ReconnectResponse(status="done"))
        # The server closes with 1012 at once; if it does not, move anyway.
        self._to_drain(DrainEvent.DONE, now + self.policy.drain_close_grace)

    # --- application: signalling (§8) -------------------------------------------------------------

    def join_room(self, room: str, now: float, *, permanent_id: str | None = None) -> int:
        ticket = self._ticket()
        state = self.rooms.get(room)
        if state is None:
            state = self.rooms[room] = RoomState(permanent_id or self.policy.permanent_id)
        state.waiting.append(ticket)
        if self.ready and not state.joined:
            self._send_join(room, state, ticket)
        elif state.joined:
            self._resolve_room(room, state)
        return ticket

    def _send_join(self, room: str, state: RoomState, ticket: int) -> None:
        self._send(
            m.Join(id=ticket, room=room, permanent_id=state.permanent_id, prev_sid=self.prev_sid)
        )
        self._requests[ticket] = Request(RequestKind.JOIN, [], room=room)

    def leave_room(self, room: str, now: float) -> int:
        ticket = self._ticket()
        state = self.rooms.pop(room, None)
        if state is not None:
            for waiting in state.waiting:
                self._out.append(Reject(waiting, ClientClosed(f"join of room {room!r}")))
        if self.ready and state is not None and state.joined:
            self._send(m.Leave(id=ticket, room=room))
            self._requests[ticket] = Request(RequestKind.LEAVE, [ticket], room=room)
        else:
            self._out.append(Resolve(ticket, room))
        return ticket

    def send_signal(
        self, room: str, kind: str, data: Any = None, now: float = 0.0, *, to: str | None = None
    ) -> None:
        """Relay ``data`` to peer ``to`` (or the whole room); spooled while not connected."""
        if room not in self.rooms:
            raise NotConnected(f"not a member of room {room!r}: join_room() first")
        self._send_or_spool(m.SendSignal(room=room, to=to, kind=kind, data=data))  # type: ignore[arg-type]

    def send_message(
        self, message: Any, now: float = 0.0, *, to: str | None = None, room: str | None = None
    ) -> None:
        """RTCCafe's ``sendMessage``: to one peer by sid, or to every peer when ``to`` is None."""
        self.send_signal(self._pick_room(room), "message", message, now, to=to)

    def define_track(self, room: str, track: dict[str, Any], now: float = 0.0) -> str:
        definition = m.TrackDefinition(**track)
        state = self._room(room)
        state.tracks[definition.id] = definition.model_dump()
        if state.joined and self.ready:
            self._send(m.TrackDefine(room=room, track=definition))
        return definition.id

    def remove_track(self, room: str, track_id: str, now: float = 0.0) -> None:
        state = self._room(room)
        if state.tracks.pop(track_id, None) is not None and state.joined and self.ready:
            self._send(m.TrackRemove(room=room, track_id=track_id))

    def request_track(self, room: str, to: str, track_id: str, now: float = 0.0) -> None:
        self._room(room)
        self._send_or_spool(m.TrackRequest(room=room, to=to, track_id=track_id))

    def _room(self, room: str) -> RoomState:
        state = self.rooms.get(room)
        if state is None:
            raise NotConnected(f"not a member of room {room!r}: join_room() first")
        return state

    def _pick_room(self, room: str | None) -> str:
        if room is not None:
            return room
        if len(self.rooms) != 1:
            raise ValueError(
                f"room is ambiguous: the client is in {len(self.rooms)} rooms; pass room="
            )
        return next(iter(self.rooms))

    def _send_or_spool(self, msg: m.Message) -> None:
        if self.ready:
            self._send(msg)
        else:
            self.spool.append(Spooled(msg))
            self._emit("spooled", type=msg.type)

    # --- transport events -------------------------------------------------------------------------

    def socket_opened(self, conn: int, now: float) -> None:
        """The WebSocket handshake of socket ``conn`` completed."""
        if conn != self.conn or self.phase is not Phase.OPENING:
            return
        self._to_phase(PhaseEvent.OPENED)
        if self._auth_frame:
            self._send(
                m.Auth(
                    token=self.token,
                    jwt=None if self.token else self.jwt,
                    recovery_token=self._recovery_to_present(),
                    client={"name": "squall-reference-client"},
                )
            )

    def socket_closed(
        self,
        conn: int,
        code: int | None,
        reason: str,
        now: float,
        *,
        fatal: bool = False,
        error: ClientError | None = None,
    ) -> None:
        """Socket ``conn`` ended or could not be opened (``code`` None: no close frame).

        ``fatal`` marks a refusal retrying cannot fix (an HTTP 401/403 handshake answer, a
        certificate that fails verification); ``error`` is then the error the client closes
        with (default: ``AuthFailed("forbidden")``).
        """
        if conn != self.conn or self.phase is Phase.NONE:
            return
        if self.phase is Phase.CLOSING:
            self._socket_gone(reason)
            self._closed(code, reason)
            return
        if fatal and self._auth_failed is None:
            self._auth_failed = error or AuthFailed("forbidden", reason)
        self._lost(code, reason, now)

    def receive_frame(self, conn: int, text: str | bytes, now: float) -> None:
        """One frame from the server on socket ``conn``."""
        if conn != self.conn or self.phase in (Phase.NONE, Phase.CLOSING):
            return
        try:
            messages = self.wire.decode(text)
        except ProtocolError as exc:
            self._emit("error", kind="bad_frame", message=f"unreadable frame from server: {exc}")
            return
        shown = text if isinstance(text, str) else repr(text)
        for msg in messages:
            self._emit("packet", type=msg.type, text=shown)
            self.receive_message(conn, msg, now)

    def receive_message(self, conn: int, msg: m.Message, now: float) -> None:
        """One reference message, decoded from a frame or answered locally by the wire."""
        if conn != self.conn or self.phase in (Phase.NONE, Phase.CLOSING):
            return
        handler = getattr(self, f"_on_{msg.type}", None)
        if handler is None:  # pragma: no cover - every server type has a handler
            self._emit("error", kind="unexpected", message=f"unhandled message {msg.type!r}")
            return
        handler(msg, now)

    def timer_fired(self, name: str, now: float) -> None:
        """Timer ``name`` fell due. Timers cancelled or replaced meanwhile are ignored."""
        if name not in self._timers:
            return
        self._timers.discard(name)
        timer, ticket = parse_timer(name)
        match timer:
            case Timer.RETRY:
                self._open(now)
            case Timer.OPEN:
                self._abandon(
                    f"not authenticated within {self.policy.open_timeout:g}s", now, abort=True
                )
            case Timer.PING:
                self._ping_tick(now)
            case Timer.PONG:
                self._pong_missed(now)
            case Timer.DRAIN_ANSWER:
                self._abandon("reconnect request not answered in time", now, immediate=True)
            case Timer.DRAIN_DEADLINE:
                self._abandon("reconnect request deadline reached", now, immediate=True)
            case Timer.DRAIN_CLOSE:
                self._abandon("server did not close after drain done", now, immediate=True)
            case Timer.CALL:
                assert ticket is not None
                self._call_timed_out(ticket)
            case _:  # pragma: no cover - every Timer has a case
                assert_never(timer)

    # --- connecting -------------------------------------------------------------------------------

    def _recovery_to_present(self) -> str | None:
        return self.recovery_token if self.policy.recover else None

    def _open(self, now: float) -> None:
        self.conn += 1
        self.url = self.urls[self._next_url % len(self.urls)]
        self._next_url += 1
        self._to_phase(PhaseEvent.OPEN)
        self._auth_failed = None
        recovery = self._recovery_to_present()
        self._presented_recovery = recovery is not None
        self._presented_token = recovery
        opening = self.wire.opening(
            self.url,
            token=self.token,
            jwt=self.jwt,
            recovery_token=recovery,
            auth_via=self.policy.auth_via,
        )
        self._auth_frame = opening.auth_frame
        self._set_timer(Timer.OPEN, now + self.policy.open_timeout)
        self._out.append(OpenSocket(self.conn, opening.url, opening.headers))

    def _on_authenticated(self, msg: m.Authenticated, now: float) -> None:
        if self.phase is not Phase.AUTHENTICATING:
            self._emit("error", kind="unexpected", message="'authenticated' on a live session")
            return
        if self._presented_recovery:  # `recovery` says whether the count goes on (§7)
            same = msg.session == self.session
            self._seq_before = self._last_seq if same else None
            # Until it does (and if it never comes), the count goes on only when the server
            # kept the token as well: a new token may be a new session with a reused id.
            if not (same and msg.recovery_token == self._presented_token):
                self._last_seq = None
        else:  # a new session counts from 1
            self._last_seq = 0
        self.session, self.sid, self.user = msg.session, msg.sid, msg.user
        self.recovery_token = msg.recovery_token
        self.heartbeat = msg.heartbeat
        if self._presented_recovery:
            self._to_phase(PhaseEvent.RECOVER)  # the `recovery` answer follows (§7)
            return
        self._ready(set(), now)

    def _on_recovery(self, msg: m.Recovery, now: float) -> None:
        if self.phase is not Phase.RECOVERING:
            self._emit("error", kind="unexpected", message="'recovery' without a recovery token")
            return
        # Recovered or overflowed: the same session, its count goes on. Failed: a new session,
        # seq from 1 (§7), even when its id repeats the old one's (a restarted server).
        kept = msg.recovered or msg.reason == "overflow"
        self._last_seq = self._seq_before if kept else 0
        if kept and self._presented_token != self._known_token:
            # A previous `recovery` answer never arrived and the server had given us another
            # session then: this one was recovered, but the session the application had is
            # gone, and what it was owed cannot be counted. Never silent (§7).
            self._emit(
                "recovery_failed",
                lost=msg.lost,
                reason="unknown",
                replayed=msg.replayed,
                session=self.session,
            )
        elif msg.recovered:
            self._emit("recovered", replayed=msg.replayed, session=self.session)
        else:  # never silent (§7): the application learns what was lost
            self._emit(
                "recovery_failed",
                lost=msg.lost,
                reason=msg.reason,
                replayed=msg.replayed,
                session=self.session,
            )
        self._ready(set(msg.subscriptions), now)

    def _on_auth_failed(self, msg: m.AuthFailed, now: float) -> None:
        self._auth_failed = AuthFailed(msg.reason, msg.message)
        self._emit("auth_failed", reason=msg.reason, message=msg.message)

    def _ready(self, server_topics: set[str], now: float) -> None:
        self._cancel_timer(Timer.OPEN)
        self._known_token = self.recovery_token
        self._to_phase(PhaseEvent.READY)
        self.attempt = 0
        self._backoff = None
        self._move(Trigger.READY)
        self._resubscribe(server_topics)
        for name, state in self.rooms.items():
            state.joined = False
            self._send_join(name, state, self._ticket())
        self._start_keepalive(now)
        while self.spool:  # FIFO, each exactly once (§5)
            self._send_spooled(self.spool.popleft(), now)
        self._emit("connected", session=self.session, sid=self.sid, user=self.user, url=self.url)

    def _resubscribe(self, server_topics: set[str]) -> None:
        self.confirmed = set(server_topics) & set(self.wanted)
        waiting, self._waiting_subscribe = self._waiting_subscribe, []
        missing = [t for t in self.wanted if t not in server_topics]
        if not self.policy.resubscribe:  # deliberately broken: only never-sent topics go out
            missing = [t for t in missing if t not in self._ever_confirmed]
        extra = sorted(server_topics - set(self.wanted))
        if extra:
            self._send(m.Unsubscribe(id=self._ticket(), topics=extra))
        if missing:
            wire = self._ticket()
            self._send(m.Subscribe(id=wire, topics=missing))
            again = bool(self._ever_confirmed.intersection(missing))
            kind = RequestKind.RESUBSCRIBE if again else RequestKind.SUBSCRIBE
            self._requests[wire] = Request(kind, waiting, topics=tuple(missing))
        else:
            for ticket in waiting:
                self._out.append(Resolve(ticket, sorted(server_topics)))

    # --- losing a connection ----------------------------------------------------------------------

    def _socket_gone(self, reason: str) -> None:
        """Forget the current socket: its timers, its drain, its in-flight requests."""
        if self.ready:
            self.prev_sid = self.sid
        if self.phase is not Phase.NONE:  # reconnect() between attempts: there is no socket
            self._to_phase(PhaseEvent.GONE)
        for timer in SOCKET_TIMERS:
            self._cancel_timer(timer)
        if self._drain is not Drain.NONE:
            self._to_drain(DrainEvent.GONE)
        self._outstanding_ping = None
        self._missed = 0
        for state in self.rooms.values():
            state.joined = False
        requests, self._requests = self._requests, {}
        for request in requests.values():
            if request.kind is RequestKind.CALL:
                ticket = request.tickets[0]
                self._cancel_timer(Timer.CALL, ticket)
                self._out.append(Reject(ticket, CallInterrupted(request.method, reason)))
            elif request.kind in (RequestKind.SUBSCRIBE, RequestKind.RESUBSCRIBE):
                self._waiting_subscribe.extend(request.tickets)  # still wanted: sent again
            else:  # join / leave / unsubscribe: the server forgets with the session
                for ticket in request.tickets:
                    self._out.append(Resolve(ticket, None))

    def _abandon(
        self, reason: str, now: float, *, abort: bool = False, immediate: bool = False
    ) -> None:
        """The client itself gives up on this socket (dead, or asked to move) and reconnects."""
        self._out.append(Close(self.conn, 1000, reason[:120], abort=abort))
        self._lost(None, reason, now, immediate=immediate)

    def _lost(self, code: int | None, reason: str, now: float, *, immediate: bool = False) -> None:
        was_ready = self.ready
        self._socket_gone(reason)
        auth_failed = self._auth_failed
        verdict = classify_close(code, auth_failed=auth_failed is not None, policy=self.policy)
        if immediate and verdict is Verdict.BACKOFF:
            verdict = Verdict.IMMEDIATE
        if not was_ready and verdict is not Verdict.FATAL:
            self._emit("connect_failed", url=self.url, code=code, reason=reason)
        if was_ready or verdict is Verdict.FATAL:
            self._emit(
                "disconnected",
                code=code,
                reason=reason,
                reconnecting=verdict is not Verdict.FATAL,
            )
        if verdict is Verdict.FATAL:
            error: ClientError = auth_failed or ConnectionFailed(
                f"connection lost ({code}: {reason}) and reconnecting is disabled", self.attempt
            )
            self._give_up(error)
            return
        self._move(Trigger.LOST)
        if verdict is Verdict.IMMEDIATE:
            self._retry(now, 0.0)
            return
        if self._backoff is None:
            self._backoff = backoff_delays(self.policy, self.rng)
        delay = next(self._backoff, None)
        if delay is None:
            self._give_up(
                ConnectionFailed(
                    f"gave up after {self.attempt} reconnect attempts (last: {code} {reason})",
                    self.attempt,
                )
            )
            return
        self._retry(now, delay)

    def _retry(self, now: float, delay: float) -> None:
        self.attempt += 1
        url = self.urls[self._next_url % len(self.urls)]
        self._emit("reconnecting", attempt=self.attempt, delay=delay, url=url)
        if delay <= 0:
            self._open(now)
        else:
            self._set_timer(Timer.RETRY, now + delay)

    def _give_up(self, error: ClientError) -> None:
        self._move(Trigger.FATAL)
        self.final_error = error
        for name in list(self._timers):
            self._cancel_name(name)
        if isinstance(error, AuthFailed):
            self._emit("error", kind="auth_failed", message=str(error))
        else:
            self._emit("error", kind="gave_up", message=str(error))
        self._emit("closed", reason=str(error), error=type(error).__name__)
        self._fail_all(error)

    def _closed(self, code: int | None, reason: str) -> None:
        self._move(Trigger.CLOSED)
        self.final_error = ClientClosed("connect")
        self._emit("disconnected", code=code, reason=reason, reconnecting=False)
        self._emit("closed", reason=reason, error=None)

    def _fail_all(self, error: ClientError) -> None:
        """Reject every pending operation: spooled calls, waiting subscribes and joins."""
        for request in self._requests.values():
            for ticket in request.tickets:
                self._out.append(Reject(ticket, error))
        self._requests.clear()
        while self.spool:
            item = self.spool.popleft()
            if item.ticket is not None:
                self._out.append(Reject(item.ticket, error))
        for ticket in self._waiting_subscribe:
            self._out.append(Reject(ticket, error))
        self._waiting_subscribe = []
        for state in self.rooms.values():
            for ticket in state.waiting:
                self._out.append(Reject(ticket, error))
            state.waiting = []

    # --- keepalive (§3) ---------------------------------------------------------------------------

    def _interval(self) -> float:
        return self.policy.ping_interval or self.heartbeat or 30.0

    def _start_keepalive(self, now: float) -> None:
        self._outstanding_ping = None
        self._missed = 0
        self._set_timer(Timer.PING, now + self._interval())

    def _ping_tick(self, now: float) -> None:
        if self._outstanding_ping is not None:  # its pong deadline is now too: judge it first
            self._cancel_timer(Timer.PONG)
            self._pong_missed(now)
            if not self.ready:
                return
        interval = self._interval()
        self._ping_id += 1
        self._outstanding_ping = self._ping_id
        self._send(m.Ping(id=self._ping_id))
        self._set_timer(Timer.PONG, now + min(self.policy.pong_timeout, interval))
        self._set_timer(Timer.PING, now + interval)

    def _pong_missed(self, now: float) -> None:
        self._outstanding_ping = None
        self._missed += 1
        self._emit("pong_missed", missed=self._missed)
        if self._missed >= self.policy.max_missed_pongs:
            self._abandon(f"{self._missed} pongs missed in a row", now, abort=True)

    def _on_pong(self, msg: m.Pong, now: float) -> None:
        if msg.id is not None and msg.id == self._outstanding_ping:
            self._outstanding_ping = None
            self._missed = 0
            self._cancel_timer(Timer.PONG)

    def _on_ping(self, msg: m.Ping, now: float) -> None:
        self._send(m.Pong(id=msg.id))

    # --- pub/sub answers (§4) ---------------------------------------------------------------------

    def _on_subscribed(self, msg: m.Subscribed, now: float) -> None:
        request = self._pop_request(msg.id)
        topics = [t for t in msg.topics if t in self.wanted]
        self.confirmed.update(topics)
        self._ever_confirmed.update(topics)
        if request is None:
            return
        for ticket in request.tickets:
            self._out.append(Resolve(ticket, list(msg.topics)))
        if request.kind is RequestKind.RESUBSCRIBE:
            self._emit("resubscribed", topics=list(msg.topics))
        self._emit("subscribed", topics=list(msg.topics))

    def _on_unsubscribed(self, msg: m.Unsubscribed, now: float) -> None:
        self.confirmed.difference_update(msg.topics)
        request = self._pop_request(msg.id)
        if request is not None:
            for ticket in request.tickets:
                self._out.append(Resolve(ticket, list(msg.topics)))

    def _on_notification(self, msg: m.Notification, now: float) -> None:
        last = self._last_seq
        if last is not None and msg.seq <= last:
            self._emit("duplicate", seq=msg.seq, topic=msg.topic)
            return
        if last is not None and msg.seq > last + 1:  # from 0: the first ones of a new session
            self._emit("gap", expected=last + 1, seq=msg.seq)
        self._last_seq = msg.seq
        self._emit("notification", seq=msg.seq, topic=msg.topic, payload=msg.payload)

    # --- RPC answers (§5) -------------------------------------------------------------------------

    def _pop_request(self, wire_id: Any) -> Request | None:
        return self._requests.pop(wire_id, None) if isinstance(wire_id, int) else None

    def _on_result(self, msg: m.Result, now: float) -> None:
        request = self._pop_request(msg.id)
        if request is None:
            self._emit("error", kind="unexpected", message=f"result for unknown id {msg.id!r}")
            return
        if request.kind is RequestKind.CALL:  # its ticket is its wire id
            self._cancel_timer(Timer.CALL, request.tickets[0])
        for ticket in request.tickets:
            self._out.append(Resolve(ticket, msg.result))

    def _on_error(self, msg: m.Error, now: float) -> None:
        request = self._pop_request(msg.id)
        error = RemoteError(msg.code, msg.message, msg.data)
        if request is None:
            self._emit("error", kind="server", code=msg.code, message=msg.message, data=msg.data)
            return
        if request.kind is RequestKind.CALL:  # its ticket is its wire id
            self._cancel_timer(Timer.CALL, request.tickets[0])
        if request.kind is RequestKind.JOIN:
            state = self.rooms.pop(request.room, None)
            tickets = state.waiting if state else []
        else:
            tickets = request.tickets
        for ticket in tickets:
            self._out.append(Reject(ticket, error))

    def _call_timed_out(self, ticket: int) -> None:
        request = self._requests.pop(ticket, None)
        if request is not None:
            self._out.append(Reject(ticket, CallTimeout(request.method, request.timeout)))

    # --- drain (§6) -------------------------------------------------------------------------------

    def _on_reconnect_request(self, msg: m.ReconnectRequest, now: float) -> None:
        self._drain_at = now
        self._drain_deadline = min(msg.deadline, self.policy.drain_deadline)
        answer_within = min(msg.answer_within, self.policy.drain_answer_within)
        self._to_drain(DrainEvent.REQUEST, now + answer_within)
        self._emit(
            "request_reconnect",
            deadline=self._drain_deadline,
            answer_within=answer_within,
            reason=msg.reason,
        )

    # --- signalling (§8) --------------------------------------------------------------------------

    def _resolve_room(self, room: str, state: RoomState) -> None:
        peers = list(state.peers.values())
        for ticket in state.waiting:
            self._out.append(Resolve(ticket, {"room": room, "sid": state.sid, "peers": peers}))
        state.waiting = []

    def _on_joined(self, msg: m.Joined, now: float) -> None:
        self._pop_request(msg.id)
        state = self.rooms.get(msg.room)
        if state is None:  # left while the join was in flight
            self._send(m.Leave(id=self._ticket(), room=msg.room))
            return
        state.joined, state.sid = True, msg.sid
        state.permanent_id = msg.permanent_id
        state.peers = {p.sid: p.model_dump() for p in msg.peers}
        for track in state.tracks.values():  # the server forgot them with the old sid
            self._send(m.TrackDefine(room=msg.room, track=m.TrackDefinition(**track)))
        self._emit(
            "joined",
            room=msg.room,
            sid=msg.sid,
            permanent_id=msg.permanent_id,
            peers=list(state.peers.values()),
        )
        self._resolve_room(msg.room, state)

    def _on_left(self, msg: m.Left, now: float) -> None:
        request = self._pop_request(msg.id)
        if request is not None:
            for ticket in request.tickets:
                self._out.append(Resolve(ticket, msg.room))
        self._emit("left", room=msg.room)

    def _on_peer_joined(self, msg: m.PeerJoined, now: float) -> None:
        state = self.rooms.get(msg.room)
        peer = msg.peer.model_dump()
        if state is not None:
            state.peers[msg.peer.sid] = peer
        self._emit("peer_joined", room=msg.room, **peer)

    def _on_peer_left(self, msg: m.PeerLeft, now: float) -> None:
        state = self.rooms.get(msg.room)
        if state is not None:
            state.peers.pop(msg.sid, None)
        self._emit(
            "peer_left",
            room=msg.room,
            sid=msg.sid,
            permanent_id=msg.permanent_id,
            reason=msg.reason,
        )

    def _on_peer_sid_reassigned(self, msg: m.PeerSidReassigned, now: float) -> None:
        state = self.rooms.get(msg.room)
        if state is not None:
            peer = state.peers.pop(msg.old_sid, None) or {
                "permanent_id": msg.permanent_id,
                "tracks": [],
            }
            state.peers[msg.new_sid] = {**peer, "sid": msg.new_sid}
        self._emit(
            "reassign_peer_sid",
            room=msg.room,
            permanent_id=msg.permanent_id,
            old_sid=msg.old_sid,
            new_sid=msg.new_sid,
        )

    def _on_signal(self, msg: m.Signal, now: float) -> None:
        data = {
            "room": msg.room,
            "from": msg.sender,
            "from_permanent_id": msg.from_permanent_id,
            "to": msg.to,
            "kind": msg.kind,
            "data": msg.data,
        }
        self._emit("signal", **data)
        if msg.kind == "message":
            self._emit(
                "message",
                room=msg.room,
                sender=msg.sender,
                from_permanent_id=msg.from_permanent_id,
                message=msg.data,
            )

    def _on_track_defined(self, msg: m.TrackDefined, now: float) -> None:
        state = self.rooms.get(msg.room)
        track = msg.track.model_dump()
        if state is not None and msg.sid in state.peers:
            tracks = [t for t in state.peers[msg.sid].get("tracks", []) if t["id"] != track["id"]]
            state.peers[msg.sid]["tracks"] = [*tracks, track]
        self._emit("track_defined", room=msg.room, sid=msg.sid, track=track)

    def _on_track_removed(self, msg: m.TrackRemoved, now: float) -> None:
        state = self.rooms.get(msg.room)
        if state is not None and msg.sid in state.peers:
            peer = state.peers[msg.sid]
            peer["tracks"] = [t for t in peer.get("tracks", []) if t["id"] != msg.track_id]
        self._emit("track_removed", room=msg.room, sid=msg.sid, track_id=msg.track_id)

    def _on_track_requested(self, msg: m.TrackRequested, now: float) -> None:
        self._emit("track_requested", room=msg.room, sender=msg.sender, track_id=msg.track_id)
