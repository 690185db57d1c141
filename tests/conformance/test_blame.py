"""Who is at fault, and which rule broke: ERROR for what is not the client's, the rule on FAILED.

Each scenario runs for real against the reference client; a squall bug is provoked with a
subclass of :class:`Run` whose server step raises, since a real one cannot be summoned.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from squall.conformance import models
from squall.conformance.loader import parse
from squall.conformance.report import failure_text, write_html, write_json
from squall.conformance.runner import run_sync
from squall.conformance.verdicts import Blame, StepStatus, Verdict

pytestmark = pytest.mark.timeout(120)

NO_SESSION = """\
id: blame.no_session
title: a server step on a client that never connected
clients: {alice: {token: alice}}
steps:
  - wait: 1s
  - server.drop: alice
  - expect.event: {client: alice, event: connected}
"""

UNKNOWN_VAR = """\
id: blame.unknown_var
title: a publication naming a variable nobody set
clients: {alice: {token: alice}}
steps:
  - server.publish: {topic: news, payload: "${receipt}"}
"""

BROKEN_RULE = """\
id: blame.rule
title: a notification nobody publishes
spec: ["protocol.md §4", "seed: RingCentral"]
clients: {alice: {token: alice}}
steps:
  - client.connect: alice
  - expect.event: {client: alice, event: connected}
  - expect.event:
      client: alice
      event: notification
      within: 1s
      rule: "a subscriber gets every publication: protocol.md §4"
"""


def test_a_server_step_that_cannot_be_carried_out_is_the_scenarios_fault() -> None:
    """ERROR, blamed on the scenario; the steps after it never ran."""
    result = run_sync(parse(NO_SESSION))
    assert result.verdict is Verdict.ERROR
    f = result.failure
    assert f is not None and f.blame is Blame.SCENARIO
    assert (f.step, f.name, f.where) == (1, "server.drop", "step 2 server.drop")
    assert f.expected == "server.drop can be carried out"
    assert "alice" in f.observed
    assert [s.status for s in result.steps] == [StepStatus.OK, StepStatus.ERROR, StepStatus.SKIPPED]
    assert result.headline().startswith(
        "not the client's fault, the scenario: step 2 server.drop: expected server.drop can be "
        "carried out; observed "
    )
    assert not result.verdict.passed
    assert "  not the client's fault: the scenario" in failure_text(result)


def test_an_unknown_variable_is_the_scenarios_fault() -> None:
    """A template naming a variable nobody set: ERROR, with the variable and the known ones."""
    result = run_sync(parse(UNKNOWN_VAR))
    assert result.verdict is Verdict.ERROR
    assert result.failure is not None and result.failure.blame is Blame.SCENARIO
    assert result.failure.observed == "unknown variable ${receipt} (known: none)"


async def _buggy_server_step(ctx: Any, args: Any, step: Any) -> None:
    """A server step that hits a bug in squall."""
    raise ZeroDivisionError("division by zero")


def test_an_exception_in_squall_is_squalls_fault_and_says_where(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ERROR blamed on squall, naming the exception and the line it came from."""
    monkeypatch.setitem(models.STEP_HANDLERS, "server.drop", _buggy_server_step)
    result = run_sync(parse(NO_SESSION))
    assert result.verdict is Verdict.ERROR
    f = result.failure
    assert f is not None and f.blame is Blame.SQUALL
    assert f.observed.startswith("ZeroDivisionError: division by zero at ")
    assert f.observed.endswith(
        f"{Path(__file__).name}:{_buggy_server_step.__code__.co_firstlineno + 2}"
    )
    assert "squall itself (please report it)" in result.headline()


def test_a_driver_that_does_not_start_is_the_drivers_fault_with_its_stderr() -> None:
    """ERROR blamed on the driver; the key line of node's stderr is in the observation."""
    result = run_sync(parse(NO_SESSION), client="node /nonexistent/driver.js")
    assert result.verdict is Verdict.ERROR
    f = result.failure
    assert f is not None and f.blame is Blame.DRIVER and f.name == "setup"
    assert "Error: Cannot find module '/nonexistent/driver.js'" in f.observed
    assert "MODULE_NOT_FOUND" in f.observed


def test_an_informational_scenario_that_errs_is_still_error() -> None:
    """ERROR is never hidden as INFORMATIONAL: nothing was judged."""
    result = run_sync(parse(NO_SESSION.replace("clients:", "informational: true\nclients:")))
    assert result.verdict is Verdict.ERROR


def test_a_failure_names_its_rule_in_every_report(tmp_path: Path) -> None:
    """The rule and the spec: in the headline, the failure text, index.json and the page."""
    result = run_sync(parse(BROKEN_RULE))
    assert result.verdict is Verdict.FAILED
    assert result.failure is not None and result.failure.blame is Blame.CLIENT
    assert result.failure.rule == "a subscriber gets every publication: protocol.md §4"
    headline = (
        "step 3 expect.event: expected event 'notification' from alice within 1s; observed "
        "alice emitted no event since its cursor [rule: a subscriber gets every publication: "
        "protocol.md §4; spec: protocol.md §4, seed: RingCentral]"
    )
    assert result.headline() == headline
    text = failure_text(result)
    assert (
        "  rule: a subscriber gets every publication: protocol.md §4; spec: protocol.md §4" in text
    )
    assert "  at <string>:8: step 3 expect.event" in text

    data = result.to_json()
    assert data["headline"] == headline
    assert data["spec"] == ["protocol.md §4", "seed: RingCentral"]
    assert data["failure"]["rule"] == "a subscriber gets every publication: protocol.md §4"
    assert data["failure"]["blame"] == "client"
    write_json([data], tmp_path / "index.json")
    row = json.loads((tmp_path / "index.json").read_text())["results"]["reference"]["blame.rule"]
    assert row["headline"] == headline and row["spec"] == data["spec"]
    write_html([data], tmp_path / "html")
    page = (tmp_path / "html" / "reference__blame.rule.html").read_text()
    assert "a subscriber gets every publication: protocol.md §4; spec: protocol.md §4" in page


def test_error_has_its_own_colour_and_count_in_the_html_summary(tmp_path: Path) -> None:
    """The matrix counts ERROR apart from FAILED."""
    results = [run_sync(parse(NO_SESSION)).to_json(), run_sync(parse(BROKEN_RULE)).to_json()]
    index = write_html(results, tmp_path).read_text()
    assert "1 ERROR, 1 FAILED;" in index
