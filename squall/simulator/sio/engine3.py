"""Engine.IO v3 (socket.io-client 2, ``EIO=3``) on aiohttp: our own layer, since python-engineio
4 refuses it and python-engineio 3 cannot live beside it.

What differs from v4 (engine.io-parser 2 and engine.io 3, which socket.io 2 servers run):

- long-polling bodies are ``<length>:<packet>`` records, the length in UTF-16 code units
  (JavaScript's ``string.length``); a binary packet travels as ``b4<base64>``, which every
  v3 client decodes, so no XHR2 binary payload is ever sent; XHR2 bodies *from* a client
  (``application/octet-stream``: ``<0|1><digits>\\xff<data>`` records) are read;
- the *client* pings (``2``, answered ``3`` with the same data) every ``pingInterval``;
  the server ends a connection that sent no ping for ``pingInterval + pingTimeout``;
- the handshake has no ``maxPayload``; errors are engine.io's JSON ``{code, message}``.

The upgrade (``2probe`` / ``3probe``, a ``6`` noop to end the pending poll, ``5``) is as in
v4. Each Engine.IO message is one frame for the core, as in ``engine.py``; the Socket.IO
packets inside are the dialect's (``wire.py``: the packet text is the same in Socket.IO's
protocols 4 and 5). Timings are real seconds.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import secrets
from collections import deque
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from ..seam import CloseReason, Feed, Handshake

if TYPE_CHECKING:
    from .engine import EngineIOTransport

OPEN, CLOSE, PING, PONG, MESSAGE, UPGRADE, NOOP = "0123456"

#: engine.io 3's error answers (``lib/server.js``, ``Server.errorMessages``)
UNKNOWN_TRANSPORT = (0, "Transport unknown")
UNKNOWN_SID = (1, "Session ID unknown")
BAD_HANDSHAKE_METHOD = (2, "Bad handshake method")
BAD_REQUEST = (3, "Bad request")


_LENGTH = re.compile(r"[0-9]{1,9}")


class PayloadError(ValueError):
    """A long-polling body that is not an Engine.IO v3 payload."""


def utf16_len(text: str) -> int:
    """JavaScript's ``text.length``: astral characters count twice."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def encode_packet(kind: str, data: str | bytes = "") -> str:
    if isinstance(data, bytes):
        return "b" + kind + base64.b64encode(data).decode("ascii")
    return kind + data


def encode_payload(packets: list[str]) -> str:
    return "".join(f"{utf16_len(p)}:{p}" for p in packets)


def decode_payload(body: bytes, content_type: str) -> list[tuple[str, str | bytes]]:
    """A client's long-polling body -> (packet type, data) pairs."""
    if content_type == "application/octet-stream":
        return _decode_binary_payload(body)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError("the body is not UTF-8") from None
    out: list[tuple[str, str | bytes]] = []
    i = 0
    while i < len(text):
        colon = text.find(":", i)
        # ASCII digits, and few: str.isdigit takes "²", and int() refuses 4,300 digits
        if colon < 0 or not _LENGTH.fullmatch(text[i:colon]):
            raise PayloadError(f"expected '<length>:' at character {i}")
        units = int(text[i:colon])
        j = colon + 1
        end = j
        while units > 0 and end < len(text):  # count UTF-16 units, not code points
            units -= 2 if ord(text[end]) > 0xFFFF else 1
            end += 1
        if units != 0 or end == j:
            raise PayloadError(f"a record at character {i} is shorter than its length")
        out.append(_decode_packet(text[j:end]))
        i = end
    return out


def _decode_packet(packet: str) -> tuple[str, str | bytes]:
    if packet == "b" or (packet[0] == "b" and packet[1] not in "0123456"):
        raise PayloadError(f"a 'b' packet needs a packet type (0 to 6), got {packet[:2]!r}")
    if packet[0] == "b":
        try:
            return packet[1], base64.b64decode(packet[2:], validate=True)
        except ValueError:
            raise PayloadError("a 'b' packet that is not base64") from None
    if packet[0] not in "0123456":
        raise PayloadError(f"unknown Engine.IO packet type {packet[0]!r}")
    return packet[0], packet[1:]


def _decode_binary_payload(body: bytes) -> list[tuple[str, str | bytes]]:
    out: list[tuple[str, str | bytes]] = []
    i = 0
    while i < len(body):
        kind = body[i]
        stop = body.find(b"\xff", i + 1)
        digits = body[i + 1 : stop]
        if kind not in (0, 1) or stop < 0 or not 0 < len(digits) <= 9 or any(d > 9 for d in digits):
            raise PayloadError(f"a binary payload record at byte {i} is malformed")
        size = int("".join(str(d) for d in digits))
        data = body[stop + 1 : stop + 1 + size]
        if len(data) != size or not data:
            raise PayloadError(f"a binary payload record at byte {i} is shorter than its length")
        if kind == 0:
            out.append(_decode_packet(data.decode("utf-8", "replace")))
        elif data[0] > 6:
            raise PayloadError(f"a binary record at byte {i} has packet type {data[0]} (0 to 6)")
        else:
            out.append((str(data[0]), bytes(data[1:])))
        i = stop + 1 + size
    return out


class Session3:
    """One Engine.IO v3 connection: also its :class:`~squall.simulator.core.Link`."""

    def __init__(self, engine: EngineIO3, sid: str, link_id: str) -> None:
        self.engine = engine
        self.eio_sid = sid
        self.id = link_id
        self.feed: Feed | None = None
        self.outbox: deque[str] = deque()  # encoded packets waiting for a poll or the socket
        self.ready = asyncio.Event()  # the outbox has packets (or the session ended)
        self.on_socket = asyncio.Event()  # the WebSocket carries the packets from now on
        self.ws: web.WebSocketResponse | None = None
        self.upgraded = False
        self.upgrading = False  # the probe succeeded, the upgrade packet has not come
        self.polling = False  # a GET is waiting
        self.closed = False
        self.closing = False
        self.close_code: int | None = None
        self.transport: asyncio.Transport | None = None
        self._heartbeat: asyncio.TimerHandle | None = None

    # --- Link ----------------------------------------------------------------------------------

    def send(self, data: str | bytes) -> bool:
        if self.closed or self.closing:
            return False
        self.push(encode_packet(MESSAGE, data))
        return True

    def close(self, code: int, reason: str) -> None:
        if self.closed or self.closing:
            return
        self.close_code = code
        self.closing = True  # the close packet is the last thing out
        self.push(encode_packet(CLOSE))
        # ended once a poll or the socket takes it; at the latest after a ping timeout
        self.engine.loop.call_later(self.engine.ping_timeout, self.end, "server disconnect")

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
        self.end("transport close")

    # --- engine --------------------------------------------------------------------------------

    def push(self, packet: str) -> None:
        self.outbox.append(packet)
        self.ready.set()

    def take(self) -> list[str]:
        packets = list(self.outbox)
        self.outbox.clear()
        self.ready.clear()
        if self.closing and packets and packets[-1] == CLOSE:
            self.engine.loop.call_soon(self.end, "server disconnect")
        return packets

    def alive(self) -> None:
        """A ping (or the handshake): the heartbeat deadline starts again."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        self._heartbeat = self.engine.loop.call_later(
            self.engine.ping_interval + self.engine.ping_timeout, self.end, "ping timeout"
        )

    def receive(self, kind: str, data: str | bytes) -> None:
        if kind == PING:
            self.alive()  # the client is alive; a silenced server just does not answer
            if self.feed is None or not self.feed.silenced:
                self.push(encode_packet(PONG, data))
        elif kind == MESSAGE and self.feed is not None and not self.closed:
            self.feed.receive(data)
        elif kind == CLOSE:
            self.end("client disconnect")
        # PONG, UPGRADE and NOOP outside an upgrade carry nothing

    def end(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        self.ready.set()  # a waiting poll answers at once
        self.engine.sessions.pop(self.eio_sid, None)
        if self.ws is not None and not self.ws.closed:
            self.engine.transport.spawn(self.ws.close())
        if self.feed is not None:
            self.feed.closed(self.close_code, reason)


class EngineIO3:
    """Every v3 connection of one listening port; requests come from ``EngineIOTransport``."""

    def __init__(self, transport: EngineIOTransport, ping_interval: float, ping_timeout: float):
        self.transport = transport
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.sessions: dict[str, Session3] = {}
        self.loop = asyncio.get_running_loop()  # built by Simulator.listen, in the loop

    def owns(self, sid: str | None) -> bool:
        return sid is not None and sid in self.sessions

    async def handle(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        mode = query.get("transport")
        if mode not in ("polling", "websocket"):
            return _error(UNKNOWN_TRANSPORT)
        if "j" in query:
            return _error(BAD_REQUEST, "JSONP polling is not served")
        sid = query.get("sid")
        if sid is None:
            if request.method != "GET":
                return _error(BAD_HANDSHAKE_METHOD)
            return await self._open(request, mode)
        session = self.sessions.get(sid)
        if session is None:
            return _error(UNKNOWN_SID)
        session.transport = request.transport
        if mode == "websocket":
            return await self._upgrade(request, session)
        if session.upgraded:
            return _error(BAD_REQUEST, "the session has upgraded to websocket")
        if request.method == "POST":
            return await self._post(request, session)
        if request.method == "GET":
            return await self._poll(session)
        return _error(BAD_REQUEST)

    async def _open(self, request: web.Request, mode: str) -> web.StreamResponse:
        gate = self.transport.gate
        sid = secrets.token_urlsafe(15)[:20]
        session = Session3(self, sid, gate.new_link_id())
        session.transport = request.transport
        self.sessions[sid] = session
        handshake = {
            "sid": sid,
            "upgrades": ["websocket"] if mode == "polling" else [],
            "pingInterval": int(self.ping_interval * 1000),
            "pingTimeout": int(self.ping_timeout * 1000),
        }
        session.push(encode_packet(OPEN, json.dumps(handshake, separators=(",", ":"))))
        session.alive()
        session.feed = gate.open(session, Handshake(path=request.path_qs, headers=request.headers))
        if mode == "websocket":
            return await self._websocket(request, session, upgrade=False)
        return self._payload(session.take())

    async def _poll(self, session: Session3) -> web.StreamResponse:
        if session.polling:
            session.end("transport error")
            return _error(BAD_REQUEST, "overlapping polls")
        session.polling = True
        try:
            if not session.outbox and not session.closed and not session.upgrading:
                # engine.io 3 noops a poll every 100 ms while upgrading; answering at once
                # does the same: the client pauses polling only once a poll has returned
                wait = self.ping_interval + self.ping_timeout
                with contextlib.suppress(TimeoutError):  # then a noop: poll again
                    await asyncio.wait_for(session.ready.wait(), wait)
        finally:
            session.polling = False
        if session.upgraded:
            return self._payload([NOOP])
        return self._payload(session.take() or [NOOP])

    async def _post(self, request: web.Request, session: Session3) -> web.StreamResponse:
        limit = self.transport.max_payload
        if (request.content_length or 0) > limit:
            size = request.content_length
            detail = f"a long-polling body of {size} bytes is over the {limit}-byte limit"
            if session.feed is not None:
                session.feed.fail(CloseReason.TOO_BIG, detail)
            return _error(BAD_REQUEST, detail)
        body = await request.read()
        try:
            packets = decode_payload(body, request.content_type)
        except PayloadError as exc:
            if session.feed is not None:
                session.feed.fail(CloseReason.BAD_FRAME, f"bad long-polling body: {exc}")
            return _error(BAD_REQUEST, str(exc))
        for kind, data in packets:
            session.receive(kind, data)
        return web.Response(text="ok", content_type="text/html")

    async def _upgrade(self, request: web.Request, session: Session3) -> web.StreamResponse:
        if session.ws is not None or session.upgraded:
            return _error(BAD_REQUEST, "the session has upgraded already")
        return await self._websocket(request, session, upgrade=True)

    async def _websocket(
        self, request: web.Request, session: Session3, *, upgrade: bool
    ) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=self.transport.max_payload)
        await ws.prepare(request)
        session.ws = ws
        if not upgrade:
            session.upgraded = True
            session.on_socket.set()
        writer = self.transport.spawn(self._write(session, ws))
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT and msg.data:
                    kind, data = msg.data[0], msg.data[1:]
                elif msg.type is WSMsgType.BINARY and msg.data:
                    kind, data = str(msg.data[0]), bytes(msg.data[1:])
                else:
                    break
                if not session.upgraded:  # the probe, then the upgrade
                    if kind == PING and data == "probe":
                        await ws.send_str(PONG + "probe")
                        session.upgrading = True  # polls answer at once from now on
                        session.ready.set()  # and the pending one now
                        continue
                    if kind == UPGRADE:
                        session.upgraded, session.upgrading = True, False
                        session.on_socket.set()  # what waited for a poll goes out here
                        continue
                    break
                session.receive(kind, data)
        finally:
            writer.cancel()
            if session.upgraded or not upgrade:
                session.end("transport close")
            else:
                session.ws, session.upgrading = None, False  # a failed upgrade: polling goes on
        return ws

    async def _write(self, session: Session3, ws: web.WebSocketResponse) -> None:
        await session.on_socket.wait()  # until the upgrade completes, polls take the packets
        while not ws.closed:
            await session.ready.wait()
            for packet in session.take():
                if packet.startswith("b"):
                    await ws.send_bytes(bytes([int(packet[1])]) + base64.b64decode(packet[2:]))
                else:
                    await ws.send_str(packet)
            if session.closed:
                await ws.close()

    def _payload(self, packets: list[str]) -> web.Response:
        return web.Response(text=encode_payload(packets), content_type="text/plain")

    async def shutdown(self) -> None:
        for session in list(self.sessions.values()):
            session.close_code = 1001
            session.close(1001, "simulator stopping")
            session.end("simulator stopping")


def _error(error: tuple[int, str], detail: str | None = None) -> web.Response:
    code, message = error
    body: dict[str, Any] = {"code": code, "message": message}
    if detail:
        body["detail"] = detail
    return web.json_response(body, status=400)
