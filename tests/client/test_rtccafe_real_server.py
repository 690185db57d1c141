"""The rtccafe scenarios, run by the reference client against the real RTCCafe server.

The same scenario files that ``pytest conformance/`` runs with ``reference-rtccafe`` against
squall's ``rtccafe`` dialect run here, with the same client, against
``rtc-cafe-signaller-python`` 0.2.0 (Flask-SocketIO), started for each scenario as a
subprocess and stopped after it. The runner targets it with ``Run(server_url=...)``: there
is no simulator, so a step that needs squall's control plane (``server.drop``,
``expect.server``) is UNIMPLEMENTED with that reason, never passed. A scenario's
``server.dialect.rtccafe.required_fields`` becomes the real server's validator, the same
rule squall's dialect applies.

Each scenario's verdict against the real server is stated below, with why when it is not
OK; docs/dialects/rtccafe.md says which server is right where they differ.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from squall.conformance.loader import load_file
from squall.conformance.runner import run_sync
from squall.conformance.verdicts import Verdict
from tests.rtccafe_server import real_rtccafe_server

ROOT = Path(__file__).resolve().parents[2]
CLIENT = "reference-rtccafe"
DEADLINE = 10.0  # real seconds: only reached when something is broken

#: scenario file -> the verdict against the real server (OK unless listed) and why.
EXPECTED: dict[str, tuple[Verdict, str]] = {
    "signalling/sid_reassign.yaml": (
        Verdict.UNIMPLEMENTED,
        "server.drop is squall's control plane; rtccafe.peer_vanishes drops through the proxy",
    ),
}

SCENARIOS = [
    *sorted(p.relative_to(ROOT / "scenarios") for p in (ROOT / "scenarios/rtccafe").glob("*.yaml")),
    Path("signalling/peer_dropped.yaml"),
    Path("signalling/sid_reassign.yaml"),
]


@pytest.fixture
def real_server(request: pytest.FixtureRequest) -> Iterator[str]:
    """rtc-cafe-signaller-python 0.2.0 on a free loopback port, validating as the scenario
    asks (``required_fields``); stopped when the test ends."""
    with real_rtccafe_server(required=getattr(request, "param", {})) as url:
        yield url


def _required_fields(path: Path) -> dict[str, object]:
    loaded = load_file(ROOT / "scenarios" / path)
    options = loaded.scenario.server.dialect.get("rtccafe") or {}
    fields = options.get("required_fields") or {}
    assert isinstance(fields, dict)
    return fields


@pytest.mark.parametrize(
    ("scenario", "real_server"),
    [pytest.param(p, _required_fields(p), id=str(p)) for p in SCENARIOS],
    indirect=["real_server"],
)
def test_scenario_against_the_real_server(scenario: Path, real_server: str) -> None:
    loaded = load_file(ROOT / "scenarios" / scenario)
    result = run_sync(loaded, client=CLIENT, server_url=real_server)
    verdict, why = EXPECTED.get(str(scenario), (Verdict.OK, ""))
    failure = result.failure
    detail = (
        f"{failure.name} (line {failure.line}): expected {failure.expected}; "
        f"observed {failure.observed}"
        if failure is not None
        else "no failure"
    )
    assert result.verdict is verdict, f"{scenario}: {result.verdict.value} ({detail}); {why}"
    if verdict is Verdict.UNIMPLEMENTED:
        assert failure is not None and "control plane" in failure.expected, detail


def test_the_runner_says_why_a_control_plane_step_cannot_run(real_server: str) -> None:
    """server.drop on an external server: UNIMPLEMENTED, naming the server, never a pass."""
    loaded = load_file(ROOT / "scenarios/signalling/sid_reassign.yaml")
    result = run_sync(loaded, client=CLIENT, server_url=real_server)
    assert result.verdict is Verdict.UNIMPLEMENTED
    assert result.failure is not None
    assert result.failure.name == "server.drop"
    assert real_server in result.failure.observed
    assert [s.status.value for s in result.steps][:3] == ["ok", "ok", "unimplemented"]
