"""ProxyServer as an API: async start/stop, scaled clock, fault events, seeds, the CLI."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time

import pytest

from squall.clock import LoopClock
from squall.faults import FaultError, ProxyServer

pytestmark = pytest.mark.usefixtures("squall_only")


async def echo_upstream():
    async def handle(reader, writer):
        while data := await reader.read(65536):
            writer.write(data)
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def rtt(port: int) -> float:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    start = time.monotonic()
    writer.write(b"hi")
    assert await reader.readexactly(2) == b"hi"
    elapsed = time.monotonic() - start
    writer.close()
    return elapsed


async def test_async_api_and_scaled_clock():
    """On the current loop; a 10 s latency under timescale 0.02 takes about 0.2 s."""
    upstream = await echo_upstream()
    port = upstream.sockets[0].getsockname()[1]
    events = []
    async with ProxyServer(port=0, clock=LoopClock(0.02), on_event=events.append) as srv:
        proxy = await srv.collection.create(
            {"name": "e", "listen": "127.0.0.1:0", "upstream": f"127.0.0.1:{port}"}
        )
        await srv.collection.add_toxic("e", {"type": "latency", "attributes": {"latency": 10_000}})
        elapsed = await rtt(int(proxy.listen.rsplit(":", 1)[1]))
        assert 0.2 <= elapsed < 3.0
    upstream.close()
    actions = [e.action for e in events]
    assert actions[:3] == ["proxy.start", "toxic.add", "connect"]
    assert all(e.proxy == "e" for e in events)
    times = [e.time for e in events]
    assert times == sorted(times)


async def test_same_seed_same_choices():
    """Toxicity rolls replay exactly under the same seed."""
    upstream = await echo_upstream()
    port = upstream.sockets[0].getsockname()[1]

    async def rolls(seed: int) -> list[bool]:
        async with ProxyServer(port=0, seed=seed) as srv:
            proxy = await srv.collection.create(
                {"name": "s", "listen": "127.0.0.1:0", "upstream": f"127.0.0.1:{port}"}
            )
            await srv.collection.add_toxic("s", {"type": "noop", "toxicity": 0.5})
            for _ in range(12):
                await rtt(int(proxy.listen.rsplit(":", 1)[1]))
            return [e.detail["active"] for e in srv.events if e.action == "toxicity"]

    first = await rolls(7)
    assert first == await rolls(7)
    assert len(first) == 12 and first != await rolls(8)
    upstream.close()


async def test_api_port_in_use_is_a_fault_error():
    """Two servers on one port: the second fails with the root error class."""
    async with ProxyServer(port=0) as srv:
        with pytest.raises(FaultError, match="cannot serve the API"):
            await ProxyServer(port=srv.port).start()


def test_cli_serves_and_populates(tmp_path):
    """`squall proxy --config` populates at boot and prints where the API listens."""
    config = tmp_path / "populate.json"
    config.write_text('[{"name": "c", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9"}]')
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "squall.cli",
            "proxy",
            "--port",
            "0",
            "--seed",
            "3",
            "--config",
            str(config),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stderr.readline()
        url = re.search(r"(http://\S+?),? ", line).group(1)
        import requests

        assert list(requests.get(url + "/proxies", timeout=30).json()) == ["c"]
        assert "seed 3" in line
    finally:
        proc.terminate()
        proc.wait(30)
