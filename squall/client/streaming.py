"""``StreamingClient``: the asyncio driver that runs :class:`~squall.client.core.ClientCore`.

::

    client = StreamingClient(urls=[url_a, url_b], token="alice", immediate_first_retry=True)
    client.on("connected", lambda info: print("connected as", info["sid"]))
    await client.connect()
    await client.subscribe(["news"], lambda n: print(n["payload"]))
    print(await client.call("echo", {"hi": 1}, timeout=5))
    await client.disconnect()

The driver is deliberately thin: it opens the sockets the core asks for (the
websockets asyncio client, with its own keepalive off since the protocol has
one, §3), feeds every frame, close and timer back with ``clock.now()``, and
carries out the core's actions. All decisions live in the core.

TLS: a ``wss://`` URL is always verified, against the policy's ``ca_file`` if one is set,
otherwise against the system's trust store. There is no switch to turn verification off.
A certificate that fails verification is final (retrying cannot fix it): an ``error``
event ``{"kind": "tls", "url", "message"}`` names the URL and the reason, and ``connect()``
raises :class:`~squall.client.errors.ConnectionFailed` with the same sentence. Other TLS
failures (a reset mid-handshake, a server that does not speak TLS) are retried like any
failed connect, with the reason in ``connect_failed``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.connection import broadcast
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from squall.clock import Clock, LoopClock, Timer

from .actions import (
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
from .core import ClientCore
from .emitter import Emitter, Handler
from .errors import ClientClosed, ConnectionFailed
from .policy import Policy
from .states import Status
from .wire import ClientWire, Job, Opening, PreludeFailed, SideChannel, client_wire

log = logging.getLogger("squall.client")
frames_log = logging.getLogger("squall.client.frames")


class DrainRequest:
    """Given to ``request_reconnect`` handlers: call with ``{"pending": True}``/``{"done": True}``.

    Genesys shape: ``client.on("request_reconnect", lambda cb: cb({"done": True}))``.
    """

    def __init__(self, client: StreamingClient, data: dict[str, Any]) -> None:
        self._client = client
        self.deadline: float = data["deadline"]
        self.answer_within: float = data["answer_within"]
        self.reason: str = data["reason"]
        self.data = data

    def __call__(self, answer: dict[str, Any]) -> None:
        if answer.get("done"):
            self._client.answer_drain("done")
        elif answer.get("pending"):
            self._client.answer_drain("pending")
        else:
            raise ValueError(f"answer with {{'pending': True}} or {{'done': True}}, not {answer!r}")

    def __getitem__(self, key: str) -> Any:
        return self.data[key]


class StreamingClient:
    """The reference client. ``**policy`` takes any :class:`~squall.client.policy.Policy` field."""

    IDLE = Status.IDLE
    CONNECTING = Status.CONNECTING
    CONNECTED = Status.CONNECTED
    RECONNECTING = Status.RECONNECTING
    CLOSING = Status.CLOSING
    CLOSED = Status.CLOSED

    def __init__(
        self,
        urls: list[str] | str,
        *,
        token: str | None = None,
        jwt: str | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        policy: Policy | None = None,
        recovery_token: str | None = None,
        dialect: str | ClientWire = "reference",
        **settings: Any,
    ) -> None:
        if isinstance(urls, str):
            urls = [urls]
        self.policy = (policy or Policy()).replace(**settings) if settings else policy or Policy()
        self.clock: Clock = clock or LoopClock()
        self.core = ClientCore(
            urls,
            token=token,
            jwt=jwt,
            policy=self.policy,
            rng=rng,
            recovery_token=recovery_token,
            wire=client_wire(dialect) if isinstance(dialect, str) else dialect,
        )
        self.events = Emitter()
        # Built here, not at connect: loading a trust store takes a while (the system's, ~0.1 s)
        # and must not eat into the open timer.
        secure = any(urlsplit(url).scheme.lower() == "wss" for url in urls)
        self._tls: ssl.SSLContext | None = (
            tls_context(self.policy.ca_file) if self.policy.ca_file or secure else None
        )
        self._sockets: dict[int, ClientConnection] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._timers: dict[str, Timer] = {}
        self._tickets: dict[int, asyncio.Future[Any]] = {}
        self._topic_handlers: dict[str, list[Handler]] = {}
        self._waiters: list[asyncio.Future[None]] = []
        self._closers: set[asyncio.Task[Any]] = set()
        self._jobs: set[asyncio.Task[None]] = set()  # a SideChannel wire's requests in flight
        wire = self.core.wire
        self._side: SideChannel | None = wire if isinstance(wire, SideChannel) else None
        self._pumping = False

    # --- events -----------------------------------------------------------------------------------

    def on(self, event: str, handler: Handler) -> Handler:
        return self.events.on(event, handler)

    def once(self, event: str, handler: Handler) -> Handler:
        return self.events.once(event, handler)

    def off(self, event: str | None = None, handler: Handler | None = None) -> None:
        self.events.off(event, handler)

    @property
    def status(self) -> Status:
        return self.core.status

    def is_connected(self) -> bool:
        return self.core.status is Status.CONNECTED

    @property
    def sid(self) -> str | None:
        return self.core.sid

    @property
    def session(self) -> str | None:
        return self.core.session

    @property
    def recovery_token(self) -> str | None:
        return self.core.recovery_token

    def snapshot(self) -> dict[str, Any]:
        return self.core.snapshot()

    # --- lifecycle --------------------------------------------------------------------------------

    async def connect(self) -> None:
        """Connect and authenticate; returns once ``connected``. Raises on a final failure."""
        if self.status is Status.CONNECTED:
            return
        waiter = self._waiter()
        if self.status in (Status.IDLE, Status.CLOSED):
            self.core.connect(self.clock.now())
            self._pump()
        await waiter

    async def reconnect(self) -> None:
        """Drop the connection and connect again at once; returns once ``connected``."""
        waiter = self._waiter()
        self.core.reconnect(self.clock.now())
        self._pump()
        await waiter

    async def disconnect(self) -> None:
        """Close for good (no reconnect); pending operations fail with ClientClosed."""
        if self.status in (Status.IDLE, Status.CLOSED):
            self.core.disconnect(self.clock.now())  # rejects anything spooled before connect()
            self._pump()
            return
        self.core.disconnect(self.clock.now())
        self._pump()
        tasks = [t for t in self._tasks.values() if not t.done()]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._closers:
            await asyncio.gather(*self._closers, return_exceptions=True)
        for job in list(self._jobs):  # their answers have no socket to go to now
            job.cancel()

    def _waiter(self) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        return future

    # --- pub/sub ----------------------------------------------------------------------------------

    async def subscribe(self, topics: list[str] | str, handler: Handler | None = None) -> Any:
        """Subscribe; ``handler(notification)`` gets every notification on these topics."""
        topics = [topics] if isinstance(topics, str) else list(topics)
        if handler is not None:
            for topic in topics:
                self._topic_handlers.setdefault(topic, []).append(handler)
        return await self._ticket(self.core.subscribe(topics, self.clock.now()))

    async def unsubscribe(self, topics: list[str] | str) -> Any:
        topics = [topics] if isinstance(topics, str) else list(topics)
        for topic in topics:
            self._topic_handlers.pop(topic, None)
        return await self._ticket(self.core.unsubscribe(topics, self.clock.now()))

    # --- RPC --------------------------------------------------------------------------------------

    async def call(
        self,
        method: str,
        args: Any = None,
        *,
        timeout: float | None = None,
        no_reply: bool = False,
    ) -> Any:
        """Call ``method``; spooled while disconnected; ``timeout`` counts from sending."""
        ticket = self.core.call(method, args, self.clock.now(), timeout=timeout, no_reply=no_reply)
        return await self._ticket(ticket)

    # --- drain ------------------------------------------------------------------------------------

    def answer_drain(self, status: str) -> None:
        """Answer the outstanding ``request_reconnect`` with ``"pending"`` or ``"done"``."""
        self.core.answer_drain(status, self.clock.now())
        self._pump()

    # --- signalling -------------------------------------------------------------------------------

    async def join_room(self, room: str, *, permanent_id: str | None = None) -> Any:
        return await self._ticket(
            self.core.join_room(room, self.clock.now(), permanent_id=permanent_id)
        )

    async def leave_room(self, room: str) -> Any:
        return await self._ticket(self.core.leave_room(room, self.clock.now()))

    def peers(self, room: str) -> list[dict[str, Any]]:
        state = self.core.rooms.get(room)
        return list(state.peers.values()) if state else []

    def send_message(self, message: Any, to: str | None = None, *, room: str | None = None) -> None:
        self.core.send_message(message, self.clock.now(), to=to, room=room)
        self._pump()

    def send_signal(self, room: str, kind: str, data: Any = None, *, to: str | None = None) -> None:
        self.core.send_signal(room, kind, data, self.clock.now(), to=to)
        self._pump()

    def define_track(self, room: str, track: dict[str, Any]) -> str:
        track_id = self.core.define_track(room, track, self.clock.now())
        self._pump()
        return track_id

    def remove_track(self, room: str, track_id: str) -> None:
        self.core.remove_track(room, track_id, self.clock.now())
        self._pump()

    def request_track(self, room: str, to: str, track_id: str) -> None:
        self.core.request_track(room, to, track_id, self.clock.now())
        self._pump()

    # --- the pump: carry out the core's actions ---------------------------------------------------

    def _ticket(self, ticket: int) -> asyncio.Future[Any]:
        future = self._tickets.get(ticket)
        if future is None:
            future = self._tickets[ticket] = asyncio.get_running_loop().create_future()
        self._pump()
        return future

    def _pump(self) -> None:
        if self._pumping:
            return  # the outer loop picks up what a handler queued
        self._pumping = True
        try:
            while True:
                self._do_aside()  # a wire's own replies go before the core's actions
                actions = self.core.actions()
                if not actions:
                    break
                for action in actions:
                    self._do(action)
        finally:
            self._pumping = False

    def _do_aside(self) -> None:
        """Send the frames a :class:`SideChannel` wire queued and start its requests."""
        if self._side is None:
            return
        aside = self._side.take_aside()
        conn = self.core.conn
        ws = self._sockets.get(conn)
        for frame in aside.frames:
            if self.policy.debug:
                frames_log.debug("out conn=%d %s", conn, frame.shown or frame.text)
            if ws is not None:
                broadcast([ws], frame.text)
            self._emit("sent", {"type": frame.type, "text": frame.shown or frame.text})
        for job in aside.jobs:
            task = asyncio.ensure_future(self._run_job(conn, job))
            self._jobs.add(task)
            task.add_done_callback(self._jobs.discard)

    async def _run_job(self, conn: int, job: Job) -> None:
        try:
            messages = await job()
        except Exception as exc:  # a wire's job reports its own failures; this is a bug in one
            log.warning("a %s wire request failed: %r", self.core.wire.name, exc)
            return
        now = self.clock.now()
        for msg in messages:
            self.core.receive_message(conn, msg, now)
        self._pump()

    def _do(self, action: Any) -> None:
        if isinstance(action, Send):
            ws = self._sockets.get(action.conn)
            if self.policy.debug:
                frames_log.debug("out conn=%d %s", action.conn, action.text)
            if ws is not None:
                broadcast([ws], action.text)  # synchronous write: frames stay in core order
        elif isinstance(action, Emit):
            self._emit(action.event, action.data)
        elif isinstance(action, SetTimer):
            old = self._timers.pop(action.name, None)
            if old is not None:
                old.cancel()
            delay = action.at - self.clock.now()
            self._timers[action.name] = self.clock.call_later(delay, self._fire, action.name)
        elif isinstance(action, CancelTimer):
            old = self._timers.pop(action.name, None)
            if old is not None:
                old.cancel()
        elif isinstance(action, Resolve | Reject):
            future = self._tickets.pop(action.ticket, None)
            if future is None:
                future = asyncio.get_running_loop().create_future()
                self._tickets[action.ticket] = future  # resolved before awaited
            if not future.done():
                if isinstance(action, Resolve):
                    future.set_result(action.value)
                else:
                    future.set_exception(action.error)
        elif isinstance(action, Loopback):
            self.core.receive_message(action.conn, action.message, self.clock.now())
        elif isinstance(action, OpenSocket):
            self._tasks[action.conn] = asyncio.ensure_future(self._run_socket(action))
        elif isinstance(action, Close):
            self._close(action)

    def _emit(self, event: str, data: dict[str, Any]) -> None:
        if event == "connected":
            if self._side is not None:
                data = {**data, **self._side.describe()}
            self._settle_waiters(None)
        elif event == "closed":
            self._settle_waiters(self.core.final_error or ClientClosed("connect"))
        if event == "notification":
            for handler in list(self._topic_handlers.get(data["topic"], ())):
                self.events._call(handler, event, data)
        if event == "request_reconnect":
            self.events.emit(event, DrainRequest(self, data))
            return
        if event == "packet" and self.policy.debug:
            frames_log.debug("in  %s", data["text"])
        self.events.emit(event, data)

    def _settle_waiters(self, error: BaseException | None) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if waiter.done():
                continue
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)

    def _fire(self, name: str) -> None:
        self._timers.pop(name, None)
        self.core.timer_fired(name, self.clock.now())
        self._pump()

    def _close(self, action: Close) -> None:
        ws = self._sockets.get(action.conn)
        if ws is None:
            task = self._tasks.get(action.conn)
            if task is not None and not task.done():
                task.cancel()  # still opening: stop the handshake
            return
        if self._side is not None:  # frames written now reach the kernel before an abort
            current = action.conn == self.core.conn
            for frame in self._side.farewell(action.abort, current=current):
                broadcast([ws], frame.text)
                self._emit("sent", {"type": frame.type, "text": frame.shown or frame.text})
        if action.abort:
            ws.transport.abort()
            return
        closer = asyncio.ensure_future(ws.close(action.code, action.reason))
        self._closers.add(closer)
        closer.add_done_callback(self._closers.discard)

    async def _run_socket(self, action: OpenSocket) -> None:
        conn = action.conn
        core = self.core
        try:
            opening = await core.wire.prelude(
                Opening(action.url, dict(action.headers), tls=self._tls), core.token
            )
        except PreludeFailed as exc:
            for answer in exc.answers:  # e.g. the auth_failed a 401 means
                core.receive_message(conn, answer, self.clock.now())
            if isinstance(exc.__cause__, ssl.SSLCertVerificationError):
                self._emit(
                    "error", {"kind": "tls", "url": redact_query(action.url), "message": str(exc)}
                )
            error = ConnectionFailed(str(exc), core.attempt) if exc.final else None
            core.socket_closed(conn, None, str(exc), self.clock.now(), fatal=exc.final, error=error)
            self._pump()
            return
        except asyncio.CancelledError:
            core.socket_closed(conn, None, "connect cancelled", self.clock.now())
            self._pump()
            return
        url = opening.url
        secure = urlsplit(url).scheme.lower() == "wss"
        if secure and self._tls is None:
            self._tls = tls_context(None)
        try:
            ws = await connect(
                url,
                ssl=self._tls if secure else None,
                additional_headers=opening.headers or None,
                subprotocols=[Subprotocol(p) for p in opening.subprotocols] or None,
                ping_interval=None,  # the protocol's own keepalive (§3)
                compression=None,  # frames stay readable to frame-aware faults
                proxy=None,
                open_timeout=None,  # the core's "open" timer covers handshake + auth
                close_timeout=self.clock.timescale * 2 if self.clock.timescale < 1 else 2,
                max_size=None,
            )
        except asyncio.CancelledError:
            core.socket_closed(conn, None, "connect cancelled", self.clock.now())
            self._pump()
            return
        except InvalidStatus as exc:
            status = exc.response.status_code
            core.socket_closed(
                conn,
                None,
                f"handshake refused: HTTP {status}",
                self.clock.now(),
                fatal=status in (401, 403),
            )
            self._pump()
            return
        except ssl.SSLCertVerificationError as exc:  # final: a retry meets the same cert
            message = f"TLS certificate verification failed for {redact_query(url)}: " + (
                exc.verify_message or exc.reason or str(exc)
            )
            self._emit("error", {"kind": "tls", "url": redact_query(url), "message": message})
            error = ConnectionFailed(message, core.attempt)
            core.socket_closed(conn, None, message, self.clock.now(), fatal=True, error=error)
            self._pump()
            return
        except ssl.SSLError as exc:  # cut mid-handshake, or not TLS: a retry may work
            reason = f"connect failed: TLS handshake with {redact_query(url)} failed: {exc}"
            core.socket_closed(conn, None, reason, self.clock.now())
            self._pump()
            return
        except Exception as exc:  # refused, reset, DNS...: each is a retry
            core.socket_closed(conn, None, f"connect failed: {exc}", self.clock.now())
            self._pump()
            return
        self._sockets[conn] = ws
        try:
            core.socket_opened(conn, self.clock.now())
            self._pump()
            async for text in ws:
                if self.policy.debug and not isinstance(text, str):
                    frames_log.debug("in  conn=%d <%d bytes>", conn, len(text))
                core.receive_frame(conn, text, self.clock.now())
                self._pump()
        except ConnectionClosed:
            pass
        except asyncio.CancelledError:
            ws.transport.abort()
        finally:
            self._sockets.pop(conn, None)
            self._tasks.pop(conn, None)
            rcvd = ws.protocol.close_rcvd  # None: no close frame from the server (1006)
            code = rcvd.code if rcvd else None
            reason = rcvd.reason if rcvd else "connection lost"
            core.socket_closed(conn, code, reason, self.clock.now())
            self._pump()

    async def __aenter__(self) -> StreamingClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.disconnect()


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """A verifying client context: ``ca_file``'s CAs, or the system's (None). A file that
    cannot be read is a ValueError naming it, raised when the client is built."""
    try:
        return ssl.create_default_context(cafile=ca_file)
    except FileNotFoundError:
        raise ValueError(f"ca_file {ca_file!r}: no such file") from None
    except (ssl.SSLError, OSError) as exc:
        raise ValueError(
            f"ca_file {ca_file!r}: not a PEM file of CA certificates ({exc})"
        ) from None


def redact_query(url: str) -> str:
    """``url`` without its query: a ``?token=`` must not ride along in an error message."""
    parts = urlsplit(url)
    return parts._replace(query="", fragment="").geturl()


def on_event(client: StreamingClient, event: str) -> Callable[[Handler], Handler]:
    """Decorator form: ``@on_event(client, "connected")``."""

    def wrap(handler: Handler) -> Handler:
        return client.on(event, handler)

    return wrap
