"""Shared bits of the conformance tests: paths and the scenario set."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"
SCHEMA = ROOT / "schemas" / "scenario.schema.json"
MODELINE = "# yaml-language-server: $schema=../../schemas/scenario.schema.json"


def pytest_with_allure(root: Path, env: dict[str, str] | None = None) -> CompletedProcess[str]:
    """``pytest conformance --alluredir=out`` in the project at ``root``, as a user runs it."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "conformance",
            "--alluredir=out",
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=170,
        env=env,
    )


def allure_results(out: Path) -> list[dict[str, Any]]:
    """Every ``*-result.json`` allure-pytest wrote to ``out``."""
    return [json.loads(p.read_text()) for p in out.glob("*-result.json")]
