"""The WebRTC commands of the driver protocol (``webrtc.*``), on the driver's own client.

:class:`WebRTCDriver` wraps a :class:`~squall.client.webrtc.WebRTCClient` built over
the driver's :class:`~squall.client.StreamingClient` (one signalling connection for
everything), turns its events into ``webrtc.*`` driver events with JSON data, and
reads every track it receives with a :class:`~squall.media.TrackProbe` from the
moment it is identified, so ``webrtc.media_report`` can say what arrived.

Peers are named by sid in commands (what any client knows); a ``peer`` argument
also accepts a permanent id, which survives a peer's signalling reconnect. Every
event and report carries both. Media windows (``over``) and waits (``timeout``)
are seconds of the room member's clock, real time: media runs on the wall clock,
not the driver's timescale.
docs/driver.md lists the commands and events.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from squall.client.streaming import StreamingClient
from squall.clock import wait_for
from squall.media.events import MEMBER_EVENTS
from squall.media.member import RemotePeer
from squall.media.observe import stats_delta, stats_snapshot
from squall.media.probe import TrackProbe
from squall.media.tracks import IndexedVideoTrack, ToneAudioTrack

from .client import WebRTCClient

EVENTS = (*MEMBER_EVENTS, "webrtc_error")
"""The extension's events, forwarded as ``webrtc.<name>`` driver events."""

DEFAULT_TIMEOUT = 10.0


class CommandArgumentError(ValueError):
    """A ``webrtc.*`` command with missing or wrong arguments (the driver replies with it)."""


class WebRTCDriver:
    """The ``webrtc.*`` commands; ``emit(event, data)`` writes one driver event."""

    def __init__(
        self,
        client: StreamingClient,
        emit: Callable[[str, Any], None],
        *,
        permanent_id: str | None = None,
        name: str = "client",
    ) -> None:
        self.rtc = WebRTCClient.over(client, permanent_id=permanent_id, name=name)
        self.emit = emit
        self.known: dict[str, RemotePeer] = {}  # permanent id -> the latest peer object
        self.sids: dict[str, str] = {}  # every sid seen -> permanent id
        self.probes: dict[tuple[str, str], TrackProbe] = {}  # (permanent id, track id)
        self.local: dict[str, MediaStreamTrack] = {}
        self.clock = self.rtc.member.clock  # the media clock, real time (module docstring)
        self._changed = asyncio.Event()
        for event in EVENTS:
            self.rtc.on(event, self._forwarder(event))

    # --- events -------------------------------------------------------------------------------

    def _remember(self, sid: str) -> str | None:
        peer = self.rtc.member.peers.get(sid)
        if peer is not None:
            self.known[peer.permanent_id] = peer
            self.sids[sid] = peer.permanent_id
        return self.sids.get(sid)

    def _forwarder(self, event: str) -> Callable[..., None]:
        def forward(*args: Any) -> None:
            self.emit(f"webrtc.{event}", self._data(event, args))

        return forward

    def _data(self, event: str, args: tuple[Any, ...]) -> Any:
        if event in ("signalling_error", "webrtc_error"):
            return {"error": args[0]}
        if event == "reassign_peer_sid":
            old, new = args
            pid = self._remember(new)
            self.sids[old] = pid or self.sids.get(old, "")
            return {"old_sid": old, "sid": new, "permanent_id": pid}
        sid = args[0]
        out: dict[str, Any] = {"peer": sid, "permanent_id": self._remember(sid)}
        if event == "peer_track_defined":
            out["track"] = args[1]
        elif event == "peer_track_identified":
            track_id, track = args[1], args[2]
            out.update(id=track_id, kind=track.kind)
            self._probe(out["permanent_id"] or sid, track_id, track)
        elif event == "peer_track_removed":
            out["id"] = args[1]
        elif event == "peer_track_definition_removed":
            out.update(id=args[1], kind=args[2], description=args[3])
        elif event == "message":
            out["message"] = args[1]
        elif event == "negotiation_failed":
            out["error"] = args[1]
        return out

    def _probe(self, owner: str, track_id: str, track: MediaStreamTrack) -> None:
        old = self.probes.get((owner, track_id))
        if old is not None and old.track is track:
            return
        self.probes[(owner, track_id)] = TrackProbe(track)
        self._changed.set()

    # --- helpers ------------------------------------------------------------------------------

    def _sid(self, ref: Any) -> str:
        """A peer's current sid from a sid or a permanent id."""
        if not isinstance(ref, str) or not ref:
            raise CommandArgumentError("'peer' must be a peer's sid or permanent id")
        peers = self.rtc.member.peers
        if ref in peers:
            return ref
        for sid, peer in peers.items():
            if peer.permanent_id == ref:
                return sid
        known = ", ".join(f"{s} ({p.permanent_id})" for s, p in peers.items()) or "none"
        raise CommandArgumentError(f"no peer {ref!r} (peers: {known})")

    def _peer_object(self, ref: str) -> RemotePeer:
        with contextlib.suppress(CommandArgumentError):
            return self.rtc.member.peers[self._sid(ref)]
        pid = self.sids.get(ref, ref)
        if pid in self.known:
            return self.known[pid]  # a peer that has gone: its history is still here
        raise CommandArgumentError(f"no peer {ref!r}, now or before")

    def _owner(self, ref: str) -> str:
        """The permanent id for a sid or permanent id (probes are keyed by it)."""
        if ref in self.sids:
            return self.sids[ref]
        with contextlib.suppress(CommandArgumentError):
            return self.rtc.member.peers[self._sid(ref)].permanent_id
        return ref

    @staticmethod
    def _need(args: dict[str, Any], key: str) -> Any:
        if key not in args:
            raise CommandArgumentError(f"missing argument {key!r}")
        return args[key]

    # --- commands -----------------------------------------------------------------------------

    async def add_track(self, args: dict[str, Any]) -> Any:
        kind = self._need(args, "kind")
        if kind == "video":
            track: MediaStreamTrack = IndexedVideoTrack(int(args.get("fps", 30)))
        elif kind == "audio":
            track = ToneAudioTrack()
        else:
            raise CommandArgumentError(f"'kind' must be 'video' or 'audio', got {kind!r}")
        track_id = self.rtc.add_track(track, args.get("description") or {}, id=args.get("id"))
        self.local[track_id] = track
        return {"id": track_id, "kind": kind}

    async def remove_track(self, args: dict[str, Any]) -> Any:
        track_id = self._need(args, "id")
        removed = self.rtc.remove_track(track_id)
        track = self.local.pop(track_id, None)
        if track is not None:
            track.stop()
        return {"removed": removed}

    async def request_peer_track(self, args: dict[str, Any]) -> Any:
        sid = self._sid(self._need(args, "peer"))
        self.rtc.request_peer_track(sid, self._need(args, "id"))
        return {"peer": sid}

    async def remove_peer_track(self, args: dict[str, Any]) -> Any:
        sid = self._sid(self._need(args, "peer"))
        return {"peer": sid, "removed": self.rtc.remove_peer_track(sid, self._need(args, "id"))}

    async def send_message(self, args: dict[str, Any]) -> Any:
        to = args.get("to")
        sid = self._sid(to) if to is not None else None
        try:
            self.rtc.send_message(args.get("message"), to=sid)
        except KeyError as exc:
            raise CommandArgumentError(str(exc)) from None
        return {"to": sid}

    async def status(self, args: dict[str, Any]) -> Any:
        rtc = self.rtc
        return {
            "sid": rtc.sid,
            "permanent_id": rtc.permanent_id,
            "tracks": [{k: v for k, v in t.items() if k != "track"} for t in rtc.get_tracks()],
            "peer_track_definitions": rtc.get_peer_track_definitions(),
            "peer_tracks": {sid: sorted(t) for sid, t in rtc.get_peer_tracks().items()},
            "connected_peers": rtc.connected_peers,
            "discovered_peers": rtc.discovered_peers,
        }

    async def media_report(self, args: dict[str, Any]) -> Any:
        """Every received track's report and every peer's state histories.

        With ``peer``, ``track`` and ``frames``, first waits (event-driven, up to
        ``timeout`` real seconds) until that track has been identified and ``frames``
        frames of it read; the reply says ``"reached": false`` if time ran out.
        """
        for sid in list(self.rtc.member.peers):
            self._remember(sid)
        reached = None
        if "frames" in args:
            owner = self._owner(self._need(args, "peer"))
            reached = await self._wait_frames(
                owner,
                self._need(args, "track"),
                int(args["frames"]),
                float(args.get("timeout", DEFAULT_TIMEOUT)),
            )
        tracks = [
            {"permanent_id": owner, "id": track_id, **_report(probe)}
            for (owner, track_id), probe in self.probes.items()
        ]
        peers = []
        for pid, peer in self.known.items():
            peers.append(
                {
                    "sid": peer.sid,
                    "permanent_id": pid,
                    "connected": peer.connected and not peer.closed,
                    "closed": peer.closed,
                    "outbound": peer.out_states.as_dict(),
                    "inbound": peer.in_states.as_dict() if peer.in_states else None,
                }
            )
        out: dict[str, Any] = {"tracks": tracks, "peers": peers}
        if reached is not None:
            out["reached"] = reached
        return out

    async def _wait_frames(self, owner: str, track_id: str, frames: int, timeout: float) -> bool:
        """Whether the track is identified and ``frames`` of it read within ``timeout``."""
        key = (owner, track_id)

        async def read() -> None:
            while key not in self.probes:
                self._changed.clear()
                await self._changed.wait()
            await self.probes[key].frames_at_least(frames, timeout=timeout)

        with contextlib.suppress(TimeoutError, MediaStreamError):
            await wait_for(self.clock, read(), timeout)
        probe = self.probes.get(key)
        return probe is not None and probe.frames >= frames

    async def stats(self, args: dict[str, Any]) -> Any:
        """getStats counters of the connection to ``peer`` (``direction`` outbound or inbound);
        with ``over`` (real seconds), the delta across that window."""
        peer = self.rtc.member.peers[self._sid(self._need(args, "peer"))]
        direction = args.get("direction", "outbound")
        pc = peer.outbound if direction == "outbound" else peer.inbound
        if pc is None:
            raise CommandArgumentError(f"no {direction} connection to {peer.sid} yet")
        before = await stats_snapshot(pc)
        if "over" not in args:
            return {"peer": peer.sid, "direction": direction, "counters": before}
        await self.clock.sleep(float(args["over"]))  # a measurement window, not a wait for an event
        after = await stats_snapshot(pc)
        return {
            "peer": peer.sid,
            "direction": direction,
            "over": float(args["over"]),
            "delta": stats_delta(before, after),
            "counters": after,
        }

    async def close(self) -> None:
        for probe in self.probes.values():
            await probe.stop()
        await self.rtc.member.close()
        for track in self.local.values():
            track.stop()


def _report(probe: TrackProbe) -> dict[str, Any]:
    report = probe.report()
    return {**asdict(report), "in_order_share": report.in_order_share}
