"""Operations: what a dialect turns client frames into, and the only thing the core accepts.

Each is a frozen value with slots, named for what the client asks, never for a
wire field. ``ref`` is the dialect's correlation id (a message id, an iq id, a
Socket.IO ack id): the core never reads it, only hands it back on the events
that answer the operation, so each dialect can stamp its own reply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from .seam import CloseReason

__all__ = [
    "AnswerDrain",
    "Authenticate",
    "BadInput",
    "Call",
    "DefineTrack",
    "Join",
    "Leave",
    "Operation",
    "Ping",
    "Pong",
    "Ref",
    "Relay",
    "RemoveTrack",
    "RequestTrack",
    "Subscribe",
    "Unsubscribe",
]

Ref = Any


@dataclass(frozen=True, slots=True)
class Authenticate:
    """Credentials, from the first frame or (through :class:`Credentials`) the handshake."""

    token: str | None = None
    jwt: str | None = None
    recovery_token: str | None = None
    topics: tuple[str, ...] = ()  # subscribed on success (a dialect whose events need no subscribe)
    ref: Ref = None
    #: the dialect refused the credential itself (a socket token it never issued, a channel
    #: that is gone): the core answers AuthFailed with this message, without asking AuthPolicy
    refused: str | None = None

    @property
    def presented(self) -> bool:
        """Credentials are here to check (a refusal counts: it is answered like one)."""
        return bool(self.token or self.jwt) or self.refused is not None


@dataclass(frozen=True, slots=True)
class Subscribe:
    topics: tuple[str, ...]
    ref: Ref = None


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    topics: tuple[str, ...]
    ref: Ref = None


@dataclass(frozen=True, slots=True)
class Call:
    ref: Ref
    method: str
    params: Any = None
    no_reply: bool = False


@dataclass(frozen=True, slots=True)
class Ping:
    """The client checks the server is alive; answered with :class:`~.events.Pong`."""

    ref: Ref = None


@dataclass(frozen=True, slots=True)
class Pong:
    """The client's answer to a :class:`~.events.ServerPing`."""

    ref: Ref = None


@dataclass(frozen=True, slots=True)
class AnswerDrain:
    status: Literal["pending", "done"]


@dataclass(frozen=True, slots=True)
class Join:
    room: str
    ref: Ref = None
    permanent_id: str | None = None
    prev_sid: str | None = None


@dataclass(frozen=True, slots=True)
class Leave:
    room: str
    ref: Ref = None


@dataclass(frozen=True, slots=True)
class Relay:
    """A signal for one peer (``to``) or for the whole room (``to`` None)."""

    room: str
    kind: str
    data: Any = None
    to: str | None = None


@dataclass(frozen=True, slots=True)
class DefineTrack:
    room: str
    track: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RemoveTrack:
    room: str
    track_id: str


@dataclass(frozen=True, slots=True)
class RequestTrack:
    room: str
    to: str
    track_id: str


@dataclass(frozen=True, slots=True)
class BadInput:
    """A frame the dialect could not turn into an operation.

    With ``fatal`` set the connection closes for that reason; otherwise the core
    answers :class:`~.events.Rejected` once authenticated, and closes before (a
    dialect whose server answers instead sets ``Dialect.closes_before_auth`` False).
    """

    message: str
    code: str = "invalid_message"
    ref: Ref = None
    fatal: CloseReason | None = None


Operation = (
    Authenticate
    | Subscribe
    | Unsubscribe
    | Call
    | Ping
    | Pong
    | AnswerDrain
    | Join
    | Leave
    | Relay
    | DefineTrack
    | RemoveTrack
    | RequestTrack
)
