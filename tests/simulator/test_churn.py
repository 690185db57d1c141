"""Churn: thousands of connect / disconnect cycles against one Simulator leave nothing behind.

The cycles (:data:`MIX`, in waves of ``WAVE``, ``CONCURRENCY`` at a time) cover the ways a
connection ends: authenticated through the URL or an ``auth`` frame and closed, or reset
(RST, no close frame); closed before auth, or while the ``auth`` frame is in flight; dropped
mid-handshake (FIN or RST after half an upgrade request); and *half-open*: a TCP
connection that never sends anything, an upgraded WebSocket that never authenticates, an
authenticated one, each abandoned without a close. The server must reclaim the first two
itself (``open_timeout``, ``auth_timeout``, checked: the client sees EOF, or the 1008 close
frame); nothing tells it about the third (no FIN, and the simulator has no idle timeout), so
the client side finally goes away (RST) at the end of its wave, as a killed process would.

Afterwards, with every connection gone and every detached session expired, the process's
file descriptors (psutil), asyncio tasks, RSS and the core's tables (connections, sessions,
tokens, topics, rooms), the server's connection set and close tasks are back to the
baseline taken after a warm-up wave, within a generous bound.

``pytest`` runs ``CI_CYCLES`` (1,000, a few seconds); ``SQUALL_SOAK_LONG=1`` runs 10,000, and
``SQUALL_CHURN_CYCLES=N`` any number. bench/bench_churn.py has the rates and the figures.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import psutil
import pytest
from websockets.asyncio.client import connect

from squall.clock import LoopClock
from squall.simulator import Simulator
from squall.simulator.core import Config

from .conftest import DEADLINE

LONG = os.environ.get("SQUALL_SOAK_LONG", "") not in ("", "0")
CI_CYCLES = 1_000
CYCLES = int(os.environ.get("SQUALL_CHURN_CYCLES") or (10_000 if LONG else CI_CYCLES))
WAVE = 500  # cycles between two reclaim checks (bounds the sockets held open at once)
CONCURRENCY = 25
TIMESCALE = 0.01  # protocol time: auth_timeout 300 s = 3 s, recovery_window 30 s = 0.3 s
OPEN_TIMEOUT = 1.0  # real seconds for the opening handshake (generous: a loaded machine)

#: what may remain after the churn, beyond the warm-up baseline
FD_SLACK = 4
TASK_SLACK = 2
RSS_SLACK = 24 * 2**20 + 2 * 2**10 * CYCLES  # 24 MiB + 2 KiB a cycle: a leak is far more

pytestmark = pytest.mark.timeout(0 if CYCLES > CI_CYCLES else 120)

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455's sample key: any 16 bytes, base64


def upgrade_request(host: str, port: int, path: str = "/") -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


class Churn:
    """One cycle per method; half-open ones are kept in ``abandoned`` until their wave ends."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.host, self.port = sim.servers[0].sockets[0].getsockname()[:2]
        self.abandoned: list[tuple[str, asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.counts: dict[str, int] = {}

    async def auth_url(self, i: int) -> None:
        async with connect(f"{self.sim.url}?token=u{i}", proxy=None) as ws:
            await asyncio.wait_for(ws.recv(), DEADLINE)

    async def auth_frame(self, i: int) -> None:
        async with connect(self.sim.url, proxy=None) as ws:
            await ws.send(f'{{"type": "auth", "token": "u{i}"}}')
            await asyncio.wait_for(ws.recv(), DEADLINE)

    async def auth_then_reset(self, i: int) -> None:
        ws = await connect(f"{self.sim.url}?token=u{i}", proxy=None)
        await asyncio.wait_for(ws.recv(), DEADLINE)
        ws.transport.abort()  # RST: no close frame, no FIN
        await ws.wait_closed()

    async def closed_before_auth(self, i: int) -> None:
        async with connect(self.sim.url, proxy=None):
            pass

    async def closed_during_auth(self, i: int) -> None:
        async with connect(self.sim.url, proxy=None) as ws:
            await ws.send(f'{{"type": "auth", "token": "u{i}"}}')  # and close at once

    async def mid_handshake(self, i: int) -> None:
        _, writer = await asyncio.open_connection(self.host, self.port)
        writer.write(upgrade_request(self.host, self.port)[:40])
        await writer.drain()
        if i % 2:
            writer.transport.abort()
        else:
            writer.close()
        await writer.wait_closed()

    async def half_open_tcp(self, i: int) -> None:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        self.abandoned.append(("tcp", reader, writer))

    async def half_open_ws(self, i: int) -> None:
        await self._upgraded("ws", "/")

    async def half_open_authenticated(self, i: int) -> None:
        await self._upgraded("authenticated", f"/?token=u{i}")

    async def _upgraded(self, kind: str, path: str) -> None:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        writer.write(upgrade_request(self.host, self.port, path))
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DEADLINE)
        assert head.startswith(b"HTTP/1.1 101 "), head
        self.abandoned.append((kind, reader, writer))

    async def end_wave(self) -> None:
        """The server reclaimed what it can by itself; then the client side goes away."""

        async def settle(kind: str, reader: asyncio.StreamReader) -> None:
            if kind == "tcp":  # open_timeout: the server drops the connection, no response
                assert await asyncio.wait_for(reader.read(), DEADLINE) == b""
            elif kind == "ws":  # auth_timeout: a 1008 close frame (0x88, then 2 + reason)
                data = await asyncio.wait_for(reader.readexactly(4), DEADLINE)
                assert data[0] == 0x88 and int.from_bytes(data[2:4], "big") == 1008, data

        held = self.abandoned
        self.abandoned = []
        await asyncio.gather(*(settle(kind, reader) for kind, reader, _ in held))
        for _, _, writer in held:
            writer.transport.abort()


MIX: list[Callable[[Churn, int], Awaitable[None]]] = [
    Churn.auth_url,
    Churn.auth_url,
    Churn.auth_url,
    Churn.auth_frame,
    Churn.auth_frame,
    Churn.auth_then_reset,
    Churn.closed_before_auth,
    Churn.closed_during_auth,
    Churn.closed_during_auth,
    Churn.mid_handshake,
    Churn.mid_handshake,
    Churn.half_open_tcp,
    Churn.half_open_ws,
    Churn.half_open_authenticated,
]


async def run_cycles(churn: Churn, start: int, count: int) -> None:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int) -> None:
        cycle = MIX[i % len(MIX)]
        async with gate:
            await cycle(churn, i)
        churn.counts[cycle.__name__] = churn.counts.get(cycle.__name__, 0) + 1

    for wave in range(start, start + count, WAVE):
        await asyncio.gather(*(one(i) for i in range(wave, min(wave + WAVE, start + count))))
        await churn.end_wave()


async def quiesce(sim: Simulator) -> None:
    """Every connection gone, every detached session expired: awaited on the transcript."""
    core = sim.core
    await core.transcript.wait_for(lambda _: not core.connections, DEADLINE)
    await core.transcript.wait_for(lambda _: not core.sessions, DEADLINE)
    for server in sim.servers:
        deadline = time.monotonic() + DEADLINE
        while server.connections and time.monotonic() < deadline:  # websockets' own set
            await asyncio.sleep(0.01)
    if sim._tasks:
        await asyncio.wait(sim._tasks, timeout=DEADLINE)
    gc.collect()


def snapshot(sim: Simulator) -> dict[str, Any]:
    core = sim.core
    process = psutil.Process()
    return {
        "fds": process.num_fds(),
        "tasks": len(asyncio.all_tasks()),
        "rss": process.memory_info().rss,
        "connections": len(core.connections),
        "sessions": len(core.sessions),
        "by_token": len(core.by_token),
        "topics": sum(len(s) for s in core.topics.values()),
        "rooms": len(core.rooms),
        "server_connections": sum(len(s.connections) for s in sim.servers),
        "close_tasks": len(sim._tasks),
        "expired_tokens": len(core.expired_tokens),
    }


@pytest.fixture
async def churned() -> AsyncIterator[Simulator]:
    sim = Simulator(
        clock=LoopClock(timescale=TIMESCALE),
        # auth_timeout: 3 real seconds, so a cycle that authenticates by frame on a loaded
        # machine is never cut, and half-open upgraded sockets are still reclaimed soon
        config=Config(recovery_window=30.0, auth_timeout=300.0),
        open_timeout=OPEN_TIMEOUT,
        transcript_max_records=2000,
    )
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


async def test_churn_leaves_nothing_behind(churned: Simulator) -> None:
    sim = churned
    churn = Churn(sim)
    await run_cycles(churn, 0, 2 * len(MIX) * 4)  # warm-up: caches, pools, first allocations
    await quiesce(sim)
    before = snapshot(sim)
    churn.counts.clear()
    started = time.monotonic()
    await run_cycles(churn, 10**6, CYCLES)
    took = time.monotonic() - started
    await quiesce(sim)
    after = snapshot(sim)
    print(
        f"\nchurn: {CYCLES} cycles in {took:.1f}s ({CYCLES / took:.0f}/s); before {before}; "
        f"after {after}; mix {churn.counts}",
        file=sys.stderr,
    )
    assert after["fds"] <= before["fds"] + FD_SLACK, (before, after)
    assert after["tasks"] <= before["tasks"] + TASK_SLACK, (before, after)
    assert after["rss"] - before["rss"] <= RSS_SLACK, (before, after)
    for table in ("connections", "sessions", "by_token", "topics", "rooms"):
        assert after[table] == 0, (table, after)
    assert after["server_connections"] == after["close_tasks"] == 0, after
    # Sanity: the churn did what it says (a cycle that failed early would have raised).
    authenticated = sum(
        n
        for name, n in churn.counts.items()
        if name in ("auth_url", "auth_frame", "auth_then_reset", "half_open_authenticated")
    )
    assert authenticated > CYCLES // 3
    assert len(sim.core.transcript) > 5 * CYCLES  # the ring kept 2000, the rest were dropped


async def test_expired_recovery_tokens_are_bounded(churned: Simulator) -> None:
    """Found by the churn test: every session that expires leaves its recovery token (and
    the count it lost) in ``core.expired_tokens`` so that a late recovery can say
    ``expired`` rather than ``unknown``; only the newest ``Config.expired_tokens_kept`` stay
    (before the bound, a ``squall serve`` that saw a million sessions held a million)."""
    sim = churned
    sim.core.config.expired_tokens_kept = 50
    churn = Churn(sim)
    await run_cycles(churn, 0, 300)
    await quiesce(sim)
    assert len(sim.core.expired_tokens) == 50, len(sim.core.expired_tokens)
