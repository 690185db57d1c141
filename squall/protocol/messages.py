"""Every message of the reference protocol, as frozen pydantic models.

One class per ``type``; two closed unions, :data:`ClientMessage` (what a client
may send) and :data:`ServerMessage` (what a server may send). The sections
named in docstrings are those of ``docs/protocol.md``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Id = int | str
Topic = Annotated[str, Field(min_length=1, max_length=256)]
Name = Annotated[str, Field(min_length=1, max_length=128)]


class Message(BaseModel):
    """Base of all messages: unknown keys are refused, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    type: str


# --- Handshake and auth (§2) ---------------------------------------------------------------


class Auth(Message):
    """First frame when no credential was given in the URL or headers; also carries recovery."""

    type: Literal["auth"] = "auth"
    token: str | None = None
    jwt: str | None = None
    recovery_token: str | None = None
    client: dict[str, str] | None = None


class Authenticated(Message):
    type: Literal["authenticated"] = "authenticated"
    session: str
    sid: str
    user: str
    guest: bool = False
    recovery_token: str
    heartbeat: float = Field(description="seconds between client pings the server expects")
    recovery_buffer_size: int
    recovery_window: float


AuthFailureReason = Literal[
    "invalid_token", "expired_token", "missing_credentials", "forbidden", "invalid_jwt"
]


class AuthFailed(Message):
    """Final: the server closes with 1008 after it, and clients must not reconnect."""

    type: Literal["auth_failed"] = "auth_failed"
    reason: AuthFailureReason
    message: str = ""


class Recovery(Message):
    """Sent right after ``authenticated`` when the client presented a recovery token (§7)."""

    type: Literal["recovery"] = "recovery"
    recovered: bool
    replayed: int = 0
    lost: int = 0
    subscriptions: list[Topic] = []
    reason: Literal["expired", "unknown", "overflow"] | None = None


# --- Keepalive (§3) -------------------------------------------------------------------------


class Ping(Message):
    type: Literal["ping"] = "ping"
    id: Id | None = None


class Pong(Message):
    type: Literal["pong"] = "pong"
    id: Id | None = None


# --- Pub/sub (§4) ---------------------------------------------------------------------------


class Subscribe(Message):
    type: Literal["subscribe"] = "subscribe"
    id: Id | None = None
    topics: Annotated[list[Topic], Field(min_length=1, max_length=1000)]


class Unsubscribe(Message):
    type: Literal["unsubscribe"] = "unsubscribe"
    id: Id | None = None
    topics: Annotated[list[Topic], Field(min_length=1, max_length=1000)]


class Subscribed(Message):
    type: Literal["subscribed"] = "subscribed"
    id: Id | None = None
    topics: list[Topic]


class Unsubscribed(Message):
    type: Literal["unsubscribed"] = "unsubscribed"
    id: Id | None = None
    topics: list[Topic]


class Notification(Message):
    """``seq`` counts per session from 1 and survives a recovered reconnect."""

    type: Literal["notification"] = "notification"
    seq: int
    topic: Topic
    payload: Any = None


# --- RPC (§5) -------------------------------------------------------------------------------


class Call(Message):
    type: Literal["call"] = "call"
    id: Id
    method: Name
    params: Any = None
    no_reply: bool = False


class Result(Message):
    type: Literal["result"] = "result"
    id: Id
    result: Any = None


class Error(Message):
    """An answer to one frame (``id`` set) or to the session (``id`` null); never closes."""

    type: Literal["error"] = "error"
    id: Id | None = None
    code: str
    message: str
    data: Any = None


# --- Server-requested reconnect (§6) --------------------------------------------------------


class ReconnectRequest(Message):
    type: Literal["reconnect_request"] = "reconnect_request"
    deadline: float = Field(600.0, description="seconds a pending answer is honoured")
    answer_within: float = Field(1.0, description="seconds before an unanswered request closes")
    reason: str = "drain"


class ReconnectResponse(Message):
    type: Literal["reconnect_response"] = "reconnect_response"
    status: Literal["pending", "done"]


# --- Signalling (§8) ------------------------------------------------------------------------


class Peer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    sid: str
    permanent_id: str
    tracks: list[TrackDefinition] = []


class TrackDefinition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: Name
    kind: Literal["audio", "video", "data"]
    description: dict[str, Any] = {}


class Join(Message):
    type: Literal["join"] = "join"
    id: Id | None = None
    room: Name
    permanent_id: Name | None = None
    prev_sid: str | None = None


class Joined(Message):
    type: Literal["joined"] = "joined"
    id: Id | None = None
    room: Name
    sid: str
    permanent_id: str
    peers: list[Peer]


class Leave(Message):
    type: Literal["leave"] = "leave"
    id: Id | None = None
    room: Name


class Left(Message):
    type: Literal["left"] = "left"
    id: Id | None = None
    room: Name


class PeerJoined(Message):
    type: Literal["peer_joined"] = "peer_joined"
    room: Name
    peer: Peer


class PeerLeft(Message):
    type: Literal["peer_left"] = "peer_left"
    room: Name
    sid: str
    permanent_id: str
    reason: Literal["left", "disconnected"]


class PeerSidReassigned(Message):
    """A peer came back on a new connection: re-key everything held under ``old_sid``."""

    type: Literal["peer_sid_reassigned"] = "peer_sid_reassigned"
    room: Name
    permanent_id: str
    old_sid: str
    new_sid: str


SignalKind = Literal["offer", "answer", "candidate", "message", "bye"]


class SendSignal(Message):
    """Client to server: relay ``data`` to peer ``to``, or to the whole room when ``to`` is null."""

    type: Literal["signal"] = "signal"
    room: Name
    to: str | None = None
    kind: SignalKind
    data: Any = None


class Signal(Message):
    """Server to client: a relayed signal, stamped with its sender."""

    type: Literal["signal"] = "signal"
    room: Name
    sender: str = Field(alias="from")
    from_permanent_id: str
    to: str | None = None
    kind: SignalKind
    data: Any = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class TrackDefine(Message):
    type: Literal["track_define"] = "track_define"
    room: Name
    track: TrackDefinition


class TrackRemove(Message):
    type: Literal["track_remove"] = "track_remove"
    room: Name
    track_id: Name


class TrackRequest(Message):
    type: Literal["track_request"] = "track_request"
    room: Name
    to: str
    track_id: Name


class TrackDefined(Message):
    type: Literal["track_defined"] = "track_defined"
    room: Name
    sid: str
    track: TrackDefinition


class TrackRemoved(Message):
    type: Literal["track_removed"] = "track_removed"
    room: Name
    sid: str
    track_id: Name


class TrackRequested(Message):
    type: Literal["track_requested"] = "track_requested"
    room: Name
    sender: str = Field(alias="from")
    track_id: Name

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


Peer.model_rebuild()

ClientMessage = Annotated[
    Auth
    | Ping
    | Pong
    | Subscribe
    | Unsubscribe
    | Call
    | ReconnectResponse
    | Join
    | Leave
    | SendSignal
    | TrackDefine
    | TrackRemove
    | TrackRequest,
    Field(discriminator="type"),
]

ServerMessage = Annotated[
    Authenticated
    | AuthFailed
    | Recovery
    | Ping
    | Pong
    | Subscribed
    | Unsubscribed
    | Notification
    | Result
    | Error
    | ReconnectRequest
    | Joined
    | Left
    | PeerJoined
    | PeerLeft
    | PeerSidReassigned
    | Signal
    | TrackDefined
    | TrackRemoved
    | TrackRequested,
    Field(discriminator="type"),
]

CLIENT_TYPES = frozenset(
    m.model_fields["type"].default
    for m in (
        Auth,
        Ping,
        Pong,
        Subscribe,
        Unsubscribe,
        Call,
        ReconnectResponse,
        Join,
        Leave,
        SendSignal,
        TrackDefine,
        TrackRemove,
        TrackRequest,
    )
)
SERVER_TYPES = frozenset(
    m.model_fields["type"].default
    for m in (
        Authenticated,
        AuthFailed,
        Recovery,
        Ping,
        Pong,
        Subscribed,
        Unsubscribed,
        Notification,
        Result,
        Error,
        ReconnectRequest,
        Joined,
        Left,
        PeerJoined,
        PeerLeft,
        PeerSidReassigned,
        Signal,
        TrackDefined,
        TrackRemoved,
        TrackRequested,
    )
)
