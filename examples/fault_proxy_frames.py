"""A frame-aware fault: drop the 2nd notification the server sends, and see the gap in seq."""

import asyncio
import json

from websockets.asyncio.client import connect

from squall.clock import LoopClock
from squall.faults import ProxyServer
from squall.simulator import Simulator


async def main() -> None:
    clock = LoopClock(timescale=0.01)  # one clock for server and proxy
    async with Simulator(clock=clock) as sim, ProxyServer(port=0, clock=clock, seed=7) as srv:
        upstream = sim.url.removeprefix("ws://").rstrip("/")
        proxy = await srv.collection.create(
            {"name": "ws", "listen": "127.0.0.1:0", "upstream": upstream}
        )
        await srv.collection.add_toxic(
            "ws",
            {
                "type": "ws_drop",
                "stream": "downstream",
                "attributes": {"match": '"notification"', "nth": 2, "count": 1},
            },
        )
        async with connect(f"ws://{proxy.to_json()['listen']}/?token=alice", proxy=None) as ws:
            assert json.loads(await ws.recv())["type"] == "authenticated"
            await ws.send(json.dumps({"type": "subscribe", "id": 1, "topics": ["news"]}))
            assert json.loads(await ws.recv())["type"] == "subscribed"
            for n in range(1, 4):
                sim.publish("news", n)
            seqs = [json.loads(await ws.recv())["seq"] for _ in range(2)]
        print(f"sequence numbers received: {seqs} (seq 2 was dropped by the proxy)")
        assert seqs == [1, 3]


asyncio.run(main())
