"""The reference client: a sans-I/O session core (``core``) and its asyncio driver (``streaming``).

``squall.client`` never imports ``squall.simulator``: a client must not lean on the fake server.
"""

from .core import ClientCore
from .errors import (
    AuthFailed,
    CallInterrupted,
    CallTimeout,
    ClientClosed,
    ClientError,
    ConnectionFailed,
    IllegalTransition,
    NotConnected,
    RemoteError,
)
from .policy import Policy, Verdict, backoff_delays, classify_close
from .states import Status
from .streaming import DrainRequest, StreamingClient

__all__ = [
    "AuthFailed",
    "CallInterrupted",
    "CallTimeout",
    "ClientClosed",
    "ClientCore",
    "ClientError",
    "ConnectionFailed",
    "DrainRequest",
    "IllegalTransition",
    "NotConnected",
    "Policy",
    "RemoteError",
    "Status",
    "StreamingClient",
    "Verdict",
    "backoff_delays",
    "classify_close",
]
