"""A thin signalling connection over websockets, for the WebRTC extension.

Stand-in until the reference client's asyncio driver (``StreamingClient``) is
available: it speaks just enough of docs/protocol.md for rooms (§2 auth by URL
token, §3 answering server pings, §8 join/leave/signal/track frames) and gives
every server frame to one callback. It reconnects when the connection drops
(not after ``auth_failed``, §2) and rejoins its room with ``prev_sid`` and the
same ``permanent_id``, so the server re-keys it (``peer_sid_reassigned``).

Everything else a real client does (keepalive pings, recovery, backoff with
jitter, failover) is the reference client's job, not this adapter's. It has no
clock: its timeouts and its pause between attempts are real seconds that guard a
socket against a broken server, not protocol durations.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

log = logging.getLogger(__name__)

Frame = dict[str, Any]
RECONNECT_DELAY = 0.05  # real seconds between attempts; this adapter does not do backoff


class SignallingError(Exception):
    """The signalling server refused something (``auth_failed``, an ``error`` answer)."""


class WireSignalling:
    """One WebSocket to the simulator (or any reference-protocol server), frames to ``on_frame``."""

    def __init__(
        self,
        urls: Sequence[str],
        token: str,
        on_frame: Callable[[Frame], None],
        *,
        reconnect: bool = True,
    ) -> None:
        if not urls:
            raise ValueError("at least one URL is needed")
        self.urls = list(urls)
        self.token = token
        self.on_frame = on_frame
        self.auto_reconnect = reconnect
        self.sid: str | None = None
        self.room: str | None = None
        self.permanent_id: str | None = None
        self.state = "setup"  # RTCCafe: setup, connected, reconnecting, closed
        self.connections = 0
        self._ws: ClientConnection | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Frame]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._authenticated: asyncio.Future[Frame] | None = None
        self._closing = False

    async def connect(self, timeout: float = 10.0) -> Frame:
        """Open the socket and wait for ``authenticated``; returns that frame."""
        url = self.urls[self.connections % len(self.urls)]
        parts = urlsplit(url)
        query = "&".join(q for q in (parts.query, urlencode({"token": self.token})) if q)
        self._ws = await connect(
            urlunsplit(parts._replace(query=query)), compression=None, proxy=None, max_size=None
        )
        self.connections += 1
        self._authenticated = asyncio.get_running_loop().create_future()
        self._reader = asyncio.ensure_future(self._read(self._ws))
        frame = await asyncio.wait_for(self._authenticated, timeout)  # real s: a socket guard
        self.sid = frame["sid"]
        self.state = "connected"
        return frame

    async def join(
        self, room: str, *, permanent_id: str | None = None, prev_sid: str | None = None
    ) -> Frame:
        """Join ``room`` (§8); returns ``joined`` (which ``on_frame`` has seen too)."""
        self.room = room
        self.permanent_id = permanent_id or self.permanent_id
        frame: Frame = {"type": "join", "room": room}
        if self.permanent_id:
            frame["permanent_id"] = self.permanent_id
        if prev_sid:
            frame["prev_sid"] = prev_sid
        joined = await self.request(frame)
        self.permanent_id = joined["permanent_id"]
        return joined

    async def leave(self, room: str) -> Frame:
        answer = await self.request({"type": "leave", "room": room})
        self.room = None
        return answer

    async def request(self, frame: Frame, timeout: float = 10.0) -> Frame:
        """Send a frame with a fresh ``id`` and wait for the answer carrying it."""
        ident = next(self._ids)
        fut: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self._pending[ident] = fut
        self.send({**frame, "id": ident})
        try:
            answer = await asyncio.wait_for(fut, timeout)  # real seconds: a guard, see above
        finally:
            self._pending.pop(ident, None)
        if answer.get("type") == "error":
            raise SignallingError(f"{answer.get('code')}: {answer.get('message')}")
        return answer

    def send(self, frame: Frame) -> None:
        """Queue one frame; frames are written in order. Dropped (and logged) while offline."""
        ws = self._ws
        if ws is None or self.state != "connected":
            log.info("signalling offline, dropped %s", frame.get("type"))
            return
        task = asyncio.ensure_future(self._write(ws, json.dumps(frame)))
        task.add_done_callback(_log_failure)

    @staticmethod
    async def _write(ws: ClientConnection, text: str) -> None:
        with contextlib.suppress(ConnectionClosed):
            await ws.send(text)

    async def _read(self, ws: ClientConnection) -> None:
        code: int | None = None
        try:
            async for raw in ws:
                frame = json.loads(raw)
                self._dispatch(frame)
        except ConnectionClosed:
            pass
        finally:
            code = ws.close_code
        if ws is self._ws:
            await self._lost(code)

    def _dispatch(self, frame: Frame) -> None:
        kind = frame.get("type")
        if kind == "authenticated" and self._authenticated and not self._authenticated.done():
            self._authenticated.set_result(frame)
        elif kind == "auth_failed":
            self.auto_reconnect = False  # §2: an auth failure is final
            if self._authenticated and not self._authenticated.done():
                self._authenticated.set_exception(SignallingError(f"auth_failed: {frame}"))
        elif kind == "ping":
            self.send({"type": "pong", "id": frame.get("id")})
        ident = frame.get("id")
        if isinstance(ident, int) and ident in self._pending and kind != "ping":
            fut = self._pending.pop(ident)
            if not fut.done():
                fut.set_result(frame)
        self.on_frame(frame)

    async def _lost(self, code: int | None) -> None:
        if self._closing or not self.auto_reconnect:
            self.state = "closed"
            return
        self.state = "reconnecting"
        log.info("signalling lost (close %s), reconnecting", code)
        await self.rejoin()

    async def rejoin(self) -> None:
        """Connect again and rejoin the room as the same member (new sid, ``prev_sid`` = old)."""
        old_sid = self.sid
        while not self._closing:
            try:
                await self.connect()
                break
            except (OSError, TimeoutError, ConnectionClosed) as exc:
                log.info("signalling reconnect failed: %r", exc)
                await asyncio.sleep(RECONNECT_DELAY)  # real seconds between socket attempts
        if self.room is not None and not self._closing:
            await self.join(self.room, permanent_id=self.permanent_id, prev_sid=old_sid)

    async def drop(self) -> None:
        """Cut the socket without a close handshake (as a network failure would); it reconnects."""
        if self._ws is not None and self._ws.transport is not None:
            self._ws.transport.abort()

    async def close(self) -> None:
        self._closing = True
        self.state = "closed"
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("signalling write failed: %r", task.exception())
