"""The softphone step pack: its steps are in the closed set and the schema, bad arguments fail
at their line, ``expect.call`` says what it missed, and real runs judge both ways: the
reference client (no softphone) and the real genesys-cloud-streaming-client 19.4.1 in node."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from squall.conformance import steps_softphone
from squall.conformance.loader import ScenarioError, load_all, parse, select
from squall.conformance.models import STEP_ARGS, STEP_PACKS
from squall.conformance.run import run_many
from squall.conformance.steps_softphone import ExpectCall, call_problems
from squall.conformance.verdicts import Result, Verdict
from tests.drivers.helpers import DRIVERS, npm_ci

from .helpers import SCHEMA

pytestmark = pytest.mark.timeout(240)

SOFTPHONE_STEPS = {
    "client.softphone.configure",
    "client.softphone.accept",
    "client.softphone.reject",
    "client.softphone.mute",
    "client.softphone.unmute",
    "client.softphone.hangup",
    "client.softphone.status",
    "expect.call",
}


def test_the_pack_is_built_in_and_its_steps_are_in_the_schema() -> None:
    assert "squall.conformance.steps_softphone" in STEP_PACKS
    assert set(steps_softphone.STEP_ARGS) == SOFTPHONE_STEPS
    assert set(STEP_ARGS) >= SOFTPHONE_STEPS
    published = json.loads(SCHEMA.read_text(encoding="utf-8"))
    text = json.dumps(published)
    missing = [s for s in SOFTPHONE_STEPS if f'"{s}"' not in text]
    assert missing == [], f"regenerate {SCHEMA.name}: squall validate --schema"


HEAD = """\
id: t.softphone
title: t
dialects: [genesys]
clients: {alice: {token: alice}}
steps:
"""


@pytest.mark.parametrize(
    ("step", "line", "words"),
    [
        ("  - expect.call: {client: alice, state: ringing}\n", 6, "proposed"),
        ("  - expect.call: {client: alice, server_frames: 0}\n", 6, "greater than or equal to 1"),
        ("  - client.softphone.configure: {client: alice, tone_hz: 5}\n", 6, "50"),
        ("  - client.softphone.configure: {client: alice, answer: later}\n", 6, "auto"),
        ("  - expect.call: {client: alice, colour: red}\n", 6, "colour"),
    ],
)
def test_bad_softphone_arguments_fail_at_their_line(step: str, line: int, words: str) -> None:
    with pytest.raises(ScenarioError) as err:
        parse(HEAD + step, "bad.yaml")
    problems = err.value.problems
    assert problems and all(p.path == "bad.yaml" for p in problems)
    assert any(p.line == line and words in p.message for p in problems), [str(p) for p in problems]


def _call(**over: Any) -> dict[str, Any]:
    media = {"frames_received": 40, "silent_frames_received": 10, "packets_received": 30}
    call = {"id": "c1", "state": "active", "muted": False, "ended_by": None, "media": media}
    return {**call, **over}


def test_call_problems_count_audible_frames_and_say_what_is_short() -> None:
    want = ExpectCall.model_validate(
        {"client": "alice", "state": "active", "server_frames": 30, "client_frames": 5}
    )
    assert call_problems(want, _call(), {"audible_frames": 5}) == []
    got = call_problems(want, _call(state="offered"), {"audible_frames": 1})
    assert got[0] == "state is 'offered', not 'active'"
    assert "the client decoded 1 audible frames" in got[1]
    # 40 frames read, 10 of them silent: 30 audible is enough, 31 is not
    short = ExpectCall.model_validate({"client": "alice", "server_frames": 31})
    assert call_problems(short, _call(), {}) == [
        "the simulator read 30 audible frames of the client (of 40), not 31"
    ]
    packets = ExpectCall.model_validate({"client": "alice", "client_packets": 10})
    assert call_problems(packets, _call(), {}, client_packets=3) == [
        "the client received 3 RTP packets, not 10"
    ]
    assert call_problems(want, None, {}) == ["no such call"]


def _run(tmp_path: Path, text: str, client: str) -> Result:
    path = tmp_path / "scenario.yaml"
    path.write_text(text, encoding="utf-8")
    loaded, problems = load_all([path])
    assert not problems, problems
    (result,) = asyncio.run(run_many(select(loaded, None), [client]))
    return result


NO_CALL = """\
id: t.no_call
title: a call nobody placed is not there
timescale: 0.05
clients: {alice: {token: alice}}
steps:
  - client.connect: {client: alice, wait: true}
  - expect.call: {client: alice, state: proposed, within: 0.5}
"""


def test_expect_call_without_a_call_fails_and_says_so(tmp_path: Path) -> None:
    result = _run(tmp_path, NO_CALL, "reference")
    assert result.verdict is Verdict.FAILED, result.failure
    assert result.failure is not None and result.failure.name == "expect.call"
    assert "no such call" in result.failure.observed and "calls: []" in result.failure.observed


PLACE_ON_REFERENCE = """\
id: t.place_on_reference
title: the reference dialect places no calls
timescale: 0.05
clients: {alice: {token: alice}}
steps:
  - client.connect: {client: alice, wait: true}
  - server.place_call: alice
"""


def test_a_call_on_a_dialect_without_a_softphone_is_the_scenarios_error(tmp_path: Path) -> None:
    result = _run(tmp_path, PLACE_ON_REFERENCE, "reference")
    assert result.verdict is Verdict.ERROR
    assert result.failure is not None and "softphone" in result.failure.observed


MANUAL = """\
id: t.manual
title: a propose left pending is proposed, then retracted
timescale: 0.05
dialects: [genesys]
clients: {alice: {token: alice}}
steps:
  - client.softphone.configure: {client: alice, answer: manual, wait: true}
  - client.connect: {client: alice, wait: true}
  - server.place_call: {client: alice}
  - expect.event: {client: alice, event: softphone.proposed, capture: {id: data.sessionId}}
  - expect.call: {client: alice, call: "${id}", state: proposed, accepted: false, as: call}
  - expect.var: {value: "${call.id}", equals: "${id}"}
  - server.end_call: {call: "${call.id}"}
  - expect.call: {client: alice, state: retracted, ended_by: server}
  - expect.call: {client: alice, state: active, within: 1}
"""


@pytest.fixture(scope="module")
def genesys_sdk() -> None:
    npm_ci(DRIVERS / "genesys-sdk", "genesys-cloud-streaming-client-19")


def test_a_real_sdk_call_is_judged_step_by_step(tmp_path: Path, genesys_sdk: None) -> None:
    """Against the real v19 SDK: every expectation of a retracted call holds until the last,
    which asks for an active call and must fail, naming the call's history."""
    result = _run(tmp_path, MANUAL, "genesys-sdk-19")
    assert result.verdict is Verdict.FAILED, result.failure
    failure = result.failure
    assert failure is not None and failure.step == 8, failure
    assert "state is 'retracted', not 'active'" in failure.observed
    assert "history: proposed, retracted" in failure.observed
    calls = [r for r in result.transcript if r.get("kind") == "call"]
    assert [c["call"]["state"] for c in calls] == ["proposed", "retracted"]
