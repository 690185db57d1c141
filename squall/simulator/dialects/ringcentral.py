"""RingCentral's WebSocket gateway (seed ``001``) as a dialect: ``@rc-ex/ws`` 1.4.2 runs as is.

What the SDK (``@rc-ex/ws`` 1.4.2 on ``@rc-ex/core`` 1.8.6, ``dist/cjs``) needs, and where it
meets the core:

- HTTP first: ``POST /restapi/oauth/wstoken`` with the REST access token as a bearer
  (``index.js:240``) is checked by the core's :class:`~squall.simulator.auth.AuthPolicy` and
  answered with the socket ``uri``, a WebSocket access token (WSAT) and ``expires_in``;
- the socket ``uri?access_token=WSAT[&wsc=TOKEN]`` (``index.js:245-247``): the WSAT maps back
  to the access token, so the connection authenticates at once as
  :class:`~squall.simulator.ops.Authenticate` with the ``wsc`` token as the recovery token.
  A WSAT that is missing, unknown or expired, or a ``wsc`` never issued, is answered with an
  ``Error`` frame and a close (``index.js:287-290`` turns it into ``ConnectionException``);
- the first frame is ``ConnectionDetails``; every frame out carries ``wsc {token, sequence}``,
  stamped as it leaves, counted per session across connections (``index.js:278-284``);
- ``ClientRequest`` to ``/restapi/v1.0/subscription[/{id}]`` is a subscription (one per
  session; its event filters are core topics, matched exactly); any other ``ClientRequest`` is
  an RPC named ``"VERB /path"``, scripted with ``on_rpc`` (``rest.js``);
- ``Heartbeat`` is :class:`~squall.simulator.ops.Ping` (``index.js:206-224``).

docs/dialects/ringcentral.md has the mapping tables, the options and the reasons.
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from http import HTTPStatus
from typing import Any, TypeGuard
from urllib.parse import parse_qs, urlsplit

from aiohttp import web

from squall.protocol import ringcentral as wire
from squall.protocol.errors import (
    InvalidMessage,
    MalformedFrame,
    UnknownMessageType,
    UnsupportedFrame,
)

from .. import events as ev
from .. import ops
from ..auth import AuthRejected, Principal
from ..core import Session, SessionState
from ..dialect_http import recorded
from ..seam import CloseReason, Closing, Dialect, Frame, Handshake, Inbound, Route, WireSession
from ..transcript import REDACTED, redact_text
from . import RFC6455_CLOSE_CODES

WSTOKEN = "/restapi/oauth/wstoken"
SUBSCRIPTION = "/restapi/v1.0/subscription"

#: The SDK reads no close code (no ``close`` listener but ``debugMode``'s, ``utils.js:188``):
#: any close makes ``check`` reconnect (``index.js:123``). These are for people and raw clients.
CLOSE_CODES: dict[CloseReason, int] = RFC6455_CLOSE_CODES

#: the ``Error`` frame sent before a close, when the close is the client's fault or ours
CLOSE_ERRORS: dict[CloseReason, tuple[int, str]] = {
    CloseReason.POLICY: (403, "WSG-403"),
    CloseReason.BAD_FRAME: (400, "WSG-400"),
    CloseReason.UNSUPPORTED_DATA: (400, "WSG-400"),
    CloseReason.TOO_BIG: (413, "WSG-413"),
    CloseReason.INTERNAL_ERROR: (500, "WSG-500"),
}

#: ``recoveryErrorCode`` per core recovery failure. WSG-1003 and WSG-1005 are what the real
#: gateway answered (github.com/tylerlong/rc-ws-recover-test, experiments 3 and 1).
RECOVERY_ERROR_CODES = {"unknown": "WSG-1003", "expired": "WSG-1005"}

#: REST errors of the wstoken and subscription endpoints, per AuthPolicy reason
AUTH_ERRORS: dict[str, tuple[int, str]] = {
    "missing_credentials": (401, "AGW-401"),
    "invalid_token": (401, "TokenInvalid"),
    "invalid_jwt": (401, "TokenInvalid"),
    "expired_token": (401, "TokenExpired"),
    "forbidden": (403, "InsufficientPermissions"),
}

#: error statuses both Python and the SDK's ``http-status-codes`` 2.3.0 know (``rest.js:140``
#: calls ``getReasonPhrase``, which throws on any other)
SDK_ERROR_STATUSES = frozenset(s.value for s in HTTPStatus if s.value >= 400) - {425, 506, 508, 510}

#: CallFailed codes of the core's RPC table (rpc.py) and the status they answer with
CALL_STATUSES = {"method_not_found": 404, "handler_failed": 500}

_REDACTED_JSON = wire.dumps(REDACTED)


def rest_error(code: str, message: str) -> dict[str, Any]:
    """RingCentral's REST error body: ``errorCode``, ``message`` and the ``errors`` list."""
    return {
        "errorCode": code,
        "message": message,
        "errors": [{"errorCode": code, "message": message}],
    }


def call_error(event: ev.CallFailed) -> tuple[int, dict[str, Any]]:
    """The status and body answering a failed REST-over-WebSocket call.

    Status: ``data["status"]``, else a numeric ``code`` (``"403"``), else 404 for an
    unscripted route, 500 for a failing handler, 400 for anything else: only statuses the
    SDK can name. ``errorCode`` is ``data["errorCode"]`` or the code; the other keys of
    ``data`` join the body (``errors`` replaces the list).
    """
    data = event.data if isinstance(event.data, dict) else {}
    code = event.code
    given = data.get("status")
    if _error_status(given):
        status = given
    elif code.isascii() and code.isdigit() and _error_status(int(code)):
        status = int(code)
    else:
        status = CALL_STATUSES.get(code, 400)
    error_code = data.get("errorCode")
    if not isinstance(error_code, str):
        error_code = event.code
    body = rest_error(error_code, event.message or HTTPStatus(status).phrase)
    body.update((k, v) for k, v in data.items() if k not in ("status", "errorCode", "message"))
    return status, body


def _error_status(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value in SDK_ERROR_STATUSES


@dataclass(frozen=True, slots=True)
class _Grant:
    """One issued WSAT: the access token it stands for, until when (protocol seconds)."""

    token: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class _Refusal:
    """Why a handshake is refused: the ``Error`` frame's status, code, message, and the close."""

    status: int
    error_code: str
    message: str
    reason: str


@dataclass(eq=False, slots=True)
class _Subscription:
    id: str
    filters: tuple[str, ...]
    created: str
    expires_at: float


@dataclass(eq=False, slots=True)
class _SessionState:
    """What the dialect keeps per core session, across its connections."""

    session: str
    user: str
    token: str
    token_json: str
    created: str
    sequence: int = 0
    sub: _Subscription | None = None
    subscriber: str = ""  # the notification body's per-session part (wire.subscriber)

    def stamp(self) -> tuple[wire.Wsc, wire.Wsc]:
        """The next ``wsc``, and the same with the token masked for the transcript."""
        self.sequence += 1
        return wire.Wsc(self.token, self.sequence), wire.Wsc(REDACTED, self.sequence)


@dataclass(frozen=True, slots=True)
class _Answer:
    """The ref of a Subscribe/Unsubscribe the dialect answers with a ClientRequest response."""

    message_id: str
    status: int
    body: Any = None


#: the ref of an operation whose event shows nothing (an Unsubscribe of replaced filters)
_QUIET = object()


class RingCentralWire:
    """One connection speaking the WSG protocol. No I/O, no clock."""

    __slots__ = ("_rc", "dialect", "refusal", "state")

    def __init__(self, dialect: RingCentralDialect, refusal: _Refusal | None = None) -> None:
        # WireSession.dialect is a settable Dialect, so the concrete type is kept beside it.
        self.dialect: Dialect = dialect
        self._rc = dialect
        self.refusal = refusal
        self.state: _SessionState | None = None

    def greet(self) -> Sequence[Frame]:
        return ()  # ConnectionDetails answers the core's Authenticated

    # --- in ------------------------------------------------------------------------------------

    def receive(self, data: str | bytes) -> Inbound:
        shown = None
        if isinstance(data, str):
            masked = redact_text(data)
            shown = masked if masked != data else None
        try:
            msg = wire.decode_client(data)
        except UnsupportedFrame as exc:
            bad = ops.BadInput(str(exc), exc.code, fatal=CloseReason.UNSUPPORTED_DATA)
            return Inbound(None, (bad,))
        except MalformedFrame as exc:
            return Inbound(
                None, (ops.BadInput(str(exc), exc.code, fatal=CloseReason.BAD_FRAME),), shown
            )
        except (UnknownMessageType, InvalidMessage) as exc:
            return Inbound(
                exc.type or None, (ops.BadInput(str(exc), exc.code, ref=exc.ref),), shown
            )
        if isinstance(msg, wire.Heartbeat):
            return Inbound("Heartbeat", (ops.Ping(msg.message_id),), shown)
        return self._request(msg, shown)

    def _request(self, req: wire.ClientRequest, shown: str | None) -> Inbound:
        split = urlsplit(req.path)
        path = split.path
        if self.state is not None and (path == SUBSCRIPTION or path.startswith(SUBSCRIPTION + "/")):
            answered = self._subscription(req, path[len(SUBSCRIPTION) :].strip("/"), shown)
            if answered is not None:
                return answered
        query = dict(req.query or {})
        for key, values in parse_qs(split.query).items():
            query.setdefault(key, values[0] if len(values) == 1 else values)
        params = req.body if req.body is not None else (query or None)
        call = ops.Call(req.message_id, f"{req.method} {path}", params)
        return Inbound("ClientRequest", (call,), shown)

    def _subscription(
        self, req: wire.ClientRequest, rest: str, shown: str | None
    ) -> Inbound | None:
        """The subscription API over the socket; None hands the request to ``on_rpc``."""
        state = self.state
        assert state is not None
        dialect = self._rc
        mid = req.message_id
        sub_id, _, action = rest.partition("/")
        if not sub_id:
            if req.method == "GET":
                records = [dialect.info(state.sub)] if state.sub else []
                return self._local(mid, 200, {"records": records}, shown)
            if req.method != "POST":
                return None
            filters = dialect.filters(req.body, required=True)
            if isinstance(filters, str):
                return self._local(mid, 400, rest_error("CMN-101", filters), shown)
            return self._apply(mid, state, filters, None, shown)
        if state.sub is None or state.sub.id != sub_id:
            if req.method not in ("GET", "PUT", "DELETE", "POST"):
                return None
            message = f"Resource for parameter [subscriptionId] is not found: {sub_id!r}"
            return self._local(mid, 404, rest_error("CMN-102", message), shown)
        if action == "renew" and req.method == "POST":
            dialect.renew(state.sub)
            return self._local(mid, 200, dialect.info(state.sub), shown)
        if action:
            return None
        if req.method == "GET":
            return self._local(mid, 200, dialect.info(state.sub), shown)
        if req.method == "PUT":
            filters = dialect.filters(req.body, required=False)
            if isinstance(filters, str):
                return self._local(mid, 400, rest_error("CMN-101", filters), shown)
            return self._apply(mid, state, filters or state.sub.filters, state.sub.id, shown)
        if req.method == "DELETE":
            gone = dialect.drop_subscription(state)
            return Inbound("ClientRequest", (ops.Unsubscribe(gone, _Answer(mid, 204)),), shown)
        return None

    def _apply(
        self,
        mid: str,
        state: _SessionState,
        filters: tuple[str, ...],
        sub_id: str | None,
        shown: str | None,
    ) -> Inbound:
        gone, sub = self._rc.set_subscription(state, filters, sub_id)
        answer = _Answer(mid, 200, self._rc.info(sub))
        items: list[ops.Operation] = [ops.Unsubscribe(gone, _QUIET)] if gone else []
        items.append(ops.Subscribe(filters, answer))
        return Inbound("ClientRequest", items, shown)

    def _local(self, mid: str, status: int, body: Any, shown: str | None) -> Inbound:
        """A request the dialect answers itself (nothing in the core changes)."""
        return Inbound("ClientRequest", (), shown, (self._response(mid, status, body),))

    # --- out -----------------------------------------------------------------------------------

    def _frame(self, msg: Any) -> Frame:
        """Stamp ``wsc`` (when there is a session), encode, and keep a redacted copy."""
        state = self.state
        if state is None:
            return Frame(msg.type, wire.encode(msg))
        wsc, masked = state.stamp()
        data = wire.encode(replace(msg, wsc=wsc))
        return Frame(msg.type, data, wire.encode(replace(msg, wsc=masked)))

    def _response(self, mid: str, status: int, body: Any = None) -> Frame:
        return self._frame(wire.ClientResponse(mid, status, body))

    def _error(self, status: int, code: str, message: str, mid: str | None = None) -> Frame:
        return self._frame(wire.WsgError(status, code, message, mid or self._rc.message_id()))

    def encode(self, event: ev.Event) -> Sequence[Frame]:
        match event:
            case ev.Replied():
                return (self._response(event.ref, 200, event.result),)
            case ev.Subscribed() | ev.Unsubscribed():
                ref = event.ref
                if isinstance(ref, _Answer):
                    return (self._response(ref.message_id, ref.status, ref.body),)
                return ()
            case ev.Pong():
                return (self._frame(wire.Heartbeat(event.ref, 200, {})),)
            case ev.CallFailed():
                status, body = call_error(event)
                return (self._response(event.ref, status, body),)
            case ev.Rejected():
                ref = event.ref if isinstance(event.ref, str) else None
                return (self._error(400, "WSG-400", event.message, ref),)
            case ev.Authenticated():
                return (self._connection_details(event),)
            case ev.AuthFailed():
                refusal = self.refusal
                if refusal is not None:
                    return (self._error(refusal.status, refusal.error_code, refusal.message),)
                return (self._error(401, "WSG-401", "Unauthorized"),)
        # ServerPing: the SDK answers no server heartbeat (index.js has no handler for one);
        # drains and rooms do not exist on this wire (capabilities).
        return ()

    def _connection_details(self, event: ev.Authenticated) -> Frame:
        self.state = state = self._rc.session_state(event)
        recovery_state: wire.RecoveryState | None = None
        error_code = None
        rec = event.recovery
        if rec is not None:
            # An overflow still resumes the session (subscription kept, the newest
            # recovery_buffer_size replayed): RingCentral calls that a success and drops the
            # oldest (seed 001, "autoRecoverSuccess"). The transcript's recovery record keeps
            # the count lost.
            if rec.recovered or rec.reason == "overflow":
                recovery_state = "Successful"
            else:
                recovery_state = "Failed"
                error_code = RECOVERY_ERROR_CODES.get(rec.reason or "", "WSG-1005")
        opts = self._rc.options
        return self._frame(
            wire.ConnectionDetails(
                message_id=self._rc.message_id(),
                wsc=None,
                creation_time=state.created,
                max_connections_per_session=opts["max_connections_per_session"],
                recovery_buffer_size=event.recovery_buffer_size,
                recovery_timeout=event.recovery_window,
                idle_timeout=opts["idle_timeout"],
                absolute_timeout=opts["absolute_timeout"],
                max_active_requests=opts["max_active_requests"],
                recovery_state=recovery_state,
                recovery_error_code=error_code,
            )
        )

    def deliver(self, event: ev.Delivered) -> Frame:
        state = self.state
        assert state is not None, "a notification before ConnectionDetails"
        pub = event.publication
        template = pub.cache.get("ringcentral")
        if template is None:
            # Encoded once per publication; each session splices in its wsc and subscription.
            template = pub.cache["ringcentral"] = self._rc.template(pub)
        state.sequence += 1
        seq = state.sequence
        part = state.subscriber
        return Frame(
            "ServerNotification",
            template.render(state.token_json, seq, part),
            template.render(_REDACTED_JSON, seq, part),
        )

    def close(self, reason: CloseReason, detail: str) -> Closing:
        if reason is CloseReason.AUTH_FAILED and self.refusal is not None:
            detail = self.refusal.reason
        error = CLOSE_ERRORS.get(reason)
        frames = (self._error(error[0], error[1], detail),) if error else ()
        return Closing(frames, CLOSE_CODES[reason], detail)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header[:7].lower() == "bearer " else ""
    return token or None


class RingCentralDialect(Dialect):
    """The WSG and the two REST endpoints the SDK uses beside it (wstoken, subscription)."""

    name = "ringcentral"
    # No drain: @rc-ex/ws has no server-requested reconnect (it reconnects only when its
    # socket is neither OPEN nor CONNECTING, index.js:123). No rooms. No server_ping: the
    # SDK answers no server Heartbeat.
    capabilities = frozenset({"pubsub", "rpc", "recovery"})
    defaults = {
        "expires_in": 600,  # WSAT lifetime, protocol seconds (the SDK renews at 80 %)
        "uri": None,  # the socket URL wstoken hands out; None: the first endpoint + path
        "path": "/ws",
        "max_connections_per_session": 5,  # ConnectionDetails fields: reported, not enforced
        "idle_timeout": 900,
        "absolute_timeout": 86400,
        "max_active_requests": 10,
        "subscription_expires_in": 900,  # reported in the subscription, not enforced
    }

    def __init__(self, core: Any, **options: Any) -> None:
        super().__init__(core, **options)
        self._check_options()
        self._grants: dict[str, _Grant] = {}
        self._grants_prune_at = 256
        self._states: dict[str, _SessionState] = {}
        self._states_prune_at = 256
        # the wsc tokens handed out, oldest first: others are "malformed" (see _prune_issued)
        self._issued: dict[str, None] = {}
        self._issued_prune_at = 256
        self._sub_owner: dict[str, str] = {}  # subscription id -> session id
        self._sub_ids = itertools.count(1)
        self._ids = itertools.count(1)
        self._id_base = secrets.randbelow(10**18) + 10**18
        self._epoch: float | None = None

    def _check_options(self) -> None:
        opts = self.options
        for key in ("expires_in", "idle_timeout", "absolute_timeout", "subscription_expires_in"):
            value = opts[key]
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"ringcentral option {key} must be a number > 0, got {value!r}")
        for key in ("max_connections_per_session", "max_active_requests"):
            value = opts[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ringcentral option {key} must be an integer >= 1, got {value!r}")
        if opts["uri"] is not None and not isinstance(opts["uri"], str):
            raise ValueError(f"ringcentral option uri must be a string, got {opts['uri']!r}")
        if not isinstance(opts["path"], str) or not opts["path"].startswith("/"):
            raise ValueError(f"ringcentral option path must start with '/', got {opts['path']!r}")

    # --- time and ids --------------------------------------------------------------------------

    def wall(self, at: float | None = None) -> float:
        """Epoch seconds for protocol time ``at`` (now by default): wall time that runs at the
        clock's rate, so ``expirationTime - creationTime`` is in protocol seconds."""
        now = self.core.clock.now()
        if self._epoch is None:
            self._epoch = time.time() - now
        return self._epoch + (now if at is None else at)

    def message_id(self) -> str:
        """A server-chosen messageId: digits, like the gateway's, never like the SDK's hyperids."""
        return str(self._id_base + next(self._ids))

    def template(self, pub: ev.Publication) -> wire.NotificationTemplate:
        mid = self.message_id()
        return wire.NotificationTemplate.build(
            mid, pub.topic, wire.iso8601(self.wall()), pub.payload
        )

    # --- handshake -----------------------------------------------------------------------------

    def open(
        self, link_id: str, handshake: Handshake
    ) -> tuple[WireSession, ops.Authenticate | None]:
        query = parse_qs(urlsplit(handshake.path).query)
        wsat = (query.get("access_token") or [""])[0]
        wsc = (query.get("wsc") or [""])[0] or None
        refusal = None
        grant = self._grants.get(wsat)
        if not wsat:
            refusal = _Refusal(401, "WSG-401", "Unauthorized", "no access_token in the URL")
        elif grant is None:
            refusal = _Refusal(401, "WSG-401", "Unauthorized", "unknown access_token")
        elif self.core.clock.now() >= grant.expires_at:
            refusal = _Refusal(401, "WSG-401", "Unauthorized", "access_token expired")
        elif wsc is not None and wsc not in self._issued:
            # The real gateway answers a made-up wsc so, and closes (rc-ws-recover-test, exp. 6).
            message = "Malformed WebSocket session context token"
            refusal = _Refusal(400, "WSG-400", message, "wsc token was never issued")
        if refusal is not None or grant is None:
            # a refused WSAT is the core's AuthFailed (docs/dialects/ringcentral.md, "seam")
            why = refusal.reason if refusal is not None else "refused at the handshake"
            return RingCentralWire(self, refusal), ops.Authenticate(refused=why, recovery_token=wsc)
        return RingCentralWire(self), ops.Authenticate(grant.token, recovery_token=wsc)

    def reached_through(self, url: str) -> None:
        if self.options["uri"] is None:  # an explicit uri option stays what it is
            self.options["uri"] = url.rstrip("/") + str(self.options["path"])

    def ws_uri(self) -> str | None:
        uri: str | None = self.options["uri"]
        if uri is not None:
            return uri
        if not self.urls:
            return None
        return self.urls[0].rstrip("/") + str(self.options["path"])

    # --- per-session state ---------------------------------------------------------------------

    def session_state(self, event: ev.Authenticated) -> _SessionState:
        """The session's state, kept across its connections (its wsc sequence goes on)."""
        state = self._states.get(event.session)
        if state is None:
            if len(self._states) >= self._states_prune_at:
                self._prune_states()
            token = event.recovery_token
            state = self._states[event.session] = _SessionState(
                session=event.session,
                user=event.user,
                token=token,
                token_json=wire.dumps(token),
                created=wire.iso8601(self.wall()),
            )
            state.subscriber = wire.subscriber(None, event.user)
            self._issued[token] = None
            if len(self._issued) >= self._issued_prune_at:
                self._prune_issued()
        return state

    def _prune_issued(self) -> None:
        """Forget the oldest wsc tokens of sessions that are gone, beyond as many as the core
        remembers expired sessions (``Config.expired_tokens_kept``): a wsc older than those
        could only fail its recovery as unknown, so it is as malformed as a made-up one, and
        a long run does not keep every token it ever issued."""
        live = self.core.by_token
        gone = [t for t in self._issued if t not in live]
        for token in gone[: max(0, len(gone) - self.core.config.expired_tokens_kept)]:
            del self._issued[token]
        self._issued_prune_at = max(256, 2 * len(self._issued))

    def _prune_states(self) -> None:
        """Forget sessions the core has forgotten (expired); amortised over new sessions."""
        live = self.core.sessions
        for sid in [sid for sid in self._states if sid not in live]:
            state = self._states.pop(sid)
            if state.sub is not None:
                self._sub_owner.pop(state.sub.id, None)
        self._states_prune_at = max(256, 2 * len(self._states))

    def filters(self, body: Any, *, required: bool) -> tuple[str, ...] | str:
        """The event filters of a subscription request, or the sentence saying what is wrong."""
        if not isinstance(body, dict):
            return "the request body must be an object with eventFilters and deliveryMode"
        mode = body.get("deliveryMode")
        if mode is not None or required:
            transport = mode.get("transportType") if isinstance(mode, dict) else None
            if transport != "WebSocket":
                return (
                    "Parameter [deliveryMode.transportType] value is invalid: this gateway "
                    f"delivers over WebSocket only, got {transport!r}"
                )
        raw = body.get("eventFilters")
        if raw is None and not required:
            return ()
        if not isinstance(raw, list) or not raw:
            return "Parameter [eventFilters] value is invalid: expected a non-empty list"
        if not all(isinstance(f, str) and f for f in raw):
            return "Parameter [eventFilters] value is invalid: every filter must be a string"
        return tuple(dict.fromkeys(raw))

    def set_subscription(
        self, state: _SessionState, filters: tuple[str, ...], sub_id: str | None
    ) -> tuple[tuple[str, ...], _Subscription]:
        """Give the session this subscription (a new id unless ``sub_id``); returns the
        filters no longer wanted, for the caller to unsubscribe in the core."""
        old = state.sub
        gone = tuple(f for f in old.filters if f not in filters) if old else ()
        if old is not None and old.id != sub_id:
            self._sub_owner.pop(old.id, None)
        now = self.wall()
        if sub_id is None or old is None:
            sub = _Subscription(f"SUB-{next(self._sub_ids)}", filters, wire.iso8601(now), 0.0)
        else:
            sub = old
            sub.filters = filters
        self.renew(sub)
        state.sub = sub
        state.subscriber = wire.subscriber(sub.id, state.user)
        self._sub_owner[sub.id] = state.session
        return gone, sub

    def drop_subscription(self, state: _SessionState) -> tuple[str, ...]:
        sub = state.sub
        if sub is None:
            return ()
        self._sub_owner.pop(sub.id, None)
        state.sub = None
        state.subscriber = wire.subscriber(None, state.user)
        return sub.filters

    def renew(self, sub: _Subscription) -> None:
        sub.expires_at = self.core.clock.now() + self.options["subscription_expires_in"]

    def info(self, sub: _Subscription) -> dict[str, Any]:
        """The subscription resource, as POST / PUT / GET answer it."""
        left = max(0.0, sub.expires_at - self.core.clock.now())
        return {
            "id": sub.id,
            "creationTime": sub.created,
            "status": "Active",
            "eventFilters": list(sub.filters),
            "expirationTime": wire.iso8601(self.wall(sub.expires_at)),
            "expiresIn": round(left),  # whole seconds, as the REST API has it
            "deliveryMode": {"transportType": "WebSocket", "encryption": False},
        }

    # --- HTTP ----------------------------------------------------------------------------------

    def routes(self) -> Sequence[Route]:
        item = SUBSCRIPTION + "/{id}"
        return tuple(
            Route(method, path, recorded(self, handler))
            for method, path, handler in (
                ("POST", WSTOKEN, self._wstoken),
                ("POST", SUBSCRIPTION, self._http_create),
                ("GET", SUBSCRIPTION, self._http_list),
                ("GET", item, self._http_get),
                ("PUT", item, self._http_update),
                ("DELETE", item, self._http_delete),
                ("POST", item + "/renew", self._http_renew),
            )
        )

    def _principal(self, request: web.Request) -> Principal | web.Response:
        """The bearer's principal, by the core's AuthPolicy (scripted failures apply)."""
        try:
            principal: Principal = self.core.auth.check(_bearer(request), None)
            return principal
        except AuthRejected as exc:
            status, code = AUTH_ERRORS.get(exc.reason, (401, "TokenInvalid"))
            message = exc.message
            if exc.reason == "missing_credentials":
                message = "Authorization header is not specified"
            return web.json_response(rest_error(code, message), status=status)

    async def _wstoken(self, request: web.Request) -> web.StreamResponse:
        principal = self._principal(request)
        if isinstance(principal, web.Response):
            return principal
        uri = self.ws_uri()
        if uri is None:
            body = rest_error("CMN-211", "the simulator is not listening on any WebSocket port")
            return web.json_response(body, status=503)
        token = _bearer(request)
        assert token is not None  # the AuthPolicy accepted it
        if len(self._grants) >= self._grants_prune_at:
            now = self.core.clock.now()
            self._grants = {k: g for k, g in self._grants.items() if g.expires_at > now}
            self._grants_prune_at = max(256, 2 * len(self._grants))
        wsat = secrets.token_urlsafe(32)
        self.core.transcript.add_secret(wsat)  # masked wherever the transcript shows it
        expires_in = self.options["expires_in"]
        self._grants[wsat] = _Grant(token, self.core.clock.now() + expires_in)
        body = {"uri": uri, "ws_access_token": wsat, "expires_in": wire.number(expires_in)}
        return web.json_response(body)

    def _user_state(self, request: web.Request) -> tuple[Session, _SessionState] | web.Response:
        """The bearer's newest open session on this dialect: where HTTP subscriptions go."""
        principal = self._principal(request)
        if isinstance(principal, web.Response):
            return principal
        found = None
        for session in self.core.sessions.values():
            if (
                session.user == principal.user
                and session.state is SessionState.OPEN
                and session.id in self._states
            ):
                found = session
        if found is None:
            message = f"no open WebSocket session for {principal.user!r}: connect first"
            return web.json_response(rest_error("WSG-409", message), status=409)
        return found, self._states[found.id]

    async def _body(self, request: web.Request) -> Any:
        try:
            return await request.json()
        except ValueError:
            return None

    async def _http_create(self, request: web.Request) -> web.StreamResponse:
        found = self._user_state(request)
        if isinstance(found, web.Response):
            return found
        session, state = found
        filters = self.filters(await self._body(request), required=True)
        if isinstance(filters, str):
            return web.json_response(rest_error("CMN-101", filters), status=400)
        return self._http_apply(session, state, filters, None)

    def _http_apply(
        self, session: Session, state: _SessionState, filters: tuple[str, ...], sub_id: str | None
    ) -> web.Response:
        gone, sub = self.set_subscription(state, filters, sub_id)
        self.core.unsubscribe(session, gone)
        self.core.subscribe(session, filters)
        return web.json_response(self.info(sub))

    async def _http_list(self, request: web.Request) -> web.StreamResponse:
        found = self._user_state(request)
        if isinstance(found, web.Response):
            return found
        state = found[1]
        return web.json_response({"records": [self.info(state.sub)] if state.sub else []})

    def _http_item(self, request: web.Request) -> tuple[Session, _SessionState] | web.Response:
        found = self._user_state(request)
        if isinstance(found, web.Response):
            return found
        sub_id = request.match_info["id"]
        state = found[1]
        if state.sub is None or state.sub.id != sub_id:
            message = f"Resource for parameter [subscriptionId] is not found: {sub_id!r}"
            return web.json_response(rest_error("CMN-102", message), status=404)
        return found

    async def _http_get(self, request: web.Request) -> web.StreamResponse:
        found = self._http_item(request)
        if isinstance(found, web.Response):
            return found
        assert found[1].sub is not None
        return web.json_response(self.info(found[1].sub))

    async def _http_update(self, request: web.Request) -> web.StreamResponse:
        found = self._http_item(request)
        if isinstance(found, web.Response):
            return found
        session, state = found
        assert state.sub is not None
        filters = self.filters(await self._body(request), required=False)
        if isinstance(filters, str):
            return web.json_response(rest_error("CMN-101", filters), status=400)
        return self._http_apply(session, state, filters or state.sub.filters, state.sub.id)

    async def _http_delete(self, request: web.Request) -> web.StreamResponse:
        found = self._http_item(request)
        if isinstance(found, web.Response):
            return found
        session, state = found
        self.core.unsubscribe(session, self.drop_subscription(state))
        return web.Response(status=204)

    async def _http_renew(self, request: web.Request) -> web.StreamResponse:
        found = self._http_item(request)
        if isinstance(found, web.Response):
            return found
        sub = found[1].sub
        assert sub is not None
        self.renew(sub)
        return web.json_response(self.info(sub))
