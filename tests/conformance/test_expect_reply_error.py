"""``expect.reply`` with an error: ``/regex/`` or bare, against the error's type and message."""

from __future__ import annotations

import pytest

from squall.conformance.loader import ScenarioError, parse
from squall.conformance.match import error_matches
from squall.conformance.runner import run_sync
from squall.conformance.verdicts import Verdict

pytestmark = pytest.mark.timeout(60)

DECLINED = """\
id: demo.declined
title: a call the server refuses
clients: {alice: {token: alice}}
steps:
  - server.on_rpc: {method: charge, error: {code: card_declined, message: no funds}}
  - client.connect: {client: alice, wait: true}
  - client.call: {client: alice, method: charge, as: first}
  - expect.reply: {client: alice, reply: first, error: "/declined: no funds$/"}
  - expect.reply: {client: alice, reply: first, error: RemoteError}
  - expect.reply: {client: alice, reply: first, ok: false, error: "^RemoteError: server error"}
  - client.call: {client: alice, method: charge, wait: true, expect_error: "/^Remote/"}
"""


def test_an_error_matches_by_regex_on_its_type_or_message() -> None:
    """Slashed and bare regexes, on the message, the type and 'type: message'; ok: false implied."""
    result = run_sync(parse(DECLINED))
    assert result.verdict is Verdict.OK, result.headline()


def test_an_error_that_does_not_match_says_what_it_was() -> None:
    """The observation is the error's type and message, whole."""
    text = DECLINED.replace('error: "/declined: no funds$/"', 'error: "/timed out/"')
    result = run_sync(parse(text))
    assert result.verdict is Verdict.FAILED
    assert result.failure is not None
    assert result.failure.expected == "an error whose type or message matches /timed out/"
    assert result.failure.observed == "RemoteError: server error card_declined: no funds"


def test_error_with_ok_true_is_a_contradiction_found_before_running() -> None:
    """'error' checks a failed reply: 'ok: true' next to it is refused at its line."""
    text = DECLINED.replace("error: RemoteError}", "ok: true, error: RemoteError}")
    with pytest.raises(ScenarioError) as info:
        parse(text)
    assert str(info.value) == (
        "<string>:9:19: step 5 expect.reply: 'error' checks a failed reply: drop 'ok: true'"
    )


@pytest.mark.parametrize(
    ("pattern", "hit"),
    [
        ("CommandError", True),
        ("/^CommandError$/", True),
        ("/unknown command/", True),
        ("^CommandError: unknown", True),
        ("/^unknown command 'fly'$/", True),
        ("/TimeoutError/", False),
        ("/", False),
    ],
)
def test_error_matches(pattern: str, hit: bool) -> None:
    """One rule for expect.reply's error and a client step's expect_error."""
    assert error_matches(pattern, "CommandError", "unknown command 'fly'") is hit
