"""The chaos soak on the real stack: simulator, fault proxy and reference client.

CI plays ``SQUALL_SOAK_SCHEDULES`` seeds (default 20, about 0.2 s each);
``SQUALL_SOAK_SCHEDULES=1000`` is the long run. ``-m soak`` selects only these tests.
A failure prints every violation with its seed, operation and history excerpt; replay it
with ``python -m squall.chaos --seed N``.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from squall.chaos import generate, play

SCHEDULES = int(os.environ.get("SQUALL_SOAK_SCHEDULES", "20"))
FIRST = int(os.environ.get("SQUALL_SOAK_FIRST", "0"))
DEADLINE = 120.0  # real seconds for one schedule; reached only when something hangs


@pytest.mark.soak
@pytest.mark.parametrize("seed", range(FIRST, FIRST + SCHEDULES))
async def test_schedule_holds_every_rule(seed: int) -> None:
    outcome = await asyncio.wait_for(play(generate(seed)), DEADLINE)
    assert not outcome.violations, outcome.report()
    assert any(e.f == "notify" for e in outcome.history)  # the workload ran
    assert any(e.process == "nemesis" and e.type != "invoke" for e in outcome.history)


@pytest.mark.soak
def test_a_seed_replays_from_the_command_line() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "squall.chaos", "--seed", "3"],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert lines[: len(generate(3).describe())] == generate(3).describe()
    assert any(" invoke call " in line for line in lines)
    assert lines[-1] == "no violations"


def test_bad_arguments_are_refused_with_a_sentence() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "squall.chaos", "--schedules", "0"],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )
    assert run.returncode == 2
    assert "--schedules must be at least 1, got 0" in run.stderr
    assert "Traceback" not in run.stderr
