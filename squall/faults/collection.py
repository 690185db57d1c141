"""Every proxy of one server, and every control operation on them.

This is the one implementation behind the HTTP API and the Python API: it
takes decoded JSON values, applies Toxiproxy 2.12's rules (``api.go``,
``proxy_collection.go``, ``toxic_collection.go``) and raises
:class:`~squall.faults.errors.ApiError` with Toxiproxy's status and words.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..clock import Clock
from .addresses import AddressError, format_hostport, resolve, split_address
from .errors import (
    BAD_REQUEST_BODY,
    INVALID_STREAM,
    INVALID_TOXIC_TYPE,
    MISSING_FIELD,
    PROXY_EXISTS,
    PROXY_NOT_FOUND,
    TOXIC_EXISTS,
    TOXIC_NOT_FOUND,
    ApiError,
)
from .events import EventLog, FaultEvent
from .gojson import JsonSyntaxError, decode
from .proxy import DEFAULT_LISTEN_HOST, Proxy, ToxicSpec, parse_direction
from .toxics import _json_kind, decode_field, lookup, new_toxic

PROXY_STRUCT = "toxiproxy.Proxy"
POPULATE_TYPE = '[]struct { toxiproxy.Proxy; Enabled *bool "json:\\"enabled\\"" }'


def decode_json(raw: bytes) -> Any:
    """Go's ``json.NewDecoder(body).Decode``: the first JSON value; trailing bytes ignored."""
    try:
        return decode(raw)
    except JsonSyntaxError as exc:
        raise BAD_REQUEST_BODY.joined(str(exc)) from None


def _fields(body: Any, gotype: str, spec: dict[str, str], where: str) -> dict[str, Any]:
    """Decode a JSON object onto a Go struct's fields (``spec``: name -> Go type)."""
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise BAD_REQUEST_BODY.joined(
            f"json: cannot unmarshal {_json_kind(body)} into Go value of type {gotype}"
        )
    out: dict[str, Any] = {}
    for key, kind in spec.items():
        found, value = lookup(body, key)
        if found and value is not None:
            out[key] = decode_field(value, kind, f"{where}.{key}")
    return out


PROXY_FIELDS = {
    "name": "string",
    "listen": "string",
    "upstream": "string",
    "enabled": "bool",
    "seed": "int64",
}
TOXIC_FIELDS = {"name": "string", "type": "string", "stream": "string", "toxicity": "float32"}


async def resolve_listen(listen: str) -> str:
    """Go's ``net.ResolveTCPAddr(...).String()``, used to decide if a listen changed.

    Errors are Go's, unprefixed, as ``Proxy.Differs`` returns them (a 500).
    """
    try:
        host, port = split_address(listen) if listen else (DEFAULT_LISTEN_HOST, 0)
        if host:
            host = (await resolve(host, port))[1][0]
    except AddressError as exc:
        raise ApiError(str(exc), 500) from None
    return format_hostport(host, port) if host else f":{port}"


class ProxyCollection:
    """The proxies of one server, keyed by name."""

    def __init__(
        self, clock: Clock, log: EventLog, seed: int, *, fast_path: bool | None = None
    ) -> None:
        self.clock = clock
        self.log = log
        self.seed = seed
        self.fast_path = fast_path  # None: splice where it can run (proxy.Proxy)
        self.proxies: dict[str, Proxy] = {}
        # Go's ProxyCollection lock: proxy creation, replacement, update and removal are
        # serialized (each awaits a bind or a close); toxic changes take the proxy's own lock.
        self.lock = asyncio.Lock()

    def _new(self, fields: dict[str, Any]) -> Proxy:
        return Proxy(
            fields.get("name", ""),
            fields.get("listen", ""),
            fields.get("upstream", ""),
            clock=self.clock,
            log=self.log,
            seed=fields.get("seed"),
            server_seed=self.seed,
            fast_path=self.fast_path,
        )

    def log_api_error(self, method: str, path: str, error: str, trace: str) -> None:
        """Record a request that failed with an unexpected exception (an ``api.error`` event)."""
        detail = {"method": method, "path": path, "error": error, "traceback": trace}
        self.log.emit(
            FaultEvent(time=self.clock.now(), proxy="", action="api.error", detail=detail)
        )

    def get(self, name: str) -> Proxy:
        try:
            return self.proxies[name]
        except KeyError:
            raise PROXY_NOT_FOUND from None

    async def create(self, body: Any) -> Proxy:
        fields = _fields(body, PROXY_STRUCT, PROXY_FIELDS, "Proxy")
        if not fields.get("name"):
            raise MISSING_FIELD.joined("name")
        if not fields.get("upstream"):
            raise MISSING_FIELD.joined("upstream")
        async with self.lock:
            if fields["name"] in self.proxies:
                raise PROXY_EXISTS
            proxy = self._new(fields)
            if fields.get("enabled", True):
                await proxy.start()
            self.proxies[proxy.name] = proxy
            return proxy

    async def populate(self, body: Any) -> tuple[list[Proxy], ApiError | None]:
        """Create or replace proxies; one equal to an existing proxy keeps it and its toxics."""
        if not isinstance(body, list):
            raise BAD_REQUEST_BODY.joined(
                f"json: cannot unmarshal {_json_kind(body)} into Go value of type {POPULATE_TYPE}"
            )
        inputs = [_fields(item, PROXY_STRUCT, PROXY_FIELDS, "Proxy") for item in body]
        for i, fields in enumerate(inputs, 1):
            if not fields.get("name"):
                raise MISSING_FIELD.joined(f"name at proxy {i}")
            if not fields.get("upstream"):
                raise MISSING_FIELD.joined(f"upstream at proxy {i}")
        done: list[Proxy] = []
        for fields in inputs:
            try:
                async with self.lock:
                    done.append(await self._add_or_replace(fields))
            except ApiError as exc:
                return done, exc
        return done, None

    async def _add_or_replace(self, fields: dict[str, Any]) -> Proxy:
        existing = self.proxies.get(fields["name"])
        if existing is not None:
            if not await self._differs(existing, fields.get("listen", ""), fields["upstream"]):
                return existing
            await existing.stop()
        proxy = self._new(fields)
        if fields.get("enabled", True):
            await proxy.start()
        self.proxies[proxy.name] = proxy
        return proxy

    @staticmethod
    async def _differs(proxy: Proxy, listen: str, upstream: str) -> bool:
        return proxy.listen != await resolve_listen(listen) or proxy.upstream != upstream

    async def update(self, name: str, body: Any) -> Proxy:
        fields = _fields(body, PROXY_STRUCT, PROXY_FIELDS, "Proxy")
        async with self.lock:
            proxy = self.get(name)
            listen = fields.get("listen", proxy.listen)
            upstream = fields.get("upstream", proxy.upstream)
            enabled = fields.get("enabled", proxy.enabled)
            if await self._differs(proxy, listen, upstream):
                await proxy.stop()
                proxy.listen, proxy.upstream = listen, upstream
            if "seed" in fields:
                proxy.seed_option = proxy.seed = fields["seed"]
            if enabled != proxy.enabled:
                if enabled:
                    await proxy.start()
                else:
                    await proxy.stop()
            return proxy

    async def delete(self, name: str) -> None:
        async with self.lock:
            await self._delete(name)

    async def _delete(self, name: str) -> None:
        proxy = self.get(name)
        await proxy.stop()
        del self.proxies[name]

    async def reset(self) -> None:
        async with self.lock:
            for proxy in list(self.proxies.values()):
                await proxy.start()
                async with proxy.toxics_lock:
                    await proxy.reset_toxics()

    async def clear(self) -> None:
        async with self.lock:
            for name in list(self.proxies):
                await self._delete(name)

    # -- toxics -------------------------------------------------------------------------------
    def get_toxic(self, proxy_name: str, toxic_name: str) -> ToxicSpec:
        spec = self.get(proxy_name).find(toxic_name)
        if spec is None:
            raise TOXIC_NOT_FOUND
        return spec

    async def add_toxic(self, proxy_name: str, body: Any) -> ToxicSpec:
        proxy = self.get(proxy_name)
        fields = _fields(body, "toxics.ToxicWrapper", TOXIC_FIELDS, "ToxicWrapper")
        _, raw_attrs = lookup(body, "attributes") if isinstance(body, dict) else (False, None)
        if raw_attrs is not None and not isinstance(raw_attrs, dict):
            raise BAD_REQUEST_BODY.joined(
                f"json: cannot unmarshal {_json_kind(raw_attrs)} into Go struct field "
                "ToxicWrapper.attributes of type toxics.Toxic"
            )
        stream = fields.get("stream", "downstream")
        direction = parse_direction(stream)
        if direction is None:
            raise INVALID_STREAM
        type_name = fields.get("type", "")
        name = fields.get("name") or f"{type_name}_{stream}"
        toxic = new_toxic(type_name)
        if toxic is None:
            raise INVALID_TOXIC_TYPE
        async with proxy.toxics_lock:
            if proxy.find(name) is not None:
                raise TOXIC_EXISTS
            toxic.merge(raw_attrs)
            spec = ToxicSpec(
                name=name,
                type=type_name,
                stream=stream,
                toxicity=fields.get("toxicity", 1.0),
                direction=direction,
                toxic=toxic,
            )
            proxy.add_toxic(spec)
            proxy.emit(
                "toxic.add", toxic=name, type=type_name, stream=stream, toxicity=spec.toxicity
            )
            return spec

    async def update_toxic(self, proxy_name: str, toxic_name: str, body: Any) -> ToxicSpec:
        """Merge ``attributes`` and set ``toxicity``; a ``null`` body changes nothing (Go: 200)."""
        proxy = self.get(proxy_name)
        async with proxy.toxics_lock:
            spec = proxy.find(toxic_name)
            if spec is None:
                raise TOXIC_NOT_FOUND
            fields = _fields(
                body,
                "struct { Attributes interface {}; Toxicity float32 }",
                {"toxicity": "float32"},
                "Toxicity",
            )
            _, raw_attrs = lookup(body, "attributes") if isinstance(body, dict) else (False, None)
            spec.toxic.merge(raw_attrs)
            spec.toxicity = fields.get("toxicity", spec.toxicity)
            await proxy.update_toxic(spec)
            proxy.emit("toxic.update", toxic=spec.name, attributes=dict(spec.toxic.attributes))
            return spec

    async def remove_toxic(self, proxy_name: str, toxic_name: str) -> None:
        proxy = self.get(proxy_name)
        async with proxy.toxics_lock:
            spec = proxy.find(toxic_name)
            if spec is None:
                raise TOXIC_NOT_FOUND
            await proxy.remove_toxic(spec)
            proxy.emit("toxic.remove", toxic=spec.name)
