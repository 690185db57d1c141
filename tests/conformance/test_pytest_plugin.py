"""`pytest` with the squall plugin, run as a user would: selection, failures, reports, xdist.

Each test runs pytest in a subprocess on a small suite in a temporary directory
(the plugin comes from the installed ``pytest11`` entry point).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(180)

HEAD = "# yaml-language-server: $schema=../../schemas/scenario.schema.json\n"

OK = (
    HEAD
    + """\
id: demo.ok
title: connects
tags: [demo]
clients: {alice: {token: alice}}
steps:
  - client.connect: alice
  - expect.event: {client: alice, event: connected}
"""
)

BROKEN = (
    HEAD
    + """\
id: demo.broken
title: expects a notification nobody publishes
clients: {alice: {token: alice}}
steps:
  - client.connect: alice
  - expect.event: {client: alice, event: connected}
  - expect.event: {client: alice, event: notification, within: 1s}
"""
)

UNIMPLEMENTED = (
    HEAD
    + """\
id: other.unimplemented
title: needs a command the client does not have
requires: [teleport]
clients: {alice: {token: alice}}
steps:
  - wait: 1s
"""
)

NONSTRICT = (
    HEAD
    + """\
id: other.nonstrict
title: a non-strict expectation that is missed
clients: {alice: {token: alice}}
steps:
  - client.connect: alice
  - expect.event: {client: alice, event: connected}
  - expect.event: {client: alice, event: notification, within: 1s, level: non-strict}
"""
)


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    scen = tmp_path / "scenarios" / "demo"
    scen.mkdir(parents=True)
    for name, text in [
        ("ok", OK),
        ("broken", BROKEN),
        ("unimplemented", UNIMPLEMENTED),
        ("nonstrict", NONSTRICT),
    ]:
        (scen / f"{name}.yaml").write_text(text)
    suite_dir = tmp_path / "conformance"
    suite_dir.mkdir()
    (suite_dir / "squall-suite.yaml").write_text("scenarios: [../scenarios]\n")
    return tmp_path


def pytest_run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "conformance", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=170,
    )


def test_items_are_scenario_ids_and_verdicts_map_to_outcomes(suite: Path) -> None:
    proc = pytest_run(suite, "-v", "-rs")
    out = proc.stdout
    assert proc.returncode == 1, out
    assert "squall-suite.yaml::demo.ok PASSED" in out
    assert "squall-suite.yaml::demo.broken FAILED" in out
    assert "squall-suite.yaml::other.nonstrict PASSED" in out
    assert "squall-suite.yaml::other.unimplemented SKIPPED" in out
    assert "UNIMPLEMENTED: it lacks teleport" in out
    assert "4 scenarios: 1 FAILED, 1 NON-STRICT, 1 OK, 1 UNIMPLEMENTED" in out


def test_a_failure_prints_the_step_the_expectation_and_the_transcript(suite: Path) -> None:
    out = pytest_run(suite, "-k", "broken").stdout
    assert "scenario demo.broken (expects a notification nobody publishes)" in out
    assert "at scenarios/demo/broken.yaml:8: step 3 expect.event" in out
    assert "expected: event 'notification' from alice within 1s" in out
    assert "observed: alice emitted no event since its cursor" in out
    assert "transcript (the records around the failure):" in out
    assert "--- step 3 expect.event (line 8)" in out


def test_selection_by_glob_and_by_keyword(suite: Path) -> None:
    by_glob = pytest_run(suite, "--scenarios", "other.*", "--collect-only", "-q").stdout
    assert "other.nonstrict" in by_glob and "other.unimplemented" in by_glob
    assert "demo.ok" not in by_glob
    by_k = pytest_run(suite, "-k", "ok and not broken", "--collect-only", "-q").stdout
    assert "squall-suite.yaml::demo.ok" in by_k and "demo.broken" not in by_k
    by_tag = pytest_run(suite, "-m", "demo", "--collect-only", "-q").stdout
    assert "demo.ok" in by_tag and "demo.broken" not in by_tag


def test_junit_allure_json_and_html_outputs(suite: Path) -> None:
    proc = pytest_run(
        suite,
        "--junitxml=out/junit.xml",
        "--alluredir=out/allure",
        "--squall-json=out/matrix.json",
        "--squall-html=out/html",
    )
    assert proc.returncode == 1, proc.stdout
    out = suite / "out"
    cases = {c.get("name"): c for c in ET.parse(out / "junit.xml").getroot().iter("testcase")}
    assert set(cases) == {"demo.ok", "demo.broken", "other.unimplemented", "other.nonstrict"}
    failure = cases["demo.broken"].find("failure")
    assert failure is not None and "expected: event 'notification'" in (failure.text or "")

    matrix = json.loads((out / "matrix.json").read_text())
    assert matrix["clients"] == ["reference"]
    verdicts = {k: v["verdict"] for k, v in matrix["results"]["reference"].items()}
    assert verdicts == {
        "demo.ok": "OK",
        "demo.broken": "FAILED",
        "other.unimplemented": "UNIMPLEMENTED",
        "other.nonstrict": "NON-STRICT",
    }
    ok = matrix["results"]["reference"]["demo.ok"]
    assert ok["duration"] > 0 and Path(ok["transcript"]).exists()
    assert (out / "html" / "index.html").read_text().count("<tr>") == 5
    page = (out / "html" / "reference__demo.broken.html").read_text()
    assert "failure at step 3" in page and "<svg" in page

    results = [json.loads(p.read_text()) for p in (out / "allure").glob("*-result.json")]
    by_name = {r["name"]: r for r in results}
    broken = by_name["demo.broken: expects a notification nobody publishes"]
    assert broken["status"] == "failed"
    assert [s["status"] for s in broken["steps"]] == ["passed", "passed", "failed"]
    assert broken["steps"][0]["name"].startswith("1. client.connect")
    attachments = {a["name"] for a in broken["attachments"]}
    assert {"transcript.jsonl", "sequence.svg"} <= attachments


def test_safe_under_xdist(suite: Path) -> None:
    proc = pytest_run(suite, "-n", "2", "--squall-json=out/matrix.json")
    assert (
        "2 passed, 1 failed, 1 skipped" in proc.stdout
        or "1 failed, 2 passed, 1 skipped" in proc.stdout
    )
    matrix = json.loads((suite / "out" / "matrix.json").read_text())
    assert len(matrix["results"]["reference"]) == 4


# --- blame, rules, drivers that do not start, selection hints ------------------------------------

RULED = (
    HEAD
    + """\
id: blame.ruled
title: a notification nobody publishes
spec: ["protocol.md §4"]
clients: {alice: {token: alice}}
steps:
  - client.connect: alice
  - expect.event: {client: alice, event: connected}
  - expect.event: {client: alice, event: notification, within: 1s, rule: "every publication: §4"}
"""
)

SCENARIO_MISTAKE = (
    HEAD
    + """\
id: blame.mistake
title: a server step on a client that never connected
clients: {alice: {token: alice}}
steps:
  - server.drop: alice
"""
)

MINE = """\
id: mine.connects
title: a scenario file of my own, without the modeline
clients: {alice: {token: alice}}
steps:
  - client.connect: alice
  - expect.event: {client: alice, event: connected}
"""


@pytest.fixture
def blame_suite(tmp_path: Path) -> Path:
    scen = tmp_path / "scenarios"
    scen.mkdir()
    (scen / "ruled.yaml").write_text(RULED)
    (scen / "mistake.yaml").write_text(SCENARIO_MISTAKE)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "x.yaml").write_text(MINE)
    (tmp_path / "conformance").mkdir()
    (tmp_path / "conformance" / "squall-suite.yaml").write_text("scenarios: [../scenarios]\n")
    return tmp_path


def test_the_short_summary_names_the_broken_expectation_and_the_rule(blame_suite: Path) -> None:
    """`-ra` carries the headline; the scenario's mistake is a pytest error, not a failure."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "conformance", "-ra"],
        cwd=blame_suite,
        capture_output=True,
        text=True,
        timeout=170,
        env={**os.environ, "CI": "1"},  # pytest prints the short lines whole on CI
    )
    out = proc.stdout
    assert proc.returncode == 1, out
    assert (
        "FAILED conformance/squall-suite.yaml::blame.ruled - step 3 expect.event: expected event "
        "'notification' from alice within 1s; observed alice emitted no event since its cursor "
        "[rule: every publication: §4; spec: protocol.md §4]\n"
    ) in out
    assert (
        "ERROR conformance/squall-suite.yaml::blame.mistake - not the client's fault, the "
        "scenario: step 1 server.drop: expected server.drop can be carried out; observed "
    ) in out
    assert "1 failed, 1 error" in out
    assert "2 scenarios: 1 ERROR, 1 FAILED" in out


def test_a_driver_that_does_not_start_is_one_error_with_its_stderr(blame_suite: Path) -> None:
    """One ERROR item for the client, its stderr's key line once; no scenario of it runs."""
    proc = pytest_run(blame_suite, "--client", "node /nonexistent/driver.js", "-ra")
    out = proc.stdout
    assert proc.returncode == 1, out
    assert "1 error in" in out and "failed" not in out.splitlines()[-1]
    assert out.count("Error: Cannot find module '/nonexistent/driver.js'") == 1
    assert (
        "the driver of client 'node /nonexistent/driver.js' did not start: node "
        "/nonexistent/driver.js exited (1) before driver_ready (2 scenario(s) of node "
        "/nonexistent/driver.js not run)"
    ) in out


def test_nothing_selected_says_why_and_scenario_dir_selects_files_elsewhere(
    blame_suite: Path,
) -> None:
    """A glob for a file outside scenarios/: exit 5 and a hint; --scenario-dir or the path."""
    none = pytest_run(blame_suite, "--scenarios", "mine.*")
    assert none.returncode == 5
    assert (
        f"squall: --scenarios 'mine.*' matched none of the 2 scenario id(s) under "
        f"{blame_suite / 'scenarios'} (blame.mistake, blame.ruled); globs match ids, not file "
        "names. For scenario files elsewhere, add --scenario-dir DIR or pass the file's path"
    ) in none.stdout
    by_dir = pytest_run(blame_suite, "--scenario-dir", "mine", "--scenarios", "mine.*", "-v")
    assert by_dir.returncode == 0, by_dir.stdout
    assert "squall-suite.yaml::mine.connects PASSED" in by_dir.stdout
    by_path = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "mine/x.yaml", "-v"],
        cwd=blame_suite,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert by_path.returncode == 0, by_path.stdout
    assert "mine/x.yaml::mine.connects PASSED" in by_path.stdout


def test_a_known_error_is_an_xfail(blame_suite: Path) -> None:
    """The suite file's known: table takes ERROR too, with a why."""
    (blame_suite / "conformance" / "squall-suite.yaml").write_text(
        "scenarios: [../scenarios]\n"
        "known: {reference: {blame.mistake: {verdict: ERROR, why: the step is wrong on purpose}}}\n"
    )
    proc = pytest_run(blame_suite, "--scenarios", "blame.mistake", "-rx")
    assert proc.returncode == 0, proc.stdout
    assert "known ERROR for reference: the step is wrong on purpose" in proc.stdout
