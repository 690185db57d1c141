"""Draw a :class:`~.report_sequence.Sequence` as SVG: lanes, slanted arrows, wrapped labels.

Layout is computed here, not by the browser, so the same picture goes into the
HTML page, the ``.svg`` beside each transcript and the Allure attachment. Rows go
down in time order; the space between two rows grows with the time between them
(logarithmically, so a 30 s idle gap does not take the page), and an arrow ends
at the height of its *receipt* on that scale: latency is a slant. Labels are
wrapped to the room they have, measured in characters of the monospace font
(:data:`CHAR_W` is an upper bound of its advance), drawn over the lines in an
opaque box, and cut after :data:`MAX_LINES`; the whole record is in the box's
tooltip and one click away in the transcript list (``#rec-N``). Times sit in a
gutter of their own on the left, where no box can cover them. The picture has a
``viewBox``, so it shrinks to the page instead of being clipped.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from html import escape

from .report_sequence import Item, Sequence

FONT = 12.0  # px, monospace
CHAR_W = 7.4  # px: above the advance of the usual monospace fonts at FONT (0.6 em = 7.2)
LINE_H = 15.0
PAD = 4.0  # inside a label's box
GUTTER = 78.0  # the time column
LANE_W = 300.0
HEAD = 44.0
MAX_LINES = 8
FONTS = "'DejaVu Sans Mono', 'Liberation Mono', Menlo, Consolas, monospace"


def gap(dt: float) -> float:
    """Extra room (px) between two rows ``dt`` protocol seconds apart: 0 for a burst."""
    return 0.0 if dt <= 0 else min(40.0, 11.0 * math.log10(1.0 + dt / 0.02))


def wrap(text: str, width_px: float, max_lines: int = MAX_LINES) -> list[str]:
    """``text`` in lines that fit ``width_px``; a line cut short ends with ``...``."""
    chars = max(8, int((width_px - 2 * PAD) // CHAR_W))
    lines = textwrap.wrap(
        text, chars, break_long_words=True, break_on_hyphens=False, drop_whitespace=True
    ) or [""]
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][: chars - 4].rstrip() + " ..."
    return lines


@dataclass
class _Box:
    x: float  # left
    y: float  # top
    w: float
    lines: list[str]

    @property
    def h(self) -> float:
        return len(self.lines) * LINE_H + 2 * PAD


def _label(box: _Box, css: str, tip: str, href: str | None) -> str:
    text = "".join(
        f'<tspan x="{box.x + PAD:.1f}" y="{box.y + PAD + (i + 1) * LINE_H - 3.5:.1f}">'
        f"{escape(line)}</tspan>"
        for i, line in enumerate(box.lines)
    )
    body = (
        f'<g class="label {css}"><title>{escape(tip)}</title>'
        f'<rect class="box" x="{box.x:.1f}" y="{box.y:.1f}" width="{box.w:.1f}" '
        f'height="{box.h:.1f}" rx="3"/><text>{text}</text></g>'
    )
    return f'<a href="{href}">{body}</a>' if href else body


def render(seq: Sequence, *, fold: bool = True, label: str = "sequence") -> str:
    """The sequence as one ``<svg>`` element (no XML prolog: it is inlined in pages too)."""
    items = seq.folded() if fold else list(seq.items)
    lanes = seq.lanes
    width = GUTTER + len(lanes) * LANE_W + 8
    x = {lane: GUTTER + (i + 0.5) * LANE_W for i, lane in enumerate(lanes)}

    back: list[str] = []  # bands and lines, drawn first
    front: list[str] = []  # label boxes, over the lines
    times: list[str] = []
    anchors: list[tuple[float, float]] = []  # (t, y): the time scale arrows end on
    arrows: list[tuple[Item, float]] = []
    steps: list[tuple[Item, float]] = []
    heads_over: list[str] = []
    last_time_y = -100.0
    y = HEAD + 8
    prev_t: float | None = None
    for item in items:
        if prev_t is not None:
            y += gap(item.t - prev_t)
        prev_t = item.t
        tip = item.detail or item.label
        href = f"#rec-{item.n}" if item.n is not None else None
        if item.kind == "step":
            text = item.label
            if item.failed:
                text = f"FAILED {text}: {seq.failure}" if seq.failure else f"FAILED {text}"
            box = _Box(GUTTER + 4, y, width - GUTTER - 12, wrap(text, width - GUTTER - 12, 8))
            css = "step failed" if item.failed else "step"
            steps.append((item, y))
            back.append(
                f'<line class="{css}" x1="{GUTTER:.1f}" y1="{y:.1f}" x2="{width - 4:.1f}" '
                f'y2="{y:.1f}"/>'
            )
            box.y = y + 3
            front.append(_label(box, css, tip if not item.failed else text, href))
            anchor = y
            y = box.y + box.h + 6
        elif item.kind == "note":
            room = LANE_W - 12
            lines = wrap(item.label, room)
            w = min(room, max(len(line) for line in lines) * CHAR_W + 2 * PAD + 2)
            box = _Box(x[item.lane] - w / 2, y, w, lines)
            front.append(_label(box, f"note {item.style}", tip, href))
            anchor = y + box.h / 2
            y += box.h + 6
        else:  # arrow or fold
            x1, x2 = x[item.lane], x[item.to]
            left, right = min(x1, x2), max(x1, x2)
            if right - left < LANE_W / 2:  # an arrow from a lane to itself: room of one lane
                left, right = left - LANE_W / 2 + 6, left + LANE_W / 2 - 6
            text = item.label
            lat = item.latency
            if item.kind == "arrow" and lat is not None and lat >= 0.005 and not item.lost:
                text = f"(+{lat:.2f} s) {text}"
            room = right - left - 16
            lines = wrap(text, room)
            w = min(room, max(len(line) for line in lines) * CHAR_W + 2 * PAD + 2)
            box = _Box((left + right) / 2 - w / 2, y, w, lines)
            css = "fold" if item.kind == "fold" else f"arrow {item.style}"
            front.append(_label(box, css, tip, href))
            anchor = y + box.h + 5
            if item.kind == "arrow":
                arrows.append((item, anchor))
            y = anchor + 8
        anchors.append((item.t, anchor))
        if anchor - last_time_y >= LINE_H:  # times never overlap: a crowded one is left out
            last_time_y = anchor
            times.append(
                f'<text class="time" x="{GUTTER - 6:.1f}" y="{anchor + 4:.1f}">'
                f"{item.t:.2f} s</text>"
            )
    height = y + 16

    def y_at(t: float, floor: float) -> float:
        """The height of time ``t`` on the rows' scale, never above ``floor``."""
        before = [(at, ay) for at, ay in anchors if at <= t]
        after = [(at, ay) for at, ay in anchors if at > t]
        if not before:
            return floor
        t0, y0 = before[-1]
        if not after:
            return max(floor, y0 + min(12.0, gap(t - t0)))
        t1, y1 = after[0]
        frac = (t - t0) / (t1 - t0) if t1 > t0 else 0.0
        return max(floor, y0 + frac * (y1 - y0))

    # The failing step's rows, on a red band from its line to the next step's.
    for i, (item, sy) in enumerate(steps):
        if item.failed:
            end = steps[i + 1][1] if i + 1 < len(steps) else height - 8
            back.insert(
                0,
                f'<rect class="failed-band" x="{GUTTER:.1f}" y="{sy:.1f}" '
                f'width="{width - GUTTER - 4:.1f}" height="{end - sy:.1f}"/>',
            )
    for item, ay in arrows:
        x1, x2 = x[item.lane], x[item.to]
        y2 = y_at(item.t_end, ay) if item.t_end is not None else ay
        css = "msg noise" if item.noise else "msg"
        if item.lost:
            xe = x[item.via] if item.via in x else x1 + item.reach * (x2 - x1)
            ye = ay + (y2 - ay) * ((xe - x1) / (x2 - x1) if x2 != x1 else 0)
            back.append(
                f'<line class="{css} lost" x1="{x1:.1f}" y1="{ay:.1f}" x2="{xe:.1f}" '
                f'y2="{ye:.1f}"/><path class="cross" '
                f'd="M{xe - 5:.1f},{ye - 5:.1f} l10,10 m0,-10 l-10,10"/>'
            )
            continue
        back.append(
            f'<line class="{css}" x1="{x1:.1f}" y1="{ay:.1f}" x2="{x2:.1f}" y2="{y2:.1f}"/>'
        )
        # The head goes over the boxes: a note on the receiving lane must not hide it.
        length = math.hypot(x2 - x1, y2 - ay) or 1.0
        hx, hy = x2 - (x2 - x1) * 12 / length, y2 - (y2 - ay) * 12 / length
        heads_over.append(
            f'<line class="{css} tip" x1="{hx:.1f}" y1="{hy:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
            'marker-end="url(#head)"/>'
        )
        if item.via in x:
            xv = x[item.via]
            yv = ay + (y2 - ay) * (xv - x1) / (x2 - x1) if x2 != x1 else ay
            back.append(f'<circle class="via" cx="{xv:.1f}" cy="{yv:.1f}" r="3"/>')
    heads = "".join(
        f'<line class="lane" x1="{x[lane]:.1f}" y1="{HEAD - 8:.1f}" x2="{x[lane]:.1f}" '
        f'y2="{height - 6:.1f}"/>'
        f'<g class="label head"><rect class="box" x="{x[lane] - 70:.1f}" y="6" width="140" '
        f'height="{LINE_H + 2 * PAD:.1f}" rx="3"/><text><tspan x="{x[lane]:.1f}" '
        f'y="{6 + PAD + LINE_H - 3.5:.1f}" text-anchor="middle">'
        f"{escape(_head(lane))}</tspan></text></g>"
        for lane in lanes
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="sequence" role="img" '
        f'aria-label="{escape(label)}" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'width="{width:.0f}" height="{height:.0f}" font-family="{FONTS}" '
        f'font-size="{FONT:g}">'
        f"<style>{SVG_CSS}</style>"
        '<defs><marker id="head" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#334e68"/></marker></defs>'
        f'<text class="time" x="{GUTTER - 6:.1f}" y="{6 + PAD + LINE_H - 3.5:.1f}">time</text>'
        f"{''.join(back)}{heads}{''.join(times)}{''.join(front)}{''.join(heads_over)}</svg>"
    )


def _head(lane: str) -> str:
    text = lane if lane in ("proxy", "server") else f"client {lane}"
    return text if len(text) <= 17 else text[:15] + ".."


#: The drawing's own style, inside the SVG so that a standalone ``.svg`` looks the same.
SVG_CSS = """
.lane{stroke:#9aa3ad;stroke-width:1.5}
.time{fill:#6b7280;font-size:10px;text-anchor:end}
.box{fill:#fff;stroke:#c8ced6}
.label text{fill:#1f2933;white-space:pre}
.head .box{fill:#243b53;stroke:#243b53}.head text{fill:#fff;font-weight:bold}
.note.event .box{fill:#eef5ff;stroke:#9cb8e0}
.note.command .box{fill:#f4f4f0;stroke:#c9c6b8}
.note.server .box{fill:#f3f3f3;stroke:#c4c4c4}
.note.fault .box{fill:#fff1e6;stroke:#e8a26b}
.note.error .box{fill:#fdecea;stroke:#d9534f}
.arrow .box{fill:#ffffffe6;stroke:none}
.fold .box{fill:#f6f6f6;stroke:#c8ced6;stroke-dasharray:3 2}.fold text{fill:#6b7280}
.msg{stroke:#334e68;stroke-width:1.4}.msg.noise{stroke:#9aa3ad}
.msg.lost{stroke:#c0392b;stroke-dasharray:5 3}.cross{stroke:#c0392b;stroke-width:2;fill:none}
.via{fill:#e8a26b;stroke:#fff}
line.step{stroke:#bcccdc;stroke-dasharray:4 3}
.step .box{fill:#f0f4f8;stroke:#bcccdc}
line.step.failed{stroke:#c0392b;stroke-width:2;stroke-dasharray:none}
.step.failed .box{fill:#c0392b;stroke:#922b21}.step.failed text{fill:#fff;font-weight:bold}
.failed-band{fill:#fdecea}
a .box:hover{stroke:#243b53;stroke-width:2}
"""
