"""What can be checked before running is, in one pass: every problem at once, file:line:column.

Server config and client policy keys against the real ``Config`` and ``Policy`` (with a
did-you-mean), ``expect.reply`` names no step stores, clients and endpoints a scenario does
not have, regexes that do not compile; steps numbered from 1 as ``squall run`` numbers them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from squall.cli import main
from squall.conformance.loader import ScenarioError, parse
from squall.conformance.runner import run_sync
from squall.conformance.verdicts import Verdict
from squall.simulator import Config
from squall.simulator.dialects import names as dialect_names

BAD = """\
id: demo.many
title: many mistakes, all reported together
server: {config: {recovery_windw: 10, drain_answer_within: 2s}}
network: {proxy: true}
clients:
  alice: {token: alice, urls: [server, server2], policy: {backof_initial: 1}}
  bob: {token: bob, policy: {ping_interval: 5, pong_timeout: 10}}
steps:
  - client.call: {client: alice, method: echo, as: first}
  - expect.reply: {client: alice, reply: frist}
  - expect.server: {sessions: {alise: open}}
  - expect.reply: {client: alice, reply: first, error: "(unclosed"}
  - client.connect: {client: bob, urls: [proxy, srever]}
"""


def test_every_problem_of_a_file_in_one_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Eight mistakes of four kinds, eight lines in file order, each with a way out."""
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    assert main(["validate", str(path)]) == 2
    lines = [x.removeprefix(f"{path}:") for x in capsys.readouterr().err.splitlines()]
    settings = ", ".join(f.name for f in dataclasses.fields(Config))  # every one, in order
    assert lines[0] == (
        "3:19: server.config.recovery_windw: unknown key 'recovery_windw' (did you mean "
        f"'recovery_window'? expected one of: {settings})"
    )
    assert lines[1] == (
        "6:40: clients.alice.urls[1]: unknown endpoint 'server2' (did you mean 'server'?) "
        "(this scenario has: server, dead, proxy)"
    )
    assert lines[2].startswith(
        "6:59: clients.alice.policy.backof_initial: unknown key 'backof_initial' (did you mean "
        "'backoff_initial'? expected one of: ping_interval, pong_timeout, "
    )
    dialects = ", ".join(d for d in dialect_names() if d != "reference")
    assert lines[2].endswith(f", recovery_token, {dialects})")
    assert lines[3:] == [
        "7:29: clients.bob.policy: invalid client policy: pong_timeout (10) must not exceed "
        "ping_interval (5): a ping's answer is judged before the next ping",
        "10:42: step 2 expect.reply.reply: no earlier step stores a reply as 'frist' (did you "
        "mean 'first'?) (add 'as: frist' to the client step whose reply this checks; 'as' "
        "names so far: first)",
        "11:32: step 3 expect.server.sessions.alise: unknown client 'alise' (did you mean "
        "'alice'?) (this scenario declares: alice, bob)",
        "12:56: step 4 expect.reply.error: not a valid regex: missing ), unterminated "
        "subpattern at position 0",
        "13:49: step 5 client.connect.urls[1]: unknown endpoint 'srever' (did you mean "
        "'server'?) (this scenario has: server, dead, proxy)",
        "8 problem(s) in 1 file(s); 0 scenario(s) valid",
    ]


def test_a_reply_stored_later_is_not_yet_stored() -> None:
    """``as`` counts from the step that stores it on, not before."""
    with pytest.raises(ScenarioError) as info:
        parse(
            "id: demo.r\ntitle: t\nclients: {alice: {token: alice}}\nsteps:\n"
            "  - expect.reply: {client: alice, reply: later}\n"
            "  - client.call: {client: alice, method: echo, as: later}\n"
        )
    assert "no earlier step stores a reply as 'later'" in str(info.value)


def test_validate_and_run_number_steps_alike(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """'step 2 expect.event' in both: validate's problem and run's failure."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "id: demo.n\ntitle: t\nclients: {alice: {token: alice}}\nsteps:\n"
        "  - client.connect: alice\n  - expect.event: {client: bob, event: connected}\n"
    )
    main(["validate", str(bad)])
    assert f"{bad}:6:5: step 2 expect.event.client: unknown client 'bob'" in capsys.readouterr().err
    result = run_sync(
        parse(
            "id: demo.n\ntitle: t\nclients: {alice: {token: alice}}\nsteps:\n"
            "  - client.connect: alice\n"
            "  - expect.event: {client: alice, event: notification, within: 0.1s}\n"
        )
    )
    assert result.verdict is Verdict.FAILED
    assert result.headline().startswith("step 2 expect.event: ")


def test_settings_are_typed_and_sent_parsed() -> None:
    """Durations as strings are parsed for the server and the client; wrong types refused."""
    loaded = parse(
        "id: demo.s\ntitle: t\nserver: {config: {recovery_window: 30s}}\n"
        "clients: {alice: {token: alice, policy: {backoff_initial: 500ms, mixer: {x: 1}}}}\n"
        "steps: [{wait: 1s}]\n"
    )
    assert loaded.scenario.server.config.model_dump(exclude_unset=True) == {"recovery_window": 30.0}
    policy = loaded.scenario.clients["alice"].policy.model_dump(exclude_unset=True)
    assert policy == {"backoff_initial": 0.5, "mixer": {"x": 1}}
    with pytest.raises(ScenarioError) as info:
        parse(
            "id: demo.s\ntitle: t\nclients: {alice: {token: alice, policy: {reconnect: maybe}}}\n"
            "steps: [{wait: 1s}]\n"
        )
    assert str(info.value) == (
        "<string>:3:53: clients.alice.policy.reconnect: Input should be a valid boolean, "
        'unable to interpret input (got "maybe")'
    )
