"""``silence`` on a Socket.IO dialect: Engine.IO's own keepalive is withheld too.

A silenced session is a half-dead server (control.py, ``silence``): nothing reaches the
client, pongs included. On the WebSocket endpoint the protocol's pongs are core frames;
Engine.IO keeps alive beneath the core (v4: the server pings; v3: the client pings), so
the transports ask the core's connection whether it is silenced.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
import socketio  # type: ignore[import-untyped]

from squall.clock import LoopClock
from squall.simulator import Simulator

from .test_dialect_reliable_signaler import records

DEADLINE = 20.0  # real seconds: only ever reached when something is broken


@pytest.fixture
async def cafe() -> AsyncIterator[Simulator]:
    """rtccafe (Engine.IO v4) with one-second pings, so a ping timeout comes in seconds."""
    options = {"ping_interval": 1, "ping_timeout": 1}
    sim = Simulator(clock=LoopClock(timescale=0.01), dialect="rtccafe", dialect_options=options)
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


def session_of(sim: Simulator, conn: str) -> str:
    session = sim.core.connections[conn].session
    assert session is not None, f"{conn} is not authenticated"
    return session.id


async def test_v4_a_silenced_session_gets_no_pings_and_its_client_times_out(
    cafe: Simulator,
) -> None:
    quiet, loud = (socketio.AsyncClient(reconnection=False) for _ in range(2))
    gone = asyncio.Event()
    quiet.on("disconnect", lambda *reason: gone.set(), namespace="/rtc-cafe")
    try:
        for client in (quiet, loud):
            await client.connect(cafe.url, namespaces=["/rtc-cafe"], wait_timeout=DEADLINE)
        await cafe.core.transcript.wait_for(
            lambda _: (
                len(cafe.core.connections) == 2
                and all(c.session is not None for c in cafe.core.connections.values())
            ),
            DEADLINE,
        )
        quiet_conn = next(c for c in cafe.core.connections.values() if c.link.id == "c1")
        cafe.silence(session_of(cafe, quiet_conn.sid))
        # python-engineio's client gives up after pingInterval + pingTimeout with no ping
        await asyncio.wait_for(gone.wait(), DEADLINE)
        assert loud.connected, "silence reached a session it was not asked for"
        assert quiet_conn.silenced
    finally:
        await quiet.disconnect()
        await loud.disconnect()


@pytest.fixture
async def signaler() -> AsyncIterator[Simulator]:
    sim = Simulator(clock=LoopClock(timescale=0.01), dialect="reliable-signaler")
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


async def test_v3_a_silenced_session_answers_no_client_ping(signaler: Simulator) -> None:
    """socket.io-client 2 pings (``2``) and waits for ``3``: a ping sent while silenced is
    never answered, one sent after the silence is lifted is."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(DEADLINE)) as http:
        url = signaler.url + "socket.io/?EIO=3&transport=polling&b64=1&token=alice"
        async with http.get(url) as r:
            first = records(await r.text())
        sid = json.loads(first[0][1:])["sid"]
        url += f"&sid={sid}"
        await signaler.core.transcript.wait_for(
            lambda _: any(c.session for c in signaler.core.connections.values()), DEADLINE
        )
        conn = next(iter(signaler.core.connections.values()))
        session = session_of(signaler, conn.sid)

        async def ping(data: str) -> None:
            async with http.post(url, data=f"{len(data) + 1}:2{data}") as r:
                assert r.status == 200, await r.text()

        signaler.silence(session)
        await ping("withheld")
        signaler.silence(session, silent=False)
        await ping("answered")
        heard: list[str] = []
        for _ in range(10):  # bounded: a few polls carry the answer at the latest
            async with http.get(url) as r:
                heard.extend(p for p in records(await r.text()) if p.startswith("3"))
            if "3answered" in heard:
                break
        assert heard == ["3answered"], heard
