"""WebRTC scenario steps: argument models, ready for the scenario engine to register.

The engine's step set (``models.STEP_ARGS``) is closed and built at import, with no
registration hook yet, so these models are not part of ``Step``. Once the engine
merges :data:`STEP_ARGS` (or loads them from an entry point) and its runner routes
``client.webrtc.*`` to driver commands of the same name and ``peer.*`` to
:class:`squall.simulator.peer.FakePeer`, the YAML in scenarios/webrtc/ can be written
with them. Until then tests/webrtc/test_scenarios.py runs the same eight scenarios.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from .models import Args, ClientArgs, DurationField, Name, Severity


class AddTrack(ClientArgs):
    """The client adds a synthetic track (indexed video or a tone) and defines it in the room."""

    _shorthand: ClassVar[str | None] = None
    kind: Literal["video", "audio"]
    id: str = Field(min_length=1)
    description: dict[str, Any] = Field(default_factory=dict)


class TrackRef(ClientArgs):
    """A client's own track by id (``client.webrtc.remove_track``)."""

    _shorthand: ClassVar[str | None] = None
    id: str = Field(min_length=1)


class PeerTrackRef(ClientArgs):
    """A peer's track: ``peer`` is a participant name (client or fake peer), not a sid."""

    _shorthand: ClassVar[str | None] = None
    peer: Name
    id: str = Field(min_length=1)


class WebRTCMessage(ClientArgs):
    _shorthand: ClassVar[str | None] = None
    message: Any = None
    to: Name | None = Field(None, description="participant name, or absent for every peer")


class FakePeerJoin(Args):
    """The simulator puts a fake aiortc peer in a room."""

    name: Name
    room: str = Field(min_length=1)
    video: bool = True
    audio: bool = True
    request: Literal["all", "none"] | list[str] = "all"
    echo: bool = False


class FakePeerRef(Args):
    _shorthand: ClassVar[str | None] = "name"
    name: Name


class ExpectMedia(Args, Severity):
    """``receiver`` has received ``sender``'s track: at least ``frames`` frames, in order."""

    receiver: Name
    sender: Name
    track: str = Field(min_length=1)
    frames: int = Field(30, ge=1)
    in_order: float = Field(1.0, ge=0, le=1, description="share of +1 steps between frames")
    black: int = Field(0, ge=0, description="at most this many black frames")
    within: DurationField = 10.0


class ExpectPeerStates(Args, Severity):
    """The whole state history of one direction's peer connection between two participants."""

    client: Name
    peer: Name
    direction: Literal["outbound", "inbound"] = "outbound"
    connection: list[str] | None = None
    signaling: list[str] | None = None


class ExpectPacketsRising(Args, Severity):
    """getStats delta over ``over``: ``client``'s packets to ``peer`` of ``kind`` rose."""

    client: Name
    peer: Name
    kind: Literal["audio", "video"] = "video"
    over: DurationField = 1.0
    at_least: int = Field(1, ge=1)


STEP_ARGS: dict[str, type[Args]] = {
    "client.webrtc.add_track": AddTrack,
    "client.webrtc.remove_track": TrackRef,
    "client.webrtc.request_peer_track": PeerTrackRef,
    "client.webrtc.remove_peer_track": PeerTrackRef,
    "client.webrtc.send_message": WebRTCMessage,
    "peer.join": FakePeerJoin,
    "peer.reconnect": FakePeerRef,
    "peer.leave": FakePeerRef,
    "expect.media": ExpectMedia,
    "expect.peer_states": ExpectPeerStates,
    "expect.packets_rising": ExpectPacketsRising,
}
"""The WebRTC steps and the model of their arguments, for the engine to merge."""
