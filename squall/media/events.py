"""A small event emitter that keeps its history, so tests can await events and assert sequences.

``on(name, handler)`` / ``off(name, handler)`` mirror RTCCafe's client; handlers may be
plain functions or coroutine functions. Every emitted event is also appended to
``history`` as an :class:`Event` stamped with its clock's ``now()``, and
``await events.wait_for(name, ...)`` returns the first matching event at or after
a cursor (``events.mark()``), whether it was emitted before the call or after.

Time is the injected :class:`~squall.clock.Clock` (real time by default: media runs
on the wall clock): timestamps are its ``now()`` and a ``wait_for`` timeout is in its
seconds, so a test that compresses the clock compresses both.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..clock import Clock, LoopClock, wait_for

__all__ = ["MEMBER_EVENTS", "Event", "Events"]


@dataclass(frozen=True)
class Event:
    at: float
    name: str
    args: tuple[Any, ...]

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("an event needs a name")


class Events:
    def __init__(self, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or LoopClock()
        self.history: list[Event] = []
        self._handlers: dict[str, list[Callable[..., Any]]] = {}
        self._waiters: list[tuple[str, Callable[..., bool] | None, asyncio.Future[Event]]] = []
        self._tasks: set[asyncio.Task[Any]] = set()

    def on(self, name: str, handler: Callable[..., Any]) -> None:
        self._handlers.setdefault(name, []).append(handler)

    def off(self, name: str | None = None, handler: Callable[..., Any] | None = None) -> None:
        """Detach ``handler``; with no handler every handler of ``name``; with no name, all."""
        if name is None:
            self._handlers.clear()
        elif handler is None:
            self._handlers.pop(name, None)
        elif handler in self._handlers.get(name, []):
            self._handlers[name].remove(handler)

    def emit(self, name: str, *args: Any) -> None:
        event = Event(self.clock.now(), name, args)
        self.history.append(event)
        for handler in list(self._handlers.get(name, [])):
            result = handler(*args)
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        still = []
        for wname, match, fut in self._waiters:
            if fut.done():
                continue
            if wname == name and (match is None or match(*args)):
                fut.set_result(event)
            else:
                still.append((wname, match, fut))
        self._waiters = still

    def mark(self) -> int:
        """A cursor: ``wait_for(..., since=mark)`` ignores what happened before it."""
        return len(self.history)

    def names(self, since: int = 0) -> list[str]:
        return [e.name for e in self.history[since:]]

    def of(self, name: str, since: int = 0) -> list[tuple[Any, ...]]:
        return [e.args for e in self.history[since:] if e.name == name]

    async def wait_for(
        self,
        name: str,
        match: Callable[..., bool] | None = None,
        *,
        since: int = 0,
        timeout: float = 10.0,
    ) -> Event:
        """The first ``name`` event at or after ``since`` for which ``match(*args)`` holds;
        :class:`TimeoutError` after ``timeout`` seconds of the clock."""
        for event in self.history[since:]:
            if event.name == name and (match is None or match(*event.args)):
                return event
        fut: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        self._waiters.append((name, match, fut))
        try:
            return await wait_for(self.clock, fut, timeout)
        except TimeoutError:
            seen = ", ".join(self.names(since)[-12:]) or "none"
            raise TimeoutError(
                f"no {name!r} event within {timeout:g}s (events since the mark: {seen})"
            ) from None


# What a room member (the client extension or the simulator's fake peer) reports, RTCCafe-named.
MEMBER_EVENTS = (
    "connect_to_peer",
    "disconnect_from_peer",
    "peer_track_defined",
    "peer_track_identified",
    "peer_track_removed",
    "peer_track_definition_removed",
    "reassign_peer_sid",
    "message",
    "signalling_error",
    "negotiation_failed",
)
