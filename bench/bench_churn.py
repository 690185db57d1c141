"""Benchmark connect / disconnect churn: the simulator vs a bare websockets server, same run.

Each server runs in a child process (this script, ``--serve KIND``), pinned to one core;
this process, pinned to the other, is the load generator. Two loads, each against both:

1. clean cycles: connect, read the first frame (``authenticated``; the bare server sends
   one frame too), close. Cycles/s at ``--concurrency`` in flight. Target ratio >= 0.5
   (the simulator authenticates, creates a session and records a transcript per cycle).
2. the churn mix of tests/simulator/test_churn.py: URL and frame auth, resets, closes
   before and during auth, half requests (FIN and RST), and half-open sockets (TCP only,
   upgraded, authenticated) abandoned until the end of their wave, then reset.

Before and after the churn the child reports its file descriptors, asyncio tasks, VmRSS
and, for the simulator, the core's tables, once every connection is gone and every
detached session has expired (its protocol clock runs at ``TIMESCALE``). Figures that do
not return to the baseline are a leak.

Run: ``.venv/bin/python bench/bench_churn.py [--cycles 10000] [--quick]``. Prints a table,
then one JSON line with every figure. Exit status 1 if a cycle failed or a figure did
not return to its baseline (fds, tasks, tables; RSS is shown, not judged).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import subprocess
import sys
import time
from typing import Any

from websockets.asyncio.client import connect

TIMESCALE = 0.01  # the simulator child's protocol clock: recovery_window 30 s = 0.3 s real
WAVE = 250
KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def pin(core_index: int) -> None:
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) >= 2:
        os.sched_setaffinity(0, {cores[core_index % len(cores)]})


# --- server side --------------------------------------------------------------------------------


async def serve_child(kind: str) -> None:
    """Run one server; answer ``stats`` / ``quiesce`` / ``stop`` lines on stdin with JSON."""
    import psutil
    from websockets.asyncio.server import ServerConnection, serve
    from websockets.exceptions import ConnectionClosed

    from squall.clock import LoopClock
    from squall.simulator import Simulator
    from squall.simulator.core import Config

    sim: Any = None
    server: Any = None
    if kind == "sim":
        sim = Simulator(
            clock=LoopClock(timescale=TIMESCALE),
            config=Config(recovery_window=30.0, auth_timeout=50.0),
            open_timeout=0.5,
            transcript_max_records=2000,
        )
        await sim.start()
        url = sim.url
    else:

        async def handler(ws: ServerConnection) -> None:
            with contextlib.suppress(ConnectionClosed):
                await ws.send('{"type":"hello"}')
                async for _ in ws:
                    pass

        server = await serve(
            handler, "127.0.0.1", 0, ping_interval=None, compression=None, open_timeout=0.5
        )
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"

    process = psutil.Process()

    async def quiesce() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            servers = sim.servers if sim is not None else [server]
            busy = any(s.connections for s in servers)
            if sim is not None:
                busy = busy or bool(sim.core.connections or sim.core.sessions or sim._tasks)
            if not busy:
                break
            await asyncio.sleep(0.05)
        gc.collect()

    def stats() -> dict[str, Any]:
        out: dict[str, Any] = {
            "fds": process.num_fds(),
            "tasks": len(asyncio.all_tasks()),
            "rss_kb": process.memory_info().rss // 1024,
        }
        if sim is not None:
            core = sim.core
            out |= {
                "connections": len(core.connections),
                "sessions": len(core.sessions),
                "by_token": len(core.by_token),
                "topics": sum(len(s) for s in core.topics.values()),
                "expired_tokens": len(core.expired_tokens),
                "transcript": len(core.transcript),
            }
        return out

    print(json.dumps({"url": url}), flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().strip():
        if line == "stop":
            break
        if line == "quiesce":
            await quiesce()
        print(json.dumps(stats()), flush=True)
    if sim is not None:
        await sim.stop()
    else:
        server.close()
        await server.wait_closed()


class Child:
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", kind],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.url = self._line()["url"]

    def _line(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.kind} server exited")
        return json.loads(line)  # type: ignore[no-any-return]

    def ask(self, command: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._line()

    def stop(self) -> None:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write("stop\n")
            self.proc.stdin.close()
            self.proc.wait(30)
        except Exception:
            self.proc.kill()
            self.proc.wait()


# --- load side ----------------------------------------------------------------------------------


class Load:
    """The churn cycles against one URL (the bare server's first frame stands for auth)."""

    def __init__(self, url: str) -> None:
        self.url = url
        hostport = url.removeprefix("ws://").rstrip("/")
        self.host, port = hostport.rsplit(":", 1)
        self.port = int(port)
        self.held: list[asyncio.StreamWriter] = []
        self.failures: list[str] = []

    def request(self, path: str) -> bytes:
        return (
            f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()

    async def clean(self, i: int) -> None:
        async with connect(f"{self.url}?token=u{i}", proxy=None, compression=None) as ws:
            await asyncio.wait_for(ws.recv(), 30)

    async def mixed(self, i: int) -> None:
        kind = i % 10
        url = f"{self.url}?token=u{i}"
        if kind <= 2:
            await self.clean(i)
        elif kind == 3:
            async with connect(self.url, proxy=None, compression=None) as ws:
                await ws.send(f'{{"type":"auth","token":"u{i}"}}')
                await asyncio.wait_for(ws.recv(), 30)
        elif kind == 4:
            ws = await connect(url, proxy=None, compression=None)
            await asyncio.wait_for(ws.recv(), 30)
            ws.transport.abort()
            await ws.wait_closed()
        elif kind == 5:
            async with connect(self.url, proxy=None, compression=None) as ws:
                await ws.send(f'{{"type":"auth","token":"u{i}"}}')
        elif kind == 6:
            _, writer = await asyncio.open_connection(self.host, self.port)
            writer.write(self.request("/")[:40])
            await writer.drain()
            writer.transport.abort() if i % 20 == 6 else writer.close()
        elif kind == 7:
            _, writer = await asyncio.open_connection(self.host, self.port)
            self.held.append(writer)
        else:
            reader, writer = await asyncio.open_connection(self.host, self.port)
            writer.write(self.request("/" if kind == 8 else f"/?token=u{i}"))
            await writer.drain()
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            self.held.append(writer)

    async def run(self, cycle: Any, count: int, concurrency: int) -> float:
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with gate:
                try:
                    await cycle(i)
                except Exception as exc:  # counted and reported, not fatal to the run
                    self.failures.append(f"{cycle.__name__} {i}: {exc!r}")

        started = time.perf_counter()
        for wave in range(0, count, WAVE):
            await asyncio.gather(*(one(i) for i in range(wave, min(wave + WAVE, count))))
            for writer in self.held:
                writer.transport.abort()
            self.held.clear()
        return count / (time.perf_counter() - started)


async def measure(kind: str, cycles: int, concurrency: int) -> dict[str, Any]:
    child = Child(kind)
    try:
        load = Load(child.url)
        await load.run(load.clean, 200, concurrency)  # warm-up
        # (in a thread: the load's own sockets close on its loop, which must keep running)
        before = await asyncio.to_thread(child.ask, "quiesce")
        clean = await load.run(load.clean, cycles, concurrency)
        mixed = await load.run(load.mixed, cycles, concurrency)
        after = await asyncio.to_thread(child.ask, "quiesce")
        return {
            "clean_per_s": clean,
            "mixed_per_s": mixed,
            "before": before,
            "after": after,
            "failures": load.failures[:5],
            "failed": len(load.failures),
        }
    finally:
        child.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=10_000, help="cycles per load and server")
    parser.add_argument("--concurrency", type=int, default=25)
    parser.add_argument("--quick", action="store_true", help="1,000 cycles")
    parser.add_argument("--serve", choices=("sim", "bare"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        pin(0)
        asyncio.run(serve_child(args.serve))
        return 0
    pin(1)
    cycles = 1_000 if args.quick else args.cycles
    results = {
        kind: asyncio.run(measure(kind, cycles, args.concurrency)) for kind in ("bare", "sim")
    }
    sim, bare = results["sim"], results["bare"]
    print(f"churn: {cycles} cycles per load, {args.concurrency} in flight")
    print(f"{'':28}{'websockets':>14}{'simulator':>14}{'ratio':>8}")
    for key, label in (("clean_per_s", "clean cycles/s"), ("mixed_per_s", "churn mix cycles/s")):
        print(f"{label:28}{bare[key]:>14.0f}{sim[key]:>14.0f}{sim[key] / bare[key]:>8.2f}")
    print(f"{'':28}{'before':>14}{'after':>14}")
    for name, res in (("websockets", bare), ("simulator", sim)):
        for key in res["before"]:
            print(f"{name + ' ' + key:28}{res['before'][key]:>14}{res['after'][key]:>14}")
    print(json.dumps({"cycles": cycles, **results}))
    leaked = [
        f"{name} {key}"
        for name, res in results.items()
        for key in ("fds", "tasks", "connections", "sessions", "by_token", "topics")
        if key in res["before"] and res["after"][key] > res["before"][key] + 2
    ]
    failed = sim["failed"] + bare["failed"]
    if leaked or failed:
        print(f"not back to baseline: {leaked}; failed cycles: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
