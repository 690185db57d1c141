"""Events: what the core tells a connection, for its dialect to put into frames.

The core decides *what* happens (a session was recovered with 3 replayed and 1
lost, a drain was requested, a peer's sid changed); the dialect decides how
that looks on its wire, or whether it shows at all. Events are frozen values;
the recovery buffer keeps :class:`Delivered` events, not text, so a dialect that
stamps frames when they leave (RingCentral's ``wsc`` sequence) stamps replays
too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "AuthFailed",
    "Authenticated",
    "CallFailed",
    "Delivered",
    "DrainRequested",
    "Event",
    "Joined",
    "Left",
    "PeerInfo",
    "PeerJoined",
    "PeerLeft",
    "PeerSidReassigned",
    "Pong",
    "Publication",
    "Recovery",
    "Ref",
    "Rejected",
    "Relayed",
    "Replied",
    "ServerPing",
    "Subscribed",
    "TrackDefined",
    "TrackRemoved",
    "TrackRequested",
    "Unsubscribed",
]

Ref = Any


@dataclass(slots=True, eq=False)
class Publication:
    """One ``publish``: shared by every subscriber's :class:`Delivered`.

    ``cache`` holds what each dialect prepared from it (its payload encoded once),
    so a fan-out to N subscribers encodes at most once per dialect.
    """

    topic: str
    payload: Any
    cache: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Recovery:
    """The outcome of presenting a recovery token (docs/protocol.md §7)."""

    recovered: bool
    replayed: int = 0
    lost: int = 0
    subscriptions: tuple[str, ...] = ()
    reason: str | None = None  # expired, unknown, overflow


@dataclass(frozen=True, slots=True)
class Authenticated:
    session: str
    sid: str
    user: str
    guest: bool
    recovery_token: str
    heartbeat: float
    recovery_buffer_size: int
    recovery_window: float
    recovery: Recovery | None = None
    ref: Ref = None


@dataclass(frozen=True, slots=True)
class AuthFailed:
    """Final: the connection is closed with ``CloseReason.AUTH_FAILED`` right after."""

    reason: str
    message: str = ""
    ref: Ref = None


@dataclass(frozen=True, slots=True)
class Delivered:
    seq: int
    publication: Publication


@dataclass(frozen=True, slots=True)
class Subscribed:
    topics: tuple[str, ...]
    ref: Ref = None


@dataclass(frozen=True, slots=True)
class Unsubscribed:
    topics: tuple[str, ...]
    ref: Ref = None


@dataclass(frozen=True, slots=True)
class Replied:
    ref: Ref
    result: Any = None


@dataclass(frozen=True, slots=True)
class CallFailed:
    ref: Ref
    code: str
    message: str = ""
    data: Any = None


@dataclass(frozen=True, slots=True)
class Rejected:
    """An operation (or a frame) refused; the session lives on."""

    code: str
    message: str
    ref: Ref = None
    data: Any = None


@dataclass(frozen=True, slots=True)
class Pong:
    ref: Ref = None


@dataclass(frozen=True, slots=True)
class ServerPing:
    ref: Ref = None


@dataclass(frozen=True, slots=True)
class DrainRequested:
    deadline: float
    answer_within: float
    reason: str = "drain"


@dataclass(frozen=True, slots=True)
class PeerInfo:
    sid: str
    permanent_id: str
    tracks: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class Joined:
    room: str
    sid: str
    permanent_id: str
    peers: tuple[PeerInfo, ...]
    ref: Ref = None


@dataclass(frozen=True, slots=True)
class Left:
    room: str
    ref: Ref = None


@dataclass(frozen=True, slots=True)
class PeerJoined:
    room: str
    peer: PeerInfo


@dataclass(frozen=True, slots=True)
class PeerLeft:
    room: str
    sid: str
    permanent_id: str
    reason: str  # left, disconnected


@dataclass(frozen=True, slots=True)
class PeerSidReassigned:
    room: str
    permanent_id: str
    old_sid: str
    new_sid: str


@dataclass(frozen=True, slots=True)
class Relayed:
    room: str
    sender: str
    from_permanent_id: str
    kind: str
    data: Any = None
    to: str | None = None


@dataclass(frozen=True, slots=True)
class TrackDefined:
    room: str
    sid: str
    track: dict[str, Any]


@dataclass(frozen=True, slots=True)
class TrackRemoved:
    room: str
    sid: str
    track_id: str


@dataclass(frozen=True, slots=True)
class TrackRequested:
    room: str
    sender: str
    track_id: str


Event = (
    Authenticated
    | AuthFailed
    | Delivered
    | Subscribed
    | Unsubscribed
    | Replied
    | CallFailed
    | Rejected
    | Pong
    | ServerPing
    | DrainRequested
    | Joined
    | Left
    | PeerJoined
    | PeerLeft
    | PeerSidReassigned
    | Relayed
    | TrackDefined
    | TrackRemoved
    | TrackRequested
)
