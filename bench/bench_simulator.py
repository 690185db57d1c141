"""Benchmark the simulator against bare websockets servers, both measured in this run.

Every server runs in its own child process (this script, ``--serve KIND``) pinned to one
core; this process is the load generator, pinned to the other core, so the simulator and
its baseline get the same treatment. Figures:

1. RPC round trips/s: ``--rpc-clients`` concurrent clients, each doing ``--rpc-calls``
   ``call``/``result`` round trips (method ``echo``), vs a websockets echo server
   (``async for m in ws: await ws.send(m)``) under the same load, twice: sequential (one
   call in flight per client, bounded by this one-process load generator for both servers)
   and pipelined (``--window`` calls in flight per client, which loads the server harder).
   Target ratio >= 0.8.
2. Publish fan-out: ``--subscribers`` connections subscribed to one topic, the server
   publishes ``--publishes`` notifications back to back; deliveries/s are counted at the
   receivers, vs ``websockets.asyncio.server.broadcast`` of same-sized JSON text to the same
   number of connections. Target ratio >= 0.8.
3. ``--sessions`` authenticated idle sessions held by one simulator process: growth of its
   VmRSS per session, vs the same number of idle connections to a bare websockets server.
   Target <= 64 KB per session.

Beside each wall-clock rate the table shows the server process's CPU time per operation
(getrusage in the server), which is the simulator's own cost even when the load generator
is the bottleneck. The simulator records every frame in its transcript, as it does in use;
rows labelled "transcript off" replace ``Transcript.record`` with a no-op in the server
process, to show what the transcript costs.

``--scale`` runs only the growth figures (issue 14, docs/capacity.md): fan-out CPU per
delivery and deliveries/s at ``--fanout-sizes`` subscribers vs ``websockets.broadcast``, and
KB per idle session at ``--idle-sizes`` vs a bare websockets server, each size in this run;
counts past RLIMIT_NOFILE are measured as far as the limit allows, and say so.

Run: ``.venv/bin/python bench/bench_simulator.py [--quick]``. Prints a table, then one JSON
line with every figure. Exit status 1 if a measurement went wrong (lost messages, failed
connections), not if a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

TOPIC = "bench"
PAYLOAD = {"kind": "tick", "data": "x" * 48}
HEAD = '{"type":"notification","seq":'
TAIL = "," + json.dumps({"topic": TOPIC, "payload": PAYLOAD}, separators=(",", ":"))[1:]
CALL = '{"type":"call","id":%d,"method":"echo","params":{"n":%d}}'
CLIENT_OPTS: dict[str, Any] = {
    "compression": None,
    "proxy": None,
    "ping_interval": None,
    "max_size": None,
    "open_timeout": 60,
}
RPC_WARMUP = 20
# The simulator's default rate limit (burst 2000, then 1000/s per connection) closes a
# connection that sends faster; staying under the burst keeps every run inside the policy.
RATE_BURST = 2000
FANOUT_TIMEOUT = 120.0
#: connections per loopback source address (the ephemeral port range holds ~28,000)
PER_SOURCE = 20_000
#: fds a process keeps for itself beside one per connection (pipes, the listener, imports)
FD_MARGIN = 200
SERVER_KINDS = ("sim", "sim-nt", "sim-before", "echo", "broadcast")
LABELS = {
    "sim": "simulator",
    "sim-before": "simulator @ --before",
    "sim-nt": "simulator, transcript off",
    "echo": "websockets echo",
    "broadcast": "websockets broadcast",
}


def raise_fd_limit(want: int = 0) -> int:
    """Raise RLIMIT_NOFILE to ``want`` if the process may (root with CAP_SYS_RESOURCE), else
    to the hard limit; returns the limit this process now has."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if want > hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return want
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def pin(core_index: int) -> None:
    """Pin this process to one of the allowed cores (a no-op on machines with one core)."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) >= 2:
        os.sched_setaffinity(0, {cores[core_index % len(cores)]})


def cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


# --- server side: one child process per server ---------------------------------------------


async def serve_child(kind: str) -> None:
    """Run one server; take JSON commands on stdin, answer one JSON line each on stdout."""
    from websockets.asyncio.server import ServerConnection, broadcast, serve

    loop = asyncio.get_running_loop()
    conns: set[ServerConnection] = set()
    sim: Any = None

    async def echo(ws: ServerConnection) -> None:
        async for msg in ws:
            await ws.send(msg)

    async def hold(ws: ServerConnection) -> None:
        conns.add(ws)
        try:
            async for _ in ws:
                pass
        finally:
            conns.discard(ws)

    if kind in ("sim", "sim-nt", "sim-before"):
        from squall.simulator import Simulator  # sim-before: from the PYTHONPATH checkout

        sim = Simulator()
        await sim.start()
        if kind == "sim-nt":
            sim.core.transcript.record = lambda _kind, **_fields: {}
            sim.core.transcript.frame = lambda *_args, **_kw: None
            sim.core.transcript.frames = lambda *_args, **_kw: None
        url = sim.url
        server = None
    else:
        # The simulator's own listener options, so only the handler differs.
        server = await serve(
            echo if kind == "echo" else hold,
            "127.0.0.1",
            0,
            max_size=1 << 20,
            ping_interval=None,
            compression=None,
        )
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"

    def count() -> int:
        if sim is not None:
            return len(sim.core.topics.get(TOPIC, ()))
        return len(conns)

    def open_sessions() -> int:
        if sim is not None:
            return sum(1 for s in sim.core.sessions.values() if s.connection is not None)
        return len(conns)

    async def fanout(n: int) -> dict[str, Any]:
        delivered = 0
        t0 = time.monotonic()
        for i in range(1, n + 1):
            if sim is not None:
                delivered += sim.publish(TOPIC, PAYLOAD)["delivered"]
            else:
                targets = tuple(conns)
                broadcast(targets, f"{HEAD}{i}{TAIL}")
                delivered += len(targets)
            await asyncio.sleep(0)  # let the loop flush sockets between publishes
        return {"t0": t0, "t1": time.monotonic(), "delivered": delivered}

    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def reply(obj: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    reply({"url": url, "pid": os.getpid()})
    try:
        while line := await reader.readline():
            cmd = json.loads(line)
            op = cmd["op"]
            if op == "stats":
                transcript = len(sim.core.transcript) if sim is not None else 0
                reply(
                    {
                        "cpu": cpu_seconds(),
                        "subscribers": count(),
                        "open": open_sessions(),
                        "transcript": transcript,
                    }
                )
            elif op == "gc":
                t_gc = time.perf_counter()
                gc.collect()  # what one full collection costs with this much history held
                reply({"gc_ms": (time.perf_counter() - t_gc) * 1000})
            elif op == "fanout":
                reply(await fanout(int(cmd["n"])))
            elif op == "quit":
                break
    finally:
        if sim is not None:
            await sim.stop()
        if server is not None:
            server.close()
            await server.wait_closed()
    reply({"bye": True})


class ServerProcess:
    """A ``--serve KIND`` child: started, queried over its pipes, always stopped."""

    #: a checkout of an earlier revision, for the ``sim-before`` kind (``--before REV``)
    before_src: str | None = None

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.proc: asyncio.subprocess.Process | None = None
        self.url = ""
        self.pid = 0
        self._stderr = bytearray()
        self._drain: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ServerProcess:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            os.path.abspath(__file__),
            "--serve",
            self.kind,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self._env(),
        )
        self._drain = asyncio.ensure_future(self._keep_stderr())
        try:
            hello = await self._read(60)
        except BaseException:
            await self.__aexit__()
            raise
        self.url, self.pid = hello["url"], hello["pid"]
        return self

    #: RLIMIT_NOFILE the child asks for (``--scale``: one fd per session, and some)
    fds = 0

    def _env(self) -> dict[str, str] | None:
        env = {**os.environ, "BENCH_FDS": str(self.fds)}
        if self.kind != "sim-before":
            return env
        assert self.before_src, "sim-before needs --before REV"
        return {**env, "PYTHONPATH": self.before_src}

    async def _keep_stderr(self) -> None:
        """Read the child's stderr as it comes (so it never blocks), keeping the last 4 KB."""
        assert self.proc is not None and self.proc.stderr is not None
        while chunk := await self.proc.stderr.read(4096):
            self._stderr += chunk
            del self._stderr[:-4096]

    async def _read(self, timeout: float) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            await asyncio.sleep(0.2)
            err = self._stderr.decode(errors="replace")
            raise RuntimeError(f"{self.kind} server exited:\n{err}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def ask(self, op: str, timeout: float = 120, **args: Any) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write((json.dumps({"op": op, **args}) + "\n").encode())
        await self.proc.stdin.drain()
        return await self._read(timeout)

    async def __aexit__(self, *exc: object) -> None:
        proc = self.proc
        if proc is None:
            return
        try:
            if proc.returncode is None and proc.stdin is not None:
                proc.stdin.write(b'{"op":"quit"}\n')
                await proc.stdin.drain()
                await asyncio.wait_for(proc.wait(), 30)
        except (TimeoutError, ConnectionError):
            pass
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            if self._drain is not None:
                await asyncio.wait([self._drain], timeout=5)
                self._drain.cancel()


# --- client side: this process ---------------------------------------------------------------


async def open_many(
    url: str, n: int, *, authenticated: bool, concurrency: int = 100, prefix: str = "u"
) -> list[ClientConnection]:
    """``n`` connections (user ``{prefix}{i}``), each past ``authenticated`` if sent."""
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> ClientConnection:
        # 127.0.0.1 has ~28,000 ephemeral ports: past PER_SOURCE, the next loopback address
        source: dict[str, Any] = {}
        if n > PER_SOURCE:
            source["local_addr"] = (f"127.0.0.{1 + i // PER_SOURCE}", 0)
        async with sem:
            ws = await connect(f"{url}?token={prefix}{i}", **CLIENT_OPTS, **source)
            if authenticated:
                first = json.loads(await asyncio.wait_for(ws.recv(), 60))
                if first.get("type") != "authenticated":
                    raise RuntimeError(f"expected authenticated, got {first}")
            return ws

    results = await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)
    conns = [r for r in results if isinstance(r, ClientConnection)]
    errors = [r for r in results if not isinstance(r, ClientConnection)]
    if errors:
        await close_all(conns, abort=True)
        raise RuntimeError(f"{len(errors)}/{n} connections failed, first: {errors[0]!r}")
    return conns


async def close_all(conns: list[ClientConnection], *, abort: bool = False) -> None:
    if abort:
        for ws in conns:
            ws.transport.abort()
        await asyncio.sleep(0.2)
        return
    await asyncio.gather(*(ws.close() for ws in conns), return_exceptions=True)


async def rpc_run(kind: str, clients: int, calls: int, window: int) -> dict[str, Any]:
    """``clients`` connections, each keeping ``window`` calls in flight (1: sequential)."""
    async with ServerProcess(kind) as server:
        is_sim = kind.startswith("sim")
        conns = await open_many(server.url, clients, authenticated=is_sim, prefix="rpc")
        oks = [0] * clients

        async def client(k: int, base: int, n: int) -> None:
            ws = conns[k]
            end = base + n
            sent = base
            while sent < min(end, base + window):
                await ws.send(CALL % (sent, sent))
                sent += 1
            for i in range(base, end):
                reply = await ws.recv(decode=True)
                oks[k] += isinstance(reply, str) and reply.endswith("}}") and f'"id":{i},' in reply
                if sent < end:
                    await ws.send(CALL % (sent, sent))
                    sent += 1

        # Warm-up (not timed): the first calls build pydantic and codec caches.
        error = await run_all([client(k, 0, RPC_WARMUP) for k in range(clients)], 60)
        oks[:] = [0] * clients
        before = await server.ask("stats")
        t0 = time.perf_counter()
        error = await run_all([client(k, 1000, calls) for k in range(clients)], 120) or error
        elapsed = time.perf_counter() - t0
        after = await server.ask("stats")
        await close_all(conns)
    total = clients * calls
    return {
        "kind": kind,
        "rate": sum(oks) / elapsed,
        "ok": sum(oks),
        "total": total,
        "error": error,
        "seconds": elapsed,
        "server_cpu_us": (after["cpu"] - before["cpu"]) / max(1, sum(oks)) * 1e6,
        "server_util": (after["cpu"] - before["cpu"]) / elapsed,
    }


async def run_all(coros: list[Awaitable[Any]], timeout: float) -> str | None:
    """Run coroutines together for at most ``timeout`` seconds; the first failure, if any."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    done, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    errors = [t.exception() for t in done if t.exception() is not None]
    if errors:
        return repr(errors[0])
    return f"{len(pending)} clients timed out after {timeout:g} s" if pending else None


async def fanout_run(kind: str, subscribers: int, publishes: int) -> dict[str, Any]:
    async with ServerProcess(kind) as server:
        is_sim = kind.startswith("sim")
        conns = await open_many(server.url, subscribers, authenticated=is_sim, prefix="sub")
        if is_sim:
            for ws in conns:
                await ws.send(json.dumps({"type": "subscribe", "id": 1, "topics": [TOPIC]}))
            for ws in conns:
                answer = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if answer.get("type") != "subscribed":
                    raise RuntimeError(f"expected subscribed, got {answer}")
        stats = await server.ask("stats")
        if stats["subscribers"] != subscribers:
            raise RuntimeError(f"server sees {stats['subscribers']}/{subscribers} subscribers")

        got = [0] * subscribers
        last_at = [0.0] * subscribers
        in_order = [False] * subscribers

        async def receive(k: int) -> None:
            ws = conns[k]
            last: str | bytes = ""
            while got[k] < publishes:
                last = await ws.recv()
                got[k] += 1
            last_at[k] = time.monotonic()  # CLOCK_MONOTONIC: comparable with the server's
            in_order[k] = json.loads(last)["seq"] == publishes

        receivers = asyncio.ensure_future(
            run_all([receive(k) for k in range(subscribers)], FANOUT_TIMEOUT)
        )
        await asyncio.sleep(0.1)  # every receiver is parked in recv()
        before = await server.ask("stats")
        sent = await server.ask("fanout", n=publishes)
        error = await receivers
        after = await server.ask("stats")
        gc_ms = (await server.ask("gc"))["gc_ms"]
        await close_all(conns)
    total = sum(got)
    elapsed = (max(last_at) if error is None else time.monotonic()) - sent["t0"]
    return {
        "kind": kind,
        "rate": total / elapsed,
        "ok": total if all(in_order) else 0,
        "total": subscribers * publishes,
        "error": error,
        "server_delivered": sent["delivered"],
        "seconds": elapsed,
        "publish_seconds": sent["t1"] - sent["t0"],
        "server_cpu_us": (after["cpu"] - before["cpu"]) / max(1, total) * 1e6,
        "server_util": (after["cpu"] - before["cpu"]) / elapsed,
        "gc_ms": gc_ms,
    }


async def idle_run(kind: str, sessions: int) -> dict[str, Any]:
    async with ServerProcess(kind) as server:
        is_sim = kind.startswith("sim")
        # Warm-up: a few connections opened and closed, so lazily built state is in "before".
        warm = await open_many(server.url, 20, authenticated=is_sim, prefix="warm")
        await close_all(warm)
        await asyncio.sleep(0.3)
        rss0 = rss_kb(server.pid)
        t0 = time.perf_counter()
        conns = await open_many(server.url, sessions, authenticated=is_sim, prefix="idle")
        connect_s = time.perf_counter() - t0
        await asyncio.sleep(0.5)
        stats = await server.ask("stats")
        rss1 = rss_kb(server.pid)
        await close_all(conns, abort=True)
    return {
        "kind": kind,
        "sessions": sessions,
        "open": stats["open"],
        "rss_before_kb": rss0,
        "rss_after_kb": rss1,
        "kb_per_session": (rss1 - rss0) / sessions,
        "connect_seconds": connect_s,
        "transcript_records": stats["transcript"],
    }


async def best_of(
    rounds: int, kinds: tuple[str, ...], run: Callable[[str], Awaitable[dict[str, Any]]]
) -> dict[str, dict[str, Any]]:
    """Interleave the kinds ``rounds`` times; keep each kind's best rate (median shown too)."""
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
    for _ in range(rounds):
        for kind in kinds:
            runs[kind].append(await run(kind))
    out = {}
    for kind, results in runs.items():
        best = max(results, key=lambda r: r["rate"])
        best["median_rate"] = statistics.median(r["rate"] for r in results)
        best["rounds"] = len(results)
        out[kind] = best
    return out


# --- report ----------------------------------------------------------------------------------


def table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


async def bench(args: argparse.Namespace) -> int:
    pin(1)
    raise_fd_limit()
    started = time.perf_counter()
    problems: list[str] = []

    def check(results: dict[str, dict[str, Any]], what: str) -> None:
        for res in results.values():
            if res["ok"] != res["total"] or res.get("error"):
                problems.append(
                    f"{what}, {LABELS[res['kind']]}: {res['ok']}/{res['total']} correct"
                    + (f" ({res['error']})" if res.get("error") else "")
                )

    extra = ("sim-before",) if ServerProcess.before_src else ()
    rpc_kinds = ("echo", "sim", "sim-nt", *extra)
    seq = await best_of(
        args.rounds, rpc_kinds, lambda k: rpc_run(k, args.rpc_clients, args.rpc_calls, 1)
    )
    check(seq, "RPC sequential")
    pipe = await best_of(
        args.rounds,
        rpc_kinds,
        lambda k: rpc_run(k, args.rpc_clients, args.rpc_calls, args.window),
    )
    check(pipe, "RPC pipelined")
    fan = await best_of(
        args.rounds,
        ("broadcast", "sim", "sim-nt", *extra),
        lambda k: fanout_run(k, args.subscribers, args.publishes),
    )
    check(fan, "fan-out")
    idle_kinds = ("broadcast", "sim", "sim-nt", *extra)
    idle = {k: await idle_run(k, args.sessions) for k in idle_kinds}
    for res in idle.values():
        if res["open"] != res["sessions"]:
            problems.append(f"idle, {LABELS[res['kind']]}: {res['open']}/{res['sessions']} open")

    report: dict[str, Any] = {"quick": args.quick, "rounds": args.rounds}
    rows: list[tuple[str, ...]] = [
        (
            "figure",
            "server",
            "best/s",
            "median/s",
            "srv CPU us/op",
            "srv CPU/wall",
            "ratio",
            "target",
        )
    ]

    def rate_rows(name: str, results: dict[str, dict[str, Any]], base: str) -> dict[str, Any]:
        figures: dict[str, Any] = {"baseline": base, "target_ratio": 0.8}
        for n, (kind, res) in enumerate(results.items()):
            ratio = res["rate"] / results[base]["rate"]
            rows.append(
                (
                    name if n == 0 else "",
                    LABELS[kind] + (" (baseline)" if kind == base else ""),
                    f"{res['rate']:,.0f}",
                    f"{res['median_rate']:,.0f}",
                    f"{res['server_cpu_us']:.1f}",
                    f"{res['server_util']:.0%}",
                    "1.00x" if kind == base else f"{ratio:.2f}x",
                    "" if kind == base else ">= 0.80x",
                )
            )
            figures[kind] = {
                "rate": round(res["rate"], 1),
                "median_rate": round(res["median_rate"], 1),
                "server_cpu_us_per_op": round(res["server_cpu_us"], 2),
                "server_cpu_per_wall": round(res["server_util"], 3),
                "seconds": round(res["seconds"], 3),
                "ops": res["total"],
            }
            if "gc_ms" in res:
                figures[kind]["full_gc_ms_after"] = round(res["gc_ms"], 1)
            if kind != base:
                figures[kind]["ratio"] = round(ratio, 3)
                figures[kind]["cpu_cost_ratio"] = round(
                    res["server_cpu_us"] / results[base]["server_cpu_us"], 3
                )
        return figures

    c, n, w = args.rpc_clients, args.rpc_calls, args.window
    report["rpc"] = rate_rows(f"RPC round trips, {c} clients x {n}, 1 in flight", seq, "echo")
    report["rpc_pipelined"] = rate_rows(
        f"RPC round trips, {c} clients x {n}, {w} in flight", pipe, "echo"
    )
    for key, window in (("rpc", 1), ("rpc_pipelined", w)):
        report[key] |= {"clients": c, "calls_per_client": n, "in_flight_per_client": window}
    report["fanout"] = rate_rows(
        f"fan-out deliveries, {args.subscribers} subscribers x {args.publishes}", fan, "broadcast"
    )
    report["fanout"] |= {"subscribers": args.subscribers, "publishes": args.publishes}
    print(table(rows))
    print()

    idle_rows: list[tuple[str, ...]] = [
        ("figure", "server", "RSS before", "RSS after", "KB/session", "connect s", "target")
    ]
    report["idle"] = {"sessions": args.sessions, "target_kb_per_session": 64}
    for n, (kind, res) in enumerate(idle.items()):
        idle_rows.append(
            (
                f"{args.sessions:,} idle sessions" if n == 0 else "",
                "websockets (baseline)" if kind == "broadcast" else LABELS[kind],
                f"{res['rss_before_kb'] / 1024:,.1f} MB",
                f"{res['rss_after_kb'] / 1024:,.1f} MB",
                f"{res['kb_per_session']:.1f}",
                f"{res['connect_seconds']:.1f}",
                "" if kind == "broadcast" else "<= 64 KB",
            )
        )
        report["idle"]["websockets" if kind == "broadcast" else kind] = {
            "rss_before_kb": res["rss_before_kb"],
            "rss_after_kb": res["rss_after_kb"],
            "kb_per_session": round(res["kb_per_session"], 2),
            "open_sessions": res["open"],
            "connect_seconds": round(res["connect_seconds"], 2),
            "transcript_records": res["transcript_records"],
        }
    print(table(idle_rows))
    print()

    verdict = {
        "rpc_ratio": report["rpc"]["sim"]["ratio"] >= 0.8,
        "rpc_pipelined_ratio": report["rpc_pipelined"]["sim"]["ratio"] >= 0.8,
        "fanout_ratio": report["fanout"]["sim"]["ratio"] >= 0.8,
        "idle_kb_per_session": report["idle"]["sim"]["kb_per_session"] <= 64,
    }
    report["targets_met"] = verdict
    report["problems"] = problems
    report["load_average"] = os.getloadavg()[0]
    report["seconds"] = round(time.perf_counter() - started, 1)
    print(
        f"best/median of {args.rounds} interleaved rounds, one fresh server process per run "
        "(pinned to one core, clients on the other)."
    )
    print(
        "srv CPU us/op: the server process's CPU time (user+sys) per round trip or delivery; "
        "srv CPU/wall: that CPU time / wall time (loopback softirq work competes for its core)."
    )
    print(
        "RPC with 1 in flight is bounded by the load generator (see srv CPU/wall) for both "
        "servers; with more in flight the server's own cost shows."
    )
    print(
        "transcript off: Transcript.record replaced by a no-op in that server process only "
        "(shows what recording every frame costs)."
    )
    print(
        "targets met: "
        + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in verdict.items())
        + f"; load average {report['load_average']:.2f}; {report['seconds']:.0f} s"
    )
    for problem in problems:
        print(f"PROBLEM: {problem}")
    print(json.dumps(report, separators=(",", ":")))
    return 1 if problems else 0


def sizes(text: str) -> list[int]:
    """``1000,5000,10k`` as numbers, ``none`` as none (a clear error for anything else)."""
    if text == "none":
        return []
    try:
        out = [int(float(x[:-1]) * 1000) if x.endswith("k") else int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected sizes like 1000,5000,10k, got {text!r}"
        ) from None
    if min(out) < 1:
        raise argparse.ArgumentTypeError(f"sizes must be positive, got {text!r}")
    return out


async def scale(args: argparse.Namespace) -> int:
    """``--scale``: the growth figures of issue 14, each kind measured in this run.

    Fan-out: the server's CPU time per delivery and deliveries/s at each subscriber count,
    vs ``websockets.broadcast`` at the same count; flat means the 10k cost / the 1k cost
    stays near 1. Idle: RSS growth per authenticated idle session at each count, vs idle
    connections to a bare websockets server. Counts beyond what one process may hold
    (RLIMIT_NOFILE) are measured as far as the limit allows, and say so.
    """
    pin(1)
    started = time.perf_counter()
    extra = ("sim-before",) if ServerProcess.before_src else ()
    off = ("sim-nt",) if args.transcript_off else ()
    kinds = ("broadcast", "sim", *off, *extra)
    want = max([*args.idle_sizes, *args.fanout_sizes]) + FD_MARGIN
    limit = raise_fd_limit(want)
    ServerProcess.fds = want
    problems: list[str] = []
    report: dict[str, Any] = {"rounds": args.rounds, "fd_limit": limit, "fanout": [], "idle": []}
    rows: list[tuple[str, ...]] = [
        ("subscribers", "server", "deliveries/s", "srv CPU us/delivery", "rate ratio", "cost ratio")
    ]
    for size in args.fanout_sizes:
        n = min(size, limit - FD_MARGIN)

        def one(kind: str, n: int = n) -> Awaitable[dict[str, Any]]:
            return fanout_run(kind, n, args.publishes)

        fan = await best_of(args.rounds, kinds, one)
        base = fan["broadcast"]
        entry: dict[str, Any] = {"subscribers": n, "asked": size, "publishes": args.publishes}
        for kind, res in fan.items():
            if res["ok"] != res["total"] or res.get("error"):
                problems.append(f"fan-out {n}, {LABELS[kind]}: {res['ok']}/{res['total']}")
            cost = res["server_cpu_us"]
            entry[kind] = {
                "rate": round(res["rate"], 1),
                "median_rate": round(res["median_rate"], 1),
                "server_cpu_us_per_delivery": round(cost, 2),
                "rate_ratio": round(res["rate"] / base["rate"], 3),
                "cost_ratio": round(cost / base["server_cpu_us"], 3),
            }
            rows.append(
                (
                    f"{n:,}" if kind == "broadcast" else "",
                    LABELS[kind],
                    f"{res['rate']:,.0f}",
                    f"{cost:.2f}",
                    f"{entry[kind]['rate_ratio']:.2f}x",
                    f"{entry[kind]['cost_ratio']:.2f}x",
                )
            )
        report["fanout"].append(entry)
    if report["fanout"]:
        first, last = report["fanout"][0], report["fanout"][-1]
        report["fanout_growth"] = {
            kind: round(
                last[kind]["server_cpu_us_per_delivery"]
                / first[kind]["server_cpu_us_per_delivery"],
                3,
            )
            for kind in kinds
        }
        print(table(rows))
        print(
            "growth of the CPU cost per delivery, "
            f"{first['subscribers']:,} -> {last['subscribers']:,} subscribers: "
            + ", ".join(f"{LABELS[k]} {v:.2f}x" for k, v in report["fanout_growth"].items())
        )
        print()

    idle_rows: list[tuple[str, ...]] = [
        ("sessions", "server", "RSS after", "KB/session", "vs websockets", "connect s")
    ]
    for size in args.idle_sizes:
        n = min(size, limit - FD_MARGIN)
        entry = {"sessions": n, "asked": size}
        if n < size:
            entry["capped_by"] = f"RLIMIT_NOFILE {limit} (not raisable in this process)"
        for kind in kinds:
            try:
                res = await idle_run(kind, n)
            except RuntimeError as exc:
                problems.append(f"idle {n}, {LABELS[kind]}: {exc}")
                continue
            if res["open"] != n:
                problems.append(f"idle {n}, {LABELS[kind]}: {res['open']}/{n} open")
            entry[kind] = {
                "kb_per_session": round(res["kb_per_session"], 2),
                "rss_after_kb": res["rss_after_kb"],
                "connect_seconds": round(res["connect_seconds"], 1),
                "transcript_records": res["transcript_records"],
            }
        base_kb = entry.get("broadcast", {}).get("kb_per_session")
        for kind in kinds:
            if kind not in entry:
                continue
            kb = entry[kind]["kb_per_session"]
            ratio = kb / base_kb if base_kb else float("nan")
            entry[kind]["ratio"] = round(ratio, 3)
            idle_rows.append(
                (
                    f"{n:,}" + (f" (asked {size:,})" if n < size else "")
                    if kind == "broadcast"
                    else "",
                    "websockets (baseline)" if kind == "broadcast" else LABELS[kind],
                    f"{entry[kind]['rss_after_kb'] / 1024:,.1f} MB",
                    f"{kb:.2f}",
                    f"{ratio:.3f}x",
                    f"{entry[kind]['connect_seconds']:.1f}",
                )
            )
        report["idle"].append(entry)
    print(table(idle_rows))
    if any("capped_by" in e for e in report["idle"]):
        print(f"capped: this process may hold {limit:,} fds (RLIMIT_NOFILE hard limit)")
    report["problems"] = problems
    report["load_average"] = os.getloadavg()[0]
    report["seconds"] = round(time.perf_counter() - started, 1)
    print(
        f"best of {args.rounds} interleaved rounds per fan-out size; load average "
        f"{report['load_average']:.2f}; {report['seconds']:.0f} s"
    )
    for problem in problems:
        print(f"PROBLEM: {problem}")
    print(json.dumps(report, separators=(",", ":")))
    return 1 if problems else 0


def run(args: argparse.Namespace) -> int:
    return asyncio.run(scale(args) if args.scale else bench(args))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller run, for smoke tests")
    parser.add_argument("--rpc-clients", type=int, default=None)
    parser.add_argument("--rpc-calls", type=int, default=None, help="round trips per client")
    parser.add_argument("--window", type=int, default=None, help="calls in flight, pipelined")
    parser.add_argument("--subscribers", type=int, default=None)
    parser.add_argument("--publishes", type=int, default=None)
    parser.add_argument("--sessions", type=int, default=None, help="idle sessions")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds per kind")
    parser.add_argument(
        "--before",
        metavar="REV",
        default=None,
        help="also measure the simulator at git revision REV (a temporary worktree), same run",
    )
    parser.add_argument(
        "--scale",
        action="store_true",
        help="only the growth figures: fan-out at --fanout-sizes, idle at --idle-sizes",
    )
    parser.add_argument("--fanout-sizes", type=sizes, default=sizes("1000,5000,10000"))
    parser.add_argument("--idle-sizes", type=sizes, default=sizes("10000,100000"))
    parser.add_argument(
        "--transcript-off", action="store_true", help="--scale: also the transcript-off rows"
    )
    parser.add_argument("--serve", choices=SERVER_KINDS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        pin(0)
        raise_fd_limit(int(os.environ.get("BENCH_FDS", "0")))
        asyncio.run(serve_child(args.serve))
        return 0
    defaults = (
        {"rpc_clients": 20, "rpc_calls": 200, "window": 8, "subscribers": 100, "publishes": 50}
        | {"sessions": 1000, "rounds": 1}
        if args.quick
        else {"rpc_clients": 50, "rpc_calls": 800, "window": 8, "subscribers": 1000}
        | {"publishes": 100, "sessions": 10_000, "rounds": 3}
    )
    if args.scale:
        defaults |= {"publishes": 50, "rounds": 2}
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.rpc_calls + RPC_WARMUP >= RATE_BURST:
        parser.error(f"--rpc-calls must stay under {RATE_BURST - RPC_WARMUP} (rate limit burst)")
    if args.before is None:
        return run(args)
    with before_checkout(args.before) as src:
        ServerProcess.before_src = src
        LABELS["sim-before"] = f"simulator @ {args.before}"
        return run(args)


@contextlib.contextmanager
def before_checkout(rev: str) -> Iterator[str]:
    """A temporary ``git worktree`` of ``rev``, removed afterwards."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = tempfile.mkdtemp(prefix="squall-before-")
    subprocess.run(["git", "-C", repo, "worktree", "add", "-q", "--detach", path, rev], check=True)
    try:
        yield path
    finally:
        subprocess.run(["git", "-C", repo, "worktree", "remove", "--force", path], check=False)


if __name__ == "__main__":
    sys.exit(main())
