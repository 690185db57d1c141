"""Fuzzing the Toxiproxy HTTP API of a running in-process proxy, and the JSON decoder behind it.

Property: every request (random method, path, headers and body: JSON of the right
shape with wrong types, NaN and huge numbers, deep nesting, invalid UTF-8, nulls,
or plain garbage) gets a well-formed HTTP answer whose body is Toxiproxy's JSON
(or one of Toxiproxy's fixed texts, or empty where Toxiproxy sends nothing); a 500
is only ever one of Toxiproxy's own (``listen tcp …``), never ``internal error``;
no ``api.error`` or ``toxic.error`` event is recorded; and afterwards the proxy
still forwards bytes, both for a proxy that lived through the run with a
connection open and toxics changing under it, and for a new one.

``pytest`` runs a bounded, deterministic pass (a few hundred examples, a few
seconds). ``SQUALL_FUZZ_LONG=1`` runs ``SQUALL_FUZZ_EXAMPLES`` examples
(default 100000) with fresh randomness; each example sends 1-6 requests.

Listen addresses are drawn only from loopback or from strings Go refuses before
resolving them, and upstreams are only dialed for the ``pump`` proxy, whose
address the fuzzer never changes: the run binds nothing beyond 127.0.0.1 and
sends no DNS query for a random name.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import json
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from squall.faults import TOXICS, ProxyServer
from squall.faults.gojson import JsonSyntaxError, Number, decode

from .helpers import TcpServer, connect, echo, recv_exactly

LONG = os.environ.get("SQUALL_FUZZ_LONG") == "1"
EXAMPLES = int(os.environ.get("SQUALL_FUZZ_EXAMPLES", "100000")) if LONG else 150

FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not LONG,
    database=None,
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)

DIRECTIONS = ("upstream", "downstream")
PUMP = "pump"  # the proxy with a live connection; the fuzzer may change its toxics only
NAMES = ("base", "p1", "p2", "x", "latency_downstream", "timeout_upstream", "a/b", "é", "%")
ALLOWED_STATUS = {200, 201, 204, 301, 400, 403, 404, 405, 409, 500, 503}
FIXED_TEXTS = {b"404 page not found\n", b"User agent not allowed\n", b"400 Bad Request", b""}
GO_500_PREFIXES = ("listen tcp", "address ", "lookup ")

# -- strategies ------------------------------------------------------------------------------


class Raw:
    """A JSON token written verbatim: NaN, Infinity, 1e400, 2^63, -0 ..."""

    def __init__(self, text: str) -> None:
        self.text = text


RAW_NUMBERS = [
    "NaN",
    "Infinity",
    "-Infinity",
    "1e400",
    "-1e400",
    "1e39",
    "3.4028235e38",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775809",
    "1" * 30,
    "1" * 5000,
    "-0",
    "1E+2",
    "0.0000001",
    "1.5",
    "0",
    "1",
]

SAFE_LISTENS = [
    "127.0.0.1:0",
    "localhost:0",
    "[::1]:0",
    "",
    "127.0.0.1",
    "127.0.0.1:99999",
    "127.0.0.1:-1",
    "127.0.0.1:nope",
    "127.0.0.1:",
    "::1:0",
    "[::1:0",
    "a]:0",
    "127.0.0.1:+0",
]

PROXY_KEYS = ["name", "listen", "upstream", "enabled", "seed"]
TOXIC_KEYS = ["name", "type", "stream", "toxicity", "attributes"]
ATTRIBUTE_KEYS = sorted({key for cls in TOXICS.values() for key in cls.fields})
KNOWN_KEYS = {k.lower() for k in PROXY_KEYS + TOXIC_KEYS + ATTRIBUTE_KEYS}

numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(RAW_NUMBERS).map(Raw),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=20))
# Keys the decoder will not match to a field (Go matches field names case-insensitively).
junk_keys = st.text(max_size=10).filter(lambda k: k.lower() not in KNOWN_KEYS)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(junk_keys, inner, max_size=4),
    ),
    max_leaves=12,
)


# Strategies are built once (functools.cache): hypothesis inspects each new filter lambda.


@functools.cache
def cased(key: str) -> st.SearchStrategy[str]:
    return st.sampled_from([key, key.upper(), key.capitalize()])


@functools.cache
def named(choices: tuple[str, ...]) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(choices), st.text(max_size=12).filter(lambda n: n != PUMP))


@functools.cache
def value_for(key: str, valid: bool) -> st.SearchStrategy[Any]:
    """A value for one field: of the right JSON type (when ``valid``), or anything at all."""
    good: dict[str, st.SearchStrategy[Any]] = {
        "name": named(NAMES),
        "upstream": st.sampled_from(["127.0.0.1:1", "127.0.0.1", "x:y", ""]),
        "enabled": st.booleans(),
        "seed": st.integers(-(2**63), 2**63 - 1),
        "type": st.sampled_from(sorted(TOXICS)),
        "stream": st.sampled_from(["upstream", "downstream", "UpStream", "up"]),
        "toxicity": st.one_of(st.floats(0, 1), st.sampled_from([0, 1, 0.5])),
    }
    if key == "listen":  # never anything that binds beyond loopback or needs a DNS lookup
        if valid:
            return st.sampled_from(["127.0.0.1:0"] * 6 + SAFE_LISTENS)
        return st.one_of(
            st.sampled_from(SAFE_LISTENS),
            st.text(max_size=12).filter(lambda t: ":" not in t),  # refused: no port
            json_values.filter(lambda v: not isinstance(v, str)),  # refused: not a string
        )
    if key == "attributes":
        keys = st.one_of(st.sampled_from(ATTRIBUTE_KEYS), junk_keys)
        small = st.one_of(st.integers(-5, 200), st.floats(0, 1), st.sampled_from(["", "text"]))
        return st.one_of(
            st.dictionaries(keys, small if valid else json_values, max_size=5), json_values
        )
    if valid and key in good:
        return good[key]
    return st.one_of(good.get(key, json_values), json_values)


@st.composite
def shaped(draw: st.DrawFn, keys: list[str]) -> Any:
    """An object with some of ``keys`` (in any letter case), mostly well typed, plus junk keys."""
    valid = draw(st.integers(0, 3)) > 0
    body: dict[Any, Any] = {}
    for key in keys:
        if draw(st.integers(0, 3)) == 0:
            continue
        spelled = key if key == "listen" else draw(cased(key))
        body[spelled] = draw(value_for(key, valid))
    body.update(draw(st.dictionaries(junk_keys, json_values, max_size=2)))
    return body


def proxy_bodies() -> st.SearchStrategy[Any]:
    return shaped(PROXY_KEYS)


def toxic_bodies() -> st.SearchStrategy[Any]:
    return shaped(TOXIC_KEYS)


def render(value: Any) -> str:
    """JSON text of ``value``, with :class:`Raw` tokens written as they are."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        items = ",".join(f"{json.dumps(str(k))}:{render(v)}" for k, v in value.items())
        return "{" + items + "}"
    if isinstance(value, list):
        return "[" + ",".join(render(v) for v in value) + "]"
    return json.dumps(value)


@st.composite
def bodies(draw: st.DrawFn, kind: str) -> bytes:
    """A request body: mostly ``kind`` (proxy, toxic, populate, none), else any other kind."""
    kinds = ["proxy", "toxic", "populate", "json", "deep", "bytes", "none", "null"]
    if draw(st.integers(0, 3)) == 0:
        kind = draw(st.sampled_from(kinds))
    if kind == "none":
        return b""
    if kind == "null":
        return b"null"
    if kind == "bytes":
        return draw(st.binary(max_size=64))
    if kind == "deep":
        depth = draw(st.sampled_from([500, 1500, 9999, 10000, 10001, 30000]))
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
        inner = opener * depth + "1" + closer * draw(st.sampled_from([depth, depth // 2]))
        wrap = draw(st.sampled_from(["{}", '{"name":"deep","upstream":"x:1","junk":{}}']))
        text = inner if wrap == "{}" else wrap.replace("{}", inner)
        return text.encode()
    if kind == "proxy":
        value: Any = draw(proxy_bodies())
    elif kind == "toxic":
        value = draw(toxic_bodies())
    elif kind == "populate":
        value = draw(st.lists(proxy_bodies(), max_size=3))
    else:
        value = draw(json_values)
    text = render(value)
    raw = text.encode("utf-8", "surrogatepass")  # lone surrogates: invalid UTF-8 on the wire
    mutation = draw(st.sampled_from(["none"] * 6 + ["truncate", "insert", "trail"]))
    if mutation == "truncate" and raw:
        raw = raw[: draw(st.integers(0, len(raw) - 1))]
    elif mutation == "insert":
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.binary(min_size=1, max_size=3)) + raw[at:]
    elif mutation == "trail":
        raw += draw(st.binary(max_size=8))
    return raw


@functools.cache
def segment(names: tuple[str, ...]) -> st.SearchStrategy[str]:
    known = st.sampled_from(names).map(lambda n: quote(n, safe=""))
    return st.one_of(
        known,
        known,
        known,
        known,
        st.text(max_size=10).filter(lambda n: n != PUMP).map(lambda n: quote(n, safe="")),
        st.sampled_from(["", ".", "..", "%zz", "%2F", "%ff", "%00"]),
    )


# (method, path template, body kind): every route of api.go, plus garbage.
ENDPOINTS = [
    ("GET", "/proxies", "none"),
    ("POST", "/proxies", "proxy"),
    ("POST", "/populate", "populate"),
    ("POST", "/reset", "none"),
    ("GET", "/version", "none"),
    ("GET", "/proxies/{proxy}", "none"),
    ("POST", "/proxies/{proxy}", "proxy"),
    ("PATCH", "/proxies/{proxy}", "proxy"),
    ("DELETE", "/proxies/{proxy}", "none"),
    ("GET", "/proxies/{any}/toxics", "none"),
    ("POST", "/proxies/{any}/toxics", "toxic"),
    ("POST", "/proxies/{any}/toxics", "toxic"),
    ("GET", "/proxies/{any}/toxics/{toxic}", "none"),
    ("POST", "/proxies/{any}/toxics/{toxic}", "toxic"),
    ("PATCH", "/proxies/{any}/toxics/{toxic}", "toxic"),
    ("PATCH", "/proxies/{any}/toxics/{toxic}", "toxic"),
    ("DELETE", "/proxies/{any}/toxics/{toxic}", "none"),
    ("GET", "/{junk}", "json"),
]
METHODS = ["GET", "POST", "PATCH", "DELETE", "PUT", "HEAD", "OPTIONS"]
TOXIC_NAMES = tuple(f"{t}_{s}" for t in ("latency", "timeout", "slicer") for s in DIRECTIONS)


@st.composite
def requests_(draw: st.DrawFn) -> tuple[str, str, bytes, dict[str, str]]:
    method, template, kind = draw(st.sampled_from(ENDPOINTS))
    if draw(st.integers(0, 9)) == 0:
        method = draw(st.sampled_from(METHODS))
    path = template.format(
        proxy=draw(segment(NAMES)),  # proxy-level routes never touch the pump
        any=draw(segment((PUMP, *NAMES))),
        toxic=draw(segment(TOXIC_NAMES + NAMES)),
        junk="/".join(draw(st.lists(segment(NAMES), max_size=4))),
    )
    if draw(st.integers(0, 4)) == 0:
        path += "?" + quote(draw(st.text(max_size=6)), safe="=&")
    headers = {}
    if draw(st.integers(0, 19)) == 0:
        headers["User-Agent"] = "Mozilla/5.0 (fuzz)"
    return method, path, draw(bodies(kind)), headers


# -- the server under test -------------------------------------------------------------------


class Pump:
    """One connection through ``pump`` carrying echo traffic, reopened whenever it ends."""

    def __init__(self, listen: str) -> None:
        self.listen = listen
        self.stop = threading.Event()
        self.rounds = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                with connect(self.listen, timeout=0.2) as sock:
                    while not self.stop.is_set():
                        sock.sendall(b"x" * 512)
                        with contextlib.suppress(TimeoutError):
                            if not sock.recv(65536):
                                break
                        self.rounds += 1
                        self.stop.wait(0.005)  # a trickle: toxics see traffic, the GIL stays free
            except OSError:
                self.stop.wait(0.01)  # a toxic closed it: open another

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


class Target:
    """The running server, the pump's listen address, and one keep-alive HTTP connection."""

    def __init__(self, srv: Any, upstream: TcpServer, listen: str, bugs: list[Any]) -> None:
        self.srv = srv
        self.bugs = bugs  # api.error and toxic.error events, collected as they happen
        self.upstream = upstream
        self.listen = listen
        self.conn = http.client.HTTPConnection(srv.host, srv.port, timeout=60)
        self.requests = 0
        self.statuses: dict[int, int] = {}

    def send(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> None:
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=body or None, headers=headers)
                response = self.conn.getresponse()
                data = response.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # A 'Connection: close' answer (Go's 400) ends keep-alive: reopen once.
                self.conn.close()
                if attempt:
                    raise
        self.requests += 1
        self.statuses[response.status] = self.statuses.get(response.status, 0) + 1
        if LONG and self.requests % 5000 == 0:
            print(f"fuzz: {self.requests} requests, {self.statuses}", file=sys.stderr, flush=True)
        if response.getheader("Connection", "").lower() == "close":
            self.conn.close()
        check_answer(method, path, response, data)

    def reset_state(self) -> None:
        """Drop every proxy but the pump and clear its toxics (directly, on the server loop)."""
        coll = self.srv.server.collection

        async def tidy() -> None:
            for name in list(coll.proxies):
                if name != PUMP:
                    await coll.delete(name)
            await coll.reset()

        self.srv.call(tidy())

    def bug_events(self) -> list[Any]:
        return list(self.bugs)


def strict_json(data: bytes) -> Any:
    def refuse(name: str) -> Any:
        raise ValueError(f"not JSON: {name}")

    return json.loads(data.decode("utf-8"), parse_constant=refuse)


def check_answer(method: str, path: str, response: http.client.HTTPResponse, data: bytes) -> None:
    where = f"{method} {path} -> {response.status} {data[:300]!r}"
    assert response.status in ALLOWED_STATUS, where
    if method == "HEAD" or data in FIXED_TEXTS:
        return
    body = strict_json(data)  # every other answer is JSON, and strict JSON at that
    if response.status >= 400:
        assert isinstance(body, dict), where
        if "proxies" in body:  # /populate answers errors with the proxies made so far
            assert path.startswith("/populate"), where
        assert body["status"] == response.status and isinstance(body["error"], str), where
        if response.status == 500:
            assert body["error"].startswith(GO_500_PREFIXES), where


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    bugs: list[Any] = []

    def collect(event: Any) -> None:
        if event.action in ("api.error", "toxic.error"):
            bugs.append(event)

    with (
        TcpServer(echo) as upstream,
        ProxyServer.in_thread(port=0, seed=99, on_event=collect) as srv,
    ):
        r = http.client.HTTPConnection(srv.host, srv.port, timeout=60)
        body = {"name": PUMP, "listen": "127.0.0.1:0", "upstream": upstream.address}
        r.request("POST", "/proxies", body=json.dumps(body))
        created = r.getresponse()
        assert created.status == 201
        listen = json.loads(created.read())["listen"]
        r.close()
        pump = Pump(listen)
        t = Target(srv, upstream, listen, bugs)
        try:
            yield t
        finally:
            pump.close()
            t.conn.close()
            stats = f"{t.requests} requests, statuses {dict(sorted(t.statuses.items()))}"
            print(f"\nfuzz: {stats}; pump echoed {pump.rounds} times")


@pytest.mark.timeout(0 if LONG else 120)
@FUZZ_SETTINGS
@given(batch=st.lists(requests_(), min_size=1, max_size=6))
def test_api_answers_every_input_properly(target: Target, batch: list[Any]) -> None:
    """Every request gets a proper Toxiproxy answer; nothing raises inside the proxy."""
    target.reset_state()
    for method, path, body, headers in batch:
        target.send(method, path, body, headers)
    assert not target.bug_events(), target.bug_events()[0].detail


def test_proxy_still_forwards_after_the_fuzz(target: Target) -> None:
    """Runs after the fuzz (file order): the pump proxy and a new proxy both forward bytes."""
    target.reset_state()
    payload = bytes(range(256)) * 64
    with connect(target.listen) as sock:
        sock.sendall(payload)
        assert recv_exactly(sock, len(payload)) == payload
    conn = http.client.HTTPConnection(target.srv.host, target.srv.port, timeout=60)
    body = {"name": "after", "listen": "127.0.0.1:0", "upstream": target.upstream.address}
    conn.request("POST", "/proxies", body=json.dumps(body))
    response = conn.getresponse()
    assert response.status == 201
    listen = json.loads(response.read())["listen"]
    conn.close()
    with connect(listen) as sock:
        sock.sendall(payload)
        assert recv_exactly(sock, len(payload)) == payload
    assert not target.bug_events()


# -- the decoder on its own ------------------------------------------------------------------

plain_json = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(),
    ),
    lambda inner: st.one_of(st.lists(inner), st.dictionaries(st.text(), inner)),
    max_leaves=30,
)


@pytest.mark.timeout(0 if LONG else 120)
@settings(max_examples=100 if not LONG else 5000, deadline=None, derandomize=not LONG)
@given(value=plain_json, indent=st.sampled_from([None, 0, 2]))
def test_decoder_round_trips_json(value: Any, indent: int | None) -> None:
    """Whatever json.dumps writes, the Go-style decoder reads back equal (no surrogates there)."""
    text = json.dumps(value, indent=indent, ensure_ascii=False)
    assert decode(text.encode("utf-8", "surrogatepass")) == _without_surrogates(value)


def _without_surrogates(value: Any) -> Any:
    """Go turns lone surrogates (here from st.text) into U+FFFD."""
    if isinstance(value, str):
        return "".join("\ufffd" if 0xD800 <= ord(c) < 0xE000 else c for c in value)
    if isinstance(value, list):
        return [_without_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_without_surrogates(k): _without_surrogates(v) for k, v in value.items()}
    return value


@pytest.mark.timeout(0 if LONG else 120)
@settings(max_examples=300 if not LONG else 50000, deadline=None, derandomize=not LONG)
@given(raw=st.one_of(st.binary(max_size=40), st.text(max_size=40).map(str.encode)))
def test_decoder_agrees_with_the_standard_library(raw: bytes) -> None:
    """Only JsonSyntaxError escapes; where Python's json reads a value, ours reads the same one.

    Known, Go-faithful divergences: Go refuses NaN/Infinity and a number cut off after
    its '.' or 'e' ('1.', '2e'), which Python reads as a shorter number.
    """
    try:
        ours: Any = decode(raw)
    except JsonSyntaxError:
        ours = JsonSyntaxError
    text = raw.decode("utf-8", "replace").lstrip(" \t\r\n")
    try:
        std, end = json.JSONDecoder(parse_constant=_refuse).raw_decode(text)
    except ValueError:  # JSONDecodeError included
        return
    if ours is JsonSyntaxError:
        assert text[end : end + 1] in (".", "e", "E"), (raw, std)
        return
    if isinstance(std, float):
        assert isinstance(ours, Number) and float(ours) == std
    elif "\ufffd" not in text:
        assert ours == std, (raw, ours, std)


def _refuse(name: str) -> Any:
    raise ValueError(name)


def test_decoder_limits_depth_like_go() -> None:
    """10000 levels decode (without recursion); 10001 is Go's 'exceeded max depth'."""
    ok = decode(b"[" * 10000 + b"]" * 10000)
    assert isinstance(ok, list)
    with pytest.raises(JsonSyntaxError, match="exceeded max depth"):
        decode(b"[" * 10001)
    assert decode(b'{"a":' * 5000 + b"1" + b"}" * 5000) is not None
