"""Fuzzing the scenario loader: any bytes in, a scenario or a :class:`ScenarioError` out.

Two fuzzers feed :func:`squall.conformance.loader.parse_bytes`:

- ``test_mutated_scenarios``: the shipped files under ``scenarios/`` with a few
  mutations each: byte flips, truncation, deleted spans, duplicated lines, and
  inserted YAML syntax (``[``, ``{``, ``&a``, ``*a``, ``!!python/object``, tabs),
  huge numbers, control characters, invalid UTF-8, deep nesting, alias bombs;
- ``test_generated_documents``: YAML documents built from the scenario schema's
  own keys and step names, or shipped scenarios with a few values replaced,
  removed or added, written in block and flow style with anchors and aliases.

The property: the loader returns a :class:`Loaded` or raises its own
:class:`ScenarioError`, whose every problem is one line with a place, within
``TIME_BOUND`` seconds of CPU time per input (a SIGPROF timer turns a hang into
a failure that hypothesis can shrink). Any other exception is a crash.

Plain ``pytest`` runs a bounded, derandomized CI profile (``CI_EXAMPLES``
inputs per fuzzer, about 5 s each, the same inputs every run). The long run
(an input takes about 20 ms: 100,000 are some 35 minutes of one core)::

    SQUALL_FUZZ_LONG=1 .venv/bin/python -m pytest tests/conformance/test_fuzz_loader.py \
        -p no:cacheprovider -q            # 100,000 random inputs per fuzzer
    SQUALL_FUZZ_LONG=1 SQUALL_FUZZ_EXAMPLES=1000000 ...   # or any other count

is random (not derandomized), has no pytest-timeout, prints hypothesis's
reproduction blob for a failure and, with ``-s``, a progress line every 5,000
inputs; add ``-n 2`` (pytest-xdist) to run both at once.
"""

from __future__ import annotations

import copy
import gc
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from squall.conformance.loader import Loaded, ScenarioError, parse_bytes
from squall.conformance.models import STEP_MODELS, scenario_json_schema

from .helpers import SCENARIOS

TIME_BOUND = 2.0  # seconds per input
CI_EXAMPLES = 300
LONG = os.environ.get("SQUALL_FUZZ_LONG", "") not in ("", "0")
LONG_EXAMPLES = int(os.environ.get("SQUALL_FUZZ_EXAMPLES", "100000"))

if LONG:
    FUZZ = settings(
        max_examples=LONG_EXAMPLES,
        deadline=None,
        database=None,
        print_blob=True,
        suppress_health_check=list(HealthCheck),
    )
    pytestmark = pytest.mark.timeout(0)
else:
    FUZZ = settings(
        max_examples=CI_EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )

SEEDS: list[bytes] = sorted(p.read_bytes() for p in SCENARIOS.rglob("*.yaml"))

# -- the property -------------------------------------------------------------------------------


class Hang(Exception):
    """An input took longer than :data:`TIME_BOUND`."""


@contextmanager
def time_bound(seconds: float) -> Iterator[None]:
    """Raise :class:`Hang` in the body once it has used ``seconds`` of CPU time.

    CPU time (``ITIMER_PROF``, ``SIGPROF``), not wall time: other processes on a
    loaded CI machine do not count, and pytest-timeout's ``SIGALRM`` is left alone.
    The signal repeats every 0.1 s until the body is left: raised where Python
    ignores exceptions (a ``__del__``), it is simply raised again. The cyclic
    garbage collector is off in the body: a full collection of hypothesis's own
    heap (hundreds of MB after 20,000 inputs) took 2.2 s once, and is not the
    loader's time.
    """

    def expired(signum: int, frame: FrameType | None) -> None:
        raise Hang(f"no answer within {seconds} s of CPU time")

    old_handler = signal.signal(signal.SIGPROF, expired)
    was_enabled = gc.isenabled()
    gc.disable()
    signal.setitimer(signal.ITIMER_PROF, seconds, 0.1)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, old_handler)
        if was_enabled:
            gc.enable()


_RUN = {"inputs": 0, "loaded": 0, "refused": 0, "since": time.monotonic()}


def _progress(loaded: bool) -> None:
    """Count the inputs; in the long run, a line on stderr every 5,000 (seen with ``-s``)."""
    _RUN["inputs"] += 1
    _RUN["loaded" if loaded else "refused"] += 1
    if LONG and _RUN["inputs"] % 5000 == 0:
        minutes = (time.monotonic() - _RUN["since"]) / 60
        print(
            f"fuzz: {_RUN['inputs']} inputs ({_RUN['loaded']} loaded, {_RUN['refused']} "
            f"refused), 0 crashes, {minutes:.1f} min",
            file=sys.stderr,
            flush=True,
        )


def check(data: bytes) -> None:
    """The loader answers ``data`` with a scenario or its own error, in time."""
    loaded: Loaded | None = None
    error: ScenarioError | None = None
    with time_bound(TIME_BOUND):
        start = time.process_time()
        try:
            loaded = parse_bytes(data, "fuzz.yaml")
        except ScenarioError as exc:
            error = exc
        # measured before the garbage collector is back on: its first pass is not ours
        elapsed = time.process_time() - start
    if error is not None:
        assert error.problems, "a ScenarioError with no problem"
        for problem in error.problems:
            text = str(problem)
            assert text.startswith("fuzz.yaml:"), text
            assert "\n" not in text and "\r" not in text, text
            assert problem.line >= 1 and problem.column >= 1, text
            assert "Hang" not in text, text  # the loader must not swallow the time bound
    else:
        assert isinstance(loaded, Loaded)
    assert elapsed < TIME_BOUND, f"{elapsed:.2f} s of CPU time"
    _progress(loaded is not None)


# -- mutations of the shipped scenarios ---------------------------------------------------------

TOKENS: list[bytes] = [
    b"[",
    b"]",
    b"{",
    b"}",
    b",",
    b": ",
    b":",
    b"- ",
    b"? ",
    b"\n",
    b"\r",
    b"\r\n",
    b"\t",
    b"\n\t",
    b" ",
    b"#",
    b'"',
    b"'",
    b"|",
    b">",
    b"&a ",
    b"*a",
    b"&a [1, 2]",
    b"<<: *a",
    b"<<: ",
    b"!!python/object:os.system ",
    b"!!python/object/apply:os.system [id]",
    b"!!int ",
    b"!!float ",
    b"!!binary ",
    b"!!timestamp ",
    b"!!set ",
    b"!!omap ",
    b"!custom ",
    b"!<tag:x> ",
    b"%YAML 1.1\n---\n",
    b"%TAG ! tag:x,1:\n---\n",
    b"---\n",
    b"...\n",
    b"~",
    b"null",
    b"true",
    b".nan",
    b"-.inf",
    b"1e999999",
    b"0x" + b"f" * 5000,
    b"0o" + b"7" * 5000,
    b"9" * 5000,
    b"-" + b"1" * 4301,
    b"1_000_000",
    b"1:20:30",
    b"2001-13-45",
    b"2001-12-14t21:59:43.10-05:00",
    b"1" + b"0" * 400 + b".5e-999",
    b"\x00",
    b"\x01",
    b"\x1b[31m",
    b"\x7f",
    b"\xc2\x85",
    b"\xc2\x9f",
    b"\xe2\x80\xa8",
    b"\xef\xbb\xbf",
    b"\xef\xbf\xbe",
    b"\xff",
    b"\xfe\xff",
    b"\xc3",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"[" * 5000,
    b"{a: " * 200,
    b"- " * 300,
    b"${",
    b"${fake.",
    b"${x}",
    b"1s",
    b"-1s",
    b"99999999999999999999h",
    b"wait: 1e308",
    b"\\x",
    b'"\\U0010ffff\\x00"',
    b'"\\ud800"',
]

BOMB_LINES = b"".join(
    b"b%d: &b%d [" % (i, i) + b", ".join([b"*b%d" % (i - 1)] * 9) + b"]\n" for i in range(1, 10)
)
BLOCKS: list[bytes] = [
    b"b0: &b0 [x, x, x, x, x, x, x, x, x]\n" + BOMB_LINES,
    b"vars: &v {a: [*v]}\n",
    b"x: &x\n  - *x\n",
    b"".join(b"  c%d: &c%d [*c%d]\n" % (i, i, i - 1) for i in range(1, 150)),
    b"steps:\n" + b"  - wait: 1s\n" * 300,
    b"clients:\n  alice: {token: alice}\n  alice: {token: bob}\n",
    b"? [a, b]\n: c\n",
    b"? {a: b}\n: c\n",
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.integers(0, 10))
        at = draw(st.integers(0, len(data)))
        if kind == 0 and data:  # flip bits of one byte
            i = min(at, len(data) - 1)
            data[i] ^= draw(st.integers(1, 255))
        elif kind == 1:  # truncate
            del data[at:]
        elif kind == 2:  # delete a span
            del data[at : at + draw(st.integers(1, 40))]
        elif kind in (3, 4, 5):  # insert a YAML token
            data[at:at] = draw(st.sampled_from(TOKENS))
        elif kind == 6:  # insert a block at a line start
            start = data.rfind(b"\n", 0, at) + 1
            data[start:start] = draw(st.sampled_from(BLOCKS))
        elif kind == 7:  # duplicate a line
            start = data.rfind(b"\n", 0, at) + 1
            end = data.find(b"\n", at)
            end = len(data) if end < 0 else end + 1
            data[end:end] = data[start:end]
        elif kind == 10:  # insert a YAML token where a value starts
            found = max(data.find(b": ", at), data.find(b"- ", at))
            start = found + 2 if found >= 0 else len(data)
            data[start:start] = draw(st.sampled_from(TOKENS))
        elif kind == 8:  # insert random bytes
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:  # replace indentation by a tab, or re-indent a line
            start = data.rfind(b"\n", 0, at) + 1
            data[start:start] = draw(st.sampled_from([b"\t", b" ", b"   ", b"  - "]))
    return bytes(data)


@FUZZ
@given(mutated())
def test_mutated_scenarios(data: bytes) -> None:
    check(data)


# -- documents generated from the schema's vocabulary ------------------------------------------


def _schema_keys() -> list[str]:
    keys: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.get("properties", {}).items():
                keys.add(k)
                walk(v)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(scenario_json_schema())
    return sorted(keys)


KEYS = _schema_keys()
STEPS = sorted(STEP_MODELS)


class Raw(str):
    """A scalar written as is, unquoted: ``9999...``, ``!!int x``, ``2001-13-45``, ``a\x01b``."""


raws = st.one_of(
    st.integers(1, 6000).map(lambda n: Raw("9" * n)),
    st.integers(1, 6000).map(lambda n: Raw("-0x" + "f" * n)),
    st.integers(1, 400).map(lambda n: Raw("1" + "0" * n + ".5e-" + "9" * n)),
    st.sampled_from(TOKENS).map(lambda b: Raw(b.decode("utf-8", "surrogateescape"))),
    st.text(max_size=8).map(Raw),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    raws,
    st.text(max_size=20),
    st.sampled_from(["1s", "500ms", "10m", "3 years", "alice", "bob", "news", "${x}", "#string"]),
    st.sampled_from(["pending", "done", "none", "latency", "proxy", "", "-", "~", "null"]),
)
keys = st.one_of(st.sampled_from(KEYS), st.sampled_from(STEPS), st.text(max_size=10))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(keys, inner, max_size=5),
        st.dictionaries(st.sampled_from(STEPS), inner, min_size=1, max_size=1),
    ),
    max_leaves=30,
)
documents = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.text(max_size=12), st.sampled_from(["demo.x", "a.b"])),
        "title": scalars,
        "clients": st.one_of(
            st.dictionaries(
                st.sampled_from(["alice", "bob", "carol"]),
                st.dictionaries(st.sampled_from(KEYS), scalars, max_size=3),
                max_size=3,
            ),
            values,
        ),
        "steps": st.lists(
            st.one_of(st.dictionaries(st.sampled_from(STEPS), values, min_size=1, max_size=1)),
            max_size=8,
        ),
        "network": st.one_of(st.just({"proxy": True}), values),
        "vars": values,
        "seed": scalars,
    },
).flatmap(lambda doc: st.one_of(st.just(doc), st.dictionaries(keys, values).map(doc.__or__)))


def _plain_scalar(value: Any, quote: Callable[[Any], str]) -> str:
    if isinstance(value, Raw) or (isinstance(value, str) and value.isidentifier()):
        return value
    return quote(value)


class _Writer:
    """Block or flow YAML for a value, with anchors on some collections and aliases to them."""

    def __init__(self, draw: st.DrawFn) -> None:
        self.draw = draw
        self.anchors: list[str] = []

    def quote(self, value: Any) -> str:
        if isinstance(value, str) and self.draw(st.booleans()):  # raw, unescaped
            return "'" + value.replace("'", "''") + "'"
        return json.dumps(value, ensure_ascii=self.draw(st.booleans()))

    def prefix(self) -> str:
        roll = self.draw(st.integers(0, 9))
        if roll == 0:
            name = f"a{len(self.anchors)}"
            self.anchors.append(name)
            return f"&{name} "
        return ""

    def flow(self, value: Any) -> str:
        if isinstance(value, dict):
            if self.anchors and self.draw(st.integers(0, 7)) == 0:
                return f"*{self.draw(st.sampled_from(self.anchors))}"
            body = ", ".join(f"{self.key(k)}: {self.flow(v)}" for k, v in value.items())
            return self.prefix() + "{" + body + "}"
        if isinstance(value, list):
            return self.prefix() + "[" + ", ".join(self.flow(v) for v in value) + "]"
        return _plain_scalar(value, self.quote)

    def key(self, k: Any) -> str:
        return _plain_scalar(k, self.quote) if not (isinstance(k, str) and "." in k) else k

    def block(self, value: Any, indent: int) -> str:
        pad = " " * indent
        if isinstance(value, dict) and value and self.draw(st.booleans()):
            return "".join(
                f"{pad}{self.key(k)}:" + self.nested(v, indent + 2) for k, v in value.items()
            )
        if isinstance(value, list) and value and self.draw(st.booleans()):
            return "".join(f"{pad}-" + self.nested(v, indent + 2) for v in value)
        return f"{pad}{self.flow(value)}\n"

    def nested(self, value: Any, indent: int) -> str:
        if isinstance(value, dict | list) and value and self.draw(st.booleans()):
            return "\n" + self.block(value, indent)
        return " " + self.flow(value) + "\n"


# the shipped scenarios as plain trees, for edits that keep most of a document valid
SEED_TREES: list[Any] = [
    json.loads(json.dumps(parse_bytes(seed, "seed.yaml").tree, default=str)) for seed in SEEDS
]


def _slots(node: Any) -> Iterator[tuple[Any, Any]]:
    """Every (container, key or index) in a plain tree."""
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for k, v in list(items):
        yield node, k
        if isinstance(v, dict | list) and v:
            yield from _slots(v)


@st.composite
def edited(draw: st.DrawFn) -> Any:
    """A shipped scenario with up to three values replaced, removed or added."""
    tree = copy.deepcopy(draw(st.sampled_from(SEED_TREES)))
    for _ in range(draw(st.integers(0, 3))):
        container, k = draw(st.sampled_from(list(_slots(tree))))
        op = draw(st.integers(0, 2))
        if op == 0:
            container[k] = draw(values)
        elif op == 1:
            del container[k]
        elif isinstance(container, dict):
            container[draw(keys)] = draw(values)
        else:
            container.insert(k, draw(values))
    return tree


@st.composite
def rendered(draw: st.DrawFn) -> bytes:
    doc = draw(st.one_of(documents, edited()))
    if draw(st.integers(0, 4)) == 0:
        text = json.dumps(doc, ensure_ascii=draw(st.booleans()))
    else:
        writer = _Writer(draw)
        text = writer.block(doc, 0) if doc else writer.flow(doc) + "\n"
    return text.encode("utf-8", "surrogatepass")


@FUZZ
@given(rendered())
def test_generated_documents(data: bytes) -> None:
    check(data)


def test_the_seeds_load() -> None:
    """The fuzzers start from valid files: every seed loads."""
    assert len(SEEDS) >= 50
    for seed in SEEDS:
        parse_bytes(seed, "seed.yaml")


def test_a_hang_is_reported() -> None:
    """The time bound works, and leaves no timer behind."""
    with pytest.raises(Hang), time_bound(0.05):
        while True:
            pass
    assert signal.getitimer(signal.ITIMER_PROF) == (0.0, 0.0)
