"""Shared bits of the conformance tests: paths and the scenario set."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"
SCHEMA = ROOT / "schemas" / "scenario.schema.json"
MODELINE = "# yaml-language-server: $schema=../../schemas/scenario.schema.json"
