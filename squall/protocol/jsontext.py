"""Strict JSON text for the dialect codecs: only what a peer can be sent back.

``json.loads`` is more lenient than the wire. It reads ``NaN`` and ``Infinity`` (not JSON),
turns ``1e400`` into ``inf`` and ``"\\ud800"`` into a lone surrogate (which UTF-8 cannot
carry), and nests as deep as the C stack allows, deeper than ``json.dumps`` then writes
back from inside a server. A frame decoded into any of these is a value the dialect's
own encoder fails on later, when it answers or records the frame: a crash far from its
cause. :func:`loads` refuses such text at once with a ValueError that names the problem.

Depth is capped at :data:`MAX_DEPTH`, the limit of the reference codec's parser
(pydantic-core), so every dialect refuses the same nesting. The checks cost a few
substring scans on ordinary frames; the walk runs only on text that could need it.
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["MAX_DEPTH", "loads"]

#: arrays and objects one frame may nest (pydantic-core's JSON parser stops at 200 too)
MAX_DEPTH = 200


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text} is out of range (beyond a double)")
    return value


def loads(text: str) -> Any:
    """The JSON value in ``text``; ValueError (JSONDecodeError or a sentence) if there is none
    a peer could be answered with."""
    try:
        value = json.loads(text, parse_constant=_constant, parse_float=_finite)
    except RecursionError:
        raise ValueError(f"nests deeper than {MAX_DEPTH} levels of arrays and objects") from None
    deep = text.count("[") + text.count("{") > MAX_DEPTH
    # Raw surrogates cannot be in text that came off a socket (websockets decodes UTF-8
    # strictly) but can be in a str handed in directly; escaped ones need a backslash-u.
    surrogates = "\\u" in text or not text.isascii()
    if deep or surrogates:
        problem = _problem(value, deep=deep, surrogates=surrogates)
        if problem is not None:
            raise ValueError(problem)
    return value


def _problem(value: Any, *, deep: bool, surrogates: bool) -> str | None:
    """Why ``value`` cannot be sent back (too deep, a lone surrogate), or None. No recursion."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if surrogates and not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError as exc:
                    return (
                        f"a string holds a lone surrogate (U+{ord(item[exc.start]):04X}), "
                        "which UTF-8 cannot carry"
                    )
        elif isinstance(item, dict | list):
            if deep and depth >= MAX_DEPTH:
                return f"nests deeper than {MAX_DEPTH} levels of arrays and objects"
            if isinstance(item, dict):
                stack.extend((k, depth + 1) for k in item)
                stack.extend((v, depth + 1) for v in item.values())
            else:
                stack.extend((v, depth + 1) for v in item)
    return None
