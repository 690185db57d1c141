"""``squall validate``: every problem with file:line:column, the key, what was expected; exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from squall.cli import main

from .helpers import SCENARIOS

HEAD = """\
# yaml-language-server: $schema=../../schemas/scenario.schema.json
id: demo.bad
title: a broken scenario
clients: {alice: {token: alice}}
"""


def validate(tmp_path: Path, body: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    path = tmp_path / "bad.yaml"
    path.write_text(body)
    code = main(["validate", str(path)])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("steps", "line", "col", "expected"),
    [
        (
            "  - client.conect: alice\n",
            6,
            5,
            "step 1: unknown step 'client.conect' (did you mean 'client.connect'?",
        ),
        (
            "  - client.connect: {client: alice, tokn: x}\n",
            6,
            37,
            "step 1 client.connect.tokn: unknown key 'tokn' (did you mean 'token'? "
            "expected one of: client, wait, as, expect_error, token, urls)",
        ),
        (
            "  - client.answer_drain: {client: alice, with: maybe}\n",
            6,
            48,
            "step 1 client.answer_drain.with: Input should be 'pending', 'done' or 'none'",
        ),
        (
            "  - wait: 3 years\n",
            6,
            11,
            "step 1 wait.for: expected a duration like 500ms, 30s, 10m or a number of seconds,"
            " got '3 years'",
        ),
        (
            "  - client.subscribe: {client: alice}\n",
            6,
            23,
            "step 1 client.subscribe.topics: missing required key 'topics'",
        ),
        (
            "  - expect.event: {client: bob, event: connected}\n",
            6,
            5,
            "step 1 expect.event.client: unknown client 'bob' (this scenario declares: alice)",
        ),
        (
            "  - network.toxic: {type: latency}\n",
            6,
            5,
            "step 1 network.toxic: a network step needs a proxy: add 'network: {proxy: true}'",
        ),
        (
            "  - server.drop: {client: alice, code: 99}\n",
            6,
            40,
            "step 1 server.drop.code: Input should be greater than or equal to 1000",
        ),
        (
            "  - network.toxic: {type: laggy}\n",
            6,
            27,
            "step 1 network.toxic.type: Input should be 'noop', 'latency'",
        ),
    ],
)
def test_each_problem_names_its_place_and_what_was_expected(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    steps: str,
    line: int,
    col: int,
    expected: str,
) -> None:
    code, err = validate(tmp_path, HEAD + "steps:\n" + steps, capsys)
    assert code == 2
    assert f"{tmp_path / 'bad.yaml'}:{line}:{col}: {expected}" in err


def test_every_problem_of_a_file_is_reported_in_file_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = HEAD.replace("title: a broken scenario\n", "titel: typo\n") + (
        "steps:\n  - wait: soon\n  - client.subscribe: {client: alice, topics: []}\n"
    )
    code, err = validate(tmp_path, body, capsys)
    lines = [x for x in err.splitlines() if "bad.yaml:" in x]
    assert code == 2
    assert [x.split(": ", 1)[0].rsplit(":", 2)[-2] for x in lines] == ["2", "3", "6", "7"]
    assert "missing required key 'title'" in lines[0] or "missing required key 'title'" in err
    assert "unknown key 'titel' (did you mean 'title'?" in err
    assert err.strip().endswith("4 problem(s) in 1 file(s); 0 scenario(s) valid")


def test_yaml_syntax_errors_have_a_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = validate(tmp_path, HEAD + "steps:\n  - wait: [1s\n", capsys)
    assert code == 2
    assert f"{tmp_path / 'bad.yaml'}:7:1: YAML:" in err


def test_duplicate_ids_across_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("a.yaml", "b.yaml"):
        (tmp_path / name).write_text(HEAD + "steps:\n  - wait: 1s\n")
    assert main(["validate", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'b.yaml'}:2:1: id: duplicate scenario id 'demo.bad' (also in " in err


def test_the_shipped_scenarios_are_valid(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(SCENARIOS)]) == 0
    assert "scenario(s) valid" in capsys.readouterr().out
