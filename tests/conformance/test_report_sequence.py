"""The sequence diagram's model, SVG and Mermaid text, from transcripts shaped like a run's.

The transcripts here are written out by hand in the shapes the runner records
(server frames, the client's ``sent`` / ``packet`` events with its own clock ``ct``,
proxy faults, step records), so each rule of the drawing has one exact check;
test_report_screenshot.py draws real runs in a real browser.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

from squall.conformance import report_sequence, report_svg
from squall.conformance.report_mermaid import escape, mermaid
from squall.conformance.report_text import describe, describe_folded

OFFSET = 30.0  # the client's clock started 30 protocol seconds into the run
PIPE = 0.05  # the runner reads each client line this much later


class Transcript:
    """A run's records, appended in the order the runner would see them."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def add(self, t: float, src: str, kind: str, **fields: Any) -> dict[str, Any]:
        rec = {"n": len(self.records), "t": t, "src": src, "kind": kind, **fields}
        self.records.append(rec)
        self.records.sort(key=lambda r: r["t"])
        for i, r in enumerate(self.records):
            r["n"] = i
        return rec

    def step(self, t: float, index: int, name: str, line: int) -> None:
        self.add(t, "runner", "step", index=index, name=name, line=line)

    def event(self, t: float, event: str, data: Any = None, client: str = "alice") -> None:
        """A client event that happened at run time ``t`` (read by the runner a pipe later)."""
        self.add(t + PIPE, f"client:{client}", "event", event=event, data=data, ct=t - OFFSET)

    def down(self, sent: float, read: float | None, kind: str, **body: Any) -> None:
        """A frame the server wrote at ``sent`` that the client read at ``read``."""
        text = json.dumps({"type": kind, **body}, separators=(",", ":"))
        self.add(sent, "server", "frame", dir="out", conn="c1", type=kind, op=kind, text=text)
        if read is not None:
            self.event(read, "packet", {"type": kind, "text": text})

    def up(self, sent: float, read: float | None, kind: str, **body: Any) -> None:
        text = json.dumps({"type": kind, **body}, separators=(",", ":"))
        self.event(sent, "sent", {"type": kind, "text": text})
        if read is not None:
            self.add(read, "server", "frame", dir="in", conn="c1", type=kind, op=kind, text=text)


def latency_run() -> Transcript:
    """Connect through the proxy, subscribe, then two notifications 2 s late, and pings."""
    tr = Transcript()
    tr.add(
        0.1,
        "proxy",
        "fault",
        action="proxy.start",
        proxy="main",
        conn=None,
        toxic=None,
        detail={"listen": "127.0.0.1:4000"},
    )
    tr.step(31.0, 0, "client.connect", 9)
    tr.down(31.2, 31.25, "authenticated", session="s1", sid="c1", user="alice")
    tr.event(
        31.3,
        "connected",
        {"session": "s1", "sid": "c1", "user": "alice", "url": "ws://127.0.0.1:4000/"},
    )
    tr.step(32.0, 1, "client.subscribe", 11)
    tr.up(32.1, 32.12, "subscribe", id=1, topics=["news"])
    tr.down(32.15, 32.17, "subscribed", id=1, topics=["news"])
    tr.add(
        32.2,
        "proxy",
        "fault",
        action="toxic.add",
        proxy="main",
        conn=None,
        toxic="latency_downstream",
        detail={"type": "latency"},
    )
    tr.step(32.3, 2, "expect.event", 16)
    tr.down(32.4, 34.4, "notification", seq=1, topic="news", payload=1)
    tr.down(32.41, 34.41, "notification", seq=2, topic="news", payload=2)
    tr.event(34.45, "notification", {"seq": 1, "topic": "news", "payload": 1})
    for i in range(5):
        tr.up(40.0 + 30 * i, 40.02 + 30 * i, "ping", id=i)
        tr.down(40.03 + 30 * i, 40.05 + 30 * i, "pong", id=i)
    tr.step(200.0, 3, "expect.no_event", 18)
    tr.add(201.0, "runner", "end")
    return tr


def test_arrows_run_from_the_send_to_the_receipt_on_the_client_clock() -> None:
    """A frame's arrow starts at the server's write and ends at the client's read (its ct)."""
    seq = report_sequence.build(latency_run().records)
    late = [i for i in seq.items if i.kind == "arrow" and i.label.startswith("notification")]
    assert [(round(i.t, 3), round(i.t_end or 0, 3)) for i in late] == [
        (32.4, 34.4),
        (32.41, 34.41),
    ]
    assert all(i.lane == "server" and i.to == "alice" and i.via == "proxy" for i in late)
    up = next(i for i in seq.items if i.label.startswith("subscribe "))
    assert (up.lane, up.to, round(up.t, 3), round(up.t_end or 0, 3)) == (
        "alice",
        "server",
        32.1,
        32.12,
    )
    assert seq.lanes == ["alice", "proxy", "server"]


def test_the_client_clock_is_narrowed_by_causality() -> None:
    """A client whose pipe is slow is still put where its frames say it was."""
    tr = latency_run()
    for rec in tr.records:  # every client line read 0.4 s late: the pipe bound alone is off
        if rec["src"].startswith("client:"):
            rec["t"] += 0.4
    seq = report_sequence.build(tr.records)
    arrows = [i for i in seq.items if i.kind == "arrow" and not i.noise]
    assert all(i.t_end is not None and i.t_end >= i.t - 1e-6 for i in arrows)
    late = next(i for i in arrows if i.label.startswith("notification"))
    assert abs((late.latency or 0) - 2.0) < 0.05


def test_a_frame_nobody_read_is_lost_and_one_never_sent_says_why() -> None:
    """Written but never read: a lost arrow; dropped by the server: lost at the server."""
    tr = latency_run()
    tr.down(50.0, None, "notification", seq=3, topic="news", payload=3)
    tr.add(
        51.0,
        "server",
        "frame",
        dir="out",
        conn="c1",
        type="notification",
        op="delivered",
        text='{"type":"notification","seq":4}',
        dropped="connection closed",
    )
    tr.up(52.0, None, "publish", id=9)
    seq = report_sequence.build(tr.records)
    lost = {i.label: i for i in seq.items if i.lost}
    assert len(lost) == 3, list(lost)
    never_read = next(i for k, i in lost.items() if '"seq": 3' in k)
    assert never_read.label.endswith("(never read)") and never_read.reach == 0.5
    not_sent = next(i for k, i in lost.items() if '"seq": 4' in k)
    assert not_sent.label.endswith("(not sent: connection closed)") and not_sent.reach == 0.2
    upstream = next(i for k, i in lost.items() if k.startswith("publish"))
    assert upstream.label.endswith("(never reached the server)") and upstream.via == "proxy"


def test_pings_fold_into_one_counted_row() -> None:
    """Ten ping and pong arrows in a row become one row that counts them."""
    seq = report_sequence.build(latency_run().records)
    folds = [i for i in seq.folded() if i.kind == "fold"]
    assert len(folds) == 1
    assert folds[0].count == 10
    assert folds[0].label.startswith("... 5 ping, 5 pong folded (40.00 s to ")
    assert not any(i.noise for i in seq.folded() if i.kind != "fold")
    assert sum(1 for i in seq.items if i.noise) == 10  # unfolded, all of them are there


def test_the_console_excerpt_folds_pings_too() -> None:
    """A failure's transcript excerpt (pytest's output) folds keepalive runs as the diagram."""
    records = latency_run().records
    lines = describe_folded(records)
    folded = [line for line in lines if "folded" in line]
    # the server's frames and the client's sent/packet events: 20 records, one line
    assert len(folded) == 1 and "10 ping, 10 pong folded (40.02 s to 160.10 s)" in folded[0]
    assert len(lines) == len(records) - 20 + 1
    assert describe_folded(records, at=len(records) + 1) == [describe(r) for r in records]


def test_the_failing_step_and_its_rows_are_marked() -> None:
    """The failing step's row and every row until the next step carry the mark, no other."""
    failure = {
        "step": 2,
        "name": "expect.event",
        "line": 16,
        "expected": "event x",
        "observed": "none",
    }
    seq = report_sequence.build(latency_run().records, failure=failure)
    marked = {i.step for i in seq.items if i.failed}
    assert marked == {2}
    step = next(i for i in seq.items if i.kind == "step" and i.failed)
    assert step.label == "step 3 · expect.event · line 16"
    assert seq.failure == "expected event x; observed none"
    svg = report_svg.render(seq)
    assert svg.count('class="failed-band"') == 1
    assert "FAILED step 3 · expect.event · line 16: expected event x; observed none" in svg


def test_a_setup_failure_gets_a_marked_row_of_its_own() -> None:
    """A failure before any step (step -1) is a marked row at the top."""
    seq = report_sequence.build(
        latency_run().records,
        failure={"step": -1, "name": "setup", "line": 3, "expected": "a", "observed": "b"},
    )
    assert seq.items[0].kind == "step" and seq.items[0].failed
    assert seq.items[0].label == "setup · line 3"


def test_labels_are_whole_words_wrapped_to_their_box() -> None:
    """No label is clipped: every character of an event is in the SVG, in lines that fit."""
    tr = latency_run()
    long = {"session": "s1", "detail": "x" * 30 + " " + "word " * 30}
    tr.event(35.0, "connected", long)
    svg = report_svg.render(report_sequence.build(tr.records))
    lines = [html.unescape(t) for t in re.findall(r"<tspan[^>]*>([^<]*)</tspan>", svg)]
    text = " ".join(lines)
    assert '"session": "s1"' in text and "connected" in text
    assert text.count("word") == 30  # all of it: cut only after MAX_LINES lines
    assert max(len(line) for line in lines) * report_svg.CHAR_W <= report_svg.LANE_W * 2
    width = float(re.search(r'viewBox="0 0 (\d+)', svg).group(1))  # type: ignore[union-attr]
    assert width == report_svg.GUTTER + 3 * report_svg.LANE_W + 8  # three lanes, no fixed 560


def test_wrap_cuts_after_max_lines_and_says_so() -> None:
    """A label longer than MAX_LINES lines ends with ' ...'; a short one is untouched."""
    assert report_svg.wrap("connected {}", 300) == ["connected {}"]
    lines = report_svg.wrap("word " * 200, 300)
    assert len(lines) == report_svg.MAX_LINES and lines[-1].endswith(" ...")


def test_mermaid_text_has_lanes_arrows_the_failure_and_escapes() -> None:
    """Mermaid: participants, the latency on a late arrow, a red rect, -x for lost frames."""
    tr = latency_run()
    tr.down(50.0, None, "notification", seq=3, note="a;b#c")
    failure = {"step": 2, "name": "expect.event", "line": 16, "expected": "x", "observed": "y"}
    text = mermaid(report_sequence.build(tr.records, failure=failure), comment="demo")
    lines = text.splitlines()
    assert lines[:5] == [
        "sequenceDiagram",
        "    %% demo",
        "    participant client_alice as client alice",
        "    participant proxy as proxy",
        "    participant server as server",
    ]
    assert any(
        line.startswith("        server-->>client_alice: (+2.00 s) notification {")
        for line in lines
    )
    assert "    rect rgb(253, 236, 234)" in lines
    assert (
        "        Note over client_alice,server: FAILED step 3 · expect.event · line 16: "
        "expected x#59; observed y"
    ) in lines
    lost = next(line for line in lines if "-x" in line)
    assert lost.strip().startswith("server-xproxy: notification") and "a#59;b#35;c" in lost
    assert "Note over client_alice,server: ... 4 ping, 4 pong folded" in text  # 1 before the lost
    assert lines.count("    end") == 1


def test_mermaid_escape() -> None:
    """What Mermaid would read as syntax becomes an entity; newlines become spaces."""
    assert escape("a;b #1 <x> 50%\nnext") == "a#59;b #35;1 #60;x#62; 50#37; next"
    assert escape("y" * 500).endswith(" ...") and len(escape("y" * 500)) == 160
