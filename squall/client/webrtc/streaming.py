"""Signalling for the WebRTC extension through the reference client, ``StreamingClient``.

The client's core owns the room: it joins, rejoins after a reconnect with
``prev_sid``, and defines the room's tracks again on every ``joined`` (§8). This
adapter only translates: every server frame reaches the room member through the
client's ``packet`` event, and the member's outgoing frames become the client's
``send_signal`` / ``define_track`` / ``remove_track`` / ``request_track`` calls.

A wire that says ``track_frames = False`` (RTCCafe's, squall/client/wires/rtccafe.py)
speaks another protocol, whose packets are not reference frames and whose server has no
track frames: the member is then fed the reference frames rebuilt from the client's
room events (``joined``, ``peer_joined``, ``peer_left``, ``reassign_peer_sid``,
``signal``, ``left``, ``error``), and it carries its tracks over the data channel
(:attr:`track_frames` is what it is told).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, cast

from squall.client.errors import NotConnected
from squall.client.streaming import StreamingClient

log = logging.getLogger(__name__)

Frame = dict[str, Any]
ROOM_EVENTS = ("joined", "peer_joined", "peer_left", "reassign_peer_sid", "signal", "left", "error")
"""The client's events that carry what a room member reads, on a wire without track frames."""


class StreamingSignalling:
    """Bridges a :class:`StreamingClient` and a room member (``on_frame`` / :meth:`send`)."""

    def __init__(self, client: StreamingClient, on_frame: Callable[[Frame], None]) -> None:
        self.client = client
        self.on_frame = on_frame
        #: whether the wire's server has track frames; False: the member uses the data channel
        self.track_frames: bool = getattr(client.core.wire, "track_frames", True)
        if self.track_frames:
            client.on("packet", self._on_packet)
        else:
            for event in ROOM_EVENTS:
                client.on(event, self._from_event(event))

    def _from_event(self, event: str) -> Callable[[dict[str, Any]], None]:
        def forward(data: dict[str, Any]) -> None:
            frame = _frame(event, data)
            if frame is not None:
                self.on_frame(frame)

        return forward

    def _on_packet(self, data: dict[str, Any]) -> None:
        text = data.get("text")
        if isinstance(text, str):
            self.on_frame(json.loads(text))

    def send(self, frame: Frame) -> None:
        # cast: the room member (squall/media/member.py) sends these frames only while in a
        # room, and each one carries that room's name
        kind, room = frame.get("type"), cast("str", frame.get("room"))
        client = self.client
        try:
            if kind == "signal":
                client.send_signal(room, frame["kind"], frame.get("data"), to=frame.get("to"))
            elif kind == "track_define":
                client.define_track(room, frame["track"])
            elif kind == "track_remove":
                client.remove_track(room, frame["track_id"])
            elif kind == "track_request":
                client.request_track(room, frame["to"], frame["track_id"])
            else:
                raise ValueError(f"the WebRTC extension does not send {kind!r} frames")
        except NotConnected as exc:
            log.info("signalling: %s dropped: %s", kind, exc)


def _frame(event: str, data: dict[str, Any]) -> Frame | None:
    """The reference frame (docs/protocol.md §8) one of the client's room events stands for."""
    if event == "peer_joined":
        peer = {k: data[k] for k in ("sid", "permanent_id", "tracks") if k in data}
        return {"type": "peer_joined", "room": data["room"], "peer": peer}
    if event == "reassign_peer_sid":
        return {"type": "peer_sid_reassigned", **data}
    if event == "error":
        if data.get("kind") != "server":
            return None  # the client's own trouble (a bad frame, a missed pong): not the room's
        return {"type": "error", **{k: v for k, v in data.items() if k != "kind"}}
    return {"type": event, **data}
