"""How fast the whole scenario set runs: wall time, and protocol time per wall second.

    .venv/bin/python bench/bench_scenarios.py [-j 2] [--client SPEC]

Prints the wall time of the whole set (target: <= 60 s on a 2-core machine),
the sum of protocol time the scenarios covered, and their ratio; then the
baseline measured in the same run: the wall time of the same number of bare
client start-connect-quit cycles, i.e. the fixed cost the scenarios cannot avoid.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from squall.conformance.loader import load_all  # noqa: E402
from squall.conformance.run import run_many  # noqa: E402


async def baseline(n: int) -> float:
    """n bare scenarios: start a simulator and a driver, connect, quit."""
    from squall.conformance.loader import parse

    text = (
        "id: bench.bare\ntitle: bare\nclients: {a: {token: a}}\n"
        "steps:\n  - client.connect: {client: a, wait: true}\n"
    )
    start = time.perf_counter()
    await run_many([parse(text)] * n, ["reference"], jobs=1)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--client", default="reference")
    args = parser.parse_args()
    loaded, problems = load_all([ROOT / "scenarios"])
    if problems:
        for p in problems:
            print(p)
        return 2
    start = time.perf_counter()
    results = asyncio.run(run_many(loaded, [args.client], jobs=args.jobs))
    wall = time.perf_counter() - start
    proto = sum(r.protocol_time for r in results)
    busy = sum(r.wall for r in results)
    verdicts: dict[str, int] = {}
    for r in results:
        verdicts[r.verdict.value] = verdicts.get(r.verdict.value, 0) + 1
    base = asyncio.run(baseline(len(results)))
    print(f"scenarios: {len(results)} on {os.cpu_count()} cores, -j {args.jobs}: {verdicts}")
    print(f"wall time of the whole set: {wall:.1f} s (target <= 60 s)")
    print(f"protocol time covered: {proto:.0f} s; ratio protocol/wall: x{proto / wall:.0f}")
    print(
        f"sum of per-scenario wall: {busy:.1f} s; ratio protocol/scenario-wall: x{proto / busy:.0f}"
    )
    print(f"baseline, {len(results)} bare connect scenarios sequentially: {base:.1f} s")
    print(f"set vs bare sequential baseline: x{wall / base:.2f}")
    return 0 if "FAILED" not in verdicts else 1


if __name__ == "__main__":
    sys.exit(main())
