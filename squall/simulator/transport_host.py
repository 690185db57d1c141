"""Serving a dialect that brings its own transport (``Dialect.transport``), beside the core.

The WebSocket endpoint (``server.py``) hands each socket to the core itself. A dialect
whose clients speak something else (Socket.IO: Engine.IO long-polling and a WebSocket
upgrade on one path) runs its transport on an aiohttp app instead, one per listening port,
and reaches the core through a :class:`SimulatorGate`: the same ``core.connect`` /
``core.receive`` / ``core.disconnected`` calls, the same guard against a dialect bug, the
same scripted refusals. So the control plane, the transcript and faults see its
connections like any other.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable

from aiohttp import web

from .core import Connection, Link, SimulatorCore
from .dialect_http import build_app
from .seam import CloseReason, Dialect, Handshake, Transport

log = logging.getLogger(__name__)


class CoreFeed:
    """One connection of a dialect's own transport, feeding the core."""

    __slots__ = ("conn", "core")

    def __init__(self, core: SimulatorCore, conn: Connection) -> None:
        self.core = core
        self.conn = conn

    def receive(self, data: str | bytes) -> None:
        try:
            self.core.receive(self.conn, data)
        except Exception as exc:  # a bug must cost one session, never the server
            log.exception("dialect %s failed on a frame", self.conn.dialect)
            self.core.transcript.record("internal_error", conn=self.conn.sid, error=repr(exc))
            self.core.close(
                self.conn, CloseReason.INTERNAL_ERROR, f"internal error: {type(exc).__name__}"
            )

    def closed(self, code: int | None, reason: str) -> None:
        self.core.disconnected(self.conn, code, reason)

    def fail(self, reason: CloseReason, detail: str) -> None:
        self.core.close(self.conn, reason, detail)

    @property
    def silenced(self) -> bool:
        return self.conn.silenced


class SimulatorGate:
    """The :class:`~squall.simulator.seam.Gate` of one Simulator."""

    def __init__(
        self, core: SimulatorCore, dialect: Dialect, refusal: Callable[[str], int | None]
    ) -> None:
        self.core = core
        self.dialect = dialect
        self._refusal = refusal

    def new_link_id(self) -> str:
        return self.core.new_connection_id()

    def refusal(self, path: str) -> int | None:
        return self._refusal(path)

    def open(self, link: Link, handshake: Handshake) -> CoreFeed:
        wire, credentials = self.dialect.open(link.id, handshake)
        return CoreFeed(self.core, self.core.connect(link, wire, credentials, path=handshake.path))


async def serve_transport(
    dialect: Dialect,
    transport: Transport,
    host: str,
    port: int = 0,
    *,
    tls: ssl.SSLContext | None = None,
) -> tuple[web.AppRunner, str]:
    """The dialect's routes and its transport on one app, listening on ``host:port``.

    Returns the runner and the endpoint URL (``http://host:port/``, https with ``tls``)."""
    app = build_app(dialect)
    transport.mount(app)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=tls)
    await site.start()
    bound = runner.addresses[0]
    shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
    return runner, f"{'https' if tls else 'http'}://{shown}:{bound[1]}/"
