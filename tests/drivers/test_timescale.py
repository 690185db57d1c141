"""drivers/common/timescale.js: protocol time for an unchanged node program, from a preload."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests import needs

from .helpers import TIMESCALE_JS


@pytest.fixture(autouse=True)
def _node() -> None:
    needs.node()


# A 60 s timer and, alongside it, a 180 s check driven by a 10 s interval; then two 10 s sleeps
# through timers/promises and util.promisify. 200 protocol seconds: 1 s of wall time at 0.005.
SCRIPT = r"""
const t0 = Date.now(), p0 = performance.now(), hr0 = process.hrtime.bigint();
const timers = require('timers');
const timer = new Promise((resolve) => setTimeout(() => resolve(Date.now() - t0), 60000));
let ticks = 0;
const check = new Promise((resolve) => {
  const iv = timers.setInterval(() => {
    ticks += 1;
    if (performance.now() - p0 >= 180000) { clearInterval(iv); resolve(); }
  }, 10000);
});
Promise.all([timer, check]).then(async ([afterTimer]) => {
  await require('timers/promises').setTimeout(10000);
  await require('util').promisify(setTimeout)(10000);
  console.log(JSON.stringify({
    afterTimer, ticks, date: Date.now() - t0, perf: performance.now() - p0,
    realMs: Number(process.hrtime.bigint() - hr0) / 1e6,
    newDate: new Date().getTime() - t0, isDate: new Date() instanceof Date,
    explicit: new Date(0).getTime(), parse: Date.parse('2020-01-01T00:00:00Z'),
  }));
});
"""


def run(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[dict, float]:
    script = tmp_path / "clock.js"
    script.write_text(SCRIPT)
    begin = time.monotonic()
    result = subprocess.run(
        ["node", "-r", str(TIMESCALE_JS), str(script), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **(env or {})},
        check=False,
    )
    wall = time.monotonic() - begin
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout), wall


def test_sixty_second_timer_and_three_minute_interval_in_well_under_two_seconds(tmp_path):
    out, wall = run(tmp_path, env={"SQUALL_TIMESCALE": "0.005"})
    # the script's own wall time; the process's adds node's start-up, which a loaded CI stretches
    assert out["realMs"] < 1500, out
    assert wall < 10, f"took {wall:.2f}s of wall time"
    assert out["afterTimer"] >= 60000  # Date.now() saw the 60 s pass
    assert 3 <= out["ticks"] <= 18  # every 10 s for 180 s (fewer when a loaded machine lags)
    assert out["perf"] >= 200000 and out["date"] >= 200000
    # one protocol clock: the two reads lie a few real ms apart, which a loaded machine
    # stretches (10 protocol s is 50 real ms at this timescale)
    assert abs(out["date"] - out["perf"]) < 10_000
    assert out["newDate"] >= out["date"] - 1000
    assert out["isDate"] is True
    assert out["explicit"] == 0 and out["parse"] == 1577836800000  # explicit times kept


def test_timescale_argument_overrides_the_environment(tmp_path):
    out, _ = run(tmp_path, "--timescale", "0.002", env={"SQUALL_TIMESCALE": "5"})
    assert out["realMs"] < 1500, out  # at 5 the script would take 1000 s
    assert out["afterTimer"] >= 60000


def test_unset_changes_nothing(tmp_path):
    script = tmp_path / "plain.js"
    script.write_text(
        "const p = performance.now(), d = Date.now();"
        "setTimeout(() => console.log(JSON.stringify({perf: performance.now() - p,"
        " date: Date.now() - d})), 200);"
    )
    env = {k: v for k, v in os.environ.items() if k != "SQUALL_TIMESCALE"}
    result = subprocess.run(
        ["node", "-r", str(TIMESCALE_JS), str(script)],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert 190 <= out["perf"] < 2000
    assert 180 <= out["date"] < 2000


def test_a_bad_timescale_is_refused(tmp_path):
    script = tmp_path / "noop.js"
    script.write_text("")
    result = subprocess.run(
        ["node", "-r", str(TIMESCALE_JS), str(script)],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "SQUALL_TIMESCALE": "-1"},
        check=False,
    )
    assert result.returncode != 0
    assert "timescale must be a positive number" in result.stderr
