"""The committed JSON Schema, the scenario files and the models agree."""

from __future__ import annotations

import json

from squall.conformance.loader import discover, load_all
from squall.conformance.models import STEP_ARGS, scenario_json_schema
from squall.simulator import OPERATIONS

from .helpers import MODELINE, SCENARIOS, SCHEMA


def test_committed_schema_is_generated_from_the_models() -> None:
    """Regenerate with: squall validate --schema > schemas/scenario.schema.json."""
    committed = json.loads(SCHEMA.read_text())
    assert committed == scenario_json_schema()


def test_every_scenario_file_points_editors_at_the_schema() -> None:
    files = discover([SCENARIOS])
    assert files
    for path in files:
        first = path.read_text().splitlines()[0]
        depth = len(path.relative_to(SCENARIOS.parent).parts) - 1
        assert first == MODELINE.replace("../../", "../" * depth), path


def test_every_scenario_validates_and_there_are_at_least_40() -> None:
    loaded, problems = load_all([SCENARIOS])
    assert problems == []
    assert len(loaded) >= 40


def test_every_post_control_operation_is_a_server_step() -> None:
    """Server steps are generated from the control plane: nothing it can do is missing."""
    posts = {name for name, spec in OPERATIONS.items() if spec.method == "POST"}
    assert {f"server.{op}" for op in posts} <= set(STEP_ARGS)


def test_the_schema_offers_every_step_name() -> None:
    schema = scenario_json_schema()
    names = set()
    for branch in schema["properties"]["steps"]["items"]["oneOf"]:
        target = schema["$defs"][branch["$ref"].rsplit("/", 1)[-1]]
        names.update(target["properties"])
    assert names == set(STEP_ARGS)
