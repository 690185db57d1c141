"""``python -m squall.chaos --seed N``: replay one schedule and print its plan and history.

``--schedules N [--first F]`` soaks seeds F .. F+N-1 and prints one line per violation and
a summary. The exit status is 1 when any violation was found, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from .schedule import generate
from .soak import TIMESCALE, play


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m squall.chaos",
        description="Seeded chaos soak of the simulator, the fault proxy and the reference client.",
    )
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--seed", type=int, help="replay one schedule and print its history")
    what.add_argument("--schedules", type=int, help="soak this many schedules")
    parser.add_argument("--first", type=int, default=0, help="first seed of --schedules (0)")
    parser.add_argument(
        "--timescale", type=float, default=TIMESCALE, help="real seconds per protocol second"
    )
    ns = parser.parse_args(argv)
    if ns.schedules is not None and ns.schedules < 1:
        parser.error(f"--schedules must be at least 1, got {ns.schedules}")
    if not ns.timescale > 0:
        parser.error(f"--timescale must be > 0, got {ns.timescale}")
    return ns


async def replay(seed: int, timescale: float) -> int:
    schedule = generate(seed)
    print("\n".join(schedule.describe()))
    outcome = await play(schedule, timescale=timescale)
    print(f"history ({len(outcome.history)} entries, {outcome.real_seconds:.2f} s real):")
    print(outcome.history.render())
    if outcome.violations:
        print(f"\n{len(outcome.violations)} violation(s):\n")
        print(outcome.report())
        return 1
    print("\nno violations")
    return 0


async def soak_many(first: int, count: int, timescale: float) -> int:
    started = time.perf_counter()
    failing = 0
    total = 0
    for seed in range(first, first + count):
        outcome = await play(generate(seed), timescale=timescale)
        total += len(outcome.violations)
        if outcome.violations:
            failing += 1
            for v in outcome.violations:
                print(f"seed {seed}: {v.rule} (op {v.key}): {v.message}", flush=True)
    elapsed = time.perf_counter() - started
    print(
        f"{count} schedules soaked (seeds {first}..{first + count - 1}) in {elapsed:.1f} s:"
        f" {total} violation(s) in {failing} schedule(s)"
    )
    return 1 if failing else 0


def main(argv: list[str] | None = None) -> int:
    ns = parse_args(argv)
    if ns.seed is not None:
        return asyncio.run(replay(ns.seed, ns.timescale))
    return asyncio.run(soak_many(ns.first, ns.schedules, ns.timescale))


if __name__ == "__main__":
    sys.exit(main())
