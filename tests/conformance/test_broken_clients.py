"""A deliberately broken client turns exactly the right scenarios FAILED, and nothing else.

The reference driver's ``--no-resubscribe`` and ``--retry-auth-failure`` flags break
one rule each; the scenarios that check the rule carry a tag naming it
(``resubscribe``, ``auth-final``). The whole set runs against each variant.
"""

from __future__ import annotations

import asyncio

import pytest

from squall.conformance.loader import load_all
from squall.conformance.run import run_many
from squall.conformance.verdicts import Verdict

from .helpers import SCENARIOS

pytestmark = pytest.mark.timeout(300)


@pytest.mark.parametrize(
    ("flag", "tag"),
    [("--no-resubscribe", "resubscribe"), ("--retry-auth-failure", "auth-final")],
)
def test_a_broken_client_fails_exactly_the_scenarios_of_its_rule(flag: str, tag: str) -> None:
    loaded, problems = load_all([SCENARIOS])
    assert not problems
    # Herd scenarios drive crowds of their own reference cores, not the client under test, and
    # a crowd on the shared loop would starve the timing of the scenarios running beside it.
    # The broken client speaks the reference protocol: another dialect's scenarios are not its.
    loaded = [
        item
        for item in loaded
        if "herd" not in item.scenario.tags and "reference" in item.scenario.dialects
    ]
    expected = {item.scenario.id for item in loaded if tag in item.scenario.tags}
    assert expected, f"no scenario is tagged {tag}"
    # Two at a time: the client's own timers run compressed (a 10 s open timeout is 100 ms),
    # and three drivers starting at once on two loaded cores have missed it.
    results = asyncio.run(run_many(loaded, [f"reference {flag}"], jobs=2))
    failed = {r.scenario for r in results if r.verdict is Verdict.FAILED}
    assert failed == expected
    for r in results:
        if r.scenario in expected:
            assert r.failure is not None and r.failure.expected and r.failure.observed
