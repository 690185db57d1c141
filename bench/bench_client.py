"""Reference client reconnect latency: server-side drop -> re-authenticated and re-subscribed.

Run: ``python bench/bench_client.py [--drops 200]``. Real time (timescale 1), loopback,
immediate first retry. Two paths are measured:

- *recovered*: the client presents its recovery token; the server keeps its
  subscriptions; done at ``connected`` (after ``recovery`` lists them);
- *resubscribed*: recovery off; a new session; done when ``subscribed`` answers
  the client's re-subscribe.

The baseline, measured in the same run, is a bare websockets connect + first frame
(``authenticated``) against the same server; each figure is also printed as a ratio to it.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from websockets.asyncio.client import connect

from squall.client import StreamingClient
from squall.simulator import Simulator


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def baseline(url: str, n: int) -> list[float]:
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        ws = await connect(f"{url}?token=base{i}", ping_interval=None, compression=None, proxy=None)
        await ws.recv()
        out.append(time.perf_counter() - t0)
        await ws.close()
    return out


async def drops(sim: Simulator, n: int, *, recover: bool) -> list[float]:
    user = "rec" if recover else "resub"
    client = StreamingClient([sim.url], token=user, immediate_first_retry=True, recover=recover)
    await client.connect()
    await client.subscribe(["bench.a", "bench.b"])
    done_event = "connected" if recover else "resubscribed"
    out = []
    for _ in range(n):
        done = asyncio.get_running_loop().create_future()
        client.once(done_event, lambda _d, f=done: f.done() or f.set_result(None))
        t0 = time.perf_counter()
        sim.drop(user)
        await asyncio.wait_for(done, 10)
        out.append(time.perf_counter() - t0)
    session = next(s for s in sim.sessions() if s["user"] == user and s["state"] == "open")
    assert session["subscriptions"] == ["bench.a", "bench.b"]
    await client.disconnect()
    return out


async def main(n: int) -> None:
    async with Simulator() as sim:
        await baseline(sim.url, 20)  # warm-up
        base = await baseline(sim.url, n)
        recovered = await drops(sim, n, recover=True)
        resubscribed = await drops(sim, n, recover=False)
    b50 = statistics.median(base)
    print(f"squall client reconnect bench: {n} drops each, loopback, immediate first retry")
    print(f"{'path':<34}{'p50 ms':>9}{'p99 ms':>9}{'p50 / baseline':>16}")
    for name, samples in (
        ("baseline: bare connect+1st frame", base),
        ("drop -> recovered (subs kept)", recovered),
        ("drop -> new session, resubscribed", resubscribed),
    ):
        p50, p99 = pct(samples, 0.5), pct(samples, 0.99)
        print(f"{name:<34}{p50 * 1e3:9.2f}{p99 * 1e3:9.2f}{p50 / b50:15.1f}x")
    target = max(pct(recovered, 0.5), pct(resubscribed, 0.5)) * 1e3
    print(f"target p50 <= 20 ms: {'met' if target <= 20 else 'MISSED'} ({target:.2f} ms)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drops", type=int, default=200)
    asyncio.run(main(parser.parse_args().drops))
