"""Hypothesis strategies for fuzzing the dialect decoders: random frames and frames shaped
like each dialect's packets, shared by the pure decoder fuzzers (test_fuzz_dialects.py) and
the wire fuzzers (tests/simulator/test_fuzz_dialect_wire.py).

A *structured* frame is valid JSON with the dialect's keys and types, and values drawn
from the right type, a wrong type, or an edge: NaN, Infinity, ``1e400``, integers of 30,
400 and 5,000 digits, lone surrogates (escaped, ``"\\ud800"``, or raw, which makes the
frame invalid UTF-8), control characters, deep nesting (to 5,000 levels). A frame may
then be mutated (truncated, a character inserted, a byte flipped). Unstructured frames are
random text and random bytes.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from hypothesis import strategies as st

from squall.protocol import messages as m
from squall.protocol import ringcentral as rc

DIALECTS = ("reference", "mixer", "ringcentral")


class Raw:
    """A JSON token written verbatim (NaN, 1e400, a 5,000-digit integer, a lone surrogate)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"Raw({self.text[:40]!r})"


RAW = [
    "NaN",
    "Infinity",
    "-Infinity",
    "1e400",
    "-1e400",
    "1e308",
    "5e-324",
    "9223372036854775808",
    "-9223372036854775809",
    "1" * 30,
    "1" * 400,
    "1" * 5000,
    "-0",
    "0.5",
    "1E+2",
    '"\\ud800"',
    '"\\udfff x"',
    '"\\ud83d\\ude00"',
    '"a\\u0000b"',
    '"\\u001b[31m"',
]

# Every code point, lone surrogates (category Cs) included.
any_text = st.text(st.characters(exclude_categories=()), max_size=12)
short_text = st.one_of(
    st.sampled_from(["", "x", "fuzz", "é" * 80, "a" * 300, "\x00", "\u2028", "SUB-1"]), any_text
)
numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(),  # NaN and the infinities: json.dumps writes them as such
    st.sampled_from(range(len(RAW))).map(lambda i: Raw(RAW[i])),  # (a short repr)
)
scalars = st.one_of(st.none(), st.booleans(), numbers, short_text)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(short_text, inner, max_size=4)
    ),
    max_leaves=10,
)
ids = st.one_of(st.integers(-3, 10**6), st.integers(), short_text, scalars)


def deep(depth: int, kind: str) -> Raw:
    if kind == "list":
        return Raw("[" * depth + "]" * depth)
    return Raw('{"a":' * depth + "1" + "}" * depth)


deep_values = st.builds(
    deep,
    st.one_of(st.integers(1, 260), st.integers(260, 5000)),
    st.sampled_from(["list", "object"]),
)
values = st.one_of(json_values, deep_values)


def render(value: Any, *, ascii_only: bool = True) -> str:
    """JSON text; :class:`Raw` tokens verbatim; no recursion limit of json.dumps.

    ``ascii_only=False`` writes strings as they are, so a lone surrogate stays raw (the
    frame is then not UTF-8)."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        return (
            "{"
            + ",".join(
                f"{render(str(k), ascii_only=ascii_only)}:{render(v, ascii_only=ascii_only)}"
                for k, v in value.items()
            )
            + "}"
        )
    if isinstance(value, list | tuple):
        return "[" + ",".join(render(v, ascii_only=ascii_only) for v in value) + "]"
    return json.dumps(value, ensure_ascii=ascii_only)


# -- the reference protocol ---------------------------------------------------------------------

_MESSAGES = [
    cls
    for cls in vars(m).values()
    if isinstance(cls, type) and issubclass(cls, m.Message) and cls is not m.Message
]
REFERENCE_TYPES = sorted(m.CLIENT_TYPES | m.SERVER_TYPES)
REFERENCE_KEYS = sorted(
    {f.alias or name for cls in _MESSAGES for name, f in cls.model_fields.items()} - {"type"}
)
topics = st.lists(short_text, max_size=4)
track = st.fixed_dictionaries(
    {"id": short_text, "kind": st.sampled_from(["audio", "video", "data", "x"])},
    optional={"description": json_values},
)
_REFERENCE_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "id": ids,
    "topics": topics,
    "token": st.sampled_from(["fuzz", "bystander", "", "x" * 200]),
    "jwt": st.sampled_from(["a.b.c", "", "eyJhbGciOiJub25lIn0.e30."]),
    "recovery_token": short_text,
    "method": short_text,
    "params": values,
    "no_reply": st.booleans(),
    "status": st.sampled_from(["pending", "done", "later"]),
    "room": short_text,
    "kind": st.sampled_from(["offer", "answer", "candidate", "message", "bye", "x"]),
    "data": values,
    "to": short_text,
    "track": track,
    "track_id": short_text,
    "permanent_id": short_text,
    "prev_sid": short_text,
    "client": st.dictionaries(short_text, short_text, max_size=3),
}


_REFERENCE_REQUIRED: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "auth": {"token": st.sampled_from(["fuzz", "bystander", "nobody"])},
    "ping": {"id": ids},
    "pong": {"id": ids},
    "subscribe": {"id": st.integers(0, 99), "topics": st.lists(short_text, min_size=1, max_size=3)},
    "unsubscribe": {"topics": st.lists(short_text, min_size=1, max_size=3)},
    "call": {"id": st.integers(0, 99), "method": short_text, "params": values},
    "reconnect_response": {"status": st.sampled_from(["pending", "done"])},
    "join": {"id": st.integers(0, 99), "room": st.sampled_from(["r", "lobby"])},
    "leave": {"room": st.sampled_from(["r", "lobby"])},
    "signal": {"room": st.just("r"), "kind": st.sampled_from(["offer", "bye"]), "data": values},
    "track_define": {"room": st.just("r"), "track": track},
    "track_remove": {"room": st.just("r"), "track_id": short_text},
    "track_request": {"room": st.just("r"), "to": short_text, "track_id": short_text},
}


@st.composite
def _spoiled(draw: st.DrawFn, body: dict[str, Any], pool: list[str]) -> dict[str, Any]:
    """A well-formed object, left as it is or with one key dropped, replaced or added."""
    how = draw(st.integers(0, 5))
    if how <= 2 or not body:
        return body
    key = draw(st.sampled_from(sorted(body)))
    if how == 3:
        return {k: v for k, v in body.items() if k != key}
    if how == 4:
        return {**body, key: draw(values)}
    return {**body, draw(st.one_of(st.sampled_from(pool), short_text)): draw(values)}


@st.composite
def _valid_reference(draw: st.DrawFn) -> dict[str, Any]:
    mtype = draw(st.sampled_from(sorted(_REFERENCE_REQUIRED)))
    body = {"type": mtype, **draw(st.fixed_dictionaries(_REFERENCE_REQUIRED[mtype]))}
    return draw(_spoiled(body, REFERENCE_KEYS))


@st.composite
def reference_packets(draw: st.DrawFn) -> Any:
    if draw(st.booleans()):
        return draw(_valid_reference())
    body: dict[str, Any] = {}
    if draw(st.integers(0, 9)):
        body["type"] = draw(
            st.one_of(st.sampled_from(REFERENCE_TYPES), st.sampled_from(REFERENCE_TYPES), scalars)
        )
    for key in draw(st.lists(st.sampled_from(REFERENCE_KEYS), max_size=4, unique=True)):
        field = _REFERENCE_FIELDS.get(key, values)
        body[key] = draw(field if draw(st.integers(0, 4)) else values)
    if draw(st.integers(0, 5)) == 0:
        body[draw(short_text)] = draw(values)
    return body


# -- Mixer ----------------------------------------------------------------------------------------

MIXER_METHODS = ["auth", "ping", "optOutEvents", "msg", "whisper", "vote:start", "history"]


@st.composite
def _valid_mixer(draw: st.DrawFn) -> dict[str, Any]:
    method = draw(st.one_of(st.sampled_from(MIXER_METHODS), short_text))
    if method == "auth":
        args: list[Any] = draw(
            st.sampled_from([[1, 2, "fuzz"], [1, 2, "fuzz", None], [1], [1, None, None, "k"]])
        )
    else:
        args = draw(st.lists(st.one_of(short_text, values), max_size=3))
    body = {"type": "method", "method": method, "arguments": args, "id": draw(st.integers(0, 99))}
    return draw(_spoiled(body, ["type", "method", "arguments", "id"]))


@st.composite
def mixer_packets(draw: st.DrawFn) -> Any:
    if draw(st.booleans()):
        return draw(_valid_mixer())
    body: dict[str, Any] = {}
    if draw(st.integers(0, 9)):
        body["type"] = draw(
            st.one_of(st.just("method"), st.sampled_from(["reply", "event", "METHOD"]), scalars)
        )
    if draw(st.integers(0, 9)):
        body["method"] = draw(st.one_of(st.sampled_from(MIXER_METHODS), short_text, scalars))
    if draw(st.integers(0, 9)):
        auth = st.tuples(
            st.one_of(st.integers(-1, 10**6), scalars),
            st.one_of(st.none(), st.integers(0, 10**6), scalars),
            st.one_of(st.sampled_from(["fuzz", "bystander", None]), values),
            st.one_of(st.none(), short_text, values),
        ).map(list)
        args = st.one_of(
            auth,
            auth.map(lambda a: a[:2]),
            st.lists(values, max_size=5),
            st.lists(short_text, max_size=3),
            values,
        )
        body["arguments"] = draw(args)
    if draw(st.integers(0, 9)):
        body["id"] = draw(ids)
    for key in draw(st.lists(st.sampled_from(["error", "data", "event", "x"]), max_size=2)):
        body[key] = draw(values)
    return body


# -- RingCentral ----------------------------------------------------------------------------------

RC_PATHS = [
    "/restapi/v1.0/subscription",
    "/restapi/v1.0/subscription/SUB-1",
    "/restapi/v1.0/subscription/SUB-1/renew",
    "/restapi/v1.0/subscription/SUB-2",
    "/restapi/v1.0/subscription/",
    "/restapi/v1.0/account/~/extension/~",
    "/restapi/v1.0/account/~?x=1&x=2",
    "relative/path",
    "/",
]
_RC_META: dict[str, st.SearchStrategy[Any]] = {
    "messageId": st.one_of(short_text, ids),
    "method": st.one_of(
        st.sampled_from(sorted(rc.METHODS)), st.sampled_from(["get", "Post", "TRACE"]), scalars
    ),
    "path": st.one_of(st.sampled_from(RC_PATHS), short_text.map(lambda t: "/" + t), scalars),
    "headers": st.one_of(st.dictionaries(short_text, short_text, max_size=3), values),
    "query": st.one_of(st.dictionaries(short_text, short_text, max_size=3), values),
    "status": st.one_of(st.integers(-1, 1000), scalars),
    "wsc": st.one_of(
        st.fixed_dictionaries({"token": short_text, "sequence": st.integers(-2, 10**20)}), values
    ),
}
subscription_body = st.fixed_dictionaries(
    {},
    optional={
        "eventFilters": st.one_of(st.lists(short_text, max_size=3), values),
        "deliveryMode": st.one_of(
            st.fixed_dictionaries({"transportType": st.sampled_from(["WebSocket", "PubNub", "x"])}),
            values,
        ),
    },
)


@st.composite
def _valid_ringcentral(draw: st.DrawFn) -> list[Any]:
    mid = draw(st.sampled_from(["m-1", "m-2", "x" * 40]))
    if draw(st.integers(0, 3)) == 0:
        return [draw(_spoiled({"type": "Heartbeat", "messageId": mid}, sorted(_RC_META)))]
    meta = {
        "type": "ClientRequest",
        "messageId": mid,
        "method": draw(st.sampled_from(sorted(rc.METHODS))),
        "path": draw(st.sampled_from(RC_PATHS)),
        "headers": {},
    }
    meta = draw(_spoiled(meta, sorted(_RC_META)))
    if draw(st.booleans()):
        return [meta]
    return [meta, draw(st.one_of(subscription_body, values))]


@st.composite
def ringcentral_packets(draw: st.DrawFn) -> Any:
    if draw(st.booleans()):
        return draw(_valid_ringcentral())
    meta: dict[str, Any] = {}
    if draw(st.integers(0, 9)):
        meta["type"] = draw(
            st.one_of(
                st.sampled_from(["ClientRequest", "Heartbeat"]),
                st.sampled_from(sorted(rc.SERVER_TYPES)),
                scalars,
            )
        )
    for key in draw(st.lists(st.sampled_from(sorted(_RC_META)), max_size=5, unique=True)):
        meta[key] = draw(_RC_META[key] if draw(st.integers(0, 4)) else values)
    shape = draw(st.integers(0, 9))
    if shape <= 3:
        return [meta]
    if shape <= 7:
        return [meta, draw(st.one_of(subscription_body, values))]
    return draw(st.one_of(st.lists(values, max_size=3), st.just([meta, {}, {}]), values))


PACKETS = {
    "reference": reference_packets(),
    "mixer": mixer_packets(),
    "ringcentral": ringcentral_packets(),
}


# -- text and frames ------------------------------------------------------------------------------


@st.composite
def _mutated(draw: st.DrawFn, text: str) -> str:
    """``text`` truncated, with a character inserted, or with one replaced."""
    if not text:
        return text
    at = draw(st.integers(0, len(text) - 1))
    how = draw(st.integers(0, 2))
    if how == 0:
        return text[:at]
    char = draw(st.sampled_from(['"', "\\", "{", "[", "]", ",", ":", "\x00", "\ud800", "é"]))
    return text[:at] + char + text[at + (how == 2) :]


@functools.cache
def texts(dialect: str) -> st.SearchStrategy[str]:
    """Text frames for ``dialect``: mostly structured, some mutated, some random.

    A text may hold a raw lone surrogate (it is then not UTF-8: on the wire it goes as raw
    bytes in a text frame)."""
    packets = PACKETS[dialect]
    structured = st.one_of(packets.map(render), packets.map(lambda p: render(p, ascii_only=False)))
    return st.one_of(
        structured,
        structured,
        structured,
        structured.flatmap(_mutated),
        st.builds(render, values),
        any_text,
        st.sampled_from(["", " ", "null", "[]", "{}", '""', "1", "\ufeff{}", "[{}]", "[[]]"]),
    )


@functools.cache
def inputs(dialect: str) -> st.SearchStrategy[str | bytes]:
    """A whole message as a decoder gets it: text (str) or a binary frame (bytes)."""
    return st.one_of(
        texts(dialect),
        texts(dialect),
        texts(dialect),
        st.binary(max_size=40),
        texts(dialect).map(lambda t: t.encode("utf-8", "surrogatepass")),
    )


def utf8(text: str) -> bytes:
    """The bytes of a text frame; invalid UTF-8 where ``text`` holds a raw lone surrogate."""
    return text.encode("utf-8", "surrogatepass")


def strict_json(text: str) -> bool:
    """True if ``text`` is JSON by RFC 8259 as Python reads it (no NaN or Infinity)."""

    def refuse(name: str) -> Any:
        raise ValueError(name)

    try:
        json.loads(text, parse_constant=refuse)
    except (ValueError, RecursionError):
        return False
    return True
