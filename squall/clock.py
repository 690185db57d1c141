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


class ManualTimer:
    __slots__ = ("args", "callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.when = when
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """A clock that moves only when told to: ``advance(600)`` runs ten minutes of timers at once.

    For tests of code that takes a :class:`Clock` but no event loop (the simulator core):
    timers fire in order of due time, each seeing ``now()`` equal to its due time.
    """

    timescale = 1.0

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._timers: list[ManualTimer] = []

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        raise RuntimeError("ManualClock cannot sleep: call advance() from the test instead")

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> ManualTimer:
        timer = ManualTimer(self._now + max(0.0, delay), callback, args)
        self._timers.append(timer)
        return timer

    def pending(self) -> int:
        return sum(not t.cancelled for t in self._timers)

    def advance(self, seconds: float) -> None:
        """Move time forward, firing every timer that falls due, in order, including new ones."""
        target = self._now + seconds
        while True:
            due = [t for t in self._timers if not t.cancelled and t.when <= target]
            if not due:
                break
            timer = min(due, key=lambda t: t.when)
            self._timers.remove(timer)
            self._now = max(self._now, timer.when)
            timer.callback(*timer.args)
        self._timers = [t for t in self._timers if not t.cancelled]
        self._now = target
