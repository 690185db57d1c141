"""The one clock every squall duration goes through.

Cores never read time themselves: they are handed ``now`` (sans-I/O) or a
:class:`Clock` (asyncio drivers). A clock with ``timescale=0.01`` makes one
"protocol second" last ten real milliseconds, so a ten-minute drain deadline
runs in six real seconds and a scenario can compress any schedule.

What compression cannot shrink is the network: a client's answer to a drain
request, or its auth frame after the socket opens, crosses real sockets (through a
proxy adding real latency, perhaps) while the window it must answer within runs in
protocol time. So a window that times a round trip is scheduled through
:func:`deadline_delay`: on a clock with a ``deadline_floor`` it lasts at least the
lesser of its protocol duration and the floor in real time. The floor never makes a
window longer than it is uncompressed (``timescale=1`` is untouched), and a clock
without one (the default, :class:`ManualClock`) schedules it as given.

Long deadlines that the other side schedules against on its own (compressed) clock,
such as a drain deadline the client is told or a recovery window, are *not* floored:
both sides compress them alike, and a floor on one side only would reorder them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

__all__ = [
    "Clock",
    "LoopClock",
    "ManualClock",
    "ManualTimer",
    "Timer",
    "deadline_delay",
    "wait_for",
]

_T = TypeVar("_T")


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

    def __init__(self, timescale: float = 1.0, *, deadline_floor: float = 0.0) -> None:
        """``deadline_floor``: real seconds no network deadline is compressed below."""
        if not timescale > 0:
            raise ValueError(f"timescale must be > 0, got {timescale!r}")
        if not deadline_floor >= 0:
            raise ValueError(f"deadline_floor must be >= 0, got {deadline_floor!r}")
        self.timescale = float(timescale)
        self.deadline_floor = float(deadline_floor)

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

    def real_deadline(self, seconds: float) -> float:
        """Real seconds a network deadline of ``seconds`` lasts: :func:`deadline_delay`."""
        return self.real(deadline_delay(self, seconds))

    def bind(self, loop: asyncio.AbstractEventLoop) -> LoopClock:
        """This clock for code that only runs on ``loop``: the same time, scale and floor,
        without ``asyncio.get_running_loop()`` (a ``getpid()``) on every read or wait.

        For per-packet readers such as the fault proxy's links; the clock itself stays
        usable from any loop.
        """
        return _BoundLoopClock(self, loop)

    def __repr__(self) -> str:
        floor = f", deadline_floor={self.deadline_floor}" if self.deadline_floor else ""
        return f"LoopClock(timescale={self.timescale}{floor})"


class _BoundLoopClock(LoopClock):
    """A :class:`LoopClock` read through one loop (:meth:`LoopClock.bind`)."""

    def __init__(self, clock: LoopClock, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(clock.timescale, deadline_floor=clock.deadline_floor)
        self.loop = loop

    def now(self) -> float:
        return self.loop.time() / self.timescale

    async def sleep(self, seconds: float) -> None:
        delay = max(0.0, seconds) * self.timescale
        if delay <= 0:
            await asyncio.sleep(0)  # a bare yield, as asyncio.sleep(0) is
            return
        waiter = self.loop.create_future()
        handle = self.loop.call_later(delay, _wake, waiter)
        try:
            await waiter
        finally:
            handle.cancel()

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Timer:
        return self.loop.call_later(max(0.0, delay) * self.timescale, callback, *args)

    def bind(self, loop: asyncio.AbstractEventLoop) -> LoopClock:
        return self if loop is self.loop else _BoundLoopClock(self, loop)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def deadline_delay(clock: Clock, seconds: float) -> float:
    """The protocol delay to schedule a deadline of ``seconds`` with, on ``clock``.

    In real time it lasts ``max(seconds * timescale, min(seconds, floor))``: compressed,
    but never below the clock's ``deadline_floor`` real seconds, nor longer than
    ``seconds`` of real time. ``timescale=0.01``, floor 3: a 1 s answer window lasts 1
    real second (not 10 ms), a 10 s auth timeout 3 (not 0.1), a 30-minute one 18.
    """
    floor = float(getattr(clock, "deadline_floor", 0.0))
    if floor <= 0 or seconds <= 0:
        return seconds
    return max(seconds, min(seconds, floor) / clock.timescale)


async def wait_for(clock: Clock, awaitable: Awaitable[_T], seconds: float) -> _T:
    """``awaitable``'s result, or :class:`TimeoutError` after ``seconds`` of ``clock``'s time.

    ``asyncio.wait_for`` counts real seconds, so a protocol timeout handed to it must be
    scaled by the clock, and scaling by hand at each call site is how waits drift off
    the clock (tests/test_clock_idiom.py holds code to this helper). A guard that must
    stay in real seconds whatever the timescale uses ``asyncio.wait_for`` with a comment
    saying why. On a :class:`ManualClock` (timescale 1, never advanced by the loop) it
    would wait real seconds: code driven by one does not await.
    """
    return await asyncio.wait_for(awaitable, max(0.0, seconds) * clock.timescale)


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
