"""Toxiproxy 2.12's HTTP API (``api.go``) as an aiohttp application.

Wire details kept on purpose, because real clients see them: success bodies
are compact JSON with ``Content-Type: application/json``; errors are
``{"error": msg, "status": code}`` plus a newline, sent like Go's
``http.Error`` (``text/plain; charset=utf-8``, ``X-Content-Type-Options:
nosniff``); every response to a matched route has an
``X-Toxiproxy-Request-Id``; browsers (``User-Agent: Mozilla/...``) get 403
there; a handler still busy after 25 s answers 503 with an empty body and
finishes in the background.

Before routing, as gorilla/mux does: a path that is not clean (``//proxies``,
``/a/../version``) is answered 301 to its cleaned form; an unknown path is a
plain ``404 page not found`` and a known path with the wrong method an empty
405, both without the middlewares (no request id, no browser check). A path
whose escapes do not decode is Go's ``400 Bad Request``.

A handler that fails unexpectedly answers a JSON 500 (``{"error": ...,
"status": 500}``, never a traceback) and records an ``api.error`` event, so
tests can tell it from Toxiproxy's own 500s (bind errors).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import traceback
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from aiohttp import web

from .collection import ProxyCollection, decode_json
from .errors import ApiError

TOXIPROXY_VERSION = "2.12.0"
HANDLER_TIMEOUT = 25.0
COLLECTION: web.AppKey[ProxyCollection] = web.AppKey("collection", ProxyCollection)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def request_id() -> str:
    """An xid-shaped id (20 base32hex characters), like zerolog's ``hlog.RequestIDHandler``."""
    return base64.b32hexencode(os.urandom(12)).decode().rstrip("=").lower()[:20]


def dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def ok(value: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=dump(value).encode(), status=status, headers={"Content-Type": "application/json"}
    )


def error(exc: ApiError) -> web.Response:
    return web.Response(
        text=dump(exc.to_json()) + "\n",
        status=exc.status,
        headers={"Content-Type": "text/plain; charset=utf-8", "X-Content-Type-Options": "nosniff"},
    )


def plain(text: str, status: int) -> web.Response:
    return web.Response(
        text=text,
        status=status,
        headers={"Content-Type": "text/plain; charset=utf-8", "X-Content-Type-Options": "nosniff"},
    )


_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")


def go_path(raw_path: str) -> str | None:
    """Go's ``URL.Path`` of a request target: percent escapes decoded, None if one is invalid."""
    path = raw_path.split("?", 1)[0].split("#", 1)[0]
    if "%" in _ESCAPE.sub("", path):
        return None
    raw = _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), path)
    return raw.encode("latin-1", "surrogateescape").decode("utf-8", "surrogateescape")


def clean_path(path: str) -> str:
    """gorilla/mux's ``cleanPath``: Go's ``path.Clean`` keeping a trailing slash."""
    if not path:
        return "/"
    if not path.startswith("/"):
        path = "/" + path
    parts: list[str] = []
    for part in path.split("/"):
        if part == "..":
            if parts:
                parts.pop()
        elif part and part != ".":
            parts.append(part)
    clean = "/" + "/".join(parts)
    if path.endswith("/") and clean != "/":
        clean += "/"
    return clean


def _unrouted(request: web.Request) -> web.StreamResponse | None:
    """What gorilla/mux answers before (or instead of) a matched route's middlewares."""
    path = go_path(request.raw_path)
    if path is None:  # Go's net/http refuses the request line itself
        return web.Response(
            text="400 Bad Request",
            status=400,
            headers={"Content-Type": "text/plain; charset=utf-8", "Connection": "close"},
        )
    clean = clean_path(path)
    if clean != path:
        # Go writes the cleaned path re-escaped (URL.String) and the raw query after it.
        location = quote(clean.encode("utf-8", "surrogateescape"), safe="$&+,/:;=@")
        query = request.raw_path.partition("?")[2].partition("#")[0]
        if query:
            location += "?" + quote(query, safe="%/?=&;:@+,$!'()*")
        return web.Response(status=301, headers={"Location": location})
    exc = request.match_info.http_exception
    # aiohttp decodes %2F inside a {name}; Go routes on the decoded path, where it is a slash.
    if exc is None and not any("/" in v for v in request.match_info.values()):
        return None
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return web.Response(status=405, body=b"")  # gorilla/mux: empty body
    return plain("404 page not found\n", 404)


@web.middleware
async def toxiproxy_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    answer = _unrouted(request)
    if answer is not None:
        return answer
    rid = request_id()
    response = await _guarded(request, handler)
    response.headers["X-Toxiproxy-Request-Id"] = rid
    return response


async def _guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.headers.get("User-Agent", "").startswith("Mozilla/"):
        return plain("User agent not allowed\n", 403)
    task = asyncio.ensure_future(_handle(request, handler))
    # real seconds, whatever the clock: Go's TimeoutHandler guards an HTTP request, not a toxic
    done, _ = await asyncio.wait({task}, timeout=HANDLER_TIMEOUT)
    if not done:
        return web.Response(status=503, body=b"")  # Go's TimeoutHandler(…, 25s, "")
    return task.result()


async def _handle(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error(exc)
    except web.HTTPMethodNotAllowed:
        return web.Response(status=405, body=b"")  # gorilla/mux: empty body
    except web.HTTPNotFound:
        return plain("404 page not found\n", 404)
    except web.HTTPException:
        raise
    except Exception as exc:  # a bug: answer like Go's apiError for an untyped error, and say so
        request.app[COLLECTION].log_api_error(
            request.method, request.path, repr(exc), traceback.format_exc()
        )
        return error(ApiError(f"internal error: {type(exc).__name__}", 500))


async def _body(request: web.Request) -> Any:
    return decode_json(await request.read())


def _coll(request: web.Request) -> ProxyCollection:
    return request.app[COLLECTION]


async def proxy_index(request: web.Request) -> web.Response:
    return ok({name: p.to_json() for name, p in _coll(request).proxies.items()})


async def proxy_create(request: web.Request) -> web.Response:
    proxy = await _coll(request).create(await _body(request))
    return ok(proxy.to_json(), 201)


async def populate(request: web.Request) -> web.Response:
    """Always answered as JSON with ``proxies`` (``null`` when none), even on error."""
    try:
        proxies, exc = await _coll(request).populate(await _body(request))
    except ApiError as e:
        proxies, exc = [], e
    out: dict[str, Any] = exc.to_json() if exc is not None else {}
    out["proxies"] = [p.to_json() for p in proxies] or None
    return ok(out, exc.status if exc is not None else 201)


async def proxy_show(request: web.Request) -> web.Response:
    return ok(_coll(request).get(request.match_info["proxy"]).to_json())


async def proxy_update(request: web.Request) -> web.Response:
    coll = _coll(request)
    name = request.match_info["proxy"]
    coll.get(name)  # 404 before the body is read, as in Go
    proxy = await coll.update(name, await _body(request))
    return ok(proxy.to_json())


async def proxy_delete(request: web.Request) -> web.Response:
    await _coll(request).delete(request.match_info["proxy"])
    return web.Response(status=204)


async def toxic_index(request: web.Request) -> web.Response:
    proxy = _coll(request).get(request.match_info["proxy"])
    return ok([t.to_json() for t in proxy.toxics()])


async def toxic_create(request: web.Request) -> web.Response:
    coll = _coll(request)
    name = request.match_info["proxy"]
    coll.get(name)
    spec = await coll.add_toxic(name, await _body(request))
    return ok(spec.to_json())


async def toxic_show(request: web.Request) -> web.Response:
    m = request.match_info
    return ok(_coll(request).get_toxic(m["proxy"], m["toxic"]).to_json())


async def toxic_update(request: web.Request) -> web.Response:
    m = request.match_info
    coll = _coll(request)
    coll.get_toxic(m["proxy"], m["toxic"])
    spec = await coll.update_toxic(m["proxy"], m["toxic"], await _body(request))
    return ok(spec.to_json())


async def toxic_delete(request: web.Request) -> web.Response:
    m = request.match_info
    await _coll(request).remove_toxic(m["proxy"], m["toxic"])
    return web.Response(status=204)


async def reset(request: web.Request) -> web.Response:
    await _coll(request).reset()
    return web.Response(status=204)


async def version(request: web.Request) -> web.Response:
    return web.Response(
        text=f'{{"version": "{TOXIPROXY_VERSION}"}}\n',
        headers={"Content-Type": "application/json;charset=utf-8"},
    )


def make_app(collection: ProxyCollection) -> web.Application:
    app = web.Application(middlewares=[toxiproxy_middleware], client_max_size=16 * 1024 * 1024)
    app[COLLECTION] = collection
    r = app.router
    r.add_post("/reset", reset)
    r.add_get("/proxies", proxy_index, allow_head=False)
    r.add_post("/proxies", proxy_create)
    r.add_post("/populate", populate)
    r.add_get("/proxies/{proxy}", proxy_show, allow_head=False)
    r.add_post("/proxies/{proxy}", proxy_update)
    r.add_patch("/proxies/{proxy}", proxy_update)
    r.add_delete("/proxies/{proxy}", proxy_delete)
    r.add_get("/proxies/{proxy}/toxics", toxic_index, allow_head=False)
    r.add_post("/proxies/{proxy}/toxics", toxic_create)
    r.add_get("/proxies/{proxy}/toxics/{toxic}", toxic_show, allow_head=False)
    r.add_post("/proxies/{proxy}/toxics/{toxic}", toxic_update)
    r.add_patch("/proxies/{proxy}/toxics/{toxic}", toxic_update)
    r.add_delete("/proxies/{proxy}/toxics/{toxic}", toxic_delete)
    r.add_get("/version", version, allow_head=False)
    return app
