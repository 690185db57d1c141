"""A client profile's timescale floor: socket.io-client 2 cannot run at 0.01 on a loaded machine.

Its pong and connect deadlines (20 protocol seconds each) are 0.2 real seconds at 0.01, which
six scenarios at once on two cores miss (``connect_timeout``, ``ping timeout``); the
``reliable-signaler-sdk`` profile therefore runs no faster than 0.05. The floor only raises:
a slower scenario keeps its own timescale, and an explicit ``--timescale`` wins.
"""

from __future__ import annotations

import asyncio

from squall.conformance.clients import PROFILES, profile
from squall.conformance.loader import parse
from squall.conformance.runner import Run

SCENARIO = """\
id: probe.timescale
title: a scenario whose timescale the runner settles
timescale: {timescale}
dialects: [reference, reliable-signaler]
clients: {{alice: {{token: alice}}}}
steps:
  - wait: 1s
"""


def _timescale(client: str, scenario: float, given: float | None = None) -> float:
    async def settle() -> float:  # a Run is made on a loop, as the runner makes it
        run = Run(parse(SCENARIO.format(timescale=scenario)), client=client, timescale=given)
        return run.timescale

    return asyncio.run(settle())


def test_the_floor_raises_a_faster_scenario() -> None:
    assert PROFILES["reliable-signaler-sdk"].min_timescale == 0.05
    assert _timescale("reliable-signaler-sdk", 0.01) == 0.05


def test_a_slower_scenario_and_an_explicit_timescale_are_kept() -> None:
    assert _timescale("reliable-signaler-sdk", 0.5) == 0.5
    assert _timescale("reliable-signaler-sdk", 0.01, given=0.002) == 0.002


def test_profiles_without_a_floor_run_at_the_scenarios_timescale() -> None:
    assert profile("reference").min_timescale is None
    assert _timescale("reference", 0.01) == 0.01


def test_the_floor_survives_extra_flags() -> None:
    assert profile("reliable-signaler-sdk --debug").min_timescale == 0.05
