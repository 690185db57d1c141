"""Hostile scenario files: each is refused with one ``file:line:column: what`` line and exit 2.

Invalid UTF-8, control characters, 5,000 nested ``[``, a 5,000-digit integer, a
nine-level alias bomb and an oversized file each used to crash ``squall validate``
and ``squall run`` with a traceback (exit 1), stopping the whole directory; the
bomb ran for minutes with memory growing without bound. Each case goes through
the loader API (:func:`load_file`, :func:`parse`) and through the console script
as a user runs it, with a good file next to the bad one.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

from squall.conformance import loader
from squall.conformance.loader import ScenarioError, load_all, load_file, parse

from .helpers import SCENARIOS

# the console script a user runs (.venv/bin/squall), or the module where it is not installed
_SCRIPT = Path(sys.executable).with_name("squall")
SQUALL = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "squall.cli"]
GOOD = SCENARIOS / "pubsub" / "notification.yaml"

HEAD = "id: demo.hostile\ntitle: t\nclients: {alice: {token: alice}}\n"


def _bomb(levels: int = 9, width: int = 9) -> bytes:
    lines = [HEAD.rstrip("\n"), "vars:", "  a0: &a0 [" + ", ".join(["lol"] * width) + "]"]
    for i in range(1, levels + 1):
        lines.append(f"  a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    lines.append("steps: [{wait: 1s}]")
    return ("\n".join(lines) + "\n").encode()


def _oversized() -> bytes:
    filler = ("# " + "x" * 98 + "\n") * (loader.MAX_FILE_BYTES // 100 + 1)
    return (HEAD + "steps: [{wait: 1s}]\n" + filler).encode()


# name -> (file bytes, line, column, what the message says)
CASES: dict[str, tuple[bytes, int, int, str]] = {
    "invalid_utf8": (
        b"id: x\ntitle: \xff\n",
        2,
        8,
        "not valid UTF-8: byte 0xff (invalid start byte); scenario files are UTF-8 text",
    ),
    "truncated_utf8": (
        b"id: x\ntitle: caf\xc3",
        2,
        11,
        "not valid UTF-8: byte 0xc3 (unexpected end of data)",
    ),
    "control_char": (
        b"id: x\ntitle: a\x01b\n",
        2,
        9,
        "control character U+0001 is not allowed in YAML",
    ),
    "nul_byte": (
        HEAD.encode() + b"steps: [{wait: 1s}]\x00\n",
        4,
        20,
        "control character U+0000 is not allowed in YAML",
    ),
    "deep_nesting": (
        b"id: x\ntitle: " + b"[" * 5000 + b"\n",
        2,
        8 + loader.MAX_DEPTH - 1,
        f"collections nested deeper than {loader.MAX_DEPTH} levels (MAX_DEPTH)",
    ),
    "huge_integer": (
        (HEAD + "steps:\n  - wait: " + "9" * 5000 + "\n").encode(),
        5,
        11,
        f"an integer of 5000 digits, over the limit of {loader.MAX_INT_DIGITS} (MAX_INT_DIGITS)",
    ),
    "alias_bomb": (
        _bomb(),
        0,  # the line of the first anchor that expands past the limit: checked below
        0,
        f"aliases expand this to more than {loader.MAX_NODES:,} nodes (MAX_NODES)",
    ),
    "recursive_alias": (
        (HEAD + "vars: &v {a: [*v]}\nsteps: [{wait: 1s}]\n").encode(),
        4,
        7,
        "recursive alias: this node contains an alias to itself",
    ),
    "alias_chain_depth": (
        (
            HEAD
            + "vars:\n  a0: &a0 [x]\n"
            + "".join(f"  a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 200))
            + "steps: [{wait: 1s}]\n"
        ).encode(),
        0,
        0,
        f"nested deeper than {loader.MAX_DEPTH} levels once aliases are expanded (MAX_DEPTH)",
    ),
    "oversized": (
        _oversized(),
        1,
        1,
        f"over the limit of {loader.MAX_FILE_BYTES:,} bytes (MAX_FILE_BYTES)",
    ),
}


def _check(problem: loader.Problem, path: Path, name: str) -> None:
    _, line, col, what = CASES[name]
    text = str(problem)
    assert "\n" not in text
    assert what in text, text
    if line:
        assert text.startswith(f"{path}:{line}:{col}: "), text
    else:
        assert text.startswith(f"{path}:"), text


@pytest.mark.parametrize("name", list(CASES))
def test_load_file_refuses_each_with_its_place(tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(CASES[name][0])
    with pytest.raises(ScenarioError) as info:
        load_file(path)
    assert len(info.value.problems) == 1, info.value.problems
    _check(info.value.problems[0], path, name)


@pytest.mark.parametrize("name", [n for n in CASES if n not in ("invalid_utf8", "truncated_utf8")])
def test_parse_refuses_each_from_text(name: str) -> None:
    with pytest.raises(ScenarioError) as info:
        parse(CASES[name][0].decode(), "t.yaml")
    assert len(info.value.problems) == 1
    _check(info.value.problems[0], Path("t.yaml"), name)


def test_the_alias_bomb_is_refused_in_milliseconds_with_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_bytes(_bomb())
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(ScenarioError) as info:
            load_file(path)
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "(MAX_NODES)" in str(info.value)
    assert elapsed < 0.5, f"{elapsed:.2f} s"
    assert peak < 20 * 2**20, f"{peak / 2**20:.1f} MiB"
    # a5 (line 10) is the first anchor past the limit: it expands to 597,871 nodes, a4 to 66,430
    assert str(info.value).startswith(f"{path}:10:"), str(info.value)


def test_aliases_within_the_limits_still_work() -> None:
    text = (
        HEAD + "vars:\n  base: &b {alice: [news]}\n  again: *b\n"
        "steps:\n  - expect.server: {subscriptions: *b}\n"
    )
    loaded = parse(text, "ok.yaml")
    assert loaded.scenario.id == "demo.hostile"


def test_a_utf8_bom_and_crlf_line_ends_are_fine() -> None:
    text = "\ufeff" + (HEAD + "steps: [{wait: 1s}]\n").replace("\n", "\r\n")
    assert parse(text, "bom.yaml").scenario.id == "demo.hostile"


def test_an_integer_at_the_limit_is_not_a_loader_error() -> None:
    text = HEAD + "seed: " + "9" * loader.MAX_INT_DIGITS + "\nsteps: [{wait: 1s}]\n"
    try:
        parse(text, "big.yaml")
    except ScenarioError as exc:
        assert "MAX_INT_DIGITS" not in str(exc)


def test_python_tags_are_refused_not_constructed() -> None:
    text = "id: x\ntitle: !!python/object/apply:os.system [echo hi]\nclients: {}\nsteps: []\n"
    with pytest.raises(ScenarioError) as info:
        parse(text, "tag.yaml")
    assert str(info.value).startswith(
        "tag.yaml:2:8: YAML: tag '!!python/object/apply:os.system' is not allowed"
    ), str(info.value)


def test_load_all_reports_the_bad_file_and_keeps_the_good_ones(tmp_path: Path) -> None:
    shutil.copy(GOOD, tmp_path / "good.yaml")
    for name, (body, *_) in CASES.items():
        (tmp_path / f"{name}.yaml").write_bytes(body)
    loaded, problems = load_all([tmp_path])
    assert [item.scenario.id for item in loaded] == ["pubsub.notification"]
    assert sorted(Path(p.path).stem for p in problems) == sorted(CASES)


def test_an_unexpected_error_is_one_problem_and_the_other_files_still_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copy(GOOD, tmp_path / "good.yaml")
    (tmp_path / "odd.yaml").write_text(HEAD + "steps: [{wait: 1s}]\n")
    real = loader.check_references

    def flaky(path: str, tree: object) -> list[loader.Problem]:
        if path.endswith("odd.yaml"):
            raise RuntimeError("boom")
        return real(path, tree)

    monkeypatch.setattr(loader, "check_references", flaky)
    loaded, problems = load_all([tmp_path])
    assert [item.scenario.id for item in loaded] == ["pubsub.notification"]
    assert [str(p) for p in problems] == [
        f"{tmp_path / 'odd.yaml'}:1:1: internal error while loading (RuntimeError: boom);"
        " please report it"
    ]


def test_yaml_messages_are_cut_short() -> None:
    big = "{" + ", ".join(f"k{i}: {i}" for i in range(500)) + "}"
    text = HEAD + f"vars: {big}\nvars: {big}\nsteps: [{{wait: 1s}}]\n"
    with pytest.raises(ScenarioError) as info:
        parse(text, "dup.yaml")
    (problem,) = info.value.problems
    assert "duplicate key" in problem.message and problem.message.endswith("...")
    assert len(str(problem)) < 200


def test_a_problem_is_one_line_whatever_the_key() -> None:
    text = HEAD + '"ti\\ntle\\u2028": x\nsteps: [{wait: 1s}]\n'
    with pytest.raises(ScenarioError) as info:
        parse(text, "key.yaml")
    lines = str(info.value).split("\n")
    assert len(lines) == len(info.value.problems) == 1
    assert "unknown key 'ti\\ntle\\u2028'" in lines[0], lines[0]


def test_run_with_only_bad_files_runs_nothing_and_exits_2(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_bytes(CASES["invalid_utf8"][0])
    out = _squall("run", "-q", str(tmp_path))
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert out.stderr.splitlines()[-1] == (
        f"no scenario selected: no valid scenario file under {tmp_path}"
    ), out.stderr


# -- the console script, as a user runs it ----------------------------------------------------


def _squall(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SQUALL, *argv], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.mark.parametrize("name", list(CASES))
def test_validate_exits_2_with_one_line_and_no_traceback(tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(CASES[name][0])
    start = time.perf_counter()
    out = _squall("validate", str(path), timeout=30)
    assert time.perf_counter() - start < 15
    assert out.returncode == 2, out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 2, lines
    _check_line(lines[0], path, name)
    assert lines[1] == "1 problem(s) in 1 file(s); 0 scenario(s) valid"


def _check_line(line: str, path: Path, name: str) -> None:
    _, ln, col, what = CASES[name]
    assert what in line, line
    assert line.startswith(f"{path}:{ln}:{col}: " if ln else f"{path}:"), line


def test_validate_a_directory_reports_every_bad_file_and_validates_the_good(
    tmp_path: Path,
) -> None:
    shutil.copy(GOOD, tmp_path / "good.yaml")
    for name, (body, *_) in CASES.items():
        (tmp_path / f"{name}.yaml").write_bytes(body)
    out = _squall("validate", str(tmp_path))
    assert out.returncode == 2, out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    lines = out.stderr.splitlines()
    assert lines[-1] == f"{len(CASES)} problem(s) in {len(CASES)} file(s); 1 scenario(s) valid"
    for name in CASES:
        (line,) = [x for x in lines if x.startswith(f"{tmp_path / name}.yaml:")]
        _check_line(line, tmp_path / f"{name}.yaml", name)


def test_run_a_directory_reports_the_bad_file_runs_the_good_and_exits_2(tmp_path: Path) -> None:
    shutil.copy(GOOD, tmp_path / "good.yaml")
    for name in ("invalid_utf8", "deep_nesting", "alias_bomb"):
        (tmp_path / f"{name}.yaml").write_bytes(CASES[name][0])
    out = _squall("run", "-q", str(tmp_path), timeout=120)
    assert out.returncode == 2, out.stdout + out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    for name in ("invalid_utf8", "deep_nesting", "alias_bomb"):
        (line,) = [x for x in out.stderr.splitlines() if x.startswith(f"{tmp_path / name}.yaml:")]
        _check_line(line, tmp_path / f"{name}.yaml", name)
    assert "1 runs: 1 OK" in out.stdout, out.stdout
