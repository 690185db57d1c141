"""The asyncio face of the simulator: websockets listeners and the HTTP control API around one core.

::

    async with Simulator() as sim:          # listens on 127.0.0.1, a port chosen by the OS
        url = sim.url                       # ws://127.0.0.1:PORT/
        sim.publish("news", {"n": 1})       # the control plane, as Python

    async with Simulator(tls=(cert, key)) as sim:  # or tls=ssl_context: sim.url is wss://
        ...

One core can listen on several ports (``await sim.listen()`` again), so
failover tests have several endpoints that share sessions and topics.

Transport limits (docs/protocol.md §9), in real seconds, not protocol time: they guard the
server against stuck peers, whatever the clock. ``open_timeout`` bounds the opening
handshake (websockets drops the TCP connection); ``fragment_timeout`` bounds a fragmented
message from its first frame to its last (closed with 1008). ``transcript_max_records``
bounds the transcript (a ring; unbounded by default, bounded by ``squall serve``).

TLS (``tls=``, squall/simulator/tls.py): one server context for every face. The WebSocket
endpoints serve ``wss://``, the dialect's HTTP routes and the control API ``https://``;
``open_timeout`` then also bounds the TLS handshake.
"""

from __future__ import annotations

import asyncio
import http
from typing import Annotated, Any

from pydantic import AfterValidator, Field
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import Event, State
from websockets.typing import Subprotocol

from squall.clock import Clock, LoopClock

from .auth import AuthPolicy
from .control import NO_SESSION, NOT_CONNECTED, Control, ControlError, operation
from .core import Config, SimulatorCore
from .dialects import dialect_class
from .seam import CloseReason, Dialect, Handshake, Transport, Unsupported
from .tls import TLSOption
from .tls import resolve as resolve_tls
from .transcript import Transcript, redact_url
from .transport_host import CoreFeed, SimulatorGate, serve_transport


def close_reason(reason: str, limit: int = 123) -> str:
    """``reason`` cut to ``limit`` UTF-8 bytes at a character boundary (a close frame holds 125)."""
    data = reason.encode("utf-8", "replace")
    if len(data) <= limit:
        return reason
    return data[:limit].decode("utf-8", "ignore")


OPEN = State.OPEN


class WriteBatch:
    """Links with frames waiting for the socket, written out once per event-loop turn.

    The core hands a link its frames synchronously, and they are encoded at once through
    websockets' sans-I/O protocol (what ``broadcast()`` does, without its per-call setup),
    so the core stays free of awaits and frames stay in order. The bytes reach the socket at
    the end of the turn: the answers to frames that arrived together (pipelined calls) go
    out in one ``send`` system call instead of one each, and a fan-out schedules one
    callback, not one per subscriber. Anything websockets writes itself meanwhile (a pong,
    a close frame) takes the pending bytes first, so the order on the wire holds.
    """

    __slots__ = ("_links", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._links: list[WebSocketLink] = []

    def add(self, link: WebSocketLink) -> None:
        if not self._links:
            self._loop.call_soon(self.flush)
        self._links.append(link)

    def flush(self) -> None:
        links, self._links = self._links, []
        for link in links:
            link.flush()


class WebSocketLink:
    """A :class:`~squall.simulator.core.Link` over a websockets server connection."""

    __slots__ = ("_batch", "_pending", "_tasks", "id", "ws")

    def __init__(
        self,
        ws: ServerConnection,
        link_id: str,
        tasks: set[asyncio.Task[Any]],
        batch: WriteBatch | None = None,
    ) -> None:
        self.ws = ws
        self.id = link_id
        self._tasks = tasks
        self._batch = batch or WriteBatch(ws.loop)
        self._pending = False

    def send(self, data: str | bytes) -> bool:
        ws = self.ws
        protocol = ws.protocol
        if protocol.state is not OPEN or ws.transport.is_closing():
            return False
        if isinstance(data, str):
            protocol.send_text(data.encode())
        else:
            protocol.send_binary(data)
        if not self._pending:
            self._pending = True
            self._batch.add(self)
        return True

    def flush(self) -> None:
        """Write what the protocol holds, as websockets' own ``send_data`` does."""
        self._pending = False
        chunks = self.ws.protocol.data_to_send()
        transport = self.ws.transport
        if not chunks or transport.is_closing():
            return
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)  # one frame: no copy
        if data:
            transport.write(data)
        if not chunks[-1] and transport.can_write_eof():  # b"" asks for a half-close
            transport.write_eof()

    def close(self, code: int, reason: str) -> None:
        task = asyncio.ensure_future(self.ws.close(code, close_reason(reason)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def abort(self) -> None:
        transport = self.ws.transport
        if transport is not None:
            transport.abort()


#: ``refuse_connections`` count ceiling: a million refusals is any test's "forever".
MAX_REFUSALS = 1_000_000
CLOSE_POLICY = 1008
_ERROR_STATUSES = frozenset(s.value for s in http.HTTPStatus if 400 <= s.value <= 599)


def _error_status(status: int) -> int:
    if status not in _ERROR_STATUSES:
        raise ValueError(f"{status} is not an HTTP error status websockets can send (see RFC 9110)")
    return status


class SimulatorConnection(ServerConnection):
    """A websockets server connection that hands whole text frames to the core at once, and
    closes a fragmented message not finished in time.

    The usual path of a message (the frame queued in websockets' assembler, a task woken to
    ``recv()`` it, then the core) costs more than the core's whole answer to it. An
    unfragmented text frame that arrives while nothing waits in that queue goes straight to
    its :attr:`feed` from :meth:`process_event`; everything else (binary frames, fragments,
    invalid UTF-8, which websockets answers with 1007) takes the usual path, and frames
    arriving while the queue is not empty follow it there, so the order always holds.

    websockets assembles fragments with no deadline: a peer that sends a first fragment and
    never the last holds its connection (and up to ``max_size`` of buffered data) for ever.
    The first fragment of a message arms a timer, the last one disarms it. When it fires,
    the feed fails the connection through the core (``CloseReason.POLICY``).

    Its own state lives in one slotted :class:`Watch`: websockets already gives each
    connection 27 attributes, and a few more would push every connection's ``__dict__`` out
    of the shared-key layout (1.5 KB each, 150 MB at 100,000 connections: issue 14).
    """

    _closing: asyncio.Task[None] | None = None

    def __init__(self, *args: Any, fragment_timeout: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.watch = Watch(fragment_timeout)

    def process_event(self, event: Event) -> None:
        watch = self.watch
        feed = watch.feed
        if (
            feed is not None
            and type(event) is Frame
            and event.opcode is Opcode.TEXT
            and event.fin
            and not self.recv_messages.frames.queue
        ):
            try:
                text = bytes(event.data).decode()  # bytes already: no copy
            except UnicodeDecodeError:
                pass  # websockets' own path fails the connection with 1007
            else:
                feed.receive(text)
                return
        super().process_event(event)
        if watch.fragment_timeout is None or not isinstance(event, Frame):
            return
        opcode = event.opcode
        if opcode is Opcode.CONT:
            if event.fin and watch.stall_timer is not None:
                watch.stall_timer.cancel()
                watch.stall_timer = None
        elif not event.fin and (opcode is Opcode.TEXT or opcode is Opcode.BINARY):
            if watch.stall_timer is not None:  # cannot happen (RFC 6455 §5.4): be safe anyway
                watch.stall_timer.cancel()
            watch.stall_timer = self.loop.call_later(watch.fragment_timeout, self._stalled)

    def connection_lost(self, exc: Exception | None) -> None:
        watch = self.watch
        if watch.stall_timer is not None:
            watch.stall_timer.cancel()
            watch.stall_timer = None
        super().connection_lost(exc)

    def _stalled(self) -> None:
        watch = self.watch
        watch.stall_timer = None
        reason = f"message fragments not completed within {watch.fragment_timeout or 0.0:g}s"
        if watch.feed is not None:
            watch.feed.fail(CloseReason.POLICY, reason)
        else:  # not handed to the simulator's handler yet: no dialect to close as
            self._closing = self.loop.create_task(self.close(CLOSE_POLICY, reason))


class Watch:
    """A :class:`SimulatorConnection`'s own state: where its frames go, and its fragment timer."""

    __slots__ = ("feed", "fragment_timeout", "stall_timer")

    def __init__(self, fragment_timeout: float | None) -> None:
        self.fragment_timeout = fragment_timeout
        self.feed: CoreFeed | None = None  # set by the simulator's handler
        self.stall_timer: asyncio.TimerHandle | None = None


class Simulator(Control):
    """A fake backend speaking one dialect (the reference protocol by default), scripted
    through the control plane. ``dialect`` is a name (``mixer``) or a Dialect class.

    ``open_timeout`` and ``fragment_timeout`` (real seconds, None = no limit) and
    ``transcript_max_records`` (None = unbounded) are the transport limits above.
    ``tls`` (an ``ssl.SSLContext`` or a (cert, key) pair of PEM paths) turns on wss/https.
    ``backlog`` is the listen backlog of every WebSocket endpoint (asyncio's default, 100,
    refuses or delays a herd of thousands connecting at once; the kernel caps it at
    ``net.core.somaxconn``)."""

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        config: Config | None = None,
        auth: AuthPolicy | None = None,
        host: str = "127.0.0.1",
        dialect: str | type[Dialect] = "reference",
        dialect_options: dict[str, Any] | None = None,
        open_timeout: float | None = 10.0,
        fragment_timeout: float | None = 10.0,
        transcript_max_records: int | None = None,
        tls: TLSOption = None,
        backlog: int = 100,
    ) -> None:
        for name, limit in (("open_timeout", open_timeout), ("fragment_timeout", fragment_timeout)):
            if limit is not None and not limit > 0:
                raise ValueError(f"{name} must be a positive number of seconds or None: {limit}")
        if isinstance(backlog, bool) or not isinstance(backlog, int) or backlog < 1:
            raise ValueError(f"backlog must be a positive number of connections: {backlog!r}")
        self.backlog = backlog
        self.clock = clock or LoopClock()
        super().__init__(
            SimulatorCore(
                self.clock,
                config=config,
                auth=auth,
                transcript=Transcript(
                    self._now, source="server", max_records=transcript_max_records
                ),
            )
        )
        self.open_timeout = open_timeout
        self.fragment_timeout = fragment_timeout
        self.tls = resolve_tls(tls)
        cls = dialect_class(dialect) if isinstance(dialect, str) else dialect
        self.dialect: Dialect = cls(self.core, **(dialect_options or {}))
        self.host = host
        self.http_url: str | None = None
        self._dialect_http: Any = None
        self.servers: list[Server] = []
        self.urls: list[str] = self.dialect.urls  # one list: the dialect sees every endpoint
        self.control_url: str | None = None
        self._http: Any = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._batch: WriteBatch | None = None
        self._refusals: tuple[int, int] = (0, 503)  # handshakes still to refuse, and how
        #: a dialect with its own transport (Socket.IO): one (aiohttp runner, transport) per port
        self._transports: list[tuple[Any, Transport]] = []
        #: how every connection reaches the core, the WebSocket endpoint's and a transport's
        self._gate = SimulatorGate(self.core, self.dialect, self._refusal)

    def _now(self) -> float:
        return self.clock.now()

    @property
    def url(self) -> str:
        if not self.urls:
            raise ControlError("the simulator is not listening: call await sim.start() first", 409)
        return self.urls[0]

    async def start(
        self,
        *,
        ports: int = 1,
        control_port: int | None = None,
        control_host: str = "127.0.0.1",
        control_token: str | None = None,
    ) -> Simulator:
        for _ in range(ports):
            await self.listen()
        if self.dialect.routes() and self._dialect_http is None and not self._transports:
            from .dialect_http import start_dialect_http

            self._dialect_http, self.http_url = await start_dialect_http(
                self.dialect, self.host, tls=self.tls
            )
        if control_port is not None:
            from .http_api import start_http_api

            self._http, self.control_url = await start_http_api(
                self, host=control_host, port=control_port, token=control_token, tls=self.tls
            )
        return self

    async def listen(self, port: int = 0) -> str:
        """Open one more WebSocket endpoint on the same core; returns its URL."""
        own = self.dialect.transport(self._gate)
        if own is not None:
            return await self._listen_transport(own, port)
        tls: dict[str, Any] = {}
        if self.tls is not None:  # asyncio's default handshake limit is 60 s: use ours
            tls = {"ssl": self.tls, "ssl_handshake_timeout": self.open_timeout}
        server = await serve(
            self._handler,
            self.host,
            port,
            process_request=self._process_request,
            max_size=self.core.config.max_message_size,
            subprotocols=[Subprotocol(p) for p in self.dialect.subprotocols] or None,
            ping_interval=None,  # keepalive is the protocol's own ping/pong (§3)
            compression=None,  # frames stay readable to frame-aware faults
            open_timeout=self.open_timeout,
            backlog=self.backlog,  # to loop.create_server: handshakes not yet accepted
            # websockets' stubs want a class; a factory is what it calls at run time
            create_connection=self._create_connection,  # type: ignore[arg-type]
            **tls,
        )
        self.servers.append(server)
        sock_port = server.sockets[0].getsockname()[1]
        host = f"[{self.host}]" if ":" in self.host else self.host
        url = f"{'wss' if self.tls else 'ws'}://{host}:{sock_port}/"
        self.urls.append(url)
        return url

    async def _listen_transport(self, transport: Transport, port: int) -> str:
        """The dialect's own transport and its routes on one more port (transport_host.py)."""
        runner, url = await serve_transport(self.dialect, transport, self.host, port, tls=self.tls)
        self._transports.append((runner, transport))
        self.urls.append(url)
        self.http_url = self.http_url or url
        return url

    async def stop(self) -> None:
        for runner, transport in self._transports:
            await transport.shutdown()
            await runner.cleanup()
        self._transports.clear()
        for server in self.servers:
            server.close(close_connections=True, code=1001, reason="simulator stopping")
        for server in self.servers:
            await server.wait_closed()
        self.servers.clear()
        for runner in (self._http, self._dialect_http):
            if runner is not None:
                await runner.cleanup()
        self._http = self._dialect_http = None
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.dialect.aclose()

    async def __aenter__(self) -> Simulator:
        if not self.servers:
            await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _create_connection(self, *args: Any, **kwargs: Any) -> SimulatorConnection:
        return SimulatorConnection(*args, fragment_timeout=self.fragment_timeout, **kwargs)

    @operation()
    def refuse_connections(
        self,
        count: int = Field(1, ge=0, le=MAX_REFUSALS),
        status: Annotated[int, AfterValidator(_error_status)] = Field(503, ge=400, le=599),
    ) -> None:
        """Answer the next ``count`` handshakes with HTTP ``status`` (0 stops refusing)."""
        self._record("refuse_connections", count=count, status=status)
        self._refusals = (count, status)

    def _refusal(self, path: str) -> int | None:
        """The status of the next scripted refusal (recorded), or None: let this one in."""
        left, status = self._refusals
        if left <= 0:
            return None
        self._refusals = (left - 1, status)
        self.core.transcript.record("refused", path=redact_url(path), status=status)
        return status

    # --- softphone calls (the genesys dialect: docs/dialects/genesys.md, "Softphone") ---------

    def _softphone(self) -> tuple[Any, str]:
        """The dialect, if it places calls, and why not otherwise."""
        try:
            self.dialect.require("softphone", "softphone calls")
        except Unsupported as exc:
            return None, str(exc)
        return self.dialect, ""

    @operation(errors={404: NO_SESSION, 409: f"{NOT_CONNECTED}, or its dialect has no softphone"})
    def place_call(
        self,
        session: str,
        conversation_id: str | None = Field(None, min_length=1, max_length=200),
        auto_answer: bool = False,
        trickle: bool = False,
        tone_hz: float = Field(440.0, ge=50, le=4000),
    ) -> dict[str, Any]:
        """Offer a softphone call to a session: an aiortc peer sends a tone, counts what it gets."""
        phone, why = self._softphone()
        if phone is None:
            raise ControlError(why, status=409)
        target = self._session(session)
        if target.connection is None:
            raise ControlError(f"session {target.id} ({target.user}) is not connected", status=409)
        self._record("place_call", session=target.id, trickle=trickle, auto_answer=auto_answer)
        view: dict[str, Any] = phone.place_call(
            target,
            conversation_id=conversation_id,
            auto_answer=auto_answer,
            trickle=trickle,
            tone_hz=tone_hz,
        )
        return view

    @operation(errors={404: "no call has this id", 409: "the dialect has no softphone"})
    def end_call(self, call: str = Field(min_length=1), reason: str = "success") -> dict[str, Any]:
        """Retract a call the client has not proceeded with, or terminate it (its media ends)."""
        phone, why = self._softphone()
        if phone is None:
            raise ControlError(why, status=409)
        self._record("end_call", call=call, reason=reason)
        try:
            view: dict[str, Any] = phone.end_call(call, reason)
        except KeyError:
            known = ", ".join(c["id"] for c in phone.calls()) or "none"
            raise ControlError(f"no call {call!r} (calls: {known})", status=404) from None
        return view

    @operation("GET")
    def calls(self) -> list[dict[str, Any]]:
        """Every softphone call: its state, what each side said, and its media counts."""
        lister = getattr(self.dialect, "calls", None)
        return list(lister()) if lister is not None else []

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        status = self._refusal(request.path)
        if status is None:
            return None
        return connection.respond(status, f"refused by the simulator ({status})\n")

    async def _handler(self, ws: ServerConnection) -> None:
        core = self.core
        if self._batch is None:
            self._batch = WriteBatch(asyncio.get_running_loop())
        link = WebSocketLink(ws, core.new_connection_id(), self._tasks, self._batch)
        request = ws.request
        handshake = Handshake(
            path=request.path if request else "/",
            headers=request.headers if request else {},
            subprotocol=ws.subprotocol,
        )
        feed = self._gate.open(link, handshake)
        if isinstance(ws, SimulatorConnection):
            ws.watch.feed = feed
        try:
            async for data in ws:
                feed.receive(data)
        except ConnectionClosed:
            pass
        finally:
            rcvd = ws.protocol.close_rcvd
            sent = ws.protocol.close_sent
            frame = rcvd or sent
            feed.closed(frame.code if frame else 1006, frame.reason if frame else "")
