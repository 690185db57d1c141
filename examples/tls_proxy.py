"""wss through the fault proxy: TLS passes end to end, the client still verifies the
simulator's certificate, byte toxics act on the encrypted stream, frame toxics say they
cannot see into it."""

import asyncio
import json
import tempfile

from websockets.asyncio.client import connect

from squall.clock import LoopClock
from squall.faults import ProxyServer
from squall.simulator import Simulator, local_ca


async def main() -> None:
    clock = LoopClock(timescale=0.01)
    with tempfile.TemporaryDirectory() as scratch:
        ca = local_ca(scratch)
        async with (
            Simulator(clock=clock, tls=ca.context) as sim,
            ProxyServer(port=0, clock=clock, seed=3) as srv,
        ):
            upstream = sim.url.removeprefix("wss://").rstrip("/")
            made = await srv.collection.create(
                {"name": "wss", "listen": "127.0.0.1:0", "upstream": upstream}
            )
            for body in (
                {"type": "latency", "attributes": {"latency": 200}},
                {"type": "slicer", "stream": "upstream", "attributes": {"average_size": 8}},
                {"type": "ws_drop", "attributes": {"match": "authenticated"}},
            ):
                await srv.collection.add_toxic("wss", body)
            url = f"wss://{made.to_json()['listen']}/?token=alice"
            async with connect(url, ssl=ca.client_context(), proxy=None) as ws:
                first = json.loads(await ws.recv())
            print("through the proxy, verified:", first["type"])
            assert first["type"] == "authenticated"  # ws_drop could not see it
            for event in srv.events:
                if event.action == "tls.opaque":
                    print(f"{event.detail['stream']}: {event.detail['message']}")


asyncio.run(main())
