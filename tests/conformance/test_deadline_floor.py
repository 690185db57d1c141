"""A window the server gives the client to answer in is not compressed below real round trips.

At ``timescale: 0.01`` the default 1 s drain answer window is 10 ms of real time, while the
client's answer crosses real sockets: 200 ms of real latency (a proxy ``latency`` of 20 000
protocol ms) made every such answer late. The run's clock floors these windows at the
lesser of their protocol duration and ``GRACE`` real seconds (``squall.clock.deadline_delay``),
so the answer is in time. (The client's own timeouts are its process's business: the
scenario raises them past the latency.) ``SQUALL_FLOOR_RUNS=20`` repeats the scenario 20
times.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from squall.clock import LoopClock, ManualClock, deadline_delay
from squall.conformance.loader import parse
from squall.conformance.runner import GRACE, Run, run_sync
from squall.conformance.verdicts import Verdict

pytestmark = pytest.mark.timeout(120)

ANSWER_OVER_LATENCY = """\
id: drain.answer_over_latency
title: a 'pending' answer crossing 200 ms of real latency meets the 1 s answer window
timescale: 0.01
network: {proxy: true}
# 200 ms of real latency is 20 protocol seconds at this timescale: the client's own
# timeouts, which its process compresses, are raised past it (docs/scenarios.md, Time).
clients:
  alice:
    token: alice
    via: proxy
    policy: {open_timeout: 100, ping_interval: 300, pong_timeout: 100}
steps:
  - client.answer_drain: {client: alice, with: pending}
  - network.toxic: {type: latency, stream: upstream, attributes: {latency: 20000}}
  - client.connect: alice
  - expect.event: {client: alice, event: connected, within: 60s}
  - server.request_reconnect: {client: alice, deadline: 10m}
  - expect.event: {client: alice, event: request_reconnect, data: {answer_within: 1}}
  - expect.server:
      session: {alice: {drain: pending}}
      within: 60s
      rule: "a 'pending' answer within answer_within defers the reconnect: protocol.md §6"
  - expect.transcript:
      since: start
      absent: true
      pattern: [{kind: drain, state: forced}]
      within: 1s
      rule: "a 'pending' answer within answer_within defers the reconnect: protocol.md §6"
"""

RUNS = int(os.environ.get("SQUALL_FLOOR_RUNS", "1"))


@pytest.mark.parametrize("attempt", range(RUNS))
def test_an_answer_over_real_latency_meets_the_answer_window(attempt: int) -> None:
    """200 ms of real upstream latency at timescale 0.01: the pending answer is in time."""
    result = run_sync(parse(ANSWER_OVER_LATENCY))
    assert result.verdict is Verdict.OK, result.failure


def test_without_the_floor_the_same_answer_is_late() -> None:
    """The control: a 10 ms window (no floor) closes the connection before the answer."""
    run = Run(parse(ANSWER_OVER_LATENCY))
    run.clock = LoopClock(run.timescale)  # the clock as it was: no deadline floor
    result = asyncio.run(run.execute())
    assert result.verdict is Verdict.FAILED
    forced = [r for r in result.transcript if r["kind"] == "drain" and r["state"] == "forced"]
    assert [r["reason"] for r in forced] == ["reconnect request not answered within 1s"]
    assert "a 'pending' answer within answer_within defers the reconnect" in result.headline()


def test_the_floor_never_stretches_a_window_past_its_real_duration() -> None:
    """max(compressed, min(protocol, floor)) real seconds; no floor, no change."""
    clock = LoopClock(0.01, deadline_floor=GRACE)
    assert clock.real_deadline(1) == pytest.approx(1.0)  # not 10 ms: the whole real second
    assert clock.real_deadline(10) == pytest.approx(GRACE)  # not 100 ms
    assert clock.real_deadline(1800) == pytest.approx(18.0)  # compressed beyond the floor
    assert clock.real_deadline(0.25) == pytest.approx(0.25)  # never longer than uncompressed
    assert clock.real_deadline(0) == 0
    real_time = LoopClock(1.0, deadline_floor=GRACE)
    assert deadline_delay(real_time, 1.0) == 1.0  # timescale 1 is untouched
    assert deadline_delay(LoopClock(0.01), 1.0) == 1.0  # no floor: as given
    assert deadline_delay(ManualClock(), 10.0) == 10.0


def test_a_negative_floor_is_refused() -> None:
    """A floor below zero is a mistake, said at once."""
    with pytest.raises(ValueError, match="deadline_floor must be >= 0"):
        LoopClock(0.01, deadline_floor=-1)
