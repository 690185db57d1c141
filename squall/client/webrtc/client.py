"""The WebRTC extension of the reference client: RTCCafe's API over squall's signalling.

::

    async with WebRTCClient(urls=[sim.url], token="alice") as alice:
        await alice.join_room("lobby")
        cam = alice.add_track(IndexedVideoTrack(), {"label": "front"})
        alice.on("peer_track_defined", lambda sid, definition: ...)
        alice.request_peer_track(bob_sid, "video-1")
        await alice.events.wait_for("peer_track_identified")

On a signaller without track frames (RTCCafe's: ``dialect="rtccafe"``) definitions,
removals and requests travel peer to peer over the data channel, as RTCCafe's own
client sends them; the API is the same.

The media logic lives in :class:`squall.media.member.RoomMember` (shared with the
simulator's fake peer); this class adds the signalling connection, the room
lifecycle and RTCCafe's names. Signalling goes through the reference client,
:class:`~squall.client.StreamingClient` (``signalling="streaming"``, the default:
reconnects, backoff, recovery, rejoin with ``prev_sid``), or through the thin
:class:`~squall.client.webrtc.signalling.WireSignalling` (``signalling="wire"``);
see docs/webrtc.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

from aiortc import RTCIceServer
from aiortc.mediastreams import MediaStreamTrack

from squall.client.streaming import StreamingClient
from squall.media.events import Events
from squall.media.ice import rtc_configuration
from squall.media.member import RemotePeer, RoomMember

from .signalling import Frame, WireSignalling
from .streaming import StreamingSignalling


class WebRTCClient:
    """A signalling client plus a WebRTC mesh: RTCCafeClient's methods and events."""

    def __init__(
        self,
        urls: Sequence[str],
        token: str,
        *,
        permanent_id: str | None = None,
        ice_servers: Sequence[str | RTCIceServer] = (),
        signalling: Literal["streaming", "wire"] = "streaming",
        **client_settings: Any,
    ) -> None:
        self.events = Events()
        self.frames: list[Frame] = []  # every signalling frame received, for assertions
        self.client: StreamingClient | None = None
        self.wire: WireSignalling | None = None
        if signalling == "streaming":
            settings = {"immediate_first_retry": True, **client_settings}
            if permanent_id is not None:
                settings["permanent_id"] = permanent_id
            self.client = StreamingClient(list(urls), token=token, **settings)
            bridge = StreamingSignalling(self.client, self._on_frame)
            send, track_frames = bridge.send, bridge.track_frames
        elif signalling == "wire":
            self.wire = WireSignalling(urls, token, self._on_frame, **client_settings)
            self.wire.permanent_id = permanent_id
            send, track_frames = self.wire.send, True
        else:
            raise ValueError(f"signalling must be 'streaming' or 'wire', got {signalling!r}")
        self._media(send, token, permanent_id, ice_servers, track_frames)

    @classmethod
    def over(
        cls,
        client: StreamingClient,
        *,
        permanent_id: str | None = None,
        ice_servers: Sequence[str | RTCIceServer] = (),
        name: str = "client",
    ) -> WebRTCClient:
        """The WebRTC extension on top of an existing reference client (the driver's).

        Rooms are joined through ``client`` itself (``client.join_room``): the member
        learns its room and sid from the ``joined`` frame, so create it before joining.
        """
        self = cls.__new__(cls)
        self.events = Events()
        self.frames = []
        self.client = client
        self.wire = None
        bridge = StreamingSignalling(client, self._on_frame)
        self._media(bridge.send, name, permanent_id, ice_servers, bridge.track_frames)
        return self

    def _media(
        self,
        send: Callable[[Frame], None],
        token: str,
        permanent_id: str | None,
        ice_servers: Sequence[str | RTCIceServer],
        track_frames: bool,
    ) -> None:
        """``track_frames``: whether the signalling server has track frames; without them
        (RTCCafe's signaller) tracks are defined and requested over the data channel."""
        self.member = RoomMember(
            send,
            configuration=rtc_configuration(ice_servers),
            permanent_id=permanent_id,
            events=self.events,
            name=token,
            # the reference client defines the room's tracks again on every joined (§8)
            redefine_on_join=self.client is None,
            tracks_over_server=track_frames,
        )

    def _on_frame(self, frame: Frame) -> None:
        self.frames.append(frame)
        self.member.handle(frame)
        if frame.get("type") == "authenticated":
            self.events.emit("acquire_sid", frame["sid"])

    # --- lifecycle ----------------------------------------------------------------------------

    async def connect(self) -> str:
        """Connect to the signalling server; returns the sid."""
        if self.client is not None:
            await self.client.connect()
            return str(self.client.sid)
        assert self.wire is not None
        frame = await self.wire.connect()
        return str(frame["sid"])

    async def join_room(self, room: str) -> Any:
        if self.client is not None:
            await self.client.connect()
            return await self.client.join_room(room, permanent_id=self.member.permanent_id)
        assert self.wire is not None
        if self.wire.state == "setup":
            await self.wire.connect()
        return await self.wire.join(room, permanent_id=self.member.permanent_id)

    async def leave_room(self, room: str) -> None:
        if self.client is not None:
            await self.client.leave_room(room)
        else:
            assert self.wire is not None
            await self.wire.leave(room)
        self.member.left_room()

    async def reconnect(self) -> str:
        """Drop the signalling connection and wait to be back in the room; the new sid.

        WebRTC connections are peer to peer and stay up; the server gives this client a
        new sid and its peers re-key it (``reassign_peer_sid``).
        """
        mark = self.events.mark()
        old = self.sid
        if self.client is not None:
            await self.client.reconnect()
        else:
            assert self.wire is not None
            await self.wire.drop()
        await self.events.wait_for("joined", lambda sid, room: sid != old, since=mark)
        return str(self.sid)

    async def close(self) -> None:
        """Close every peer connection, then the signalling connection."""
        await self.member.close()
        if self.client is not None:
            await self.client.disconnect()
        if self.wire is not None:
            await self.wire.close()

    async def __aenter__(self) -> WebRTCClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- RTCCafe's properties -----------------------------------------------------------------

    @property
    def sid(self) -> str | None:
        return self.member.sid

    @property
    def permanent_id(self) -> str | None:
        return self.member.permanent_id

    @property
    def state(self) -> str:
        if self.client is not None:
            return str(self.client.status.value)
        assert self.wire is not None
        return self.wire.state

    @property
    def connected_peers(self) -> list[str]:
        return self.member.connected_peers

    @property
    def discovered_peers(self) -> list[str]:
        return self.member.discovered_peers

    def peer(self, sid: str) -> RemotePeer:
        """The two peer connections and maps held for one peer (for assertions)."""
        return self.member.peer(sid)

    # --- RTCCafe's methods --------------------------------------------------------------------

    def on(self, event: str, handler: Callable[..., Any]) -> None:
        self.events.on(event, handler)

    def off(self, event: str | None = None, handler: Callable[..., Any] | None = None) -> None:
        self.events.off(event, handler)

    def add_track(
        self,
        track: MediaStreamTrack,
        description: dict[str, Any] | str | None = None,
        *,
        id: str | None = None,
    ) -> str:
        return self.member.add_track(track, description, id=id)

    def remove_track(self, track_id: str) -> str | None:
        return self.member.remove_track(track_id)

    def get_tracks(self, id_filter: Iterable[str] | None = None) -> list[dict[str, Any]]:
        return self.member.get_tracks(id_filter)

    def get_peer_track_definitions(
        self, sid_filter: Iterable[str] | None = None, id_filter: Iterable[str] | None = None
    ) -> dict[str, dict[str, dict[str, Any]]]:
        return self.member.get_peer_track_definitions(sid_filter, id_filter)

    def get_peer_tracks(
        self, sid_filter: Iterable[str] | None = None, id_filter: Iterable[str] | None = None
    ) -> dict[str, dict[str, MediaStreamTrack]]:
        return self.member.get_peer_tracks(sid_filter, id_filter)

    def request_peer_track(self, sid: str, track_id: str) -> None:
        self.member.request_peer_track(sid, track_id)

    def remove_peer_track(self, sid: str, track_id: str) -> str | None:
        return self.member.remove_peer_track(sid, track_id)

    def send_message(self, message: Any, to: str | None = None) -> None:
        self.member.send_message(message, to=to)
