"""The client's wire seam: the behaviour core speaks reference messages; a wire translates.

:class:`~squall.client.core.ClientCore` decides everything in terms of the
reference protocol's messages (docs/protocol.md). A :class:`ClientWire` turns
each outgoing message into the frames of one dialect (or answers it locally,
when the dialect has no such frame: Mixer has no ``subscribe``) and each
incoming frame into the reference messages it means. The reference wire is
the identity. A wire may also need a step before the socket opens
(RingCentral's wstoken over HTTP): :meth:`ClientWire.prelude`, run by the
asyncio driver, since the core does no I/O; and a wire may speak on its own
beside the core's messages (XMPP's stream negotiation, Genesys's HTTP
subscriptions): :class:`SideChannel`.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlencode, urlsplit, urlunsplit

from squall.protocol import codec
from squall.protocol import messages as m


@dataclass(frozen=True)
class Opening:
    """How to open a socket: URL, headers, and whether credentials go in a first frame."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    auth_frame: bool = False
    #: The client's verifying context for an https:// prelude (its ``ca_file``); None: the
    #: system's trust store. Never a context that does not verify.
    tls: ssl.SSLContext | None = None
    #: WebSocket subprotocols to offer (RFC 7395's ``xmpp``); empty: none
    subprotocols: tuple[str, ...] = ()


@dataclass(frozen=True)
class Outgoing:
    """What one message becomes: frames to send, and answers the wire gives itself.

    ``shown``, when given, is each frame as ``sent`` events show it (a secret masked: Mixer's
    authkey travels in a frame); empty: the frames themselves.
    """

    frames: Sequence[str | bytes] = ()
    answers: Sequence[m.Message] = ()
    shown: Sequence[str] = ()


#: A request a wire makes beside the socket (Genesys's HTTP subscription API): awaited by the
#: asyncio driver, its answer is the reference messages it means, fed to the core.
Job = Callable[[], Awaitable[Sequence[m.Message]]]


@dataclass(frozen=True)
class SideFrame:
    """A frame the wire sends by itself: ``type`` and ``shown`` are what ``sent`` shows."""

    text: str
    type: str
    shown: str | None = None


@dataclass(frozen=True)
class Aside:
    """What a :class:`SideChannel` wire queued since it was last asked."""

    frames: Sequence[SideFrame] = ()
    jobs: Sequence[Job] = ()


@runtime_checkable
class SideChannel(Protocol):
    """A wire that also speaks on its own, beside the core's messages.

    XMPP negotiates a stream before anything the core knows of (features, SASL, a re-opened
    stream, resource bind): the wire answers those frames itself while :meth:`decode`
    returns no message. Genesys subscribes over HTTP: :meth:`encode` queues the request and
    answers later. The asyncio driver takes this after every event, before the core's own
    actions (so a reply goes out before what the core does with the same frame), sends the
    frames on the current socket and runs the jobs; a job's messages go to the socket it was
    queued for, so the core ignores an answer that outlived its socket. ``opening`` starts
    a new queue.
    """

    def take_aside(self) -> Aside: ...

    def farewell(self, abort: bool, *, current: bool) -> Sequence[SideFrame]:
        """What goes out before the client closes a socket itself (``abort``: the peer is
        presumed dead): XMPP's ``<close/>``, after a stream error saying why. ``current`` is
        False when the core has already opened the next socket (the close is of the one
        before)."""
        ...

    def describe(self) -> dict[str, Any]:
        """Dialect facts of the connection, added to ``connected`` (Genesys: its channel)."""
        ...


class PreludeFailed(Exception):
    """The step before the socket failed; ``final`` when retrying cannot help (HTTP 401, a
    certificate that fails verification: raised ``from`` the ``ssl.SSLCertVerificationError``).

    ``answers`` are reference messages the wire gives in the server's place before the
    failure is reported (an ``auth_failed`` for a 401, so the application hears why).
    """

    def __init__(
        self, message: str, *, final: bool = False, answers: Sequence[m.Message] = ()
    ) -> None:
        super().__init__(message)
        self.final = final
        self.answers = tuple(answers)


class ClientWire(Protocol):
    name: str

    def opening(
        self,
        url: str,
        *,
        token: str | None,
        jwt: str | None,
        recovery_token: str | None,
        auth_via: str,
    ) -> Opening: ...

    def encode(self, msg: m.Message) -> Outgoing: ...

    def decode(self, data: str | bytes) -> Sequence[m.Message]:
        """Reference messages for one frame (maybe none); a ProtocolError if unreadable."""
        ...

    async def prelude(self, opening: Opening, token: str | None) -> Opening:
        """Anything the dialect does before the socket (an HTTP token exchange)."""
        ...


def with_query(url: str, params: dict[str, str]) -> str:
    if not params:
        return url
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", query, parts.fragment))


class ReferenceClientWire:
    """The reference protocol: messages are the frames (§2 for where credentials go)."""

    name = "reference"

    def __init__(self, **options: Any) -> None:
        self.options = options  # the reference protocol needs none; accepted for symmetry

    def opening(
        self,
        url: str,
        *,
        token: str | None,
        jwt: str | None,
        recovery_token: str | None,
        auth_via: str,
    ) -> Opening:
        query: dict[str, str] = {}
        headers: dict[str, str] = {}
        if auth_via == "query":
            if token:
                query["token"] = token
            elif jwt:
                query["jwt"] = jwt
        elif auth_via == "header":
            if token:
                headers["Authorization"] = f"Bearer {token}"
            elif jwt:
                query["jwt"] = jwt  # a guest JWT has no header form (§2)
        if recovery_token is not None and auth_via != "frame":
            query["recovery_token"] = recovery_token
        return Opening(with_query(url, query), headers, auth_frame=auth_via == "frame")

    def encode(self, msg: m.Message) -> Outgoing:
        return Outgoing((codec.encode(msg),))

    def decode(self, data: str | bytes) -> Sequence[m.Message]:
        return (codec.decode_server(data),)

    async def prelude(self, opening: Opening, token: str | None) -> Opening:
        return opening


#: dialect name -> "module:Class" of its client wire, imported on first use
WIRES: dict[str, str] = {
    "reference": "squall.client.wire:ReferenceClientWire",
    "mixer": "squall.client.wires.mixer:MixerClientWire",
    "ringcentral": "squall.client.wires.ringcentral:RingCentralClientWire",
    "genesys": "squall.client.wires.genesys:GenesysClientWire",
    "rtccafe": "squall.client.wires.rtccafe:RTCCafeClientWire",
}


def client_wire(name: str, **options: Any) -> ClientWire:
    """A fresh wire for dialect ``name`` (``options`` go to its constructor, such as the
    ``server`` URL of a dialect's HTTP prelude); ValueError naming the known ones."""
    import importlib

    target = WIRES.get(name)
    if target is None:
        raise ValueError(f"the reference client has no {name!r} mode (known: {', '.join(WIRES)})")
    module, _, attr = target.partition(":")
    wire: ClientWire = getattr(importlib.import_module(module), attr)(**options)
    return wire


def wire_parameters(name: str) -> frozenset[str]:
    """The option names dialect ``name``'s wire takes (to tell them from an SDK's settings)."""
    import importlib
    import inspect

    module, _, attr = WIRES[name].partition(":")
    cls = getattr(importlib.import_module(module), attr)
    params = inspect.signature(cls).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return frozenset({"*"})
    return frozenset(p.name for p in params)
