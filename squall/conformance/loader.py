"""Reading scenario files: YAML with source marks, so every error names file:line:column.

ruamel.yaml's round-trip loader keeps the line and column of every key and
value (``node.lc``); pydantic reports where a value is wrong as a ``loc`` path
(``steps.3.client.connect.topics``). :func:`locate` walks that path through the
YAML tree to the mark, and :func:`expected_keys` through the JSON Schema to
say what would have been accepted. Nothing here runs a scenario.
"""

from __future__ import annotations

import difflib
import fnmatch
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from .models import STEP_MODELS, Scenario, scenario_json_schema

SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a scenario file, at a place, in a sentence."""

    path: str
    line: int  # 1-based
    column: int  # 1-based
    where: str  # the offending key path, e.g. steps[3].client.connect.topics
    message: str

    def __str__(self) -> str:
        where = f"{self.where}: " if self.where else ""
        return f"{self.path}:{self.line}:{self.column}: {where}{self.message}"


class ScenarioError(Exception):
    """A scenario file that cannot run; :attr:`problems` lists every error found."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


@dataclass
class Loaded:
    """A valid scenario, the file it came from, and the YAML tree for source marks."""

    path: Path
    scenario: Scenario
    tree: Any = field(repr=False)

    def step_line(self, index: int) -> int:
        """1-based line of step ``index`` in the file."""
        steps = self.tree.get("steps") if isinstance(self.tree, CommentedMap) else None
        if isinstance(steps, CommentedSeq) and index < len(steps):
            return int(steps.lc.item(index)[0]) + 1
        return 1

    @property
    def line(self) -> int:
        return int(self.tree.lc.key("id")[0]) + 1 if "id" in self.tree else 1


def _plain(node: Any) -> Any:
    """The tree as plain dicts, lists and scalars (what pydantic validates)."""
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return node


def locate(tree: Any, loc: Sequence[Any], *, key: bool = False) -> tuple[int, int]:
    """0-based (line, column) of the node at pydantic ``loc``; the key's mark when ``key``."""
    node = tree
    pos = (0, 0)
    if isinstance(tree, CommentedMap | CommentedSeq):
        pos = (tree.lc.line, tree.lc.col)
    for i, elem in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, CommentedMap) and elem in node:
            pos = node.lc.key(elem) if (key and last) else node.lc.value(elem)
            node = node[elem]
        elif isinstance(node, CommentedSeq) and isinstance(elem, int) and elem < len(node):
            pos = node.lc.item(elem)
            node = node[elem]
        # else: a union tag or a field filled from a shorthand: stay on this node
    return int(pos[0]), int(pos[1])


_SCHEMA: dict[str, Any] | None = None


def _schema() -> dict[str, Any]:
    global _SCHEMA
    if _SCHEMA is None:
        _SCHEMA = scenario_json_schema()
    return _SCHEMA


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = _schema()["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def _branches(node: dict[str, Any]) -> list[dict[str, Any]]:
    node = _resolve(node)
    alts = node.get("anyOf") or node.get("oneOf")
    if alts:
        return [b for alt in alts for b in _branches(alt)]
    return [node]


def expected_keys(loc: Sequence[Any]) -> list[str]:
    """The keys the schema accepts in the mapping that holds ``loc[-1]``."""
    nodes = [_schema()]
    for elem in loc[:-1]:
        nxt: list[dict[str, Any]] = []
        for node in nodes:
            for branch in _branches(node):
                if isinstance(elem, int) and "items" in branch:
                    nxt.append(branch["items"])
                elif elem in branch.get("properties", {}):
                    nxt.append(branch["properties"][elem])
                elif isinstance(branch.get("additionalProperties"), dict):
                    nxt.append(branch["additionalProperties"])
        if nxt:  # else a union tag: stay
            nodes = nxt
    keys: list[str] = []
    for node in nodes:
        for branch in _branches(node):
            for k in branch.get("properties", {}):
                if k not in keys:
                    keys.append(k)
    return keys


def _where(loc: Sequence[Any]) -> str:
    out = ""
    previous = None
    for elem in loc:
        if elem == previous:
            continue  # the step tag repeats as the wrapper's field
        previous = elem
        out += f"[{elem}]" if isinstance(elem, int) else (f".{elem}" if out else str(elem))
    return out


def _message(err: dict[str, Any], loc: Sequence[Any], value: Any) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        allowed = [k for k in expected_keys(loc) if k != "$schema"]
        bad = str(loc[-1])
        close = difflib.get_close_matches(bad, allowed, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"unknown key {bad!r} ({hint}expected one of: {', '.join(allowed)})"
    if kind == "unknown_step":
        if isinstance(value, dict) and value:
            name = str(next(iter(value)))
            close = difflib.get_close_matches(name, list(STEP_MODELS), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            return f"unknown step {name!r} ({hint}expected one of: {', '.join(STEP_MODELS)})"
        return f"a step must be a one-key mapping like '- wait: 1s', got {type(value).__name__}"
    if kind == "missing":
        return f"missing required key {str(loc[-1])!r}"
    if kind == "duration":
        return str(err["msg"])
    got = err.get("input")
    shown = json.dumps(got, default=str) if not isinstance(got, dict) else "a mapping"
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"{err['msg']} (got {shown})"


def problems_from(path: str, tree: Any, exc: ValidationError) -> list[Problem]:
    """pydantic's errors as :class:`Problem` s with marks, in file order."""
    out = []
    for err in exc.errors(include_url=False):
        loc = list(err["loc"])
        kind = err["type"]
        if kind == "missing":
            line, col = locate(tree, loc[:-1])
        else:
            line, col = locate(tree, loc, key=kind in ("extra_forbidden", "unknown_step"))
        value = _get(tree, loc)
        out.append(Problem(path, line + 1, col + 1, _where(loc), _message(err, loc, value)))
    out.sort(key=lambda p: (p.line, p.column))
    return out


def _get(tree: Any, loc: Sequence[Any]) -> Any:
    node = tree
    for elem in loc:
        if (isinstance(node, dict) and elem in node) or (
            isinstance(node, list) and isinstance(elem, int) and elem < len(node)
        ):
            node = node[elem]
    return node


def parse(text: str, path: str = "<string>") -> Loaded:
    """One scenario from YAML text; raises :class:`ScenarioError` with every problem."""
    yaml = YAML(typ="rt")
    try:
        tree = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line, mark.column) if mark else (0, 0)
        what = exc.problem or exc.context or "invalid YAML"
        raise ScenarioError([Problem(path, line + 1, col + 1, "", f"YAML: {what}")]) from None
    if not isinstance(tree, CommentedMap):
        raise ScenarioError(
            [Problem(path, 1, 1, "", "a scenario file is a mapping with id, title, clients, steps")]
        )
    try:
        scenario = Scenario.model_validate(_plain(tree))
    except ValidationError as exc:
        raise ScenarioError(problems_from(path, tree, exc)) from None
    problems = check_references(path, tree, scenario)
    if problems:
        raise ScenarioError(problems)
    return Loaded(Path(path), scenario, tree)


def check_references(path: str, tree: Any, scenario: Scenario) -> list[Problem]:
    """What the schema cannot say: steps naming clients the scenario does not declare."""
    problems = []
    # participants: the clients, and whoever a step brings in (a pack's ``_declares`` field)
    names = set(scenario.clients)
    for step in scenario.steps:
        declared = getattr(step.args, "_declares", None)
        if declared:
            names.add(getattr(step.args, declared))
    for i, step in enumerate(scenario.steps):
        args = step.args
        for key in ("client", "peer", "receiver", "sender"):
            value = getattr(args, key, None)
            if isinstance(value, str) and "${" not in value and value not in names:
                line, col = locate(tree, ["steps", i])
                problems.append(
                    Problem(
                        path,
                        line + 1,
                        col + 1,
                        f"steps[{i}].{step.name}.{key}",
                        f"unknown client {value!r} (this scenario declares: "
                        f"{', '.join(sorted(names))})",
                    )
                )
        if step.name.startswith("network.") and not scenario.network.proxy:
            line, col = locate(tree, ["steps", i])
            problems.append(
                Problem(
                    path,
                    line + 1,
                    col + 1,
                    f"steps[{i}].{step.name}",
                    "a network step needs a proxy: add 'network: {proxy: true}'",
                )
            )
    for name, spec in scenario.clients.items():
        if (spec.via == "proxy" or "proxy" in (spec.urls or [])) and not scenario.network.proxy:
            line, col = locate(tree, ["clients", name])
            problems.append(
                Problem(
                    path,
                    line + 1,
                    col + 1,
                    f"clients.{name}",
                    "connects through the proxy but the scenario has none: "
                    "add 'network: {proxy: true}'",
                )
            )
    return problems


def load_file(path: str | Path) -> Loaded:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError([Problem(str(p), 1, 1, "", f"cannot read: {exc}")]) from None
    return parse(text, str(p))


def discover(paths: Iterable[str | Path]) -> list[Path]:
    """Scenario files under ``paths`` (files as given, directories recursively), sorted."""
    found: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found.extend(sorted(f for f in p.rglob("*") if f.suffix in SUFFIXES))
        else:
            found.append(p)
    return found


def load_all(paths: Iterable[str | Path]) -> tuple[list[Loaded], list[Problem]]:
    """Every scenario under ``paths`` and every problem found, duplicate ids included."""
    loaded: list[Loaded] = []
    problems: list[Problem] = []
    seen: dict[str, Loaded] = {}
    for path in discover(paths):
        try:
            item = load_file(path)
        except ScenarioError as exc:
            problems.extend(exc.problems)
            continue
        sid = item.scenario.id
        if sid in seen:
            problems.append(
                Problem(
                    str(path),
                    item.line,
                    1,
                    "id",
                    f"duplicate scenario id {sid!r} (also in {seen[sid].path}:{seen[sid].line})",
                )
            )
            continue
        seen[sid] = item
        loaded.append(item)
    return loaded, problems


def select(loaded: Iterable[Loaded], patterns: Sequence[str] | None) -> list[Loaded]:
    """Scenarios whose id matches any glob in ``patterns`` (all when none), like Autobahn cases."""
    items = list(loaded)
    if not patterns:
        return items
    return [s for s in items if any(fnmatch.fnmatchcase(s.scenario.id, p) for p in patterns)]
