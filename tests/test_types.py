"""The static checks run with the tests: ``mypy --strict`` (pyproject's [tool.mypy]), ruff."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(600)
def test_the_package_type_checks_strictly() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=590,
    )
    assert result.returncode == 0, f"mypy --strict squall:\n{result.stdout}{result.stderr}"


def test_the_code_is_ruff_clean() -> None:
    checked = ["squall", "tests", "bench", "examples"]
    for command in (["check", *checked], ["format", "--check", *checked]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *command],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, f"ruff {' '.join(command)}:\n{result.stdout}{result.stderr}"
