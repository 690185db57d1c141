"""What the session core asks its driver to do: frozen, self-validating dataclasses.

The core never performs I/O; :meth:`ClientCore.actions` returns a list of these
and the driver carries them out in order. ``conn`` numbers a socket: the core
opens at most one at a time and ignores reports about any other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import ClientError


@dataclass(frozen=True)
class OpenSocket:
    """Open a WebSocket to ``url`` (credentials already in it, or in ``headers``)."""

    conn: int
    url: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Send:
    """Send one frame on socket ``conn`` (text, or bytes for a binary frame)."""

    conn: int
    text: str | bytes


@dataclass(frozen=True)
class Close:
    """Close socket ``conn``; ``abort`` drops TCP at once (the peer is presumed dead)."""

    conn: int
    code: int = 1000
    reason: str = ""
    abort: bool = False

    def __post_init__(self) -> None:
        if not (1000 <= self.code <= 4999):
            raise ValueError(f"close code must be in 1000..4999, got {self.code}")


@dataclass(frozen=True)
class SetTimer:
    """Call ``timer_fired(name, now)`` at protocol time ``at``; replaces a timer of that name."""

    name: str
    at: float


@dataclass(frozen=True)
class CancelTimer:
    name: str


@dataclass(frozen=True)
class Emit:
    """Tell the application: ``event`` with ``data`` (a JSON-serialisable dict)."""

    event: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Resolve:
    """The operation numbered ``ticket`` (a call, subscribe, join...) succeeded."""

    ticket: int
    value: Any = None


@dataclass(frozen=True)
class Reject:
    ticket: int
    error: ClientError


@dataclass(frozen=True)
class Loopback:
    """Feed ``message`` back to ``core.receive_message``: the wire answered it locally."""

    conn: int
    message: Any


Action = OpenSocket | Send | Close | SetTimer | CancelTimer | Emit | Resolve | Reject | Loopback
