"""The HTTP face of a dialect: the routes its real service serves beside the WebSocket.

RingCentral's ``POST /restapi/oauth/wstoken``, Genesys's channel and
subscription API, Engine.IO's long-polling: each dialect lists its
:class:`~squall.simulator.seam.Route` objects, served here on a port of
their own (``Simulator.http_url``). A handler that raises gets a JSON 500 that
names the error, and the server keeps serving.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .seam import Dialect
from .transcript import redact_url

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

log = logging.getLogger(__name__)


def build_app(dialect: Dialect) -> web.Application:
    app = web.Application(client_max_size=1 << 20)
    for route in dialect.routes():
        app.router.add_route(route.method, route.path, _guarded(route.handler))
    return app


def recorded(dialect: Dialect, handler: Handler) -> Handler:
    """``handler``, with each request it answers in the transcript (``dialect_http``: the
    method, the path with credentials redacted, the status), as every REST prelude records."""

    async def run(request: web.Request) -> web.StreamResponse:
        response = await handler(request)
        dialect.core.transcript.record(
            "dialect_http",
            dialect=dialect.name,
            method=request.method,
            path=redact_url(request.path_qs),
            status=response.status,
        )
        return response

    return run


def _guarded(handler: Any) -> Any:
    async def run(request: web.Request) -> web.StreamResponse:
        try:
            response: web.StreamResponse = await handler(request)
        except web.HTTPException:
            raise
        except Exception as exc:  # a dialect bug costs one request, never the server
            log.exception("dialect route %s %s failed", request.method, request.path)
            return web.json_response(
                {"error": "internal_error", "message": f"{type(exc).__name__}: {exc}"}, status=500
            )
        return response

    return run


async def start_dialect_http(
    dialect: Dialect, host: str = "127.0.0.1", *, tls: ssl.SSLContext | None = None
) -> tuple[web.AppRunner, str]:
    """Serve a dialect's routes on a free port (https with ``tls``); returns the runner and
    the base URL."""
    runner = web.AppRunner(build_app(dialect), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, 0, ssl_context=tls)
    await site.start()
    bound = runner.addresses[0]
    shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
    return runner, f"{'https' if tls else 'http'}://{shown}:{bound[1]}"
