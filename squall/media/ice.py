"""Loopback-only ICE for aiortc: no STUN server, host candidates on 127.0.0.1 only.

Why this exists
---------------
- aiortc with no configuration asks ``stun:stun.l.google.com:19302``: a test would
  leave the machine, and hang where there is no network. :func:`rtc_configuration`
  always passes an explicit ``iceServers`` list (empty unless configured).
- aioice gathers host candidates from ``aioice.ice.get_host_addresses``, which
  *skips* 127.0.0.1 and returns every other interface (docker bridges, VPNs,
  Wi-Fi). :func:`loopback_ice` replaces that function with one that returns
  ``["127.0.0.1"]`` while at least one holder is inside the scope, and restores
  the original when the last one leaves.

Scope and its limits
--------------------
The patch is process-wide while active (aioice reads a module global when an
``RTCPeerConnection`` gathers, at ``setLocalDescription``), so it is reference
counted: every squall peer (the WebRTC client extension, the simulator's fake
peer) holds it from creation to ``close()``. Code outside squall that gathers
ICE candidates in the same process during that time gets loopback candidates
too. Nothing else in aioice or aiortc is touched.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol

import aioice.ice
from aiortc import RTCConfiguration, RTCIceServer

__all__ = [
    "LOOPBACK",
    "acquire",
    "active",
    "loopback_host_addresses",
    "loopback_ice",
    "release",
    "rtc_configuration",
]

LOOPBACK = "127.0.0.1"

_lock = threading.Lock()
_holders = 0


class _HostAddresses(Protocol):
    """aioice's gatherer: named parameters, because aioice passes them by keyword."""

    def __call__(self, use_ipv4: bool, use_ipv6: bool) -> list[str]: ...


_original: _HostAddresses | None = None


def loopback_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    """The replacement for ``aioice.ice.get_host_addresses``: 127.0.0.1, nothing else."""
    return [LOOPBACK] if use_ipv4 else []


def acquire() -> None:
    """Enter the loopback scope (reference counted); pair every call with :func:`release`."""
    global _holders, _original
    with _lock:
        if _holders == 0:
            _original = aioice.ice.get_host_addresses
            aioice.ice.get_host_addresses = loopback_host_addresses
        _holders += 1


def release() -> None:
    """Leave the loopback scope; the last holder restores aioice's own gathering."""
    global _holders, _original
    with _lock:
        if _holders == 0:
            raise RuntimeError("loopback ICE released more often than acquired")
        _holders -= 1
        if _holders == 0 and _original is not None:
            aioice.ice.get_host_addresses = _original
            _original = None


def active() -> bool:
    """Whether host candidates are restricted to 127.0.0.1 right now."""
    return aioice.ice.get_host_addresses is loopback_host_addresses


@contextmanager
def loopback_ice() -> Iterator[None]:
    """``with loopback_ice(): ...``: every peer connection gathered inside uses 127.0.0.1 only."""
    acquire()
    try:
        yield
    finally:
        release()


def rtc_configuration(ice_servers: Sequence[str | RTCIceServer] = ()) -> RTCConfiguration:
    """An explicit configuration: no ICE server unless given.

    The bundle policy stays aiortc's default (``balanced``; the answer still bundles
    everything on one transport). ``max-bundle`` is avoided on purpose: with aiortc
    1.16, a connection that creates its data channel before its first transceiver
    never leaves ``new`` under ``max-bundle`` (tests/webrtc/test_ice.py pins this).
    """
    servers = [s if isinstance(s, RTCIceServer) else RTCIceServer(urls=s) for s in ice_servers]
    return RTCConfiguration(iceServers=servers)
