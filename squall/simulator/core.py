"""The simulator core: sessions, auth, topics, RPC, rooms, recovery buffers and drains, once.

Theory of operation
-------------------
A *connection* is one socket, handed to the core as a :class:`Link` (send a
frame, close with a code, abort) together with its dialect's
:class:`~squall.simulator.seam.WireSession`. A *session* is the logical client
behind it: its user, subscriptions, notification sequence and recovery buffer.
A session outlives its connection by ``recovery_window`` seconds so that a
reconnect presenting its ``recovery_token`` gets it back (docs/protocol.md §7).

The core speaks no wire format: the wire session turns frames into
:mod:`~squall.simulator.ops` operations, and the core answers with
:mod:`~squall.simulator.events` events that the wire session turns into
frames. Handlers are keyed on operation types.

Rules
-----
- Nothing but authentication is accepted before authentication; anything else
  closes with ``CloseReason.POLICY`` (§2), unless the dialect answers instead.
- An auth failure emits ``AuthFailed`` and closes with ``AUTH_FAILED`` (§2).
- A frame the dialect cannot decode closes with the reason it gives; a bad
  operation is answered with ``Rejected`` and the session lives (§9).
- More than ``rate_burst`` frames at once, or a sustained rate above
  ``rate_limit`` per second, closes with ``POLICY`` (§9).
- Notifications carry a per-session ``seq`` from 1; while detached they go to
  a buffer of ``recovery_buffer_size`` events; overflow drops the oldest and
  counts it as lost, and the recovery outcome says so (§4, §7).
- A reconnect request unanswered within ``answer_within`` closes with
  ``SERVICE_RESTART``; a ``pending`` answer is honoured until ``done`` or
  ``deadline``; both end with that close (§6).

The core does no I/O of its own and reads time only through the injected
clock; the asyncio server (``server.py``) and in-process peers drive it.
"""

from __future__ import annotations

import itertools
import secrets
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from squall.clock import Clock, Timer, deadline_delay

from . import events as ev
from . import ops
from .auth import AuthPolicy, AuthRejected, Principal
from .rooms import Ghost, Member, Room
from .rpc import RpcTable
from .seam import CloseReason, Frame, WireSession, snake_name
from .transcript import FrameRow, Transcript, redact_url


class Link(Protocol):
    """What the core needs from a socket. ``send`` returns False if the socket is gone."""

    id: str

    def send(self, data: str | bytes) -> bool: ...

    def close(self, code: int, reason: str) -> None: ...

    def abort(self) -> None: ...


@dataclass
class Config:
    """Server policy. Every duration is in protocol seconds, through the clock."""

    recovery_buffer_size: int = 100
    recovery_window: float = 180.0
    heartbeat: float = 30.0
    auth_timeout: float = 10.0
    drain_deadline: float = 600.0
    drain_answer_within: float = 1.0
    rate_limit: float = 1000.0
    rate_burst: int = 2000
    max_message_size: int = 1 << 20
    server_ping_interval: float | None = None
    #: Expired sessions whose recovery token still gets ``expired`` (with what was lost)
    #: rather than ``unknown``: the newest ones, so a long ``squall serve`` stays bounded.
    expired_tokens_kept: int = 10_000


class SessionState(StrEnum):
    OPEN = "open"
    DETACHED = "detached"
    EXPIRED = "expired"


class DrainState(StrEnum):
    ASKED = "asked"
    PENDING = "pending"
    DONE = "done"


@dataclass
class Drain:
    state: DrainState
    deadline: float
    timer: Timer | None = None


# slots: one of each per client, 100,000 in a long ``squall serve`` (issue 14)
@dataclass(eq=False, slots=True)
class Connection:
    link: Link
    wire: WireSession
    opened_at: float
    session: Session | None = None
    closed: bool = False
    #: A close has been sent for: later frames from the client are not served (a frame in the
    #: same read as the one that broke a rule must not get past it).
    closing: bool = False
    silenced: bool = False
    drain: Drain | None = None
    auth_timer: Timer | None = None
    ping_timer: Timer | None = None
    tokens: float = 0.0
    tokens_at: float = 0.0
    rooms: frozenset[str] = frozenset()  # few, rarely changed: no empty set per connection
    permanent_id: str | None = None

    @property
    def sid(self) -> str:
        return self.link.id

    @property
    def dialect(self) -> str:
        return self.wire.dialect.name


@dataclass(eq=False, slots=True)
class Session:
    id: str
    user: str
    guest: bool
    recovery_token: str
    state: SessionState = SessionState.OPEN
    connection: Connection | None = None
    #: frozenset() until the first subscription (an empty set costs 216 bytes per session)
    subscriptions: set[str] | frozenset[str] = frozenset()
    seq: int = 0
    #: held for a detached session; () until the first one (an empty deque costs 760 bytes)
    buffer: deque[ev.Delivered] | tuple[()] = ()
    lost: int = 0
    detached_at: float | None = None
    expiry_timer: Timer | None = None
    connections: int = 0
    dialect: str | None = None

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "user": self.user,
            "guest": self.guest,
            "state": self.state.value,
            "dialect": self.dialect,
            "sid": self.connection.sid if self.connection else None,
            "subscriptions": sorted(self.subscriptions),
            "seq": self.seq,
            "buffered": len(self.buffer),
            "lost": self.lost,
            "connections": self.connections,
            "rooms": sorted(self.connection.rooms) if self.connection else [],
            "drain": self.connection.drain.state.value
            if self.connection and self.connection.drain
            else None,
        }


Handler = Callable[[Any, Any], None]

#: A session subscribed to this topic receives every publication (Mixer: a chat client gets
#: every event of its channel, and subscribing is the app's business).
WILDCARD = "*"


#: Distinct masked handshake paths shared between transcript records before starting over.
SHOWN_PATHS_KEPT = 1024


class SimulatorCore:
    """All server-side protocol state: driven by transports, scripted by :class:`Control`."""

    def __init__(
        self,
        clock: Clock,
        *,
        config: Config | None = None,
        auth: AuthPolicy | None = None,
        transcript: Transcript | None = None,
    ) -> None:
        self.clock = clock
        self.config = config or Config()
        self.auth = auth or AuthPolicy()
        self.transcript = transcript if transcript is not None else Transcript(clock.now)
        self.rpc = RpcTable(clock.now)
        self.connections: dict[str, Connection] = {}
        self.sessions: dict[str, Session] = {}
        self.by_token: dict[str, Session] = {}
        self.expired_tokens: dict[str, int] = {}
        self.topics: dict[str, set[Session]] = {}
        self.rooms: dict[str, Room] = {}
        self._ids = itertools.count(1)
        self._shown_paths: dict[str, str] = {}
        self._session_ids = itertools.count(1)
        self._handlers: dict[type, Handler] = {
            ops.Authenticate: self._on_authenticate,
            ops.Ping: self._on_ping,
            ops.Pong: self._on_pong,
            ops.Subscribe: self._on_subscribe,
            ops.Unsubscribe: self._on_unsubscribe,
            ops.Call: self._on_call,
            ops.AnswerDrain: self._on_answer_drain,
            ops.Join: self._on_join,
            ops.Leave: self._on_leave,
            ops.Relay: self._on_relay,
            ops.DefineTrack: self._on_define_track,
            ops.RemoveTrack: self._on_remove_track,
            ops.RequestTrack: self._on_request_track,
            ops.BadInput: self._on_bad_input,
        }

    # --- transport-facing ------------------------------------------------------------------

    def new_connection_id(self) -> str:
        return f"c{next(self._ids)}"

    def connect(
        self,
        link: Link,
        wire: WireSession,
        credentials: ops.Authenticate | None = None,
        *,
        path: str = "/",
    ) -> Connection:
        """A socket opened. Credentials from the handshake authenticate it at once."""
        now = self.clock.now()
        conn = Connection(
            link=link, wire=wire, opened_at=now, tokens=self.config.rate_burst, tokens_at=now
        )
        self.connections[link.id] = conn
        self.transcript.record(
            "open",
            conn=link.id,
            dialect=wire.dialect.name,
            path=self._shown_path(path),
            credentials=credentials is not None and credentials.presented,
            recovery=bool(credentials and credentials.recovery_token is not None),
        )
        for frame in wire.greet():
            self._write(conn, frame, "greet")
        if credentials is not None and credentials.presented:
            self._on_authenticate(conn, credentials)
        else:
            conn.auth_timer = self.clock.call_later(
                deadline_delay(self.clock, self.config.auth_timeout), self._auth_timeout, conn
            )
        return conn

    def _shown_path(self, path: str) -> str:
        """The handshake path as recorded: masked, and one string for all that read alike
        (``/?token=***`` for 100,000 sessions is one object, not 100,000: issue 14)."""
        shown = redact_url(path)
        paths = self._shown_paths
        if len(paths) >= SHOWN_PATHS_KEPT:
            paths.clear()
        return paths.setdefault(shown, shown)

    def receive(self, conn: Connection, data: str | bytes) -> None:
        """One frame from the client."""
        if conn.closed:
            return
        if conn.closing:
            self.transcript.record(
                "ignored",
                conn=conn.sid,
                reason="the server is closing this connection",
                size=len(data),
            )
            return
        now = self.clock.now()  # one clock read for the rate bucket and the record
        if not self._take_token(conn, now):
            self._record_in(conn, None, None, data, now)
            self.close(
                conn, CloseReason.POLICY, f"rate limit exceeded ({self.config.rate_limit:g}/s)"
            )
            return
        inbound = conn.wire.receive(data)
        items = inbound.items
        name = snake_name(items[0]) if len(items) == 1 else ",".join(map(snake_name, items))
        self._record_in(conn, inbound.type, name or None, inbound.shown or data, now)
        for frame in inbound.frames:
            self._write(conn, frame, "local")
        handlers = self._handlers
        for item in items:
            if conn.closing or conn.closed:
                return
            if conn.session is None and type(item) not in (ops.Authenticate, ops.BadInput):
                self._unauthenticated(conn, item)
                continue
            handlers[type(item)](conn, item)

    def disconnected(self, conn: Connection, code: int | None, reason: str) -> None:
        """The socket is gone (either side closed, or it broke)."""
        if conn.link.id not in self.connections:
            return
        del self.connections[conn.link.id]
        conn.closed = True
        for timer in (conn.auth_timer, conn.ping_timer, conn.drain.timer if conn.drain else None):
            if timer is not None:
                timer.cancel()
        self.transcript.record("close", conn=conn.sid, code=code, reason=reason)
        for room in list(conn.rooms):
            self._leave_room(conn, room, "disconnected")
        session = conn.session
        if session is not None and session.connection is conn:
            self._detach(session)

    # --- sending ---------------------------------------------------------------------------

    def emit(self, conn: Connection, event: ev.Event) -> None:
        """Tell one connection about an event, in its dialect's frames."""
        name = snake_name(event)
        for frame in conn.wire.encode(event):
            self._write(conn, frame, name)

    def _write(self, conn: Connection, frame: Frame, op: str) -> bool:
        """Send one frame and record it; False if the socket was already gone (recorded too)."""
        shown = frame.shown if frame.shown is not None else frame.data
        if conn.silenced:
            self.transcript.record("withheld", conn=conn.sid, type=frame.type, op=op, text=shown)
            return True
        session = conn.session.id if conn.session else None
        if not conn.closed and conn.link.send(frame.data):
            self.transcript.frame("out", conn.sid, session, frame.type, op, shown)
            return True
        self.transcript.record(
            "frame",
            dir="out",
            conn=conn.sid,
            session=session,
            type=frame.type,
            op=op,
            text=shown if isinstance(shown, str) else f"<{len(shown)} bytes>",
            dropped="connection closed",
        )
        return False

    def send_raw(self, conn: Connection, data: str | bytes) -> bool:
        """A frame chosen by the control plane (well-formed or not), sent as it is."""
        return self._write(conn, Frame("raw", data), "raw")

    def _record_in(
        self,
        conn: Connection,
        wire_type: str | None,
        op: str | None,
        data: str | bytes,
        at: float | None = None,
    ) -> None:
        session = conn.session
        self.transcript.frame(
            "in", conn.sid, session.id if session else None, wire_type, op, data, at=at
        )

    def close(self, conn: Connection, reason: CloseReason, detail: str) -> None:
        """End one connection for ``reason``, as its dialect does; the session detaches later."""
        if conn.closed or conn.closing:
            return
        closing = conn.wire.close(reason, detail)
        for frame in closing.frames:
            self._write(conn, frame, "closing")
        self.close_with_code(conn, closing.code, closing.reason, why=reason)

    def close_with_code(
        self, conn: Connection, code: int, reason: str, *, why: CloseReason | None = None
    ) -> None:
        """Close with a WebSocket code chosen by the caller (the control plane's ``drop``).
        The first close wins: once one is on its way, the connection serves nothing more."""
        if conn.closed or conn.closing:
            return
        conn.closing = True
        self.transcript.record(
            "closing", conn=conn.sid, code=code, reason=reason, why=why.value if why else None
        )
        conn.link.close(code, reason)

    def _take_token(self, conn: Connection, now: float) -> bool:
        cfg = self.config
        conn.tokens = min(cfg.rate_burst, conn.tokens + (now - conn.tokens_at) * cfg.rate_limit)
        conn.tokens_at = now
        if conn.tokens < 1:
            return False
        conn.tokens -= 1
        return True

    def _unauthenticated(self, conn: Connection, item: Any) -> None:
        message = f"not authenticated: expected authentication first, got {snake_name(item)!r}"
        if conn.wire.dialect.closes_before_auth:
            self.close(conn, CloseReason.POLICY, message)
        else:
            self.emit(
                conn, ev.Rejected("not_authenticated", message, ref=getattr(item, "ref", None))
            )

    def _on_bad_input(self, conn: Connection, item: ops.BadInput) -> None:
        if item.fatal is not None:
            self.close(conn, item.fatal, item.message)
        elif conn.session is None and conn.wire.dialect.closes_before_auth:
            self.close(conn, CloseReason.POLICY, f"not authenticated: {item.message}")
        else:
            self.emit(conn, ev.Rejected(item.code, item.message, ref=item.ref))

    # --- auth and recovery (§2, §7) ----------------------------------------------------------

    def _auth_timeout(self, conn: Connection) -> None:
        if conn.session is None:
            self.close(conn, CloseReason.POLICY, f"no auth within {self.config.auth_timeout:g}s")

    def _on_authenticate(self, conn: Connection, op: ops.Authenticate) -> None:
        if conn.session is not None:
            self.emit(
                conn,
                ev.Rejected(
                    "already_authenticated", "session is already authenticated", ref=op.ref
                ),
            )
            return
        if conn.auth_timer is not None:
            conn.auth_timer.cancel()
            conn.auth_timer = None
        try:
            if op.refused is not None:
                raise AuthRejected("expired_token", op.refused)
            principal = self.auth.check(op.token, op.jwt)
        except AuthRejected as exc:
            self.transcript.record("auth", conn=conn.sid, ok=False, reason=exc.reason)
            self.emit(conn, ev.AuthFailed(exc.reason, exc.message, ref=op.ref))
            self.close(conn, CloseReason.AUTH_FAILED, f"auth failed: {exc.reason}")
            return
        recovery: ev.Recovery | None = None
        session: Session | None = None
        if op.recovery_token is not None:
            session, recovery = self._recover(principal, op.recovery_token)
        if session is None:
            session = self._new_session(principal, conn.dialect)
        self._attach(session, conn)
        for topic in op.topics:
            self._subscribe(session, topic)
        cfg = self.config
        self.transcript.record(
            "auth", conn=conn.sid, ok=True, session=session.id, user=session.user
        )
        self.emit(
            conn,
            ev.Authenticated(
                session=session.id,
                sid=conn.sid,
                user=session.user,
                guest=session.guest,
                recovery_token=session.recovery_token,
                heartbeat=cfg.heartbeat,
                recovery_buffer_size=cfg.recovery_buffer_size,
                recovery_window=cfg.recovery_window,
                recovery=recovery,
                ref=op.ref,
            ),
        )
        if recovery is not None:
            replay, session.buffer = session.buffer, ()
            session.lost = 0
            for delivered in replay:
                self._write(conn, conn.wire.deliver(delivered), "delivered")
        if cfg.server_ping_interval:
            conn.ping_timer = self.clock.call_later(
                cfg.server_ping_interval, self._server_ping, conn
            )

    def _new_session(self, principal: Principal, dialect: str) -> Session:
        session = Session(
            id=f"s{next(self._session_ids)}",
            user=principal.user,
            guest=principal.guest,
            recovery_token=secrets.token_urlsafe(16),
            dialect=dialect,
        )
        self.sessions[session.id] = session
        self.by_token[session.recovery_token] = session
        self.transcript.add_secret(session.recovery_token)  # masked wherever it is recorded
        return session

    def _recover(self, principal: Principal, token: str) -> tuple[Session | None, ev.Recovery]:
        session = self.by_token.get(token)
        if session is None:
            reason = "expired" if token in self.expired_tokens else "unknown"
            lost = self.expired_tokens.pop(token, 0)
            self.transcript.record("recovery", ok=False, reason=reason, lost=lost)
            return None, ev.Recovery(recovered=False, reason=reason, lost=lost)
        if session.user != principal.user:
            self.transcript.record("recovery", ok=False, reason="unknown", session=session.id)
            return None, ev.Recovery(recovered=False, reason="unknown")
        if session.connection is not None:  # recovering a session whose old socket lingers
            self.close(
                session.connection, CloseReason.POLICY, "session resumed on another connection"
            )
            self._detach(session)
        if session.expiry_timer is not None:
            session.expiry_timer.cancel()
            session.expiry_timer = None
        lost = session.lost
        rec = ev.Recovery(
            recovered=lost == 0,
            replayed=len(session.buffer),
            lost=lost,
            subscriptions=tuple(sorted(session.subscriptions)),
            reason="overflow" if lost else None,
        )
        self.transcript.record(
            "recovery", ok=lost == 0, session=session.id, replayed=rec.replayed, lost=lost
        )
        return session, rec

    def _attach(self, session: Session, conn: Connection) -> None:
        session.connection = conn
        session.connections += 1
        session.detached_at = None
        conn.session = session
        self._set_state(session, SessionState.OPEN)

    def _detach(self, session: Session) -> None:
        session.connection = None
        session.detached_at = self.clock.now()
        self._set_state(session, SessionState.DETACHED)
        session.expiry_timer = self.clock.call_later(
            self.config.recovery_window, self.expire, session
        )

    def expire(self, session: Session) -> None:
        """Forget a session: its recovery token now fails with reason ``expired``."""
        if session.expiry_timer is not None:
            session.expiry_timer.cancel()
            session.expiry_timer = None
        if session.connection is not None:
            self.close(session.connection, CloseReason.POLICY, "session expired")
            session.connection.session = None
            session.connection = None
        for topic in tuple(session.subscriptions):
            self._unsubscribe(session, topic, keep=True)
        expired = self.expired_tokens
        expired[session.recovery_token] = len(session.buffer) + session.lost
        while len(expired) > max(0, self.config.expired_tokens_kept):
            del expired[next(iter(expired))]  # the oldest: a dict keeps insertion order
        self.by_token.pop(session.recovery_token, None)
        self.sessions.pop(session.id, None)
        self._set_state(session, SessionState.EXPIRED)

    def _set_state(self, session: Session, state: SessionState) -> None:
        if session.state is not state or state is SessionState.OPEN:
            self.transcript.record(
                "session",
                session=session.id,
                user=session.user,
                state=state.value,
                sid=session.connection.sid if session.connection else None,
            )
        session.state = state

    # --- keepalive (§3) ----------------------------------------------------------------------

    def _on_ping(self, conn: Connection, op: ops.Ping) -> None:
        self.emit(conn, ev.Pong(op.ref))

    def _on_pong(self, conn: Connection, op: ops.Pong) -> None:
        pass  # recorded in the transcript; the server does not enforce client pongs

    def _server_ping(self, conn: Connection) -> None:
        if conn.closed:
            return
        self.emit(conn, ev.ServerPing(f"srv-{next(self._ids)}"))
        interval = self.config.server_ping_interval
        if interval:
            conn.ping_timer = self.clock.call_later(interval, self._server_ping, conn)

    # --- pub/sub (§4) ------------------------------------------------------------------------

    def subscribe(self, session: Session, topics: Sequence[str]) -> None:
        """Subscribe a session outside any frame (a dialect's HTTP subscription API)."""
        for topic in topics:
            self._subscribe(session, topic)

    def unsubscribe(self, session: Session, topics: Sequence[str]) -> None:
        for topic in topics:
            self._unsubscribe(session, topic)

    def _subscribe(self, session: Session, topic: str) -> None:
        subs = session.subscriptions
        if not isinstance(subs, set):
            subs = session.subscriptions = set(subs)
        subs.add(topic)
        self.topics.setdefault(topic, set()).add(session)

    def _unsubscribe(self, session: Session, topic: str, *, keep: bool = False) -> None:
        if not keep:
            topics = session.subscriptions
            if isinstance(topics, set):
                topics.discard(topic)
        subs = self.topics.get(topic)
        if subs is not None:
            subs.discard(session)
            if not subs:
                del self.topics[topic]

    def _on_subscribe(self, conn: Connection, op: ops.Subscribe) -> None:
        session = conn.session
        assert session is not None
        for topic in op.topics:
            self._subscribe(session, topic)
        self.emit(conn, ev.Subscribed(tuple(op.topics), op.ref))

    def _on_unsubscribe(self, conn: Connection, op: ops.Unsubscribe) -> None:
        session = conn.session
        assert session is not None
        for topic in op.topics:
            self._unsubscribe(session, topic)
        self.emit(conn, ev.Unsubscribed(tuple(op.topics), op.ref))

    def publish(self, topic: str, payload: Any = None) -> dict[str, int]:
        """Deliver to every subscriber now, or buffer for detached ones. Returns the counts."""
        subscribers: Any = self.topics.get(topic, ())
        everything = self.topics.get(WILDCARD)
        if everything and topic != WILDCARD:  # sessions of a dialect whose clients get every event
            subscribers = everything.union(subscribers)
        publication = ev.Publication(topic, payload)
        delivered = buffered = overflowed = 0
        rows: list[FrameRow] = []  # the transcript's frames, recorded in one call
        keep = rows.append
        size = self.config.recovery_buffer_size
        now = self.clock.now()  # one clock read stamps the whole fan-out
        for session in tuple(subscribers):
            session.seq += 1
            event = ev.Delivered(session.seq, publication)
            conn = session.connection
            # A socket that died before the server noticed must not swallow the notification:
            # it goes to the recovery buffer like any other for a detached session.
            if conn is not None:
                frame = conn.wire.deliver(event)
                if not (conn.silenced or conn.closed) and conn.link.send(frame.data):
                    # the hot path: the same record as _write's
                    shown = frame.data if frame.shown is None else frame.shown
                    keep(("out", conn.link.id, session.id, frame.type, "delivered", shown))
                    delivered += 1
                    continue
                # _write records at once: what was delivered before goes first, in order
                self.transcript.frames(rows, at=now)
                rows.clear()
                if self._write(conn, frame, "delivered"):
                    delivered += 1
                    continue
            buffer = session.buffer
            if not isinstance(buffer, deque):
                buffer = session.buffer = deque()
            if len(buffer) >= size:
                if buffer:
                    buffer.popleft()
                session.lost += 1
                overflowed += 1
            if size > 0:
                buffer.append(event)
                buffered += 1
        self.transcript.frames(rows, at=now)
        self.transcript.record(
            "publish", topic=topic, delivered=delivered, buffered=buffered, overflowed=overflowed
        )
        return {"delivered": delivered, "buffered": buffered, "overflowed": overflowed}

    # --- RPC (§5) ----------------------------------------------------------------------------

    def _on_call(self, conn: Connection, op: ops.Call) -> None:
        outcome = self.rpc.resolve(op.method, op.params)
        if outcome.silent or op.no_reply:
            self.transcript.record("rpc", conn=conn.sid, id=op.ref, method=op.method, answer="none")
            return
        if outcome.error is not None:
            err = outcome.error
            reply: ev.Event = ev.CallFailed(
                op.ref,
                code=str(err.get("code", "error")),
                message=str(err.get("message", "")),
                data=err.get("data"),
            )
        else:
            reply = ev.Replied(op.ref, outcome.result)
        if outcome.delay > 0:
            # a connection closed by then records the answer as dropped
            self.clock.call_later(outcome.delay, self.emit, conn, reply)
        else:
            self.emit(conn, reply)

    # --- server-requested reconnect (§6) -------------------------------------------------------

    def request_reconnect(
        self,
        session: Session,
        *,
        deadline: float | None = None,
        answer_within: float | None = None,
        reason: str = "drain",
    ) -> None:
        conn = session.connection
        if conn is None:
            raise LookupError(f"session {session.id} ({session.user}) has no open connection")
        conn.wire.dialect.require("drain", "server-requested reconnect")
        cfg = self.config
        deadline = cfg.drain_deadline if deadline is None else deadline
        if answer_within is None:
            # a wire that never carries the answer leaves only the deadline to wait for
            hears = conn.wire.dialect.hears_drain_answers
            answer_within = cfg.drain_answer_within if hears else deadline
        if conn.drain and conn.drain.timer:
            conn.drain.timer.cancel()
        conn.drain = Drain(DrainState.ASKED, deadline=self.clock.now() + deadline)
        conn.drain.timer = self.clock.call_later(
            deadline_delay(self.clock, answer_within),  # an answer crosses the real network
            self._drain_close,
            conn,
            f"reconnect request not answered within {answer_within:g}s",
        )
        self.transcript.record(
            "drain",
            session=session.id,
            conn=conn.sid,
            state="asked",
            deadline=deadline,
            answer_within=answer_within,
        )
        self.emit(conn, ev.DrainRequested(deadline, answer_within, reason))

    def _on_answer_drain(self, conn: Connection, op: ops.AnswerDrain) -> None:
        drain = conn.drain
        if drain is None:
            self.emit(
                conn, ev.Rejected("no_reconnect_request", "no reconnect request is outstanding")
            )
            return
        if drain.timer is not None:
            drain.timer.cancel()
        if op.status == "pending":
            drain.state = DrainState.PENDING
            remaining = max(0.0, drain.deadline - self.clock.now())
            drain.timer = self.clock.call_later(
                remaining, self._drain_close, conn, "reconnect deadline reached"
            )
            self.transcript.record("drain", conn=conn.sid, state="pending", remaining=remaining)
        else:
            drain.state = DrainState.DONE
            self.transcript.record("drain", conn=conn.sid, state="done")
            self.close(conn, CloseReason.SERVICE_RESTART, "reconnect now")

    def _drain_close(self, conn: Connection, reason: str) -> None:
        self.transcript.record("drain", conn=conn.sid, state="forced", reason=reason)
        self.close(conn, CloseReason.SERVICE_RESTART, reason)

    # --- signalling (§8) ---------------------------------------------------------------------

    def _room_of(self, conn: Connection, name: str, ref: Any = None) -> Room | None:
        room = self.rooms.get(name)
        if room is None or conn.sid not in room.members:
            self.emit(conn, ev.Rejected("not_in_room", f"not a member of room {name!r}", ref=ref))
            return None
        return room

    def _broadcast(self, room: Room, event: ev.Event, *, exclude: str | None = None) -> None:
        for sid in list(room.members):
            peer = self.connections.get(sid)
            if sid != exclude and peer is not None:
                self.emit(peer, event)

    def _on_join(self, conn: Connection, op: ops.Join) -> None:
        session = conn.session
        assert session is not None
        room = self.rooms.setdefault(op.room, Room(op.room))
        permanent_id = op.permanent_id or conn.permanent_id or session.user
        conn.permanent_id = permanent_id
        if conn.sid in room.members:
            self.emit(
                conn, ev.Rejected("already_joined", f"already in room {op.room!r}", ref=op.ref)
            )
            return
        now = self.clock.now()
        old_sid: str | None = None
        stale = room.stale_member(permanent_id, conn.sid)
        if stale is not None:  # the old socket has not been noticed as dead yet
            old_sid = stale.sid
            del room.members[stale.sid]
            old_conn = self.connections.get(stale.sid)
            if old_conn is not None:
                old_conn.rooms = old_conn.rooms - {room.name}
        else:
            ghost = room.find_ghost(permanent_id, op.prev_sid, now, self.config.recovery_window)
            if ghost is not None:
                old_sid = ghost.sid
                room.ghosts.pop(ghost.permanent_id, None)
        peers = tuple(_peer(p) for p in room.members.values())
        room.members[conn.sid] = Member(conn.sid, permanent_id)
        conn.rooms = conn.rooms | {room.name}
        self.transcript.record(
            "room",
            room=room.name,
            sid=conn.sid,
            permanent_id=permanent_id,
            event="reassigned" if old_sid else "joined",
            old_sid=old_sid,
        )
        self.emit(conn, ev.Joined(room.name, conn.sid, permanent_id, peers, ref=op.ref))
        if old_sid is not None:
            self._broadcast(
                room,
                ev.PeerSidReassigned(room.name, permanent_id, old_sid, conn.sid),
                exclude=conn.sid,
            )
        else:
            self._broadcast(
                room,
                ev.PeerJoined(room.name, ev.PeerInfo(conn.sid, permanent_id)),
                exclude=conn.sid,
            )

    def _on_leave(self, conn: Connection, op: ops.Leave) -> None:
        if self._room_of(conn, op.room, op.ref) is None:
            return
        self._leave_room(conn, op.room, "left")
        self.emit(conn, ev.Left(op.room, op.ref))

    def _leave_room(self, conn: Connection, name: str, reason: str) -> None:
        conn.rooms = conn.rooms - {name}
        room = self.rooms.get(name)
        if room is None:
            return
        member = room.members.pop(conn.sid, None)
        if member is None:
            return
        if reason == "disconnected":
            room.ghosts[member.permanent_id] = Ghost(
                member.sid, member.permanent_id, self.clock.now()
            )
        self.transcript.record("room", room=name, sid=conn.sid, event=reason)
        self._broadcast(room, ev.PeerLeft(name, member.sid, member.permanent_id, reason))
        if not room.members and not room.ghosts:
            del self.rooms[name]

    def _on_relay(self, conn: Connection, op: ops.Relay) -> None:
        room = self._room_of(conn, op.room)
        if room is None:
            return
        member = room.members[conn.sid]
        out = ev.Relayed(room.name, conn.sid, member.permanent_id, op.kind, op.data, op.to)
        if op.to is None:
            self._broadcast(room, out, exclude=conn.sid)
            return
        target = self.connections.get(op.to)
        if op.to not in room.members or target is None:
            self.emit(
                conn,
                ev.Rejected(
                    "unknown_peer",
                    f"no peer {op.to!r} in room {room.name!r}",
                    data={"to": op.to, "kind": op.kind},
                ),
            )
            return
        self.emit(target, out)

    def _on_define_track(self, conn: Connection, op: ops.DefineTrack) -> None:
        room = self._room_of(conn, op.room)
        if room is None:
            return
        room.members[conn.sid].tracks[op.track["id"]] = dict(op.track)
        self._broadcast(
            room, ev.TrackDefined(room.name, conn.sid, dict(op.track)), exclude=conn.sid
        )

    def _on_remove_track(self, conn: Connection, op: ops.RemoveTrack) -> None:
        room = self._room_of(conn, op.room)
        if room is None:
            return
        if room.members[conn.sid].tracks.pop(op.track_id, None) is None:
            self.emit(conn, ev.Rejected("unknown_track", f"no track {op.track_id!r} defined"))
            return
        self._broadcast(room, ev.TrackRemoved(room.name, conn.sid, op.track_id), exclude=conn.sid)

    def _on_request_track(self, conn: Connection, op: ops.RequestTrack) -> None:
        room = self._room_of(conn, op.room)
        if room is None:
            return
        owner = room.members.get(op.to)
        target = self.connections.get(op.to)
        if owner is None or target is None or op.track_id not in owner.tracks:
            self.emit(
                conn,
                ev.Rejected("unknown_track", f"peer {op.to!r} has no track {op.track_id!r}"),
            )
            return
        self.emit(target, ev.TrackRequested(room.name, conn.sid, op.track_id))


def _peer(member: Member) -> ev.PeerInfo:
    return ev.PeerInfo(member.sid, member.permanent_id, tuple(member.tracks.values()))
