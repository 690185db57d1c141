"""The usage example and the benchmark run as shipped."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_usage_example_runs() -> None:
    """examples/client_usage.py: spool, connect, subscribe, rooms, drain, drop, disconnect."""
    out = run("examples/client_usage.py").splitlines()
    assert out[:2] == ["spooled echo", "connected as c1 via " + out[1].split(" via ")[1]]
    assert "spooled call answered: ['Hello world!']" in out
    assert "news #1: {'headline': 'squall ships'}" in out
    assert "bob got {'text': 'hi bob'} from alice-laptop" in out
    assert "disconnected (1012)" in out
    assert out[-1] == "status: closed"


def test_bench_runs_and_prints_ratios() -> None:
    out = run("bench/bench_client.py", "--drops", "10")
    assert "p50 / baseline" in out
    assert "target p50 <= 20 ms" in out
