"""What allure-pytest writes for a failing scenario, read from its real result files.

pytest runs in a subprocess with ``--alluredir`` on a scenario that fails at its third
step of four; the test reads the ``*-result.json`` it wrote.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .helpers import allure_results, pytest_with_allure

pytestmark = pytest.mark.timeout(180)

BROKEN = """\
# yaml-language-server: $schema=../../schemas/scenario.schema.json
id: demo.broken
title: expects a notification nobody publishes
spec: ["protocol.md §4", "protocol.md §4"]
tags: [demo]
clients: {alice: {token: alice}}
steps:
  - client.connect: alice
  - expect.event: {client: alice, event: connected}
  - expect.event: {client: alice, event: notification, within: 1s}
  - wait: 1s
"""


@pytest.fixture(scope="module")
def allure_result(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    root = tmp_path_factory.mktemp("allure")
    (root / "scenarios" / "demo").mkdir(parents=True)
    (root / "scenarios" / "demo" / "broken.yaml").write_text(BROKEN, encoding="utf-8")
    (root / "conformance").mkdir()
    (root / "conformance" / "squall-suite.yaml").write_text("scenarios: [../scenarios]\n")
    proc = pytest_with_allure(root)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    (result,) = allure_results(root / "out")
    return result, root


def test_steps_end_with_the_status_they_had(allure_result: tuple[dict[str, Any], Path]) -> None:
    """Passed, passed, failed, and the step that never ran is skipped, not passed."""
    result, _ = allure_result
    assert result["status"] == "failed"
    assert [s["status"] for s in result["steps"]] == ["passed", "passed", "failed", "skipped"]
    skipped = result["steps"][3]["statusDetails"]
    assert skipped["message"].strip() == "Skipped: not run: an earlier step ended the scenario"
    assert "trace" not in skipped


def test_the_failed_step_points_at_the_yaml_line(
    allure_result: tuple[dict[str, Any], Path],
) -> None:
    """The failed step's trace is the scenario file's line 10 and its text, not plugin.py."""
    result, root = allure_result
    details = result["steps"][2]["statusDetails"]
    assert details["message"].strip() == (
        "AssertionError: expected event 'notification' from alice within 1s; "
        "observed alice emitted no event since its cursor"
    )
    trace = details["trace"]
    path = root / "scenarios" / "demo" / "broken.yaml"
    assert trace.startswith(f'  File "{path}", line 10, in expect.event\n')
    assert "- expect.event: {client: alice, event: notification, within: 1s}" in trace
    assert "plugin.py" not in trace


def test_the_headline_is_the_expectation_and_the_observation(
    allure_result: tuple[dict[str, Any], Path],
) -> None:
    """The test's message names the step, what was expected and what was observed."""
    result, _ = allure_result
    message = result["statusDetails"]["message"]
    assert message.startswith("squall.conformance.plugin.ScenarioFailed: ")
    assert "step 3 expect.event" in message
    assert "expected event 'notification' from alice within 1s" in message
    assert "observed alice emitted no event since its cursor" in message


def test_labels_are_not_duplicated(allure_result: tuple[dict[str, Any], Path]) -> None:
    """Each (name, value) label once: the tag from the marker, the spec reference once."""
    result, _ = allure_result
    labels = [(label["name"], label["value"]) for label in result["labels"]]
    assert len(labels) == len(set(labels)), labels
    assert ("tag", "demo") in labels and ("spec", "protocol.md §4") in labels
    assert ("verdict", "FAILED") in labels


def test_the_transcript_is_attached_as_json_lines(
    allure_result: tuple[dict[str, Any], Path],
) -> None:
    """transcript.jsonl: a .jsonl file, shown as text, one JSON record a line."""
    result, root = allure_result
    attachments = {a["name"]: a for a in result["attachments"]}
    transcript = attachments["transcript.jsonl"]
    assert transcript["type"] == "text/plain" and transcript["source"].endswith(".jsonl")
    lines = (root / "out" / transcript["source"]).read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert records[0]["kind"] == "scenario" and records[-1]["n"] == len(records) - 1
    svg = attachments["sequence.svg"]
    assert svg["type"] == "image/svg+xml"
    assert "FAILED step 3" in (root / "out" / svg["source"]).read_text()
