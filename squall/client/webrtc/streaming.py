"""Signalling for the WebRTC extension through the reference client, ``StreamingClient``.

The client's core owns the room: it joins, rejoins after a reconnect with
``prev_sid``, and defines the room's tracks again on every ``joined`` (§8). This
adapter only translates: every server frame reaches the room member through the
client's ``packet`` event, and the member's outgoing frames become the client's
``send_signal`` / ``define_track`` / ``remove_track`` / ``request_track`` calls.
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


class StreamingSignalling:
    """Bridges a :class:`StreamingClient` and a room member (``on_frame`` / :meth:`send`)."""

    def __init__(self, client: StreamingClient, on_frame: Callable[[Frame], None]) -> None:
        self.client = client
        self.on_frame = on_frame
        client.on("packet", self._on_packet)

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
