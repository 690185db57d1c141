"""wss through the fault proxy: TLS passes end to end (the proxy is a TCP proxy, as Toxiproxy
is), the client verifies the simulator's certificate through it, byte toxics still act, and
frame toxics say they cannot see into TLS instead of holding or changing bytes."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import connect

from squall.client import StreamingClient
from squall.clock import LoopClock
from squall.faults import ProxyServer
from squall.simulator import Simulator

from .conftest import DEADLINE, OPEN_TIMEOUT


@pytest.fixture
async def proxy(clock: LoopClock, sim: Simulator) -> AsyncIterator[tuple[ProxyServer, str]]:
    """A proxy in front of the TLS simulator; yields the server and the wss URL through it."""
    async with ProxyServer(port=0, clock=clock, seed=11) as srv:
        upstream = sim.url.removeprefix("wss://").rstrip("/")
        made = await srv.collection.create(
            {"name": "wss", "listen": "127.0.0.1:0", "upstream": upstream}
        )
        yield srv, f"wss://{made.to_json()['listen']}/"


async def add(srv: ProxyServer, type_: str, stream: str, **attributes: Any) -> None:
    await srv.collection.add_toxic(
        "wss",
        {"type": type_, "stream": stream, "name": f"{type_}_{stream}", "attributes": attributes},
    )


def actions(srv: ProxyServer) -> list[str]:
    return [e.action for e in srv.events]


async def test_verified_wss_session_through_latency_slicer_and_limit_data(
    proxy: tuple[ProxyServer, str], sim: Simulator, ca_file: str
) -> None:
    """Every TLS record cut into ~7-byte slices and delayed: the MAC of each record proves no
    byte changed, and the certificate (for 127.0.0.1, the proxy's address too) verifies."""
    srv, url = proxy
    for stream in ("upstream", "downstream"):
        await add(srv, "latency", stream, latency=50, jitter=10)
        await add(srv, "slicer", stream, average_size=7, size_variation=3, delay=10)
        await add(srv, "limit_data", stream, bytes=1 << 20)  # counts, never reached here
    client = StreamingClient(
        url, token="alice", clock=sim.clock, ca_file=ca_file, open_timeout=OPEN_TIMEOUT
    )
    got: asyncio.Queue[Any] = asyncio.Queue()
    await asyncio.wait_for(client.connect(), DEADLINE)
    try:
        await asyncio.wait_for(client.subscribe("news", lambda n: got.put_nowait(n["payload"])), 9)
        sim.publish("news", {"big": "x" * 5000})
        assert await asyncio.wait_for(got.get(), DEADLINE) == {"big": "x" * 5000}
        assert await asyncio.wait_for(client.call("echo", [1, 2]), DEADLINE) == [1, 2]
    finally:
        await client.disconnect()
    assert "connect" in actions(srv)
    assert not {"toxic.error", "limit_data"} & set(actions(srv))


async def test_limit_data_cutting_tls_is_a_lost_connection_and_a_retry(
    proxy: tuple[ProxyServer, str], sim: Simulator, ca_file: str
) -> None:
    """A cut TLS stream, even mid-handshake, is a network failure: retried, never reported
    as a certificate problem; once the toxic is gone the client is back."""
    srv, url = proxy
    client = StreamingClient(
        url,
        token="alice",
        clock=sim.clock,
        ca_file=ca_file,
        open_timeout=OPEN_TIMEOUT,
        backoff_initial=0.5,
        backoff_max=1.0,
    )
    events: list[tuple[str, Any]] = []
    client.on("*", lambda event, data: events.append((event, data)))
    await asyncio.wait_for(client.connect(), DEADLINE)
    try:
        lost = asyncio.get_running_loop().create_future()
        client.once("disconnected", lost.set_result)
        retried: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def on_failed(data: Any) -> None:
            if not retried.done():
                retried.set_result(data)

        # the next handshake is cut by the same toxic (300 bytes is less than the server's
        # certificate): a failed connect, retried
        client.on("connect_failed", on_failed)
        await asyncio.wait_for(client.subscribe("news"), DEADLINE)
        await add(srv, "limit_data", "downstream", bytes=300)  # a live link: counts from now
        sim.publish("news", "y" * 2000)  # more than 300 bytes of records: cut mid-record
        assert (await asyncio.wait_for(lost, DEADLINE))["reconnecting"] is True
        failed = await asyncio.wait_for(retried, DEADLINE)
        assert "certificate" not in str(failed["reason"]).lower()
        back = asyncio.get_running_loop().create_future()
        client.once("connected", back.set_result)
        await srv.collection.remove_toxic("wss", "limit_data_downstream")
        await asyncio.wait_for(back, DEADLINE)
    finally:
        await client.disconnect()
    assert "limit_data" in actions(srv)
    assert [d for e, d in events if e == "error" and d.get("kind") == "tls"] == []


@pytest.mark.parametrize("toxic", ["ws_drop", "ws_corrupt", "ws_delay"])
async def test_frame_toxics_pass_tls_through_and_say_so(
    proxy: tuple[ProxyServer, str], sim: Simulator, client_tls: ssl.SSLContext, toxic: str
) -> None:
    """Selecting every data frame would drop or break the session in plaintext; over TLS the
    toxic cannot see frames, so the bytes pass unchanged and an event says why."""
    srv, url = proxy
    for stream in ("upstream", "downstream"):
        await add(srv, toxic, stream, delay=5000)
    async with connect(url + "?token=alice", ssl=client_tls, proxy=None, open_timeout=9) as ws:
        assert json.loads(await asyncio.wait_for(ws.recv(), DEADLINE))["type"] == "authenticated"
        await ws.send(json.dumps({"type": "call", "id": 1, "method": "echo", "params": "é"}))
        answer = json.loads(await asyncio.wait_for(ws.recv(), DEADLINE))
        assert answer == {"type": "result", "id": 1, "result": "é"}
    opaque = [e for e in srv.events if e.action == "tls.opaque"]
    assert sorted(e.detail["stream"] for e in opaque) == ["downstream", "upstream"]
    assert all(e.toxic == f"{toxic}_{e.detail['stream']}" for e in opaque)
    assert opaque[0].detail["message"].startswith(f"{toxic} cannot see WebSocket frames inside TLS")
    assert toxic not in actions(srv)  # no frame was selected: none was seen
