"""Genesys Cloud streaming (seed ``000``) as a dialect: ``genesys-cloud-streaming-client``
14.2.1 and 19.4.1 run against the core as they are.

What the SDKs need, and where it meets the core (docs/dialects/genesys.md has the tables):

- an HTTP prelude with the REST access token as a bearer: ``GET /api/v2/users/me`` (the jid),
  ``POST /api/v2/notifications/channels`` (a channel), and the channel's subscriptions
  (``PUT`` replaces, ``POST`` adds: v19 ``notifications.js:176-190``). A bad token is 401, a
  forbidden one 403 (both SDKs stop: v19 ``client.js:467-470``, v14 ``client.js:289``);
  ``on_rpc("POST /api/v2/notifications/channels", error={"code": "503", "data":
  {"retry_after": 2}})`` scripts a failure with ``Retry-After``;
- XMPP over WebSocket (RFC 7395, subprotocol ``xmpp``) at ``/stream/channels/{id}``: the
  stream opens locally, SASL PLAIN ``\\0jid\\0authKey:TOKEN`` becomes
  :class:`~squall.simulator.ops.Authenticate`. A channel is one core *session*: each
  connection on the same channel presents the channel's recovery token, so its subscriptions
  (server-side, per channel) survive a reconnect, and a channel whose session is gone
  (``expire``) answers ``not-authorized``, which v14 reads as "channel expired"
  (``reconnector.js:63``). ``/stream/jwt/{jwt}`` offers ANONYMOUS only, for guests;
- resource bind, XEP-0215 TURN/STUN discovery (v19 fails its attempt without it,
  ``webrtc.js:770-806``), pubsub subscribe answered *with* the subscription element stanza
  reads, ``enable.server.side.pings`` (server pings from then on, v19's 35 s stanza timeout:
  ``server-monitor.js``), XEP-0199 pings both ways;
- a publication is a pubsub event carrying JSON ``{"topicName", "eventBody"}`` on its node;
- ``request_reconnect`` sends the ``urn:xmpp:cxfr`` iq. The client's answer (v14's
  ``requestReconnect`` pending / done) never crosses the wire, so this server waits the whole
  drain deadline for the client to close (see :class:`GenesysDialect`).
"""

from __future__ import annotations

import itertools
import json
import secrets
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from aiohttp import web

from squall.protocol import genesys as x
from squall.protocol.errors import UnsupportedFrame

from .. import events as ev
from .. import ops
from ..auth import AuthRejected, Principal
from ..dialect_http import recorded
from ..seam import CloseReason, Closing, Dialect, Frame, Handshake, Inbound, Route, WireSession
from ..transcript import redact_url
from . import RFC6455_CLOSE_CODES

if TYPE_CHECKING:
    from ..core import Session
    from .genesys_softphone import Softphone

API = "/api/v2"
CHANNELS = API + "/notifications/channels"
SERVER_PINGS_NODE = "enable.server.side.pings"
NS_SESSION = "urn:ietf:params:xml:ns:xmpp-session"

#: Stream error per close reason (RFC 6120 §4.9.3); a decoding error names its own.
STREAM_CONDITIONS: dict[CloseReason, str | None] = {
    CloseReason.NORMAL: None,
    CloseReason.AUTH_FAILED: None,  # the SASL failure has said it: just close the stream
    CloseReason.GOING_AWAY: "system-shutdown",
    CloseReason.POLICY: "policy-violation",
    CloseReason.SERVICE_RESTART: "system-shutdown",
    CloseReason.BAD_FRAME: "not-well-formed",
    CloseReason.UNSUPPORTED_DATA: "unsupported-encoding",
    CloseReason.TOO_BIG: "policy-violation",
    CloseReason.INTERNAL_ERROR: "internal-server-error",
}
CLOSE_CODES: dict[CloseReason, int] = RFC6455_CLOSE_CODES

#: SASL condition per core auth failure reason; ``sasl_conditions`` overrides these.
SASL_FAILURES: dict[str, str] = {
    "invalid_token": "not-authorized",
    "expired_token": "not-authorized",
    "invalid_jwt": "not-authorized",
    "missing_credentials": "not-authorized",
    "forbidden": "not-authorized",
}

#: REST status and Genesys error code per core auth failure reason
HTTP_AUTH_ERRORS: dict[str, tuple[int, str]] = {
    "missing_credentials": (401, "authentication.required"),
    "invalid_token": (401, "bad.credentials"),
    "invalid_jwt": (401, "bad.credentials"),
    "expired_token": (401, "bad.credentials"),
    "forbidden": (403, "missing.permissions"),
}


def api_error(status: int, code: str, message: str) -> dict[str, Any]:
    """Genesys's REST error body."""
    return {
        "message": message,
        "code": code,
        "status": status,
        "messageParams": {},
        "contextId": str(uuid.uuid4()),
        "details": [],
        "errors": [],
    }


@dataclass(eq=False, slots=True)
class Channel:
    """One notification channel: whose it is, its topics, and the core session behind it."""

    id: str
    user: str
    created: float
    topics: dict[str, None] = field(default_factory=dict)  # ordered set
    recovery_token: str | None = None
    session: str | None = None


@dataclass(frozen=True, slots=True)
class CallSignal:
    """A softphone stanza for one connection (genesys_softphone.py), as a core event: the
    transcript records it as op ``call_signal``."""

    frame: Frame


@dataclass(frozen=True, slots=True)
class _PubsubRef:
    """The ref of a pubsub subscribe / unsubscribe iq: answered with the subscription."""

    iq_id: str | None
    node: str
    jid: str
    service: str


class GenesysWire:
    """One XMPP-over-WebSocket connection. No I/O, no clock."""

    __slots__ = (
        "_g",
        "bound",
        "channel",
        "condition",
        "dialect",
        "domain",
        "guest_jwt",
        "jid",
        "link_id",
        "opened",
        "pings",
        "refusal",
        "resource",
        "service",
        "state",
    )

    def __init__(
        self,
        dialect: GenesysDialect,
        link_id: str,
        *,
        channel: Channel | None = None,
        channel_id: str | None = None,
        guest_jwt: str | None = None,
        refusal: str | None = None,
    ) -> None:
        self.dialect: Dialect = dialect
        self._g = dialect
        self.link_id = link_id
        self.channel = channel
        self.guest_jwt = guest_jwt
        #: why this connection cannot authenticate, said in the SASL failure (a gone channel)
        self.refusal = refusal
        if channel is None and guest_jwt is None and refusal is None:
            self.refusal = f"no channel {channel_id!r}: it expired or was never created"
        self.state = "new"  # new -> sasl -> authed (success sent) -> bind -> bound
        self.opened = False  # an <open/> went out
        self.bound = False
        self.domain = dialect.options["domain"]
        self.jid = ""  # bare jid, once authenticated
        self.resource = ""
        self.service = dialect.pubsub_service  # the pubsub service jid events come from
        self.pings: set[str] = set()  # ids of our pings still unanswered
        self.condition: str | None = None  # the stream error the next close sends

    def greet(self) -> Sequence[Frame]:
        return ()  # the client opens the stream (RFC 7395 §3.4)

    # --- in ------------------------------------------------------------------------------------

    def receive(self, data: str | bytes) -> Inbound:
        try:
            el = x.parse(data, max_size=self._g.options["max_stanza_size"])
        except UnsupportedFrame as exc:
            return self._fatal("unsupported-encoding", str(exc), CloseReason.UNSUPPORTED_DATA, None)
        except x.StreamError as exc:
            reason = CloseReason.BAD_FRAME
            if exc.condition == "policy-violation":
                reason = CloseReason.TOO_BIG
            return self._fatal(exc.condition, str(exc), reason, None, _shown(data))
        key = (el.ns, el.name)
        if key == (x.NS_FRAMING, "open"):
            return self._open(el)
        if key == (x.NS_FRAMING, "close"):
            bye = ops.BadInput(
                "the client closed the stream", "stream_closed", fatal=CloseReason.NORMAL
            )
            return Inbound("close", (bye,))
        if not self.opened:
            return self._fatal(
                "not-authorized",
                f"<{el.name}> before the stream was opened",
                CloseReason.POLICY,
                el.name,
            )
        if key == (x.NS_STREAM, "error"):
            # The client ends the stream (v19's 35 s stanza timeout, a second missed pong): the
            # stream is over (RFC 6120 §4.9.1.2), so close it from here as well.
            cond = next(
                (c.name for c in el.children if c.ns == x.NS_STREAMS and c.name != "text"), ""
            )
            bye = ops.BadInput(
                f"the client sent a stream error ({cond or 'no condition'})",
                "client_stream_error",
                fatal=CloseReason.NORMAL,
            )
            return Inbound("stream:error", (bye,))
        if el.ns == x.NS_SASL:
            return self._sasl(el)
        if el.ns != x.NS_CLIENT:
            return self._fatal(
                "invalid-namespace",
                f"<{el.name}> in namespace {el.ns or '(none)'!r}: stanzas are jabber:client",
                CloseReason.BAD_FRAME,
                el.name,
            )
        if el.name == "iq":
            return self._iq(el)
        if el.name in ("message", "presence"):
            if self.state != "bound":
                return Inbound(el.name, (ops.BadInput(f"<{el.name}> before resource binding"),))
            if el.name == "message" and el.child(ns=x.NS_JINGLE_MESSAGE) is not None:
                return self._g.softphone.on_message(self, el)
            return Inbound(el.name, ())  # chat and presence are not served
        return self._fatal(
            "unsupported-stanza-type",
            f"<{el.name}> is not a stanza",
            CloseReason.BAD_FRAME,
            el.name,
        )

    def _fatal(
        self,
        condition: str,
        message: str,
        reason: CloseReason,
        kind: str | None,
        shown: str | None = None,
    ) -> Inbound:
        self.condition = condition
        return Inbound(kind, (ops.BadInput(message, condition, fatal=reason),), shown)

    def _open(self, el: x.Element) -> Inbound:
        if el.get("version") not in (None, "1.0"):
            self.opened = True
            return self._fatal(
                "unsupported-version",
                f"stream version {el.get('version')!r}",
                CloseReason.POLICY,
                "open",
            )
        frames = [Frame("open", x.open_stream(self.domain, secrets.token_hex(8)))]
        self.opened = True
        if self.state in ("new", "sasl"):
            self.state = "sasl"
            mechs = ("ANONYMOUS",) if self.guest_jwt is not None else ("PLAIN",)
            frames.append(Frame("stream:features", x.features(x.mechanisms(mechs))))
        elif self.state == "authed":
            self.state = "bind"
            frames.append(Frame("stream:features", x.features(x.bind_feature())))
        else:
            frames.append(Frame("stream:features", x.features()))
        return Inbound("open", (), frames=frames)

    def _sasl(self, el: x.Element) -> Inbound:
        if el.name == "abort":
            return Inbound("abort", (), frames=(self._failure("aborted"),))
        if el.name != "auth":
            return Inbound(
                el.name, (), frames=(self._failure("malformed-request", f"<{el.name}>"),)
            )
        shown = x.tag("auth", {"xmlns": x.NS_SASL, "mechanism": el.get("mechanism")}, text="***")
        if self.state != "sasl":
            return Inbound(
                "auth", (), shown, (self._failure("malformed-request", "already authenticated"),)
            )
        mech = el.get("mechanism")
        if self.guest_jwt is not None:
            if mech != "ANONYMOUS":
                text = f"{mech} is not offered on a guest stream: ANONYMOUS only"
                return Inbound("auth", (), shown, (self._failure("invalid-mechanism", text),))
            return Inbound("auth", (ops.Authenticate(jwt=self.guest_jwt),), shown)
        if mech != "PLAIN":
            text = f"{mech} is not offered here: PLAIN only"
            return Inbound("auth", (), shown, (self._failure("invalid-mechanism", text),))
        try:
            authzid, authcid, password = x.plain_credentials(el.text)
        except ValueError as exc:
            return Inbound("auth", (), shown, (self._failure(exc.args[0], exc.args[1]),))
        self._g.learn_plain(authcid, password, authzid)
        if not password.startswith("authKey:"):
            text = "the PLAIN password must be authKey:<access token>"
            return Inbound("auth", (), shown, (self._failure("not-authorized", text),))
        token = password[len("authKey:") :]
        channel = self.channel
        if self.refusal is None and channel is not None:
            self.refusal = self._g.check_channel(channel, token)
        if self.refusal is not None or channel is None:
            # a gone channel, or a token of another user: the core's AuthFailed
            refused = ops.Authenticate(refused="the channel is gone or not this user's")
            return Inbound("auth", (refused,), shown)
        self.jid = authcid.partition("/")[0]
        op = ops.Authenticate(
            token=token, recovery_token=channel.recovery_token, topics=tuple(channel.topics)
        )
        return Inbound("auth", (op,), shown)

    def _failure(self, condition: str, text: str = "") -> Frame:
        return Frame("failure", x.sasl_failure(condition, text))

    def _iq(self, el: x.Element) -> Inbound:
        kind = el.get("type")
        iq_id = el.get("id")
        if kind in ("result", "error"):
            if iq_id is not None and iq_id in self.pings:
                self.pings.discard(iq_id)
                return Inbound("iq", (ops.Pong(iq_id),))
            if self._g.has_softphone and self._g.softphone.on_iq_answer(iq_id, kind, el):
                return Inbound("genesys-webrtc", ())
            return Inbound("iq", ())  # an answer to our cxfr, or to nothing: nothing to do
        if kind not in ("get", "set"):
            return Inbound(
                "iq", (), frames=(self._iq_error(el, "bad-request", f"iq type {kind!r}"),)
            )
        payload = el.children[0] if len(el.children) == 1 else None
        if payload is None:
            text = "an iq get/set carries exactly one payload element (RFC 6120 §8.2.3)"
            return Inbound("iq", (), frames=(self._iq_error(el, "bad-request", text),))
        what = (payload.ns, payload.name)
        if what == (x.NS_PING, "ping"):
            return Inbound("ping", (ops.Ping(iq_id),))
        if self.state not in ("bind", "bound"):
            return Inbound(
                "iq", (ops.BadInput(f"<iq> {payload.name} before authentication", ref=iq_id),)
            )
        if what == (x.NS_BIND, "bind"):
            return self._bind(el, payload)
        if what == (NS_SESSION, "session"):
            return Inbound("session", (), frames=(Frame("iq", x.iq("result", iq_id)),))
        if self.state != "bound":
            return Inbound(
                "iq", (ops.BadInput(f"<iq> {payload.name} before resource binding", ref=iq_id),)
            )
        if what == (x.NS_PUBSUB, "pubsub"):
            return self._pubsub(el, payload)
        if what == (x.NS_GENESYS, "genesys-webrtc"):
            if kind != "set":
                text = "genesys-webrtc requests are iq type set"
                return Inbound("iq", (), frames=(self._iq_error(el, "bad-request", text),))
            return self._g.softphone.on_rpc(self, el, payload)
        if what == (x.NS_EXTDISCO, "services"):
            service = payload.get("type") or ""
            found = self._g.options["ice_services"].get(service, [])
            frame = x.services_result(
                iq_id, service, found, frm=el.get("to") or self.domain, to=self.full_jid
            )
            return Inbound("services", (), frames=(Frame("iq", frame),))
        text = f"{payload.name} in {payload.ns or '(no namespace)'} is not served here"
        return Inbound(payload.name, (), frames=(self._iq_error(el, "service-unavailable", text),))

    def _iq_error(self, el: x.Element, condition: str, text: str) -> Frame:
        kind = "modify" if condition == "bad-request" else "cancel"
        return Frame("iq", x.iq_error(el.get("id"), condition, text, kind=kind, frm=el.get("to")))

    def _bind(self, el: x.Element, payload: x.Element) -> Inbound:
        if self.state != "bind" or el.get("type") != "set":
            return Inbound(
                "bind", (), frames=(self._iq_error(el, "not-allowed", "bind once, after SASL"),)
            )
        res = payload.child("resource")
        self.resource = (res.text.strip() if res is not None else "") or str(uuid.uuid4())
        self.state = "bound"
        return Inbound(
            "bind", (), frames=(Frame("iq", x.bind_result(el.get("id"), self.full_jid)),)
        )

    def _pubsub(self, el: x.Element, payload: x.Element) -> Inbound:
        action = payload.children[0] if payload.children else None
        node = action.get("node") if action is not None else None
        if action is None or action.name not in ("subscribe", "unsubscribe") or not node:
            text = "pubsub serves subscribe and unsubscribe of a node"
            return Inbound(
                "pubsub", (), frames=(self._iq_error(el, "feature-not-implemented", text),)
            )
        service = el.get("to") or self._g.pubsub_service
        self.service = service  # events come from where the client subscribes (its apiHost)
        ref = _PubsubRef(el.get("id"), node, action.get("jid") or self.jid, service)
        if node == SERVER_PINGS_NODE:
            if action.name == "subscribe":
                self._g.start_server_pings(self.link_id)
            result = x.subscription_result(ref.iq_id, node, ref.jid, frm=service, to=self.full_jid)
            return Inbound("pubsub", (), frames=(Frame("iq", result),))
        try:
            topics = tuple(x.split_topics(node))
        except ValueError as exc:
            return Inbound("pubsub", (), frames=(self._iq_error(el, "item-not-found", str(exc)),))
        channel = self.channel
        if action.name == "subscribe":
            if channel is not None:
                channel.topics.update(dict.fromkeys(topics))
            return Inbound("pubsub", (ops.Subscribe(topics, ref),))
        if channel is not None:
            for t in topics:
                channel.topics.pop(t, None)
        return Inbound("pubsub", (ops.Unsubscribe(topics, ref),))

    # --- out -----------------------------------------------------------------------------------

    @property
    def full_jid(self) -> str:
        return f"{self.jid}/{self.resource}" if self.resource else self.jid

    def session_id(self) -> str | None:
        """The core session this connection belongs to, once authenticated."""
        conn = self._g.core.connections.get(self.link_id)
        return conn.session.id if conn is not None and conn.session is not None else None

    def encode(self, event: ev.Event) -> Sequence[Frame]:
        match event:
            case ev.Authenticated():
                if not self.jid:  # a guest: ANONYMOUS carries no jid
                    self.jid = f"{event.user}@{self.domain}"
                if self.channel is not None:
                    self._g.attach(self.channel, event)
                self.state = "authed"
                return (Frame("success", x.sasl_success()),)
            case ev.AuthFailed():
                if self.refusal is not None:
                    return (self._failure("not-authorized", self.refusal),)
                cond = self._g.sasl_conditions.get(event.reason, "not-authorized")
                return (self._failure(cond, event.message),)
            case ev.Subscribed() | ev.Unsubscribed():
                ref = event.ref
                if not isinstance(ref, _PubsubRef):
                    return ()  # the HTTP subscription API answers over HTTP
                state = "subscribed" if isinstance(event, ev.Subscribed) else "none"
                frame = x.subscription_result(
                    ref.iq_id, ref.node, ref.jid, frm=ref.service, to=self.full_jid, state=state
                )
                return (Frame("iq", frame),)
            case ev.Pong():
                return (
                    Frame(
                        "iq", x.iq("result", event.ref, to=self.full_jid or None, frm=self.domain)
                    ),
                )
            case ev.ServerPing():
                ref = str(event.ref)
                self.pings.add(ref)
                return (Frame("iq", x.ping(ref, frm=self.domain, to=self.full_jid or None)),)
            case ev.DrainRequested():
                stanza = x.cxfr(
                    f"cxfr-{secrets.token_hex(4)}",
                    self.domain,
                    self._g.transfer_server,
                    frm=self.domain,
                    to=self.full_jid or None,
                )
                return (Frame("iq", stanza),)
            case ev.Rejected():
                ref = event.ref if isinstance(event.ref, str) else None
                if ref is None:
                    return ()
                return (Frame("iq", x.iq_error(ref, "bad-request", event.message, kind="modify")),)
            case ev.Delivered():
                return (self.deliver(event),)
            case CallSignal():
                return (event.frame,)
        return ()  # no RPC and no rooms on this wire (capabilities)

    def deliver(self, event: ev.Delivered) -> Frame:
        pub = event.publication
        cached = pub.cache.get("genesys")
        if cached is None:
            body = self._g.event_json(pub.topic, pub.payload)
            item = secrets.token_hex(8)
            template = x.pubsub_event(pub.topic, body, item, frm="\x00", to="\x01")
            head, _, rest = template.partition('from="\x00"')
            mid, _, tail = rest.partition('to="\x01"')
            cached = pub.cache["genesys"] = (head, mid, tail)
        head, mid, tail = cached
        if "no_longer_subscribed" in pub.topic and self.channel is not None:
            # v14 reads the channel it is about from the body (client.js:159): per channel
            body = self._g.event_json(pub.topic, pub.payload, channel=self.channel.id)
            return Frame(
                "message",
                x.pubsub_event(
                    pub.topic,
                    body,
                    secrets.token_hex(8),
                    frm=self.service,
                    to=self.full_jid,
                ),
            )
        return Frame("message", f'{head}from="{self.service}"{mid}to="{self.full_jid}"{tail}')

    def close(self, reason: CloseReason, detail: str) -> Closing:
        condition = self.condition or STREAM_CONDITIONS[reason]
        if reason is CloseReason.POLICY and detail.startswith("not authenticated"):
            condition = "not-authorized"
        elif reason is CloseReason.POLICY and "another connection" in detail:
            condition = "conflict"
        frames: list[Frame] = []
        if not self.opened and condition is not None:
            # a stream error goes out on an open stream (RFC 6120 §4.9.1.1)
            frames.append(Frame("open", x.open_stream(self.domain, secrets.token_hex(8))))
            self.opened = True
        if condition is not None and reason not in (CloseReason.NORMAL, CloseReason.AUTH_FAILED):
            frames.append(Frame("stream:error", x.stream_error(condition, detail)))
        frames.append(Frame("close", x.close_stream()))
        return Closing(frames, CLOSE_CODES[reason], detail)


def _shown(data: str | bytes) -> str | None:
    """A frame that did not parse, masked if it looks like a SASL auth."""
    if isinstance(data, str) and "auth" in data and x.NS_SASL in data:
        return "<auth ...>*** (not well-formed)"
    return None


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header[:7].lower() == "bearer " else ""
    return token or None


class GenesysDialect(Dialect):
    """The streaming service and the REST endpoints around it. Options:

    - ``domain``: the XMPP domain (jids are ``user@domain``);
    - ``api_host``: the host the SDK derives its pubsub service from
      (``notifications.<api_host>``, v19 ``notifications.js:27-35``); None: ``127.0.0.1``;
    - ``server_ping_interval``: protocol seconds between server pings once a client subscribes
      to ``enable.server.side.pings`` (v19 drops a stream silent for 35 s);
    - ``ice_services``: the XEP-0215 answer per type (``turn``, ``stun``): lists of
      ``{host, port, transport, username, password}``;
    - ``sasl_conditions``: core auth failure reason -> SASL condition (RFC 6120 §6.5), over
      :data:`SASL_FAILURES` (``{"expired_token": "temporary-auth-failure"}``);
    - ``max_stanza_size``: bytes; a larger message is a ``policy-violation`` stream error;
    """

    name = "genesys"
    capabilities = frozenset({"pubsub", "drain", "recovery", "server_ping", "softphone"})
    subprotocols = ("xmpp",)
    closes_before_auth = True
    # The client's deferral of a cxfr (v14's requestReconnect pending/done) never crosses
    # this wire: the server waits the whole drain deadline, not the one-second answer window.
    hears_drain_answers = False
    defaults: ClassVar[dict[str, Any]] = {
        "domain": "squall.test",
        "api_host": None,
        "server_ping_interval": 30.0,
        "ice_services": {"turn": [], "stun": [{"host": "127.0.0.1", "port": 3478}]},
        "sasl_conditions": {},
        "max_stanza_size": 64 * 1024,
    }

    def __init__(self, core: Any, **options: Any) -> None:
        super().__init__(core, **options)
        opts = self.options
        interval = opts["server_ping_interval"]
        if interval is not None and (
            isinstance(interval, bool) or not isinstance(interval, int | float) or interval <= 0
        ):
            raise ValueError(
                f"genesys server_ping_interval must be a number > 0 or None, got {interval!r}"
            )
        size = opts["max_stanza_size"]
        if isinstance(size, bool) or not isinstance(size, int) or size < 256:
            raise ValueError(f"genesys max_stanza_size must be an integer >= 256, got {size!r}")
        conditions = opts["sasl_conditions"]
        if not isinstance(conditions, dict) or not all(
            v in x.SASL_CONDITIONS for v in conditions.values()
        ):
            raise ValueError(
                "genesys sasl_conditions maps a reason to an RFC 6120 §6.5 condition "
                f"({', '.join(sorted(x.SASL_CONDITIONS))}), got {conditions!r}"
            )
        services = opts["ice_services"]
        if not isinstance(services, dict) or not all(
            isinstance(v, list) and all(isinstance(s, dict) and "host" in s for s in v)
            for v in services.values()
        ):
            raise ValueError(
                "genesys ice_services maps turn/stun to lists of {host, port, ...}, "
                f"got {services!r}"
            )
        for entries in services.values():
            for s in entries:
                if s.get("password"):
                    core.transcript.add_secret(str(s["password"]))
        if not isinstance(opts["domain"], str) or not opts["domain"]:
            raise ValueError(f"genesys domain must be a non-empty string, got {opts['domain']!r}")
        self.sasl_conditions = {**SASL_FAILURES, **conditions}
        self.channels: dict[str, Channel] = {}
        self._prune_at = 256
        self._ping_ids = itertools.count(1)
        self._pinging: set[str] = set()
        self._softphone: Softphone | None = None

    # --- softphone (genesys_softphone.py; aiortc is imported on the first call) -----------------

    @property
    def softphone(self) -> Softphone:
        if self._softphone is None:
            from .genesys_softphone import Softphone

            self._softphone = Softphone(self)
        return self._softphone

    @property
    def has_softphone(self) -> bool:
        return self._softphone is not None

    def place_call(self, session: Session, **options: Any) -> dict[str, Any]:
        """An incoming call on ``session`` (``Simulator.place_call``)."""
        return self.softphone.place(session, **options)

    def end_call(self, call: str, reason: str = "success") -> dict[str, Any]:
        """Retract or terminate a call (KeyError: no such call)."""
        return self.softphone.end(call, reason)

    def calls(self) -> list[dict[str, Any]]:
        return self.softphone.views() if self._softphone is not None else []

    async def aclose(self) -> None:
        """End every call's media (``Simulator.stop`` calls this)."""
        if self._softphone is not None:
            await self._softphone.aclose()

    # --- names ---------------------------------------------------------------------------------

    @property
    def api_host(self) -> str:
        host = self.options["api_host"]
        return str(host) if host else "127.0.0.1"

    @property
    def pubsub_service(self) -> str:
        return f"notifications.{self.api_host}"

    @property
    def transfer_server(self) -> str:
        """The cxfr ``<server>``: where the client is asked to go (our own endpoint)."""
        return self.urls[0] if self.urls else f"streaming.{self.api_host}"

    def jid(self, user: str) -> str:
        return f"{user}@{self.options['domain']}"

    def event_json(self, topic: str, payload: Any, channel: str | None = None) -> str:
        """The JSON a notification carries: Genesys's ``{topicName, eventBody}`` envelope, unless
        the publication already is one."""
        if isinstance(payload, dict) and "topicName" in payload and "eventBody" in payload:
            body = dict(payload)
        else:
            body = {"topicName": topic, "version": "2", "eventBody": payload}
        if channel is not None:
            inner = body.get("eventBody")
            if inner is None or (isinstance(inner, dict) and "channelId" not in inner):
                body["eventBody"] = {**(inner or {}), "channelId": channel}
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False)

    # --- handshake -----------------------------------------------------------------------------

    def open(
        self, link_id: str, handshake: Handshake
    ) -> tuple[WireSession, ops.Authenticate | None]:
        path = handshake.path.partition("?")[0]
        parts = [p for p in path.split("/") if p]
        if len(parts) == 3 and parts[:2] == ["stream", "channels"]:
            channel = self.channels.get(parts[2])
            return GenesysWire(self, link_id, channel=channel, channel_id=parts[2]), None
        if len(parts) == 3 and parts[:2] == ["stream", "jwt"]:
            self.core.transcript.add_secret(parts[2])
            return GenesysWire(self, link_id, guest_jwt=parts[2]), None
        refusal = (
            f"no stream at {redact_url(path)!r}: /stream/channels/{{id}} or /stream/jwt/{{jwt}}"
        )
        return GenesysWire(self, link_id, refusal=refusal), None

    def learn_plain(self, authcid: str, password: str, authzid: str = "") -> None:
        """Register a PLAIN exchange's secrets with the run's registry, before it is recorded."""
        secrets_ = self.core.transcript.secrets
        if secrets_ is not None:
            secrets_.add_sasl_plain(authcid, password, authzid)
            if password.startswith("authKey:"):
                secrets_.add(password[len("authKey:") :])

    def identify(self, token: str | None) -> Principal:
        """Who a token is, by the core's AuthPolicy *without* consuming scripted failures:
        ``fail_next_auth`` is meant for the streaming authentication (SASL), not the prelude."""
        principal: Principal = self.core.auth._identify(token, None)
        return principal

    def check_channel(self, channel: Channel, token: str) -> str | None:
        """Why this token may not authenticate on this channel, or None."""
        if channel.session is not None and channel.session not in self.core.sessions:
            return f"channel {channel.id} is gone (its session expired): create a new channel"
        try:
            user = self.identify(token).user
        except AuthRejected:
            return None  # the core's check refuses it, with its own reason
        if user != channel.user:
            return f"channel {channel.id} belongs to another user"
        return None

    def attach(self, channel: Channel, event: ev.Authenticated) -> None:
        channel.session = event.session
        channel.recovery_token = event.recovery_token

    def start_server_pings(self, link_id: str) -> None:
        interval = self.options["server_ping_interval"]
        if interval is None or link_id in self._pinging:
            return
        self._pinging.add(link_id)
        self.core.clock.call_later(interval, self._server_ping, link_id)

    def _server_ping(self, link_id: str) -> None:
        conn = self.core.connections.get(link_id)
        if conn is None or conn.closed:
            self._pinging.discard(link_id)
            return
        self.core.emit(conn, ev.ServerPing(f"ping-{next(self._ping_ids)}"))
        self.core.clock.call_later(self.options["server_ping_interval"], self._server_ping, link_id)

    # --- HTTP ----------------------------------------------------------------------------------

    def routes(self) -> Sequence[Route]:
        subs = CHANNELS + "/{id}/subscriptions"
        return tuple(
            Route(method, path, recorded(self, self._scripted_first(method, path, handler)))
            for method, path, handler in (
                ("GET", API + "/users/me", self._users_me),
                ("POST", CHANNELS, self._create_channel),
                ("GET", CHANNELS, self._list_channels),
                ("HEAD", CHANNELS + "/{id}", self._head_channel),
                ("GET", subs, self._get_subscriptions),
                ("PUT", subs, self._put_subscriptions),
                ("POST", subs, self._post_subscriptions),
                ("DELETE", subs, self._delete_subscriptions),
            )
        )

    def _scripted_first(self, method: str, route: str, handler: Handler) -> Handler:
        """``handler``, unless the control plane scripted an answer for ``method route``."""

        async def run(request: web.Request) -> web.StreamResponse:
            response = await self._scripted(f"{method} {route}", request)
            return response if response is not None else await handler(request)

        return run

    async def _scripted(self, method: str, request: web.Request) -> web.StreamResponse | None:
        """An answer scripted with ``on_rpc("VERB /route", error={"code": "503", "data":
        {"retry_after": 2}})``; None when nothing is scripted for the route."""
        outcome = self.core.rpc.resolve(method, None)
        error = outcome.error
        if error is not None and error.get("code") == "method_not_found":
            return None
        if outcome.delay > 0:
            await self.core.clock.sleep(outcome.delay)
        if outcome.silent or error is None:
            return web.json_response(outcome.result if not outcome.silent else {})
        code = str(error.get("code", "500"))
        status = int(code) if code.isdigit() and 400 <= int(code) <= 599 else 500
        data = error.get("data") if isinstance(error.get("data"), dict) else {}
        headers = {}
        if data.get("retry_after") is not None:
            headers["Retry-After"] = str(data["retry_after"])
        body = api_error(status, code, str(error.get("message") or "scripted failure"))
        return web.json_response(body, status=status, headers=headers)

    def _principal(self, request: web.Request) -> Principal | web.Response:
        try:
            return self.identify(_bearer(request))
        except AuthRejected as exc:
            status, code = HTTP_AUTH_ERRORS.get(exc.reason, (401, "bad.credentials"))
            return web.json_response(api_error(status, code, exc.message), status=status)

    async def _users_me(self, request: web.Request) -> web.StreamResponse:
        who = self._principal(request)
        if isinstance(who, web.Response):
            return who
        return web.json_response(
            {"id": who.user, "name": who.user, "chat": {"jabberId": self.jid(who.user)}}
        )

    async def _create_channel(self, request: web.Request) -> web.StreamResponse:
        who = self._principal(request)
        if isinstance(who, web.Response):
            return who
        if request.query.get("connectionType", "streaming") != "streaming":
            body = api_error(
                400, "bad.request", "this service serves connectionType=streaming only"
            )
            return web.json_response(body, status=400)
        if len(self.channels) >= self._prune_at:
            self._prune()
        channel = Channel(f"streaming-{secrets.token_hex(10)}", who.user, self.core.clock.now())
        self.channels[channel.id] = channel
        base = (self.urls[0] if self.urls else "ws://127.0.0.1/").rstrip("/")
        return web.json_response(
            {
                "connectUri": f"{base}/stream/channels/{channel.id}",
                "id": channel.id,
                "expires": None,
            }
        )

    def _prune(self) -> None:
        """Forget channels whose session the core has forgotten."""
        live = self.core.sessions
        self.channels = {
            k: c for k, c in self.channels.items() if c.session is None or c.session in live
        }
        self._prune_at = max(256, 2 * len(self.channels))

    async def _list_channels(self, request: web.Request) -> web.StreamResponse:
        who = self._principal(request)
        if isinstance(who, web.Response):
            return who
        mine = [{"id": c.id} for c in self.channels.values() if c.user == who.user]
        return web.json_response({"entities": mine})

    def _channel(self, request: web.Request) -> Channel | web.Response:
        who = self._principal(request)
        if isinstance(who, web.Response):
            return who
        channel = self.channels.get(request.match_info["id"])
        if (
            channel is None
            or channel.user != who.user
            or (channel.session is not None and channel.session not in self.core.sessions)
        ):
            message = f"channel {request.match_info['id']!r} not found"
            return web.json_response(api_error(404, "not.found", message), status=404)
        return channel

    async def _head_channel(self, request: web.Request) -> web.StreamResponse:
        found = self._channel(request)
        return web.Response(status=found.status if isinstance(found, web.Response) else 200)

    def _entities(self, channel: Channel) -> web.Response:
        return web.json_response(
            {"entities": [{"id": t, "state": "Permitted"} for t in channel.topics]}
        )

    async def _get_subscriptions(self, request: web.Request) -> web.StreamResponse:
        found = self._channel(request)
        return found if isinstance(found, web.Response) else self._entities(found)

    async def _topics(self, request: web.Request) -> list[str] | web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, list) or not all(
            isinstance(i, dict) and isinstance(i.get("id"), str) for i in body
        ):
            message = 'the body must be a JSON list of {"id": topic}'
            return web.json_response(api_error(400, "bad.request", message), status=400)
        topics: list[str] = []
        for item in body:
            try:
                topics.extend(x.split_topics(item["id"]))
            except ValueError as exc:
                return web.json_response(api_error(400, "bad.request", str(exc)), status=400)
        return topics

    async def _change(self, request: web.Request, *, replace: bool) -> web.StreamResponse:
        found = self._channel(request)
        if isinstance(found, web.Response):
            return found
        topics = await self._topics(request)
        if isinstance(topics, web.Response):
            return topics
        channel = found
        gone = [t for t in channel.topics if t not in topics] if replace else []
        for t in gone:
            channel.topics.pop(t, None)
        channel.topics.update(dict.fromkeys(topics))
        session = self.core.sessions.get(channel.session) if channel.session else None
        if session is not None:  # else the first connection subscribes them (Authenticate.topics)
            self.core.unsubscribe(session, gone)
            self.core.subscribe(session, topics)
        return self._entities(channel)

    async def _put_subscriptions(self, request: web.Request) -> web.StreamResponse:
        return await self._change(request, replace=True)

    async def _post_subscriptions(self, request: web.Request) -> web.StreamResponse:
        return await self._change(request, replace=False)

    async def _delete_subscriptions(self, request: web.Request) -> web.StreamResponse:
        found = self._channel(request)
        if isinstance(found, web.Response):
            return found
        gone = list(found.topics)
        found.topics.clear()
        session = self.core.sessions.get(found.session) if found.session else None
        if session is not None:
            self.core.unsubscribe(session, gone)
        return web.Response(status=204)
