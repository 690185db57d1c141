"""The scenario's timescale reaches a real SDK's own process: protocol time >= 100x wall time.

``common.long_idle`` idles for 30 protocol minutes, kept alive only by the client's own
timers, then checks the same connection still delivers. The node drivers run under
``drivers/common/timescale.js``. Two checks show the SDK's own timers really ran at the
scenario's rate, not merely that nothing happened: RingCentral's 60 s Heartbeat reaches
the server about 30 times in those 30 minutes, and Mixer's 20 s call timeout (its default,
never passed by the scenario) fails a call the server never answers within 30 protocol
seconds, which at timescale 0.002 is 60 ms of real time (3 s with the runner's grace).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from squall.conformance.loader import load_all, select
from squall.conformance.run import run_many
from squall.conformance.verdicts import Result, Verdict

from .helpers import SCENARIOS

pytestmark = pytest.mark.timeout(300)

CALL_TIMEOUT = """\
id: sdk.call_timeout
title: a call the server never answers fails on the SDK's own default timeout
timescale: 0.002
dialects: [mixer]
clients: {alice: {token: alice}}
steps:
  - server.on_rpc: {method: msg, no_reply: true}
  - client.connect: {client: alice, wait: true}
  - client.call: {client: alice, method: msg, params: [hello], as: hello}
  - expect.reply:
      {client: alice, reply: hello, ok: false, error: "no reply to msg within 20s", within: 30s}
"""


def _run(paths: list[Path], scenario: str, client: str) -> Result:
    loaded, problems = load_all(paths)
    assert not problems
    items = select(loaded, [scenario])
    assert len(items) == 1
    (result,) = asyncio.run(run_many(items, [client]))
    return result


@pytest.mark.parametrize("client", ["mixer-sdk", "ringcentral-sdk"])
def test_protocol_time_runs_100x_faster_than_wall_time_in_a_real_sdk(client: str) -> None:
    result = _run([SCENARIOS / "common"], "common.long_idle", client)
    assert result.verdict is Verdict.OK, result.failure
    assert result.protocol_time >= 1800
    assert result.protocol_time / result.wall >= 100, (result.protocol_time, result.wall)
    if client == "ringcentral-sdk":
        beats = [
            r
            for r in result.transcript
            if r.get("kind") == "frame" and r.get("dir") == "in" and r.get("type") == "Heartbeat"
        ]
        assert 20 <= len(beats) <= 40, len(beats)  # one per 60 s of silence, for 30 minutes


def test_the_sdks_default_call_timeout_runs_in_protocol_time(tmp_path: Path) -> None:
    path = tmp_path / "call_timeout.yaml"
    path.write_text(CALL_TIMEOUT, encoding="utf-8")
    result = _run([path], "sdk.call_timeout", "mixer-sdk")
    assert result.verdict is Verdict.OK, result.failure
