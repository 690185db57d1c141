"""Benchmark a crowd of reference-client cores against bare websockets clients, in one run.

The server runs in a child process (this script, ``--serve KIND``) so that a crowd of
10,000 and its server fit the open-file limit; this process holds the crowd, on one
event loop. Figures, each beside a baseline measured the same way in this run:

1. clients/s reconnected: every session is cut at once and the crowd (policy
   ``immediate_first_retry``, so the rate is the loop's, not a backoff's) comes back
   and recovers; vs the same number of bare websockets clients connecting at once to a
   bare websockets server (``async for _ in ws``).
2. memory per client: this process's RSS growth per connected crowd member (its core,
   its socket, what it records) vs per bare websockets client connection.
3. the seed policies: the same storm for each seed SDK's documented policy, with the
   peak reconnects per 100 ms of protocol time, its share of the herd, what the
   policy predicts, and whether it synchronises the herd.

``--scenarios`` instead runs ``scenarios/herd/`` through the scenario runner (simulator,
crowd and runner in this process, as ``pytest`` runs them) and prints, per scenario, the
figures ``expect.crowd`` recorded; and, as the baseline of the runner's own cost, the
Genesys v19 drop storm once more with every crowd member's server records kept in the
transcript (``recorded: N``: what the runner did before it muted a crowd), as a ratio.

Run: ``.venv/bin/python bench/bench_herd.py [--clients 10000] [--scenarios]``. Prints a
table, then one JSON line with every figure. Exit status 1 if a storm lost a session or a
notification.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import time
from typing import Any

from websockets.asyncio.client import connect

from squall.clock import LoopClock
from squall.crowd import SEED_POLICIES, Crowd, raise_fd_limit
from squall.crowd.summary import summarise

PUBLISHED = list(range(10))
OPTS: dict[str, Any] = {"compression": None, "proxy": None, "ping_interval": None, "max_size": None}


def rss_kb() -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


# --- the server child ---------------------------------------------------------------------------


async def serve(kind: str, timescale: float) -> None:
    from squall.crowd.net import widen_backlog

    raise_fd_limit()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    if kind == "sim":
        from squall.simulator import Simulator

        sim = Simulator(clock=LoopClock(timescale, deadline_floor=3.0), transcript_max_records=1000)
        await sim.start()
        sockets = [s for server in sim.servers for s in server.sockets]
        url = sim.url
    else:
        from websockets.asyncio.server import serve as ws_serve

        async def hold(ws: Any) -> None:
            async for _ in ws:
                pass

        server = await ws_serve(hold, "127.0.0.1", 0, ping_interval=None, compression=None)
        sockets = list(server.sockets)
        url = f"ws://127.0.0.1:{sockets[0].getsockname()[1]}/"
    widen_backlog(sockets)
    print(json.dumps({"url": url}), flush=True)
    while line := await reader.readline():
        cmd = json.loads(line)
        if cmd["op"] == "drop":
            for s in sim.sessions():
                if s["sid"]:
                    sim.drop(s["id"])
        elif cmd["op"] == "publish":
            for n in cmd["numbers"]:
                sim.publish("herd", {"n": n})
                await sim.clock.sleep(0.05)
        print(json.dumps({"ok": True}), flush=True)


class Child:
    def __init__(self, kind: str, timescale: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", kind, "--timescale", str(timescale)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.url = json.loads(self.proc.stdout.readline())["url"]

    async def do(self, **cmd: Any) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        await asyncio.to_thread(self.proc.stdout.readline)

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


# --- measurements -----------------------------------------------------------------------------


async def bare(n: int) -> dict[str, float]:
    child = Child("bare", 1.0)
    try:
        gc.collect()
        before = rss_kb()
        t = time.perf_counter()
        conns = []
        for lo in range(0, n, 200):  # the same batching as Crowd.start
            conns += await asyncio.gather(
                *(connect(child.url, **OPTS) for _ in range(lo, min(n, lo + 200)))
            )
        setup = time.perf_counter() - t
        gc.collect()
        per_client = (rss_kb() - before) / n
        await asyncio.gather(*(c.close() for c in conns))
        t = time.perf_counter()
        conns = await asyncio.gather(*(connect(child.url, **OPTS) for _ in range(n)))
        storm = time.perf_counter() - t
        await asyncio.gather(*(c.close() for c in conns))
    finally:
        child.stop()
    return {"connect_s": setup, "reconnect_per_s": n / storm, "kb_per_client": per_client}


async def herd(n: int, policy: Any, timescale: float) -> dict[str, Any]:
    child = Child("sim", timescale)
    clock = LoopClock(timescale, deadline_floor=3.0)
    crowd = Crowd([child.url], n, policy=policy, clock=clock, topics=["herd"])
    try:
        gc.collect()
        before = rss_kb()
        await crowd.start(timeout=60 + n * 0.02)
        gc.collect()
        per_client = (rss_kb() - before) / n
        crowd.mark()
        t = time.perf_counter()
        await child.do(op="drop")
        await child.do(op="publish", numbers=PUBLISHED)
        await crowd.wait_ready(120 + n * 0.02)
        storm = time.perf_counter() - t
        for _ in range(200):
            if all(len(m.received) >= len(PUBLISHED) for m in crowd.members):
                break
            await clock.sleep(0.5)
        s = summarise(crowd.timelines(), crowd.received(), PUBLISHED, crowd.seed_policy)
    finally:
        await crowd.close()
        child.stop()
    return {
        "policy": crowd.seed_policy.name,
        "kb_per_client": per_client,
        "reconnect_per_s": n / storm,
        **{k: v for k, v in s.to_json().items() if k != "histogram"},
    }


def scenario_runs(n: int) -> int:
    """The herd scenarios through the runner at ``n`` clients, and the runner's baselines."""
    from pathlib import Path

    import squall.crowd.crowd as crowd_module
    from squall.conformance.loader import load_file, parse
    from squall.conformance.runner import run_sync
    from squall.conformance.steps_crowd import SIZE_ENV

    def timed(loaded: Any) -> tuple[Any, float]:
        t = time.perf_counter()
        result = run_sync(loaded)
        return result, time.perf_counter() - t  # sealing included (Result.wall leaves it out)

    os.environ[SIZE_ENV] = str(n)
    herd = Path(__file__).resolve().parents[1] / "scenarios" / "herd"
    rows = []
    for path in sorted(herd.glob("*.yaml")):
        result, wall = timed(load_file(path))
        storms = [r for r in result.transcript if r["kind"] == "crowd" and r.get("op") == "storm"]
        s = storms[-1] if storms else {}
        rows.append({"scenario": path.stem, "verdict": result.verdict.value, "wall": wall, **s})
    path = herd / "drop_genesys_v19.yaml"
    text = path.read_text(encoding="utf-8").replace(
        "crowd.start: {", f"crowd.start: {{recorded: {n}, "
    )
    whole, whole_wall = timed(parse(text, str(path)))
    # as it was before: every record kept, and network timers floored at the clock's 3 s
    kept = crowd_module.NETWORK_FLOOR_PER_CLIENT, crowd_module.NETWORK_TIMERS
    crowd_module.NETWORK_FLOOR_PER_CLIENT = 0.0
    crowd_module.NETWORK_TIMERS = frozenset({"open", "pong"})
    try:
        before, before_wall = timed(parse(text, str(path)))
    finally:
        crowd_module.NETWORK_FLOOR_PER_CLIENT, crowd_module.NETWORK_TIMERS = kept
    muted = next(r for r in rows if r["scenario"] == "drop_genesys_v19")

    def lost(r: dict[str, Any]) -> int:
        return int(r.get("never_back", 0)) + int(r.get("recovery_failed", 0))

    print(f"{n} clients per crowd, through the scenario runner (one process)")
    print(
        "  scenario            verdict     peak/100ms  share  predicted  spread s  99% back s"
        "  recovered  lost  exactly once  wall s"
    )
    ok = True
    for r in rows:
        ok &= r["verdict"] in ("OK", "NON-STRICT")
        print(
            f"  {r['scenario']:<19} {r['verdict']:<11} {r.get('peak_per_100ms', 0):6d}"
            f" {r.get('peak_share', 0):7.1%} {r.get('expected_peak_share', 0):8.0%}"
            f" {r.get('expected_spread', 0):9.2f} {r.get('back_p99') or float('nan'):10.2f}"
            f" {r.get('recovered', 0):10d} {lost(r):5d}"
            f"  {r.get('exactly_once')!s:<12} {r['wall']:6.1f}"
        )
    print(f"  drop_genesys_v19 above: {muted['wall']:.1f} s; baselines, this run:")
    for label, result, wall in (
        ("every member's records kept", whole, whole_wall),
        ("... and network timers floored at 3 s", before, before_wall),
    ):
        print(
            f"    {label:<40} {wall:6.1f} s ({wall / muted['wall']:.2f}x),"
            f" {result.verdict.value}, {len(result.transcript)} records"
        )
        if result.headline():
            print(f"      {result.headline()[:200]}")
    summary = [
        {k: v for k, v in r.items() if k not in ("histogram", "delivery_problems")} for r in rows
    ]
    figures = {"recorded_wall": whole_wall, "before_wall": before_wall}
    print(json.dumps({"clients": n, "scenarios": summary, **figures}, default=str))
    return 0 if ok else 1


async def main(args: argparse.Namespace) -> int:
    raise_fd_limit()
    n = args.clients
    base = await bare(n)
    fast = await herd(n, {"immediate_first_retry": True, "open_timeout": 600}, args.timescale)
    seeds = [
        await herd(n, {"base": name, "open_timeout": 600}, args.timescale) for name in SEED_POLICIES
    ]
    print(f"{n} clients, one loop, server in a child process (timescale {args.timescale})")
    print(
        f"  bare websockets: {base['reconnect_per_s']:8.0f} clients/s connected at once, "
        f"{base['kb_per_client']:.1f} KB per client"
    )
    print(
        f"  crowd          : {fast['reconnect_per_s']:8.0f} clients/s reconnected + recovered, "
        f"{fast['kb_per_client']:.1f} KB per client"
    )
    print(
        f"  ratios         : {fast['reconnect_per_s'] / base['reconnect_per_s']:.2f}x rate, "
        f"{fast['kb_per_client'] / base['kb_per_client']:.2f}x memory"
    )
    print("  policy        peak/100ms  share  predicted  synchronised  back p99 (protocol s)  lost")
    ok = True
    for s in seeds:
        ok &= s["exactly_once"] and s["never_back"] == 0
        print(
            f"  {s['policy']:<22} {s['peak_per_100ms']:6d} {s['peak_share']:6.1%} "
            f"{s['expected_peak_share']:8.0%}   {s['synchronised']!s:<12} "
            f"{s['back_p99'] or float('nan'):8.1f}  {s['missing']}"
        )
    print(json.dumps({"clients": n, "bare": base, "crowd": fast, "seeds": seeds}, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--clients", type=int, default=int(os.environ.get("SQUALL_HERD_SIZE", 1000))
    )
    parser.add_argument("--timescale", type=float, default=0.1)
    parser.add_argument("--serve", choices=("sim", "bare"))
    parser.add_argument("--scenarios", action="store_true", help="the herd scenarios instead")
    args = parser.parse_args()
    if args.scenarios:
        sys.exit(scenario_runs(args.clients))
    if args.serve:
        asyncio.run(serve(args.serve, args.timescale))
    else:
        sys.exit(asyncio.run(main(args)))
