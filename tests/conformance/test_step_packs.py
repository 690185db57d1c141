"""Step packs: every step is a pack's, handlers use only the RunContext, and a broken
third-party pack (a real installed distribution in a subprocess) reports itself
without breaking anything else."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

from squall.conformance import models, packs, steps_webrtc
from squall.conformance.base import Args
from squall.conformance.loader import ScenarioError, parse
from squall.conformance.models import (
    CORE_STEPS,
    STEP_ARGS,
    STEP_HANDLERS,
    STEP_PACKS,
    StepPackError,
    register_pack,
)

ROOT = Path(__file__).resolve().parents[2]
CONFORMANCE = ROOT / "squall" / "conformance"


def test_every_step_is_a_packs_with_its_handler() -> None:
    """The core steps are packs like WebRTC's: the runner has no step of its own."""
    assert STEP_PACKS[:3] == (
        "squall.conformance.steps_core",
        "squall.conformance.expect",
        "squall.conformance.steps_webrtc",
    )
    seen: list[str] = []
    for name in STEP_PACKS:
        module = models.PACKS[name]
        for step, model in module.STEP_ARGS.items():
            assert STEP_ARGS[step] is model
            assert STEP_HANDLERS[step] is module.HANDLERS[step]
            assert packs.pack_of(step) is None  # squall's own: a bug in it is squall's
        seen += module.STEP_ARGS
    assert list(STEP_ARGS) == seen  # in pack order: the core steps first, as in the schema
    assert set(STEP_HANDLERS) == set(STEP_ARGS)
    assert list(STEP_ARGS)[: len(CORE_STEPS)] == list(CORE_STEPS)
    assert "client.connect" in CORE_STEPS and "expect.event" in CORE_STEPS
    assert set(steps_webrtc.STEP_ARGS) <= set(STEP_ARGS) - set(CORE_STEPS)


def _step_modules() -> list[Path]:
    return sorted([CONFORMANCE / "expect.py", *CONFORMANCE.glob("steps_*.py")])


@pytest.mark.parametrize("path", _step_modules(), ids=lambda p: p.name)
def test_a_step_pack_uses_only_the_run_context(path: Path) -> None:
    """No pack module imports the runner or the models, or reads a private attribute of
    the context it is given: what squall's packs do, a third-party pack can do."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            imported.add(("." * node.level) + (node.module or ""))
    assert not imported & {".runner", ".models", "squall.conformance.runner"}, imported
    private = [
        f"{path.name}:{node.lineno}: ctx.{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in ("ctx", "run")
        and node.attr.startswith("_")
    ]
    assert private == []
    handlers = [n for n in ast.walk(tree) if isinstance(n, ast.AsyncFunctionDef) and n.args.args]
    assert not [n.name for n in handlers if n.args.args[0].arg == "run"]  # ctx, not the Run


def test_the_check_above_can_fail(tmp_path: Path) -> None:
    bad = tmp_path / "steps_bad.py"
    bad.write_text("async def h(ctx, a, s):\n    ctx._run.sim\n")
    with pytest.raises(AssertionError, match=r"ctx\._run"):
        test_a_step_pack_uses_only_the_run_context(bad)


# --- malformed packs are refused whole ------------------------------------------------------


def _pack(name: str, **steps: type[Args]) -> types.ModuleType:
    module = types.ModuleType(name)
    module.STEP_ARGS = steps  # type: ignore[attr-defined]

    async def handler(ctx: object, args: object, step: object) -> None:
        return None

    module.HANDLERS = dict.fromkeys(steps, handler)  # type: ignore[attr-defined]
    return module


def test_a_pack_may_not_redefine_a_step() -> None:
    with pytest.raises(StepPackError, match=r"redefines steps: expect\.media, wait"):
        register_pack(_pack("clash", **{"wait": Args, "expect.media": Args}))


def test_a_pack_needs_a_handler_for_every_step() -> None:
    module = _pack("partial", **{"thing.one": Args})
    module.HANDLERS = {}  # type: ignore[attr-defined]
    with pytest.raises(StepPackError, match=r"without a handler \['thing.one'\]"):
        register_pack(module)
    assert "thing.one" not in STEP_ARGS


def test_a_step_model_must_be_scenario_args() -> None:
    with pytest.raises(StepPackError, match=r"is not a squall\.conformance\.base\.Args"):
        register_pack(_pack("wrong", **{"thing.two": dict}))  # type: ignore[arg-type]
    assert "thing.two" not in STEP_ARGS and "wrong" not in models.PACKS


def test_a_handler_must_be_async_and_a_name_a_step_name() -> None:
    module = _pack("sync", **{"thing.three": Args})
    module.HANDLERS = {"thing.three": lambda ctx, a, s: None}  # type: ignore[attr-defined]
    with pytest.raises(StepPackError, match=r"handler of thing\.three is not an async function"):
        register_pack(module)
    with pytest.raises(StepPackError, match=r"'Thing Four' is not a step name"):
        register_pack(_pack("named", **{"Thing Four": Args}))
    assert "thing.three" not in STEP_ARGS and "Thing Four" not in STEP_ARGS


def test_a_pack_registered_after_the_step_set_is_built_is_refused() -> None:
    """Too late is said, not silently ignored: the Step union would not know the step."""
    with pytest.raises(StepPackError, match=r"after squall\.conformance\.models built"):
        register_pack(_pack("late", **{"thing.five": Args}))
    assert "thing.five" not in STEP_ARGS and "late" not in models.PACKS


HEAD = """id: x.y
title: t
timescale: 1
clients: {alice: {token: alice}}
steps:
"""


def test_webrtc_steps_validate_with_places(tmp_path: Path) -> None:
    ok = parse(
        HEAD
        + "  - peer.join: {name: bob, room: lobby, request: [cam]}\n"
        + "  - client.webrtc.request_peer_track: {client: alice, peer: bob, id: cam}\n"
        + "  - expect.media: {receiver: alice, sender: bob, track: cam, within: 3s, since: last}\n",
        str(tmp_path / "ok.yaml"),
    )
    steps = ok.scenario.steps
    assert [s.name for s in steps] == [
        "peer.join",
        "client.webrtc.request_peer_track",
        "expect.media",
    ]
    assert steps[2].args.within == 3.0
    with pytest.raises(ScenarioError) as err:
        parse(
            HEAD + "  - peer.jion: {name: bob, room: lobby}\n"
            "  - expect.media: {receiver: alice, sender: bob, track: cam, frmaes: 3}\n",
            str(tmp_path / "bad.yaml"),
        )
    text = str(err.value)
    assert "bad.yaml:6:" in text and "did you mean 'peer.join'" in text
    assert "bad.yaml:7:" in text and "did you mean 'frames'" in text
    with pytest.raises(ScenarioError, match=r"x.yaml:6:.*sender: unknown client 'zed'"):
        parse(
            HEAD + "  - expect.media: {receiver: alice, sender: zed, track: cam}\n",
            str(tmp_path / "x.yaml"),
        )


def test_state_histories_match_in_order_from_first_to_last() -> None:
    match = steps_webrtc.states_match
    want = ["new", "connecting", "connected"]
    assert match(["new", "connecting", "connected"], want, exact=False)
    assert match(["new", "connecting", "connected", "connecting", "connected"], want, exact=False)
    assert not match(["new", "connecting"], want, exact=False)
    assert not match(["new", "connecting", "connected", "closed"], want, exact=False)
    assert not match(["new", "connected", "connecting", "connected"], want, exact=True)


# --- third-party packs, installed for real (a dist-info on the path) -------------------------

RAISES = 'raise RuntimeError("broken_steps: this pack is broken on purpose")\n'
SYNC_HANDLER = """\
from squall.conformance.base import Args

class Thing(Args):
    pass

def thing(ctx, args, step):  # not async: malformed
    return None

STEP_ARGS = {"bad.thing": Thing}
HANDLERS = {"bad.thing": thing}
"""
BUGGY = """\
from squall.conformance.base import Args

class Boom(Args):
    pass

async def boom(ctx, args, step):
    ctx.record("runner", "boom")
    return 1 / 0

STEP_ARGS = {"buggy.boom": Boom}
HANDLERS = {"buggy.boom": boom}
"""


def _install(tmp_path: Path, **modules: str) -> dict[str, str]:
    """One distribution, ``demo-packs 0.1``, with an entry point per module (``name =
    name_steps``, or ``name = module`` for a module already on the path when its source
    is empty); the environment that puts it on ``sys.path``."""
    site = tmp_path / "site"
    site.mkdir()
    lines = ["[squall.steps]"]
    for name, source in modules.items():
        target = f"{name}_steps" if source else name
        if source:
            (site / f"{target}.py").write_text(source)
        lines.append(f"{name} = {target}")
    info = site / "demo_packs-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: demo-packs\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(site), str(ROOT / "examples"), str(ROOT), env.get("PYTHONPATH", "")) if p
    )
    return env


def _squall(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "squall.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=240,
    )


def _scenario(path: Path, sid: str, step: str) -> Path:
    path.write_text(
        f"id: {sid}\ntitle: t\ntimescale: 0.01\nclients: {{alice: {{token: alice}}}}\n"
        f"steps:\n  - client.connect: alice\n  - {step}\n"
    )
    return path


def test_a_pack_that_raises_is_named_by_validate_and_in_the_problem(tmp_path: Path) -> None:
    env = _install(tmp_path, broken=RAISES)
    _scenario(tmp_path / "uses.yaml", "demo.uses", "broken.thing: {}")
    _scenario(tmp_path / "plain.yaml", "demo.plain", "wait: 1s")
    done = _squall(env, "validate", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    err = done.stderr
    assert (
        "warning: step pack 'broken' (broken_steps, from demo-packs 0.1) did not load: "
        "RuntimeError: broken_steps: this pack is broken on purpose; its steps are unknown"
    ) in err
    assert (
        "uses.yaml:7:5: step 2: unknown step 'broken.thing': step pack 'broken' (broken_steps, "
        "from demo-packs 0.1) did not load and may define it: RuntimeError: broken_steps: this "
        "pack is broken on purpose"
    ) in err
    assert "1 problem(s) in 1 file(s); 1 scenario(s) valid" in err  # the rest still loads


def test_a_malformed_pack_is_named_for_exactly_its_steps(tmp_path: Path) -> None:
    """Its module loaded, so its steps are known: the problem says whose step it is, and
    pytest reports the scenario as an error (nobody can fix the file), not a failure."""
    env = _install(tmp_path, bad=SYNC_HANDLER)
    path = _scenario(tmp_path / "uses.yaml", "demo.uses", "bad.thing: {}")
    done = _squall(env, "validate", str(path), cwd=tmp_path)
    assert done.returncode == 2
    assert (
        "step 2: unknown step 'bad.thing': it is a step of step pack 'bad' (bad_steps, from "
        "demo-packs 0.1), which did not load: StepPackError: step pack bad_steps: the handler "
        "of bad.thing is not an async function"
    ) in done.stderr, done.stderr
    ran = subprocess.run(
        [sys.executable, "-m", "pytest", str(path), "-q", "-p", "no:cacheprovider", "-rA"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert ran.returncode == 1, ran.stdout
    assert "1 error" in ran.stdout and "failed" not in ran.stdout, ran.stdout
    assert "it is a step of step pack 'bad'" in ran.stdout


def test_third_party_steps_run_and_their_bugs_are_their_packs(tmp_path: Path) -> None:
    """examples/step_pack.py, installed as an entry point, runs (OK); a pack whose handler
    raises is an ERROR blamed on the pack, with the file and line, not on squall."""
    env = _install(tmp_path, step_pack="", buggy=BUGGY)
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    _scenario(
        scenarios / "ok.yaml",
        "demo.status",
        "expect.client_status: {client: alice, status: connected}",
    )
    _scenario(scenarios / "boom.yaml", "demo.boom", "buggy.boom: {}")
    out = tmp_path / "out.json"
    done = _squall(env, "run", str(scenarios), "--json", str(out), "-q", cwd=tmp_path)
    assert done.returncode == 3, done.stdout + done.stderr  # an ERROR, not a FAILED client
    data = json.loads(out.read_text())
    runs = data["results"][data["clients"][0]]
    assert runs["demo.status"]["verdict"] == "OK", runs["demo.status"]
    boom = runs["demo.boom"]
    assert boom["verdict"] == "ERROR"
    assert boom["failure"]["blame"] == "pack"
    assert boom["failure"]["expected"] == (
        "step pack buggy_steps runs the step without an internal error"
    )
    assert boom["failure"]["observed"].startswith("ZeroDivisionError: division by zero at ")
    assert boom["failure"]["observed"].endswith("buggy_steps.py:8")  # `return 1 / 0`
    assert "a third-party step pack (report it to its authors)" in boom["headline"]


def test_the_example_pack_is_what_the_docs_show() -> None:
    """docs/scenarios.md's example is examples/step_pack.py (tests/test_docs.py runs it)."""
    text = (ROOT / "docs" / "scenarios.md").read_text(encoding="utf-8")
    assert "# examples/step_pack.py" in text
    assert (
        textwrap.dedent(
            """\
        ```toml
        [project.entry-points."squall.steps"]"""
        )
        in text
    )
