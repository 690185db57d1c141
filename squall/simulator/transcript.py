"""One history per run: every frame, state change, control call and fault, timestamped.

Records are plain dicts (cheap to append on the hot path) with a monotonic
``t`` (protocol seconds from the shared clock) and an increasing ``n``.
Credentials never reach the transcript: the dialects mask them by key first
(:func:`redact`, :func:`redact_text`, :func:`redact_url`, which live in
:mod:`squall.secrets` and are importable from here too). A transcript given a
:class:`~squall.secrets.Secrets` registry (``secrets=``) also masks every secret it
knows, on record and again on read, so one learned later is masked in older records
too; the core registers each session's recovery token with :meth:`Transcript.add_secret`.

A transcript is unbounded unless given ``max_records`` (``squall serve`` bounds
it by default): then it keeps the newest ``max_records`` and drops the oldest,
counting them. Indices stay absolute (``n`` never restarts), and a reader whose
range reaches into dropped records gets a ``truncated`` record first, saying how
many (``{"kind": "truncated", "n": 0, "dropped": 1200, "first": 1200, ...}``):
nothing disappears silently.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from squall.secrets import REDACTED, SECRET_KEYS, Secrets, redact, redact_text, redact_url

__all__ = ["REDACTED", "SECRET_KEYS", "Transcript", "redact", "redact_text", "redact_url"]

Listener = Callable[[dict[str, Any]], None]


class Transcript:
    """History, append-only unless bounded, with listeners so waiters can react without polling.

    Frames, the bulk of any history, are kept as compact tuples of plain values
    (:meth:`frame`): the garbage collector untracks them, so a long fan-out does
    not make every full collection slower. They are rendered to dicts when read.

    With ``max_records`` it is a ring over the newest records: ``_rows[_skip:]`` are the
    ones kept, ``_base`` the absolute index of ``_rows[0]``. Dropped rows are hidden at once
    (``_skip`` grows) and deleted from the list in batches, so an append stays O(1).
    """

    def __init__(
        self,
        now: Callable[[], float],
        *,
        source: str = "server",
        max_records: int | None = None,
        secrets: Secrets | None = None,
    ) -> None:
        if max_records is not None and max_records < 1:
            raise ValueError(f"max_records must be at least 1, got {max_records}")
        self._now = now
        self.source = source
        self.max_records = max_records
        self._rows: list[dict[str, Any] | tuple[Any, ...]] = []
        self._listeners: list[Listener] = []
        self._base = 0  # absolute index of _rows[0]
        self._skip = 0  # rows at the front of _rows already dropped, not yet deleted
        # len(_rows) beyond which an append drops the oldest row
        self._cap = sys.maxsize if max_records is None else max_records
        self._slack = 0 if max_records is None else max(1, min(max_records, 4096) // 4)
        self._secrets = secrets
        self._clean_for = secrets.retro_version if secrets is not None else 0

    @property
    def secrets(self) -> Secrets | None:
        """The registry that masks what is kept here (None: the dialects' masking alone)."""
        return self._secrets

    @secrets.setter
    def secrets(self, secrets: Secrets | None) -> None:
        self._secrets = secrets
        self._clean_for = -1  # the rows kept so far are scrubbed with it on the next read

    def add_secret(self, value: str | None) -> None:
        """A credential the server issues (a recovery token), registered *before* it is handed
        out or recorded: masked from then on, with no second scrub of what is already kept."""
        if self._secrets is not None:
            self._secrets.add(value, retro=False)

    def _fresh(self) -> None:
        """Scrub the kept rows again if the registry has learned a secret since they were."""
        secrets = self._secrets
        if secrets is None or secrets.retro_version == self._clean_for:
            return
        self._clean_for = secrets.retro_version
        rows = self._rows
        for i, row in enumerate(rows):
            if isinstance(row, dict):
                rows[i] = secrets.scrub(row)
            elif isinstance(row[6], str):
                rows[i] = (*row[:6], secrets.scrub_text(row[6]))

    @property
    def dropped(self) -> int:
        """How many of the oldest records the bound has dropped (0 when unbounded)."""
        return self._base + self._skip

    def _trim(self) -> None:
        limit = self.max_records
        if limit is None:  # unreachable: an unbounded transcript's _cap is sys.maxsize
            return
        rows = self._rows
        self._skip = len(rows) - limit
        if self._skip >= self._slack:
            del rows[: self._skip]
            self._base += self._skip
            self._skip = 0
        self._cap = limit + self._skip

    def record(self, kind: str, *, at: float | None = None, **fields: Any) -> dict[str, Any]:
        """Append one record; ``at`` lets a caller stamp a batch with one clock read."""
        t = self._now() if at is None else at
        if self._secrets is not None:
            fields = self._secrets.scrub(fields)
        rows = self._rows
        rec = {"n": self._base + len(rows), "t": t, "src": self.source, "kind": kind, **fields}
        rows.append(rec)
        if len(rows) > self._cap:
            self._trim()
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
        if self._secrets is not None and isinstance(text, str):
            text = self._secrets.scrub_text(text)
        row = (self._now() if at is None else at, direction, conn, session, wire_type, op, text)
        rows = self._rows
        rows.append(row)
        if self._listeners:
            rec = self._render(self._base + len(rows) - 1, row)
            for listener in tuple(self._listeners):
                listener(rec)
        if len(rows) > self._cap:
            self._trim()

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

    def _truncated(self, n: int) -> dict[str, Any]:
        """The record standing for dropped records ``n`` to ``dropped - 1``."""
        first = self.dropped
        kept = self._rows[self._skip] if len(self._rows) > self._skip else None
        t = kept["t"] if isinstance(kept, dict) else kept[0] if kept else self._now()
        return {
            "n": n,
            "t": t,
            "src": self.source,
            "kind": "truncated",
            "dropped": first - n,
            "first": first,
            "max_records": self.max_records,
        }

    @property
    def records(self) -> list[dict[str, Any]]:
        return self.since(0)

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
        """Records ``n`` on (absolute indices); a ``truncated`` record first if some are gone."""
        self._fresh()
        first = self.dropped
        out = [self._truncated(n)] if n < first else []
        start = max(n, first)
        base = self._base
        out.extend(self._render(i, row) for i, row in enumerate(self._rows[start - base :], start))
        return out

    def __iter__(self) -> Iterator[dict[str, Any]]:
        # By index, not by list iterator: the caller may append (and so drop) while this runs;
        # records dropped before they are reached are announced like those dropped before.
        self._fresh()
        i = 0
        while i < self._base + len(self._rows):
            if i < self.dropped:
                yield self._truncated(i)
                i = self.dropped
                continue
            yield self._render(i, self._rows[i - self._base])
            i += 1

    def __len__(self) -> int:
        """Records ever appended, dropped ones included: the next record's ``n``."""
        return self._base + len(self._rows)

    def __bool__(self) -> bool:
        # A transcript is an object, not a container: an empty one is still true, so that
        # ``transcript or Transcript(...)`` (SimulatorCore's default) keeps the one given.
        return True

    def to_jsonl(self, records: Iterable[dict[str, Any]] | None = None) -> str:
        rows = self if records is None else records
        return "".join(json.dumps(r, default=str, separators=(",", ":")) + "\n" for r in rows)

    def dump(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(self.to_jsonl())
