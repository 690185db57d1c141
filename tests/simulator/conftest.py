"""A real simulator on loopback and a raw protocol client, for the simulator's own tests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from squall.clock import LoopClock
from squall.simulator import Simulator

# Protocol time runs 100x faster than real time in these tests: a 1 s drain window is 10 ms.
TIMESCALE = 0.01
DEADLINE = 10.0  # real seconds: generous, only ever reached when something is broken


class RawClient:
    """Speaks the wire protocol by hand, so tests see exactly what the server sends."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def send(self, **frame: Any) -> None:
        await self.ws.send(json.dumps(frame))

    async def recv(self) -> dict[str, Any]:
        return json.loads(await asyncio.wait_for(self.ws.recv(), DEADLINE))

    async def expect(self, mtype: str, **fields: Any) -> dict[str, Any]:
        frame = await self.recv()
        assert frame["type"] == mtype, f"expected {mtype!r}, got {frame}"
        for key, value in fields.items():
            assert frame[key] == value, f"{key}: expected {value!r}, got {frame}"
        return frame

    async def closed(self) -> tuple[int | None, str]:
        """Wait for the server to close; returns (code, reason) of its close frame."""
        try:
            while True:
                await asyncio.wait_for(self.ws.recv(), DEADLINE)
        except ConnectionClosed as exc:
            return (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else (None, "")

    async def close(self) -> None:
        await self.ws.close()


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(clock=LoopClock(timescale=TIMESCALE))
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


@pytest.fixture
async def open_client(sim: Simulator) -> AsyncIterator[Any]:
    """``await open_client("alice")``: connected and authenticated through the URL."""
    opened: list[RawClient] = []

    async def _open(
        token: str | None = "alice",
        *,
        authenticate: bool = True,
        url: str | None = None,
        **headers: str,
    ) -> RawClient:
        target = url or sim.url
        if token is not None and url is None:
            target += f"?token={token}"
        ws = await connect(
            target, additional_headers=headers or None, compression=None, proxy=None, max_size=None
        )
        client = RawClient(ws)
        opened.append(client)
        if authenticate and token is not None:
            await client.expect("authenticated")
        return client

    yield _open
    await asyncio.gather(*(client.ws.close() for client in opened), return_exceptions=True)


async def wait_for_record(sim: Simulator, predicate: Any) -> dict[str, Any]:
    """Wait until the server transcript holds a record matching ``predicate`` (no polling)."""
    return await sim.core.transcript.wait_for(predicate, DEADLINE)
