"""Go's ``json.NewDecoder(body).Decode`` for request bodies: the first JSON value, Go's errors.

Why not :func:`json.loads`: the standard library accepts ``NaN`` and
``Infinity`` (which then make every later answer invalid JSON), turns ``1e400``
into ``inf``, refuses integers of more than 4300 digits with a ``ValueError``
and nests with C recursion (a ``RecursionError`` past ~1000 levels). Go's
decoder refuses the first two as syntax errors, keeps number literals as
written until a field's type is known, and allows 10000 levels of nesting.

This parser is iterative (no recursion at any depth) and returns plain Python
values: ``dict``, ``list``, ``str``, ``bool``, ``None``, ``int`` for integer
literals and :class:`Number` (a ``float`` that remembers its literal) for the
rest. Strings follow Go: invalid UTF-8 and lone surrogates become U+FFFD.
Syntax errors raise :class:`JsonSyntaxError` with Go's words (``unexpected
EOF``, ``invalid character 'x' after object key``, ``exceeded max depth``).
"""

from __future__ import annotations

import re
from typing import Any

MAX_DEPTH = 10000  # encoding/json's maxNestingDepth
MAX_INT_DIGITS = 4000  # below CPython's int <-> str conversion limit

_WS = " \t\r\n"
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_PLAIN = re.compile(r'[^"\\\x00-\x1f]*')
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")  # bytes kept by "surrogateescape"
_HEX = frozenset("0123456789abcdefABCDEF")


class JsonSyntaxError(ValueError):
    """A body Go's decoder refuses; ``str()`` is Go's message (without ``bad request body: ``)."""


class Number(float):
    """A non-integer (or huge) JSON number; ``literal`` is the text as sent, for Go's messages."""

    literal: str

    def __new__(cls, literal: str) -> Number:
        try:
            value = float(literal)
        except (OverflowError, ValueError):
            value = float("inf") if not literal.startswith("-") else float("-inf")
        self = super().__new__(cls, value)
        self.literal = literal
        return self


def quote_char(ch: str) -> str:
    """Go's ``quoteChar`` of the byte at fault: ``'x'``, ``'\\''``, ``'\\n'``, ``'\\x00'``, ``'Ã'``.

    Go's scanner reports one byte, so a multi-byte character shows as its first byte read
    as a code point (``é`` is ``'Ã'``), as it does in Go.
    """
    if ch == "'":
        return "'\\''"
    if ch == '"':
        return "'\"'"
    try:
        code = ch.encode("utf-8", "surrogateescape")[0]
    except UnicodeEncodeError:  # a real lone surrogate in a str input
        code = ch.encode("utf-8", "surrogatepass")[0]
    ch = chr(code)
    if ch.isprintable():
        return f"'{ch}'"
    named = {"\a": "a", "\b": "b", "\f": "f", "\n": "n", "\r": "r", "\t": "t", "\v": "v"}
    if ch in named:
        return f"'\\{named[ch]}'"
    if code < 0x80:
        return f"'\\x{code:02x}'"
    return f"'\\u{code:04x}'"


def _fail(text: str, pos: int, context: str) -> JsonSyntaxError:
    if pos >= len(text):
        return JsonSyntaxError("unexpected EOF")
    return JsonSyntaxError(f"invalid character {quote_char(text[pos])} {context}")


def _skip(text: str, pos: int) -> int:
    n = len(text)
    while pos < n and text[pos] in _WS:
        pos += 1
    return pos


def _string(text: str, pos: int) -> tuple[str, int]:
    """The string starting at ``text[pos] == '"'``; returns (value, position after it)."""
    out: list[str] = []
    pos += 1
    n = len(text)
    while True:
        m = _PLAIN.match(text, pos)
        assert m is not None
        out.append(m.group())
        pos = m.end()
        if pos >= n:
            raise JsonSyntaxError("unexpected EOF")
        ch = text[pos]
        if ch == '"':
            value = "".join(out)
            if _ESCAPED_BYTE.search(value):  # invalid UTF-8 in the body: one U+FFFD a byte
                value = _ESCAPED_BYTE.sub("\ufffd", value)
            return value, pos + 1
        if ch != "\\":
            raise _fail(text, pos, "in string literal")
        pos += 1
        if pos >= n:
            raise JsonSyntaxError("unexpected EOF")
        esc = text[pos]
        if esc in _ESCAPES:
            out.append(_ESCAPES[esc])
            pos += 1
            continue
        if esc != "u":
            raise _fail(text, pos, "in string escape code")
        code, pos = _hex4(text, pos + 1)
        if 0xD800 <= code < 0xDC00 and text.startswith("\\u", pos):
            low, after = _hex4(text, pos + 2)
            if 0xDC00 <= low < 0xE000:
                out.append(chr(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)))
                pos = after
                continue
        out.append("\ufffd" if 0xD800 <= code < 0xE000 else chr(code))


def _hex4(text: str, pos: int) -> tuple[int, int]:
    for i in range(pos, pos + 4):
        if i >= len(text):
            raise JsonSyntaxError("unexpected EOF")
        if text[i] not in _HEX:
            raise _fail(text, i, "in \\u hexadecimal character escape")
    return int(text[pos : pos + 4], 16), pos + 4


def _number(text: str, pos: int) -> tuple[int | Number, int]:
    m = _NUMBER.match(text, pos)
    if m is None or m.end() == pos:  # only '-' can start a number that does not match
        raise _fail(text, pos + 1, "in numeric literal")
    end = m.end()
    # Go's scanner refuses a number followed by a character that cannot continue or end it.
    if end < len(text):
        if text[end] == "." and m.group(1) is None:
            raise _fail(text, end + 1, "after decimal point in numeric literal")
        if text[end] in "eE" and m.group(2) is None:
            at = end + 2 if text[end + 1 : end + 2] in ("+", "-") else end + 1
            raise _fail(text, at, "in exponent of numeric literal")
    literal = m.group()
    if m.group(1) is None and m.group(2) is None and len(literal) <= MAX_INT_DIGITS:
        return int(literal), end
    return Number(literal), end


_LITERALS = {"t": ("true", True), "f": ("false", False), "n": ("null", None)}


def _literal(text: str, pos: int) -> tuple[Any, int]:
    word, value = _LITERALS[text[pos]]
    for i, expected in enumerate(word[1:], pos + 1):
        if i >= len(text):
            raise JsonSyntaxError("unexpected EOF")
        if text[i] != expected:
            raise _fail(text, i, f"in literal {word} (expecting {quote_char(expected)})")
    return value, pos + len(word)


def _scalar(text: str, pos: int) -> tuple[Any, int]:
    ch = text[pos]
    if ch == '"':
        return _string(text, pos)
    if ch == "-" or "0" <= ch <= "9":
        return _number(text, pos)
    if ch in _LITERALS:
        return _literal(text, pos)
    raise _fail(text, pos, "looking for beginning of value")


def decode(raw: bytes | str) -> Any:
    """The first JSON value of ``raw`` (trailing bytes ignored, as with Go's Decoder)."""
    text = raw.decode("utf-8", errors="surrogateescape") if isinstance(raw, bytes) else raw
    pos = _skip(text, 0)
    if pos >= len(text):
        raise JsonSyntaxError("EOF")
    # Each open container is [container, pending key or None].
    stack: list[list[Any]] = []
    n = len(text)
    while True:
        # -- a value starts at pos --
        if pos >= n:
            raise JsonSyntaxError("unexpected EOF")
        ch = text[pos]
        if ch == "{" or ch == "[":
            if len(stack) >= MAX_DEPTH:
                raise JsonSyntaxError("exceeded max depth")
            container: Any = {} if ch == "{" else []
            stack.append([container, None])
            pos = _skip(text, pos + 1)
            if pos < n and text[pos] == ("}" if ch == "{" else "]"):
                stack.pop()
                value, pos = container, pos + 1
            elif ch == "{":
                pos = _key(text, pos, stack[-1])
                continue
            else:
                continue
        else:
            value, pos = _scalar(text, pos)
        # -- a value ended: store it and close every container that ends here --
        while True:
            if not stack:
                return value
            top = stack[-1]
            container = top[0]
            if isinstance(container, dict):
                container[top[1]] = value
            else:
                container.append(value)
            pos = _skip(text, pos)
            if pos >= n:
                raise JsonSyntaxError("unexpected EOF")
            ch = text[pos]
            if ch == ",":
                pos = _skip(text, pos + 1)
                if isinstance(container, dict):
                    pos = _key(text, pos, top)
                break
            closing = "}" if isinstance(container, dict) else "]"
            if ch != closing:
                where = "after object key:value pair" if closing == "}" else "after array element"
                raise _fail(text, pos, where)
            stack.pop()
            value, pos = container, pos + 1


def _key(text: str, pos: int, top: list[Any]) -> int:
    """Read ``"key" :`` at ``pos`` into ``top``; returns where the value starts."""
    if pos >= len(text):
        raise JsonSyntaxError("unexpected EOF")
    if text[pos] != '"':
        raise _fail(text, pos, "looking for beginning of object key string")
    top[1], pos = _string(text, pos)
    pos = _skip(text, pos)
    if pos >= len(text):
        raise JsonSyntaxError("unexpected EOF")
    if text[pos] != ":":
        raise _fail(text, pos, "after object key")
    return _skip(text, pos + 1)
