"""Event handlers in the seeds' shape: ``on``, ``once``, ``off``; sync or async handlers.

A handler takes one argument, the event's data. ``"*"`` handlers see every
event and take two, ``(event, data)``. A failing handler is logged and never
breaks the client: an application bug must not cost the connection.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("squall.client")

Handler = Callable[..., Any]


class Emitter:
    def __init__(self) -> None:
        self._handlers: dict[str, list[tuple[Handler, bool]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    def on(self, event: str, handler: Handler) -> Handler:
        """Call ``handler`` on every ``event``; returns it, so it can be used as a decorator."""
        self._handlers.setdefault(event, []).append((handler, False))
        return handler

    def once(self, event: str, handler: Handler) -> Handler:
        self._handlers.setdefault(event, []).append((handler, True))
        return handler

    def off(self, event: str | None = None, handler: Handler | None = None) -> None:
        """Detach ``handler`` from ``event``; all of the event's (or every) handler when None."""
        if event is None:
            self._handlers.clear()
        elif handler is None:
            self._handlers.pop(event, None)
        else:
            self._handlers[event] = [h for h in self._handlers.get(event, []) if h[0] != handler]

    def listeners(self, event: str) -> int:
        return len(self._handlers.get(event, ()))

    def emit(self, event: str, data: Any) -> None:
        for handler, once in list(self._handlers.get(event, ())):
            if once:
                self.off(event, handler)
            self._call(handler, event, data)
        for handler, once in list(self._handlers.get("*", ())):
            if once:
                self.off("*", handler)
            self._call(handler, event, data, wildcard=True)

    def _call(self, handler: Handler, event: str, data: Any, *, wildcard: bool = False) -> None:
        try:
            result = handler(event, data) if wildcard else handler(data)
        except Exception:
            log.exception("handler %r for %r failed", handler, event)
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            self._tasks.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("async handler failed", exc_info=task.exception())

    async def drain(self) -> None:
        """Wait for async handlers still running (for orderly shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
