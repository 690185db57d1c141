"""The control plane over HTTP: one route per registered operation, same validation, same code.

``GET  /v1``                  the list of operations with their docs
``GET  /v1/<op>?arg=value``   read operations (sessions, rooms, transcript)
``POST /v1/<op>``             JSON object body = keyword arguments

Errors are ``{"error": sentence, "status": code}`` (400 bad arguments, 401 no
bearer token, 404 unknown session or operation, 409 not possible now). Bound
to 127.0.0.1 by default; bound anywhere else, it refuses to start without a
bearer token.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from .control import OPERATIONS, Control, ControlError

# Operations that take Python objects (callables) stay Python-only.
PYTHON_ONLY_ARGS = {"handler"}


def _error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, "status": status, **extra}, status=status)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build_app(control: Control, *, token: str | None = None) -> web.Application:
    @web.middleware
    async def auth_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        if token is not None:
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return _error(401, "a bearer token is required: Authorization: Bearer <token>")
        return await handler(request)

    async def index(request: web.Request) -> web.Response:
        return web.json_response(
            {name: {"method": spec.method, "doc": spec.doc} for name, spec in OPERATIONS.items()}
        )

    async def call(request: web.Request) -> web.Response:
        name = request.match_info["op"]
        spec = OPERATIONS.get(name)
        if spec is None or not hasattr(control, name):
            return _error(404, f"unknown operation {name!r} (see GET /v1)")
        if request.method != spec.method:
            return _error(405, f"{name} takes {spec.method}, not {request.method}")
        if spec.method == "GET":
            kwargs: dict[str, Any] = dict(request.query)
        else:
            raw = await request.text()
            try:
                kwargs = json.loads(raw) if raw.strip() else {}
            except ValueError as exc:
                return _error(400, f"request body is not valid JSON: {exc}")
            if not isinstance(kwargs, dict):
                return _error(400, "request body must be a JSON object of arguments")
        bad = PYTHON_ONLY_ARGS.intersection(kwargs)
        if bad:
            return _error(400, f"argument(s) {sorted(bad)} are only available from Python")
        try:
            result = getattr(control, name)(**kwargs)
        except ValidationError as exc:
            problems = [
                f"{'.'.join(str(p) for p in e['loc']) or '(body)'}: {e['msg']}"
                for e in exc.errors(include_url=False)
            ]
            return _error(
                400, f"invalid arguments for {name}: " + "; ".join(problems), problems=problems
            )
        except ControlError as exc:
            return _error(exc.status, str(exc))
        return web.json_response({"result": result}, dumps=lambda o: json.dumps(o, default=str))

    app = web.Application(middlewares=[auth_middleware])
    app.router.add_get("/v1", index)
    app.router.add_route("*", "/v1/{op}", call)
    return app


async def start_http_api(
    control: Control, *, host: str = "127.0.0.1", port: int = 0, token: str | None = None
) -> tuple[web.AppRunner, str]:
    """Serve the control API; returns its runner (``await runner.cleanup()``) and URL."""
    if token is None and not _is_loopback(host):
        raise ControlError(
            f"refusing to expose the control API on {host} without a bearer token (pass one)"
        )
    runner = web.AppRunner(build_app(control, token=token), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0]
    shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
    return runner, f"http://{shown}:{bound[1]}/v1"
