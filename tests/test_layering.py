"""design.md's dependency rules, checked on the import statements of every module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "squall"

# package -> squall packages it must never import. squall.secrets (one module, the redaction
# point) is open to client, simulator and conformance alike; protocol still imports nothing
# of ours, and secrets itself imports nothing of ours (test_secrets_is_a_leaf).
FORBIDDEN = {
    "protocol": {"client", "simulator", "faults", "conformance", "clock", "cli", "secrets"},
    "client": {"simulator", "faults", "conformance"},
    "simulator": {"client", "conformance"},
}


def imports_of(path: Path) -> set[str]:
    """The squall subpackages a module imports (absolute imports; relative ones stay inside)."""
    return {name.split(".")[1] for name in _all_imports(path) if name.startswith("squall.")}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_dependency_rules(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"squall/{package} has no modules"
    broken = {
        str(f.relative_to(ROOT.parent)): sorted(imports_of(f) & FORBIDDEN[package]) for f in files
    }
    assert {f: bad for f, bad in broken.items() if bad} == {}


def test_secrets_is_a_leaf() -> None:
    """squall/secrets.py imports no squall module: anything may use it, it depends on nothing."""
    assert imports_of(ROOT / "secrets.py") == set()
    assert not any(n.startswith("squall") for n in _all_imports(ROOT / "secrets.py"))


def test_protocol_does_no_io() -> None:
    """protocol/ is sans-I/O: no sockets, no asyncio, no clock reads."""
    for f in (ROOT / "protocol").rglob("*.py"):
        names = {n.split(".")[0] for n in _all_imports(f)}
        assert not names & {"asyncio", "socket", "time", "websockets", "aiohttp"}, f


def _all_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


# The simulator's core speaks no wire format: these modules import no codec, no dialect.
CORE_MODULES = ("core", "ops", "events", "seam", "auth", "rooms", "rpc", "transcript", "control")


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_imports_no_codec(module: str) -> None:
    path = ROOT / "simulator" / f"{module}.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                found.add(node.module)
            elif node.level == 1:
                found.update(f".{node.module or a.name}" for a in node.names)
    banned = {n for n in found if n.startswith("squall.protocol") or "dialects" in n}
    assert banned == set(), f"simulator/{module}.py imports {sorted(banned)}"


# --- no import cycle inside squall/conformance ---------------------------------------------------

CONFORMANCE = ROOT / "conformance"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def runtime_imports(path: Path, package: str = "squall.conformance") -> set[str]:
    """The modules of ``package`` that ``path`` imports when it runs: at module level and
    inside functions (a lazy import is a dependency too), not under ``if TYPE_CHECKING``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith(package + "."))
        elif isinstance(node, ast.ImportFrom):
            if node.level == 1:
                base = f"{package}.{node.module}" if node.module else package
            elif node.level == 0 and node.module and node.module.startswith(package):
                base = node.module
            else:
                base = ""
            if base == package:  # from . import models
                found.update(f"{package}.{a.name}" for a in node.names)
            elif base:
                found.add(base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {m.removeprefix(package + ".").split(".")[0] for m in found} - {""}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected set of two or more modules (or one importing itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in graph:
                continue
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while True:
                w = stack.pop()
                part.append(w)
                if w == v:
                    break
            if len(part) > 1 or v in graph.get(v, ()):
                cycles.append(sorted(part))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return cycles


def test_no_import_cycle_inside_conformance() -> None:
    """expect.py, the step packs and the runner never import each other in a circle: what
    they share (StepFailed, GRACE, the RunContext) lives in modules that import neither."""
    graph = {
        f.stem: runtime_imports(f) for f in sorted(CONFORMANCE.glob("*.py")) if f.stem != "__init__"
    }
    assert "runner" in graph["run"] and "contract" in graph["expect"]  # the graph is real
    assert "runner" not in graph["expect"] and "runner" not in graph["steps_webrtc"]
    assert import_cycles(graph) == []


def test_the_cycle_check_finds_a_cycle(tmp_path: Path) -> None:
    """The check can fail: a lazy import back, as expect and runner had, is a cycle; an
    import under TYPE_CHECKING is not."""
    (tmp_path / "runner.py").write_text("def run():\n    from . import expect\n")
    (tmp_path / "expect.py").write_text(
        "from typing import TYPE_CHECKING\nfrom .runner import GRACE\n"
        "if TYPE_CHECKING:\n    from .context import X\n"
    )
    (tmp_path / "context.py").write_text("from .expect import Y\n")
    graph = {f.stem: runtime_imports(f) for f in tmp_path.glob("*.py")}
    assert graph == {"runner": {"expect"}, "expect": {"runner"}, "context": {"expect"}}
    assert import_cycles(graph) == [["expect", "runner"]]
