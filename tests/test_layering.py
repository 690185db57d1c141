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
