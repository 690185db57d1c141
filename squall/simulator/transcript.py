"""One history per run: every frame, state change, control call and fault, timestamped.

Records read as plain dicts with a monotonic ``t`` (protocol seconds from the shared
clock) and an increasing ``n``; they are kept compact (see :class:`Transcript`), because a
simulator holding 100,000 sessions holds four records for each (issue 14).
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
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import repeat
from typing import Any

from squall.secrets import REDACTED, SECRET_KEYS, Secrets, redact, redact_text, redact_url

__all__ = ["REDACTED", "SECRET_KEYS", "Transcript", "redact", "redact_text", "redact_url"]

Listener = Callable[[dict[str, Any]], None]
#: One frame as :meth:`Transcript.frames` takes it: (dir, conn, session, type, op, text).
FrameRow = tuple[str, str, str | None, str | None, str | None, str | bytes]


class Transcript:
    """History, append-only unless bounded, with listeners so waiters can react without polling.

    Rows are kept compact and rendered to dicts when read, with the same keys in the same
    order as if they had been kept as dicts:

    - a frame, the bulk of any history (:meth:`frame`), is a tuple of plain values
      ``(dir, conn, session, type, op, text)``;
    - any other record (:meth:`record`) is ``(shape, *values)``, where ``shape`` is one
      tuple ``(kind, key, ...)`` shared by every record of that kind and keys;
    - the timestamps are kept apart, in one ``array('d')``: no float object per row.

    A tuple of plain values is untracked by the garbage collector, so a long fan-out does
    not make every full collection slower, and an idle session's four records (open,
    session, auth, the authenticated frame) cost about 0.7 KB instead of 1.7 KB as dicts.

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
        self._rows: list[tuple[Any, ...]] = []
        self._times = array("d")  # _times[i] is the t of _rows[i]
        self._shapes: dict[tuple[str, ...], tuple[str, ...]] = {}
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
            head = row[0]
            if type(head) is tuple:  # a record: scrubbed as the dict it reads as
                fields = secrets.scrub(dict(zip(head[1:], row[1:], strict=True)))
                rows[i] = self._pack(head[0], fields)
            elif isinstance(row[5], str):
                rows[i] = (*row[:5], secrets.scrub_text(row[5]))

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
            del self._times[: self._skip]
            self._base += self._skip
            self._skip = 0
        self._cap = limit + self._skip

    def record(self, kind: str, *, at: float | None = None, **fields: Any) -> dict[str, Any]:
        """Append one record; ``at`` lets a caller stamp a batch with one clock read."""
        t = self._now() if at is None else at
        if self._secrets is not None:
            fields = self._secrets.scrub(fields)
        rows = self._rows
        n = self._base + len(rows)
        rows.append(self._pack(kind, fields))
        self._times.append(t)
        rec = {"n": n, "t": t, "src": self.source, "kind": kind, **fields}
        if len(rows) > self._cap:
            self._trim()
        for listener in tuple(self._listeners):
            listener(rec)
        return rec

    def _pack(self, kind: str, fields: dict[str, Any]) -> tuple[Any, ...]:
        """``(shape, *values)``, the shape shared by every record with this kind and keys."""
        key = (kind, *fields)
        shape = self._shapes.get(key)
        if shape is None:
            shape = self._shapes[key] = key
        return (shape, *fields.values())

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
        row = (direction, conn, session, wire_type, op, text)
        rows = self._rows
        rows.append(row)
        self._times.append(self._now() if at is None else at)
        if self._listeners:
            rec = self._render(self._base + len(rows) - 1, len(rows) - 1)
            for listener in tuple(self._listeners):
                listener(rec)
        if len(rows) > self._cap:
            self._trim()

    def frames(self, rows: Sequence[FrameRow], *, at: float | None = None) -> None:
        """Many frames stamped alike, in order: a fan-out's deliveries, one call for all.

        The same records as one :meth:`frame` call each, without a call's overhead per
        delivery (issue 14: the cost per delivery is the fan-out's cost). ``rows`` is copied.
        """
        if not rows:
            return
        t = self._now() if at is None else at
        secrets = self._secrets
        if secrets is not None:
            rows = [
                (*row[:5], secrets.scrub_text(row[5])) if isinstance(row[5], str) else row
                for row in rows
            ]
        kept = self._rows
        start = len(kept)
        kept.extend(rows)
        self._times.extend(repeat(t, len(rows)))
        if self._listeners:
            for i in range(start, len(kept)):
                rec = self._render(self._base + i, i)
                for listener in tuple(self._listeners):
                    listener(rec)
        if len(kept) > self._cap:
            self._trim()

    def _render(self, n: int, i: int) -> dict[str, Any]:
        """Row ``i`` of ``_rows`` (absolute index ``n``) as the dict it stands for."""
        row = self._rows[i]
        head = row[0]
        if type(head) is tuple:
            rec = {"n": n, "t": self._times[i], "src": self.source, "kind": head[0]}
            rec.update(zip(head[1:], row[1:], strict=True))
            return rec
        direction, conn, session, wire_type, op, text = row
        if isinstance(text, bytes):
            text = f"<{len(text)} bytes>"
        return {
            "n": n,
            "t": self._times[i],
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
        t = self._times[self._skip] if len(self._rows) > self._skip else self._now()
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
        out.extend(self._render(i, i - base) for i in range(start, base + len(self._rows)))
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
            yield self._render(i, i - self._base)
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
