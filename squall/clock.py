"""The one clock every squall duration goes through.

Cores never read time themselves: they are handed ``now`` (sans-I/O) or a
:class:`Clock` (asyncio drivers). A clock with ``timescale=0.01`` makes one
"protocol second" last ten real milliseconds, so a ten-minute drain deadline
runs in six real seconds and a scenario can compress any schedule.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol


class Timer(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """What drivers need from time: read it, wait on it, schedule on it (in protocol seconds)."""

    timescale: float

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Timer: ...


class LoopClock:
    """Event-loop time divided by ``timescale``: real time when ``timescale == 1``.

    ``now()`` is monotonic and shared by every object holding the same clock,
    which is what lets one transcript order client, proxy and server events.
    """

    def __init__(self, timescale: float = 1.0) -> None:
        if not timescale > 0:
            raise ValueError(f"timescale must be > 0, got {timescale!r}")
        self.timescale = float(timescale)

    def now(self) -> float:
        return asyncio.get_running_loop().time() / self.timescale

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) * self.timescale)

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Timer:
        return asyncio.get_running_loop().call_later(
            max(0.0, delay) * self.timescale, callback, *args
        )

    def real(self, seconds: float) -> float:
        """Real seconds that ``seconds`` of protocol time take on this clock."""
        return seconds * self.timescale

    def __repr__(self) -> str:
        return f"LoopClock(timescale={self.timescale})"
