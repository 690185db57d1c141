"""Run the simulator as a stand-in backend until interrupted, printing its URLs."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from squall.clock import LoopClock

from .auth import AuthPolicy
from .control import ControlError
from .core import Config
from .dialects import names as dialect_names
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
        "--dialect",
        default="reference",
        choices=dialect_names(),
        help="the backend to stand in for: its wire protocol and HTTP routes (default reference)",
    )
    parser.add_argument(
        "--token",
        action="append",
        default=[],
        metavar="TOKEN=USER",
        type=_token,
        help="accept TOKEN as USER (repeatable); given once, only listed tokens authenticate. "
        "Without it any non-empty token is accepted as its own user name",
    )
    parser.add_argument(
        "--transcript", default=None, help="write the transcript (JSON lines) here on exit"
    )


def _token(text: str) -> tuple[str, str]:
    token, sep, user = text.partition("=")
    if not sep or not token or not user:
        raise argparse.ArgumentTypeError(f"expected TOKEN=USER, got {text!r}")
    return token, user


async def serve(args: argparse.Namespace) -> int:
    config = Config(recovery_buffer_size=args.recovery_buffer_size)
    auth = AuthPolicy(tokens=dict(args.token)) if args.token else AuthPolicy()
    sim = Simulator(
        clock=LoopClock(args.timescale),
        config=config,
        auth=auth,
        host=args.host,
        dialect=args.dialect,
    )
    for port in args.port or [0]:
        await sim.listen(port)
    await sim.start(
        ports=0,
        control_port=args.control_port,
        control_host=args.control_host,
        control_token=args.control_token,
    )
    print(f"dialect    {sim.dialect.name}", flush=True)
    for url in sim.urls:
        print(f"websocket  {url}", flush=True)
    if sim.http_url:
        print(f"http       {sim.http_url}", flush=True)
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
    try:
        return asyncio.run(serve(args))
    except (ControlError, OSError) as exc:  # a refused option or a port in use: one line
        print(f"squall serve: {exc}", file=sys.stderr)
        return 2
