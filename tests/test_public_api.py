"""The documented API is the exported API: ``__all__`` on every public module, and docs that
import only what those lists export.

Public modules are the package ``__init__`` files and every module that docs/*.md,
README.md or examples/*.py import from. Each has an ``__all__`` whose names all resolve,
and every ``from squall... import X`` there names an X in that module's ``__all__`` (or
a submodule, whose names used as ``alias.Name`` must then be in its ``__all__``). A doc
that imports a private helper, or a rename that leaves a doc behind, fails here.

Also: a third-party step pack that raises on import must not break
``import squall.conformance.models`` (docs/scenarios.md, "Step packs").
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent

PACKAGES = (
    "squall",
    "squall.simulator",
    "squall.client",
    "squall.client.webrtc",
    "squall.faults",
    "squall.conformance",
    "squall.media",
    "squall.protocol",
    "squall.chaos",
)

# ``from squall.x import (a, b)`` over several lines, or ``import squall.x [as y]``, at a line start
_IMPORT = re.compile(
    r"^[ \t]*(from[ \t]+squall[\w.]*[ \t]+import[ \t]+(?:\([^)]*\)|[^\n]+)"
    r"|import[ \t]+squall[^\n]*)",
    re.MULTILINE,
)


@dataclass(frozen=True)
class DocImport:
    where: str  # file:line
    module: str
    name: str | None  # None for ``import squall.x``
    alias: str | None


def _doc_files() -> list[Path]:
    return [
        *sorted((ROOT / "docs").rglob("*.md")),
        ROOT / "README.md",
        *sorted((ROOT / "examples").glob("*.py")),
    ]


def _imports_in(path: Path, root: Path = ROOT) -> list[DocImport]:
    text = path.read_text(encoding="utf-8")
    rel = path.relative_to(root).as_posix()
    out = []
    for match in _IMPORT.finditer(text):
        line = text.count("\n", 0, match.start(1)) + 1
        statement = textwrap.dedent(match.group(1)).split("#", 1)[0].strip()
        try:
            node = ast.parse(statement).body[0]
        except SyntaxError as exc:
            raise AssertionError(f"{rel}:{line}: cannot parse {statement!r}: {exc}") from None
        if isinstance(node, ast.ImportFrom) and node.module:
            out += [DocImport(f"{rel}:{line}", node.module, a.name, a.asname) for a in node.names]
        elif isinstance(node, ast.Import):
            out += [DocImport(f"{rel}:{line}", a.name, None, a.asname) for a in node.names]
    return out


@functools.cache
def doc_imports() -> tuple[DocImport, ...]:
    return tuple(i for path in _doc_files() for i in _imports_in(path))


def public_modules() -> list[str]:
    from_docs = {i.module for i in doc_imports() if i.name is not None}
    submodules = {
        f"{i.module}.{i.name}"
        for i in doc_imports()
        if i.name is not None and _is_submodule(i.module, i.name)
    }
    return sorted(set(PACKAGES) | from_docs | submodules | {"squall.clock"})


def _is_submodule(module: str, name: str) -> bool:
    obj = getattr(importlib.import_module(module), name, None)
    return inspect.ismodule(obj) and obj.__name__ == f"{module}.{name}"


def _exports(module: ModuleType) -> list[str]:
    exported = getattr(module, "__all__", None)
    assert isinstance(exported, list | tuple), f"{module.__name__} has no __all__"
    return list(exported)


def test_the_docs_import_from_squall_at_all() -> None:
    """The scan finds the imports docs and examples show (it cannot silently find none)."""
    found = {(i.module, i.name) for i in doc_imports()}
    assert {("squall.simulator", "Simulator"), ("squall.clock", "LoopClock")} <= found
    assert any(i.where.startswith("examples/") for i in doc_imports())
    assert any(i.where.startswith("docs/dialects") for i in doc_imports())


@pytest.mark.parametrize("name", public_modules())
def test_public_module_has_an_all_that_resolves(name: str) -> None:
    module = importlib.import_module(name)
    exported = _exports(module)
    assert len(exported) == len(set(exported)), f"{name}.__all__ repeats a name"
    missing = [n for n in exported if not hasattr(module, n)]
    assert missing == [], f"{name}.__all__ names what it does not have: {missing}"


def test_every_documented_import_is_exported() -> None:
    problems = []
    for imp in doc_imports():
        try:
            module = importlib.import_module(imp.module)
        except ImportError as exc:
            problems.append(f"{imp.where}: {imp.module} does not import: {exc}")
            continue
        if imp.name is None:
            continue
        if not hasattr(module, imp.name):
            problems.append(f"{imp.where}: {imp.module} has no {imp.name}")
        elif _is_submodule(imp.module, imp.name):
            continue
        elif imp.name not in getattr(module, "__all__", ()):
            problems.append(f"{imp.where}: {imp.name} is not in {imp.module}.__all__")
    assert problems == [], "\n".join(problems)


def test_names_used_from_documented_submodules_are_exported() -> None:
    """``from squall.simulator import events as ev`` then ``ev.Subscribed``: in its __all__."""
    problems = []
    for path in _doc_files():
        text = _code(path)
        for imp in _imports_in(path):
            if imp.name is None or not _is_submodule(imp.module, imp.name):
                continue
            sub = importlib.import_module(f"{imp.module}.{imp.name}")
            alias = imp.alias or imp.name
            used = set(re.findall(rf"(?<![\w.]){re.escape(alias)}\.(\w+)", text))
            hidden = sorted(used - set(_exports(sub)))
            if hidden:
                problems.append(f"{imp.where}: {alias}.{hidden} not in {sub.__name__}.__all__")
    assert problems == [], "\n".join(problems)


def _code(path: Path) -> str:
    """A file's code: all of a .py, the fenced blocks of a .md (prose mentions ``ops.py``)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix != ".md":
        return text
    return "\n".join(re.findall(r"^```[^\n]*\n(.*?)^```", text, re.MULTILINE | re.DOTALL))


def test_the_test_rejects_an_unexported_import(tmp_path: Path) -> None:
    """The check can fail: a private helper imported in a doc is named."""
    doc = tmp_path / "x.md"
    doc.write_text("```python\nfrom squall.clock import (\n    LoopClock,\n    _T,\n)\n```\n")
    imports = [(i.where, i.module, i.name) for i in _imports_in(doc, tmp_path)]
    assert imports == [("x.md:2", "squall.clock", "LoopClock"), ("x.md:2", "squall.clock", "_T")]
    assert "_T" not in importlib.import_module("squall.clock").__all__


# --- a broken third-party step pack -------------------------------------------------------------


def _broken_pack(tmp_path: Path) -> dict[str, str]:
    """A real installed distribution (a dist-info on the path) whose ``squall.steps`` entry
    point raises when loaded; the environment that puts it on ``sys.path``."""
    (tmp_path / "broken_steps.py").write_text(
        'raise RuntimeError("broken_steps: this pack is broken on purpose")\n'
    )
    info = tmp_path / "broken_steps-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-steps\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[squall.steps]\nbroken = broken_steps\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(tmp_path), str(ROOT), env.get("PYTHONPATH", "")) if p
    )
    return env


def _import_models(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    code = (
        "import squall.conformance.models as m\n"
        "assert 'client.webrtc.enable' in m.STEP_ARGS, sorted(m.STEP_ARGS)\n"
        "print('imported')\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )


def test_the_broken_pack_is_seen_by_entry_points(tmp_path: Path) -> None:
    """The fixture is real: importlib.metadata lists the pack and loading it raises."""
    env = _broken_pack(tmp_path)
    code = (
        "from importlib.metadata import entry_points\n"
        "eps = [e for e in entry_points(group='squall.steps') if e.name == 'broken']\n"
        "assert eps, 'not found'\n"
        "try:\n    eps[0].load()\nexcept RuntimeError as exc:\n    print('raised', exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert "raised broken_steps" in done.stdout, done.stderr


def test_a_broken_step_pack_does_not_break_importing_models(tmp_path: Path) -> None:
    done = _import_models(_broken_pack(tmp_path))
    if done.returncode != 0:
        # it fails because of the pack, not for some other reason
        assert "broken_steps: this pack is broken on purpose" in done.stderr, done.stderr
        pytest.fail("a broken step pack breaks import squall.conformance.models:\n" + done.stderr)
    assert "imported" in done.stdout, done.stderr[-2000:]
    # ... and it says so: a warning naming the pack and what its load raised
    assert "StepPackWarning: step pack 'broken' (broken_steps" in done.stderr, done.stderr
    assert "RuntimeError: broken_steps: this pack is broken on purpose" in done.stderr
