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

import base64
import functools
import json
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from hypothesis import strategies as st

from squall.protocol import messages as m
from squall.protocol import ringcentral as rc

DIALECTS = ("reference", "mixer", "ringcentral", "genesys", "rtccafe")
#: the dialects whose packets are JSON text (genesys is XML, rtccafe Socket.IO packets)
JSON_DIALECTS = ("reference", "mixer", "ringcentral")


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
    if dialect == "genesys":
        return _xml_texts()
    if dialect == "rtccafe":
        return _sio_texts()
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
    """A whole message as a decoder gets it: text (str) or a binary frame (bytes); for
    rtccafe also long-polling bodies (Engine.IO v4 and v3)."""
    if dialect == "rtccafe":
        return st.one_of(
            texts(dialect),
            texts(dialect),
            st.binary(max_size=40),
            eio4_bodies(),
            eio3_bodies().map(lambda body: body[0]),
        )
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


# -- Genesys: XMPP over WebSocket (one XML element per message) -----------------------------------

from squall.protocol import genesys as gx  # noqa: E402 (the JSON dialects' section is above)

XMPP_NAMESPACES = [
    gx.NS_CLIENT,
    gx.NS_FRAMING,
    gx.NS_SASL,
    gx.NS_BIND,
    gx.NS_PING,
    gx.NS_PUBSUB,
    gx.NS_EXTDISCO,
    gx.NS_GENESYS,
    gx.NS_JINGLE_MESSAGE,
    gx.NS_STREAMS,
    "urn:ietf:params:xml:ns:xmpp-session",
    "urn:example:unknown",
    "",
]
_NAMES = ["iq", "message", "presence", "open", "close", "auth", "abort", "ping", "bind", "x"]
_NAMES += ["pubsub", "subscribe", "unsubscribe", "services", "genesys-webrtc", "propose"]
_NAMES += ["proceed", "accept", "reject", "retract", "resource", "success", "error", "a-b.c_d"]
xml_names = st.one_of(
    st.sampled_from(_NAMES), st.from_regex(r"[A-Za-z_][A-Za-z0-9._-]{0,8}", fullmatch=True)
)
# attribute values: escaped on the way in, so any text that XML can hold
xml_text = st.one_of(short_text, st.sampled_from(["probe", "r", "1", "2.0", "PLAIN", "set"]))


def _attr(value: str) -> str:
    return quoteattr(value)


@st.composite
def xml_elements(draw: st.DrawFn, depth: int = 0) -> str:
    name = draw(xml_names)
    attrs: dict[str, str] = {}
    if draw(st.integers(0, 2)):
        attrs["xmlns"] = draw(st.sampled_from(XMPP_NAMESPACES))
    for key in draw(
        st.lists(
            st.sampled_from(
                ["type", "id", "to", "from", "node", "jid", "mechanism", "version", "xml:lang"]
            ),
            max_size=3,
            unique=True,
        )
    ):
        attrs[key] = draw(
            st.one_of(
                st.sampled_from(
                    [
                        "get",
                        "set",
                        "result",
                        "error",
                        "x",
                        "1.0",
                        "2.0",
                        "PLAIN",
                        "ANONYMOUS",
                        "bystander-news",
                        SERVER_PINGS_NODE,
                    ]
                ),
                xml_text,
            )
        )
    head = name + "".join(f" {k}={_attr(v)}" for k, v in attrs.items())
    kids = ""
    if depth < 3:
        kids = "".join(draw(st.lists(xml_elements(depth + 1), max_size=2)))
    body = kids + escape(draw(st.one_of(st.just(""), xml_text, _rpc_text, _plain_payload)))
    return f"<{head}>{body}</{name}>" if body else f"<{head}/>"


SERVER_PINGS_NODE = "enable.server.side.pings"
_rpc_text = st.one_of(
    st.builds(
        lambda method, params: render({"jsonrpc": "2.0", "method": method, "params": params}),
        st.sampled_from(["answer", "iceCandidate", "info", "mute", "terminate", "offer", "x"]),
        st.one_of(
            st.fixed_dictionaries(
                {"sessionId": short_text}, optional={"sdp": values, "status": values}
            ),
            values,
        ),
    ),
    st.builds(render, values),
)
_plain_payload = st.one_of(
    st.sampled_from(["\0fuzz@squall.test\0authKey:fuzz", "\0\0", "a\0b", "\0x\0wrong"]),
    any_text,
).map(lambda t: base64.b64encode(t.encode("utf-8", "surrogatepass")).decode())


def _stanza(name: str, ns: str, inner: str = "", **attrs: str) -> str:
    head = f'{name} xmlns="{ns}"' + "".join(f" {k}={_attr(v)}" for k, v in attrs.items())
    return f"<{head}>{inner}</{name}>" if inner else f"<{head}/>"


@st.composite
def xmpp_stanzas(draw: st.DrawFn) -> str:
    """Stanzas the dialect serves, with wrong values drawn in."""
    iq_id = draw(st.one_of(st.sampled_from(["s1", "b1", ""]), xml_text))
    kind = draw(st.sampled_from(["get", "set", "result", "error", "chat", ""]))
    rpc = escape(draw(_rpc_text))
    payloads = [
        _stanza("ping", gx.NS_PING),
        _stanza("bind", gx.NS_BIND, "<resource>" + escape(draw(xml_text)) + "</resource>"),
        _stanza("session", "urn:ietf:params:xml:ns:xmpp-session"),
        _stanza(
            "pubsub",
            gx.NS_PUBSUB,
            _stanza(
                draw(st.sampled_from(["subscribe", "unsubscribe", "items"])),
                "",
                node=draw(
                    st.one_of(
                        st.sampled_from(
                            [
                                "bystander-news",
                                SERVER_PINGS_NODE,
                                "v2.users.u1?presence&x",
                                "a?",
                                "",
                            ]
                        ),
                        xml_text,
                    )
                ),
            ),
        ),
        _stanza(
            "services",
            gx.NS_EXTDISCO,
            type=draw(st.sampled_from(["turn", "stun", "__class__", ""])),
        ),
        _stanza("genesys-webrtc", gx.NS_GENESYS, rpc),
        _stanza("query", "urn:example:unknown"),
    ]
    action = draw(st.sampled_from([*sorted(gx.JINGLE_MESSAGE_ACTIONS), "dance"]))
    choices = [
        _stanza(
            "open",
            gx.NS_FRAMING,
            to="squall.test",
            version=draw(st.sampled_from(["1.0", "2.0", "x"])),
        ),
        _stanza("close", gx.NS_FRAMING),
        _stanza(
            "auth",
            gx.NS_SASL,
            draw(_plain_payload),
            mechanism=draw(st.sampled_from(["PLAIN", "ANONYMOUS", "X"])),
        ),
        _stanza("abort", gx.NS_SASL),
        _stanza("response", gx.NS_SASL),
        _stanza(
            "iq",
            gx.NS_CLIENT,
            "".join(draw(st.lists(st.sampled_from(payloads), max_size=2))),
            type=kind,
            id=iq_id,
        ),
        _stanza("message", gx.NS_CLIENT, _stanza(action, gx.NS_JINGLE_MESSAGE, id=draw(xml_text))),
        _stanza("presence", gx.NS_CLIENT),
        f'<stream:error xmlns:stream="{gx.NS_STREAM}"><x xmlns="{gx.NS_STREAMS}"/></stream:error>',
    ]
    return draw(st.sampled_from(choices))


_LAUGHS = (
    '<!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
        for i in range(1, 10)
    )
    + ']><message xmlns="jabber:client">&lol9;</message>'
)
HOSTILE_XML = [
    _LAUGHS,
    '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><iq xmlns="jabber:client">&e;</iq>',
    '<!DOCTYPE x [<!ENTITY % p SYSTEM "http://127.0.0.1:1/x.dtd"> %p;]><x/>',
    '<!DOCTYPE x SYSTEM "http://127.0.0.1:1/x.dtd"><x/>',
    '<iq xmlns="jabber:client">&undefined;</iq>',
    '<?xml-stylesheet href="x"?><iq xmlns="jabber:client"/>',
    '<iq xmlns="jabber:client"><!-- c --></iq>',
    '<iq xmlns="jabber:client"><?pi x?></iq>',
    '<iq xmlns="jabber:client"><![CDATA[<x/>]]></iq>',
    '<p:iq xmlns="jabber:client"/>',
    '<iq xmlns="jabber:client" xmlns:p="urn:x" p:a="1" a="2"/>',
    '<iq xmlns="jabber:client" a="1" a="2"/>',
    '<iq xmlns="jabber:client">&#0;&#xD800;</iq>',
    '<iq xmlns="jabber:client"/><iq xmlns="jabber:client"/>',
    '<?xml version="1.0" encoding="UTF-16"?><iq xmlns="jabber:client"/>',
    '<?xml version="1.1"?><iq xmlns="jabber:client"/>',
    "\ufeff<iq xmlns='jabber:client'/>",
    '<iq xmlns="jabber:client">\ud800</iq>',  # raw lone surrogate: not UTF-8 on the wire
    '<iq xmlns="jabber:client">\x01</iq>',
    "",
    " ",
    "<",
    "<iq",
]


def _deep(depth: int) -> str:
    return '<x xmlns="jabber:client">' + "<x>" * depth + "</x>" * depth + "</x>"


def _wide(count: int) -> str:
    return '<iq xmlns="jabber:client" ' + " ".join(f'a{i}="{i}"' for i in range(count)) + "/>"


def _many(count: int) -> str:
    return '<iq xmlns="jabber:client">' + "<x/>" * count + "</iq>"


xml_hostile = st.one_of(
    st.sampled_from(HOSTILE_XML),
    st.builds(_deep, st.one_of(st.integers(1, 40), st.integers(40, 5000))),
    st.builds(_wide, st.one_of(st.integers(1, 50), st.integers(50, 6000))),
    st.builds(_many, st.one_of(st.integers(1, 50), st.integers(4000, 5000))),
)


# -- RTCCafe: Socket.IO v5 packets, Engine.IO v4 and v3 polling bodies ---------------------------

SIO_EVENTS = ["join", "acquire-peers-response", "offer", "answer", "candidate", "request-sid"]
SIO_EVENTS += ["dance", "", "error", "sid"]
sio_namespaces = st.sampled_from(["/rtc-cafe", "/rtc-cafe", "/", "/x", "/rtc-cafe?q=1", ""])


@st.composite
def sio_packets(draw: st.DrawFn) -> str:
    kind = draw(
        st.one_of(st.integers(0, 6), st.integers(0, 6), st.sampled_from(["7", "x", "²", "٣"]))
    )
    attachments = (
        draw(st.sampled_from(["", "", "1-", "2-", "0-", "99999999999-"])) if kind in (5, 6) else ""
    )
    ns = draw(sio_namespaces)
    ack = draw(st.sampled_from(["", "", "1", "0", "9" * 30, "1" * 120]))
    name = draw(st.one_of(st.sampled_from(SIO_EVENTS), short_text))
    body: dict[str, Any] = {}
    for key in draw(
        st.lists(
            st.sampled_from(["room", "recipient", "id", "prevSid", "sdp", "sid", "token"]),
            max_size=4,
            unique=True,
        )
    ):
        body[key] = draw(st.one_of(st.sampled_from(["r", "c1", "c2", "lobby"]), values))
    placeholder = {"_placeholder": True, "num": draw(st.one_of(st.integers(-1, 3), values))}
    data = draw(
        st.one_of(
            st.just([name, body]),
            st.just([name, body]),
            st.just([name, placeholder]),
            st.just([placeholder, body]),
            st.just(body),
            st.lists(values, max_size=3),
            values,
            st.none(),
        )
    )
    payload = "" if data is None else render(data, ascii_only=draw(st.booleans()))
    prefix = f"{ns}," if ns and ns != "/" else ""
    return f"{kind}{attachments}{prefix}{ack}{payload}"


@functools.cache
def eio4_bodies() -> st.SearchStrategy[bytes]:
    """Engine.IO v4 long-polling bodies: ``\\x1e``-separated packets, some malformed."""
    packet = st.one_of(
        texts("rtccafe").map(lambda t: "4" + t),
        st.sampled_from(
            ["", "0", "1", "2", "3", "3probe", "5", "6", "b", "b!!", "bAAA=", "4", "x"]
        ),
        texts("rtccafe"),
    )
    body = st.lists(packet, min_size=1, max_size=3).map(lambda ps: utf8("\x1e".join(ps)))
    return st.one_of(body, body, st.binary(max_size=40))


@functools.cache
def _xml_texts() -> st.SearchStrategy[str]:
    structured = st.one_of(xmpp_stanzas(), xml_elements())
    return st.one_of(
        structured,
        structured,
        structured,
        xml_hostile,
        st.one_of(structured, xml_hostile).flatmap(_mutated),
        any_text,
    )


@functools.cache
def _sio_texts() -> st.SearchStrategy[str]:
    packets = sio_packets()
    return st.one_of(
        packets,
        packets,
        packets,
        packets.flatmap(_mutated),
        any_text,
        st.sampled_from(["", "0", "2", "2[]", '2["x"', "4{}", "51-", "٣[]", "²"]),
    )


def _v3_record(packet: str, lie: int) -> str:
    units = len(packet) + sum(1 for ch in packet if ord(ch) > 0xFFFF)
    return f"{max(units + lie, 0)}:{packet}"


@functools.cache
def eio3_bodies() -> st.SearchStrategy[tuple[bytes, str]]:
    """Engine.IO v3 long-polling bodies (``<length>:<packet>`` records, or XHR2 binary ones)
    and their content type."""
    packet = st.one_of(
        texts("rtccafe").map(lambda t: "4" + t),
        st.sampled_from(
            ["0", "1", "2", "2probe", "3", "5", "6", "b", "b4", "b4AAA=", "b4!!", "b9AA", "x"]
        ),
    )
    lie = st.one_of(st.just(0), st.just(0), st.integers(-3, 3), st.just(10**9))
    record = st.builds(_v3_record, packet, lie)
    text = st.lists(record, min_size=1, max_size=3).map(lambda rs: utf8("".join(rs)))
    xhr2 = st.binary(max_size=40)
    return st.one_of(
        st.tuples(text, st.just("text/plain;charset=UTF-8")),
        st.tuples(text, st.just("text/plain;charset=UTF-8")),
        st.tuples(st.one_of(xhr2, text), st.just("application/octet-stream")),
        st.tuples(
            st.sampled_from([b"\xff", "²:4".encode(), b"1" * 5000 + b":4", b"1:b"]),
            st.just("text/plain"),
        ),
    )
