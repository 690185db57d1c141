"""Using the squall reference client the way the seed SDKs are used, against a local simulator.

Run it: ``python examples/client_usage.py`` (starts its own simulator on loopback, with
time compressed 100x so the drain and the reconnects take milliseconds).
"""

from __future__ import annotations

import asyncio

from squall.client import StreamingClient
from squall.clock import LoopClock
from squall.simulator import Simulator


async def main() -> None:
    clock = LoopClock(timescale=0.01)
    async with Simulator(clock=clock) as sim:
        backup = await sim.listen()  # a second endpoint: failover (Mixer's address list)

        client = StreamingClient(
            urls=[sim.url, backup],
            token="alice",
            clock=clock,
            immediate_first_retry=True,
            permanent_id="alice-laptop",
        )

        # Genesys: connected / disconnected, and the drain callback.
        client.on("connected", lambda info: print(f"connected as {info['sid']} via {info['url']}"))
        client.on("disconnected", lambda info: print(f"disconnected ({info['code']})"))
        client.on("reconnecting", lambda info: print(f"reconnecting in {info['delay']:g}s"))

        def on_request_reconnect(callback) -> None:
            # e.g. no calls are alerting: let the server move us now
            callback({"done": True})

        client.on("request_reconnect", on_request_reconnect)

        # RingCentral: recovery is never silent.
        client.on("recovered", lambda info: print(f"recovered, {info['replayed']} replayed"))
        client.on("recovery_failed", lambda info: print(f"recovery failed, {info['lost']} lost"))

        # Mixer: calls made before connecting are spooled and sent after auth.
        client.on("spooled", lambda info: print(f"spooled {info['method']}"))
        early = asyncio.ensure_future(client.call("echo", ["Hello world!"]))
        assert client.status == StreamingClient.IDLE

        await client.connect()
        print("spooled call answered:", await early)

        # RingCentral: subscribe with a handler.
        async def on_news(notification) -> None:
            print(f"news #{notification['seq']}: {notification['payload']}")

        await client.subscribe(["news"], on_news)
        sim.publish("news", {"headline": "squall ships"})

        # RTCCafe: rooms, peers, messages, sid reassignment.
        bob = StreamingClient(urls=[sim.url], token="bob", clock=clock)
        bob.on("message", lambda m: print(f"bob got {m['message']} from {m['from_permanent_id']}"))
        bob.on(
            "reassign_peer_sid",
            lambda r: print(f"bob: {r['permanent_id']} is now {r['new_sid']}"),
        )
        await bob.connect()
        await client.join_room("lobby")
        await bob.join_room("lobby")
        client.send_message({"text": "hi bob"}, to=bob.sid)

        # The server drains alice's node: she answers done, reconnects at once, recovers,
        # rejoins the room, and bob sees her new sid.
        reassigned = asyncio.Event()
        bob.once("reassign_peer_sid", lambda r: reassigned.set())
        sim.request_reconnect("alice")
        await asyncio.wait_for(reassigned.wait(), 10)

        # A dropped TCP connection: reconnect (to the other URL) and recover.
        back = asyncio.Event()
        client.once("recovered", lambda info: back.set())
        sim.drop("alice")
        await asyncio.wait_for(back.wait(), 10)
        print("status:", client.status)

        await bob.disconnect()
        await client.disconnect()
        print("status:", client.status)


if __name__ == "__main__":
    asyncio.run(main())
