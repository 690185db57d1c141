"""The control plane over HTTP: one route per registered operation, same validation, same code.

``GET  /v1``                  the list of operations with their docs and parameters
``GET  /v1/openapi.json``     the OpenAPI 3.1 document of all of this (``openapi.py``)
``GET  /v1/<op>?arg=value``   read operations (sessions, rooms, transcript)
``POST /v1/<op>``             JSON object body = keyword arguments

Errors are ``{"error": sentence, "status": code}`` (400 bad arguments, 401 no
bearer token, 404 unknown session or operation, 405 wrong method, 409 not
possible now, 413 body too large), and every answer is JSON, aiohttp's own
refusals included. A refused call has had no effect. Bound to 127.0.0.1 by
default; bound anywhere else, it refuses to start without a bearer token.

Limits: a body is at most :data:`MAX_BODY` bytes of UTF-8 JSON (strict: no
``NaN``, no ``Infinity``, no number too large for a float) and nests at most
:data:`~squall.simulator.control.MAX_DEPTH` levels inside an argument. A request
line or header over 8190 bytes is refused by aiohttp's HTTP parser before this code
runs (a plain-text 400). docs/protocol.md §9 lists every limit.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import math
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .control import (
    MAX_DEPTH,
    OPERATIONS,
    Control,
    ControlError,
    InvalidArguments,
    did_you_mean,
)

# Operations that take Python objects (callables) stay Python-only.
PYTHON_ONLY_ARGS = {"handler"}

#: Largest request body: room for a ``send`` of a frame bigger than the default 1 MiB
#: ``max_message_size`` even when every character is written as a ``\\uXXXX`` escape.
MAX_BODY = 8 << 20

#: Where the OpenAPI document is served (not an operation: the name is no identifier).
OPENAPI_PATH = "/v1/openapi.json"

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, "status": status, **extra}, status=status)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class BadBody(ValueError):
    """A request body that is not a JSON object of arguments; the message is the sentence."""


def _no_constant(name: str) -> Any:
    raise BadBody(f"request body is not valid JSON: {name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BadBody(f"request body is not valid JSON: {text} is out of range for a number")
    return value


def parse_body(raw: bytes) -> dict[str, Any]:
    """The keyword arguments in a POST body, or :class:`BadBody` saying what is wrong."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadBody(
            f"request body is not valid UTF-8: {exc.reason} at byte {exc.start}"
        ) from None
    if not text.strip():
        return {}
    try:
        kwargs = json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except BadBody:
        raise
    except RecursionError:
        raise BadBody(
            f"request body nests too deeply to parse (arguments may nest {MAX_DEPTH} levels)"
        ) from None
    except ValueError as exc:  # JSONDecodeError, or an integer too long to convert
        raise BadBody(f"request body is not valid JSON: {exc}") from None
    if not isinstance(kwargs, dict):
        raise BadBody("request body must be a JSON object of arguments")
    return kwargs


def build_app(control: Control, *, token: str | None = None) -> web.Application:
    @web.middleware
    async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        """aiohttp's own refusals (no such route, body too large) as sentences, and a bug as
        a 500 sentence rather than a traceback."""
        try:
            return await handler(request)
        except web.HTTPRequestEntityTooLarge:
            return _error(413, f"request body is larger than {MAX_BODY} bytes")
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            if exc.status == 404:
                return _error(404, f"no such path {request.path!r} (operations are under /v1)")
            return _error(exc.status, f"{exc.reason}: {request.method} {request.path}")
        except Exception as exc:
            log.exception("control API: %s %s failed", request.method, request.path)
            return _error(500, f"internal error in the simulator: {type(exc).__name__}")

    @web.middleware
    async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if token is not None:
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return _error(401, "a bearer token is required: Authorization: Bearer <token>")
        return await handler(request)

    async def index(request: web.Request) -> web.Response:
        return web.json_response(
            {
                name: {"method": spec.method, "doc": spec.doc, "params": list(spec.params)}
                for name, spec in OPERATIONS.items()
                if hasattr(control, name)
            }
        )

    document: dict[str, Any] = {}

    async def openapi(request: web.Request) -> web.Response:
        if request.method != "GET":
            return _error(405, f"{OPENAPI_PATH} takes GET, not {request.method}")
        if not document:
            from .openapi import openapi_document  # it imports this module's limits

            document.update(openapi_document(control, auth=token is not None))
        return web.json_response(document)

    async def call(request: web.Request) -> web.Response:
        name = request.match_info["op"]
        spec = OPERATIONS.get(name)
        if spec is None or not hasattr(control, name):
            known = [op for op in OPERATIONS if hasattr(control, op)]
            return _error(
                404, f"unknown operation {name!r} ({did_you_mean(name, known)}see GET /v1)"
            )
        if request.method != spec.method:
            return _error(405, f"{name} takes {spec.method}, not {request.method}")
        if spec.method == "GET":
            kwargs: dict[str, Any] = {}
            for key, value in request.query.items():
                if key in kwargs:
                    return _error(400, f"invalid arguments for {name}: {key}: given more than once")
                kwargs[key] = value
        else:
            try:
                kwargs = parse_body(await request.read())
            except BadBody as exc:
                return _error(400, str(exc))
        bad = PYTHON_ONLY_ARGS.intersection(kwargs)
        if bad:
            return _error(400, f"argument(s) {sorted(bad)} are only available from Python")
        try:
            result = getattr(control, name)(**kwargs)
        except ControlError as exc:
            extra = {"problems": exc.problems} if isinstance(exc, InvalidArguments) else {}
            return _error(exc.status, str(exc), **extra)
        return web.json_response({"result": result}, dumps=lambda o: json.dumps(o, default=str))

    app = web.Application(middlewares=[json_errors, auth_middleware], client_max_size=MAX_BODY)
    app.router.add_get("/v1", index)
    app.router.add_route("*", OPENAPI_PATH, openapi)
    app.router.add_route("*", "/v1/{op}", call)
    return app


async def start_http_api(
    control: Control,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    token: str | None = None,
    tls: ssl.SSLContext | None = None,
) -> tuple[web.AppRunner, str]:
    """Serve the control API (https with ``tls``); returns its runner
    (``await runner.cleanup()``) and URL."""
    if token is None and not _is_loopback(host):
        raise ControlError(
            f"refusing to expose the control API on {host} without a bearer token (pass one)"
        )
    runner = web.AppRunner(build_app(control, token=token), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=tls)
    await site.start()
    bound = runner.addresses[0]
    shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
    return runner, f"{'https' if tls else 'http'}://{shown}:{bound[1]}/v1"
