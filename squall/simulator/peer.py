"""Fake WebRTC peers that the simulator puts in a room: real aiortc media, no socket to the server.

A :class:`FakePeer` is a member of a signalling room like any client, but it lives
inside the simulator: it is attached to the core through an in-process
:class:`InProcessLink` (the core's ``Link`` protocol), so it has a sid, a permanent
id and track definitions, and everything it says is in the server transcript.
Its media side is :class:`squall.media.member.RoomMember`, the same WebRTC logic as
the client extension, over real aiortc peer connections on 127.0.0.1.

What it does, scripted by its arguments or by its methods:

- offers synthetic tracks: video whose frames carry their index in the pixels
  (:class:`~squall.media.tracks.IndexedVideoTrack`) and a 440 Hz tone;
- requests the tracks other members define (``request="all"``, a list of track
  ids, or ``"none"``);
- reads every track it receives with a :class:`~squall.media.probe.TrackProbe` and
  reports, per sender and track, the frames, their order, frozen and black frames
  (:meth:`FakePeer.report`);
- answers data-channel messages with an echo when ``echo=True``;
- drops and recovers its signalling connection (:meth:`FakePeer.reconnect`) so the
  others see ``peer_sid_reassigned`` while its media keeps flowing.

::

    async with Simulator() as sim:
        bob = await FakePeer.join(sim, "bob", room="lobby")
        ...
        assert bob.report()["alice/video-1"].in_order_share == 1.0
        await bob.close()
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from aiortc import RTCIceServer
from aiortc.mediastreams import MediaStreamTrack

from squall.media.events import Events
from squall.media.ice import rtc_configuration
from squall.media.member import RoomMember
from squall.media.probe import MediaReport, TrackProbe
from squall.media.tracks import IndexedVideoTrack, ToneAudioTrack

from .core import Connection, SimulatorCore
from .dialects.reference import ReferenceDialect
from .ops import Authenticate
from .seam import Handshake
from .server import Simulator

__all__ = ["FakePeer", "InProcessLink", "ReceivedTrack", "RequestPolicy"]

log = logging.getLogger(__name__)

DEADLINE = 10.0


class InProcessLink:
    """A core ``Link`` whose frames go to a Python callback on the next loop iteration.

    Delivery is deferred with ``call_soon`` so the core is never re-entered from its own
    send, and frames keep their order. ``close`` and ``abort`` end the connection the
    way a socket would: the core hears ``disconnected`` (1006 for an abort).
    """

    def __init__(self, core: SimulatorCore, owner: FakePeer) -> None:
        self.id = core.new_connection_id()
        self.core = core
        self.owner = owner
        self.conn: Connection | None = None
        self.closed = False
        self._loop = asyncio.get_running_loop()

    def send(self, data: str | bytes) -> bool:
        if self.closed:
            return False
        self._loop.call_soon(self.owner._deliver, self, data)
        return True

    def close(self, code: int, reason: str) -> None:
        self._end(code, reason)

    def abort(self) -> None:
        self._end(1006, "")

    def _end(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        if self.conn is not None:
            self._loop.call_soon(self.core.disconnected, self.conn, code, reason)
        self._loop.call_soon(self.owner._link_closed, self, code, reason)


@dataclass(frozen=True)
class ReceivedTrack:
    sender: str  # the sender's permanent id
    track_id: str
    report: MediaReport


RequestPolicy = Literal["all", "none"] | Sequence[str]


class FakePeer:
    """A scripted WebRTC member of a room, inside the simulator (see the module docstring)."""

    def __init__(
        self,
        sim: Simulator | SimulatorCore,
        name: str,
        *,
        video: bool = True,
        audio: bool = True,
        request: RequestPolicy = "all",
        echo: bool = False,
        fps: int = 30,
        ice_servers: Sequence[str | RTCIceServer] = (),
    ) -> None:
        self.core = sim.core if isinstance(sim, Simulator) else sim
        self.name = name
        self.request = request
        self.echo = echo
        self.events = Events()
        self.member = RoomMember(
            self._send,
            configuration=rtc_configuration(ice_servers),
            permanent_id=name,
            events=self.events,
            name=f"fake:{name}",
        )
        self.link: InProcessLink | None = None
        self.room: str | None = None
        self.probes: dict[tuple[str, str], TrackProbe] = {}  # (permanent id, track id)
        self.frames: list[dict[str, Any]] = []
        self._waiting: dict[Any, asyncio.Future[dict[str, Any]]] = {}
        self._ids = 0
        self.video: IndexedVideoTrack | None = IndexedVideoTrack(fps) if video else None
        self.audio: ToneAudioTrack | None = ToneAudioTrack() if audio else None
        if self.video is not None:
            self.member.add_track(self.video, {"label": f"{name} synthetic video"}, id="video")
        if self.audio is not None:
            self.member.add_track(self.audio, {"label": f"{name} 440 Hz tone"}, id="audio")
        self.events.on("peer_track_defined", self._on_defined)
        self.events.on("peer_track_identified", self._on_identified)
        self.events.on("message", self._on_message)

    @classmethod
    async def join(
        cls, sim: Simulator | SimulatorCore, name: str, room: str, **kw: Any
    ) -> FakePeer:
        """Create a fake peer, connect it to the core and join ``room``."""
        peer = cls(sim, name, **kw)
        await peer.connect()
        await peer.join_room(room)
        return peer

    # --- signalling --------------------------------------------------------------------------

    @property
    def sid(self) -> str | None:
        return self.member.sid

    async def connect(self) -> str:
        """Attach to the core as user ``name`` (token in the "URL": authenticated at once)."""
        link = InProcessLink(self.core, self)
        self.link = link
        fut = self._expect("authenticated")
        wire, _ = ReferenceDialect(self.core).open(link.id, Handshake("/fake-peer", {}))
        link.conn = self.core.connect(link, wire, Authenticate(token=self.name), path="/fake-peer")
        frame = await asyncio.wait_for(fut, DEADLINE)
        return str(frame["sid"])

    async def join_room(self, room: str, *, prev_sid: str | None = None) -> dict[str, Any]:
        self.room = room
        frame: dict[str, Any] = {"type": "join", "room": room, "permanent_id": self.name}
        if prev_sid:
            frame["prev_sid"] = prev_sid
        return await self._request(frame)

    async def leave_room(self) -> None:
        if self.room is None:
            return
        await self._request({"type": "leave", "room": self.room})
        self.member.left_room()
        self.room = None

    async def reconnect(self) -> str:
        """Drop the signalling connection (as a network failure: 1006) and come back.

        The core sees the old sid disconnect, then this peer join again with
        ``prev_sid``: the others get ``peer_sid_reassigned``. WebRTC media is peer to
        peer and keeps flowing. Returns the new sid.
        """
        old = self.sid
        if self.link is not None:
            self.link.abort()
            await asyncio.sleep(0)  # let the core hear of it first, as with a real socket
        await self.connect()
        if self.room is not None:
            await self.join_room(self.room, prev_sid=old)
        return str(self.sid)

    def _send(self, frame: dict[str, Any]) -> None:
        link = self.link
        if link is None or link.closed or link.conn is None:
            log.info("fake peer %s offline, dropped %s", self.name, frame.get("type"))
            return
        self.core.receive(link.conn, json.dumps(frame))

    async def _request(self, frame: dict[str, Any]) -> dict[str, Any]:
        self._ids += 1
        ident = f"{self.name}-{self._ids}"
        fut = self._expect(ident)
        self._send({**frame, "id": ident})
        answer = await asyncio.wait_for(fut, DEADLINE)
        if answer.get("type") == "error":
            raise RuntimeError(f"fake peer {self.name}: {answer.get('code')}: {answer}")
        return answer

    def _expect(self, key: Any) -> asyncio.Future[dict[str, Any]]:
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[key] = fut
        return fut

    def _deliver(self, link: InProcessLink, data: str | bytes) -> None:
        if link is not self.link:
            return  # a frame for a connection this peer has already abandoned
        frame = json.loads(data)
        self.frames.append(frame)
        for key in (frame.get("type"), frame.get("id")):
            fut = self._waiting.pop(key, None) if key is not None else None
            if fut is not None and not fut.done():
                fut.set_result(frame)
        if frame.get("type") == "ping":
            self._send({"type": "pong", "id": frame.get("id")})
        self.member.handle(frame)

    def _link_closed(self, link: InProcessLink, code: int, reason: str) -> None:
        self.events.emit("signalling_closed", code, reason)

    # --- media scripting ---------------------------------------------------------------------

    def _wants(self, track_id: str) -> bool:
        if self.request == "all":
            return True
        if self.request == "none":
            return False
        return track_id in self.request

    def _on_defined(self, sid: str, definition: dict[str, Any]) -> None:
        if self._wants(definition["id"]):
            self.member.request_peer_track(sid, definition["id"])

    def _on_identified(self, sid: str, track_id: str, track: MediaStreamTrack) -> None:
        key = (self.member.peer(sid).permanent_id, track_id)
        old = self.probes.get(key)
        if old is not None and old.track is track:
            return
        self.probes[key] = TrackProbe(track)

    def _on_message(self, sender: str, message: Any) -> None:
        if self.echo:
            self.member.send_message({"echo": message}, to=sender)

    def add_track(
        self, track: MediaStreamTrack, description: Any = None, *, id: str | None = None
    ) -> str:
        return self.member.add_track(track, description, id=id)

    def remove_track(self, track_id: str) -> str | None:
        return self.member.remove_track(track_id)

    def probe(self, sender: str, track_id: str) -> TrackProbe:
        """The receiver of ``sender``'s (permanent id) track, once it was identified."""
        try:
            return self.probes[(sender, track_id)]
        except KeyError:
            have = ", ".join(f"{s}/{t}" for s, t in self.probes) or "none"
            raise KeyError(
                f"{self.name} received no track {sender}/{track_id} (has: {have})"
            ) from None

    def report(self) -> dict[str, MediaReport]:
        """What this peer received, by ``"<sender permanent id>/<track id>"``."""
        return {f"{s}/{t}": p.report() for (s, t), p in self.probes.items()}

    async def close(self) -> None:
        """Stop the probes, close every peer connection, leave the core."""
        for probe in self.probes.values():
            await probe.stop()
        await self.member.close()
        for track in (self.video, self.audio):
            if track is not None:
                track.stop()
        if self.link is not None:
            self.link.close(1000, "fake peer closed")
            await asyncio.sleep(0)
