"""The record of every fault the proxy applied, for scenario transcripts.

Each event carries the shared clock's monotonic ``time`` so a transcript can
interleave proxy faults with client and server frames.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable
from typing import Any


@dataclasses.dataclass(frozen=True, slots=True)
class FaultEvent:
    """One thing the proxy did: ``action`` on ``connection`` of ``proxy`` because of ``toxic``."""

    time: float
    proxy: str
    action: str
    connection: int | None = None
    toxic: str | None = None
    detail: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


EventSink = Callable[[FaultEvent], None]


class EventLog:
    """Bounded in-memory history plus an optional callback (called on the proxy's loop)."""

    def __init__(self, on_event: EventSink | None = None, maxlen: int = 100_000) -> None:
        self.events: collections.deque[FaultEvent] = collections.deque(maxlen=maxlen)
        self.on_event = on_event

    def emit(self, event: FaultEvent) -> None:
        self.events.append(event)
        if self.on_event is not None:
            self.on_event(event)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(list(self.events))

    def __len__(self) -> int:
        return len(self.events)

    def clear(self) -> None:
        self.events.clear()
