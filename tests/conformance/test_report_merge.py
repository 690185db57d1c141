"""``squall report``: Mermaid from an index.json, and ``merge`` of several (sharded CI runs).

Each test writes index.json files and transcripts in the shapes ``squall run --json``
writes, then runs the real ``squall`` command in a subprocess.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from .test_report_sequence import latency_run


def write_run(root: Path, runs: dict[str, dict[str, str]], *, moved: bool = False) -> Path:
    """An index.json under ``root`` with a transcript per run; ``runs``: client -> sid ->
    verdict. ``moved``: transcripts recorded at paths that do not exist (another machine)."""
    results: dict[str, dict[str, Any]] = {}
    for client, table in runs.items():
        for sid, verdict in table.items():
            transcript = root / "transcripts" / client / f"{sid}.jsonl"
            transcript.parent.mkdir(parents=True, exist_ok=True)
            transcript.write_text(
                "".join(json.dumps(r) + "\n" for r in latency_run().records), encoding="utf-8"
            )
            failure = (
                {
                    "step": 2,
                    "name": "expect.event",
                    "line": 16,
                    "expected": "an event",
                    "observed": "none",
                    "transcript": [],
                }
                if verdict == "FAILED"
                else None
            )
            results.setdefault(client, {})[sid] = {
                "verdict": verdict,
                "duration": 0.5,
                "protocol_time": 200.0,
                "timescale": 0.01,
                "transcript": f"/elsewhere/{sid}.jsonl" if moved else str(transcript),
                "title": f"title of {sid}",
                "path": f"scenarios/{sid}.yaml",
                "failure": failure,
                "notes": [],
                "steps": [],
            }
    meta = {
        "date": "2026-01-01 00:00:00 UTC",
        "squall": "0.1.0",
        "commit": "abc",
        "clients": {c: {"command": f"run-{c}", "dialect": "reference"} for c in runs},
    }
    index = root / "index.json"
    index.write_text(json.dumps({"meta": meta, "clients": list(runs), "results": results}))
    return index


def squall(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "squall.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_mermaid_prints_the_failing_run_of_a_scenario(tmp_path: Path) -> None:
    """``--mermaid ID`` picks the client that failed, and ``--fenced`` wraps it for GitHub."""
    index = write_run(tmp_path, {"good": {"a.one": "OK"}, "bad": {"a.one": "FAILED"}})
    proc = squall("report", "--index", str(index), "--mermaid", "a.one", "--fenced", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[:3] == [
        "```mermaid",
        "sequenceDiagram",
        "    %% squall: a.one against bad: FAILED",
    ]
    assert lines[-1] == "```"
    assert "    rect rgb(253, 236, 234)" in lines


def test_mermaid_says_what_is_wrong(tmp_path: Path) -> None:
    """An unknown ID is named with the nearest known one; two clients need --client."""
    index = write_run(tmp_path, {"one": {"a.one": "OK"}, "two": {"a.one": "OK"}})
    typo = squall("report", "--index", str(index), "--mermaid", "a.onr", cwd=tmp_path)
    assert typo.returncode == 2
    assert typo.stderr.strip().endswith("no run of scenario 'a.onr'; did you mean a.one?")
    both = squall("report", "--index", str(index), "--mermaid", "a.one", cwd=tmp_path)
    assert both.returncode == 2
    assert "a.one ran against one, two: pick one with --client" in both.stderr
    picked = squall(
        "report", "--index", str(index), "--mermaid", "a.one", "--client", "two", cwd=tmp_path
    )
    assert picked.returncode == 0 and picked.stdout.startswith("sequenceDiagram\n")
    missing = squall(
        "report", "--index", str(tmp_path / "nope.json"), "--mermaid", "x", cwd=tmp_path
    )
    assert missing.returncode == 2 and "nope.json: no such file" in missing.stderr
    (tmp_path / "bad.json").write_text('{"clients": 3}')
    bad = squall("report", "--index", str(tmp_path / "bad.json"), "--mermaid", "x", cwd=tmp_path)
    assert bad.returncode == 2 and "not a squall index.json" in bad.stderr
    assert "Traceback" not in missing.stderr + bad.stderr + typo.stderr


def test_merge_combines_shards_into_one_matrix_and_report(tmp_path: Path) -> None:
    """Two machines' runs (transcripts found next to each index) become one matrix."""
    a = write_run(tmp_path / "a", {"reference": {"a.one": "OK", "a.two": "FAILED"}}, moved=True)
    b = write_run(tmp_path / "b", {"mixer-sdk": {"a.one": "OK"}})
    out = tmp_path / "out"
    proc = squall(
        "report",
        "merge",
        str(a),
        str(b),
        "--json",
        str(out / "index.json"),
        "--html",
        str(out / "html"),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "merged 2 inputs: 3 runs of 2 clients" in proc.stdout
    data = json.loads((out / "index.json").read_text())
    assert data["clients"] == ["reference", "mixer-sdk"]
    assert {c: {s: r["verdict"] for s, r in t.items()} for c, t in data["results"].items()} == {
        "reference": {"a.one": "OK", "a.two": "FAILED"},
        "mixer-sdk": {"a.one": "OK"},
    }
    assert [s["index"] for s in data["meta"]["sources"]] == [str(a), str(b)]
    copied = Path(data["results"]["reference"]["a.two"]["transcript"])
    assert copied == (out / "html" / "transcripts" / "reference" / "a.two.jsonl").resolve()
    assert copied.is_file()
    index = (out / "html" / "index.html").read_text()
    assert "merged from 2 runs" in index and index.count('href="reference__a.two.html"') == 1
    page = (out / "html" / "reference__a.two.html").read_text()
    assert "failure at step 3" in page and "<svg" in page and 'href="transcripts/' in page
    assert data["conflicts"] == []


def test_merge_reports_a_conflict_instead_of_overwriting(tmp_path: Path) -> None:
    """The same scenario x client in two inputs: printed, listed, the first kept, exit 1."""
    a = write_run(tmp_path / "a", {"reference": {"a.one": "OK"}})
    b = write_run(tmp_path / "b", {"reference": {"a.one": "FAILED"}})
    out = tmp_path / "out" / "index.json"
    proc = squall("report", "merge", str(a), str(b), "--json", str(out), cwd=tmp_path)
    assert proc.returncode == 1
    line = f"conflict: a.one [reference]: {a} says OK, {b} says FAILED; kept the first"
    assert line in proc.stderr.splitlines()
    data = json.loads(out.read_text())
    assert data["results"]["reference"]["a.one"]["verdict"] == "OK"
    assert data["conflicts"] == [line.removeprefix("conflict: ")]
    nothing = squall("report", "merge", str(a), cwd=tmp_path)
    assert nothing.returncode == 2 and "give --json PATH and/or --html DIR" in nothing.stderr
