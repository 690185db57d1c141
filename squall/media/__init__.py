"""Media helpers shared by the reference client's WebRTC extension and the simulator's fake peer.

A neutral package: it imports neither ``squall.client`` nor ``squall.simulator``, so
both may import it (design.md's dependency rules).

- :mod:`.ice`: loopback-only ICE (no STUN, host candidates on 127.0.0.1).
- :mod:`.tracks`: synthetic tracks whose video frames carry their index in the pixels.
- :mod:`.probe`: a receiver that counts frames, order, loss, frozen and black frames.
- :mod:`.observe`: peer-connection state histories and getStats deltas.
- :mod:`.events`: an event emitter with a history to await and assert on.
- :mod:`.member`: one room member exchanging tracks with every other over WebRTC.
"""

from .events import Event, Events
from .ice import loopback_ice, rtc_configuration
from .member import RoomMember
from .observe import StateLog, stats_delta, stats_snapshot
from .probe import MediaReport, TrackProbe
from .tracks import IndexedVideoTrack, ToneAudioTrack, decode_index

__all__ = [
    "Event",
    "Events",
    "IndexedVideoTrack",
    "MediaReport",
    "RoomMember",
    "StateLog",
    "ToneAudioTrack",
    "TrackProbe",
    "decode_index",
    "loopback_ice",
    "rtc_configuration",
    "stats_delta",
    "stats_snapshot",
]
