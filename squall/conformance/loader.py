"""Reading scenario files: YAML with source marks, so every error names file:line:column.

ruamel.yaml's round-trip loader keeps the line and column of every key and
value (``node.lc``); pydantic reports where a value is wrong as a ``loc`` path
(``steps.3.client.connect.topics``). :func:`locate` walks that path through the
YAML tree to the mark, and :func:`expected_keys` through the JSON Schema to
say what would have been accepted. Nothing here runs a scenario.

A scenario file is untrusted input: bytes are decoded as UTF-8 here (a bad
byte is reported at its line:column), control characters are refused before
YAML sees them, and the limits below are checked while composing and on the
composed node graph, before anything is constructed, so a 5,000-deep ``[[[``,
a 5,000-digit integer or an alias bomb is refused in milliseconds with bounded
memory. Every failure is a :class:`ScenarioError`; whatever else ruamel.yaml
raises becomes one too, with the best place known.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import json
import os
import re
import unicodedata
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.composer import Composer
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.events import CollectionStartEvent
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.scalarbool import ScalarBoolean
from ruamel.yaml.scanner import RoundTripScanner

from squall.simulator.control import did_you_mean

from .models import STEP_ARGS, STEP_MODELS, ClientPolicy, Scenario, scenario_json_schema
from .packs import broken_pack_note

__all__ = [
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_INT_DIGITS",
    "MAX_NODES",
    "SUFFIXES",
    "Loaded",
    "Problem",
    "ScenarioError",
    "check_references",
    "discover",
    "load_all",
    "load_file",
    "parse",
    "parse_bytes",
    "problems_from",
    "read_yaml",
    "select",
]

SUFFIXES = (".yaml", ".yml")

# Limits on one scenario file. Each is far above what a scenario needs (the shipped
# ones are at most 2.8 KB, 347 nodes, 7 levels deep, with 4-digit integers) and each
# has its own error naming it.
MAX_FILE_BYTES = 256 * 1024
"""Largest file read: 256 KiB, checked before decoding. ruamel.yaml's round-trip parser
reads about 30 KB a second, so this bounds a file's load to seconds (1 MiB took 35 s)."""
MAX_DEPTH = 64
"""Deepest nesting of lists and mappings, the top-level mapping being 1; checked while
composing (so 5,000 ``[`` stop at the 64th) and again with aliases expanded."""
MAX_NODES = 100_000
"""Most nodes (scalars, lists, mappings) in the document, counted while composing and
again with every alias expanded (what an alias bomb blows up) on the composed graph,
where nothing is expanded."""
MAX_INT_DIGITS = 1000
"""Most digits in an integer (Python refuses to convert 4,300 and more)."""

_YAML_TAG = "tag:yaml.org,2002:"
# tags a scenario value may have (plain YAML); any other (!!python/..., !!binary,
# !!set, !local) is refused before construction
_TAGS = frozenset(
    _YAML_TAG + t
    for t in ("str", "int", "float", "bool", "null", "seq", "map", "merge", "timestamp")
)
# what YAML 1.2 does not allow in a stream (the regex of ruamel.yaml's Reader)
_NON_PRINTABLE = re.compile("[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a scenario file, at a place, in a sentence."""

    path: str
    line: int  # 1-based
    column: int  # 1-based
    where: str  # the offending key path, e.g. steps[3].client.connect.topics
    message: str
    #: a third-party step pack that did not load, and may be why (then nobody but its
    #: authors can fix this problem: pytest reports it as an error)
    broken_pack: str | None = field(default=None, compare=False)

    def __str__(self) -> str:
        where = f"{_one_line(self.where)}: " if self.where else ""
        return f"{self.path}:{self.line}:{self.column}: {where}{_one_line(self.message)}"


def _one_line(text: str) -> str:
    """``text`` with line breaks and other control characters escaped: one problem, one line."""
    return _UNSAFE.sub(
        lambda m: m.group().encode("unicode_escape", "backslashreplace").decode(), text
    )


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
    if isinstance(node, ScalarBoolean):  # an anchored true/false
        return bool(node)
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
                else:  # a mapping keyed by names: clients: {alice: ...}
                    nxt.extend(
                        sub
                        for pattern, sub in branch.get("patternProperties", {}).items()
                        if isinstance(elem, str) and re.search(pattern, elem)
                    )
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
    """``step 4 client.connect.tokn``, ``clients.alice.policy``: steps numbered from 1, as
    ``squall run`` and the reports number them."""
    if len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int):
        rest = _where(loc[2:])
        return f"step {loc[1] + 1}" + (f" {rest}" if rest else "")
    out = ""
    previous = None
    for elem in loc:
        if elem == previous:
            continue  # the step tag repeats as the wrapper's field
        previous = elem
        out += f"[{elem}]" if isinstance(elem, int) else (f".{elem}" if out else str(elem))
    return out


def _message(err: ErrorDetails, loc: Sequence[Any], value: Any) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        allowed = [k for k in expected_keys(loc) if k != "$schema"]
        bad = str(loc[-1])
        hint = did_you_mean(bad, allowed)  # the control plane's: by spelling, else by alias
        return f"unknown key {bad!r} ({hint}expected one of: {', '.join(allowed)})"
    if kind == "unknown_step":
        if isinstance(value, dict) and value:
            name = str(next(iter(value)))
            close = difflib.get_close_matches(name, list(STEP_MODELS), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            note = broken_pack_note(name)  # a pack that did not load may be why
            if note:
                return f"unknown step {name!r}{f' ({hint.strip()})' if close else ''}: {note}"
            return f"unknown step {name!r} ({hint}expected one of: {', '.join(STEP_MODELS)})"
        return f"a step must be a one-key mapping like '- wait: 1s', got {type(value).__name__}"
    if kind == "missing":
        return f"missing required key {str(loc[-1])!r}"
    if kind in ("duration", "regex"):
        return str(err["msg"])
    if kind == "value_error":  # a model's own rule: its sentence says it all
        return str(err["msg"]).removeprefix("Value error, ")
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
        note = None
        if kind == "unknown_step" and isinstance(value, dict) and value:
            note = broken_pack_note(str(next(iter(value))))
        out.append(Problem(path, line + 1, col + 1, _where(loc), _message(err, loc, value), note))
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
    tree = read_yaml(text, path)
    if not isinstance(tree, CommentedMap):
        raise ScenarioError(
            [Problem(path, 1, 1, "", "a scenario file is a mapping with id, title, clients, steps")]
        )
    problems = check_references(path, tree)
    try:
        scenario = Scenario.model_validate(_plain(tree))
    except ValidationError as exc:
        problems = [*problems_from(path, tree, exc), *problems]
        problems.sort(key=lambda p: (p.line, p.column))
    if problems:
        raise ScenarioError(problems)
    return Loaded(Path(path), scenario, tree)


def parse_bytes(data: bytes, path: str = "<string>") -> Loaded:
    """One scenario from the bytes of a file: at most :data:`MAX_FILE_BYTES`, UTF-8."""
    if len(data) > MAX_FILE_BYTES:
        raise ScenarioError([_too_big(path, len(data))])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = _mark(data[: exc.start].decode("utf-8"), exc.start)
        hint = (
            "; this file looks like UTF-16"
            if data.startswith((b"\xff\xfe", b"\xfe\xff"))
            else "; scenario files are UTF-8 text"
        )
        bad = data[exc.start]
        message = f"not valid UTF-8: byte 0x{bad:02x} ({exc.reason}){hint}"
        raise ScenarioError([Problem(path, line + 1, col + 1, "", message)]) from None
    return parse(text, path)


def _too_big(path: str, size: int | None) -> Problem:
    what = f"{size:,} bytes" if size is not None else "larger than that"
    return Problem(
        path,
        1,
        1,
        "",
        f"file is {what}, over the limit of {MAX_FILE_BYTES:,} bytes (MAX_FILE_BYTES)",
    )


def _mark(text: str, index: int) -> tuple[int, int]:
    """0-based (line, column) of ``text[index]``, counted as ruamel.yaml counts its marks."""
    line, start = 0, 0
    for m in _BREAK.finditer(text, 0, index):
        line, start = line + 1, m.end()
    return line, index - start - text.count("\ufeff", start, index)


class _Limit(Exception):
    """A limit or rule broken while composing: where (a ruamel mark) and what."""

    def __init__(self, mark: Any, message: str) -> None:
        super().__init__(message)
        self.mark = mark
        self.message = message


class _Scanner(RoundTripScanner):
    """ruamel.yaml's scanner, refusing flow collections nested past :data:`MAX_DEPTH`.

    The scanner reads a run of ``[[[...`` to its end before the composer sees the
    first (any of them may start a key), and costs time quadratic in the flow
    depth: 5,000 took a second, 100,000 would take hours. So it is stopped here,
    counting the block collections open around it (``indents``) too.
    """

    def fetch_flow_collection_start(self, TokenClass: Any, to_push: str) -> None:
        if len(self.flow_context) + len(self.indents) >= MAX_DEPTH:
            raise _Limit(
                self.reader.get_mark(),
                f"collections nested deeper than {MAX_DEPTH} levels (MAX_DEPTH)",
            )
        super().fetch_flow_collection_start(TokenClass, to_push)


class _Composer(Composer):
    """ruamel.yaml's composer, refusing more than :data:`MAX_DEPTH` levels of nesting
    or :data:`MAX_NODES` nodes as it goes."""

    nesting = 0
    nodes = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.parser.peek_event()
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _Limit(event.start_mark, f"more than {MAX_NODES:,} nodes in a file (MAX_NODES)")
        if not isinstance(event, CollectionStartEvent):
            return super().compose_node(parent, index)
        self.nesting += 1
        if self.nesting > MAX_DEPTH:
            raise _Limit(
                event.start_mark, f"collections nested deeper than {MAX_DEPTH} levels (MAX_DEPTH)"
            )
        try:
            return super().compose_node(parent, index)
        finally:
            self.nesting -= 1


class _Constructor(RoundTripConstructor):
    """ruamel.yaml's round-trip constructor, remembering the node it is at for errors."""

    node: Node | None = None

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        self.node = node
        return super().construct_object(node, deep=deep)


def _tag(tag: str) -> str:
    return "!!" + tag[len(_YAML_TAG) :] if tag.startswith(_YAML_TAG) else tag


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def check_graph(root: Node) -> None:
    """Limits and tags on a composed YAML graph, aliases counted but never expanded.

    Each distinct node is visited once (iteratively: an alias chain is deep); its
    expanded size and depth come from its children's. Raises :class:`_Limit` for
    a recursive alias, nesting past :data:`MAX_DEPTH` or :data:`MAX_NODES` nodes,
    an integer of more than :data:`MAX_INT_DIGITS` digits or a tag not in plain YAML.
    """
    done: dict[int, tuple[int, int]] = {}  # id(node) -> (nodes, depth) once expanded
    open_: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            open_.discard(key)
            below = [done[id(c)] for c in _children(node)]
            size = 1 + sum(n for n, _ in below)
            depth = (
                1 + max((d for _, d in below), default=0)
                if isinstance(node, SequenceNode | MappingNode)
                else 0
            )
            if depth > MAX_DEPTH:
                raise _Limit(
                    node.start_mark,
                    f"nested deeper than {MAX_DEPTH} levels once aliases are expanded (MAX_DEPTH)",
                )
            if size > MAX_NODES:
                raise _Limit(
                    node.start_mark,
                    f"aliases expand this to more than {MAX_NODES:,} nodes (MAX_NODES)",
                )
            done[key] = (size, depth)
            continue
        if key in done:
            continue
        if key in open_:
            raise _Limit(node.start_mark, "recursive alias: this node contains an alias to itself")
        tag = str(node.tag)
        if tag not in _TAGS:
            raise _Limit(
                node.start_mark,
                f"tag {_tag(tag)!r} is not allowed (scenario files hold plain YAML: strings, "
                "numbers, booleans, null, lists and mappings)",
            )
        if isinstance(node, ScalarNode) and tag == _YAML_TAG + "int":
            digits = len(re.sub("^[-+]?(0[xob])?|_", "", str(node.value)))
            if digits > MAX_INT_DIGITS:
                raise _Limit(
                    node.start_mark,
                    f"an integer of {digits} digits, over the limit of {MAX_INT_DIGITS} "
                    "(MAX_INT_DIGITS)",
                )
        open_.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in reversed(_children(node)) if id(c) not in done)


def read_yaml(text: str, path: str = "<string>") -> Any:
    """The round-trip YAML tree of ``text``, every limit checked; raises :class:`ScenarioError`."""
    if 4 * len(text) > MAX_FILE_BYTES:  # else it cannot be over, whatever it encodes to
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > MAX_FILE_BYTES:
            raise ScenarioError([_too_big(path, size)])
    bad = _NON_PRINTABLE.search(text)
    if bad:
        ch = bad.group()
        line, col = _mark(text, bad.start())
        kind = "control character" if unicodedata.category(ch) == "Cc" else "character"
        escape = f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"
        message = (
            f"{kind} U+{ord(ch):04X} is not allowed in YAML "
            f'(write it as "{escape}" in a double-quoted string)'
        )
        raise ScenarioError([Problem(path, line + 1, col + 1, "", message)])
    yaml = YAML(typ="rt")
    yaml.Scanner = _Scanner
    yaml.Composer = _Composer
    yaml.Constructor = _Constructor
    constructor: _Constructor | None = None
    stage = "read"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            constructor, parser = yaml.get_constructor_parser(text)
            try:
                node = constructor.composer.get_single_node()
                if node is None:
                    return None
                check_graph(node)
                stage = "construct"
                return constructor.construct_document(node)
            finally:
                parser.dispose()
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = _shorten(str(exc.problem or exc.context or "invalid YAML"))
        problem = _at(path, mark, f"YAML: {what}")
    except _Limit as exc:
        problem = _at(path, exc.mark, f"YAML: {exc.message}")
    except Exception as exc:  # anything else ruamel.yaml raises: never a traceback
        node = constructor.node if constructor is not None and stage == "construct" else None
        if node is not None:
            mark = node.start_mark
            what = f"cannot read this {_tag(str(node.tag))} value"
        else:
            mark = _reader_mark(yaml)
            what = "cannot be read"
        problem = _at(path, mark, f"YAML: {what} ({type(exc).__name__}: {_shorten(str(exc))})")
    raise ScenarioError([problem])


def _shorten(text: str, limit: int = 160) -> str:
    """ruamel.yaml's message, cut short: a duplicate key's message holds its whole value."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _reader_mark(yaml: YAML) -> Any:
    try:
        return yaml.reader.get_mark()
    except Exception:
        return None


def _at(path: str, mark: Any, message: str) -> Problem:
    line, col = (int(mark.line), int(mark.column)) if mark is not None else (0, 0)
    return Problem(path, line + 1, col + 1, "", message)


def check_references(path: str, tree: Any, scenario: Scenario | None = None) -> list[Problem]:
    """What the schema cannot say, all in one pass: names a step uses that the scenario does
    not define (clients, ``as`` names, endpoints), network steps without a proxy, and a
    client policy the reference client would refuse.

    It reads the plain YAML tree, not the validated :class:`Scenario`, so that it runs on a
    file with schema errors too and every problem of a file is reported together; whatever
    is malformed here is the schema's to report, and skipped.
    """
    problems: list[Problem] = []
    data = _plain(tree)

    def problem(loc: list[Any], message: str, *, key: bool = False, where: str = "") -> None:
        line, col = locate(tree, loc, key=key)
        problems.append(Problem(path, line + 1, col + 1, where or _where(loc), message))

    clients = data.get("clients") if isinstance(data.get("clients"), dict) else {}
    network = data.get("network") if isinstance(data.get("network"), dict) else {}
    has_proxy = network.get("proxy") is True
    raw_steps = data.get("steps")
    steps = [_step(raw) for raw in raw_steps] if isinstance(raw_steps, list) else []
    # participants: the clients, and whoever a step brings in (a pack's ``_declares`` field)
    names = set(clients)
    for name, args in steps:
        declared = getattr(STEP_ARGS.get(name), "_declares", None)
        if declared and isinstance(args.get(declared), str):
            names.add(args[declared])
    declares = f"this scenario declares: {', '.join(sorted(names))}"
    endpoints = _endpoints(network)
    stored: set[str] = set()  # ``as`` names of the steps so far
    for i, (name, args) in enumerate(steps):
        at = ["steps", i, name]
        for key in ("client", "peer", "receiver", "sender"):
            value = args.get(key)
            if isinstance(value, str) and "${" not in value and value not in names:
                problem(
                    ["steps", i],
                    f"unknown client {value!r}{_did_you_mean(value, names)} ({declares})",
                    where=f"step {i + 1} {name}.{key}",
                )
        if name == "expect.server":
            for field in ("sessions", "subscriptions", "session"):
                mapping = args.get(field)
                for client in mapping if isinstance(mapping, dict) else {}:
                    if "${" not in client and client not in names:
                        problem(
                            [*at, field, client],
                            f"unknown client {client!r}{_did_you_mean(client, names)} ({declares})",
                            key=True,
                        )
        reply = args.get("reply") if name == "expect.reply" else None
        if isinstance(reply, str) and reply not in stored and reply not in names:
            known = ", ".join(sorted(stored)) or "none"
            problem(
                [*at, "reply"],
                f"no earlier step stores a reply as {reply!r}{_did_you_mean(reply, stored)} "
                f"(add 'as: {reply}' to the client step whose reply this checks; "
                f"'as' names so far: {known})",
            )
        connect_to = args.get("urls") if name == "client.connect" else None
        for j, ref in enumerate(connect_to if isinstance(connect_to, list) else []):
            if isinstance(ref, str) and ref not in endpoints:
                problem([*at, "urls", j], _unknown_endpoint(ref, endpoints))
        if isinstance(args.get("as"), str):
            stored.add(args["as"])
        if name.startswith("network.") and not has_proxy:
            problem(
                ["steps", i],
                "a network step needs a proxy: add 'network: {proxy: true}'",
                where=f"step {i + 1} {name}",
            )
    for name, spec in clients.items():
        if not isinstance(spec, dict):
            continue
        urls: list[Any] = spec["urls"] if isinstance(spec.get("urls"), list) else []
        if (spec.get("via") == "proxy" or "proxy" in urls) and not has_proxy:
            problem(
                ["clients", name],
                "connects through the proxy but the scenario has none: "
                "add 'network: {proxy: true}'",
            )
        for j, ref in enumerate(urls):
            if isinstance(ref, str) and ref not in endpoints and ref != "proxy":
                problem(["clients", name, "urls", j], _unknown_endpoint(ref, endpoints))
        refused = _policy_problem(spec.get("policy"))
        if refused:
            problem(["clients", name, "policy"], refused)
    problems.sort(key=lambda p: (p.line, p.column))
    return problems


def _step(raw: Any) -> tuple[str, dict[str, Any]]:
    """A step's name and its arguments as a mapping (a shorthand scalar expanded)."""
    if not (isinstance(raw, dict) and len(raw) == 1):
        return "", {}
    name, args = next(iter(raw.items()))
    model = STEP_ARGS.get(name)
    if isinstance(args, dict):
        return name, args
    key = model._shorthand_key() if model is not None else None
    return name, ({key: args} if key else {})


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, sorted(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _endpoints(network: dict[str, Any]) -> list[str]:
    """The endpoint names a client's ``urls`` may use, given the scenario's ``network``."""
    count = network.get("endpoints", 1)
    count = count if isinstance(count, int) and 1 <= count <= 5 else 5
    out = ["server", *(f"server{i}" for i in range(2, count + 1)), "dead"]
    return [*out, "proxy"] if network.get("proxy") is True else out


def _unknown_endpoint(ref: str, endpoints: list[str]) -> str:
    return (
        f"unknown endpoint {ref!r}{_did_you_mean(ref, endpoints)} "
        f"(this scenario has: {', '.join(endpoints)})"
    )


def _policy_problem(raw: Any) -> str | None:
    """Why the reference client would refuse ``raw`` (its cross-field rules), or None; a
    policy the schema refuses is the schema's to report."""
    from squall.client.policy import Policy

    if not isinstance(raw, dict):
        return None
    try:
        policy = ClientPolicy.model_validate(raw)
    except ValidationError:
        return None
    settings = {
        k: v
        for k, v in policy.model_dump(exclude_unset=True).items()
        if k in {f.name for f in dataclasses.fields(Policy)}
    }
    try:
        Policy().replace(**settings)
    except (TypeError, ValueError) as exc:
        return str(exc)
    return None


def load_file(path: str | Path) -> Loaded:
    """One scenario file, read as bytes (at most :data:`MAX_FILE_BYTES`): :func:`parse_bytes`."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
            size = os.fstat(f.fileno()).st_size if len(data) > MAX_FILE_BYTES else 0
    except OSError as exc:
        raise ScenarioError([Problem(str(p), 1, 1, "", f"cannot read: {exc}")]) from None
    if len(data) > MAX_FILE_BYTES:
        raise ScenarioError([_too_big(str(p), size if size > MAX_FILE_BYTES else None)])
    return parse_bytes(data, str(p))


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
        except Exception as exc:  # a bug here, not in the file: one line, and the rest still load
            what = f"internal error while loading ({type(exc).__name__}: {_shorten(str(exc))})"
            problems.append(Problem(str(path), 1, 1, "", f"{what}; please report it"))
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
