"""Run the simulator as a stand-in backend until interrupted, printing its URLs."""

from __future__ import annotations

import argparse
import asyncio
import signal

from squall.clock import LoopClock

from .core import Config
from .server import Simulator


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="WebSocket bind address")
    parser.add_argument(
        "--port",
        type=int,
        action="append",
        default=None,
        help="WebSocket port (repeat for several endpoints; 0 = any free port)",
    )
    parser.add_argument("--control-host", default="127.0.0.1", help="HTTP control API bind address")
    parser.add_argument("--control-port", type=int, default=0, help="HTTP control API port")
    parser.add_argument(
        "--control-token",
        default=None,
        help="bearer token for the control API (required off loopback)",
    )
    parser.add_argument(
        "--timescale",
        type=float,
        default=1.0,
        help="protocol seconds per real second divisor (0.01 = 100x faster)",
    )
    parser.add_argument("--recovery-buffer-size", type=int, default=Config.recovery_buffer_size)
    parser.add_argument(
        "--transcript", default=None, help="write the transcript (JSON lines) here on exit"
    )


async def serve(args: argparse.Namespace) -> int:
    config = Config(recovery_buffer_size=args.recovery_buffer_size)
    sim = Simulator(clock=LoopClock(args.timescale), config=config, host=args.host)
    for port in args.port or [0]:
        await sim.listen(port)
    await sim.start(
        ports=0,
        control_port=args.control_port,
        control_host=args.control_host,
        control_token=args.control_token,
    )
    for url in sim.urls:
        print(f"websocket  {url}", flush=True)
    print(f"control    {sim.control_url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await sim.stop()
    if args.transcript:
        sim.core.transcript.dump(args.transcript)
    return 0


def run(args: argparse.Namespace) -> int:
    return asyncio.run(serve(args))
