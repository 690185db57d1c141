"""Mixer chat (seed ``003``) as a dialect: ``@mixer/client-node`` runs against the core as is.

What the SDK (``@mixer/chat-client-websocket`` 1.2.0, ``socket/Socket.js``) needs, and where
it meets the core:

- no credentials in the URL (``?version=1.0&Client-ID=...``): the socket opens
  unauthenticated and is greeted with ``WelcomeEvent``, which the SDK waits for
  (``Socket.js:245``) before it replays ``auth`` and flushes its spool;
- ``auth`` is a method: ``[channelId, userId, authKey, accessKey?]`` becomes
  :class:`~squall.simulator.ops.Authenticate` with the authkey as the token, subscribed to
  the core's wildcard topic (a chat client gets every event of its channel); an anonymous
  join (no authkey) authenticates as a guest of the core's :class:`AuthPolicy`;
- every other method is an RPC (:class:`~squall.simulator.ops.Call`) that ``on_rpc``
  scripts, but ``ping`` (:class:`~squall.simulator.ops.Ping`, the browser keepalive) and
  ``optOutEvents`` (socket setup the SDK sends *before* ``auth``, ``Socket.js:291``,
  answered here);
- a publication on topic ``T`` is the event ``T``;
- errors are reply errors in the forms the SDK tests for (``Socket.js:455-466``).

docs/dialects/mixer.md has the mapping tables and the reasons.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from squall.protocol import mixer as wire
from squall.protocol.errors import (
    InvalidMessage,
    MalformedFrame,
    UnknownMessageType,
    UnsupportedFrame,
)

from .. import events as ev
from .. import ops
from ..auth import make_guest_jwt
from ..core import WILDCARD
from ..seam import CloseReason, Closing, Dialect, Frame, Handshake, Inbound, WireSession
from . import RFC6455_CLOSE_CODES

#: The SDK ignores close codes (``handleClose``, ``Socket.js:135``): every server close
#: reconnects unless the SDK itself is closing. These are for people and other clients.
CLOSE_CODES: dict[CloseReason, int] = RFC6455_CLOSE_CODES

#: Core auth failure reason -> the reply error. ``UNOTFOUND`` and ``UACCESS`` are the SDK's
#: ``StringError``s; a reason not listed (a scripted one) is ``4006``, the auth server error
#: after which the SDK reconnects (``Socket.js:461-463``). ``auth_errors`` overrides these.
AUTH_ERRORS: dict[str, str | int] = {
    "invalid_token": wire.UNOTFOUND,
    "expired_token": wire.UNOTFOUND,
    "invalid_jwt": wire.UNOTFOUND,
    "missing_credentials": wire.UNOTFOUND,
    "forbidden": wire.UACCESS,
}

#: Core and codec error codes (``Rejected``, ``CallFailed``) -> the reply error.
CORE_ERRORS: dict[str, str | int] = {
    "not_authenticated": wire.UACCESS,
    "already_authenticated": wire.ErrorCode.BAD_REQUEST,
    "invalid_packet": wire.ErrorCode.BAD_REQUEST,
    "unknown_type": wire.ErrorCode.BAD_REQUEST,
    "invalid_message": wire.ErrorCode.BAD_REQUEST,
    "method_not_found": wire.ErrorCode.UNKNOWN,
    "handler_failed": wire.ErrorCode.UNKNOWN,
}

#: The user name of an anonymous join (a guest of the core's AuthPolicy).
ANONYMOUS = "anonymous"

#: Namespace of the ``WelcomeEvent`` server ids (uuid5 of the address).
SERVER_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "squall:dialects/mixer")

#: Methods the wire session answers itself, before or after auth.
OPT_OUT_EVENTS = "optOutEvents"


def _is_error_value(value: Any) -> bool:
    if isinstance(value, str):
        return value in wire.STRING_ERRORS
    return isinstance(value, int) and not isinstance(value, bool)


class MixerWire:
    """One Mixer chat connection: packets in, core operations out, and back."""

    __slots__ = ("_chat", "client_id", "dialect", "opted_out", "server", "version")

    def __init__(
        self, dialect: MixerDialect, server: str, version: str | None, client_id: str | None
    ) -> None:
        # WireSession.dialect is a settable Dialect, so the concrete type is kept beside it.
        self.dialect: Dialect = dialect
        self._chat = dialect
        self.server = server
        self.version = version
        self.client_id = client_id
        #: events this client asked not to get; recorded, not applied (docs/dialects/mixer.md)
        self.opted_out: tuple[str, ...] = ()

    def greet(self) -> Sequence[Frame]:
        return (Frame("WelcomeEvent", wire.encode_event("WelcomeEvent", {"server": self.server})),)

    # --- in ------------------------------------------------------------------------------------

    def receive(self, data: str | bytes) -> Inbound:
        try:
            packet = wire.decode_client(data)
        except UnsupportedFrame as exc:
            return Inbound(
                None,
                (ops.BadInput(str(exc), "unsupported_data", fatal=CloseReason.UNSUPPORTED_DATA),),
                shown=f"<{len(data)} bytes>",
            )
        except MalformedFrame as exc:
            return Inbound(None, (ops.BadInput(str(exc), exc.code),), _shown_text(data))
        except (UnknownMessageType, InvalidMessage) as exc:
            return Inbound(
                exc.type or None,
                (ops.BadInput(str(exc), exc.code, ref=exc.ref),),
                _shown_text(data),
            )
        method, ref = packet.method, packet.id
        if method == "auth":
            return self._auth(packet)
        if method == "ping":
            return Inbound(method, (ops.Ping(ref),))
        if method == OPT_OUT_EVENTS:
            return self._opt_out(packet)
        return Inbound(method, (ops.Call(ref, method, packet.arguments),))

    def _auth(self, packet: wire.Method) -> Inbound:
        shown = wire.encode(wire.redact_method(packet))
        try:
            args = wire.auth_arguments(packet.arguments, packet.id)
        except InvalidMessage as exc:
            return Inbound("auth", (ops.BadInput(str(exc), exc.code, ref=packet.id),), shown)
        if args.anonymous:
            secret = self._chat.core.auth.jwt_secret
            op = ops.Authenticate(
                jwt=make_guest_jwt(ANONYMOUS, secret=secret), topics=(WILDCARD,), ref=packet.id
            )
        else:
            op = ops.Authenticate(token=args.auth_key, topics=(WILDCARD,), ref=packet.id)
        return Inbound("auth", (op,), shown)

    def _opt_out(self, packet: wire.Method) -> Inbound:
        names = packet.arguments
        if not all(isinstance(name, str) for name in names):
            message = "invalid 'optOutEvents' arguments: each must be an event name (string)"
            return Inbound(
                OPT_OUT_EVENTS, (ops.BadInput(message, "invalid_message", ref=packet.id),)
            )
        self.opted_out = tuple(dict.fromkeys((*self.opted_out, *names)))
        return Inbound(OPT_OUT_EVENTS, (), frames=(self._reply(packet.id, {}),))

    # --- out -----------------------------------------------------------------------------------

    def _reply(self, ref: Any, data: Any = None, error: wire.MixerError | None = None) -> Frame:
        return Frame("reply", wire.encode(wire.Reply(ref, data, error)))

    def encode(self, event: ev.Event) -> Sequence[Frame]:
        match event:
            case ev.Replied():
                return (self._reply(event.ref, event.result),)
            case ev.Pong():
                return (self._reply(event.ref),)
            case ev.Authenticated():
                data = {
                    "authenticated": not event.guest,
                    "roles": [] if event.guest else list(self._chat.options["roles"]),
                }
                return (self._reply(event.ref, data),)
            case ev.AuthFailed():
                value = self._chat.auth_errors.get(event.reason, wire.ErrorCode.AUTH_SERVER_ERROR)
                return (self._reply(event.ref, None, self._error(value, event.message)),)
            case ev.CallFailed() | ev.Rejected():
                return (
                    self._reply(event.ref, None, self.error(event.code, event.message, event.data)),
                )
            case ev.Delivered():
                return (self.deliver(event),)
        # ServerPing (the WebSocket layer pings; Mixer has no ping packet from the server),
        # DrainRequested, Subscribed and room events: nothing on this wire.
        return ()

    def error(self, code: str, message: str = "", data: Any = None) -> wire.MixerError:
        """A core or scripted error code as a reply error (docs/dialects/mixer.md, "Errors")."""
        if code in wire.STRING_ERRORS:
            return self._error(code, message, data)
        if code.isdigit() or (code[:1] == "-" and code[1:].isdigit()):
            return self._error(int(code), message, data)
        mapped = CORE_ERRORS.get(code)
        if mapped is None:
            return code  # a scripted code goes out as it was scripted
        return self._error(mapped, message, data)

    def _error(self, value: str | int, message: str, data: Any = None) -> wire.MixerError:
        if isinstance(value, str):
            if self._chat.options["string_errors"] == "object":
                # the developer docs' form: {"code": 1, "message": "UNOTFOUND", ...}
                return wire.ErrorPacket(1, value, "", {} if data is None else data)
            return value
        return wire.ErrorPacket(int(value), message, "", data)

    def deliver(self, event: ev.Delivered) -> Frame:
        pub = event.publication
        frame = pub.cache.get("mixer")
        if frame is None:
            # Identical for every subscriber (no per-session sequence on this wire): built once.
            frame = pub.cache["mixer"] = Frame(pub.topic, wire.encode_event(pub.topic, pub.payload))
        return frame

    def close(self, reason: CloseReason, detail: str) -> Closing:
        return Closing((), CLOSE_CODES[reason], detail)


def _shown_text(data: str | bytes) -> str | None:
    """A frame that did not decode, its authkey masked if it looks like an ``auth``."""
    if isinstance(data, str):
        shown = wire.redact_text(data)
        return shown if shown != data else None
    return None


class MixerDialect(Dialect):
    """The Mixer chat server. Options (``Simulator(dialect_options=...)``):

    - ``roles``: the roles a successful ``auth`` reply lists (``["User"]``);
    - ``server_id``: the ``WelcomeEvent`` server id; by default a UUID derived from the
      listening address (the ``Host`` header), as each real chat server had its own;
    - ``string_errors``: ``"bare"`` sends ``"UNOTFOUND"`` as the SDK compares it
      (``Socket.js:455``); ``"object"`` sends the developer docs' ``{"code": 1, "message":
      "UNOTFOUND", ...}``, which the SDK does not recognise (a conformance probe);
    - ``auth_errors``: core auth failure reason -> ``"UNOTFOUND"`` / ``"UACCESS"`` / an
      integer code, over :data:`AUTH_ERRORS` (``{"expired_token": 4006}`` makes
      ``fail_next_auth("expired_token")`` an auth server error).
    """

    name = "mixer"
    capabilities = frozenset({"pubsub", "rpc"})
    closes_before_auth = False
    defaults: ClassVar[dict[str, Any]] = {
        "roles": ["User"],
        "server_id": None,
        "string_errors": "bare",
        "auth_errors": {},
    }

    def __init__(self, core: Any, **options: Any) -> None:
        super().__init__(core, **options)
        opts = self.options
        if opts["string_errors"] not in ("bare", "object"):
            raise ValueError(
                f"mixer string_errors must be 'bare' or 'object', got {opts['string_errors']!r}"
            )
        roles = opts["roles"]
        if not isinstance(roles, list | tuple) or not all(isinstance(r, str) for r in roles):
            raise ValueError(f"mixer roles must be a list of strings, got {roles!r}")
        overrides = opts["auth_errors"]
        if not isinstance(overrides, Mapping) or not all(
            _is_error_value(v) for v in overrides.values()
        ):
            raise ValueError(
                "mixer auth_errors maps a reason to 'UNOTFOUND', 'UACCESS', 'UNOTJSON' or an "
                f"integer code, got {overrides!r}"
            )
        self.auth_errors: dict[str, str | int] = {**AUTH_ERRORS, **overrides}

    def server_id(self, host: str) -> str:
        """The ``WelcomeEvent`` id of the server listening at ``host``."""
        fixed = self.options["server_id"]
        # Derived from the address, not random: the same address gives the same id in every run,
        # so transcripts compare, and a failover still shows as a change of server.
        return str(fixed) if fixed is not None else str(uuid.uuid5(SERVER_NAMESPACE, host))

    def open(
        self, link_id: str, handshake: Handshake
    ) -> tuple[WireSession, ops.Authenticate | None]:
        query = parse_qs(urlsplit(handshake.path).query)
        version = query.get("version", [None])[0]
        client_id = query.get("Client-ID", [None])[0]
        host = handshake.headers.get("Host") or ""
        return MixerWire(self, self.server_id(host), version, client_id), None
