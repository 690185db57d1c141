"""Real aiortc peers on 127.0.0.1 through a real simulator: fixtures for the WebRTC tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aioice.stun
import pytest

from squall.client.webrtc import WebRTCClient
from squall.media import ice
from squall.simulator import Simulator

DEADLINE = 10.0  # real seconds: generous, only ever reached when something is broken
MEDIA_WINDOW = 1.0  # seconds of media per measurement: a measurement, not a wait for an event

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def _fast_stun_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """aiortc's own tests shorten STUN retries so a failing check fails fast, not in 8 s."""
    monkeypatch.setattr(aioice.stun, "RETRY_MAX", 2)
    monkeypatch.setattr(aioice.stun, "RETRY_RTO", 0.1)


@pytest.fixture(autouse=True)
def _loopback_scope_is_released() -> Any:
    """Every test closes every peer: afterwards aioice gathers as it did before."""
    yield
    assert not ice.active(), "a peer was not closed: loopback ICE is still patched in"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator()
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


@pytest.fixture
async def make_client(
    sim: Simulator,
) -> AsyncIterator[Callable[..., Awaitable[WebRTCClient]]]:
    """``await make_client("alice")``: a WebRTC client connected to the simulator."""
    made: list[WebRTCClient] = []

    async def _make(token: str, *, room: str | None = None, **kwargs: Any) -> WebRTCClient:
        client = WebRTCClient(urls=[sim.url], token=token, **kwargs)
        made.append(client)
        await client.connect()
        if room is not None:
            await client.join_room(room)
        return client

    yield _make
    await asyncio.gather(*(c.close() for c in made))


async def connected(a: WebRTCClient, b: WebRTCClient) -> None:
    """Wait until each of two clients has fired connect_to_peer for the other."""
    await asyncio.gather(
        a.events.wait_for("connect_to_peer", lambda sid: sid == b.sid, timeout=DEADLINE),
        b.events.wait_for("connect_to_peer", lambda sid: sid == a.sid, timeout=DEADLINE),
    )
