"""The simulator core: sessions, auth, topics, RPC, rooms, recovery buffers and drains, once.

Theory of operation
-------------------
A *connection* is one socket, handed to the core as a :class:`Link` (send a text
frame, close with a code, abort). A *session* is the logical client behind it:
its user, subscriptions, notification sequence and recovery buffer. A session
outlives its connection by ``recovery_window`` seconds so that a reconnect
presenting its ``recovery_token`` gets it back (docs/protocol.md §7).

Rules
-----
- Nothing but ``auth`` is accepted before authentication; anything else closes
  the connection with 1008 (§2). Credentials in the URL or a header
  authenticate at once.
- An auth failure sends ``auth_failed`` and closes with 1008 (§2).
- A frame that is not JSON closes with 1007, a binary frame with 1003; an
  unknown type or bad fields get an ``error`` frame and the session lives (§9).
- More than ``rate_burst`` frames at once, or a sustained rate above
  ``rate_limit`` per second, closes with 1008 (§9).
- Notifications carry a per-session ``seq`` from 1; while detached they go to
  a buffer of ``recovery_buffer_size``; overflow drops the oldest and counts it
  as lost, and the recovery answer says so (§4, §7).
- A reconnect request unanswered within ``answer_within`` closes with 1012; a
  ``pending`` answer is honoured until ``done`` or ``deadline``; both end with a
  1012 close (§6).

The core does no I/O of its own and reads time only through the injected
clock; the asyncio server (``server.py``) and any dialect drive it.
"""

from __future__ import annotations

import itertools
import json
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from squall.clock import Clock, Timer
from squall.protocol import codec
from squall.protocol import messages as m
from squall.protocol.errors import (
    CLOSE_POLICY,
    CLOSE_SERVICE_RESTART,
    CLOSE_UNSUPPORTED_DATA,
    MalformedFrame,
    ProtocolError,
)

from .auth import AuthPolicy, AuthRejected, Principal
from .rooms import Ghost, Member, Room
from .rpc import RpcTable
from .transcript import Transcript, redact, redact_url


class Link(Protocol):
    """What the core needs from a socket. ``send_text`` returns False if the socket is gone."""

    id: str

    def send_text(self, text: str) -> bool: ...

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


@dataclass(eq=False)
class Connection:
    link: Link
    opened_at: float
    session: Session | None = None
    closed: bool = False
    silenced: bool = False
    drain: Drain | None = None
    auth_timer: Timer | None = None
    ping_timer: Timer | None = None
    tokens: float = 0.0
    tokens_at: float = 0.0
    rooms: set[str] = field(default_factory=set)
    permanent_id: str | None = None

    @property
    def sid(self) -> str:
        return self.link.id


@dataclass(eq=False)
class Session:
    id: str
    user: str
    guest: bool
    recovery_token: str
    state: SessionState = SessionState.OPEN
    connection: Connection | None = None
    subscriptions: set[str] = field(default_factory=set)
    seq: int = 0
    buffer: deque[str] = field(default_factory=deque)
    lost: int = 0
    detached_at: float | None = None
    expiry_timer: Timer | None = None
    connections: int = 0

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "user": self.user,
            "guest": self.guest,
            "state": self.state.value,
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
        self.transcript = transcript or Transcript(clock.now)
        self.rpc = RpcTable(clock.now)
        self.connections: dict[str, Connection] = {}
        self.sessions: dict[str, Session] = {}
        self.by_token: dict[str, Session] = {}
        self.expired_tokens: dict[str, int] = {}
        self.topics: dict[str, set[Session]] = {}
        self.rooms: dict[str, Room] = {}
        self._ids = itertools.count(1)
        self._session_ids = itertools.count(1)
        self._handlers: dict[str, Callable[[Connection, Any], None]] = {
            "auth": self._on_auth,
            "ping": self._on_ping,
            "pong": self._on_pong,
            "subscribe": self._on_subscribe,
            "unsubscribe": self._on_unsubscribe,
            "call": self._on_call,
            "reconnect_response": self._on_reconnect_response,
            "join": self._on_join,
            "leave": self._on_leave,
            "signal": self._on_signal,
            "track_define": self._on_track_define,
            "track_remove": self._on_track_remove,
            "track_request": self._on_track_request,
        }

    # --- transport-facing ------------------------------------------------------------------

    def new_connection_id(self) -> str:
        return f"c{next(self._ids)}"

    def connect(
        self,
        link: Link,
        *,
        token: str | None = None,
        jwt: str | None = None,
        recovery_token: str | None = None,
        path: str = "/",
    ) -> Connection:
        """A socket opened. Credentials from the URL or headers authenticate it at once."""
        now = self.clock.now()
        conn = Connection(link=link, opened_at=now, tokens=self.config.rate_burst, tokens_at=now)
        self.connections[link.id] = conn
        self.transcript.record(
            "open",
            conn=link.id,
            path=redact_url(path),
            credentials=bool(token or jwt),
            recovery=recovery_token is not None,
        )
        if token or jwt:
            self._authenticate(conn, token, jwt, recovery_token)
        else:
            conn.auth_timer = self.clock.call_later(
                self.config.auth_timeout, self._auth_timeout, conn
            )
        return conn

    def receive(self, conn: Connection, data: str | bytes) -> None:
        """One frame from the client."""
        if conn.closed:
            return
        if isinstance(data, bytes):
            self._record_in(conn, None, f"<{len(data)} bytes>")
            self.close(conn, CLOSE_UNSUPPORTED_DATA, "binary frames are not part of the protocol")
            return
        if not self._take_token(conn):
            self._record_in(conn, None, data)
            self.close(conn, CLOSE_POLICY, f"rate limit exceeded ({self.config.rate_limit:g}/s)")
            return
        try:
            msg = codec.decode_client(data)
        except MalformedFrame as exc:
            self._record_in(conn, None, data)
            self.close(conn, exc.close_code or 1007, str(exc))
            return
        except ProtocolError as exc:
            self._record_in(conn, None, data)
            if conn.session is None:
                self.close(conn, CLOSE_POLICY, f"not authenticated: {exc}")
            else:
                self._send(
                    conn, m.Error(id=getattr(exc, "ref", None), code=exc.code, message=str(exc))
                )
            return
        self._record_in(conn, msg, data)
        if conn.session is None and msg.type != "auth":
            self.close(
                conn, CLOSE_POLICY, f"not authenticated: expected 'auth' first, got {msg.type!r}"
            )
            return
        self._handlers[msg.type](conn, msg)

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

    def _send(self, conn: Connection, msg: m.Message) -> None:
        self.send_text(conn, codec.encode(msg), msg.type, msg)

    def send_text(
        self, conn: Connection, text: str, mtype: str, msg: m.Message | None = None
    ) -> bool:
        """Send one frame and record it; False if the socket was already gone (recorded too)."""
        secret = mtype == "authenticated"
        shown = (
            codec.encode(msg.model_copy(update={"recovery_token": "***"}))
            if secret and msg
            else text
        )
        if conn.silenced:
            self.transcript.record("withheld", conn=conn.sid, type=mtype, text=shown)
            return True
        sent = not conn.closed and conn.link.send_text(text)
        self.transcript.record(
            "frame",
            dir="out",
            conn=conn.sid,
            session=conn.session.id if conn.session else None,
            type=mtype,
            text=shown,
            **({} if sent else {"dropped": "connection closed"}),
        )
        return sent

    def _record_in(self, conn: Connection, msg: Any, text: str) -> None:
        mtype = msg.type if msg is not None else None
        if mtype == "auth":
            text = json.dumps(redact(msg.model_dump(exclude_none=True)))
        self.transcript.record(
            "frame",
            dir="in",
            conn=conn.sid,
            session=conn.session.id if conn.session else None,
            type=mtype,
            text=text,
        )

    def close(self, conn: Connection, code: int, reason: str) -> None:
        """Close one connection with a code and reason; the session is detached when it is gone."""
        if conn.closed:
            return
        self.transcript.record("closing", conn=conn.sid, code=code, reason=reason)
        conn.link.close(code, reason)

    def _take_token(self, conn: Connection) -> bool:
        now = self.clock.now()
        cfg = self.config
        conn.tokens = min(cfg.rate_burst, conn.tokens + (now - conn.tokens_at) * cfg.rate_limit)
        conn.tokens_at = now
        if conn.tokens < 1:
            return False
        conn.tokens -= 1
        return True

    # --- auth and recovery (§2, §7) ----------------------------------------------------------

    def _auth_timeout(self, conn: Connection) -> None:
        if conn.session is None:
            self.close(conn, CLOSE_POLICY, f"no auth within {self.config.auth_timeout:g}s")

    def _on_auth(self, conn: Connection, msg: m.Auth) -> None:
        if conn.session is not None:
            self._send(
                conn,
                m.Error(code="already_authenticated", message="session is already authenticated"),
            )
            return
        self._authenticate(conn, msg.token, msg.jwt, msg.recovery_token)

    def _authenticate(
        self, conn: Connection, token: str | None, jwt: str | None, recovery_token: str | None
    ) -> None:
        if conn.auth_timer is not None:
            conn.auth_timer.cancel()
            conn.auth_timer = None
        try:
            principal = self.auth.check(token, jwt)
        except AuthRejected as exc:
            self.transcript.record("auth", conn=conn.sid, ok=False, reason=exc.reason)
            self._send(conn, m.AuthFailed(reason=exc.reason, message=exc.message))  # type: ignore[arg-type]
            self.close(conn, CLOSE_POLICY, f"auth failed: {exc.reason}")
            return
        recovery: m.Recovery | None = None
        session: Session | None = None
        if recovery_token is not None:
            session, recovery = self._recover(principal, recovery_token)
        if session is None:
            session = self._new_session(principal)
        self._attach(session, conn)
        cfg = self.config
        self.transcript.record(
            "auth", conn=conn.sid, ok=True, session=session.id, user=session.user
        )
        self._send(
            conn,
            m.Authenticated(
                session=session.id,
                sid=conn.sid,
                user=session.user,
                guest=session.guest,
                recovery_token=session.recovery_token,
                heartbeat=cfg.heartbeat,
                recovery_buffer_size=cfg.recovery_buffer_size,
                recovery_window=cfg.recovery_window,
            ),
        )
        if recovery is not None:
            self._send(conn, recovery)
            replay, session.buffer = list(session.buffer), deque()
            session.lost = 0
            for text in replay:
                self.send_text(conn, text, "notification")
        if cfg.server_ping_interval:
            conn.ping_timer = self.clock.call_later(
                cfg.server_ping_interval, self._server_ping, conn
            )

    def _new_session(self, principal: Principal) -> Session:
        session = Session(
            id=f"s{next(self._session_ids)}",
            user=principal.user,
            guest=principal.guest,
            recovery_token=secrets.token_urlsafe(16),
        )
        self.sessions[session.id] = session
        self.by_token[session.recovery_token] = session
        return session

    def _recover(self, principal: Principal, token: str) -> tuple[Session | None, m.Recovery]:
        session = self.by_token.get(token)
        if session is None:
            reason = "expired" if token in self.expired_tokens else "unknown"
            lost = self.expired_tokens.pop(token, 0)
            self.transcript.record("recovery", ok=False, reason=reason, lost=lost)
            return None, m.Recovery(recovered=False, reason=reason, lost=lost)  # type: ignore[arg-type]
        if session.user != principal.user:
            self.transcript.record("recovery", ok=False, reason="unknown", session=session.id)
            return None, m.Recovery(recovered=False, reason="unknown")
        if session.connection is not None:  # recovering a session whose old socket lingers
            old = session.connection
            self.close(old, CLOSE_POLICY, "session resumed on another connection")
            self._detach(session)
        if session.expiry_timer is not None:
            session.expiry_timer.cancel()
            session.expiry_timer = None
        lost = session.lost
        rec = m.Recovery(
            recovered=lost == 0,
            replayed=len(session.buffer),
            lost=lost,
            subscriptions=sorted(session.subscriptions),
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
            self.close(session.connection, CLOSE_POLICY, "session expired")
            session.connection.session = None
            session.connection = None
        for topic in session.subscriptions:
            subs = self.topics.get(topic)
            if subs is not None:
                subs.discard(session)
                if not subs:
                    del self.topics[topic]
        self.expired_tokens[session.recovery_token] = len(session.buffer) + session.lost
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

    def _on_ping(self, conn: Connection, msg: m.Ping) -> None:
        self._send(conn, m.Pong(id=msg.id))

    def _on_pong(self, conn: Connection, msg: m.Pong) -> None:
        pass  # recorded in the transcript; the server does not enforce client pongs

    def _server_ping(self, conn: Connection) -> None:
        if conn.closed:
            return
        self._send(conn, m.Ping(id=f"srv-{next(self._ids)}"))
        interval = self.config.server_ping_interval
        if interval:
            conn.ping_timer = self.clock.call_later(interval, self._server_ping, conn)

    # --- pub/sub (§4) ------------------------------------------------------------------------

    def _on_subscribe(self, conn: Connection, msg: m.Subscribe) -> None:
        session = conn.session
        assert session is not None
        for topic in msg.topics:
            session.subscriptions.add(topic)
            self.topics.setdefault(topic, set()).add(session)
        self._send(conn, m.Subscribed(id=msg.id, topics=list(msg.topics)))

    def _on_unsubscribe(self, conn: Connection, msg: m.Unsubscribe) -> None:
        session = conn.session
        assert session is not None
        for topic in msg.topics:
            session.subscriptions.discard(topic)
            subs = self.topics.get(topic)
            if subs is not None:
                subs.discard(session)
                if not subs:
                    del self.topics[topic]
        self._send(conn, m.Unsubscribed(id=msg.id, topics=list(msg.topics)))

    def publish(self, topic: str, payload: Any = None) -> dict[str, int]:
        """Deliver to every subscriber now, or buffer for detached ones. Returns the counts."""
        subscribers = self.topics.get(topic, ())
        # The payload is encoded once; only the sequence number differs per session.
        head = '{"type":"notification","seq":'
        tail = "," + json.dumps({"topic": topic, "payload": payload}, separators=(",", ":"))[1:]
        delivered = buffered = overflowed = 0
        record = self.transcript.record
        now = self.clock.now()  # one clock read stamps the whole fan-out
        for session in tuple(subscribers):
            session.seq += 1
            text = f"{head}{session.seq}{tail}"
            conn = session.connection
            # A socket that died before the server noticed must not swallow the notification:
            # it goes to the recovery buffer like any other for a detached session.
            if conn is not None:
                if conn.silenced or conn.closed:
                    sent = self.send_text(conn, text, "notification")
                elif conn.link.send_text(text):  # the hot path, same record as send_text's
                    record(
                        "frame",
                        at=now,
                        dir="out",
                        conn=conn.link.id,
                        session=session.id,
                        type="notification",
                        text=text,
                    )
                    sent = True
                else:
                    sent = self.send_text(conn, text, "notification")
                if sent:
                    delivered += 1
                    continue
            if len(session.buffer) >= self.config.recovery_buffer_size:
                if session.buffer:
                    session.buffer.popleft()
                session.lost += 1
                overflowed += 1
            if self.config.recovery_buffer_size > 0:
                session.buffer.append(text)
                buffered += 1
        self.transcript.record(
            "publish", topic=topic, delivered=delivered, buffered=buffered, overflowed=overflowed
        )
        return {"delivered": delivered, "buffered": buffered, "overflowed": overflowed}

    # --- RPC (§5) ----------------------------------------------------------------------------

    def _on_call(self, conn: Connection, msg: m.Call) -> None:
        outcome = self.rpc.resolve(msg.method, msg.params)
        if outcome.silent or msg.no_reply:
            self.transcript.record(
                "rpc", conn=conn.sid, id=msg.id, method=msg.method, answer="none"
            )
            return
        if outcome.error is not None:
            err = outcome.error
            reply: m.Message = m.Error(
                id=msg.id,
                code=str(err.get("code", "error")),
                message=str(err.get("message", "")),
                data=err.get("data"),
            )
        else:
            reply = m.Result(id=msg.id, result=outcome.result)
        if outcome.delay > 0:
            self.clock.call_later(outcome.delay, self._send, conn, reply)
        else:
            self._send(conn, reply)

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
        cfg = self.config
        deadline = cfg.drain_deadline if deadline is None else deadline
        answer_within = cfg.drain_answer_within if answer_within is None else answer_within
        if conn.drain and conn.drain.timer:
            conn.drain.timer.cancel()
        conn.drain = Drain(DrainState.ASKED, deadline=self.clock.now() + deadline)
        conn.drain.timer = self.clock.call_later(
            answer_within,
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
        self._send(
            conn, m.ReconnectRequest(deadline=deadline, answer_within=answer_within, reason=reason)
        )

    def _on_reconnect_response(self, conn: Connection, msg: m.ReconnectResponse) -> None:
        drain = conn.drain
        if drain is None:
            self._send(
                conn,
                m.Error(code="no_reconnect_request", message="no reconnect request is outstanding"),
            )
            return
        if drain.timer is not None:
            drain.timer.cancel()
        if msg.status == "pending":
            drain.state = DrainState.PENDING
            remaining = max(0.0, drain.deadline - self.clock.now())
            drain.timer = self.clock.call_later(
                remaining, self._drain_close, conn, "reconnect deadline reached"
            )
            self.transcript.record("drain", conn=conn.sid, state="pending", remaining=remaining)
        else:
            drain.state = DrainState.DONE
            self.transcript.record("drain", conn=conn.sid, state="done")
            self.close(conn, CLOSE_SERVICE_RESTART, "reconnect now")

    def _drain_close(self, conn: Connection, reason: str) -> None:
        self.transcript.record("drain", conn=conn.sid, state="forced", reason=reason)
        self.close(conn, CLOSE_SERVICE_RESTART, reason)

    # --- signalling (§8) ---------------------------------------------------------------------

    def _room_of(self, conn: Connection, name: str, ref: Any = None) -> Room | None:
        room = self.rooms.get(name)
        if room is None or conn.sid not in room.members:
            self._send(
                conn, m.Error(id=ref, code="not_in_room", message=f"not a member of room {name!r}")
            )
            return None
        return room

    def _broadcast(self, room: Room, msg: m.Message, *, exclude: str | None = None) -> None:
        for sid in list(room.members):
            peer = self.connections.get(sid)
            if sid != exclude and peer is not None:
                self._send(peer, msg)

    def _on_join(self, conn: Connection, msg: m.Join) -> None:
        session = conn.session
        assert session is not None
        room = self.rooms.setdefault(msg.room, Room(msg.room))
        permanent_id = msg.permanent_id or conn.permanent_id or session.user
        conn.permanent_id = permanent_id
        if conn.sid in room.members:
            self._send(
                conn,
                m.Error(id=msg.id, code="already_joined", message=f"already in room {msg.room!r}"),
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
                old_conn.rooms.discard(room.name)
        else:
            ghost = room.find_ghost(permanent_id, msg.prev_sid, now, self.config.recovery_window)
            if ghost is not None:
                old_sid = ghost.sid
                room.ghosts.pop(ghost.permanent_id, None)
        peers = [m.Peer(**p.view()) for p in room.members.values()]
        room.members[conn.sid] = Member(conn.sid, permanent_id)
        conn.rooms.add(room.name)
        self.transcript.record(
            "room",
            room=room.name,
            sid=conn.sid,
            permanent_id=permanent_id,
            event="reassigned" if old_sid else "joined",
            old_sid=old_sid,
        )
        self._send(
            conn,
            m.Joined(
                id=msg.id, room=room.name, sid=conn.sid, permanent_id=permanent_id, peers=peers
            ),
        )
        if old_sid is not None:
            self._broadcast(
                room,
                m.PeerSidReassigned(
                    room=room.name, permanent_id=permanent_id, old_sid=old_sid, new_sid=conn.sid
                ),
                exclude=conn.sid,
            )
        else:
            self._broadcast(
                room,
                m.PeerJoined(room=room.name, peer=m.Peer(sid=conn.sid, permanent_id=permanent_id)),
                exclude=conn.sid,
            )

    def _on_leave(self, conn: Connection, msg: m.Leave) -> None:
        if self._room_of(conn, msg.room, msg.id) is None:
            return
        self._leave_room(conn, msg.room, "left")
        self._send(conn, m.Left(id=msg.id, room=msg.room))

    def _leave_room(self, conn: Connection, name: str, reason: str) -> None:
        conn.rooms.discard(name)
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
        self._broadcast(
            room,
            m.PeerLeft(room=name, sid=member.sid, permanent_id=member.permanent_id, reason=reason),
        )  # type: ignore[arg-type]
        if not room.members and not room.ghosts:
            del self.rooms[name]

    def _on_signal(self, conn: Connection, msg: m.SendSignal) -> None:
        room = self._room_of(conn, msg.room)
        if room is None:
            return
        member = room.members[conn.sid]
        out = m.Signal(
            room=room.name,
            sender=conn.sid,
            from_permanent_id=member.permanent_id,
            to=msg.to,
            kind=msg.kind,
            data=msg.data,
        )
        if msg.to is None:
            self._broadcast(room, out, exclude=conn.sid)
            return
        target = self.connections.get(msg.to)
        if msg.to not in room.members or target is None:
            self._send(
                conn,
                m.Error(
                    code="unknown_peer",
                    message=f"no peer {msg.to!r} in room {room.name!r}",
                    data={"to": msg.to, "kind": msg.kind},
                ),
            )
            return
        self._send(target, out)

    def _on_track_define(self, conn: Connection, msg: m.TrackDefine) -> None:
        room = self._room_of(conn, msg.room)
        if room is None:
            return
        room.members[conn.sid].tracks[msg.track.id] = msg.track.model_dump()
        self._broadcast(
            room, m.TrackDefined(room=room.name, sid=conn.sid, track=msg.track), exclude=conn.sid
        )

    def _on_track_remove(self, conn: Connection, msg: m.TrackRemove) -> None:
        room = self._room_of(conn, msg.room)
        if room is None:
            return
        if room.members[conn.sid].tracks.pop(msg.track_id, None) is None:
            self._send(
                conn, m.Error(code="unknown_track", message=f"no track {msg.track_id!r} defined")
            )
            return
        self._broadcast(
            room,
            m.TrackRemoved(room=room.name, sid=conn.sid, track_id=msg.track_id),
            exclude=conn.sid,
        )

    def _on_track_request(self, conn: Connection, msg: m.TrackRequest) -> None:
        room = self._room_of(conn, msg.room)
        if room is None:
            return
        owner = room.members.get(msg.to)
        target = self.connections.get(msg.to)
        if owner is None or target is None or msg.track_id not in owner.tracks:
            self._send(
                conn,
                m.Error(
                    code="unknown_track", message=f"peer {msg.to!r} has no track {msg.track_id!r}"
                ),
            )
            return
        self._send(target, m.TrackRequested(room=room.name, sender=conn.sid, track_id=msg.track_id))
