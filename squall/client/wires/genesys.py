"""The reference client on Genesys Cloud streaming (``genesys-cloud-streaming-client``).

The behaviour core (``squall/client/core.py``) speaks reference messages; this wire turns them
into XMPP over WebSocket (RFC 7395, subprotocol ``xmpp``) and Genesys's REST prelude, and back.
The XML codec is :mod:`squall.protocol.genesys` (parsing with restricted XML enforced, and the
element builder). What maps to what (docs/dialects/genesys.md, "The reference client's genesys
mode"):

- **prelude** (HTTP, bearer token): ``GET /api/v2/users/me`` once (the jid), then
  ``POST /api/v2/notifications/channels?connectionType=streaming`` for every *new* channel.
  401/403 is final (``auth_failed``); anything else is retried with the core's backoff. The
  socket goes to ``{the client's URL}/stream/channels/{id}`` (failover and a proxy in front
  work), or to the answer's ``connectUri`` with ``follow_uri=True``. A guest (a JWT, no token)
  has no prelude: ``/stream/jwt/{jwt}``, SASL ANONYMOUS.
- **stream negotiation** is the wire's own (:class:`~squall.client.wire.SideChannel`): the
  core's ``auth`` opens the stream; features -> SASL PLAIN ``\\0jid\\0authKey:TOKEN``;
  ``<success/>`` -> a new ``<open/>``; features -> bind; then (as v19) a pubsub subscribe of
  ``enable.server.side.pings``; its answer, either way, -> ``authenticated``.
- **a channel is the session**: ``recovery_token`` is ``genesys-channel:{id}`` (``connected``
  shows the id as ``channel``, which scrubbed output would mask). A reconnect presenting
  it reuses the channel (no HTTP; subscriptions live server-side), answered ``recovered``
  with the channel's topics. ``not-authorized`` on a channel that had a session means the
  channel expired (v14 ``reconnector.js:58-72``): the next connect makes a new channel, and
  its ``recovery`` says ``expired``, so the core subscribes everything again (an HTTP PUT).
- **SASL**: any other condition but ``temporary-auth-failure`` / ``aborted`` is final (v14's rule,
  ``client.js:144-156``): ``not-authorized`` -> invalid_token, ``credentials-expired`` ->
  expired_token, ``account-disabled`` -> forbidden.
- **subscribe / unsubscribe**: ``PUT /api/v2/notifications/channels/{id}/subscriptions`` with
  the whole wanted set (``DELETE`` when none is left), one request at a time, as the SDKs'
  default; ``immediate=True`` (and every guest) uses XMPP pubsub subscribe iqs instead.
- **notifications**: pubsub events carrying JSON ``{topicName, eventBody}``: ``topic`` is
  the node, ``payload`` the ``eventBody`` (the whole JSON when it is no envelope), ``seq`` a
  per-channel count; an item id seen before gets its first ``seq`` back (a duplicate).
  ``no_longer_subscribed`` / ``duplicate_id`` close the stream and move to a new channel;
  ``streaming-subscriptions-expiring`` PUTs every topic again.
- **keepalive**: the core's ping -> ``<iq type="get"><ping xmlns="urn:xmpp:ping"/>`` (every
  14 s, v19's interval); a server's XEP-0199 ping -> ``ping``, answered with an iq result. When
  the core gives up on a silent server, a ``connection-timeout`` stream error ("too many
  missed pongs") and ``<close/>`` go out first; every close of the client's own sends
  ``<close/>``.
- **drain**: the ``urn:xmpp:cxfr`` iq -> ``reconnect_request`` (v14's ``requestReconnect``:
  the core's pending / done / 1 s / 10 min), the iq answered with a result. ``pending`` never
  crosses the wire; ``done`` sends ``<close/>``; the reconnect reuses the channel.
- **not on this wire**: RPC and rooms, answered locally with an ``error`` (``unsupported``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import itertools
import json
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from squall.protocol import genesys as x
from squall.protocol import messages as m
from squall.protocol.errors import InvalidMessage

from ..wire import Aside, Job, Opening, Outgoing, PreludeFailed, SideFrame

__all__ = ["GenesysClientWire"]

USERS_ME = "/api/v2/users/me"
CHANNELS = "/api/v2/notifications/channels"
SERVER_PINGS_NODE = "enable.server.side.pings"
SUBPROTOCOLS = ("xmpp",)  # RFC 7395 §3.1
#: the recovery token is the channel id behind this prefix (so output scrubbed of recovery
#: tokens still shows which channel a connection is on)
CHANNEL_TOKEN = "genesys-channel:"

#: seconds between client pings: v19's (``client.js``; v14 ``ping.js``: 15), unless the policy
#: sets one. With the core's 10 s pong timeout, a silent server is left 24-38 s after it fell
#: silent (v19's stanza monitor: 35 s)
PING_INTERVAL = 14.0
#: real seconds each HTTP request may take
PRELUDE_TIMEOUT = 10.0
#: notification item ids remembered per channel, to spot a replayed one
SEEN_ITEMS = 1024

UNSUPPORTED = "unsupported"

#: SASL conditions that are worth another attempt (v14 ``client.js:144-156``); others are final
SASL_RETRY = frozenset({"temporary-auth-failure", "aborted"})
#: a final SASL condition -> the reference reason
SASL_REASONS: dict[str, m.AuthFailureReason] = {
    "not-authorized": "invalid_token",
    "credentials-expired": "expired_token",
    "account-disabled": "forbidden",
}
#: a REST error body's ``code`` on a 401 -> the reference reason
HTTP_REASONS: dict[str, m.AuthFailureReason] = {
    "authentication.required": "missing_credentials",
    "bad.credentials": "invalid_token",
}
#: topics after which the channel is no use: the stream closes and a new channel is made
CHANNEL_ENDERS = ("no_longer_subscribed", "duplicate_id")
RESUBSCRIBE_TOPIC = "streaming-subscriptions-expiring"


@dataclass(slots=True)
class _Group:
    """One core subscribe / unsubscribe carried by one pubsub iq per topic."""

    kind: str  # subscribe | unsubscribe
    ref: Any
    topics: tuple[str, ...]
    left: int
    error: m.Error | None = None


@dataclass(frozen=True, slots=True)
class _Pending:
    """An iq id's meaning: what its answer answers."""

    kind: str  # bind | pings | ping | pubsub
    ref: Any = None
    group: _Group | None = None
    topic: str = ""


@dataclass(slots=True)
class _Connection:
    """What one socket has negotiated so far."""

    state: str = "open"  # open -> sasl -> rebind -> bind -> pings -> ready
    full_jid: str = ""
    pending: dict[str, _Pending] = field(default_factory=dict)


class GenesysClientWire:
    """Genesys Cloud streaming for the reference client's core.

    Options: ``server`` (the REST base; by default the socket URL's origin as ``http(s)://``),
    ``domain`` (the XMPP domain when no jid says it: a guest, ``squall.test``), ``jid`` (skip
    ``users/me``), ``jid_resource`` (the bind resource; None: the server picks, as v14),
    ``immediate`` (subscribe over XMPP pubsub instead of HTTP), ``use_server_side_pings``
    (subscribe ``enable.server.side.pings``, as v19; True), ``reconnect_on_no_longer_subscribed``
    (True), ``follow_uri`` (False: the socket goes to the client's own URL), ``ping_interval``
    (14 s), ``prelude_timeout`` (10 real seconds per request).
    """

    #: what the driver declares (docs/driver.md, ``behaviours``): v19's server pings, which it
    #: subscribes to by default; not v19's new-channel drain (see docs/dialects/genesys.md)
    behaviours = ("keepalive:server_pings",)

    name = "genesys"

    def __init__(
        self,
        *,
        server: str | None = None,
        domain: str = "squall.test",
        jid: str | None = None,
        jid_resource: str | None = None,
        immediate: bool = False,
        use_server_side_pings: bool = True,
        reconnect_on_no_longer_subscribed: bool = True,
        follow_uri: bool = False,
        ping_interval: float = PING_INTERVAL,
        prelude_timeout: float = PRELUDE_TIMEOUT,
    ) -> None:
        self.server = _http_origin(server) if server else None
        self.domain = domain
        self.jid = jid.partition("/")[0] if jid else None
        self.jid_resource = jid_resource
        self.immediate = immediate
        self.use_server_side_pings = use_server_side_pings
        self.reconnect_on_no_longer_subscribed = reconnect_on_no_longer_subscribed
        self.follow_uri = follow_uri
        self.ping_interval = ping_interval
        self.prelude_timeout = prelude_timeout
        self._base = uuid.uuid4().hex[:8]
        self._ids = itertools.count(1)
        self._conn = self._previous = _Connection()  # this socket's, and the one before
        self._frames: list[SideFrame] = []
        self._jobs: list[Job] = []
        self._token: str | None = None
        self._jwt: str | None = None
        self._guest = False
        self._user: str | None = None
        self._tls: Any = None
        self._http_base = ""
        self._http_lock: asyncio.Lock | None = None
        self._presented: str | None = None
        self._reused = False  # this connection is on a channel that had a session
        self._gone = False  # the channel is of no more use: the next connect makes a new one
        self._channel: str | None = None
        self._connect_uri: str | None = None
        self._sessions = 0
        self._connections = 0
        # per channel, across its connections:
        self._topics: tuple[str, ...] = ()  # subscribed, as last answered
        self._asked: tuple[str, ...] = ()  # ... as last requested (requests compose on it)
        self._seq = 0
        self._seen: OrderedDict[str, int] = OrderedDict()

    # --- the side channel ---------------------------------------------------------------------

    def take_aside(self) -> Aside:
        if not self._frames and not self._jobs:
            return Aside()
        aside = Aside(tuple(self._frames), tuple(self._jobs))
        self._frames, self._jobs = [], []
        return aside

    def farewell(self, abort: bool, *, current: bool) -> Sequence[SideFrame]:
        """``<close/>`` before the client's own close (RFC 7395 §3.6); when it gives up on a
        silent server, a ``connection-timeout`` stream error first (RFC 6120 §4.9.3.4), in
        the SDKs' words (v14 ``ping.js``)."""
        conn = self._conn if current else self._previous
        if conn.state == "closed":
            return ()
        conn.state = "closed"
        frames = []
        if abort and any(p.kind == "ping" for p in conn.pending.values()):
            error = x.stream_error("connection-timeout", "too many missed pongs")
            frames.append(SideFrame(error, "stream:error"))
        frames.append(SideFrame(x.close_stream(), "close"))
        return frames

    def describe(self) -> dict[str, Any]:
        return {"channel": None if self._guest else self._channel, "jid": self._conn.full_jid}

    def _say(self, text: str, kind: str, shown: str | None = None) -> None:
        self._frames.append(SideFrame(text, kind, shown))

    def _iq_id(self) -> str:
        return f"{self._base}-{next(self._ids)}"

    # --- the socket ---------------------------------------------------------------------------

    def opening(
        self,
        url: str,
        *,
        token: str | None,
        jwt: str | None,
        recovery_token: str | None,
        auth_via: str,
    ) -> Opening:
        """A new connection: the channel is reused when the core presents it (and it is not
        gone); the prelude makes the URL."""
        self._previous, self._conn = self._conn, _Connection()
        self._frames, self._jobs = [], []
        self._token, self._jwt = token, jwt
        self._guest = not token and bool(jwt)
        self._presented = recovery_token
        kept = (recovery_token or "").removeprefix(CHANNEL_TOKEN)
        if self._channel is None and kept and not self._guest:
            self._channel = kept  # a channel kept from before (its recovery token): try it
        self._reused = not self._guest and bool(kept) and kept == self._channel and not self._gone
        return Opening(url, auth_frame=True)  # the core's auth opens the stream

    async def prelude(self, opening: Opening, token: str | None) -> Opening:
        """users/me and a new channel over HTTP, unless the channel is reused (or a guest)."""
        self._tls = opening.tls
        if self._guest:
            assert self._jwt is not None
            self._domain_from_jwt(self._jwt)
            url = _join(opening.url, f"/stream/jwt/{self._jwt}")
            return Opening(url, dict(opening.headers), tls=opening.tls, subprotocols=SUBPROTOCOLS)
        if not token:
            message = "genesys needs a token (the REST access token) or a guest JWT"
            raise PreludeFailed(
                message, final=True, answers=(m.AuthFailed(reason="missing_credentials"),)
            )
        server = self._http_base = self.server or _http_origin(opening.url)
        if self._reused and self.jid is not None:
            return Opening(
                self._socket_url(opening.url),
                dict(opening.headers),
                tls=opening.tls,
                subprotocols=SUBPROTOCOLS,
            )
        timeout = aiohttp.ClientTimeout(total=self.prelude_timeout)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            if self.jid is None:
                body = await self._prelude_request(http, "GET", server + USERS_ME, token)
                self._learn_user(body)
            if self._reused:  # a channel given as the recovery token: no new one
                return Opening(
                    self._socket_url(opening.url), dict(opening.headers), tls=opening.tls
                )
            body = await self._prelude_request(
                http, "POST", server + CHANNELS + "?connectionType=streaming", token
            )
        channel = body.get("id") if isinstance(body, dict) else None
        if not isinstance(channel, str) or not channel:
            raise PreludeFailed(f"POST {CHANNELS} answered no channel id")
        uri = body.get("connectUri")
        self._new_channel(channel, uri if isinstance(uri, str) and uri else None)
        return Opening(
            self._socket_url(opening.url),
            dict(opening.headers),
            tls=opening.tls,
            subprotocols=SUBPROTOCOLS,
        )

    async def _prelude_request(
        self, http: aiohttp.ClientSession, method: str, url: str, token: str
    ) -> Any:
        path = urlsplit(url).path
        try:
            status, body = await _request(http, method, url, token, tls=self._tls)
        except aiohttp.ClientConnectorCertificateError as exc:  # final: the same cert again
            error = exc.certificate_error
            why = getattr(error, "verify_message", None) or str(error)
            raise PreludeFailed(
                f"TLS certificate verification failed for {url}: {why}", final=True
            ) from error
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise PreludeFailed(f"{method} {path} failed: {exc!r}") from None
        if status in (401, 403):
            reason: m.AuthFailureReason = "forbidden"
            if status == 401:
                code = body.get("code") if isinstance(body, dict) else None
                reason = HTTP_REASONS.get(str(code), "invalid_token")
            message = f"{method} {path} answered {status}: {_error_message(body)}"
            raise PreludeFailed(
                message, final=True, answers=(m.AuthFailed(reason=reason, message=message),)
            )
        if not 200 <= status < 300 or not isinstance(body, dict):
            raise PreludeFailed(f"{method} {path} answered {status}: {_error_message(body)}")
        return body

    def _learn_user(self, body: dict[str, Any]) -> None:
        chat = body.get("chat")
        jid = chat.get("jabberId") if isinstance(chat, dict) else None
        if not isinstance(jid, str) or "@" not in jid:
            raise PreludeFailed(f"GET {USERS_ME} answered no chat.jabberId")
        self.jid = jid.partition("/")[0]
        user = body.get("id")
        self._user = user if isinstance(user, str) and user else None

    def _domain_from_jwt(self, jwt: str) -> None:
        """A guest's domain: the JWT's ``data.jid`` after ``@``, without ``conference.``."""
        try:
            part = jwt.split(".")[1]
            claims = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
            jid = claims["data"]["jid"]
        except (IndexError, KeyError, TypeError, ValueError, binascii.Error):
            return  # not a Genesys guest JWT: the configured domain
        if isinstance(jid, str) and "@" in jid:
            self.domain = jid.partition("@")[2].removeprefix("conference.") or self.domain

    def _socket_url(self, base: str) -> str:
        if self.follow_uri and self._connect_uri:
            return self._connect_uri
        return _join(base, f"/stream/channels/{self._channel}")

    def _new_channel(self, channel: str, uri: str | None) -> None:
        self._channel, self._connect_uri, self._gone = channel, uri, False
        self._topics = self._asked = ()
        self._seq = 0
        self._seen.clear()

    @property
    def _xmpp_domain(self) -> str:
        return self.jid.partition("@")[2] if self.jid else self.domain

    @property
    def _pubsub_service(self) -> str:
        """``notifications.<api host>``, where v19 sends its pubsub iqs (notifications.js)."""
        host = urlsplit(self.server).hostname if self.server else None
        return f"notifications.{host or self._xmpp_domain}"

    # --- out ----------------------------------------------------------------------------------

    def encode(self, msg: m.Message) -> Outgoing:
        match msg:
            case m.Auth():
                frame = x.tag(
                    "open", {"xmlns": x.NS_FRAMING, "to": self._xmpp_domain, "version": "1.0"}
                )
                return Outgoing((frame,))
            case m.Ping():
                iq_id = self._iq_id()
                self._conn.pending[iq_id] = _Pending("ping", msg.id)
                return Outgoing((x.iq("get", iq_id, x.tag("ping", {"xmlns": x.NS_PING})),))
            case m.Pong():
                ref = None if msg.id is None else str(msg.id)
                return Outgoing((x.iq("result", ref, to=self._xmpp_domain),))
            case m.Subscribe():
                return self._subscribe(msg.id, tuple(msg.topics), add=True)
            case m.Unsubscribe():
                return self._subscribe(msg.id, tuple(msg.topics), add=False)
            case m.ReconnectResponse():
                if msg.status == "done":  # v14: close the stream, then the same channel again
                    return Outgoing((x.close_stream(),))
                return Outgoing()  # pending never crosses the wire
        return Outgoing(answers=(_unsupported(msg),))

    def _subscribe(self, ref: Any, topics: tuple[str, ...], *, add: bool) -> Outgoing:
        if self._guest or self.immediate:
            return self._pubsub(ref, topics, add=add)
        if add:
            filters = tuple(dict.fromkeys((*self._asked, *topics)))
        else:
            filters = tuple(t for t in self._asked if t not in topics)
        self._asked = filters
        self._jobs.append(self._http_subscriptions(ref, topics, filters, add=add))
        return Outgoing()

    def _pubsub(self, ref: Any, topics: tuple[str, ...], *, add: bool) -> Outgoing:
        kind = "subscribe" if add else "unsubscribe"
        group = _Group(kind, ref, topics, len(topics))
        frames = []
        for topic in topics:
            iq_id = self._iq_id()
            self._conn.pending[iq_id] = _Pending("pubsub", ref, group, topic)
            frames.append(self._pubsub_iq(iq_id, kind, topic))
        return Outgoing(frames)

    def _pubsub_iq(self, iq_id: str, action: str, node: str) -> str:
        bare = self._conn.full_jid.partition("/")[0] or self.jid
        body = x.tag("pubsub", {"xmlns": x.NS_PUBSUB}, x.tag(action, {"node": node, "jid": bare}))
        return x.iq("set", iq_id, body, to=self._pubsub_service)

    def _http_subscriptions(
        self, ref: Any, topics: tuple[str, ...], filters: tuple[str, ...], *, add: bool
    ) -> Job:
        """A job: the channel's subscriptions set to ``filters`` (PUT, or DELETE for none)."""
        channel, token = self._channel, self._token
        base = self._http_base

        async def job() -> Sequence[m.Message]:
            if self._http_lock is None:
                self._http_lock = asyncio.Lock()
            path = f"{CHANNELS}/{channel}/subscriptions"
            timeout = aiohttp.ClientTimeout(total=self.prelude_timeout)
            async with self._http_lock:  # one at a time: each PUT says the whole set
                try:
                    async with aiohttp.ClientSession(timeout=timeout) as http:
                        if filters:
                            body = [{"id": t} for t in filters]
                            status, answer = await _request(
                                http, "PUT", base + path, token, body=body, tls=self._tls
                            )
                        else:
                            status, answer = await _request(
                                http, "DELETE", base + path, token, tls=self._tls
                            )
                except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                    status, answer = 0, {"message": f"{exc!r}"}
            current = channel == self._channel
            if not 200 <= status < 300:
                if current:
                    self._asked = self._topics
                    if status == 404:
                        self._gone = True  # the next connect makes a new channel
                verb = "PUT" if filters else "DELETE"
                code = str(status) if status else "http_failed"
                text = f"{verb} {path} answered {status}: " if status else f"{verb} {path}: "
                return (
                    m.Error(id=ref, code=code, message=text + _error_message(answer), data=answer),
                )
            if current:
                self._topics = filters
            if add:
                return (m.Subscribed(id=ref, topics=list(topics)),)
            return (m.Unsubscribed(id=ref, topics=list(topics)),)

        return job

    # --- in -----------------------------------------------------------------------------------

    def decode(self, data: str | bytes) -> Sequence[m.Message]:
        el = x.parse(data)  # a StreamError (a ProtocolError) names what is wrong
        try:
            return self._decode(el)
        except ValueError as exc:  # a value the reference messages cannot hold (a long topic)
            raise InvalidMessage(f"<{el.name}>: {exc}", type=el.name) from None

    def _decode(self, el: x.Element) -> Sequence[m.Message]:
        key = (el.ns, el.name)
        if key in ((x.NS_FRAMING, "open"), (x.NS_FRAMING, "close")):
            return ()  # the stream's framing; the socket's close follows a close
        if key == (x.NS_STREAM, "features"):
            return self._features(el)
        if key == (x.NS_STREAM, "error"):
            return (_stream_error(el),)
        if el.ns == x.NS_SASL:
            return self._sasl(el)
        if key == (x.NS_CLIENT, "iq"):
            return self._iq(el)
        if key == (x.NS_CLIENT, "message"):
            return self._message(el)
        return ()  # presence, and anything this client does not take part in

    def _features(self, el: x.Element) -> Sequence[m.Message]:
        conn = self._conn
        mechanisms = el.child("mechanisms", x.NS_SASL)
        if mechanisms is not None and conn.state == "open":
            offered = {c.text.strip() for c in mechanisms.children if c.name == "mechanism"}
            wanted = "ANONYMOUS" if self._guest else "PLAIN"
            if wanted not in offered:
                self._say(x.close_stream(), "close")
                text = f"the server offers {sorted(offered)}, not {wanted}"
                return (m.Error(code="invalid-mechanism", message=text),)
            conn.state = "sasl"
            attrs = {"xmlns": x.NS_SASL, "mechanism": wanted}
            if self._guest:
                self._say(x.tag("auth", attrs), "auth")
                return ()
            plain = f"\0{self.jid}\0authKey:{self._token}".encode()
            secret = base64.b64encode(plain).decode("ascii")
            shown = x.tag("auth", attrs, text="***")
            self._say(x.tag("auth", attrs, text=secret), "auth", shown)
            return ()
        if el.child("bind", x.NS_BIND) is not None and conn.state == "rebind":
            conn.state = "bind"
            iq_id = self._iq_id()
            conn.pending[iq_id] = _Pending("bind")
            res = self.jid_resource
            bind = x.tag(
                "bind", {"xmlns": x.NS_BIND}, *([x.tag("resource", text=res)] if res else [])
            )
            self._say(x.iq("set", iq_id, bind), "iq")
        return ()

    def _sasl(self, el: x.Element) -> Sequence[m.Message]:
        conn = self._conn
        if el.name == "success" and conn.state == "sasl":
            conn.state = "rebind"
            frame = x.tag(
                "open", {"xmlns": x.NS_FRAMING, "to": self._xmpp_domain, "version": "1.0"}
            )
            self._say(frame, "open")
            return ()
        if el.name != "failure":
            return (m.Error(code="unexpected", message=f"SASL <{el.name}> out of turn"),)
        condition = next((c.name for c in el.children if c.name != "text"), "not-authorized")
        said = el.child("text")
        text = f"SASL {condition}" + (f": {said.text}" if said is not None and said.text else "")
        if self._reused and condition == "not-authorized":
            # v14 reconnector.js:58-72: after a session, not-authorized means the channel expired
            self._gone = True
            return (m.Error(code="channel_expired", message=f"{text}; a new channel next"),)
        if condition in SASL_RETRY:
            return (m.Error(code=condition, message=text),)
        return (m.AuthFailed(reason=SASL_REASONS.get(condition, "invalid_token"), message=text),)

    def _iq(self, el: x.Element) -> Sequence[m.Message]:
        kind, iq_id = el.get("type"), el.get("id")
        if kind in ("result", "error"):
            pending = self._conn.pending.pop(iq_id or "", None)
            return () if pending is None else self._answer(pending, el, kind == "result")
        payload = el.children[0] if el.children else None
        if (
            kind == "get"
            and payload is not None
            and (payload.ns, payload.name) == (x.NS_PING, "ping")
        ):
            return (m.Ping(id=iq_id),)
        if (
            kind == "set"
            and payload is not None
            and (payload.ns, payload.name) == (x.NS_CXFR, "query")
        ):
            # RFC 6120 §8.2.3: a set is answered (the SDKs do not); the drain is the core's
            self._say(x.iq("result", iq_id, to=el.get("from")), "iq")
            target = payload.child("server")
            where = f" to {target.text.strip()}" if target is not None and target.text else ""
            return (m.ReconnectRequest(reason=f"connection transfer (urn:xmpp:cxfr){where}"),)
        if kind in ("get", "set"):
            what = f"{payload.name} in {payload.ns}" if payload is not None else "an empty iq"
            error = x.iq_error(
                iq_id,
                "service-unavailable",
                f"{what} is not served by this client",
                to=el.get("from"),
            )
            self._say(error, "iq")
        return ()

    def _answer(self, pending: _Pending, el: x.Element, ok: bool) -> Sequence[m.Message]:
        conn = self._conn
        if pending.kind == "ping":
            return (m.Pong(id=pending.ref),)
        if pending.kind == "bind":
            if not ok:
                self._say(x.close_stream(), "close")
                return (m.Error(code="bind_failed", message=_iq_error_text(el)),)
            bind = el.child("bind", x.NS_BIND)
            jid = bind.child("jid") if bind is not None else None
            conn.full_jid = jid.text.strip() if jid is not None else (self.jid or "")
            if self.use_server_side_pings:
                conn.state = "pings"
                iq_id = self._iq_id()
                conn.pending[iq_id] = _Pending("pings")
                self._say(self._pubsub_iq(iq_id, "subscribe", SERVER_PINGS_NODE), "iq")
                return ()
            return self._ready()
        if pending.kind == "pings":  # an error: v19 falls back to client pings, as the core does
            return self._ready()
        group = pending.group
        assert group is not None
        group.left -= 1
        if not ok and group.error is None:
            group.error = m.Error(
                id=group.ref, code="pubsub", message=f"{pending.topic}: {_iq_error_text(el)}"
            )
        if ok:
            if group.kind == "subscribe":
                self._topics = tuple(dict.fromkeys((*self._topics, pending.topic)))
            else:
                self._topics = tuple(t for t in self._topics if t != pending.topic)
            self._asked = self._topics
        if group.left > 0:
            return ()
        if group.error is not None:
            return (group.error,)
        if group.kind == "subscribe":
            return (m.Subscribed(id=group.ref, topics=list(group.topics)),)
        return (m.Unsubscribed(id=group.ref, topics=list(group.topics)),)

    def _ready(self) -> Sequence[m.Message]:
        """The stream is bound: the core hears ``authenticated`` (and ``recovery``)."""
        conn = self._conn
        conn.state = "ready"
        self._connections += 1
        reused = self._reused
        if not reused:
            self._sessions += 1
            if self._guest:  # a guest's stream is no channel: nothing survives it
                self._topics = self._asked = ()
                self._seq = 0
                self._seen.clear()
        local = (conn.full_jid or self.jid or "").partition("@")[0]
        user = self._user or local or ("guest" if self._guest else "user")
        out: list[m.Message] = [
            m.Authenticated(
                session=f"genesys-{self._sessions}",
                sid=f"c{self._connections}",
                user=user,
                guest=self._guest,
                recovery_token="" if self._guest else CHANNEL_TOKEN + (self._channel or ""),
                heartbeat=self.ping_interval,
                recovery_buffer_size=0,
                recovery_window=0,
            )
        ]
        if self._presented is not None:
            if reused:
                self._asked = self._topics  # requests lost with the old socket are sent again
                out.append(m.Recovery(recovered=True, subscriptions=list(self._topics)))
            else:
                expired = bool(self._presented) and not self._guest
                out.append(m.Recovery(recovered=False, reason="expired" if expired else "unknown"))
        return out

    def _message(self, el: x.Element) -> Sequence[m.Message]:
        event = el.child("event", x.NS_PUBSUB_EVENT)
        if event is None:
            return ()  # chat, jingle-message: not this client's business
        out: list[m.Message] = []
        for items in event.children:
            if items.name != "items":
                continue
            node = items.get("node") or ""
            for item in items.children:
                if item.name == "item":
                    out.extend(self._item(node, item, el.get("id")))
        return out

    def _item(self, node: str, item: x.Element, message_id: str | None) -> Sequence[m.Message]:
        carried = item.child("json", x.NS_JSON)
        try:
            data = json.loads(carried.text) if carried is not None else None
        except (ValueError, RecursionError):
            return (m.Error(code="bad_notification", message=f"{node}: the JSON does not parse"),)
        envelope = isinstance(data, dict) and "eventBody" in data
        topic = node or (data.get("topicName") if isinstance(data, dict) else None) or ""
        payload = data["eventBody"] if isinstance(data, dict) and envelope else data
        out: list[m.Message] = []
        ender = next((mark for mark in CHANNEL_ENDERS if mark in topic), None)
        if ender is not None:
            topic = ender  # the name both SDKs give it (notify:no_longer_subscribed)
        if ender is not None and self.reconnect_on_no_longer_subscribed:
            self._gone = True  # v14 / v19: a new channel (client.js, notifications.js)
            self._say(x.close_stream(), "close")
        elif RESUBSCRIBE_TOPIC in topic and self._asked and not (self._guest or self.immediate):
            self._jobs.append(self._resubscribe_all())
        key = item.get("id") or message_id
        seq = self._seen.get(key) if key else None
        if seq is None:
            self._seq += 1
            seq = self._seq
            if key:
                self._seen[key] = seq
                if len(self._seen) > SEEN_ITEMS:
                    self._seen.popitem(last=False)
        out.append(m.Notification(seq=seq, topic=topic, payload=payload))
        return out

    def _resubscribe_all(self) -> Job:
        inner = self._http_subscriptions(None, self._asked, self._asked, add=True)

        async def job() -> Sequence[m.Message]:
            answers = await inner()
            return [a for a in answers if isinstance(a, m.Error)]  # success needs no word

        return job


async def _request(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    token: str | None,
    *,
    body: Any = None,
    tls: Any = None,
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.request(method, url, headers=headers, json=body, ssl=tls or True) as resp:
        text = await resp.text()
    try:
        return resp.status, json.loads(text) if text else None
    except ValueError:
        return resp.status, None


def _join(base: str, path: str) -> str:
    """``ws://h:p/x`` + ``/stream/...`` -> ``ws://h:p/x/stream/...`` (the query kept)."""
    parts = urlsplit(base)
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/") + path, parts.query, ""))


def _http_origin(url: str) -> str:
    """``ws://h:p/x`` -> ``http://h:p``; an ``http(s)://`` base keeps its path."""
    parts = urlsplit(url)
    if parts.scheme in ("ws", "wss"):
        return urlunsplit(("http" if parts.scheme == "ws" else "https", parts.netloc, "", "", ""))
    return url.rstrip("/")


def _error_message(body: Any) -> str:
    if isinstance(body, dict):
        for key in ("message", "code"):
            if isinstance(body.get(key), str) and body[key]:
                return str(body[key])
    return "no error message"


def _iq_error_text(el: x.Element) -> str:
    error = el.child("error")
    if error is None:
        return "an iq error without a condition"
    condition = next((c.name for c in error.children if c.name != "text"), "undefined-condition")
    said = error.child("text")
    return condition + (f": {said.text}" if said is not None and said.text else "")


def _stream_error(el: x.Element) -> m.Error:
    condition = next(
        (c.name for c in el.children if c.ns == x.NS_STREAMS and c.name != "text"),
        "undefined-condition",
    )
    said = el.child("text", x.NS_STREAMS)
    text = said.text if said is not None and said.text else condition
    return m.Error(code=condition, message=f"stream error {condition}: {text}")


def _unsupported(msg: m.Message) -> m.Error:
    return m.Error(
        id=getattr(msg, "id", None),
        code=UNSUPPORTED,
        message=f"the genesys dialect has no {msg.type!r} (no RPC or rooms on this wire)",
    )
