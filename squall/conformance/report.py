"""Reports: the failure text pytest prints, the JSON matrix, the static HTML report, diagrams.

The JSON matrix follows Autobahn's ``index.json``:
``{"meta": {date, squall, commit, clients: {name: {command, dialect}}}, "clients": [...],
"results": {client: {scenario: {verdict, duration, protocol_time, transcript, title, path,
failure, steps, ...}}}}``. The HTML report (:mod:`.report_html`) is one ``index.html``
(scenario x client, coloured by verdict) plus a page per run with its steps, its failure
and a sequence diagram (:mod:`.report_sequence`, drawn by :mod:`.report_svg`, exported
by :mod:`.report_mermaid`); :mod:`.report_merge` joins the matrices of several runs.

Nothing leaves here unscrubbed: each writer masks with the run's
:class:`~squall.secrets.Secrets` (``result.secrets``) or the one it is given
(``secrets=``, for the matrix of many runs), first on the data and once more on
the final text, so a secret is masked in every form a page can show it in.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from squall.secrets import KEYS_ONLY, Secrets

from .report_text import describe_folded, slug
from .verdicts import Result, StepResult

COLOURS = {
    "OK": "#3c9d4e",
    "NON-STRICT": "#c9a227",
    "FAILED": "#c0392b",
    "INFORMATIONAL": "#5d7fb9",
    "UNIMPLEMENTED": "#8e8e8e",
    "ERROR": "#6c3483",  # not the client's fault
}


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


def failure_text(result: Result) -> str:
    """What pytest prints for a FAILED scenario: where, expected, observed, the transcript slice."""
    f = result.failure
    lines = [
        f"scenario {result.scenario} ({result.title}) against {result.client}: {result.verdict}"
    ]
    if f is None:
        return _registry(result).scrub_text("\n".join(lines))
    lines += [
        f"  at {_relative(result.path)}:{f.line}: {f.where}",
        f"  expected: {f.expected}",
        f"  observed: {f.observed}",
        *([f"  rule: {result.rules()}"] if result.rules() else []),
        *([f"  not the client's fault: {f.blame.who}"] if f.blame.value != "client" else []),
        "  transcript (the records around the failure):",
    ]
    lines += [f"    {line}" for line in describe_folded(_registry(result).scrub(f.transcript))]
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


#: Result fields the matrix renames or leaves out (a transcript is a file next to it).
_NOT_COPIED = frozenset({"scenario", "client", "wall", "transcript_file", "transcript"})


def matrix(
    results: Iterable[dict[str, Any]], *, meta: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Autobahn's ``index.json`` shape, with the steps of every run and the report's facts.

    ``meta``: the date, squall's version and commit, each client's command (default:
    :func:`run_meta` now, for the clients in ``results``).
    """
    clients: list[str] = []
    table: dict[str, dict[str, Any]] = {}
    for r in results:
        if r["client"] not in clients:
            clients.append(r["client"])
        entry = {
            "verdict": r["verdict"],
            "duration": round(r["wall"], 4),
            "protocol_time": round(r["protocol_time"], 3),
            "timescale": r.get("timescale"),
            "transcript": r.get("transcript_file"),
            "title": r["title"],
            "path": r["path"],
            "failure": r.get("failure"),
            "notes": r.get("notes", []),
            "spec": r.get("spec", []),
            "headline": r.get("headline", ""),  # the step, expected, observed and the rule
            "steps": r.get("steps", []),
        }
        # Whatever else a result carries reaches the matrix too (new fields included).
        entry.update({k: v for k, v in r.items() if k not in _NOT_COPIED and k not in entry})
        table.setdefault(r["client"], {})[r["scenario"]] = entry
    for client in table:
        table[client] = dict(sorted(table[client].items()))
    return {"meta": meta or run_meta(clients), "clients": clients, "results": table}


def run_meta(clients: Iterable[str]) -> dict[str, Any]:
    """When and with what a report was made: date, squall's version and commit, the clients."""
    import datetime
    import platform

    import squall

    from .clients import profile

    about: dict[str, Any] = {}
    for name in clients:
        try:
            prof = profile(name)
        except ValueError:
            continue
        command = " ".join(w.replace("{python}", "python") for w in prof.argv)
        about[name] = {"command": command, "dialect": prof.dialect, "about": prof.about}
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "squall": getattr(squall, "__version__", "unknown"),
        "commit": git_commit(),
        "python": platform.python_version(),
        "clients": about,
    }


def git_commit() -> str:
    """The commit squall runs from (``git rev-parse HEAD``, ``+dirty`` if changed), or unknown."""
    import subprocess

    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5
        )
        if head.returncode != 0:
            return "unknown"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def write_json(
    results: Iterable[dict[str, Any]], path: str | Path, *, secrets: Secrets | None = None
) -> None:
    write_json_data(matrix(results), path, secrets=secrets)


def write_json_data(
    data: dict[str, Any], path: str | Path, *, secrets: Secrets | None = None
) -> None:
    """Write a matrix (:func:`matrix`, or merged ones), scrubbed."""
    clean = _registry(None, secrets)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(clean.scrub(data), indent=2, default=str) + "\n"
    p.write_text(clean.scrub_text(text), encoding="utf-8")


def write_html(
    results: Iterable[dict[str, Any]], directory: str | Path, *, secrets: Secrets | None = None
) -> Path:
    """``index.html`` (the matrix) and one page per run; returns the index path."""
    return write_html_data(matrix(results), directory, secrets=secrets)


def write_html_data(
    data: dict[str, Any], directory: str | Path, *, secrets: Secrets | None = None
) -> Path:
    """The HTML report of a matrix (:mod:`.report_html`), scrubbed."""
    from .report_html import write_site

    clean = _registry(None, secrets)
    return write_site(clean.scrub(data), directory, clean)


# --- sequence diagram ------------------------------------------------------------------------


def sequence_svg(result: Result, *, fold: bool = True) -> str:
    """The run as an SVG sequence diagram (client / proxy / server lanes), scrubbed."""
    from . import report_sequence, report_svg

    clean = _registry(result)
    failure = result.to_json().get("failure")
    seq = report_sequence.build(clean.scrub(result.transcript), failure=failure)
    return clean.scrub_text(
        report_svg.render(seq, fold=fold, label=f"sequence of {result.scenario}")
    )


def sequence_mermaid(result: Result) -> str:
    """The run as Mermaid ``sequenceDiagram`` text, scrubbed."""
    from . import report_sequence
    from .report_mermaid import mermaid

    clean = _registry(result)
    failure = result.to_json().get("failure")
    seq = report_sequence.build(clean.scrub(result.transcript), failure=failure)
    return clean.scrub_text(
        mermaid(seq, comment=f"squall: {result.scenario} against {result.client}")
    )
