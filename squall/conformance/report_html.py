"""The static HTML report: the matrix (``index.html``) and a page per run, from index.json data.

Everything here works on the matrix's plain data (:func:`squall.conformance.report.matrix`,
or several merged by :mod:`.report_merge`), never on live results, so a report can be
rebuilt from ``index.json`` files alone. The pages' markup, style and script are files
in ``report_assets/`` (``string.Template``, ``$name``), inlined: a page is one file
that opens from disk, with nothing fetched from anywhere.

The matrix is Autobahn's: a row per scenario (grouped by the part of the id before the
dot), a column per client, each cell the verdict, coloured, with its duration, linking
to the run's page. A run's page has its facts, the failure (expected, observed, the
rule), every step (passing runs too), the sequence diagram (noise folded; the whole
sequence one click away), its Mermaid text with a copy button, and the transcript,
one expandable record per line, which the diagram's labels link to.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from squall.secrets import Secrets

from . import report_sequence, report_svg
from .report_mermaid import mermaid

#: What each verdict means (verdicts.py), for the legend.
LEGEND = {
    "OK": "every expectation held, on time",
    "NON-STRICT": "conforms, but missed a non-strict expectation or met one late",
    "FAILED": "a strict expectation did not hold: the client broke a rule",
    "ERROR": "not the client's fault: the scenario, the driver or squall went wrong",
    "INFORMATIONAL": "run and reported, never judged",
    "UNIMPLEMENTED": "the client lacks a command the scenario needs",
}
MAX_RECORDS = 3000  # transcript records listed on one page


@cache
def asset(name: str) -> str:
    return (resources.files(__package__) / "report_assets" / name).read_text(encoding="utf-8")


def _e(value: Any) -> str:
    return html.escape(str(value))


def page_name(client: str, scenario: str) -> str:
    from .report_text import slug

    return f"{slug(client)}__{slug(scenario)}.html"


def verdict_class(verdict: str) -> str:
    return f"v-{verdict}" if verdict in LEGEND else "v-none"


# --- the matrix ------------------------------------------------------------------------------


def index_page(data: Mapping[str, Any]) -> str:
    clients: list[str] = list(data["clients"])
    results: Mapping[str, Mapping[str, Any]] = data["results"]
    meta: Mapping[str, Any] = data.get("meta") or {}
    scenarios = sorted({s for c in clients for s in results.get(c, {})})
    counts: dict[str, int] = {}
    per_client: dict[str, dict[str, int]] = {c: {} for c in clients}
    rows: list[str] = []
    group = None
    for sid in scenarios:
        head = sid.split(".", 1)[0]
        if head != group:
            group = head
            rows.append(f'<tr class="group"><td colspan="{len(clients) + 2}">{_e(head)}</td></tr>')
        title = next((results[c][sid]["title"] for c in clients if sid in results.get(c, {})), "")
        cells = []
        for client in clients:
            r = results.get(client, {}).get(sid)
            if r is None:
                cells.append('<td class="v v-none" title="not run for this client">-</td>')
                continue
            verdict = str(r["verdict"])
            counts[verdict] = counts.get(verdict, 0) + 1
            per_client[client][verdict] = per_client[client].get(verdict, 0) + 1
            tip = _tip(r)
            cells.append(
                f'<td class="v {verdict_class(verdict)}" title="{_e(tip)}">'
                f'<a href="{page_name(client, sid)}">{_e(verdict)}'
                f"<br><small>{float(r.get('duration') or 0):.2f} s</small></a></td>"
            )
        rows.append(
            f'<tr><td><code id="{_e(sid)}">{_e(sid)}</code></td><td>{_e(title)}</td>'
            f"{''.join(cells)}</tr>"
        )
    totals = "".join(
        f"<td>{_e(', '.join(f'{n} {v}' for v, n in sorted(per_client[c].items())))}</td>"
        for c in clients
    )
    rows.append(f'<tr class="totals"><td colspan="2">per client</td>{totals}</tr>')
    about = meta.get("clients") or {}
    heads = "".join(
        f'<th class="client">{_e(c)}<small>{_e(_dialect(about, c))}</small></th>' for c in clients
    )
    legend = "".join(
        f'<li><span class="badge {verdict_class(v)}">{_e(v)}</span> {_e(why)}</li>'
        for v, why in LEGEND.items()
    )
    client_list = "".join(_client_entry(c, about.get(c) or {}, per_client[c]) for c in clients)
    wall = sum(float(r.get("duration") or 0) for c in clients for r in results.get(c, {}).values())
    proto = sum(
        float(r.get("protocol_time") or 0) for c in clients for r in results.get(c, {}).values()
    )
    summary = (
        f"{len(scenarios)} scenarios x {len(clients)} clients: "
        + (", ".join(f"{n} {v}" for v, n in sorted(counts.items())) or "nothing ran")
        + f"; {wall:.1f} s of run time for {proto:.0f} s of protocol time"
    )
    conflicts = data.get("conflicts") or []
    conflict_html = (
        '<div class="failure"><h2>conflicts</h2><p>The same scenario and client in more than '
        "one input; the first is shown:</p><ul>"
        + "".join(f"<li>{_e(c)}</li>" for c in conflicts)
        + "</ul></div>"
        if conflicts
        else ""
    )
    return Template(asset("index.html")).substitute(
        css=asset("report.css"),
        meta=meta_line(meta),
        summary=_e(summary),
        legend=legend,
        heads=heads,
        rows="\n".join(rows),
        clients=client_list,
        conflicts=conflict_html,
    )


def _dialect(about: Mapping[str, Any], client: str) -> str:
    return str((about.get(client) or {}).get("dialect", ""))


def _tip(r: Mapping[str, Any]) -> str:
    f = r.get("failure")
    if not f:
        return f"{r['verdict']}: {r.get('title', '')}"
    return (
        f"step {int(f['step']) + 1} {f['name']}: expected {f['expected']}; observed {f['observed']}"
    )


def meta_line(meta: Mapping[str, Any]) -> str:
    parts = [
        f"<b>{_e(meta.get('date', 'date unknown'))}</b>",
        f"squall <b>{_e(meta.get('squall', '?'))}</b>",
        f"commit <b class=mono>{_e(_short_commit(str(meta.get('commit') or 'unknown')))}</b>",
    ]
    if meta.get("host"):
        parts.append(f"on {_e(meta['host'])}")
    sources = meta.get("sources")
    if sources:
        parts.append(f"merged from {len(sources)} runs")
    return " · ".join(parts)


def _short_commit(commit: str) -> str:
    head, plus, rest = commit.partition("+")
    return head[:12] + plus + rest


def _client_entry(name: str, about: Mapping[str, Any], counts: Mapping[str, int]) -> str:
    what = _e(about.get("about") or "")
    dialect = _e(about.get("dialect") or "?")
    command = about.get("command") or "(unknown)"
    tally = ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
    return (
        f"<dt>{_e(name)}</dt><dd>{what} (dialect <b>{dialect}</b>; {_e(tally)})"
        f"<br><code>{_e(command)}</code></dd>"
    )


# --- a run ---------------------------------------------------------------------------------


def run_page(
    sid: str,
    client: str,
    r: Mapping[str, Any],
    records: list[dict[str, Any]] | None,
    meta: Mapping[str, Any],
    transcript_href: str | None,
) -> str:
    verdict = str(r["verdict"])
    about = (meta.get("clients") or {}).get(client) or {}
    facts = [
        f"<code>{_e(r.get('path', '?'))}</code>",
        f"{float(r.get('duration') or 0):.3f} s of run time for "
        f"{float(r.get('protocol_time') or 0):.1f} s of protocol time"
        + (
            f" (timescale {r['timescale']:g})"
            if isinstance(r.get("timescale"), int | float)
            else ""
        ),
    ]
    if about.get("command"):
        facts.append(f"client command <code>{_e(about['command'])}</code>")
    if r.get("spec"):
        facts.append("spec: " + ", ".join(_e(s) for s in r["spec"]))
    facts.append(meta_line(meta))
    failure = _failure(r)
    notes = "".join(f"<p>note: {_e(n)}</p>" for n in r.get("notes") or [])
    steps = _steps(r, records or [])
    if records is None:
        sequence = "<p>No transcript: the run's transcript file was not found.</p>"
        transcript = ""
    else:
        sequence = _sequence(sid, client, records, r.get("failure"))
        transcript = _records(records, transcript_href)
    return Template(asset("run.html")).substitute(
        css=asset("report.css"),
        js=asset("report.js"),
        scenario=_e(sid),
        title=_e(r.get("title", "")),
        client=_e(client),
        verdict=_e(verdict),
        facts=" · ".join(facts),
        failure=failure,
        notes=notes,
        steps=steps,
        sequence=sequence,
        transcript=transcript,
    )


def _failure(r: Mapping[str, Any]) -> str:
    f = r.get("failure")
    if not f:
        return ""
    step = int(f.get("step", -1))
    where = (
        f"failure at step {step + 1} ({_e(f['name'])}, line {_e(f['line'])})"
        if step >= 0
        else f"failure in {_e(f.get('name', 'setup'))} (line {_e(f.get('line'))})"
    )
    rows = [("expected", f["expected"]), ("observed", f["observed"])]
    if f.get("rule"):
        rows.append(("rule", f["rule"]))
    if r.get("spec"):
        rows.append(("spec", ", ".join(map(str, r["spec"]))))
    if f.get("blame") and f["blame"] != "client":
        rows.append(("whose fault", f["blame"]))
    slice_ = f.get("transcript") or []
    from .report_text import describe

    around = (
        "<details><summary>the records around the failure</summary><pre>"
        + _e("\n".join(describe(x) for x in slice_))
        + "</pre></details>"
        if slice_
        else ""
    )
    css = "failure error" if r.get("verdict") == "ERROR" else "failure"
    body = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in rows)
    headline = r.get("headline")
    head = f'<p class="headline"><b>{_e(headline)}</b></p>' if headline else ""
    return f'<div class="{css}"><h2>{where}</h2>{head}<dl>{body}</dl>{around}</div>'


def _steps(r: Mapping[str, Any], records: list[dict[str, Any]]) -> str:
    failed = (r.get("failure") or {}).get("step")
    figures: dict[Any, list[str]] = {}  # step index (None: no step) -> its attachments, drawn
    for rec in records:
        if rec.get("kind") == "attachment":
            figures.setdefault(rec.get("step"), []).append(attachment_html(rec))
    out = []
    for s in r.get("steps") or []:
        status = str(s.get("status", "skipped"))
        started, ended = s.get("started"), s.get("ended")
        took = f"{ended - started:.2f} s" if started is not None and ended is not None else ""
        css = ' class="failed-step"' if s.get("index") == failed and status != "ok" else ""
        args = json.dumps(s.get("args") or {}, default=str, separators=(", ", ": "))
        out.append(
            f"<tr{css}><td>{int(s['index']) + 1}</td>"
            f"<td><code>{_e(s['name'])}</code> <small class=mono>{_e(args)}</small></td>"
            f'<td>{_e(s.get("line"))}</td><td class="status s-{_e(status)}">{_e(status)}</td>'
            f"<td>{'' if started is None else f'{started:.2f} s'}</td><td>{took}</td>"
            f"<td>{_e(s.get('message') or '')}</td></tr>"
        )
        out.extend(_figure_row(f) for f in figures.pop(s.get("index"), []))
    out.extend(_figure_row(f) for shown in figures.values() for f in shown)
    return "\n".join(out) or '<tr><td colspan="7">no steps recorded</td></tr>'


def _figure_row(figure: str) -> str:
    return f'<tr class="attachment"><td></td><td colspan="6">{figure}</td></tr>'


#: What an attached SVG may hold to be drawn inline: squall's own charts use no more.
SVG_ELEMENTS = frozenset({"svg", "g", "rect", "line", "polyline", "path", "text", "tspan", "title"})


def attachment_html(rec: Mapping[str, Any]) -> str:
    """An ``attachment`` record (``name``, ``mime``, ``title``, ``content``) as a figure: an
    SVG inline, when it holds nothing but drawing (no script, handler, link or foreign
    content), else as an image, where nothing it holds can run; other types as text."""
    name, title = str(rec.get("name") or "attachment"), str(rec.get("title") or "")
    content = str(rec.get("content") or "")
    caption = f"<figcaption>{_e(title or name)} <small class=mono>{_e(name)}</small></figcaption>"
    if rec.get("mime") == "image/svg+xml":
        body = content if _plain_svg(content) else _svg_image(content, title or name)
    else:
        body = f"<pre>{_e(content)}</pre>"
    return f'<figure class="attachment" data-name="{_e(name)}">{body}{caption}</figure>'


def _plain_svg(content: str) -> bool:
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(content)
    except ET.ParseError:
        return False
    for el in root.iter():
        tag = el.tag.rsplit("}", 1)[-1]
        if tag not in SVG_ELEMENTS:
            return False
        if any(k.lower().startswith("on") or k.endswith("href") for k in el.attrib):
            return False
    return root.tag == "{http://www.w3.org/2000/svg}svg"


def _svg_image(content: str, alt: str) -> str:
    import base64

    data = base64.b64encode(content.encode("utf-8")).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/svg+xml;base64,{data}">'


def _sequence(
    sid: str, client: str, records: list[dict[str, Any]], failure: Mapping[str, Any] | None
) -> str:
    seq = report_sequence.build(records, failure=failure)
    folded = seq.folded()
    label = f"sequence of {sid} against {client}"
    parts = [f'<div class="diagram" id="diagram">{report_svg.render(seq, label=label)}</div>']
    hidden = len(seq.items) - len(folded)
    if hidden > 0:
        whole = report_svg.render(seq, fold=False, label=label)
        parts.append(
            f"<details><summary>the whole sequence: {len(seq.items)} rows, pings and pongs "
            f'unfolded</summary><div class="diagram">{whole}</div></details>'
        )
    text = mermaid(seq, comment=f"squall: {sid} against {client}")
    parts.append(
        '<div class="tools"><button type="button" data-copy="mermaid-text">Copy as Mermaid</button>'
        '<span class="copy-state"></span>'
        "<span class=meta>paste into a GitHub issue inside a <code>```mermaid</code> block; "
        "or <code>squall report --mermaid "
        f"{_e(sid)}</code></span></div>"
        f'<textarea class="mermaid-text" id="mermaid-text" readonly>{_e(text)}</textarea>'
        f"<details><summary>Mermaid text</summary><pre>{_e(text)}</pre></details>"
    )
    return "".join(parts)


def _records(records: list[dict[str, Any]], href: str | None) -> str:
    from .report_text import describe

    shown = records[:MAX_RECORDS]
    items = "".join(
        f'<details id="rec-{_e(rec.get("n"))}"><summary>{_e(describe(rec))}</summary>'
        f"<pre>{_e(json.dumps(rec, indent=2, default=str, ensure_ascii=False))}</pre></details>"
        for rec in shown
    )
    more = (
        f"<p>{len(records) - len(shown)} more records are in the transcript file.</p>"
        if len(records) > len(shown)
        else ""
    )
    link = f'<p><a href="{_e(href)}">transcript (JSON lines)</a></p>' if href else ""
    summary = f"<summary>{len(records)} records</summary>"
    return f'{link}<details class="records">{summary}{items}</details>{more}'


# --- the site ------------------------------------------------------------------------------


def load_records(path: str | Path | None) -> list[dict[str, Any]] | None:
    """A transcript file's records (None if it is not there)."""
    if not path:
        return None
    p = Path(path)
    if not p.is_file():
        return None
    out = []
    for line in p.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def write_site(data: Mapping[str, Any], directory: str | Path, clean: Secrets) -> Path:
    """``index.html`` and one page per run into ``directory``; returns the index's path."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    meta = data.get("meta") or {}
    for client in data["clients"]:
        for sid, r in (data["results"].get(client) or {}).items():
            tfile = r.get("transcript")
            records = load_records(tfile)
            if records is not None:
                records = clean.scrub(records)
            href = _href(tfile, out) if records is not None else None
            page = run_page(sid, client, r, records, meta, href)
            (out / page_name(client, sid)).write_text(clean.scrub_text(page), encoding="utf-8")
    index = out / "index.html"
    index.write_text(clean.scrub_text(index_page(data)), encoding="utf-8")
    return index


def _href(path: str | None, out: Path) -> str | None:
    """A link to a transcript file: relative when it is under the report, else a file URI."""
    if not path:
        return None
    p = Path(path).resolve()
    try:
        return p.relative_to(out.resolve()).as_posix()
    except ValueError:
        return p.as_uri()
