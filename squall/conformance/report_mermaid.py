"""A sequence as Mermaid ``sequenceDiagram`` text, for pasting into a bug report.

GitHub, GitLab and most issue trackers render a ```` ```mermaid ```` block, so
``squall report --mermaid ID`` (or the page's copy button) turns a failing run
into a picture in the SDK's issue tracker. Mermaid cannot slant an arrow; each
arrow says its latency instead (``(+2.10 s)``). The failing step sits in a red
``rect``; noise is folded as on the page; a frame nobody read is a ``-x`` arrow.
"""

from __future__ import annotations

import re

from .report_sequence import PROXY, SERVER, Item, Sequence

MAX_LABEL = 160  # characters of a message; the page has the whole frame
FAILED_FILL = "rgb(253, 236, 234)"

# Mermaid reads these in a message: ';' ends a statement, '#' starts an entity, '%%' a
# comment, and '<' '>' are markup. Each becomes its numeric entity (Mermaid's escape).
_SPECIAL = re.compile(r"[#;%<>]")


def escape(text: str) -> str:
    """``text`` on one line, safe as a Mermaid message or note."""
    text = " ".join(text.split())
    if len(text) > MAX_LABEL:
        text = text[: MAX_LABEL - 4].rstrip() + " ..."
    return _SPECIAL.sub(lambda m: f"#{ord(m.group())};", text)


def participant(lane: str) -> str:
    """A lane's Mermaid id: a word no keyword can be (``end`` would close a block)."""
    if lane in (PROXY, SERVER):
        return lane
    return "client_" + re.sub(r"\W", "_", lane)


def mermaid(seq: Sequence, *, comment: str = "") -> str:
    """The whole sequence as Mermaid text (one ``sequenceDiagram``)."""
    out = ["sequenceDiagram"]
    if comment:
        out.append(f"    %% {' '.join(comment.split())}")
    for lane in seq.lanes:
        name = lane if lane in (PROXY, SERVER) else f"client {lane}"
        out.append(f"    participant {participant(lane)} as {escape(name)}")
    first, last = participant(seq.lanes[0]), participant(seq.lanes[-1])
    in_failed = False
    for item in seq.folded():
        if item.failed and not in_failed:
            out.append(f"    rect {FAILED_FILL}")
            in_failed = True
        elif not item.failed and in_failed:
            out.append("    end")
            in_failed = False
        indent = "        " if in_failed else "    "
        out.append(indent + _line(item, seq, first, last))
    if in_failed:
        out.append("    end")
    return "\n".join(out) + "\n"


def _line(item: Item, seq: Sequence, first: str, last: str) -> str:
    a, b = participant(item.lane), participant(item.to)
    if item.kind == "step":
        text = item.label
        if item.failed:
            text = f"FAILED {text}: {seq.failure}" if seq.failure else f"FAILED {text}"
        return f"Note over {first},{last}: {escape(text)}"
    if item.kind == "note":
        return f"Note over {a}: {escape(item.label)}"
    if item.kind == "fold":
        span = f"{a},{b}" if a != b else a
        return f"Note over {span}: {escape(item.label)}"
    text = item.label
    lat = item.latency
    if lat is not None and lat >= 0.005 and not item.lost:
        text = f"(+{lat:.2f} s) {text}"
    if item.lost:
        end = participant(item.via) if item.via else b
        return f"{a}-x{end}: {escape(text)}"
    arrow = "->>" if item.lane != SERVER else "-->>"
    return f"{a}{arrow}{b}: {escape(text)}"
