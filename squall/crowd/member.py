"""One member of a crowd: a reference-client core, its sockets and timers, and what it saw.

Kept small (``__slots__``, plain lists of floats) because a crowd holds thousands; the
driver in :mod:`.crowd` does all the work.
"""

from __future__ import annotations

import asyncio
from typing import Any

from squall.client.core import ClientCore
from squall.clock import Timer


class Member:
    """A core and the per-client record the herd metrics read (protocol seconds)."""

    __slots__ = (
        "attempts",
        "back",
        "core",
        "duplicates",
        "errors",
        "final",
        "gaps",
        "index",
        "lost",
        "ready",
        "received",
        "recovered",
        "sockets",
        "subscribed",
        "tasks",
        "timers",
        "user",
    )

    def __init__(self, index: int, user: str, core: ClientCore) -> None:
        self.index = index
        self.user = user
        self.core = core
        self.sockets: dict[int, Any] = {}  # conn -> websockets ClientConnection
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.timers: dict[str, Timer] = {}
        self.ready = False
        self.subscribed = False  # the server confirmed the crowd's topics once
        self.lost: list[float] = []  # each disconnected (reconnecting) event
        self.attempts: list[float] = []  # each reconnecting event's time + its delay
        self.back: list[float] = []  # each connected event
        self.recovered: list[tuple[float, bool]] = []  # each recovery answer
        self.received: list[int] = []  # the ``n`` of each numbered notification
        self.duplicates = 0
        self.gaps = 0
        self.errors: list[str] = []
        self.final: str | None = None  # why the core closed for good
