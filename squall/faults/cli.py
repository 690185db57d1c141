"""Run squall's Toxiproxy-compatible fault proxy (``squall proxy``).

Flags follow Toxiproxy's server: ``--host``, ``--port``, ``--config``
(a populate JSON file applied at boot) and ``--seed``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from .errors import FaultError
from .server import ProxyServer


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="API host (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8474, help="API port (default 8474)")
    parser.add_argument("--config", help="JSON file of proxies to populate at start")
    parser.add_argument("--seed", type=int, help="seed for every random choice (replayable runs)")
    parser.add_argument(
        "--events", action="store_true", help="print every fault event as a JSON line on stdout"
    )
    parser.add_argument(
        "--no-fast-path",
        action="store_true",
        help="keep every byte in Python even where no toxic acts (no kernel splice)",
    )


def run(args: argparse.Namespace) -> int:
    def print_event(event: object) -> None:
        print(json.dumps(event.to_json()), flush=True)  # type: ignore[attr-defined]

    server = ProxyServer(
        args.host,
        args.port,
        seed=args.seed,
        config=args.config,
        on_event=print_event if args.events else None,
        fast_path=False if args.no_fast_path else None,
    )

    async def main() -> None:
        await server.start()
        print(
            f"squall fault proxy: API on {server.url} (Toxiproxy 2.12 compatible), "
            f"seed {server.seed}",
            file=sys.stderr,
            flush=True,
        )
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop()

    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(main())
    except FaultError as exc:
        print(f"squall proxy: {exc}", file=sys.stderr)
        return 1
    return 0


def _loop_factory() -> Any:
    """uvloop where it is installed: it carries bulk data about twice as fast as asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="squall proxy", description=__doc__)
    add_arguments(parser)
    try:
        sys.exit(run(parser.parse_args()))
    except KeyboardInterrupt:
        sys.exit(130)
