"""The ``squall`` console script, run as a user runs it: a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request

import pytest

SQUALL = [sys.executable, "-m", "squall.cli"]


def test_demo_runs_the_smoke_session() -> None:
    out = subprocess.run([*SQUALL, "demo"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "all 8 steps passed" in out.stdout
    assert "recovered, replayed seq [3, 4]" in out.stdout


def test_serve_prints_urls_and_answers_control_calls() -> None:
    proc = subprocess.Popen(
        [*SQUALL, "serve", "--port", "0", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(4)]
        words = [line.split() for line in lines]
        assert [w[0] for w in words] == ["dialect", "websocket", "websocket", "control"]
        assert words[0][1] == "reference"
        control = words[3][1]
        with urllib.request.urlopen(f"{control}/sessions", timeout=10) as resp:
            assert json.load(resp) == {"result": []}
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


@pytest.mark.parametrize("argv", [["serve", "--port", "x"], ["nope"]])
def test_bad_arguments_exit_2(argv: list[str]) -> None:
    out = subprocess.run([*SQUALL, *argv], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "error:" in out.stderr
