"""Byte-level toxics with Toxiproxy 2.12's semantics (``toxics/*.go``).

Theory of operation: each direction of a proxied connection is a *link*, a
chain of *stages* joined by :class:`Channel` FIFOs. A stage runs one toxic's
:meth:`Toxic.pipe` as a task over a :class:`Stub` (its input channel, its
output, its per-link state). Rules, as in Toxiproxy:

1. A chunk carries the clock time it was read; ``None`` in a channel is EOF.
2. ``stub.close()`` ends the stream: EOF goes downstream and the link's writer
   closes the destination socket, which ends the whole connection.
3. Toxicity is rolled once when a stage starts (per connection and direction).
4. A stage is *interrupted* (task cancelled) to update or remove its toxic; a
   toxic parks every chunk it still owes in ``stub.held`` before it awaits, and
   the stage flushes those in order on interrupt, so no byte is lost.

Attributes are decoded like Go's ``encoding/json`` into the toxic's struct:
unknown keys ignored, missing keys zero, wrong JSON types refused.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import math
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from ..clock import wait_for
from .errors import BAD_REQUEST_BODY, ApiError
from .gojson import Number

if TYPE_CHECKING:
    import random

    from ..clock import Clock
    from .proxy import Stage  # proxy imports this module: the annotation only

TIMEOUT = object()  # returned by Stub.recv_within when nothing arrived in time
MAX_WAIT = 1e8  # seconds (three years): any longer wait is as good as forever, and safe for timers
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


def _wait(seconds: float) -> float:
    """A toxic's wait in clock seconds, made finite and bounded (int64 milliseconds can overflow
    an event loop's timer arithmetic)."""
    return min(max(0.0, seconds), MAX_WAIT)


@dataclasses.dataclass(slots=True)
class Chunk:
    """Bytes read from a socket, stamped with the clock time they arrived (Go's StreamChunk)."""

    data: bytes
    ts: float


class Channel:
    """Unbounded FIFO between stages; ``get`` is cancel-safe (nothing is popped while waiting).

    ``loop`` is the loop it runs on, kept because ``asyncio.get_running_loop()`` costs a
    ``getpid()`` and ``get`` waits once per chunk; without one it is looked up once.
    """

    __slots__ = ("_loop", "_waiter", "items", "on_get")

    def __init__(
        self,
        on_get: Callable[[], None] | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.items: collections.deque[Chunk | None] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self.on_get = on_get
        self._loop = loop

    def put(self, item: Chunk | None) -> None:
        self.items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> Chunk | None:
        while not self.items:
            loop = self._loop
            if loop is None:
                loop = self._loop = asyncio.get_running_loop()
            self._waiter = loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        item = self.items.popleft()
        if self.on_get is not None:
            self.on_get()
        return item

    def nbytes(self) -> int:
        return sum(len(c.data) for c in self.items if c is not None)


class Stub:
    """What a running toxic sees: its input, its output, its state, the link's rng and clock."""

    def __init__(self, stage: Stage) -> None:
        self.stage = stage
        self.input: Channel = stage.input
        self.held: collections.deque[Chunk] = collections.deque()
        self.closed = False

    @property
    def state(self) -> Any:
        return self.stage.state

    @property
    def rng(self) -> random.Random:
        return self.stage.link.rng

    @property
    def clock(self) -> Clock:
        return self.stage.link.clock

    @property
    def attributes(self) -> dict[str, Any]:
        return self.stage.spec.toxic.attributes

    async def recv(self) -> Chunk | None:
        return await self.input.get()

    async def recv_within(self, seconds: float) -> Any:
        """A chunk, ``None`` for EOF, or :data:`TIMEOUT` after ``seconds`` of clock time."""
        try:
            return await wait_for(self.clock, self.input.get(), _wait(seconds))
        except TimeoutError:
            return TIMEOUT

    def send(self, chunk: Chunk) -> None:
        if not self.closed:
            self.stage.output.put(chunk)

    async def sleep(self, seconds: float) -> None:
        await self.clock.sleep(_wait(seconds))

    async def hold_for(self, chunk: Chunk, seconds: float) -> None:
        """Keep ``chunk`` for ``seconds`` then send it; an interrupt sends it at once."""
        self.held.append(chunk)
        await self.sleep(seconds)
        self.held.popleft()
        self.send(chunk)

    def close(self) -> None:
        if not self.closed:
            self.stage.output.put(None)
            self.closed = True

    def event(self, action: str, **detail: Any) -> None:
        self.stage.link.event(action, toxic=self.stage.spec.name, **detail)


# -- attribute decoding (Go encoding/json rules) ---------------------------------------------

_JSON_KIND = {bool: "bool", int: "number", float: "number", str: "string", list: "array"}


def _json_kind(value: Any) -> str:
    return "object" if isinstance(value, dict) else _JSON_KIND.get(type(value), "value")


def _literal(value: Any) -> str:
    """A number as Go's messages print it: the literal as sent."""
    return value.literal if isinstance(value, Number) else repr(value)


def _number_error(value: Any, gotype: str, where: str) -> ApiError:
    return BAD_REQUEST_BODY.joined(
        f"json: cannot unmarshal number {_literal(value)} into Go struct field {where} "
        f"of type {gotype}"
    )


def _fits_float32(value: float) -> bool:
    try:
        struct.pack("<f", value)
    except OverflowError:
        return False
    return True


def decode_field(value: Any, gotype: str, where: str) -> Any:
    """Check one JSON value against a Go field type; raise Toxiproxy's 400 otherwise.

    Numbers are range-checked as Go's ``strconv`` does: an ``int64`` field refuses
    2^63, a ``float32`` one refuses 1e39, and no field takes NaN or an infinity.
    """
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if gotype in ("int", "int64"):
        if is_number and (not isinstance(value, int) or not INT64_MIN <= value <= INT64_MAX):
            raise _number_error(value, gotype, where)
        ok = is_number
    elif gotype in ("float32", "float64"):
        if is_number:
            try:
                number = float(value)
            except OverflowError:
                number = math.inf
            if not math.isfinite(number) or (gotype == "float32" and not _fits_float32(number)):
                raise _number_error(value, gotype, where)
            return number
        ok = False
    elif gotype == "string":
        ok = isinstance(value, str)
    elif gotype == "bool":
        ok = isinstance(value, bool)
    else:
        ok = False
    if not ok:
        raise BAD_REQUEST_BODY.joined(
            f"json: cannot unmarshal {_json_kind(value)} into Go struct field {where} "
            f"of type {gotype}"
        )
    return value


def lookup(obj: dict[str, Any], key: str) -> tuple[bool, Any]:
    """Go's field matching: keys equal to ``key`` or to it case-insensitively; the last wins.

    Go assigns each matching key in document order, and a ``null`` leaves the field as it
    was, so the answer is the last non-null match (or a null when every match is null).
    """
    found, answer = False, None
    for k, v in obj.items():
        if k == key or k.lower() == key:
            if v is not None or not found:
                answer = v
            found = True
    return found, answer


# -- the toxic registry ------------------------------------------------------------------------


class Toxic:
    """A toxic type: its attribute struct (name -> Go type) and its pipe.

    One instance per configured toxic holds the current ``attributes``; the
    per-connection state lives on the stage (``new_state``), so updates keep it.
    """

    type: ClassVar[str] = ""
    struct: ClassVar[str] = ""  # Go struct name, for error messages
    fields: ClassVar[dict[str, str]] = {}
    defaults: ClassVar[dict[str, Any]] = {}
    squall_only: ClassVar[bool] = False
    connection_level: ClassVar[bool] = False  # acts when a connection is accepted
    fresh_only: ClassVar[bool] = False  # only for connections that start with it in place

    def __init__(self) -> None:
        self.attributes: dict[str, Any] = {
            k: self.defaults.get(k, "" if t == "string" else 0) for k, t in self.fields.items()
        }

    def merge(self, raw: Any) -> None:
        """Decode ``raw`` (the JSON ``attributes`` value) onto the current values."""
        if raw is None:
            return
        if not isinstance(raw, dict):
            raise BAD_REQUEST_BODY.joined(
                f"json: cannot unmarshal {_json_kind(raw)} into Go value of type "
                f"*toxics.{self.struct}"
            )
        new = dict(self.attributes)
        for key, gotype in self.fields.items():
            found, value = lookup(raw, key)
            if found and value is not None:
                new[key] = decode_field(value, gotype, f"{self.struct}.attributes.{key}")
        self.validate(new)
        self.attributes = new

    def validate(self, attributes: dict[str, Any]) -> None:
        """Squall-only toxics refuse values that cannot work; Toxiproxy's accept anything."""

    def new_state(self) -> Any:
        return None

    def cleanup(self, stub: Stub) -> None:
        """Called when the toxic is removed from a live link (``CleanupToxic``)."""

    def drain(self, state: Any) -> list[Chunk]:
        """Bytes a removed toxic still owes from its per-link state (frame toxics)."""
        return []

    async def pipe(self, stub: Stub) -> None:
        raise NotImplementedError


REGISTRY: dict[str, type[Toxic]] = {}


def register(cls: type[Toxic]) -> type[Toxic]:
    REGISTRY[cls.type] = cls
    return cls


async def passthrough(stub: Stub) -> None:
    """Toxiproxy's ``NoopToxic``: what a stage runs when its toxicity roll fails."""
    while True:
        c = await stub.recv()
        if c is None:
            stub.close()
            return
        stub.send(c)


@register
class Noop(Toxic):
    type = "noop"
    struct = "NoopToxic"

    async def pipe(self, stub: Stub) -> None:
        await passthrough(stub)


@register
class Latency(Toxic):
    """Delay each chunk by ``latency`` ± ``jitter`` ms, counted from when it was read."""

    type = "latency"
    struct = "LatencyToxic"
    fields = {"latency": "int64", "jitter": "int64"}

    async def pipe(self, stub: Stub) -> None:
        while True:
            c = await stub.recv()
            if c is None:
                stub.close()
                return
            delay = self.attributes["latency"]
            jitter = self.attributes["jitter"]
            if jitter > 0:
                delay += stub.rng.randrange(jitter * 2) - jitter
            sleep = delay / 1000 - (stub.clock.now() - c.ts)
            c.ts += sleep  # stacked latency toxics add up, as in Go
            await stub.hold_for(c, sleep)


@register
class Bandwidth(Toxic):
    """At most ``rate`` KB/s; chunks over 100 ms worth are cut into 100 ms slices."""

    type = "bandwidth"
    struct = "BandwidthToxic"
    fields = {"rate": "int64"}

    async def pipe(self, stub: Stub) -> None:
        sleep = 0.0
        clock = stub.clock
        while True:
            c = await stub.recv()
            if c is None:
                stub.close()
                return
            rate = self.attributes["rate"]
            if rate <= 0:
                stub.send(c)  # Toxiproxy: <= 0 is unlimited
                sleep = 0.0
                continue
            sleep += len(c.data) / (rate * 1000)
            data = c.data
            step = rate * 100
            while len(data) > step:
                stub.held.append(Chunk(data, c.ts))
                await stub.sleep(0.1)
                stub.held.popleft()
                stub.send(Chunk(data[:step], c.ts))
                data = data[step:]
                sleep -= 0.1
            start = clock.now()
            await stub.hold_for(Chunk(data, c.ts), sleep)
            sleep -= clock.now() - start


@register
class SlowClose(Toxic):
    """Pass data; on EOF wait ``delay`` ms before closing."""

    type = "slow_close"
    struct = "SlowCloseToxic"
    fields = {"delay": "int64"}

    async def pipe(self, stub: Stub) -> None:
        while True:
            c = await stub.recv()
            if c is None:
                await stub.sleep(self.attributes["delay"] / 1000)
                stub.event("slow_close")
                stub.close()
                return
            stub.send(c)


@register
class Timeout(Toxic):
    """Swallow all data; close after ``timeout`` ms without input (0: hold forever).

    Go restarts its ``time.After`` on every loop turn, so each chunk re-arms it.
    Removing the toxic closes the connection (``Cleanup``).
    """

    type = "timeout"
    struct = "TimeoutToxic"
    fields = {"timeout": "int64"}

    async def pipe(self, stub: Stub) -> None:
        timeout = self.attributes["timeout"]
        while True:
            c = await (stub.recv_within(timeout / 1000) if timeout > 0 else stub.recv())
            if c is TIMEOUT:
                stub.event("timeout", after_ms=timeout)
                stub.close()
                return
            if c is None:
                stub.close()
                return

    def cleanup(self, stub: Stub) -> None:
        stub.event("timeout.removed")
        stub.close()


@register
class ResetPeer(Toxic):
    """On the first chunk (or EOF), wait ``timeout`` ms, then close with a TCP RST."""

    type = "reset_peer"
    struct = "ResetToxic"
    fields = {"timeout": "int64"}

    async def pipe(self, stub: Stub) -> None:
        await stub.recv()  # the chunk is dropped, as in Go
        await stub.sleep(self.attributes["timeout"] / 1000)
        stub.stage.link.connection.set_linger0()
        stub.event("reset_peer")
        stub.close()


@register
class Slicer(Toxic):
    """Cut chunks into ``average_size`` ± ``size_variation`` byte slices ``delay`` µs apart."""

    type = "slicer"
    struct = "SlicerToxic"
    fields = {"average_size": "int", "size_variation": "int", "delay": "int"}

    def offsets(self, rng: random.Random, start: int, end: int) -> list[int]:
        avg = max(1, self.attributes["average_size"])  # Go recurses forever on 0
        var = max(0, self.attributes["size_variation"])
        out: list[int] = []
        stack = [(start, end)]
        while stack:
            a, b = stack.pop()
            if (b - a) - avg <= var:
                out += (a, b)
                continue
            mid = a + (b - a) // 2
            if var > 0:
                mid += rng.randrange(var * 2) - var
            mid = min(max(mid, a), b)
            stack.append((mid, b))
            stack.append((a, mid))
        return out

    async def pipe(self, stub: Stub) -> None:
        while True:
            c = await stub.recv()
            if c is None:
                stub.close()
                return
            cuts = self.offsets(stub.rng, 0, len(c.data))
            delay = self.attributes["delay"] / 1_000_000
            for i in range(1, len(cuts), 2):
                stub.send(Chunk(c.data[cuts[i - 1] : cuts[i]], c.ts))
                rest = c.data[cuts[i] :]
                stub.held.append(Chunk(rest, c.ts))
                await stub.sleep(delay)
                stub.held.popleft()


@dataclasses.dataclass
class _LimitState:
    transmitted: int = 0


@register
class LimitData(Toxic):
    """Forward at most ``bytes`` per connection and direction, then close."""

    type = "limit_data"
    struct = "LimitDataToxic"
    fields = {"bytes": "int64"}

    def new_state(self) -> Any:
        return _LimitState()

    async def pipe(self, stub: Stub) -> None:
        state: _LimitState = stub.state
        remaining = self.attributes["bytes"] - state.transmitted
        while True:
            c = await stub.recv()
            if c is None:
                stub.close()
                return
            remaining = max(0, remaining)
            if remaining < len(c.data):
                c = Chunk(c.data[:remaining], c.ts)
            if c.data:
                stub.send(c)
                state.transmitted += len(c.data)
            remaining = self.attributes["bytes"] - state.transmitted
            if remaining <= 0:
                stub.event("limit_data", bytes=state.transmitted)
                stub.close()
                return


@register
class PacketLoss(Toxic):
    """Drop whole chunks with probability ``loss_rate``; ``correlation`` repeats the last choice.

    Toxiproxy merged a ``packet_loss`` toxic after 2.12 (PR #739); this follows
    its attributes (``loss_rate`` default 0.1) with a netem-style correlation.
    """

    type = "packet_loss"
    struct = "PacketLossToxic"
    fields = {"loss_rate": "float64", "correlation": "float64"}
    defaults = {"loss_rate": 0.1, "correlation": 0.0}

    async def pipe(self, stub: Stub) -> None:
        dropping = False
        rng = stub.rng
        while True:
            c = await stub.recv()
            if c is None:
                stub.close()
                return
            if not rng.random() < self.attributes["correlation"]:
                dropping = rng.random() < self.attributes["loss_rate"]
            if dropping:
                stub.event("packet_loss", bytes=len(c.data))
            else:
                stub.send(c)


# -- squall-only byte toxics ------------------------------------------------------------------


@register
class LimitTime(Toxic):
    """Cut the connection ``time`` ms after the toxic starts on it, even while data flows.

    Toxiproxy users asked for this (PR #195); ``timeout`` only fires on silence.
    """

    type = "limit_time"
    struct = "LimitTimeToxic"
    fields = {"time": "int64"}
    squall_only = True

    def new_state(self) -> Any:
        return {"deadline": None}

    async def pipe(self, stub: Stub) -> None:
        state = stub.state
        if state["deadline"] is None:
            state["deadline"] = stub.clock.now() + self.attributes["time"] / 1000
        while True:
            c = await stub.recv_within(state["deadline"] - stub.clock.now())
            if c is TIMEOUT:
                stub.event("limit_time", after_ms=self.attributes["time"])
                stub.close()
                return
            if c is None:
                stub.close()
                return
            stub.send(c)


class _FirstConnections(Toxic):
    """Acts on accept: the first ``connections`` accepted while the toxic exists."""

    fields = {"connections": "int64"}
    squall_only = True
    connection_level = True

    def __init__(self) -> None:
        super().__init__()
        self.seen = 0

    def claim(self) -> bool:
        """Count one accepted connection; True if this one must be refused."""
        self.seen += 1
        limit: int = self.attributes["connections"]
        return self.seen <= limit

    async def pipe(self, stub: Stub) -> None:
        await passthrough(stub)


@register
class RefuseFirst(_FirstConnections):
    """Close the first N connections at once, before dialing upstream (FIN)."""

    type = "refuse_first"
    struct = "RefuseFirstToxic"


@register
class ResetFirst(_FirstConnections):
    """Reset the first N connections at once, before dialing upstream (RST)."""

    type = "reset_first"
    struct = "ResetFirstToxic"


def new_toxic(type_name: str) -> Toxic | None:
    cls = REGISTRY.get(type_name)
    return cls() if cls is not None else None


def require(condition: bool, message: str) -> None:
    if not condition:
        raise ApiError(message, 400)
