"""One history per run: every frame, state change, control call and fault, timestamped.

Records are plain dicts (cheap to append on the hot path) with a monotonic
``t`` (protocol seconds from the shared clock) and an increasing ``n``.
Credentials never reach the transcript: :func:`redact` masks them first.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

SECRET_KEYS = frozenset({"token", "jwt", "recovery_token", "authorization", "access_token"})
REDACTED = "***"

Listener = Callable[[dict[str, Any]], None]


_SECRET_QUERY = re.compile(r"((?:^|[?&])(?:token|jwt|recovery_token|access_token)=)[^&#]*", re.I)


def redact_url(url: str) -> str:
    """``/?token=abc&x=1`` -> ``/?token=***&x=1``."""
    return _SECRET_QUERY.sub(r"\1" + REDACTED, url)


_SECRET_JSON = re.compile(
    r'("(?:token|jwt|recovery_token|access_token|authorization|ws_access_token|password)"'
    r'\s*:\s*)"(?:[^"\\]|\\.)*"',
    re.I,
)


def redact_text(text: str) -> str:
    """Mask secret-looking JSON string values in text that may not even parse."""
    return _SECRET_JSON.sub(r'\1"' + REDACTED + '"', text)


def redact(value: Any) -> Any:
    """A copy of ``value`` with every secret-looking key masked, at any depth."""
    if isinstance(value, dict):
        return {
            k: (REDACTED if k.lower() in SECRET_KEYS and v is not None else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


class Transcript:
    """Append-only history, with listeners so waiters can react without polling.

    Frames, the bulk of any history, are kept as compact tuples of plain values
    (:meth:`frame`): the garbage collector untracks them, so a long fan-out does
    not make every full collection slower. They are rendered to dicts when read.
    """

    def __init__(self, now: Callable[[], float], *, source: str = "server") -> None:
        self._now = now
        self.source = source
        self._rows: list[dict[str, Any] | tuple[Any, ...]] = []
        self._listeners: list[Listener] = []

    def record(self, kind: str, *, at: float | None = None, **fields: Any) -> dict[str, Any]:
        """Append one record; ``at`` lets a caller stamp a batch with one clock read."""
        t = self._now() if at is None else at
        rec = {"n": len(self._rows), "t": t, "src": self.source, "kind": kind, **fields}
        self._rows.append(rec)
        for listener in tuple(self._listeners):
            listener(rec)
        return rec

    def frame(
        self,
        direction: str,
        conn: str,
        session: str | None,
        wire_type: str | None,
        op: str | None,
        text: str | bytes,
        *,
        at: float | None = None,
    ) -> None:
        """One frame that crossed: its wire type and text, and the core's name for it."""
        row = (self._now() if at is None else at, direction, conn, session, wire_type, op, text)
        self._rows.append(row)
        if self._listeners:
            rec = self._render(len(self._rows) - 1, row)
            for listener in tuple(self._listeners):
                listener(rec)

    def _render(self, n: int, row: dict[str, Any] | tuple[Any, ...]) -> dict[str, Any]:
        if isinstance(row, dict):
            return row
        t, direction, conn, session, wire_type, op, text = row
        if isinstance(text, bytes):
            text = f"<{len(text)} bytes>"
        return {
            "n": n,
            "t": t,
            "src": self.source,
            "kind": "frame",
            "dir": direction,
            "conn": conn,
            "session": session,
            "type": wire_type,
            "op": op,
            "text": text,
        }

    @property
    def records(self) -> list[dict[str, Any]]:
        return [self._render(n, row) for n, row in enumerate(self._rows)]

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` on every new record; returns the function that stops it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float | None = None
    ) -> dict[str, Any]:
        """The first record, already here or still to come, matching ``predicate``; no polling.

        ``timeout`` is in real seconds: it guards a test against a broken server, it is not a
        protocol duration.
        """
        for rec in self:
            if predicate(rec):
                return rec
        found: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

        def listener(rec: dict[str, Any]) -> None:
            if not found.done() and predicate(rec):
                found.set_result(rec)

        stop = self.listen(listener)
        try:
            return await asyncio.wait_for(found, timeout)
        finally:
            stop()

    def since(self, n: int = 0) -> list[dict[str, Any]]:
        return [self._render(i, row) for i, row in enumerate(self._rows[n:], n)]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for n, row in enumerate(self._rows):
            yield self._render(n, row)

    def __len__(self) -> int:
        return len(self._rows)

    def to_jsonl(self, records: Iterable[dict[str, Any]] | None = None) -> str:
        rows = self if records is None else records
        return "".join(json.dumps(r, default=str, separators=(",", ":")) + "\n" for r in rows)

    def dump(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(self.to_jsonl())
