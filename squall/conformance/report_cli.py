"""``squall report``: reports from the ``index.json`` that ``squall run --json`` wrote.

``squall report --mermaid ID [--index PATH] [--client NAME]`` prints scenario ID's
sequence as Mermaid ``sequenceDiagram`` text (``--fenced``: inside a ```` ```mermaid ````
block, ready to paste into a GitHub issue). With several clients in the index, the one
that did not pass is picked, or name one with ``--client``.

``squall report merge A/index.json B/index.json ... [--json OUT] [--html DIR]``
combines the matrices of several machines or CI jobs into one matrix and one HTML
report (transcripts copied next to it). The same scenario x client in two inputs is a
conflict: each is printed, the first input's run is kept, and the exit status is 1.

Exit status: 0, 1 (conflicts), 2 (an input that cannot be read, an unknown ID).
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path
from typing import Any

from .report_merge import BadIndex, find_transcript, load_index, merge


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--index",
        default="index.json",
        metavar="PATH",
        help="the index.json to read (squall run --json PATH wrote it)",
    )
    parser.add_argument("--mermaid", metavar="ID", help="print scenario ID's sequence as Mermaid")
    parser.add_argument("--client", metavar="NAME", help="whose run of ID (default: the failing)")
    parser.add_argument(
        "--fenced", action="store_true", help="wrap the Mermaid text in a ```mermaid block"
    )
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    m = sub.add_parser("merge", help="combine several index.json files into one report")
    m.add_argument("inputs", nargs="+", metavar="INDEX", help="index.json files")
    m.add_argument("--json", metavar="PATH", help="write the merged matrix here")
    m.add_argument("--html", metavar="DIR", help="write the merged HTML report here")


def run(args: argparse.Namespace) -> int:
    try:
        if args.action == "merge":
            return _merge(args)
        if args.mermaid:
            return _mermaid(args)
    except BadIndex as exc:
        print(f"squall report: {exc}", file=sys.stderr)
        return 2
    print("squall report: say what to report: --mermaid ID, or merge INDEX...", file=sys.stderr)
    return 2


def _merge(args: argparse.Namespace) -> int:
    from .report import write_html_data, write_json_data

    if not (args.json or args.html):
        print(
            "squall report merge: nothing to write: give --json PATH and/or --html DIR",
            file=sys.stderr,
        )
        return 2
    copy_to = Path(args.html) / "transcripts" if args.html else None
    data, conflicts = merge(args.inputs, copy_to=copy_to)
    for conflict in conflicts:
        print(f"conflict: {conflict}", file=sys.stderr)
    if args.json:
        write_json_data(data, args.json)
    if args.html:
        print(f"HTML report: {write_html_data(data, args.html)}")
    runs = sum(len(r) for r in data["results"].values())
    print(
        f"merged {len(args.inputs)} inputs: {runs} runs of {len(data['clients'])} clients"
        + (f"; {len(conflicts)} conflict(s)" if conflicts else "")
    )
    return 1 if conflicts else 0


def _mermaid(args: argparse.Namespace) -> int:
    from . import report_sequence
    from .report_html import load_records
    from .report_mermaid import mermaid

    index = Path(args.index)
    data = load_index(index)
    sid = args.mermaid
    ran = {c: data["results"][c][sid] for c in data["clients"] if sid in data["results"].get(c, {})}
    if not ran:
        known = sorted({s for c in data["clients"] for s in data["results"].get(c, {})})
        near = difflib.get_close_matches(sid, known, n=3)
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        print(f"squall report: {index}: no run of scenario {sid!r}{hint}", file=sys.stderr)
        return 2
    client = _pick(ran, args.client)
    if client is None:
        print(
            f"squall report: {sid} ran against {', '.join(ran)}: pick one with --client",
            file=sys.stderr,
        )
        return 2
    entry: dict[str, Any] = ran[client]
    path = find_transcript(entry, index, client, sid)
    records = load_records(path)
    if records is None:
        print(
            f"squall report: the transcript of {sid} [{client}] is not there "
            f"({entry.get('transcript')})",
            file=sys.stderr,
        )
        return 2
    seq = report_sequence.build(records, failure=entry.get("failure"))
    text = mermaid(seq, comment=f"squall: {sid} against {client}: {entry['verdict']}")
    sys.stdout.write(f"```mermaid\n{text}```\n" if args.fenced else text)
    return 0


def _pick(ran: dict[str, dict[str, Any]], wanted: str | None) -> str | None:
    """The client named, the only one, or the only one that did not pass."""
    if wanted is not None:
        return wanted if wanted in ran else None
    if len(ran) == 1:
        return next(iter(ran))
    bad = [c for c, r in ran.items() if r.get("verdict") in ("FAILED", "ERROR")]
    return bad[0] if len(bad) == 1 else None
