"""Engine.IO v4 as a dialect's own transport: python-engineio's server on the port's aiohttp app.

python-engineio (the Engine.IO half of python-socketio 5) does the handshake, long-polling,
the WebSocket upgrade (probe, upgrade, the polling backlog) and the server's pings. Each
Engine.IO *message* is one frame for the core: a Socket.IO packet or one binary
attachment, decoded by the dialect's wire session (``sio/wire.py``). Sockets, rooms and
acks stay in the simulator core and the wire session, not in a python-socketio server, so
the control plane, the transcript and faults see these connections like any other.

Engine.IO timings (``ping_interval``, ``ping_timeout``) are real seconds, as the WebSocket
endpoint's transport limits are: they guard the server against dead peers whatever the
protocol clock says.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections import deque
from collections.abc import Coroutine
from typing import Any

import engineio
from aiohttp import web

from ..seam import CloseReason, Feed, Gate, Handshake
from .engine3 import EngineIO3

log = logging.getLogger(__name__)

#: Where socket.io-client looks by default (its ``path`` option).
DEFAULT_PATH = "/socket.io/"


#: where ``_handle`` leaves a POST body it has read and checked, for python-engineio
BODY: Any = (
    web.RequestKey("squall.engineio.body", bytes)  # newer aiohttp (3.14 here)
    if hasattr(web, "RequestKey")
    else "squall.engineio.body"
)


def payload_problem(body: bytes) -> str | None:
    """What is wrong with an Engine.IO v4 long-polling body (``\\x1e``-separated packets)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"not UTF-8 (byte {exc.start})"
    for n, packet in enumerate(text.split("\x1e")):
        if not packet:
            return f"packet {n} is empty"
        if packet[0] == "b":
            try:
                base64.b64decode(packet[1:], validate=True)
            except ValueError:
                return f"packet {n} starts with 'b' but is not base64"
        elif packet[0] not in "0123456":
            return f"packet {n} has unknown type {packet[0]!r} (expected 0 to 6)"
        elif packet[0] in NOT_POSTED:
            # python-engineio ends the session on one and waits for a poll to fetch the
            # close packet: the POST hung until the client's timeout
            return f"packet {n} is {NOT_POSTED[packet[0]]}, which a client never posts"
    return None


#: Engine.IO v4 packets no client sends in a long-polling body (it sends 1, 3, 4 and b)
NOT_POSTED = {"0": "an OPEN (0)", "2": "a PING (2)", "5": "an UPGRADE (5)", "6": "a NOOP (6)"}


class _Body:
    """A read body, as the ``wsgi.input`` python-engineio awaits ``read`` on."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    async def read(self, size: int = -1) -> bytes:
        return self.data


def _as_text(data: Any) -> str:
    """A message python-engineio read as JSON, as text again for the dialect's decoder.

    python-engineio JSON-decodes a message whose text does not start with a digit
    (``4true``, ``4[1]``, ``4 1``): no Socket.IO packet is such a text, and the decoder
    got a bool or a list (an AttributeError inside the server). As text again it is
    refused, and answered, as any packet that is not Socket.IO; one that would now start
    with a digit (``4 1`` read as 1) keeps a space in front, so it is not read as a packet."""
    text = json.dumps(data)
    return " " + text if text[:1].isdigit() else text


def _checked_websocket(base: type) -> type:
    """python-engineio's WebSocket wrapper, refusing a text message that is no Engine.IO
    packet (an empty one made python-engineio raise in its reader: aiohttp logged a
    traceback at ERROR). The socket is closed 1007 with the reason, as a WebSocket
    endpoint closes a frame it cannot read; python-engineio then ends the session."""

    class CheckedWebSocket(base):  # type: ignore[misc]
        async def wait(self) -> str | bytes | None:
            data = await super().wait()
            if isinstance(data, str) and (not data or data[0] not in "0123456"):
                reason = (
                    "an empty Engine.IO message"
                    if not data
                    else (f"unknown Engine.IO packet type {data[0]!r} (expected 0 to 6)")
                )
                await self._sock.close(code=1007, message=reason.encode()[:123])
                return None  # python-engineio: the connection is over
            return data  # type: ignore[no-any-return]

    return CheckedWebSocket


class EngineIOLink:
    """A :class:`~squall.simulator.core.Link` over one Engine.IO connection.

    The core sends synchronously; python-engineio's ``send`` is a coroutine. Frames wait in
    an outbox drained by one task at a time, so they leave in the order the core wrote them.
    """

    __slots__ = ("_drain", "_outbox", "_transport", "close_code", "closed", "eio_sid", "id")

    def __init__(self, transport: EngineIOTransport, eio_sid: str, link_id: str) -> None:
        self._transport = transport
        self.eio_sid = eio_sid
        self.id = link_id
        self.closed = False
        self.close_code: int | None = None
        self._outbox: deque[str | bytes] = deque()
        self._drain: asyncio.Task[None] | None = None

    def send(self, data: str | bytes) -> bool:
        if self.closed:
            return False
        self._outbox.append(data)
        if self._drain is None:
            self._drain = self._transport.spawn(self._send_all())
        return True

    async def _send_all(self) -> None:
        server = self._transport.server
        try:
            while self._outbox:
                await server.send(self.eio_sid, self._outbox.popleft())
        finally:
            self._drain = None

    def close(self, code: int, reason: str) -> None:
        """Engine.IO has no close code: the core's is kept for the transcript's ``close``."""
        if self.closed:
            return
        self.close_code = code
        self._transport.spawn(self._close_after_outbox())

    async def _close_after_outbox(self) -> None:
        while self._drain is not None:
            await self._drain
        self.closed = True
        socket = self._transport.server.sockets.get(self.eio_sid)
        if socket is not None:
            # Not ``server.disconnect``: it waits until a poll has fetched the close packet,
            # for ever if the client never polls again. A pending poll still gets it.
            await socket.close(wait=False, reason="server disconnect")

    def abort(self) -> None:
        """Cut the TCP connection with no Engine.IO close packet, as a dying peer would."""
        self.closed = True
        self._transport.abort(self.eio_sid)


def _withhold_pings_when_silenced(socket: Any, feed: Feed) -> None:
    """python-engineio's server pings (v4) on its own; a silenced session gets none.

    The socket's ``send`` is wrapped on this one socket (python-engineio has no hook for
    it). A ping not sent is answered by no pong, so python-engineio schedules no next one:
    the client's own ping timeout (``pingInterval + pingTimeout``) ends the connection, as
    it would with a half-dead server, even if the silence is lifted before that.
    """
    send = socket.send

    async def send_unless_silenced(pkt: Any) -> None:
        if pkt.packet_type == engineio.packet.PING and feed.silenced:
            return
        await send(pkt)

    socket.send = send_unless_silenced


class EngineIOTransport:
    """One listening port's Engine.IO server (v4, and v3 through ``engine3.py``), feeding the
    core through ``gate``."""

    def __init__(
        self,
        gate: Gate,
        *,
        path: str = DEFAULT_PATH,
        ping_interval: float = 25.0,
        ping_timeout: float = 20.0,
        max_payload: int = 1_000_000,
    ) -> None:
        self.gate = gate
        self.path = "/" + path.strip("/") + "/"
        self.server = engineio.AsyncServer(
            async_mode="aiohttp",
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            max_http_buffer_size=max_payload,
            http_compression=False,  # bodies stay readable to people and faults
            cors_allowed_origins="*",  # browsers on any local origin (the SDK's test page)
            async_handlers=False,  # frames reach the core in the order they arrived
            logger=log,  # not engineio's own stderr handler
        )
        self._read_checked_bodies()
        self.server.on("connect", self._connected)
        self.server.on("message", self._message)
        self.server.on("disconnect", self._disconnected)
        self.max_payload = max_payload
        #: Engine.IO v3 (socket.io-client 2): our own layer on the same path (engine3.py)
        self.v3 = EngineIO3(self, ping_interval, ping_timeout)
        self.links: dict[str, EngineIOLink] = {}  # by Engine.IO sid
        self._feeds: dict[str, Feed] = {}
        #: the TCP transport of each connection's newest request (its WebSocket, or its poll)
        self._sockets: dict[str, asyncio.Transport] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    def mount(self, app: web.Application) -> None:
        for method in ("GET", "POST", "OPTIONS"):
            app.router.add_route(method, self.path, self._handle)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        eio_sid = request.query.get("sid")
        if eio_sid is None and request.method == "GET":  # an opening handshake
            status = self.gate.refusal(request.path_qs)
            if status is not None:
                return web.Response(status=status, text=f"refused by the simulator ({status})\n")
        if request.query.get("EIO") == "3" or self.v3.owns(eio_sid):
            return await self.v3.handle(request)
        if eio_sid is not None and eio_sid not in self.links and request.method == "POST":
            # a POST to a session that has closed makes python-engineio raise (a 500)
            return web.json_response(f"Invalid session {eio_sid}", status=400)
        if eio_sid in self.links:
            if request.transport is not None:
                self._sockets[eio_sid] = request.transport
            if request.method == "POST":
                size = request.content_length or 0
                if size > self.server.max_http_buffer_size:
                    return self._too_big(eio_sid, size)
                body = await request.read()  # checked, or python-engineio logs a traceback
                problem = payload_problem(body)
                if problem is not None:
                    return self._bad_body(eio_sid, problem)
                request[BODY] = body
        response: web.StreamResponse = await self.server.handle_request(request)
        return response

    def _read_checked_bodies(self) -> None:
        """python-engineio reads a POST body from the request stream, which ``_handle`` has
        already read to check it: its driver's request translation gets the bytes instead."""
        driver = dict(self.server._async)
        translate = driver["translate_request"]

        def translate_checked(request: web.Request) -> dict[str, Any]:
            environ: dict[str, Any] = translate(request)
            body = request.get(BODY)
            if body is not None:
                environ["wsgi.input"] = _Body(body)
            return environ

        driver["translate_request"] = translate_checked
        driver["websocket"] = _checked_websocket(driver["websocket"])
        self.server._async = driver

    def _bad_body(self, eio_sid: str, problem: str) -> web.Response:
        """python-engineio answers 200 to a body it cannot read, and logs a traceback."""
        detail = f"bad long-polling body: {problem}"
        feed = self._feeds.get(eio_sid)
        if feed is not None:
            feed.fail(CloseReason.BAD_FRAME, detail)
        return web.Response(status=400, text=detail + "\n")

    def _too_big(self, eio_sid: str, size: int) -> web.Response:
        """A long-polling body over the limit ends that connection with a clear 400.

        (python-engineio's own answer waits until a poll fetches the close packet, which
        hangs the request when none is pending.)"""
        limit = self.server.max_http_buffer_size
        detail = f"a long-polling body of {size} bytes is over the {limit}-byte limit"
        feed = self._feeds.get(eio_sid)
        if feed is not None:
            feed.fail(CloseReason.TOO_BIG, detail)
        return web.Response(status=400, text=detail + "\n")

    def _connected(self, eio_sid: str, environ: dict[str, Any]) -> None:
        request: web.Request = environ["aiohttp.request"]
        link = EngineIOLink(self, eio_sid, self.gate.new_link_id())
        self.links[eio_sid] = link
        if request.transport is not None:
            self._sockets[eio_sid] = request.transport
        handshake = Handshake(path=request.path_qs, headers=request.headers)
        feed = self._feeds[eio_sid] = self.gate.open(link, handshake)
        socket = self.server.sockets.get(eio_sid)
        if socket is not None:
            _withhold_pings_when_silenced(socket, feed)

    def _message(self, eio_sid: str, data: Any) -> None:
        feed = self._feeds.get(eio_sid)
        if feed is not None:
            feed.receive(data if isinstance(data, str | bytes) else _as_text(data))

    def _disconnected(self, eio_sid: str, reason: str) -> None:
        link = self.links.pop(eio_sid, None)
        feed = self._feeds.pop(eio_sid, None)
        self._sockets.pop(eio_sid, None)
        if link is None or feed is None:
            return
        link.closed = True
        socket = self.server.sockets.get(eio_sid)
        if reason == self.server.reason.CLIENT_DISCONNECT and socket is not None:
            # python-engineio leaves the client's pending poll waiting up to a ping interval
            # after the client's own close packet; an empty answer lets it go now.
            socket.queue.put_nowait(None)
        feed.closed(link.close_code, reason)

    def abort(self, eio_sid: str) -> None:
        sock = self._sockets.get(eio_sid)
        if sock is not None:
            sock.abort()
        socket = self.server.sockets.get(eio_sid)
        if socket is not None:  # polling: no request holds the session open; end it now
            self.spawn(socket.close(wait=False, abort=True))

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("engine.io send failed", exc_info=task.exception())

    async def shutdown(self) -> None:
        await self.v3.shutdown()
        for eio_sid in list(self.links):
            link = self.links[eio_sid]
            link.close_code = 1001
            socket = self.server.sockets.get(eio_sid)
            if socket is not None:
                await socket.close(wait=False, reason="simulator stopping")
                socket.queue.put_nowait(None)  # ends a pending poll, or the WebSocket's writer
        await self.server.shutdown()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
