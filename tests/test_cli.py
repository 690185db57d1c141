"""The ``squall`` console script, run as a user runs it: a subprocess."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request

import pytest

from squall.cli import COMMANDS

SQUALL = [sys.executable, "-m", "squall.cli"]


def test_demo_runs_the_smoke_session() -> None:
    out = subprocess.run([*SQUALL, "demo"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "all 8 steps passed" in out.stdout
    assert "recovered, replayed seq [3, 4]" in out.stdout


def test_serve_prints_urls_and_answers_control_calls() -> None:
    proc = subprocess.Popen(
        [*SQUALL, "serve", "--port", "0", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(4)]
        words = [line.split() for line in lines]
        assert [w[0] for w in words] == ["dialect", "websocket", "websocket", "control"]
        assert words[0][1] == "reference"
        control = words[3][1]
        with urllib.request.urlopen(f"{control}/sessions", timeout=10) as resp:
            assert json.load(resp) == {"result": []}
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


def test_serve_names_a_socket_io_endpoint_as_such() -> None:
    """rtccafe is Socket.IO on http://: the line must not tell a user to open a WebSocket."""
    proc = subprocess.Popen(
        [*SQUALL, "serve", "--port", "0", "--dialect", "rtccafe"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        words = [proc.stdout.readline().split() for _ in range(2)]
        assert words[0] == ["dialect", "rtccafe"]
        assert words[1][0] == "socket.io" and words[1][1].startswith("http://127.0.0.1:")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


@pytest.mark.parametrize("argv", [["serve", "--port", "x"], ["nope"]])
def test_bad_arguments_exit_2(argv: list[str]) -> None:
    out = subprocess.run([*SQUALL, *argv], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "error:" in out.stderr


# --- help, version and pipes: what a newcomer types first ------------------------------------


def _squall(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SQUALL, *argv], capture_output=True, text=True, timeout=60)


def test_version() -> None:
    import importlib.metadata

    import squall

    out = _squall("--version")
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"squall {squall.__version__}\n"
    assert squall.__version__ == importlib.metadata.version("squall")  # pyproject agrees


def test_top_level_help_is_written_for_users() -> None:
    out = _squall("--help")
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())  # argparse rewraps; compare the words
    assert "one subcommand per job" not in text  # the module docstring, for developers
    assert "squall checks realtime WebSocket clients" in text
    for name, (_, help_text) in COMMANDS.items():
        assert f"{name} {' '.join(help_text.split())}" in text, name
    assert "proxy's API is on 8474" in text and "--control-port" in text
    assert "squall COMMAND --help" in text and "docs/control-api.md" in text
    bare = _squall()  # no command: the same help, as an error
    assert bare.returncode == 2 and bare.stdout == ""
    assert "squall checks realtime WebSocket clients" in bare.stderr


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_option_of_every_command_is_explained(command: str) -> None:
    """Every option has a help text; defaults show; no reST markup reaches the terminal."""
    import argparse

    from squall.cli import build_parser

    parser = build_parser(command)
    (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    p = sub.choices[command]
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):  # explained by each of its choices
            for choice in action._choices_actions:
                assert choice.help, f"squall {command} {choice.dest}: no help"
            continue
        assert action.help, f"squall {command} {action.option_strings or action.dest}: no help"
    shown = p.format_help()
    assert not re.search(r"(?<!`)``(?!`)|:(data|func|class|mod|meth):`", shown), shown
    if command == "serve":
        assert "HTTP control API port (default 0: any free port" in " ".join(shown.split())
    if command == "run":
        assert "scenarios run at once (default: 1)" in " ".join(shown.split())


def test_run_help_lists_the_clients_and_the_reference_client_flags() -> None:
    from squall.client.driver import build_parser
    from squall.conformance.clients import PROFILES

    out = _squall("run", "--help")
    assert out.returncode == 0, out.stderr
    for name in PROFILES:
        assert f"\n  {name} " in out.stdout, name
    flags_part = out.stdout.split("\nreference client flags", 1)[1]
    for flag in ("--no-resubscribe", "--retry-auth-failure", "--no-recover", "--debug"):
        assert f"\n  {flag} " in flags_part, flag
    driver_flags = {f for a in build_parser()._actions for f in a.option_strings}
    listed = {f for f in driver_flags if f"\n  {f}" in flags_part}
    # Only what the runner sets itself (per scenario, per client name) is left out.
    assert driver_flags - listed == {"-h", "--help", "--timescale", "--seed", "--dialect"}
    assert "--client 'reference --no-resubscribe'" in out.stdout


@pytest.mark.parametrize(
    ("argv", "unbuffered"),
    [
        (["validate", "--schema"], ""),  # unbuffered: test_validate_schema_into_head
        (["--help"], ""),
        (["--help"], "1"),
        (["--version"], ""),
        (["--version"], "1"),
    ],
)
def test_a_closed_stdout_ends_quietly(argv: list[str], unbuffered: str) -> None:
    """`squall ... | head`: no BrokenPipeError traceback, the status a shell gives SIGPIPE.

    The pipe's read end is closed before the process starts, so its first write fails
    whatever the timing. Help and version text is written by argparse, which ignores a
    failed write itself when stdout is unbuffered (PYTHONUNBUFFERED): then 0.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if unbuffered:
        env["PYTHONUNBUFFERED"] = unbuffered
    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run(
            [*SQUALL, *argv], stdout=write, stderr=subprocess.PIPE, text=True, timeout=60, env=env
        )
    finally:
        os.close(write)
    assert proc.stderr == ""
    printed_by_argparse = "--help" in argv or "--version" in argv
    assert proc.returncode == (0 if printed_by_argparse and unbuffered else 141)


def test_validate_schema_into_head() -> None:
    """The same through a real shell pipeline, as the issue typed it (stdout unbuffered)."""
    cmd = " ".join(f"'{w}'" for w in SQUALL) + " validate --schema | head -n 3"
    out = subprocess.run(
        ["bash", "-o", "pipefail", "-c", cmd],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert out.stderr == ""
    assert out.stdout.splitlines() == ["{", '  "$defs": {', '    "AddTrack": {']
    assert out.returncode in (0, 141)  # 0 when head read it all before leaving
