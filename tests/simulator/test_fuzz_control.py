"""Fuzzing the HTTP control API of a running simulator that serves one real client session.

Inputs: operation names (every registered one, misspellings, random text, raw bytes that
are not UTF-8), methods, query strings (argument-shaped or random bytes), and bodies:
objects shaped like the operation's arguments with values of the right or wrong type,
NaN, Infinity, 1e400, huge integers, lone surrogates, deep nesting (to 6,000 levels),
invalid UTF-8, empty bodies, whitespace, and JSON that is not an object.

Properties, per request: the answer is a 2xx or a 4xx, never a 5xx; its body is JSON,
``{"result": ...}`` or ``{"error": sentence, "status": code}``, never a traceback; a
refused call changed nothing (``GET /v1/sessions`` before == after); nothing was logged
at ERROR by the server (aiohttp, asyncio, websockets: a 200 followed by a failing task
counts). After the run: the bystander session is still open and a publication reaches it.

The simulator runs on its own event loop in a thread, with a :class:`ManualClock`: protocol
time stands still, so an accepted drain never comes due and a refused call is the only
thing that could change the sessions between two reads. Session references that would
name the bystander are drawn out (``assume``), so an accepted ``drop`` or ``expire`` cannot
end it; everything else, global calls included (``request_reconnect`` of every session,
``configure``, ``refuse_connections``), is fair game.

``pytest`` runs a bounded, deterministic pass (``CI_EXAMPLES`` examples, a few seconds).
``SQUALL_FUZZ_LONG=1`` runs ``SQUALL_FUZZ_EXAMPLES`` examples (default 100000) with fresh
randomness, in rounds of ``ROUND`` examples (a new hypothesis engine per round keeps its
memory flat), stopping early after ``SQUALL_FUZZ_SECONDS`` if set, and prints the counts::

    SQUALL_FUZZ_LONG=1 SQUALL_FUZZ_SECONDS=600 .venv/bin/python -m pytest -p no:cacheprovider \\
        tests/simulator/test_fuzz_control.py -s

Each example is one fuzzed request plus one or two ``GET /v1/sessions``; generating it is
most of the cost. On a shared 2-core machine that is 110-170 examples a second, so 100,000
take 10-15 minutes (``SQUALL_FUZZ_SECONDS=600`` gives ~80,000-100,000).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http.client
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, quote_from_bytes, urlencode

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from squall.clock import ManualClock
from squall.simulator import OPERATIONS, Simulator

LONG = os.environ.get("SQUALL_FUZZ_LONG") == "1"
CI_EXAMPLES = 200
EXAMPLES = int(os.environ.get("SQUALL_FUZZ_EXAMPLES", "100000")) if LONG else CI_EXAMPLES
SECONDS = float(os.environ.get("SQUALL_FUZZ_SECONDS", "0") or 0)
ROUND = 10_000

MAX_REQUEST_LINE = 8000
BYSTANDER = "bystander-q7"
TOPIC = "bystander-news"

pytestmark = pytest.mark.timeout(0 if LONG else 120)

# -- strategies ------------------------------------------------------------------------------


class Raw:
    """A JSON token written verbatim: NaN, Infinity, 1e400, a 5,000-digit integer ..."""

    def __init__(self, text: str) -> None:
        self.text = text


RAW = [
    "NaN",
    "Infinity",
    "-Infinity",
    "1e400",
    "-1e400",
    "1e308",
    "9223372036854775808",
    "1" * 30,
    "1" * 400,
    "1" * 5000,
    "-0",
    "0.5",
    "1E+2",
    '"\\ud800"',
    '"\\udfff x"',
    '"a\\u0000b"',
]

any_text = st.text(st.characters(exclude_categories=()), max_size=12)  # lone surrogates too
numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(),  # NaN and the infinities included: json.dumps writes them as such
    st.sampled_from(RAW).map(Raw),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, any_text)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(any_text, inner, max_size=4)
    ),
    max_leaves=12,
)

OPS = sorted(OPERATIONS)
PARAMS = {name: list(spec.params) for name, spec in OPERATIONS.items()}


@functools.cache  # strategies are built once: hypothesis inspects each new one
def good_values(param: str) -> st.SearchStrategy[Any]:
    """Values of about the right type for a parameter, edges included."""
    by_name: dict[str, st.SearchStrategy[Any]] = {
        "session": any_text,
        "topic": any_text,
        "method": any_text,
        "text": any_text,
        "reason": st.one_of(any_text, st.sampled_from(["drain", "invalid_token", "forbidden"])),
        "code": st.one_of(st.integers(999, 5000), st.sampled_from([1000, 1005, 1006, 1015, 3000])),
        "status": st.one_of(st.integers(399, 600), st.sampled_from([418, 425, 499, 503])),
        "count": st.one_of(st.integers(-2, 10), st.sampled_from([10**6, 10**6 + 1, 10**12])),
        "error": st.one_of(any_text, st.dictionaries(st.sampled_from(["code", "x"]), scalars)),
        "since": st.integers(-2, 10**20),
    }
    floats = st.one_of(st.floats(-1, 1e9), st.sampled_from([Raw("1e400"), Raw("NaN"), 0]))
    ints = st.one_of(st.integers(-2, 10**4), st.sampled_from([10**9, 10**9 + 1, 10**30]))
    if param in by_name:
        return by_name[param]
    if param in ("deadline", "answer_within", "delay") or param.startswith(
        ("recovery_window", "heartbeat", "drain", "rate_limit", "server_ping")
    ):
        return floats
    if param in ("times", "rate_burst", "recovery_buffer_size"):
        return ints
    return json_values


@functools.cache
def arguments(op: str) -> st.SearchStrategy[dict[str, Any]]:
    return _arguments(op)


@st.composite
def _arguments(draw: st.DrawFn, op: str) -> dict[str, Any]:
    """An object shaped like ``op``'s arguments: some of them, well typed or not, plus junk."""
    params = PARAMS.get(op, [])
    body: dict[str, Any] = {}
    for param in params:
        if draw(st.integers(0, 2)) == 0:
            continue
        wild = draw(st.integers(0, 4)) == 0
        body[param] = draw(json_values if wild else good_values(param))
    if draw(st.integers(0, 3)) == 0:
        body[
            draw(st.one_of(any_text, st.sampled_from(["self", "result", "handler", "sesion"])))
        ] = draw(json_values)
    return body


def render(value: Any) -> str:
    """JSON text, with :class:`Raw` tokens verbatim and no recursion limit of json.dumps."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{render(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(render(v) for v in value) + "]"
    return json.dumps(value)


def deep(depth: int, kind: str) -> str:
    if kind == "list":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


@functools.cache
def bodies(op: str) -> st.SearchStrategy[bytes]:
    return _bodies(op)


@st.composite
def _bodies(draw: st.DrawFn, op: str) -> bytes:
    choice = draw(st.integers(0, 9))
    if choice <= 4:
        return render(draw(arguments(op))).encode("utf-8", "surrogatepass")
    if choice == 5:
        depth = draw(st.one_of(st.integers(1, 120), st.integers(120, 6000)))
        inner = deep(depth, draw(st.sampled_from(["list", "object"])))
        key = draw(st.sampled_from([*PARAMS.get(op, []), "payload"]))
        wrapped = draw(st.booleans())
        return (f'{{"{key}": {inner}}}' if wrapped else inner).encode()
    if choice == 6:
        return draw(st.binary(max_size=40))  # mostly not UTF-8, never mind JSON
    if choice == 7:
        return draw(
            st.sampled_from([b"", b" ", b"\n", b"null", b"[]", b'"x"', b"1", b"\xef\xbb\xbf{}"])
        )
    if choice == 8:
        return render(draw(json_values)).encode("utf-8", "surrogatepass")
    # a valid object followed by a truncation or garbage
    text = render(draw(arguments(op))).encode("utf-8", "surrogatepass")
    return text[: draw(st.integers(0, len(text)))] + draw(st.binary(max_size=4))


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, bytes, str]:
    """(method, path with query, body, operation name it targets)."""
    kind = draw(st.integers(0, 9))
    if kind <= 6:
        op = draw(st.sampled_from(OPS))
        name = quote(op, safe="")
    elif kind == 7:
        op = draw(any_text)
        name = quote(op, safe="", errors="surrogatepass")
    elif kind == 8:
        op = ""
        name = quote_from_bytes(draw(st.binary(max_size=8)), safe="")
    else:
        op = draw(st.sampled_from(OPS))
        name = quote(op[:-1] + draw(st.sampled_from(["", "s", "x"])), safe="")
    spec = OPERATIONS.get(op)
    method = (
        spec.method
        if spec is not None and draw(st.integers(0, 5))
        else draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]))
    )
    query = ""
    q = draw(st.integers(0, 4))
    if q in (1, 2):
        args = draw(arguments(op))
        flat = {
            k.encode("utf-8", "surrogatepass"): render(v)
            .strip('"')
            .encode("utf-8", "surrogatepass")
            for k, v in args.items()
        }
        query = "?" + urlencode(flat)
    elif q == 3:
        query = "?" + quote_from_bytes(draw(st.binary(max_size=20)), safe="=&")
    elif q == 4:
        query = "?since=" + draw(
            st.sampled_from(["0", "-1", "x", "1e3", "9" * 30, "", "1&since=2"])
        )
    body = draw(bodies(op)) if method != "GET" or draw(st.integers(0, 5)) == 0 else b""
    # aiohttp's HTTP parser refuses a request line over 8190 bytes itself (a plain-text 400,
    # and a traceback in its log), before any of squall's code runs: stay under it.
    return method, f"/v1/{name}{query}"[:MAX_REQUEST_LINE], body, op


# -- the target ------------------------------------------------------------------------------


class Target:
    """A simulator in a thread, its control API, and a subscribed bystander client."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.errors: list[str] = []
        self.examples = 0
        self.refused = 0
        self.accepted = 0
        self.statuses: dict[int, int] = {}
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fuzz-simulator", daemon=True)
        self.sim = Simulator(clock=ManualClock(), transcript_max_records=2000)
        self._handler = _ErrorLog(self.errors)
        self.bystander: ClientConnection | None = None
        self._stack = contextlib.ExitStack()
        self.received: list[Any] = []
        self.closed: str | None = None
        self.http: http.client.HTTPConnection | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.set_exception_handler(
            lambda loop, ctx: self.errors.append(
                f"loop: {ctx.get('message')} {ctx.get('exception')!r}"
            )
        )
        self.loop.run_until_complete(self.sim.start(control_port=0))
        self._ready.set()
        self.loop.run_forever()

    def start(self) -> None:
        logging.getLogger().addHandler(self._handler)
        self._thread.start()
        assert self._ready.wait(10), "the simulator did not start"
        assert self.sim.control_url is not None
        host_port = self.sim.control_url.removeprefix("http://").removesuffix("/v1")
        host, _, port = host_port.rpartition(":")
        self.host, self.port = host, int(port)
        self.bystander = self._stack.enter_context(
            # no keepalive pings: their payload comes from the global `random`, which
            # hypothesis (rightly) objects to seeing change while it draws
            connect(f"{self.sim.url}?token={BYSTANDER}", proxy=None, ping_interval=None)
        )
        assert json.loads(self.bystander.recv(10))["type"] == "authenticated"
        self.bystander.send(json.dumps({"type": "subscribe", "id": 1, "topics": [TOPIC]}))
        assert json.loads(self.bystander.recv(10))["type"] == "subscribed"
        threading.Thread(target=self._drain, name="fuzz-bystander", daemon=True).start()
        sessions = self.sessions()
        self.refs = {sessions[0]["id"], sessions[0]["sid"], BYSTANDER}

    def _drain(self) -> None:
        assert self.bystander is not None
        try:
            for message in self.bystander:
                self.received.append(json.loads(message))
        except ConnectionClosed as exc:
            self.closed = repr(exc)

    def stop(self) -> None:
        self._stack.close()  # the bystander
        if self.http is not None:
            self.http.close()
        asyncio.run_coroutine_threadsafe(self.sim.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()
        logging.getLogger().removeHandler(self._handler)

    def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        for attempt in (1, 2):
            conn = self.http or http.client.HTTPConnection(self.host, self.port, timeout=30)
            self.http = conn
            try:
                conn.request(method, path, body=body or None)
                resp = conn.getresponse()
                data = resp.read()
                if resp.will_close:
                    conn.close()
                    self.http = None
                return resp.status, data
            except (ConnectionError, http.client.HTTPException):
                conn.close()
                self.http = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def sessions(self) -> list[dict[str, Any]]:
        status, data = self.request("GET", "/v1/sessions")
        assert status == 200, data
        result: list[dict[str, Any]] = json.loads(data)["result"]
        return result

    def check_bystander(self) -> None:
        """Still open, still subscribed, and a publication reaches it."""
        (mine,) = [s for s in self.sessions() if s["user"] == BYSTANDER]
        assert mine["state"] == "open" and mine["subscriptions"] == [TOPIC], mine
        marker = f"after {self.examples} examples"
        status, data = self.request(
            "POST", "/v1/publish", json.dumps({"topic": TOPIC, "payload": marker}).encode()
        )
        assert status == 200 and json.loads(data)["result"]["delivered"] == 1, data
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if any(m.get("payload") == marker for m in self.received):
                break
            time.sleep(0.01)
        else:
            raise AssertionError(f"the bystander never got {marker!r} (closed: {self.closed})")
        assert self.closed is None
        assert not self.errors, self.errors


class _ErrorLog(logging.Handler):
    def __init__(self, sink: list[str]) -> None:
        super().__init__(logging.ERROR)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(f"{record.name}: {record.getMessage()} {record.exc_info or ''}")


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    t = Target()
    t.start()
    try:
        yield t
    finally:
        t.stop()


# -- the properties --------------------------------------------------------------------------


def check_one(target: Target, method: str, path: str, body: bytes, op: str) -> None:
    with contextlib.suppress(ValueError, RecursionError):
        sent = json.loads(body) if body.strip() else {}
        ref = sent.get("session") if isinstance(sent, dict) else None
        assume(not (isinstance(ref, str) and ref in target.refs))
    before = target.sessions()
    logged = len(target.errors)
    status, data = target.request(method, path, body)
    target.examples += 1
    target.statuses[status] = target.statuses.get(status, 0) + 1
    where = f"{method} {path} {body[:200]!r} -> {status} {data[:300]!r}"
    assert 200 <= status < 300 or 400 <= status < 500, where
    assert b"Traceback" not in data, where
    try:
        answer = json.loads(data)
    except ValueError:
        raise AssertionError(f"the answer is not JSON: {where}") from None
    assert isinstance(answer, dict), where
    if status >= 400:
        target.refused += 1
        assert isinstance(answer.get("error"), str) and answer["error"].strip(), where
        assert answer.get("status") == status, where
        assert target.sessions() == before, f"a refused call changed the sessions: {where}"
    else:
        target.accepted += 1
        assert "result" in answer, where
    assert len(target.errors) == logged, f"{where}: {target.errors[logged:]}"


def run_round(target: Target, examples: int, *, deterministic: bool) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=deterministic,
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )
    @given(requests())
    def fuzz(request: tuple[str, str, bytes, str]) -> None:
        check_one(target, *request)

    fuzz()


def test_fuzz_the_control_api(target: Target) -> None:
    if not LONG:
        run_round(target, EXAMPLES, deterministic=True)
        target.check_bystander()
        return
    started = time.monotonic()
    while target.examples < EXAMPLES and not (SECONDS and time.monotonic() - started > SECONDS):
        run_round(target, min(ROUND, EXAMPLES - target.examples), deterministic=False)
        target.check_bystander()
        statuses = sorted(target.statuses.items())
        print(
            f"fuzz: {target.examples} examples in {time.monotonic() - started:.0f}s "
            f"({target.accepted} accepted, {target.refused} refused) {statuses}",
            file=sys.stderr,
            flush=True,
        )
    target.check_bystander()
