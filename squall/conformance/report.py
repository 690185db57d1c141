"""Reports: the failure text pytest prints, the JSON matrix, the static HTML report, diagrams.

The JSON matrix follows Autobahn's ``index.json``:
``{"clients": [...], "results": {client: {scenario: {verdict, duration, protocol_time,
transcript, title, path, failure}}}}``. The HTML report is one ``index.html``
(scenario x client, coloured by verdict) plus a page per run with its steps,
its failure and a sequence diagram (client / proxy / server lanes) drawn from
the transcript.

Nothing leaves here unscrubbed: each writer masks with the run's
:class:`~squall.secrets.Secrets` (``result.secrets``) or the one it is given
(``secrets=``, for the matrix of many runs), first on the data and once more on
the final text, so a secret is masked in every form a page can show it in.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from squall.secrets import KEYS_ONLY, Secrets

from .verdicts import Result, StepResult

COLOURS = {
    "OK": "#3c9d4e",
    "NON-STRICT": "#c9a227",
    "FAILED": "#c0392b",
    "INFORMATIONAL": "#5d7fb9",
    "UNIMPLEMENTED": "#8e8e8e",
}
NOISE = {"sent", "packet", "status"}


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "client"


def _registry(result: Result | None = None, secrets: Secrets | None = None) -> Secrets:
    """The registry to scrub with: the one given, the run's, or key-based masking alone."""
    if secrets is not None:
        return secrets
    if result is not None and result.secrets is not None:
        return result.secrets
    return KEYS_ONLY


def step_title(step: StepResult, secrets: Secrets | None = None) -> str:
    clean = _registry(None, secrets)
    args = json.dumps(clean.scrub(step.args), default=str, separators=(", ", ": "))
    if len(args) > 90:
        args = args[:87] + "..."
    return clean.scrub_text(
        f"{step.index + 1}. {step.name} {args}  [line {step.line}, {step.status.value}]"
    )


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


def failure_text(result: Result) -> str:
    """What pytest prints for a FAILED scenario: where, expected, observed, the transcript slice."""
    f = result.failure
    lines = [
        f"scenario {result.scenario} ({result.title}) against {result.client}: {result.verdict}"
    ]
    if f is None:
        return _registry(result).scrub_text("\n".join(lines))
    lines += [
        f"  at {_relative(result.path)}:{f.line}: step {f.step + 1} {f.name}",
        f"  expected: {f.expected}",
        f"  observed: {f.observed}",
        "  transcript (the records around the failure):",
    ]
    lines += [f"    {describe(r)}" for r in _registry(result).scrub(f.transcript)]
    if result.notes:
        lines.append("  notes: " + "; ".join(result.notes))
    return _registry(result).scrub_text("\n".join(lines))


def _relative(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return path


def transcript_jsonl(result: Result) -> str:
    clean = _registry(result)
    return "".join(
        clean.scrub_text(json.dumps(clean.scrub(r), default=str, separators=(",", ":"))) + "\n"
        for r in result.transcript
    )


def write_transcript(result: Result, directory: str | Path) -> str:
    """Write the run's transcript as JSON lines; returns and records the file's path."""
    out = Path(directory) / slug(result.client)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{result.scenario}.jsonl"
    path.write_text(transcript_jsonl(result), encoding="utf-8")
    svg = out / f"{result.scenario}.svg"
    svg.write_text(sequence_svg(result), encoding="utf-8")
    result.transcript_file = str(path.resolve())
    return str(path)


# --- the matrix ------------------------------------------------------------------------------


def matrix(results: Iterable[dict[str, Any]]) -> dict[str, Any]:
    clients: list[str] = []
    table: dict[str, dict[str, Any]] = {}
    for r in results:
        if r["client"] not in clients:
            clients.append(r["client"])
        table.setdefault(r["client"], {})[r["scenario"]] = {
            "verdict": r["verdict"],
            "duration": round(r["wall"], 4),
            "protocol_time": round(r["protocol_time"], 3),
            "timescale": r.get("timescale"),
            "transcript": r.get("transcript_file"),
            "title": r["title"],
            "path": r["path"],
            "failure": r.get("failure"),
            "notes": r.get("notes", []),
        }
    for client in table:
        table[client] = dict(sorted(table[client].items()))
    return {"clients": clients, "results": table}


def write_json(
    results: Iterable[dict[str, Any]], path: str | Path, *, secrets: Secrets | None = None
) -> None:
    clean = _registry(None, secrets)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(clean.scrub(matrix(results)), indent=2, default=str) + "\n"
    p.write_text(clean.scrub_text(text), encoding="utf-8")


_CSS = """body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}td.v{color:#fff;font-weight:600}
pre{background:#f6f6f6;padding:8px;overflow:auto}a{color:inherit}"""


def write_html(
    results: Iterable[dict[str, Any]], directory: str | Path, *, secrets: Secrets | None = None
) -> Path:
    """``index.html`` (the matrix) and one page per run; returns the index path."""
    clean = _registry(None, secrets)
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    data = clean.scrub(matrix(results))
    clients = data["clients"]
    scenarios = sorted({s for c in clients for s in data["results"][c]})
    rows = []
    counts: dict[str, int] = {}
    for sid in scenarios:
        cells = []
        title = ""
        for client in clients:
            r = data["results"][client].get(sid)
            if r is None:
                cells.append("<td>-</td>")
                continue
            title = r["title"]
            counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
            page = f"{slug(client)}__{slug(sid)}.html"
            (out / page).write_text(clean.scrub_text(_run_page(sid, client, r)), encoding="utf-8")
            colour = COLOURS.get(r["verdict"], "#555")
            cells.append(
                f'<td class="v" style="background:{colour}"><a href="{page}">{r["verdict"]}</a>'
                f" <small>{r['duration'] * 1000:.0f} ms</small></td>"
            )
        rows.append(
            f"<tr><td><code>{html.escape(sid)}</code></td><td>{html.escape(title)}</td>{''.join(cells)}</tr>"
        )
    head = "".join(f"<th>{html.escape(c)}</th>" for c in clients)
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    index = out / "index.html"
    index.write_text(
        clean.scrub_text(
            "<!doctype html><meta charset=utf-8><title>squall conformance</title>"
            f"<style>{_CSS}</style><h1>squall conformance</h1>"
            f"<p>{len(scenarios)} scenarios: {summary}</p>"
            f"<table><tr><th>scenario</th><th>title</th>{head}</tr>{''.join(rows)}</table>"
        ),
        encoding="utf-8",
    )
    return index


def _run_page(sid: str, client: str, r: dict[str, Any]) -> str:
    parts = [
        "<!doctype html><meta charset=utf-8>",
        f"<title>{html.escape(sid)}</title><style>{_CSS}</style>",
        f"<h1>{html.escape(sid)}: {html.escape(r['title'])}</h1>",
        f"<p>client <code>{html.escape(client)}</code>, verdict <b>{r['verdict']}</b>, "
        f"{r['duration']:.3f} s real for {r['protocol_time']:.1f} s of protocol time; "
        f"<code>{html.escape(r['path'])}</code></p>",
    ]
    f = r.get("failure")
    if f:
        parts.append(
            f"<h2>failure at step {f['step'] + 1} ({html.escape(f['name'])}, line {f['line']})</h2>"
            f"<p>expected: {html.escape(f['expected'])}<br>"
            f"observed: {html.escape(f['observed'])}</p>"
            "<pre>" + html.escape("\n".join(describe(x) for x in f["transcript"])) + "</pre>"
        )
    for note in r.get("notes") or []:
        parts.append(f"<p>note: {html.escape(note)}</p>")
    tfile = r.get("transcript")
    if tfile and Path(tfile).exists():
        svg = Path(tfile).with_suffix(".svg")
        if svg.exists():
            parts.append("<h2>sequence</h2>" + svg.read_text(encoding="utf-8"))
        parts.append(
            f'<p><a href="{Path(tfile).resolve().as_uri()}">transcript (JSON lines)</a></p>'
        )
    return "".join(parts)


# --- sequence diagram ------------------------------------------------------------------------


def _lanes(result: Result) -> list[str]:
    clients = []
    for rec in result.transcript:
        src = rec.get("src", "")
        if src.startswith("client:") and src[7:] not in clients:
            clients.append(src[7:])
    has_proxy = any(r.get("src") == "proxy" for r in result.transcript)
    return [*clients, *(["proxy"] if has_proxy else []), "server"]


def sequence_svg(result: Result, limit: int = 400) -> str:
    """The transcript as an SVG sequence diagram: one lane per client, the proxy, the server."""
    clean = _registry(result)
    records = clean.scrub(result.transcript)  # before any label is cut short
    lanes = _lanes(result)
    x = {lane: 120 + i * 220 for i, lane in enumerate(lanes)}
    width = 120 + len(lanes) * 220
    conn_client: dict[str, str] = {}
    user_client = {}
    for rec in records:
        if rec.get("kind") == "event" and rec.get("event") == "connected":
            data = rec.get("data") or {}
            user_client[data.get("user")] = rec["src"][7:]
            if data.get("sid"):
                conn_client[data["sid"]] = rec["src"][7:]
    rows: list[str] = []
    y = 60
    first_client = next(iter(lanes), "server")
    for rec in records:
        if len(rows) >= limit:
            break
        kind, src = rec.get("kind"), rec.get("src", "")
        t = f"{rec.get('t', 0):.2f}"
        label = ""
        if kind == "frame":
            who = conn_client.get(rec.get("conn") or "") or user_client.get(None) or first_client
            a, b = (who, "server") if rec.get("dir") == "in" else ("server", who)
            label = str(rec.get("type") or rec.get("text"))[:40]
            rows.append(
                _arrow(x.get(a, 120), x["server"] if b == "server" else x.get(b, 120), y, label, t)
            )
        elif kind == "event" and rec.get("event") not in NOISE:
            lane = src[7:]
            label = f"{rec.get('event')} {json.dumps(rec.get('data'), default=str)}"[:60]
            rows.append(_note(x.get(lane, 120), y, label, t, "#eef5ff"))
        elif kind == "fault" and "proxy" in x:
            label = f"{rec.get('action')} {rec.get('toxic') or ''}".strip()[:50]
            rows.append(_note(x["proxy"], y, label, t, "#ffecec"))
        elif (
            kind in ("control", "close", "closing", "recovery", "drain", "auth") and src == "server"
        ):
            extra = {k: v for k, v in rec.items() if k not in ("n", "t", "src", "kind")}
            label = f"{kind} {json.dumps(extra, default=str)}"[:60]
            rows.append(_note(x["server"], y, label, t, "#f3f3f3"))
        elif kind == "step":
            label = f"step {rec.get('index', 0) + 1}: {rec.get('name')}"
            rows.append(
                f'<line x1="10" y1="{y}" x2="{width - 10}" y2="{y}" '
                'stroke="#ccc" stroke-dasharray="4"/>'
                f'<text x="12" y="{y - 3}" font-size="10" fill="#888">{html.escape(label)}</text>'
            )
        else:
            continue
        y += 22
    height = y + 20
    heads = "".join(
        f'<text x="{x[lane]}" y="30" text-anchor="middle" font-weight="bold">'
        f"{html.escape(lane)}</text>"
        f'<line x1="{x[lane]}" y1="40" x2="{x[lane]}" y2="{height}" stroke="#999"/>'
        for lane in lanes
    )
    return clean.scrub_text(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="monospace" font-size="11">{heads}{"".join(rows)}</svg>'
    )


def _arrow(x1: int, x2: int, y: int, label: str, t: str) -> str:
    head = 6 if x2 > x1 else -6
    return (
        f'<line x1="{x1}" y1="{y}" x2="{x2}" y2="{y}" stroke="#333"/>'
        f'<polygon points="{x2},{y} {x2 - head},{y - 4} {x2 - head},{y + 4}" fill="#333"/>'
        f'<text x="{(x1 + x2) // 2}" y="{y - 3}" text-anchor="middle">{html.escape(label)}</text>'
        f'<text x="4" y="{y + 4}" fill="#888" font-size="9">{t}</text>'
    )


def _note(x: int, y: int, label: str, t: str, fill: str) -> str:
    w = 7 * len(label) + 8
    return (
        f'<rect x="{x - w // 2}" y="{y - 12}" width="{w}" height="16" fill="{fill}" stroke="#bbb"/>'
        f'<text x="{x}" y="{y}" text-anchor="middle">{html.escape(label)}</text>'
        f'<text x="4" y="{y + 4}" fill="#888" font-size="9">{t}</text>'
    )
