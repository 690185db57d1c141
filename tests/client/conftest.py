"""Fixtures for the reference client's loopback tests: a real Simulator, compressed time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from squall.client import StreamingClient
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
async def sim(clock: LoopClock) -> AsyncIterator[Simulator]:
    simulator = Simulator(clock=clock)
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


@pytest.fixture
async def make_client(
    sim: Simulator, clock: LoopClock
) -> AsyncIterator[Callable[..., tuple[StreamingClient, Recorder]]]:
    """``client, rec = make_client(token="alice", **policy)``; disconnected at teardown."""
    made: list[StreamingClient] = []

    def _make(
        token: str | None = "alice", urls: list[str] | None = None, **policy: Any
    ) -> tuple[StreamingClient, Recorder]:
        policy.setdefault("immediate_first_retry", True)
        client = StreamingClient(urls or [sim.url], token=token, clock=clock, **policy)
        made.append(client)
        return client, Recorder(client)

    yield _make
    for client in made:
        await asyncio.wait_for(client.disconnect(), DEADLINE)


async def server_record(sim: Simulator, predicate: Callable[[dict[str, Any]], bool]) -> Any:
    """Wait until the server transcript has a matching record (listener, no polling)."""
    return await sim.core.transcript.wait_for(predicate, DEADLINE)
