"""Synthetic tracks and receivers for the client: see :mod:`squall.media`, shared with the
simulator's fake peer."""

from squall.media.observe import StateLog, stats_delta, stats_snapshot
from squall.media.probe import MediaReport, TrackProbe
from squall.media.tracks import IndexedVideoTrack, ToneAudioTrack, decode_index

__all__ = [
    "IndexedVideoTrack",
    "MediaReport",
    "StateLog",
    "ToneAudioTrack",
    "TrackProbe",
    "decode_index",
    "stats_delta",
    "stats_snapshot",
]
