"""XMPP over WebSocket (RFC 7395) as Genesys Cloud streaming speaks it: a sans-I/O codec.

Each WebSocket text message is exactly one complete XML element with its namespaces declared
on it (RFC 7395 §3.3): the framing ``<open/>`` / ``<close/>``, ``<stream:features>``, SASL
elements and ``jabber:client`` stanzas. What ``genesys-cloud-streaming-client`` (stanza
12.22) sends and expects is in docs/dialects/genesys.md.

Untrusted XML is parsed by expat with *restricted XML* (RFC 6120 §11.1) enforced: a DOCTYPE,
an entity declaration or reference (other than the five predefined ones), a processing
instruction or a comment is refused as ``restricted-xml`` before anything is expanded, so no
billion-laughs or external-entity input gets further than its first declaration. Size, depth
and element count are bounded. Every refusal is a :class:`StreamError` naming the RFC 6120
§4.9.3 condition a server answers with, and saying what was wrong and where.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from xml.parsers import expat
from xml.sax.saxutils import escape, quoteattr

from .errors import MalformedFrame, UnsupportedFrame

__all__ = [
    "NS_BIND",
    "NS_CLIENT",
    "NS_CXFR",
    "NS_EXTDISCO",
    "NS_FRAMING",
    "NS_GENESYS",
    "NS_JINGLE_MESSAGE",
    "NS_JSON",
    "NS_PING",
    "NS_PUBSUB",
    "NS_PUBSUB_EVENT",
    "NS_SASL",
    "NS_STANZAS",
    "NS_STREAM",
    "NS_STREAMS",
    "SASL_CONDITIONS",
    "STREAM_CONDITIONS",
    "Element",
    "StreamError",
    "genesys_webrtc",
    "jingle_message",
    "message_error",
    "parse",
    "parse_rpc",
    "plain_credentials",
    "propose",
    "split_topics",
    "tag",
]

NS_FRAMING: Final = "urn:ietf:params:xml:ns:xmpp-framing"
NS_STREAM: Final = "http://etherx.jabber.org/streams"
NS_STREAMS: Final = "urn:ietf:params:xml:ns:xmpp-streams"
NS_SASL: Final = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND: Final = "urn:ietf:params:xml:ns:xmpp-bind"
NS_STANZAS: Final = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_CLIENT: Final = "jabber:client"
NS_PING: Final = "urn:xmpp:ping"
NS_PUBSUB: Final = "http://jabber.org/protocol/pubsub"
NS_PUBSUB_EVENT: Final = "http://jabber.org/protocol/pubsub#event"
NS_JSON: Final = "urn:xmpp:json:0"
NS_EXTDISCO: Final = "urn:xmpp:extdisco:1"
NS_CXFR: Final = "urn:xmpp:cxfr"
NS_JINGLE_MESSAGE: Final = "urn:xmpp:jingle-message:0"
NS_GENESYS: Final = "genesys"  # <genesys-webrtc xmlns="genesys">JSON-RPC</genesys-webrtc>
NS_XML: Final = "http://www.w3.org/XML/1998/namespace"

#: RFC 6120 §4.9.3: the conditions a stream error may carry.
STREAM_CONDITIONS: Final = frozenset(
    [
        "bad-format",
        "bad-namespace-prefix",
        "conflict",
        "connection-timeout",
        "host-gone",
        "host-unknown",
        "improper-addressing",
        "internal-server-error",
        "invalid-from",
        "invalid-namespace",
        "invalid-xml",
        "not-authorized",
        "not-well-formed",
        "policy-violation",
        "remote-connection-failed",
        "reset",
        "resource-constraint",
        "restricted-xml",
        "see-other-host",
        "system-shutdown",
        "undefined-condition",
        "unsupported-encoding",
        "unsupported-feature",
        "unsupported-stanza-type",
        "unsupported-version",
    ]
)
#: RFC 6120 §6.5: the conditions a SASL failure may carry.
SASL_CONDITIONS: Final = frozenset(
    [
        "aborted",
        "account-disabled",
        "credentials-expired",
        "encryption-required",
        "incorrect-encoding",
        "invalid-authzid",
        "invalid-mechanism",
        "malformed-request",
        "mechanism-too-weak",
        "not-authorized",
        "temporary-auth-failure",
    ]
)

MAX_DEPTH = 32
MAX_ELEMENTS = 4096
_SEP = "\x1f"  # expat's namespace separator: a character no XML name can hold


class StreamError(MalformedFrame):
    """A message an XMPP server answers with a stream error; ``condition`` is which one."""

    def __init__(self, condition: str, message: str) -> None:
        super().__init__(message, code=condition)
        self.condition = condition


@dataclass(slots=True)
class Element:
    """One parsed element: namespace and local name, attributes (namespaced ones as
    ``{ns}name``), children and the text directly inside it."""

    name: str
    ns: str = ""
    attrs: dict[str, str] = field(default_factory=dict)
    children: list[Element] = field(default_factory=list)
    text: str = ""

    def child(self, name: str | None = None, ns: str | None = None) -> Element | None:
        """The first child with this name and namespace (either may be None: any)."""
        for c in self.children:
            if (name is None or c.name == name) and (ns is None or c.ns == ns):
                return c
        return None

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.attrs.get(key, default)


def _split(qname: str) -> tuple[str, str]:
    ns, sep, local = qname.rpartition(_SEP)
    return (ns, local) if sep else ("", qname)


class _Builder:
    """Expat callbacks that build :class:`Element` trees and refuse what XMPP forbids."""

    def __init__(self) -> None:
        self.stack: list[Element] = []
        self.root: Element | None = None
        self.count = 0

    def start(self, qname: str, attrs: dict[str, str]) -> None:
        self.count += 1
        if self.count > MAX_ELEMENTS:
            raise StreamError("policy-violation", f"more than {MAX_ELEMENTS} elements")
        if len(self.stack) >= MAX_DEPTH:
            raise StreamError("policy-violation", f"elements nested deeper than {MAX_DEPTH}")
        ns, name = _split(qname)
        out: dict[str, str] = {}
        for key, value in attrs.items():
            ans, aname = _split(key)
            out[f"{{{ans}}}{aname}" if ans else aname] = value
        el = Element(name, ns, out)
        if self.stack:
            self.stack[-1].children.append(el)
        else:
            self.root = el
        self.stack.append(el)

    def end(self, _qname: str) -> None:
        self.stack.pop()

    def data(self, text: str) -> None:
        if self.stack:
            self.stack[-1].text += text


def _refuse(what: str) -> Callable[..., Any]:
    def handler(*_args: object) -> None:
        raise StreamError("restricted-xml", f"{what} is not allowed in XMPP (RFC 6120 §11.1)")

    return handler


def parse(data: str | bytes, *, max_size: int = 1 << 20) -> Element:
    """One WebSocket message as its element. Raises :class:`StreamError` (or
    :class:`~squall.protocol.errors.UnsupportedFrame` for a binary message)."""
    if isinstance(data, bytes | bytearray | memoryview):
        raise UnsupportedFrame(
            f"a binary message of {len(data)} bytes: XMPP over WebSocket is text only "
            "(RFC 7395 §3.2)"
        )
    try:
        encoded = data.encode("utf-8")
    except UnicodeEncodeError as exc:
        # not off a socket (websockets decodes UTF-8 strictly), but a str handed in directly
        raise StreamError(
            "unsupported-encoding",
            f"character {exc.start} is a lone surrogate (U+{ord(data[exc.start]):04X}), "
            "which UTF-8 cannot carry (RFC 6120 §11.6)",
        ) from None
    size = len(encoded)
    if size > max_size:
        raise StreamError(
            "policy-violation", f"a stanza of {size} bytes is over this server's {max_size}"
        )
    builder = _Builder()
    p = expat.ParserCreate("utf-8", namespace_separator=_SEP)
    p.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    p.StartElementHandler = builder.start
    p.EndElementHandler = builder.end
    p.CharacterDataHandler = builder.data
    p.buffer_text = True
    p.StartDoctypeDeclHandler = _refuse("a DOCTYPE")
    p.EntityDeclHandler = _refuse("an entity declaration")
    p.UnparsedEntityDeclHandler = _refuse("an entity declaration")
    p.ExternalEntityRefHandler = _refuse("an external entity")
    p.SkippedEntityHandler = _refuse("an entity reference")
    p.ProcessingInstructionHandler = _refuse("a processing instruction")
    p.CommentHandler = _refuse("a comment")
    try:
        p.Parse(encoded, True)
    except expat.ExpatError as exc:
        message = expat.ErrorString(exc.code) if exc.code else str(exc)
        raise StreamError(
            "not-well-formed",
            f"not well-formed XML at line {exc.lineno}, column {exc.offset}: "
            f"{message} (each message must be one complete element, RFC 7395 §3.3)",
        ) from None
    except RecursionError:
        raise StreamError("policy-violation", "elements nested too deep") from None
    if builder.root is None:
        raise StreamError("not-well-formed", "an empty message: expected one XML element")
    return builder.root


# --- out ---------------------------------------------------------------------------------------


def tag(
    name: str,
    attrs: Mapping[str, str | None] | None = None,
    *children: str,
    text: str | None = None,
) -> str:
    """``<name a="v">children or text</name>``, escaped; attributes that are None are left out."""
    head = name + "".join(f" {k}={quoteattr(v)}" for k, v in (attrs or {}).items() if v is not None)
    body = "".join(children) + (escape(text) if text is not None else "")
    return f"<{head}>{body}</{name}>" if body else f"<{head}/>"


def open_stream(domain: str, stream_id: str) -> str:
    return tag(
        "open",
        {"xmlns": NS_FRAMING, "from": domain, "id": stream_id, "version": "1.0", "xml:lang": "en"},
    )


def close_stream() -> str:
    return tag("close", {"xmlns": NS_FRAMING})


def features(*children: str) -> str:
    return tag("stream:features", {"xmlns:stream": NS_STREAM}, *children)


def mechanisms(names: Iterable[str]) -> str:
    return tag("mechanisms", {"xmlns": NS_SASL}, *(tag("mechanism", text=n) for n in names))


def bind_feature() -> str:
    return tag("bind", {"xmlns": NS_BIND})


def sasl_success() -> str:
    return tag("success", {"xmlns": NS_SASL})


def sasl_failure(condition: str, text: str = "") -> str:
    parts = [tag(condition)]
    if text:
        parts.append(tag("text", {"xml:lang": "en"}, text=text))
    return tag("failure", {"xmlns": NS_SASL}, *parts)


def stream_error(condition: str, text: str = "") -> str:
    parts = [tag(condition, {"xmlns": NS_STREAMS})]
    if text:
        parts.append(tag("text", {"xmlns": NS_STREAMS, "xml:lang": "en"}, text=text))
    return tag("stream:error", {"xmlns:stream": NS_STREAM}, *parts)


def iq(
    kind: str, iq_id: str | None, *children: str, to: str | None = None, frm: str | None = None
) -> str:
    attrs = {"xmlns": NS_CLIENT, "type": kind, "id": iq_id, "to": to, "from": frm}
    return tag("iq", attrs, *children)


def iq_error(
    iq_id: str | None,
    condition: str,
    text: str = "",
    *,
    kind: str = "cancel",
    to: str | None = None,
    frm: str | None = None,
) -> str:
    parts = [tag(condition, {"xmlns": NS_STANZAS})]
    if text:
        parts.append(tag("text", {"xmlns": NS_STANZAS, "xml:lang": "en"}, text=text))
    return iq("error", iq_id, tag("error", {"type": kind}, *parts), to=to, frm=frm)


def bind_result(iq_id: str | None, jid: str) -> str:
    return iq("result", iq_id, tag("bind", {"xmlns": NS_BIND}, tag("jid", text=jid)))


def subscription_result(
    iq_id: str | None, node: str, jid: str, *, frm: str, to: str, state: str = "subscribed"
) -> str:
    """What stanza's ``subscribeToNode`` reads: a result *with* the subscription element."""
    sub = tag("subscription", {"node": node, "jid": jid, "subscription": state})
    return iq("result", iq_id, tag("pubsub", {"xmlns": NS_PUBSUB}, sub), to=to, frm=frm)


def services_result(
    iq_id: str | None, kind: str, services: Iterable[Mapping[str, object]], *, frm: str, to: str
) -> str:
    items = [
        tag("service", {"type": kind, **{k: str(v) for k, v in s.items() if v is not None}})
        for s in services
    ]
    return iq(
        "result",
        iq_id,
        tag("services", {"xmlns": NS_EXTDISCO, "type": kind}, *items),
        to=to,
        frm=frm,
    )


def ping(iq_id: str, *, frm: str, to: str | None) -> str:
    return iq("get", iq_id, tag("ping", {"xmlns": NS_PING}), to=to, frm=frm)


def cxfr(iq_id: str, domain: str, server: str, *, frm: str, to: str | None) -> str:
    """XEP-0051 connection transfer: Hawk's ``v2.system.socket_closing``."""
    query = tag("query", {"xmlns": NS_CXFR}, tag("domain", text=domain), tag("server", text=server))
    return iq("set", iq_id, query, to=to, frm=frm)


def pubsub_event(node: str, json_text: str, item_id: str, *, frm: str, to: str | None) -> str:
    item = tag("item", {"id": item_id}, tag("json", {"xmlns": NS_JSON}, text=json_text))
    event = tag("event", {"xmlns": NS_PUBSUB_EVENT}, tag("items", {"node": node}, item))
    return tag("message", {"xmlns": NS_CLIENT, "from": frm, "to": to, "id": item_id}, event)


# --- SASL and topics -----------------------------------------------------------------------------


def plain_credentials(payload: str) -> tuple[str, str, str]:
    """``authzid, authcid, password`` of a SASL PLAIN payload (RFC 4616), or a ValueError
    whose first argument is the SASL condition (``incorrect-encoding``, ``malformed-request``)."""
    try:
        raw = base64.b64decode(payload.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("incorrect-encoding", "the PLAIN payload is not base64") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("malformed-request", "the PLAIN payload is not UTF-8") from None
    parts = text.split("\0")
    if len(parts) != 3:
        raise ValueError(
            "malformed-request", "the PLAIN payload is not authzid NUL authcid NUL password"
        )
    return parts[0], parts[1], parts[2]


_TOPIC = re.compile(r"^[A-Za-z0-9_.~:\-]+$")


def split_topics(topic_id: str) -> list[str]:
    """A combined topic id as its topics: ``v2.users.u1?presence&routingStatus`` is
    ``v2.users.u1.presence`` and ``v2.users.u1.routingStatus``. Raises ValueError on a
    malformed id."""
    prefix, sep, rest = topic_id.partition("?")
    if not sep:
        if not _TOPIC.match(topic_id):
            raise ValueError(f"not a topic id: {topic_id!r}")
        return [topic_id]
    postfixes = rest.split("&")
    if not _TOPIC.match(prefix) or not all(_TOPIC.match(p) for p in postfixes):
        raise ValueError(f"not a combined topic id (prefix?a&b): {topic_id!r}")
    return [f"{prefix}.{p}" for p in postfixes]


# --- softphone signalling ----------------------------------------------------------------------

#: jingle-message actions (v19 ``stanza-definitions/webrtc-signaling.js:7-54``): each carries
#: the session id as its ``id`` attribute
JINGLE_MESSAGE_ACTIONS: Final = frozenset(["propose", "proceed", "accept", "reject", "retract"])
#: the ``genesys-webrtc`` methods a client sends (v19 ``types/genesys-cloud-media-session.js``)
CLIENT_RPC_METHODS: Final = frozenset(
    ["answer", "iceCandidate", "info", "mute", "unmute", "terminate"]
)


def propose(
    session_id: str,
    *,
    conversation_id: str,
    frm: str,
    to: str,
    sdp_over_xmpp: bool = True,
    auto_answer: bool = False,
    persistent_id: str | None = None,
    user_id: str | None = None,
) -> str:
    """An incoming call offered to a client: the attributes the SDK reads (``inin-*``)."""
    attrs = {
        "xmlns": NS_JINGLE_MESSAGE,
        "id": session_id,
        "inin-cid": conversation_id,
        "inin-persistent-cid": persistent_id,
        "inin-sdp-over-xmpp": "true" if sdp_over_xmpp else "false",
        "inin-autoanswer": "true" if auto_answer else "false",
        "inin-user-id": user_id,
    }
    return tag("message", {"xmlns": NS_CLIENT, "from": frm, "to": to}, tag("propose", attrs))


def jingle_message(action: str, session_id: str, *, frm: str, to: str | None) -> str:
    """``<message><retract id/></message>`` and the other actions without attributes."""
    if action not in JINGLE_MESSAGE_ACTIONS:
        raise ValueError(f"not a jingle-message action: {action!r}")
    body = tag(action, {"xmlns": NS_JINGLE_MESSAGE, "id": session_id})
    return tag("message", {"xmlns": NS_CLIENT, "from": frm, "to": to}, body)


def genesys_webrtc(
    iq_id: str, method: str, params: Mapping[str, Any], *, frm: str, to: str | None
) -> str:
    """A server-to-client ``genesys-webrtc`` request: an iq set carrying JSON-RPC 2.0."""
    rpc = {"jsonrpc": "2.0", "id": iq_id, "method": method, "params": dict(params)}
    text = json.dumps(rpc, separators=(",", ":"), ensure_ascii=False)
    return iq("set", iq_id, tag("genesys-webrtc", {"xmlns": NS_GENESYS}, text=text), to=to, frm=frm)


def message_error(
    msg_id: str | None, condition: str, text: str = "", *, to: str | None, frm: str | None
) -> str:
    """A ``<message type="error">`` (RFC 6120 §8.3): the answer to a message we cannot route."""
    kind = "modify" if condition == "bad-request" else "cancel"
    parts = [tag(condition, {"xmlns": NS_STANZAS})]
    if text:
        parts.append(tag("text", {"xmlns": NS_STANZAS, "xml:lang": "en"}, text=text))
    attrs = {"xmlns": NS_CLIENT, "type": "error", "id": msg_id, "to": to, "from": frm}
    return tag("message", attrs, tag("error", {"type": kind}, *parts))


def parse_rpc(text: str) -> tuple[str, dict[str, Any]]:
    """``method, params`` of a client's ``genesys-webrtc`` JSON-RPC 2.0 request, or a
    ValueError saying what is wrong with it (the iq error's text)."""
    try:
        rpc = json.loads(text)
    except RecursionError:
        raise ValueError("genesys-webrtc carries JSON-RPC: nested too deep") from None
    except ValueError as exc:
        raise ValueError(f"genesys-webrtc carries JSON-RPC: not JSON ({exc})") from None
    if not isinstance(rpc, dict):
        raise ValueError(
            "genesys-webrtc carries a JSON-RPC object, not a JSON " + type(rpc).__name__
        )
    if rpc.get("jsonrpc") != "2.0":
        raise ValueError(f'jsonrpc must be "2.0", got {rpc.get("jsonrpc")!r}')
    method = rpc.get("method")
    if not isinstance(method, str) or method not in CLIENT_RPC_METHODS:
        known = ", ".join(sorted(CLIENT_RPC_METHODS))
        raise ValueError(f"method {method!r} is not one a client sends (known: {known})")
    params = rpc.get("params")
    if not isinstance(params, dict):
        raise ValueError(f"{method}: params must be an object")
    session_id = params.get("sessionId")
    if not isinstance(session_id, str) or not session_id:
        raise ValueError(f"{method}: params.sessionId must be a non-empty string")
    for key in ("sdp", "reason", "status", "type"):
        if key in params and not isinstance(params[key], str):
            raise ValueError(f"{method}: params.{key} must be a string")
    if method in ("answer", "iceCandidate") and not isinstance(params.get("sdp"), str):
        raise ValueError(f"{method}: params.sdp (a string) is missing")
    return method, params
