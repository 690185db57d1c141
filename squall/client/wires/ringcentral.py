"""The reference client on RingCentral's WebSocket gateway (``@rc-ex/ws`` 1.4.2).

The behaviour core (``squall/client/core.py``) speaks reference messages; this wire turns
them into ``[meta, body]`` frames and back (codec: :mod:`squall.protocol.ringcentral`).
What maps to what, and the decisions where the two differ (docs/client.md, "Dialect modes"):

- **prelude**: before every socket, ``POST {server}/restapi/oauth/wstoken`` with the token
  as a bearer; the socket URL gets ``?access_token={ws_access_token}`` and, when
  recovering, ``&wsc={token}``. The socket goes to the client's own URL (the core's
  round-robin list: failover, a proxy in front), not to the answer's ``uri`` as the SDK
  does, unless ``follow_uri=True``. A 401/403 is final (``auth_failed``, no reconnect); no
  answer, a 5xx or a bad body is retried. The WSAT is fetched for every connect, not
  cached until 80 % of ``expires_in`` as the SDK does: the wire has no protocol clock (the
  core's clock is injected into the core, and a wall-clock cache would outlive WSATs under
  a compressed clock), and one POST per connect is cheap.
- **ConnectionDetails** -> ``authenticated`` (``recovery_token`` = ``wsc.token``, the
  recovery buffer and window from the body; ``heartbeat`` is the SDK's 60 s), and, when
  the core presented a token, ``recovery``: ``Successful`` -> recovered, with the
  subscription's filters as the server's topics; ``Failed`` -> not recovered, reason
  ``expired`` (``unknown`` for WSG-1003, another user's token). RingCentral does not say
  how many were replayed or lost, so ``replayed`` and ``lost`` are 0: the replayed
  notifications simply arrive after it. A ``wsc`` the gateway refused as malformed (an
  ``Error`` 400 before ``ConnectionDetails``) is not presented again: the next connect is
  plain and its ``recovery`` says ``unknown``.
- **sessions**: a recovered connection keeps the session; any other is a new one
  (``rc-{n}``; sid ``c{n}`` per connection).
- ``Error`` 401 before ``ConnectionDetails`` -> ``auth_failed`` (final); any other
  ``Error`` answers the request with its ``messageId``, or the session (``error``).
- **subscribe / unsubscribe**: one subscription per session, as the SDK keeps:
  ``POST /restapi/v1.0/subscription`` with every wanted filter when there is none,
  ``PUT /restapi/v1.0/subscription/{id}`` with the new set when there is, ``DELETE`` when
  the last filter goes. A topic is an event filter, matched exactly.
- **notifications**: only those of the current subscription (as ``subscription.js``).
  ``seq`` is a per-session counter of notifications, not ``wsc.sequence`` (which counts
  every frame: responses and heartbeats too, so it would look like gaps). It survives a
  recovered reconnect and restarts with a new session, so the core's duplicate and gap
  checks stay right; a notification whose ``uuid`` was already seen gets its first
  ``seq`` back, so the core reports it as a duplicate.
- **calls**: a method ``"VERB /path"`` is a ``ClientRequest`` with ``params`` as its body;
  2xx -> ``result`` (the response body), anything else -> ``error`` with ``code`` the
  status (``"404"``) and ``message`` from the body.
- **ping** -> ``Heartbeat``; its answer -> ``pong``.
- **not on this wire**: drains and rooms, answered locally with an ``error`` (code
  ``unsupported``).
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiohttp

from squall.protocol import messages as m
from squall.protocol import ringcentral as wire
from squall.protocol.errors import InvalidMessage

from ..wire import Opening, Outgoing, PreludeFailed, with_query

__all__ = ["RingCentralClientWire"]

WSTOKEN = "/restapi/oauth/wstoken"
SUBSCRIPTION = "/restapi/v1.0/subscription"

#: seconds between heartbeats: the SDK's ``pingServerInterval`` unless the policy sets one
HEARTBEAT = 60.0
#: real seconds the wstoken POST may take in all
PRELUDE_TIMEOUT = 10.0
#: notification uuids remembered per session, to spot a replayed one
SEEN_UUIDS = 1024
#: the ``X-User-Agent`` of every ClientRequest (the SDK sends its own name there)
USER_AGENT = "squall-reference-client"

UNSUPPORTED = "unsupported"

#: a REST error body's ``errorCode`` on a wstoken 401 -> the reference reason
TOKEN_ERRORS: dict[str, m.AuthFailureReason] = {
    "TokenExpired": "expired_token",
    "AGW-401": "missing_credentials",
}


@dataclass(frozen=True, slots=True)
class _Pending:
    """A messageId's meaning: what its answer answers (``ref`` is the core's id)."""

    kind: str  # call | quiet | ping | subscribe | unsubscribe
    ref: Any = None
    topics: tuple[str, ...] = ()
    filters: tuple[str, ...] = ()  # the subscription's filters once this request succeeds


class RingCentralClientWire:
    """RingCentral WSG frames for the reference client's core.

    Options: ``server`` (the HTTP base of the REST prelude; by default the socket URL's
    origin as ``http(s)://``), ``follow_uri`` (False: the socket goes to the client's own
    URL, so failover and a proxy in front work; True: where wstoken's ``uri`` says, as the
    SDK does), ``user`` (the name the core reports, ``"~"``: RingCentral's "the current
    extension"), ``heartbeat`` (60 s), ``prelude_timeout`` (10 real seconds).
    """

    name = "ringcentral"

    def __init__(
        self,
        *,
        server: str | None = None,
        follow_uri: bool = False,
        user: str = "~",
        heartbeat: float = HEARTBEAT,
        prelude_timeout: float = PRELUDE_TIMEOUT,
    ) -> None:
        self.server = _http_origin(server) if server else None
        self.follow_uri = follow_uri
        self.user = user
        self.heartbeat = heartbeat
        self.prelude_timeout = prelude_timeout
        self._base = uuid.uuid4().hex[:12]
        self._ids = itertools.count(1)
        self._pending: dict[str, _Pending] = {}
        self._sessions = 0
        self._connections = 0
        self._presented: str | None = None  # the recovery token the core gave this connection
        self._refused_wsc: str | None = None  # a wsc the gateway called malformed
        self._details = False  # ConnectionDetails seen on this connection
        # per session, across its connections:
        self._sub_id: str | None = None
        self._filters: tuple[str, ...] = ()  # the subscription's filters, as last answered
        self._asked: tuple[str, ...] = ()  # ... as last requested (requests compose on it)
        self._seq = 0
        self._seen: OrderedDict[str, int] = OrderedDict()

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
        """The socket URL before the prelude: only ``wsc`` (the prelude adds the WSAT)."""
        self._pending.clear()
        self._details = False
        self._presented = recovery_token
        query: dict[str, str] = {}
        if recovery_token and recovery_token != self._refused_wsc:
            query["wsc"] = recovery_token
        return Opening(with_query(url, query))

    async def prelude(self, opening: Opening, token: str | None) -> Opening:
        """``POST /restapi/oauth/wstoken``: where the socket goes and its access token."""
        base, wsc = _split_wsc(opening.url)
        server = self.server or _http_origin(base)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        timeout = aiohttp.ClientTimeout(total=self.prelude_timeout)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as http,
                http.post(server + WSTOKEN, headers=headers, ssl=opening.tls or True) as resp,
            ):
                status = resp.status
                text = await resp.text()
        except aiohttp.ClientConnectorCertificateError as exc:  # final: the same cert again
            error = exc.certificate_error
            reason = getattr(error, "verify_message", None) or str(error)
            raise PreludeFailed(
                f"TLS certificate verification failed for {server}{WSTOKEN}: {reason}", final=True
            ) from error
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise PreludeFailed(f"POST {WSTOKEN} failed: {exc!r}") from None
        body = _json(text)
        if status in (401, 403):
            reason, message = _token_error(status, body)
            raise PreludeFailed(
                f"POST {WSTOKEN} answered {status}: {message}",
                final=True,
                answers=(m.AuthFailed(reason=reason, message=f"HTTP {status}: {message}"),),
            )
        if status != 200 or not isinstance(body, dict):
            raise PreludeFailed(f"POST {WSTOKEN} answered {status}: {_error_message(body)}")
        wsat, uri = body.get("ws_access_token"), body.get("uri")
        if not isinstance(wsat, str) or not wsat:
            raise PreludeFailed(f"POST {WSTOKEN} answered no ws_access_token")
        target = uri if self.follow_uri and isinstance(uri, str) and uri else base
        query = {"access_token": wsat}
        if wsc is not None:
            query["wsc"] = wsc
        return Opening(with_query(target, query), dict(opening.headers))

    # --- out ----------------------------------------------------------------------------------

    def _message_id(self) -> str:
        return f"{self._base}-{next(self._ids)}"

    def _request(self, method: str, path: str, body: Any, pending: _Pending) -> str:
        mid = self._message_id()
        self._pending[mid] = pending
        headers = {"X-User-Agent": USER_AGENT}
        return wire.encode(wire.ClientRequest(mid, method, path, headers, None, body))

    def encode(self, msg: m.Message) -> Outgoing:
        match msg:
            case m.Call():
                return self._call(msg)
            case m.Ping():
                mid = self._message_id()
                self._pending[mid] = _Pending("ping", msg.id)
                return Outgoing((wire.encode(wire.Heartbeat(mid)),))
            case m.Subscribe():
                return self._subscribe(msg)
            case m.Unsubscribe():
                return self._unsubscribe(msg)
            case m.Auth() | m.Pong():
                return Outgoing()  # credentials are in the URL; no server heartbeat to answer
        return Outgoing(answers=(_unsupported(msg),))

    def _call(self, msg: m.Call) -> Outgoing:
        verb, _, path = msg.method.partition(" ")
        verb = verb.upper()
        if verb not in wire.METHODS or not path.startswith("/"):
            error = m.Error(
                id=msg.id,
                code="bad_method",
                message=f"a RingCentral call is a REST request named 'VERB /path', "
                f"not {msg.method!r}",
            )
            return Outgoing(answers=(error,))
        try:  # NaN or a non-JSON value: refused here, not by the gateway (it closes on one)
            json.dumps(msg.params, allow_nan=False)
        except (TypeError, ValueError) as exc:
            error = m.Error(id=msg.id, code="invalid_params", message=f"not JSON: {exc}")
            return Outgoing(answers=(error,))
        kind = "quiet" if msg.no_reply else "call"
        return Outgoing((self._request(verb, path, msg.params, _Pending(kind, msg.id)),))

    def _subscribe(self, msg: m.Subscribe) -> Outgoing:
        topics = tuple(msg.topics)
        filters = tuple(dict.fromkeys((*self._asked, *topics)))
        if self._sub_id is not None and filters == self._asked:
            return Outgoing(answers=(m.Subscribed(id=msg.id, topics=list(topics)),))
        self._asked = filters
        pending = _Pending("subscribe", msg.id, topics, filters)
        body = {"eventFilters": list(filters), "deliveryMode": {"transportType": "WebSocket"}}
        if self._sub_id is None:
            return Outgoing((self._request("POST", SUBSCRIPTION, body, pending),))
        path = f"{SUBSCRIPTION}/{self._sub_id}"
        return Outgoing((self._request("PUT", path, body, pending),))

    def _unsubscribe(self, msg: m.Unsubscribe) -> Outgoing:
        topics = tuple(msg.topics)
        filters = tuple(f for f in self._asked if f not in topics)
        if self._sub_id is None or filters == self._asked:
            self._asked = filters
            return Outgoing(answers=(m.Unsubscribed(id=msg.id, topics=list(topics)),))
        self._asked = filters
        pending = _Pending("unsubscribe", msg.id, topics, filters)
        path = f"{SUBSCRIPTION}/{self._sub_id}"
        if not filters:
            return Outgoing((self._request("DELETE", path, None, pending),))
        body = {"eventFilters": list(filters), "deliveryMode": {"transportType": "WebSocket"}}
        return Outgoing((self._request("PUT", path, body, pending),))

    # --- in -----------------------------------------------------------------------------------

    def decode(self, data: str | bytes) -> Sequence[m.Message]:
        frame = wire.decode_server(data)
        try:
            return self._decode(frame)
        except ValueError as exc:  # a value the reference messages cannot hold (a long topic)
            raise InvalidMessage(f"{frame.type} frame: {exc}", type=frame.type) from None

    def _decode(self, frame: wire.ServerFrame) -> Sequence[m.Message]:
        match frame:
            case wire.ConnectionDetails():
                return self._connection_details(frame)
            case wire.ServerNotification():
                return self._notification(frame)
            case wire.ClientResponse():
                return self._response(frame)
            case wire.Heartbeat():
                pending = self._pending.pop(frame.message_id or "", None)
                if pending is None or pending.kind != "ping":
                    return ()  # a server's own heartbeat: the SDK answers none either
                return (m.Pong(id=pending.ref),)
            case wire.WsgError():
                return self._error(frame)
        return ()  # pragma: no cover - decode_server returns one of the above

    def _new_session(self) -> None:
        self._sessions += 1
        self._sub_id = None
        self._filters = self._asked = ()
        self._seq = 0
        self._seen.clear()

    def _connection_details(self, details: wire.ConnectionDetails) -> Sequence[m.Message]:
        self._details = True
        self._connections += 1
        state = details.recovery_state
        presented = self._presented
        recovery: m.Recovery | None = None
        if presented is not None:
            if state == "Successful":
                recovery = m.Recovery(recovered=True, subscriptions=list(self._filters))
            elif state == "Failed":
                code = details.recovery_error_code
                reason: Literal["unknown", "expired"] = (
                    "unknown" if code == "WSG-1003" else "expired"
                )
                recovery = m.Recovery(recovered=False, reason=reason)
            else:  # no wsc went out (refused before, or none was issued): nothing resumed
                recovery = m.Recovery(recovered=False, reason="unknown")
        if recovery is None or not recovery.recovered:
            self._new_session()
        else:
            self._asked = self._filters  # requests lost with the old socket are sent again
        authenticated = m.Authenticated(
            session=f"rc-{self._sessions}",
            sid=f"c{self._connections}",
            user=self.user,
            recovery_token=details.wsc.token if details.wsc is not None else "",
            heartbeat=self.heartbeat,
            recovery_buffer_size=details.recovery_buffer_size,
            recovery_window=details.recovery_timeout,
        )
        return (authenticated,) if recovery is None else (authenticated, recovery)

    def _notification(self, note: wire.ServerNotification) -> Sequence[m.Message]:
        if self._sub_id is None or note.subscription_id != self._sub_id:
            return ()  # not this client's subscription (subscription.js drops it too)
        seq = self._seen.get(note.uuid) if note.uuid else None
        if seq is None:
            self._seq += 1
            seq = self._seq
            if note.uuid:
                self._seen[note.uuid] = seq
                if len(self._seen) > SEEN_UUIDS:
                    self._seen.popitem(last=False)
        return (m.Notification(seq=seq, topic=note.event, payload=note.body),)

    def _response(self, resp: wire.ClientResponse) -> Sequence[m.Message]:
        pending = self._pending.pop(resp.message_id, None)
        if pending is None:
            return (
                m.Error(
                    code="unexpected_response",
                    message=f"a response to messageId {resp.message_id!r}, "
                    "which is not awaiting one",
                    data=resp.body,
                ),
            )
        ok = 200 <= resp.status < 300
        if pending.kind == "quiet":
            return ()
        if pending.kind == "ping":
            return (m.Pong(id=pending.ref),)
        if not ok:
            if pending.kind in ("subscribe", "unsubscribe"):
                self._asked = self._filters
                if resp.status == 404:
                    self._sub_id, self._filters, self._asked = None, (), ()  # POST next time
            return (
                m.Error(
                    id=pending.ref,
                    code=str(resp.status),
                    message=_error_message(resp.body, resp.status),
                    data=resp.body,
                ),
            )
        if pending.kind == "call":
            return (m.Result(id=pending.ref, result=resp.body),)
        body = resp.body if isinstance(resp.body, dict) else {}
        if pending.kind == "subscribe":
            sub_id = body.get("id")
            if isinstance(sub_id, str) and sub_id:
                self._sub_id = sub_id
            answered = body.get("eventFilters")
            self._filters = tuple(answered) if isinstance(answered, list) else pending.filters
            return (m.Subscribed(id=pending.ref, topics=list(pending.topics)),)
        if pending.filters:
            self._filters = pending.filters
        else:  # DELETE: the subscription is gone
            self._sub_id, self._filters = None, ()
        return (m.Unsubscribed(id=pending.ref, topics=list(pending.topics)),)

    def _error(self, error: wire.WsgError) -> Sequence[m.Message]:
        text = f"{error.error_code}: {error.message}" if error.message else error.error_code
        if not self._details:
            if error.status == 401:
                return (m.AuthFailed(reason="invalid_token", message=text),)
            if error.status == 400 and self._presented:
                self._refused_wsc = self._presented  # malformed wsc: connect plain next time
        pending = self._pending.pop(error.message_id, None) if error.message_id else None
        if pending is not None and pending.kind in ("subscribe", "unsubscribe"):
            self._asked = self._filters
        ref = pending.ref if pending is not None and pending.kind != "quiet" else None
        data = {"errorCode": error.error_code, "status": error.status}
        return (m.Error(id=ref, code=str(error.status), message=text, data=data),)


def _http_origin(url: str) -> str:
    """``ws://h:p/x`` -> ``http://h:p``; an ``http(s)://`` base keeps its path."""
    parts = urlsplit(url)
    if parts.scheme in ("ws", "wss"):
        return urlunsplit(("http" if parts.scheme == "ws" else "https", parts.netloc, "", "", ""))
    return url.rstrip("/")


def _split_wsc(url: str) -> tuple[str, str | None]:
    """The URL without its ``wsc`` parameter, and that parameter."""
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    wsc = next((v for k, v in pairs if k == "wsc"), None)
    rest = urlencode([(k, v) for k, v in pairs if k != "wsc"])
    return urlunsplit(parts._replace(query=rest)), wsc


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _error_message(body: Any, status: int | None = None) -> str:
    """A REST error body's ``message`` (or ``errorCode``), else the status phrase."""
    if isinstance(body, dict):
        for key in ("message", "error_description", "errorCode"):
            if isinstance(body.get(key), str) and body[key]:
                return str(body[key])
    if status is not None:
        try:
            return HTTPStatus(status).phrase
        except ValueError:
            pass
    return "no error message"


def _token_error(status: int, body: Any) -> tuple[m.AuthFailureReason, str]:
    message = _error_message(body, status)
    if status == 403:
        return "forbidden", message
    code = body.get("errorCode") if isinstance(body, dict) else None
    return TOKEN_ERRORS.get(code or "", "invalid_token"), message


def _unsupported(msg: m.Message) -> m.Error:
    return m.Error(
        id=getattr(msg, "id", None),
        code=UNSUPPORTED,
        message=f"the ringcentral dialect has no {msg.type!r} (no drains or rooms)",
    )
