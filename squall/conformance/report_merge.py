"""Read ``index.json`` matrices back, and merge several into one (sharded and CI-matrix runs).

A run on another machine wrote absolute transcript paths that mean nothing here, so
each transcript is looked for where it was, then where ``squall run`` puts it next to
the index (``transcripts/<client>/<scenario>.jsonl``, under the index's folder or its
``html/``). Merging keeps every input's facts (``meta.sources``) and never overwrites:
the same scenario and client in two inputs is a *conflict*, listed in the result (the
first input's run is kept) for the caller to report.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any


class BadIndex(ValueError):
    """An ``index.json`` that cannot be read: the sentence says which file and why."""


def load_index(path: str | Path) -> dict[str, Any]:
    """One matrix, checked for the shape :func:`squall.conformance.report.matrix` writes."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadIndex(f"{p}: no such file (write one with `squall run --json {p}`)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadIndex(f"{p}: cannot read it: {exc}") from None
    except ValueError as exc:
        raise BadIndex(f"{p}: not JSON: {exc}") from None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("clients"), list)
        or not isinstance(data.get("results"), dict)
    ):
        raise BadIndex(
            f"{p}: not a squall index.json (expected an object with 'clients' and 'results')"
        )
    for client in data["clients"]:
        runs = data["results"].get(client, {})
        if not isinstance(runs, dict) or not all(
            isinstance(r, dict) and "verdict" in r for r in runs.values()
        ):
            raise BadIndex(f"{p}: results.{client} is not a table of scenario -> run")
    return data


def find_transcript(entry: dict[str, Any], index: Path, client: str, scenario: str) -> Path | None:
    """Where a run's transcript is on this machine, or None."""
    from .report_text import slug

    given = entry.get("transcript")
    tail = Path("transcripts") / slug(client) / f"{scenario}.jsonl"
    base = index.resolve().parent
    candidates = [Path(given)] if given else []
    if given and not Path(given).is_absolute():
        candidates.append(base / given)
    candidates += [base / tail, base / "html" / tail]
    return next((c for c in candidates if c.is_file()), None)


def merge(
    paths: Iterable[str | Path], *, copy_to: Path | None = None
) -> tuple[dict[str, Any], list[str]]:
    """One matrix from several; returns it and its conflicts (also under ``"conflicts"``).

    ``copy_to``: copy every transcript there (``<client>/<scenario>.jsonl``), so that a
    merged HTML report does not depend on the inputs staying where they are.
    """
    from .report import run_meta
    from .report_text import slug

    clients: list[str] = []
    results: dict[str, dict[str, Any]] = {}
    sources: list[dict[str, Any]] = []
    about: dict[str, Any] = {}
    conflicts: list[str] = []
    for raw in paths:
        path = Path(raw)
        data = load_index(path)
        meta = data.get("meta") or {}
        sources.append({"index": str(path), **{k: v for k, v in meta.items() if k != "clients"}})
        for name, facts in (meta.get("clients") or {}).items():
            about.setdefault(name, facts)
        for client in data["clients"]:
            if client not in clients:
                clients.append(client)
            table = results.setdefault(client, {})
            for sid, entry in data["results"].get(client, {}).items():
                if sid in table:
                    first = table[sid]
                    conflicts.append(
                        f"{sid} [{client}]: {first['source']} says {first['verdict']}, "
                        f"{path} says {entry['verdict']}; kept the first"
                    )
                    continue
                entry = dict(entry, source=str(path))
                found = find_transcript(entry, path, client, sid)
                if found is not None and copy_to is not None:
                    target = copy_to / slug(client) / f"{sid}.jsonl"
                    target.parent.mkdir(parents=True, exist_ok=True)
                    if found.resolve() != target.resolve():
                        shutil.copyfile(found, target)
                    found = target
                entry["transcript"] = str(found.resolve()) if found is not None else None
                table[sid] = entry
    for client in results:
        results[client] = dict(sorted(results[client].items()))
    meta = run_meta(clients)
    meta["clients"] = {**meta["clients"], **about}  # each input's own account of its clients
    meta["sources"] = sources
    return (
        {"meta": meta, "clients": clients, "results": results, "conflicts": conflicts},
        conflicts,
    )
