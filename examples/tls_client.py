"""wss end to end: a throwaway CA, the simulator serving wss with its certificate, and the
reference client verifying it with ca_file (and refusing it without)."""

import asyncio
import tempfile

from squall.client import StreamingClient
from squall.client.errors import ConnectionFailed
from squall.simulator import Simulator, local_ca


async def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        ca = local_ca(scratch)  # a CA and a certificate for 127.0.0.1, localhost and ::1
        async with Simulator(tls=ca.context) as sim:
            print(f"simulator at {sim.url}, CA in {ca.ca_file.name}")
            client = StreamingClient(sim.url, token="alice", ca_file=str(ca.ca_file))
            await client.connect()
            print("verified and connected:", await client.call("echo", {"over": "wss"}))
            await client.disconnect()

            stranger = StreamingClient(sim.url, token="bob")  # the system's trust store only
            try:
                await stranger.connect()
            except ConnectionFailed as exc:
                print("without the CA:", exc)
            else:
                raise AssertionError("a certificate nobody vouches for was accepted")


asyncio.run(main())
