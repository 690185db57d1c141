"""Plain-text pieces every report uses: a record as one line, a name as a file name.

Apart from :mod:`.report` so that the report's pages
(:mod:`.report_html`) can use them without importing :mod:`.report` back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from .report_sequence import FOLD_AT, is_noise_frame

__all__ = ["describe", "describe_folded", "slug"]


def slug(text: str) -> str:
    """``text`` as a safe file-name part (``client``, when nothing of it is left)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "client"


def describe(rec: dict[str, Any]) -> str:
    """One transcript record as one readable line."""
    src, kind = rec.get("src", "?"), rec.get("kind", "?")
    t = f"{rec.get('t', 0):9.2f}s"
    if kind == "event":
        body = f"event {rec.get('event')} {json.dumps(rec.get('data'), default=str)}"
    elif kind == "command":
        body = f"-> {rec.get('cmd')} {json.dumps(rec.get('args'), default=str)}"
    elif kind == "reply":
        what = rec.get("result") if rec.get("ok") else f"{rec.get('type')}: {rec.get('error')}"
        body = f"<- reply ok={rec.get('ok')} {json.dumps(what, default=str)}"
    elif kind == "frame":
        arrow = "<-" if rec.get("dir") == "in" else "->"
        body = f"frame {arrow} {rec.get('conn')} {rec.get('text')}"
    elif kind == "fault":
        detail = rec.get("detail") or ""
        body = f"{rec.get('action')} conn={rec.get('conn')} toxic={rec.get('toxic')} {detail}"
    elif kind == "step":
        body = f"--- step {rec.get('index', 0) + 1} {rec.get('name')} (line {rec.get('line')})"
    else:
        extra = {k: v for k, v in rec.items() if k not in ("n", "t", "src", "kind")}
        body = f"{kind} {json.dumps(extra, default=str)}"
    if len(body) > 220:
        body = body[:217] + "..."
    return f"{t} {src:<14} {body}"


def describe_folded(records: Iterable[dict[str, Any]], at: int = FOLD_AT) -> list[str]:
    """:func:`describe` of each record, with runs of ``at`` or more keepalive frames (pings,
    pongs, heartbeats) folded into one counted line, as the sequence diagram folds them: a
    failure's excerpt shows what happened, not forty pings."""
    out: list[str] = []
    run: list[dict[str, Any]] = []

    def flush() -> None:
        if len(run) >= at:
            kinds: dict[str, int] = {}
            for rec in run:
                data = rec.get("data")
                inner = data.get("type") if isinstance(data, dict) else None
                word = str(rec.get("type") or rec.get("op") or inner or "keepalive")
                kinds[word] = kinds.get(word, 0) + 1
            what = ", ".join(f"{n} {k}" for k, n in kinds.items())
            first, last = run[0].get("t", 0), run[-1].get("t", 0)
            out.append(f"{first:9.2f}s {'':<14} ... {what} folded ({first:.2f} s to {last:.2f} s)")
        else:
            out.extend(describe(rec) for rec in run)
        run.clear()

    for rec in records:
        if rec.get("kind") in ("frame", "event") and is_noise_frame(rec):  # both ends' views
            run.append(rec)
            continue
        flush()
        out.append(describe(rec))
    flush()
    return out
