"""The dialect seam: what a wire format must provide so the core can serve it.

The core (``core.py``) speaks no wire format. Per listening endpoint there is
one :class:`Dialect`; per connection, one sans-I/O :class:`WireSession` that
turns frames into :mod:`~squall.simulator.ops` operations and
:mod:`~squall.simulator.events` events into frames. Close *reasons* are the
core's (:class:`CloseReason`); close codes, stream errors and whatever else
goes out before the socket closes are the dialect's (:meth:`WireSession.close`).

docs/dialects.md walks through adding a dialect.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, Protocol

if TYPE_CHECKING:
    from aiohttp import web

    from .core import Link
    from .events import Delivered, Event
    from .ops import Authenticate, BadInput, Operation

__all__ = [
    "CloseReason",
    "Closing",
    "Dialect",
    "Feed",
    "Frame",
    "Gate",
    "Handler",
    "Handshake",
    "Inbound",
    "Route",
    "Transport",
    "Unsupported",
    "WireSession",
    "snake_name",
]


class CloseReason(StrEnum):
    """Why the core ends a connection; each dialect maps it to its own code or stanza."""

    NORMAL = "normal"
    GOING_AWAY = "going_away"
    POLICY = "policy"  # not authenticated, rate limit, auth timeout, session replaced or expired
    AUTH_FAILED = "auth_failed"
    SERVICE_RESTART = "service_restart"  # a drain: reconnect now
    BAD_FRAME = "bad_frame"  # not decodable (bad JSON, bad XML, bad UTF-8)
    UNSUPPORTED_DATA = "unsupported_data"  # binary where only text is spoken, or the reverse
    TOO_BIG = "too_big"
    INTERNAL_ERROR = "internal_error"


class Frame(NamedTuple):
    """One frame out: its wire type name (for the transcript), the data, and a redacted copy."""

    type: str
    data: str | bytes
    shown: str | None = None  # what the transcript records instead, when ``data`` holds a secret


class Inbound(NamedTuple):
    """One frame in, decoded: its wire type name and what it asks the core for."""

    type: str | None
    items: Sequence[Operation | BadInput]
    shown: str | None = None  # the frame with its secrets masked, for the transcript
    frames: Sequence[Frame] = ()  # answered by the dialect itself (a handshake step, a pong)


class Closing(NamedTuple):
    """How a dialect ends a connection: frames first, then the close code and reason."""

    frames: Sequence[Frame]
    code: int
    reason: str


@dataclass(frozen=True)
class Handshake:
    """What a dialect may read from the WebSocket opening request."""

    path: str
    headers: Mapping[str, str]
    subprotocol: str | None = None


class WireSession(Protocol):
    """One connection's codec state. No I/O, no clock."""

    @property
    def dialect(self) -> Dialect:
        """The dialect this connection speaks (read-only: a subclass type satisfies it)."""
        ...

    def greet(self) -> Sequence[Frame]:
        """Frames sent as soon as the socket opens (Mixer's ``WelcomeEvent``)."""
        ...

    def receive(self, data: str | bytes) -> Inbound: ...

    def encode(self, event: Event) -> Sequence[Frame]:
        """The frames for one event; empty when this wire has nothing to show for it."""
        ...

    def deliver(self, event: Delivered) -> Frame:
        """The frame for one notification: the fan-out's hot path."""
        ...

    def close(self, reason: CloseReason, detail: str) -> Closing: ...


Handler = Callable[[Any], Awaitable[Any]]


class Feed(Protocol):
    """One connection's way into the core, held by a dialect's own transport."""

    def receive(self, data: str | bytes) -> None:
        """One frame from the client (a Socket.IO packet, an attachment)."""
        ...

    def closed(self, code: int | None, reason: str) -> None:
        """The connection is gone, either side closed it or it broke."""
        ...

    def fail(self, reason: CloseReason, detail: str) -> None:
        """The transport found a reason to end the connection (a message over the limit):
        the core closes it as the dialect does, and records why."""
        ...

    @property
    def silenced(self) -> bool:
        """The control plane silenced this session (``silence``): a transport with its own
        keepalive (Engine.IO's pings and pongs) withholds that too, as a half-dead server."""
        ...


class Gate(Protocol):
    """What the Simulator hands a dialect's own transport: connections in, refusals scripted."""

    def new_link_id(self) -> str: ...

    def refusal(self, path: str) -> int | None:
        """The HTTP status to refuse this opening request with (``refuse_connections``), if any."""
        ...

    def open(self, link: Link, handshake: Handshake) -> Feed:
        """A new connection: the dialect's wire session, attached to the core."""
        ...


class Transport(Protocol):
    """A dialect's own transport (Socket.IO's Engine.IO), mounted on one listening port's app.

    Frames still go through :class:`Feed` and :class:`~squall.simulator.core.Link`, so the
    control plane, the transcript and faults treat it like the WebSocket endpoint.
    """

    def mount(self, app: web.Application) -> None: ...

    async def shutdown(self) -> None:
        """End every connection it carries: the Simulator is stopping."""
        ...


@dataclass(frozen=True)
class Route:
    """An HTTP route a dialect serves beside its WebSocket (a token endpoint, a REST prelude)."""

    method: str
    path: str
    handler: Handler


class Dialect:
    """Base of every dialect: its name, what it can do, and how a connection starts.

    Subclasses set the class attributes and implement :meth:`open`; a dialect that
    serves HTTP too returns its routes from :meth:`routes`. One instance serves
    one simulator core, so it may keep per-server state (issued tokens, channels).
    """

    name: ClassVar[str]
    #: what the control plane and scenarios may ask of it: pubsub, rpc, drain, recovery,
    #: rooms, server_ping. An operation needing a missing one answers with an error.
    capabilities: ClassVar[frozenset[str]]
    subprotocols: ClassVar[tuple[str, ...]] = ()
    #: True: any operation before authentication closes with ``CloseReason.POLICY``;
    #: False: it is answered with ``Rejected(code="not_authenticated")``.
    closes_before_auth: ClassVar[bool] = True
    #: True: a client answers a drain request on this wire (``AnswerDrain``), within the
    #: answer window. False: its deferral stays inside the SDK (Genesys' ``requestReconnect``),
    #: so the server waits for the reconnect until the drain deadline instead.
    hears_drain_answers: ClassVar[bool] = True
    #: the dialect's own settings and their defaults (``Simulator(dialect_options=...)``)
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, core: Any, **options: Any) -> None:
        self.core = core
        unknown = set(options) - set(self.defaults)
        if unknown:
            known = ", ".join(sorted(self.defaults)) or "none"
            raise ValueError(
                f"unknown {self.name} dialect options {sorted(unknown)} (known: {known})"
            )
        self.options: dict[str, Any] = {**self.defaults, **options}
        #: the WebSocket URLs this dialect is served on (filled in by the server as it listens),
        #: for dialects that hand a URL out over HTTP (RingCentral's wstoken ``uri``)
        self.urls: list[str] = []

    def open(self, link_id: str, handshake: Handshake) -> tuple[WireSession, Authenticate | None]:
        """A new connection: its wire session, and credentials found in the handshake."""
        raise NotImplementedError

    def routes(self) -> Sequence[Route]:
        return ()

    def transport(self, gate: Gate) -> Transport | None:
        """None: clients reach this dialect over the Simulator's WebSocket endpoint. A dialect
        whose clients speak another transport (Socket.IO: long-polling and an upgrade on one
        path) returns it; the Simulator serves it and :meth:`routes` on one aiohttp app per
        listening port, and the endpoint URL is ``http(s)://host:port/``."""
        return None

    def reached_through(self, url: str) -> None:
        """Clients reach this dialect's socket through ``url`` (a fault proxy in front of it).

        A dialect that hands its socket URL out over HTTP (RingCentral's wstoken ``uri``)
        must hand out this one, or a client sent through the proxy would go around the
        faults; the others need nothing."""

    async def aclose(self) -> None:
        """Stop what the dialect runs besides its connections (Genesys's softphone media);
        called by ``Simulator.stop`` after every connection is gone."""

    def require(self, capability: str, what: str) -> None:
        """Raise :class:`Unsupported` unless this dialect has ``capability``."""
        if capability not in self.capabilities:
            raise Unsupported(f"the {self.name} dialect has no {what} ({capability})")


class Unsupported(Exception):
    """A control operation the session's dialect has no equivalent for."""


_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")
_NAMES: dict[type, str] = {}


def snake_name(value: object) -> str:
    """``PeerSidReassigned()`` -> ``peer_sid_reassigned``: the dialect-neutral name recorded."""
    cls = type(value)
    name = _NAMES.get(cls)
    if name is None:
        name = _NAMES[cls] = _CAMEL.sub("_", cls.__name__).lower()
    return name
