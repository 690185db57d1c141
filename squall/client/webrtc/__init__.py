"""WebRTC extension of the reference client: RTCCafe-style track exchange with aiortc.

- :class:`WebRTCClient`: join a room, add/remove/request tracks, messages over data channels.
- :mod:`.ice`: loopback-only ICE (re-exported from :mod:`squall.media.ice`).
- :mod:`.media`: synthetic tracks and receivers (re-exported from :mod:`squall.media`).
"""

from .client import WebRTCClient
from .signalling import SignallingError, WireSignalling

__all__ = ["SignallingError", "WebRTCClient", "WireSignalling"]
