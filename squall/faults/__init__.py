"""Network fault injection: a Toxiproxy-compatible proxy with WebSocket-aware toxics.

Start it with ``squall proxy`` or from Python::

    with ProxyServer.in_thread(port=0) as srv:
        requests.post(srv.url + "/proxies", json={...})

See ``docs/faults.md``.
"""

from __future__ import annotations

from . import wsframes as _wsframes  # noqa: F401  (registers the frame toxics)
from .errors import ApiError, FaultError
from .events import FaultEvent
from .server import ProxyServer, ThreadedServer
from .toxics import REGISTRY as TOXICS

__all__ = ["TOXICS", "ApiError", "FaultError", "FaultEvent", "ProxyServer", "ThreadedServer"]
