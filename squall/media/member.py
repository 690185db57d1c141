"""One member of a signalling room that exchanges media with every other member over WebRTC.

Theory of operation
-------------------
A :class:`RoomMember` is fed the server's signalling frames (docs/protocol.md §8) by
its owner (the reference client's WebRTC extension, or the simulator's fake peer)
through :meth:`RoomMember.handle`, and sends frames through the ``send`` callable it
was given. It knows nothing of sockets, so the same code runs over a WebSocket and
over an in-process link to the simulator core.

For every other member it holds a :class:`RemotePeer` with **two** aiortc peer
connections, one per direction:

- ``outbound``: this member offers; it carries this member's tracks (``sendonly``)
  and its data channel. Only this member ever renegotiates it.
- ``inbound``: the remote member offers; this member answers.

aiortc has no ``rollback`` (``setLocalDescription({type: "rollback"})``), so the
"perfect negotiation" pattern for one shared connection cannot be implemented: two
members renegotiating at once (both adding a track) would deadlock in
``have-local-offer``. With one offerer per connection there is no glare at all, each
side renegotiates whenever its own tracks change, and a track is identified by the
``{mid: track_id}`` map sent with every offer.

Rules
-----
- Both members start their outbound connection as soon as they know of each other
  (``joined`` lists the peers already there; ``peer_joined`` announces a newcomer).
- Offers and answers travel as ``signal`` frames, ``kind`` offer/answer,
  ``data = {"type", "sdp", "tracks": {mid: track_id}}``. aiortc has no local trickle
  ICE, so candidates are in the SDP; ``candidate`` signals from a trickling peer are
  still applied (``data = {"candidate", "sdpMid", "sdpMLineIndex", "dir"}``).
- A track is *defined* (``track_define``: peers learn it exists), then *requested* by
  a peer (``track_request``), then sent to that peer only, by renegotiating the
  outbound connection to it. ``remove_track`` sends ``track_remove`` and stops it on
  every connection; ``remove_peer_track`` asks the owner over the data channel to
  stop sending it here.
- ``peer_left`` with reason ``disconnected`` does not end the media: the WebRTC
  connections are peer to peer and survive a signalling reconnect. The peer is
  re-keyed when ``peer_sid_reassigned`` arrives (RTCCafe's reassignPeerSid). Reason
  ``left``, a ``bye`` signal, or a connection that fails ends it
  (``disconnect_from_peer``).
- After (re)joining, the member defines its tracks again: the server forgot them
  when its old connection went away.
- On a signaller without track frames (RTCCafe's: ``tracks_over_server=False``) the
  definitions, removals and requests go peer to peer over the data channel instead,
  as RTCCafe's own client sends them: ``{"t": "define", "track": definition}``,
  ``{"t": "undefine", "track_id"}``, ``{"t": "request", "track_id"}``. Every
  definition is announced again whenever an outbound channel opens (a peer that joins
  later, a peer re-created after a reconnect); a request or message for a peer whose
  channel is not open yet waits for it.

Events (RTCCafe's, in snake case): ``connect_to_peer(sid)``, ``disconnect_from_peer(sid)``,
``peer_track_defined(sid, definition)``, ``peer_track_identified(sid, id, track)``,
``peer_track_removed(sid, id)``, ``peer_track_definition_removed(sid, id, kind, description)``,
``reassign_peer_sid(old_sid, sid)``, ``message(sender, message)``, plus
``joined(sid, room)`` and ``signalling_error(frame)``.

Time: the member's ``clock`` (its events' clock; real by default) stamps events and
``connected_at``. The guards on aiortc's negotiation (``ANSWER_TIMEOUT``) stay in real
seconds whatever that clock: aiortc gathers, handshakes and connects on the wall clock.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiortc import (
    RTCConfiguration,
    RTCDataChannel,
    RTCPeerConnection,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamTrack
from aiortc.sdp import candidate_from_sdp

from ..clock import Clock
from . import ice
from .events import Events
from .observe import StateLog

__all__ = ["LocalTrack", "RemotePeer", "RoomMember"]

log = logging.getLogger(__name__)

Frame = dict[str, Any]
DATA_CHANNEL_LABEL = "squall"
ANSWER_TIMEOUT = 10.0  # real seconds: how long aiortc may take to negotiate, on the wall clock


@dataclass
class LocalTrack:
    id: str
    kind: str
    description: dict[str, Any]
    track: MediaStreamTrack

    def definition(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "description": self.description}


@dataclass(eq=False)
class RemotePeer:
    """Everything held for one other member, keyed by its current sid."""

    sid: str
    permanent_id: str
    outbound: RTCPeerConnection
    out_channel: RTCDataChannel
    out_states: StateLog
    inbound: RTCPeerConnection | None = None
    in_channel: RTCDataChannel | None = None
    in_states: StateLog | None = None
    definitions: dict[str, dict[str, Any]] = field(default_factory=dict)
    tracks: dict[str, MediaStreamTrack] = field(default_factory=dict)
    identified_mids: dict[str, str] = field(default_factory=dict)  # inbound mid -> track id
    sending: dict[str, RTCRtpTransceiver] = field(default_factory=dict)
    wanted: set[str] = field(default_factory=set)  # track ids to send; applied by negotiation
    outbox: list[dict[str, Any]] = field(default_factory=list)  # envelopes for the channel
    signalling_detached: bool = False
    connected: bool = False
    closed: bool = False
    connected_at: float | None = None
    # outbound renegotiation
    negotiating: bool = False
    dirty: bool = False
    offers: int = 0
    answer: asyncio.Future[dict[str, Any]] | None = None
    inbound_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # held from an outbound offer until its answer is applied (see _add_candidate)
    outbound_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class RoomMember:
    """The WebRTC side of one member of one room; drive it with :meth:`handle`."""

    def __init__(
        self,
        send: Callable[[Frame], None],
        *,
        configuration: RTCConfiguration | None = None,
        permanent_id: str | None = None,
        events: Events | None = None,
        name: str = "member",
        redefine_on_join: bool = True,
        tracks_over_server: bool = True,
        clock: Clock | None = None,
    ) -> None:
        """``clock`` stamps events and ``connected_at`` (default: ``events``' clock);
        ``tracks_over_server=False`` sends track definitions, removals and requests over
        the data channel (a signaller without track frames, see the module docstring)."""
        self._send = send
        self.configuration = configuration or ice.rtc_configuration()
        self.permanent_id = permanent_id
        self.events = events or Events(clock)
        self.clock: Clock = clock or self.events.clock
        self.name = name
        self.redefine_on_join = redefine_on_join
        self.tracks_over_server = tracks_over_server
        self.sid: str | None = None
        self.room: str | None = None
        self.local: dict[str, LocalTrack] = {}
        self.peers: dict[str, RemotePeer] = {}
        self.relay = MediaRelay()
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        ice.acquire()

    # --- public API (RTCCafe's, in snake case) ------------------------------------------------

    def add_track(
        self,
        track: MediaStreamTrack,
        description: dict[str, Any] | str | None = None,
        *,
        id: str | None = None,
    ) -> str:
        """Make ``track`` discoverable by the room's peers; returns its id."""
        track_id = id or f"{track.kind}-{next(self._ids)}"
        if track_id in self.local:
            raise ValueError(f"a track with id {track_id!r} is already added")
        if isinstance(description, str):
            description = {"label": description}
        local = LocalTrack(track_id, track.kind, dict(description or {}), track)
        self.local[track_id] = local
        if not self.tracks_over_server:
            for peer in self.peers.values():
                self._channel_send(peer, {"t": "define", "track": local.definition()})
        elif self.room is not None:
            self._send({"type": "track_define", "room": self.room, "track": local.definition()})
        return track_id

    def remove_track(self, track_id: str) -> str | None:
        """Stop sending a track to everyone and make it undiscoverable; its id, or None."""
        local = self.local.pop(track_id, None)
        if local is None:
            return None
        if not self.tracks_over_server:
            for peer in self.peers.values():
                self._channel_send(peer, {"t": "undefine", "track_id": track_id})
        elif self.room is not None:
            self._send({"type": "track_remove", "room": self.room, "track_id": track_id})
        for peer in self.peers.values():
            self._stop_sending(peer, track_id)
        return track_id

    def get_tracks(self, id_filter: Iterable[str] | None = None) -> list[dict[str, Any]]:
        wanted = set(id_filter) if id_filter is not None else None
        return [
            {**t.definition(), "track": t.track}
            for t in self.local.values()
            if wanted is None or t.id in wanted
        ]

    def get_peer_track_definitions(
        self, sid_filter: Iterable[str] | None = None, id_filter: Iterable[str] | None = None
    ) -> dict[str, dict[str, dict[str, Any]]]:
        sids, ids = _set(sid_filter), _set(id_filter)
        return {
            sid: {i: dict(d) for i, d in p.definitions.items() if ids is None or i in ids}
            for sid, p in self.peers.items()
            if sids is None or sid in sids
        }

    def get_peer_tracks(
        self, sid_filter: Iterable[str] | None = None, id_filter: Iterable[str] | None = None
    ) -> dict[str, dict[str, MediaStreamTrack]]:
        sids, ids = _set(sid_filter), _set(id_filter)
        return {
            sid: {i: t for i, t in p.tracks.items() if ids is None or i in ids}
            for sid, p in self.peers.items()
            if sids is None or sid in sids
        }

    def request_peer_track(self, sid: str, track_id: str) -> None:
        """Ask peer ``sid`` to stream track ``track_id`` here (through the server, or over
        the data channel when the server has no track frames)."""
        if self.room is None:
            raise RuntimeError("not in a room: join one first")
        if not self.tracks_over_server:
            self._channel_send(self.peer(sid), {"t": "request", "track_id": track_id}, queue=True)
            return
        self._send({"type": "track_request", "room": self.room, "to": sid, "track_id": track_id})

    def remove_peer_track(self, sid: str, track_id: str) -> str | None:
        """Stop receiving a peer's track: the peer is asked to stop sending it. Its id, or None."""
        peer = self.peers.get(sid)
        if peer is None or track_id not in peer.tracks:
            return None
        self._channel_send(peer, {"t": "stop", "track_id": track_id})
        self._forget_peer_track(peer, track_id)
        return track_id

    def send_message(self, message: Any, to: str | None = None) -> None:
        """Send a JSON-serialisable message to one peer or, with no ``to``, every peer.

        It goes over the data channel; to a peer whose channel is not open yet it is
        relayed by the server instead (``signal`` of kind ``message``), or, on a signaller
        without track frames (which relays no messages either), sent once it opens.
        """
        targets = [self.peers[to]] if to is not None and to in self.peers else []
        if to is None:
            targets = list(self.peers.values())
        elif not targets:
            raise KeyError(f"no peer {to!r} (peers: {', '.join(self.peers) or 'none'})")
        relay = self.tracks_over_server  # a signaller without track frames relays no messages
        for peer in targets:
            sent = self._channel_send(peer, {"t": "message", "data": message}, queue=not relay)
            if not sent and relay:
                self._signal(peer.sid, "message", message)

    @property
    def connected_peers(self) -> list[str]:
        return [sid for sid, p in self.peers.items() if p.connected]

    @property
    def discovered_peers(self) -> list[str]:
        return list(self.peers)

    def peer(self, sid: str) -> RemotePeer:
        try:
            return self.peers[sid]
        except KeyError:
            raise KeyError(f"no peer {sid!r} (peers: {', '.join(self.peers) or 'none'})") from None

    # --- signalling in ------------------------------------------------------------------------

    def handle(self, frame: Frame) -> None:
        """One frame from the signalling server; frames of other rooms and types are ignored."""
        kind = frame.get("type")
        if self._closed or kind is None:
            return
        if frame.get("room") not in (None, self.room) and kind != "joined":
            return
        handler = getattr(self, f"_on_{kind}", None)
        if handler is not None:
            handler(frame)

    def _on_joined(self, frame: Frame) -> None:
        first = self.room != frame["room"]
        self.sid, self.room = frame["sid"], frame["room"]
        self.permanent_id = frame.get("permanent_id", self.permanent_id)
        redefine = self.tracks_over_server and (first or self.redefine_on_join)
        for local in self.local.values() if redefine else ():
            # tracks added before joining; after a rejoin, the server forgot them with our
            # old connection (§8) unless the signalling client defines them again itself
            self._send({"type": "track_define", "room": self.room, "track": local.definition()})
        for info in frame.get("peers", []):
            peer = self._known(info["sid"], info["permanent_id"])
            for definition in info.get("tracks", []):
                self._define(peer, definition)
        self.events.emit("joined", self.sid, self.room)

    def _known(self, sid: str, permanent_id: str) -> RemotePeer:
        """The peer with this sid, or the one with this permanent id re-keyed, or a new one."""
        peer = self.peers.get(sid)
        if peer is None:
            old = next((p for p in self.peers.values() if p.permanent_id == permanent_id), None)
            if old is not None:
                self._rekey(old.sid, sid)
                peer = old
            else:
                peer = self._new_peer(sid, permanent_id)
        peer.signalling_detached = False
        return peer

    def _on_peer_joined(self, frame: Frame) -> None:
        info = frame["peer"]
        peer = self._known(info["sid"], info["permanent_id"])
        for definition in info.get("tracks", []):
            self._define(peer, definition)

    def _on_peer_sid_reassigned(self, frame: Frame) -> None:
        old, new = frame["old_sid"], frame["new_sid"]
        if old in self.peers:
            self._rekey(old, new)
            self.peers[new].signalling_detached = False
        else:
            self._known(new, frame["permanent_id"])

    def _on_peer_left(self, frame: Frame) -> None:
        peer = self.peers.get(frame["sid"])
        if peer is None:
            return
        if frame.get("reason") == "disconnected":
            peer.signalling_detached = True  # media is peer to peer: wait for a reassignment
            return
        self._end_peer(peer)

    def _on_signal(self, frame: Frame) -> None:
        sender, kind, data = frame["from"], frame["kind"], frame.get("data")
        if kind == "message":
            self.events.emit("message", sender, data)
            return
        peer = self.peers.get(sender) or self._known(sender, frame["from_permanent_id"])
        if kind == "bye":
            self._end_peer(peer)
            return
        if kind not in ("offer", "answer", "candidate"):
            return
        if not isinstance(data, dict):
            # the protocol leaves ``data`` free-form; these three must carry an SDP object
            log.warning(
                "%s: %s from %s without an object as data: %r", self.name, kind, sender, data
            )
            self.events.emit("webrtc_error", f"{kind} from {sender}: data is not an object")
            return
        if kind == "offer":
            self._spawn(self._answer_offer(peer, data))
        elif kind == "answer":
            if peer.answer is not None and not peer.answer.done():
                peer.answer.set_result(data)
        else:
            self._spawn(self._add_candidate(peer, data))

    def _on_track_defined(self, frame: Frame) -> None:
        peer = self.peers.get(frame["sid"])
        if peer is not None:
            self._define(peer, frame["track"])

    def _on_track_removed(self, frame: Frame) -> None:
        peer = self.peers.get(frame["sid"])
        if peer is not None:
            self._undefine(peer, frame["track_id"])

    def _undefine(self, peer: RemotePeer, track_id: str) -> None:
        if track_id in peer.tracks:
            self._forget_peer_track(peer, track_id)
        definition = peer.definitions.pop(track_id, None)
        if definition is not None:
            self.events.emit(
                "peer_track_definition_removed",
                peer.sid,
                track_id,
                definition["kind"],
                definition.get("description", {}),
            )

    def _on_track_requested(self, frame: Frame) -> None:
        peer = self.peers.get(frame["from"])
        if peer is not None:
            self._requested(peer, frame["track_id"])

    def _requested(self, peer: RemotePeer, track_id: Any) -> None:
        local = self.local.get(track_id) if isinstance(track_id, str) else None
        if local is None or local.id in peer.wanted:
            return
        self._start_sending(peer, local)

    def _on_left(self, frame: Frame) -> None:
        """The server confirmed our ``leave`` (whoever sent it): every peer ends."""
        if frame.get("room") == self.room:
            self.left_room()

    def _on_error(self, frame: Frame) -> None:
        self.events.emit("signalling_error", frame)

    # --- peers --------------------------------------------------------------------------------

    def _new_peer(self, sid: str, permanent_id: str) -> RemotePeer:
        pc = RTCPeerConnection(self.configuration)
        channel = pc.createDataChannel(DATA_CHANNEL_LABEL)
        peer = RemotePeer(
            sid=sid,
            permanent_id=permanent_id,
            outbound=pc,
            out_channel=channel,
            out_states=StateLog.attach(pc),
        )
        self.peers[sid] = peer
        pc.on("connectionstatechange", lambda: self._check_connection(peer))
        channel.on("open", lambda: self._channel_opened(peer))
        self._negotiate(peer)
        return peer

    def _inbound(self, peer: RemotePeer) -> RTCPeerConnection:
        if peer.inbound is not None:
            return peer.inbound
        pc = RTCPeerConnection(self.configuration)
        peer.inbound, peer.in_states = pc, StateLog.attach(pc)

        @pc.on("datachannel")
        def on_datachannel(channel: RTCDataChannel) -> None:
            peer.in_channel = channel
            channel.on("message", lambda raw: self._on_channel_message(peer, raw))
            self._check_connection(peer)

        pc.on("connectionstatechange", lambda: self._check_connection(peer))
        return pc

    def _check_connection(self, peer: RemotePeer) -> None:
        if peer.closed:
            return
        pcs = [peer.outbound, peer.inbound]
        if any(pc is not None and pc.connectionState == "failed" for pc in pcs):
            self._end_peer(peer)
            return
        ready = (
            all(pc is not None and pc.connectionState == "connected" for pc in pcs)
            and peer.out_channel.readyState == "open"
            and peer.in_channel is not None
        )
        if ready and not peer.connected:
            peer.connected = True
            peer.connected_at = self.clock.now()
            self.events.emit("connect_to_peer", peer.sid)

    def _rekey(self, old: str, new: str) -> None:
        peer = self.peers.pop(old)
        peer.sid = new
        self.peers[new] = peer
        self.events.emit("reassign_peer_sid", old, new)

    def _end_peer(self, peer: RemotePeer) -> None:
        if peer.closed:
            return
        peer.closed = True
        if self.peers.get(peer.sid) is peer:
            del self.peers[peer.sid]
        for track_id in list(peer.tracks):
            self._forget_peer_track(peer, track_id)
        for track_id, definition in list(peer.definitions.items()):
            self.events.emit(
                "peer_track_definition_removed",
                peer.sid,
                track_id,
                definition["kind"],
                definition.get("description", {}),
            )
        peer.definitions.clear()
        if peer.answer is not None and not peer.answer.done():
            peer.answer.cancel()
        self._spawn(self._close_peer(peer))
        if peer.connected:
            self.events.emit("disconnect_from_peer", peer.sid)

    async def _close_peer(self, peer: RemotePeer) -> None:
        for transceiver in peer.sending.values():
            track = transceiver.sender.track
            if track is not None:
                track.stop()
        await peer.outbound.close()
        if peer.inbound is not None:
            await peer.inbound.close()

    def _define(self, peer: RemotePeer, definition: dict[str, Any]) -> None:
        definition = {
            "id": definition["id"],
            "kind": definition["kind"],
            "description": definition.get("description", {}),
        }
        if peer.definitions.get(definition["id"]) == definition:
            return  # re-defined after the peer's signalling reconnect: nothing new
        peer.definitions[definition["id"]] = definition
        self.events.emit("peer_track_defined", peer.sid, dict(definition))

    def _define_from_channel(self, peer: RemotePeer, definition: dict[str, Any]) -> None:
        """A peer's definition over the data channel: checked, as the server checks its own."""
        if not isinstance(definition.get("id"), str) or definition.get("kind") not in (
            "audio",
            "video",
        ):
            log.warning("%s: a bad track definition from %s: %r", self.name, peer.sid, definition)
            self.events.emit("webrtc_error", f"define from {peer.sid}: bad track {definition!r}")
            return
        if not isinstance(definition.get("description", {}), dict):
            definition = {**definition, "description": {"label": definition["description"]}}
        self._define(peer, definition)

    def _forget_peer_track(self, peer: RemotePeer, track_id: str) -> None:
        track = peer.tracks.pop(track_id, None)
        if track is None:
            return
        track.stop()  # its reader sees the track end
        for mid, tid in list(peer.identified_mids.items()):
            if tid == track_id:
                del peer.identified_mids[mid]
        self.events.emit("peer_track_removed", peer.sid, track_id)

    # --- media out ----------------------------------------------------------------------------

    def _start_sending(self, peer: RemotePeer, local: LocalTrack) -> None:
        peer.wanted.add(local.id)
        self._negotiate(peer)

    def _stop_sending(self, peer: RemotePeer, track_id: str) -> None:
        if track_id in peer.wanted or track_id in peer.sending:
            peer.wanted.discard(track_id)
            self._negotiate(peer)

    def _apply_wanted(self, peer: RemotePeer) -> None:
        """Attach and detach tracks to match ``peer.wanted``; only between negotiations.

        aiortc must not be changed while an offer is being created or gathered: a
        transceiver added then never gets a transport that connects.
        """
        for track_id in [t for t in peer.sending if t not in peer.wanted]:
            transceiver = peer.sending.pop(track_id)
            proxy = transceiver.sender.track
            transceiver.sender.replaceTrack(None)
            transceiver.direction = "inactive"
            if proxy is not None:
                proxy.stop()
        for track_id in [t for t in peer.wanted if t not in peer.sending]:
            local = self.local.get(track_id)
            if local is None:
                peer.wanted.discard(track_id)
                continue
            # Always a new m-line: reusing an inactive one restarts the RTP timestamps
            # (the new track's pts start at 0) and aiortc's jitter buffer drops every
            # packet that seems older than the last one it saw.
            proxy = self.relay.subscribe(local.track)
            peer.sending[track_id] = peer.outbound.addTransceiver(proxy, direction="sendonly")

    def _negotiate(self, peer: RemotePeer) -> None:
        """(Re)negotiate the outbound connection; calls while one is in flight coalesce."""
        peer.dirty = True
        if not peer.negotiating:
            peer.negotiating = True
            self._spawn(self._negotiation_loop(peer))

    async def _negotiation_loop(self, peer: RemotePeer) -> None:
        pc = peer.outbound
        try:
            while peer.dirty and not peer.closed:
                if pc.remoteDescription is not None:
                    # aiortc starts senders only on the __connect() that sees DTLS connected;
                    # a renegotiation during the first handshake would leave them unstarted.
                    await _until_connected(pc)
                peer.dirty = False
                async with peer.outbound_lock:
                    self._apply_wanted(peer)
                    await pc.setLocalDescription(await pc.createOffer())
                    tracks = {t.mid: tid for tid, t in peer.sending.items() if t.mid is not None}
                    peer.offers += 1
                    peer.answer = asyncio.get_running_loop().create_future()
                    self._signal(
                        peer.sid,
                        "offer",
                        {"type": "offer", "sdp": pc.localDescription.sdp, "tracks": tracks},
                    )
                    # real seconds: a guard on aiortc and the remote peer, not a media duration
                    answer = await asyncio.wait_for(peer.answer, ANSWER_TIMEOUT)
                    if pc.signalingState == "closed":
                        return
                    await pc.setRemoteDescription(
                        RTCSessionDescription(sdp=answer["sdp"], type="answer")
                    )
        except (asyncio.CancelledError, TimeoutError, ConnectionError) as exc:
            if not peer.closed:
                log.warning("%s: negotiation with %s stopped: %r", self.name, peer.sid, exc)
                self.events.emit("negotiation_failed", peer.sid, repr(exc))
        finally:
            peer.negotiating = False

    # --- media in -----------------------------------------------------------------------------

    async def _answer_offer(self, peer: RemotePeer, data: dict[str, Any]) -> None:
        async with peer.inbound_lock:
            if peer.closed:
                return
            pc = self._inbound(peer)
            if pc.remoteDescription is not None:
                await _until_connected(pc)  # see _negotiation_loop: the same race on receivers
            await pc.setRemoteDescription(RTCSessionDescription(sdp=data["sdp"], type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            self._signal(peer.sid, "answer", {"type": "answer", "sdp": pc.localDescription.sdp})
            self._identify(peer, pc, data.get("tracks") or {})

    def _identify(self, peer: RemotePeer, pc: RTCPeerConnection, tracks: dict[str, str]) -> None:
        """Match the offer's ``{mid: track_id}`` with the receivers; announce what changed."""
        receivers = {t.mid: t.receiver.track for t in pc.getTransceivers() if t.mid is not None}
        for mid, old in list(peer.identified_mids.items()):
            if tracks.get(mid) != old:
                self._forget_peer_track(peer, old)
        for mid, track_id in tracks.items():
            track = receivers.get(mid)
            if track is None or peer.identified_mids.get(mid) == track_id:
                continue
            peer.identified_mids[mid] = track_id
            # A fresh proxy per identification: the receiver (and its RemoteStreamTrack) is
            # reused when a later track takes over a freed m-line, the proxy is not.
            track = self.relay.subscribe(track)
            peer.tracks[track_id] = track
            self.events.emit("peer_track_identified", peer.sid, track_id, track)

    async def _add_candidate(self, peer: RemotePeer, data: dict[str, Any]) -> None:
        """A trickled candidate (aiortc sends none, other clients may): apply it.

        A candidate that comes before its description is applied waits for it (aiortc drops
        one added with no remote description, ``rtcpeerconnection.py`` addIceCandidate): the
        offer's (inbound) or the answer's (outbound) application holds the lock it takes.
        """
        if not data.get("candidate"):
            return
        # "dir" is the sender's view: its outbound connection is our inbound one.
        inbound = data.get("dir", "out") == "out"
        pc = peer.inbound if inbound else peer.outbound
        if pc is None or pc.remoteDescription is None:
            async with peer.inbound_lock if inbound else peer.outbound_lock:
                pc = peer.inbound if inbound else peer.outbound
        if pc is None or pc.remoteDescription is None or pc.signalingState == "closed":
            log.warning("%s: a candidate from %s with no description to join", self.name, peer.sid)
            return
        candidate = candidate_from_sdp(data["candidate"].removeprefix("candidate:"))
        candidate.sdpMid = data.get("sdpMid")
        candidate.sdpMLineIndex = data.get("sdpMLineIndex")
        await pc.addIceCandidate(candidate)

    # --- data channel -------------------------------------------------------------------------

    def _channel_send(
        self, peer: RemotePeer, envelope: dict[str, Any], *, queue: bool = False
    ) -> bool:
        """Send one envelope to ``peer``; if its channel is not open, queue it (``queue``)
        for :meth:`_channel_opened`, or drop it. Whether it was sent now."""
        if peer.out_channel.readyState != "open":
            if queue:
                peer.outbox.append(envelope)
            return False
        peer.out_channel.send(json.dumps(envelope))
        return True

    def _channel_opened(self, peer: RemotePeer) -> None:
        """Without server track frames the channel is how a peer learns this member's
        tracks: announce every definition, then what waited for the channel."""
        if not self.tracks_over_server and not peer.closed:
            for local in self.local.values():
                self._channel_send(peer, {"t": "define", "track": local.definition()})
            outbox, peer.outbox = peer.outbox, []
            for envelope in outbox:
                self._channel_send(peer, envelope)
        self._check_connection(peer)

    def _on_channel_message(self, peer: RemotePeer, raw: str | bytes) -> None:
        try:
            envelope = json.loads(raw)
        except ValueError:
            self.events.emit("message", peer.sid, raw)
            return
        kind = envelope.get("t") if isinstance(envelope, dict) else None
        if kind == "message":
            self.events.emit("message", peer.sid, envelope.get("data"))
        elif kind == "stop":
            self._stop_sending(peer, envelope.get("track_id", ""))
        elif kind == "define" and isinstance(envelope.get("track"), dict):
            self._define_from_channel(peer, envelope["track"])
        elif kind == "undefine" and isinstance(envelope.get("track_id"), str):
            self._undefine(peer, envelope["track_id"])
        elif kind == "request":
            self._requested(peer, envelope.get("track_id"))
        else:
            self.events.emit("message", peer.sid, envelope)

    # --- plumbing -----------------------------------------------------------------------------

    def _signal(self, to: str, kind: str, data: Any) -> None:
        if self.room is not None:
            self._send({"type": "signal", "room": self.room, "to": to, "kind": kind, "data": data})

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.warning("%s: WebRTC task failed: %r", self.name, exc)
            self.events.emit("webrtc_error", repr(exc))

    def left_room(self) -> None:
        """The member left the room on purpose: every peer is ended, tracks stay added."""
        for peer in list(self.peers.values()):
            self._end_peer(peer)
        self.room = None

    async def close(self) -> None:
        """Close every peer connection and release loopback ICE; idempotent."""
        if self._closed:
            return
        for peer in list(self.peers.values()):
            self._end_peer(peer)
        self._closed = True
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        ice.release()


async def _until_connected(pc: RTCPeerConnection, timeout: float = ANSWER_TIMEOUT) -> None:
    """Wait for ``connectionState == "connected"``; raise if it fails or closes first."""
    if pc.connectionState == "connected":
        return
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def check() -> None:
        if done.done():
            return
        if pc.connectionState == "connected":
            done.set_result(None)
        elif pc.connectionState in ("failed", "closed"):
            done.set_exception(ConnectionError(f"peer connection {pc.connectionState}"))

    pc.on("connectionstatechange", check)
    try:
        await asyncio.wait_for(done, timeout)  # real seconds: aiortc connects on the wall clock
    finally:
        pc.remove_listener("connectionstatechange", check)


def _set(values: Iterable[str] | None) -> set[str] | None:
    return set(values) if values is not None else None
