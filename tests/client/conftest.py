"""Fixtures for the reference client's loopback tests: a real Simulator, compressed time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from squall.client import StreamingClient
from squall.client.wire import ClientWire, client_wire
from squall.clock import LoopClock
from squall.simulator import Simulator

TIMESCALE = 0.01  # one protocol second lasts 10 ms
DEADLINE = 10.0  # real seconds; reached only when something is broken


class Recorder:
    """Every event of one client, awaitable: ``await rec.next("connected")``."""

    def __init__(self, client: StreamingClient) -> None:
        self.events: list[tuple[str, Any]] = []
        self._waiters: list[tuple[str, Callable[[Any], bool], asyncio.Future[Any]]] = []
        self._seen: dict[str, int] = {}
        client.on("*", self._record)

    def _record(self, event: str, data: Any) -> None:
        self.events.append((event, data))
        for waiter in list(self._waiters):
            name, predicate, future = waiter
            if name == event and not future.done() and predicate(data):
                future.set_result(data)
                self._waiters.remove(waiter)

    def names(self, *skip: str) -> list[str]:
        hidden = {"sent", "packet", "status", *skip}
        return [e for e, _ in self.events if e not in hidden]

    def of(self, event: str) -> list[Any]:
        return [d for e, d in self.events if e == event]

    async def next(
        self, event: str, predicate: Callable[[Any], bool] = lambda d: True, *, fresh: bool = True
    ) -> Any:
        """The next ``event`` (from now on if ``fresh``, else the first one ever seen)."""
        if not fresh:
            for name, data in self.events:
                if name == event and predicate(data):
                    return data
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters.append((event, predicate, future))
        return await asyncio.wait_for(future, DEADLINE)


@pytest.fixture
def clock() -> LoopClock:
    return LoopClock(timescale=TIMESCALE)


@pytest.fixture
async def sim(clock: LoopClock, request: pytest.FixtureRequest) -> AsyncIterator[Simulator]:
    """A started Simulator speaking the test module's ``DIALECT`` (default: the reference
    protocol), so each wire's tests share one fixture."""
    dialect = getattr(request.module, "DIALECT", "reference")
    simulator = Simulator(clock=clock, dialect=dialect)
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


Make = Callable[..., tuple[StreamingClient, Recorder]]


@pytest.fixture
async def make_client(sim: Simulator, clock: LoopClock) -> AsyncIterator[Make]:
    """``client, rec = make_client(token="alice", **policy)``: the client speaks the sim's
    dialect (``wire=`` for a wire of the test's own; a dialect with an HTTP prelude gets the
    sim's REST URL); disconnected at teardown."""
    made: list[StreamingClient] = []
    name = sim.dialect.name

    def _make(
        token: str | None = "alice",
        urls: list[str] | None = None,
        wire: ClientWire | None = None,
        **policy: Any,
    ) -> tuple[StreamingClient, Recorder]:
        policy.setdefault("immediate_first_retry", True)
        dialect: ClientWire | str = name
        if name != "reference":
            policy.setdefault("open_timeout", 100.0)  # 1 s real: a loaded machine is no failure
            if wire is None and sim.http_url is not None:
                wire = client_wire(name, server=sim.http_url)
        client = StreamingClient(
            urls or [sim.url], token=token, clock=clock, dialect=wire or dialect, **policy
        )
        made.append(client)
        return client, Recorder(client)

    yield _make
    for client in made:
        await asyncio.wait_for(client.disconnect(), DEADLINE)


@pytest.fixture
def make(make_client: Make) -> Make:
    """The wire tests' name for :func:`make_client`."""
    return make_client


async def server_record(sim: Simulator, predicate: Callable[[dict[str, Any]], bool]) -> Any:
    """Wait until the server transcript has a matching record (listener, no polling)."""
    return await sim.core.transcript.wait_for(predicate, DEADLINE)
