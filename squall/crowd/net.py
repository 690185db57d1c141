"""Listening sockets sized for a herd.

asyncio listens with a backlog of 100. A thousand clients reconnecting in the same
100 ms overflow it; Linux then drops their handshake ACKs and they wait out a SYN-ACK
retransmission (1 s, then 3 s...), which under a compressed clock is tens of protocol
seconds and says nothing about the policy. Production listeners take ``somaxconn``;
:func:`widen_backlog` gives the simulator's and the proxy's sockets the same.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from typing import Any

HERD_BACKLOG = 4096


def somaxconn() -> int:
    try:
        with open("/proc/sys/net/core/somaxconn", encoding="ascii") as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return HERD_BACKLOG


def widen_backlog(sockets: Iterable[Any], backlog: int | None = None) -> int:
    """``listen()`` again on each listening socket with a larger backlog (Linux applies a
    new backlog to a socket that is already listening). Returns how many were widened."""
    size = backlog or min(HERD_BACKLOG, somaxconn())
    done = 0
    for sock in sockets:
        dup = socket.socket(fileno=socket.dup(sock.fileno()))  # the same listening socket
        try:
            dup.listen(size)
            done += 1
        finally:
            dup.close()
    return done
