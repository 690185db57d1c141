"""The reference client on Mixer chat's wire (``@mixer/chat-client-websocket`` 1.2.0).

The behaviour core (``squall/client/core.py``) speaks reference messages; this wire turns
them into Mixer packets and back (codec: :mod:`squall.protocol.mixer`). What maps to what,
and the decisions where Mixer has no equivalent (docs/client.md, "Dialect modes"):

- **URL**: ``{url}?version=1.0&Client-ID={client_id}``, no credentials; the core sends its
  :class:`~squall.protocol.messages.Auth` once the socket is open (``auth_frame``), as the
  ``auth`` method ``[channel_id, user_id, authkey, access_key]`` (the token is the authkey;
  no token: an anonymous join ``[channel_id, null, null, null]``). The ``WelcomeEvent`` the
  server greets with means nothing to the core: the Mixer server answers an ``auth`` sent
  before it was greeted just the same.
- **auth reply** -> ``authenticated``: every connection is a new session (Mixer keeps
  nothing across sockets), named ``{user}-{n}`` with sid ``c{n}``; its ``recovery_token``
  is empty. ``UNOTFOUND`` / ``UACCESS`` / ``{code: 4006}`` (also in the developer docs'
  ``{code: 1, message: "UNOTFOUND"}`` form) -> ``auth_failed`` (invalid_token / forbidden
  / invalid_token), final as in the SDK's unspool path.
- **recovery**: Mixer has none. When the core presents a recovery token (it does on every
  reconnect), the wire answers the ``recovery`` itself right after ``authenticated``:
  ``recovered: false, reason: unknown, lost: 0`` (Mixer cannot count what was missed). The
  core then emits ``recovery_failed`` and subscribes again, locally: never silent.
- **packet ids**: one counter per wire from 0, like the SDK's per-Socket ids; each id
  maps back to the core's call id, ping id, or the auth, until its reply comes or the
  socket ends.
- **subscribe / unsubscribe**: no frame (Mixer sends every event of the channel to
  everyone); answered locally. Events whose name is not subscribed are dropped here, as
  the SDK's application only listens to the events it asked for; ``*`` subscribes to all.
- **events** -> ``notification`` with ``topic`` = the event name, ``payload`` = its data,
  ``seq`` counted per connection from 1 (each connection is a new session, so the core's
  gap and duplicate checks start again with it).
- **ping** -> the ``ping`` method (a browser's keepalive); its reply -> ``pong``.
- **calls**: ``params`` become ``arguments`` (a list as is; None -> ``[]``; anything else
  -> ``[params]``); a reply's ``data`` -> ``result``; a reply's ``error`` -> ``error`` with
  ``code`` the string error (``UACCESS``) or the numeric code as a string (``"4004"``).
- **not on this wire**: drains and rooms. Each such message is answered locally with an
  ``error`` (code ``unsupported``), so the application hears why.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from squall.protocol import messages as m
from squall.protocol import mixer as wire
from squall.protocol.errors import InvalidMessage

from ..wire import Opening, Outgoing, with_query

__all__ = ["MixerClientWire"]

#: seconds between pings: the SDK's ``pingInterval`` (15 s) unless the policy sets one
PING_INTERVAL = 15.0

#: Mixer auth errors -> the reference reason (``Socket.js:455-466``)
AUTH_ERRORS: dict[str | int, m.AuthFailureReason] = {
    wire.UNOTFOUND: "invalid_token",
    wire.UACCESS: "forbidden",
    wire.ErrorCode.AUTH_SERVER_ERROR: "invalid_token",
}

UNSUPPORTED = "unsupported"


@dataclass(frozen=True, slots=True)
class _Pending:
    """A packet id's meaning: what its reply answers (``ref`` is the core's id)."""

    kind: str  # auth | call | ping | quiet
    ref: Any = None


class MixerClientWire:
    """Mixer chat packets for the reference client's core.

    Options: ``client_id`` (the URL's ``Client-ID``, ``"squall"``), ``channel_id`` (1),
    ``user_id`` (None), ``access_key`` (None), ``user`` (the name the core reports; by
    default the user id, ``anonymous`` for an anonymous join, else ``user``),
    ``opt_out_events`` (event names sent as ``optOutEvents`` before ``auth``, as the SDK
    does), ``ping_interval`` (15 s). ``server`` (an HTTP prelude's URL, passed to every
    dialect by the conformance runner) is accepted and ignored: Mixer has no prelude.
    """

    name = "mixer"

    def __init__(
        self,
        *,
        client_id: str = "squall",
        channel_id: int = 1,
        user_id: int | None = None,
        access_key: str | None = None,
        user: str | None = None,
        opt_out_events: Sequence[str] = (),
        ping_interval: float = PING_INTERVAL,
        server: str | None = None,
    ) -> None:
        self.client_id = client_id
        self.channel_id = channel_id
        self.user_id = user_id
        self.access_key = access_key
        self.user = user
        self.opt_out_events = list(opt_out_events)
        self.ping_interval = ping_interval
        self._ids = itertools.count()
        self._pending: dict[int, _Pending] = {}
        self._connections = 0
        self._seq = 0
        self._recovering = False  # the core presented a recovery token on this connection
        self._anonymous = False
        self.topics: set[str] = set()  # the events the application listens to

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
        """A new connection: credentials go in the ``auth`` method, never in the URL."""
        self._pending.clear()  # replies of the old socket never come on this one
        self._seq = 0
        # A new session: the core subscribes again, before any event can be read.
        self.topics.clear()
        self._recovering = recovery_token is not None
        params = {"version": "1.0", "Client-ID": self.client_id}
        return Opening(with_query(url, params), auth_frame=True)

    async def prelude(self, opening: Opening, token: str | None) -> Opening:
        return opening

    # --- out ----------------------------------------------------------------------------------

    def _packet(self, method: str, arguments: list[Any], pending: _Pending) -> wire.Method:
        ref = next(self._ids)
        self._pending[ref] = pending
        return wire.Method(method, arguments, ref)

    def _method(self, method: str, arguments: list[Any], pending: _Pending) -> str:
        return wire.encode(self._packet(method, arguments, pending))

    def _call(self, msg: m.Call) -> Outgoing:
        kind = "quiet" if msg.no_reply else "call"
        packet = self._packet(msg.method, _arguments(msg.params), _Pending(kind, msg.id))
        try:
            return Outgoing((wire.encode(packet),))
        except (TypeError, ValueError) as exc:  # NaN or a non-JSON value: refused here
            del self._pending[packet.id]
            error = m.Error(id=msg.id, code="invalid_params", message=f"not JSON: {exc}")
            return Outgoing(answers=(error,))

    def encode(self, msg: m.Message) -> Outgoing:
        match msg:
            case m.Auth():
                return self._auth(msg)
            case m.Call():
                return self._call(msg)
            case m.Ping():
                return Outgoing((self._method("ping", [], _Pending("ping", msg.id)),))
            case m.Subscribe():
                self.topics.update(msg.topics)
                return Outgoing(answers=(m.Subscribed(id=msg.id, topics=list(msg.topics)),))
            case m.Unsubscribe():
                self.topics.difference_update(msg.topics)
                return Outgoing(answers=(m.Unsubscribed(id=msg.id, topics=list(msg.topics)),))
            case m.Pong():
                return Outgoing()  # a Mixer server sends no ping packet to answer
        return Outgoing(answers=(_unsupported(msg),))

    def _auth(self, msg: m.Auth) -> Outgoing:
        frames = []
        if self.opt_out_events:
            frames.append(
                self._method("optOutEvents", list(self.opt_out_events), _Pending("quiet"))
            )
        self._anonymous = not msg.token
        if self._anonymous:
            args = wire.AuthArguments(self.channel_id)
        else:
            args = wire.AuthArguments(self.channel_id, self.user_id, msg.token, self.access_key)
        packet = self._packet("auth", args.to_arguments(), _Pending("auth"))
        shown = [*frames, wire.encode(wire.redact_method(packet))]  # the authkey masked
        return Outgoing([*frames, wire.encode(packet)], shown=shown)

    # --- in -----------------------------------------------------------------------------------

    def decode(self, data: str | bytes) -> Sequence[m.Message]:
        packet = wire.decode_server(data)
        try:
            return self._decode(packet)
        except ValueError as exc:  # a value the reference messages cannot hold (an empty topic)
            raise InvalidMessage(f"{packet.type} packet: {exc}", type=packet.type) from None

    def _decode(self, packet: wire.Reply | wire.Event) -> Sequence[m.Message]:
        if isinstance(packet, wire.Event):
            return self._event(packet)
        pending = self._pending.pop(packet.id, None) if packet.id is not None else None
        if pending is None:
            return (
                m.Error(
                    code="unexpected_reply",
                    message=f"a reply to packet id {packet.id!r}, which is not awaiting one",
                    data=_error_json(packet.error),
                ),
            )
        if pending.kind == "auth":
            return self._auth_reply(packet)
        if pending.kind == "ping":
            return (m.Pong(id=pending.ref),)
        if pending.kind == "quiet":
            return ()
        if packet.error is not None:
            code, message, extra = _error_parts(packet.error)
            return (m.Error(id=pending.ref, code=code, message=message, data=extra),)
        return (m.Result(id=pending.ref, result=packet.data),)

    def _event(self, event: wire.Event) -> Sequence[m.Message]:
        if event.event == "WelcomeEvent" or not (event.event in self.topics or "*" in self.topics):
            return ()
        note = m.Notification(seq=self._seq + 1, topic=event.event, payload=event.data)
        self._seq += 1
        return (note,)

    def _auth_reply(self, reply: wire.Reply) -> Sequence[m.Message]:
        if reply.error is not None:
            code, message, _ = _error_parts(reply.error)
            key: str | int = _string_error(reply.error) or (int(code) if code.isdigit() else code)
            reason = AUTH_ERRORS.get(key)
            if reason is None:  # not an auth failure (a malformed auth, say): the core reports it
                return (m.Error(code=code, message=message, data=_error_json(reply.error)),)
            return (
                m.AuthFailed(
                    reason=reason, message=f"{code}: {message}" if message != code else code
                ),
            )
        data = reply.data if isinstance(reply.data, dict) else {}
        guest = self._anonymous or data.get("authenticated") is False
        self._connections += 1
        n = self._connections
        user = self.user or (
            "anonymous" if guest else str(self.user_id) if self.user_id is not None else "user"
        )
        out: list[m.Message] = [
            m.Authenticated(
                session=f"{user}-{n}",
                sid=f"c{n}",
                user=user,
                guest=guest,
                recovery_token="",
                heartbeat=self.ping_interval,
                recovery_buffer_size=0,
                recovery_window=0,
            )
        ]
        if self._recovering:
            out.append(m.Recovery(recovered=False, reason="unknown"))
        return out


def _arguments(params: Any) -> list[Any]:
    if params is None:
        return []
    if isinstance(params, list | tuple):
        return list(params)
    return [params]


def _string_error(error: wire.MixerError) -> str | None:
    """``UNOTFOUND`` as the SDK sends it, or in the developer docs' ``{code: 1, message}``."""
    if isinstance(error, str):
        return error if error in wire.STRING_ERRORS else None
    if error.code == 1 and error.message in wire.STRING_ERRORS:
        return error.message
    return None


def _error_parts(error: wire.MixerError) -> tuple[str, str, Any]:
    """``(code, message, data)`` of a reply error for :class:`m.Error`."""
    if isinstance(error, str):
        return error, error, None
    named = _string_error(error)
    if named is not None:
        return named, named, error.data or None
    return str(error.code), error.message or f"Mixer error {error.code}", error.data


def _error_json(error: wire.MixerError | None) -> Any:
    return error.to_json() if isinstance(error, wire.ErrorPacket) else error


def _unsupported(msg: m.Message) -> m.Error:
    return m.Error(
        id=getattr(msg, "id", None),
        code=UNSUPPORTED,
        message=f"the mixer dialect has no {msg.type!r} (Mixer chat has no drains or rooms)",
    )
