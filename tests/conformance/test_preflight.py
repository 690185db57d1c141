"""A driver that does not start is reported once, before anything runs, with all its stderr."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from squall.conformance.clients import preflight, preflight_all, unknown_client

pytestmark = pytest.mark.timeout(120)

SCENARIO = """\
id: demo.connects
title: connects
clients: {alice: {token: alice}}
steps:
  - client.connect: alice
  - expect.event: {client: alice, event: connected}
"""

NOISY = (
    f"{sys.executable} -c \"import sys; [print('line', i, file=sys.stderr) for i in range(100)]\""
)


def test_a_driver_that_starts_passes() -> None:
    """The reference client says driver_ready: nothing to report."""
    assert asyncio.run(preflight("reference")) is None


def test_a_missing_module_is_reported_with_its_key_line() -> None:
    """node's 'Cannot find module' line is the first of its stderr: it must be there."""
    report = asyncio.run(preflight("node /nonexistent/driver.js"))
    assert report is not None
    lines = report.splitlines()
    assert lines[0] == (
        "the driver of client 'node /nonexistent/driver.js' did not start: "
        "node /nonexistent/driver.js exited (1) before driver_ready"
    )
    assert lines[1] == "  its stderr:"
    assert "    Error: Cannot find module '/nonexistent/driver.js'" in lines
    assert any("MODULE_NOT_FOUND" in x for x in lines)


def test_a_mistyped_client_name_gets_a_did_you_mean() -> None:
    """'refrence' is no program and no name: said before anything is started."""
    why = unknown_client("refrence --no-resubscribe")
    assert why is not None
    assert why.startswith("unknown client 'refrence': did you mean 'reference'? ")
    assert unknown_client("reference --no-resubscribe") is None
    assert unknown_client(f"{sys.executable} -m squall.client.driver") is None


def test_a_long_stderr_keeps_its_first_and_last_lines() -> None:
    """100 lines: the first 20, a count of those left out, the last 40."""
    report = asyncio.run(preflight(NOISY))
    assert report is not None
    lines = [x.strip() for x in report.splitlines()[2:]]
    assert lines == [
        *(f"line {i}" for i in range(20)),
        "... (40 more lines)",
        *(f"line {i}" for i in range(60, 100)),
    ]


def test_preflight_all_reports_only_the_broken() -> None:
    """Each spec once, at the same time; the ones that start are not listed."""
    broken = asyncio.run(preflight_all(["reference", "refrence"]))
    assert list(broken) == ["refrence"]


def test_squall_run_reports_a_broken_driver_once_and_runs_the_rest(tmp_path: Path) -> None:
    """Once on stderr; its runs ERROR in the matrix; the good client still runs; exit 3."""
    (tmp_path / "s.yaml").write_text(SCENARIO)
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "squall.cli", "run", str(tmp_path), "-q"),
            *("--client", "reference", "--client", "node /nonexistent/driver.js"),
            *("--json", str(tmp_path / "out" / "index.json")),
        ],
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.count("did not start") == 1, proc.stderr
    assert "Error: Cannot find module '/nonexistent/driver.js'" in proc.stderr
    assert "1 run(s) of 1 client(s) not started: ERROR" in proc.stderr
    assert "2 runs: 1 ERROR, 1 OK" in proc.stdout
    matrix = json.loads((tmp_path / "out" / "index.json").read_text())["results"]
    assert matrix["reference"]["demo.connects"]["verdict"] == "OK"
    cell = matrix["node /nonexistent/driver.js"]["demo.connects"]
    assert cell["verdict"] == "ERROR"
    assert cell["failure"]["blame"] == "driver"
    assert cell["headline"].startswith("not the client's fault, the client's driver: setup: ")
