"""Partial matching, the one rule every expectation uses.

``matches(expected, actual)``: a mapping matches when each of its keys matches
(other keys of ``actual`` are ignored); a list matches a list of the same
length item by item; scalars must be equal. Markers, for what equality cannot
say: ``"#any"``, ``"#present"`` / ``"#notnull"``, ``"#null"``, ``"#string"``,
``"#number"``, ``"#list"``, ``"#object"``, ``"/regex/"`` (searched in the value as
text), and mappings of operators only: ``{$gt: 0}``, ``{$ge: 1, $le: 3}``,
``{$ne: x}``, ``{$in: [a, b]}``, ``{$contains: x}``, ``{$len: 2}``.

``error_matches(pattern, type, message)``: the one rule for an expected error
(``expect.reply``'s ``error``, a client step's ``expect_error``): ``pattern`` is a
regex, bare or as ``/regex/``, searched in the error's type, its message and
``type: message``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

_MISSING = object()

_OPS: dict[str, Callable[[Any, Any], object]] = {
    "$gt": lambda a, b: _num(a) and a > b,
    "$ge": lambda a, b: _num(a) and a >= b,
    "$lt": lambda a, b: _num(a) and a < b,
    "$le": lambda a, b: _num(a) and a <= b,
    "$ne": lambda a, b: a != b,
    "$in": lambda a, b: a in b,
    "$contains": lambda a, b: isinstance(a, list | str | dict) and b in a,
    "$len": lambda a, b: hasattr(a, "__len__") and len(a) == b,
}


def _num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _marker(expected: str, actual: Any) -> bool | None:
    if expected == "#any":
        return True
    if expected in ("#present", "#notnull"):
        return actual is not _MISSING and actual is not None
    if expected == "#null":
        return actual is None or actual is _MISSING
    if expected == "#string":
        return isinstance(actual, str)
    if expected == "#number":
        return _num(actual)
    if expected == "#list":
        return isinstance(actual, list)
    if expected == "#object":
        return isinstance(actual, dict)
    if len(expected) >= 2 and expected.startswith("/") and expected.endswith("/"):
        if actual is _MISSING:
            return False
        return (
            re.search(expected[1:-1], actual if isinstance(actual, str) else str(actual))
            is not None
        )
    return None


def matches(expected: Any, actual: Any) -> bool:
    """True when ``actual`` has everything ``expected`` asks for (see the module docstring)."""
    if isinstance(expected, str):
        verdict = _marker(expected, actual)
        if verdict is not None:
            return verdict
        equal: bool = actual == expected  # JSON values: their == is a bool
        return equal
    if isinstance(expected, dict):
        if expected and all(isinstance(k, str) and k in _OPS for k in expected):
            return actual is not _MISSING and all(
                bool(_OPS[k](actual, v)) for k, v in expected.items()
            )
        if not isinstance(actual, dict):
            return False
        return all(matches(v, actual.get(k, _MISSING)) for k, v in expected.items())
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(expected)
            and all(matches(e, a) for e, a in zip(expected, actual, strict=True))
        )
    if actual is _MISSING:
        return False
    if _num(expected) and _num(actual):
        return float(expected) == float(actual)
    return bool(expected == actual)


def error_matches(pattern: str, error_type: Any, message: Any) -> bool:
    """Whether an error reply matches ``pattern`` (see the module docstring)."""
    if len(pattern) >= 2 and pattern.startswith("/") and pattern.endswith("/"):
        pattern = pattern[1:-1]
    texts = [str(message), f"{error_type}: {message}"]
    if error_type is not None:
        texts.append(str(error_type))
    return any(re.search(pattern, text) is not None for text in texts)


def dig(value: Any, path: str) -> Any:
    """``dig(record, "data.sid")``; list indexes are numbers (``peers.0.sid``)."""
    for part in path.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif (
            isinstance(value, list)
            and part.lstrip("-").isdigit()
            and -len(value) <= int(part) < len(value)
        ):
            value = value[int(part)]
        else:
            return None
    return value
