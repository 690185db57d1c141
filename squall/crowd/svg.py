"""The reconnect-rate histogram as one standalone ``<svg>`` (for the HTML report and Allure).

Bars are attempts per 100 ms of protocol time after the storm (each client's attempts
measured from its own loss, :mod:`.metrics`); a dashed line marks the peak the policy
predicts, a red one the synchronisation threshold.
"""

from __future__ import annotations

from html import escape

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 28, 36
MAX_BARS = 600  # a long tail is folded into the last bar


def histogram_svg(
    counts: list[int],
    *,
    title: str,
    bucket: float = 0.1,
    expected_peak: float | None = None,
    threshold: float | None = None,
) -> str:
    """``counts[i]`` attempts in ``[i * bucket, (i + 1) * bucket)`` seconds, drawn."""
    if len(counts) > MAX_BARS:
        counts = [*counts[: MAX_BARS - 1], sum(counts[MAX_BARS - 1 :])]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top = max([*counts, expected_peak or 0, threshold or 0, 1])
    n = max(len(counts), 1)
    bar_w = plot_w / n
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="herd-histogram" role="img" '
        f'width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'aria-label="{escape(title)}">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#fff"/>',
        f'<text x="{LEFT}" y="16" font-family="sans-serif" font-size="12">{escape(title)}</text>',
    ]

    def y(value: float) -> float:
        return TOP + plot_h - plot_h * value / top

    for i, c in enumerate(counts):
        if c:
            parts.append(
                f'<rect x="{LEFT + i * bar_w:.2f}" y="{y(c):.2f}"'
                f' width="{max(bar_w - 0.5, 0.5):.2f}"'
                f' height="{TOP + plot_h - y(c):.2f}" fill="#4677b8"><title>'
                f"{i * bucket:.1f}-{(i + 1) * bucket:.1f} s: {c}</title></rect>"
            )
    for value, colour, label in (
        (expected_peak, "#2a9d4b", "policy's peak"),
        (threshold, "#c0392b", "synchronised above"),
    ):
        if value:
            parts.append(
                f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(value):.2f}" y2="{y(value):.2f}"'
                f' stroke="{colour}" stroke-dasharray="4 3"/>'
                f'<text x="{LEFT + plot_w}" y="{y(value) - 3:.2f}" text-anchor="end"'
                f' font-family="sans-serif" font-size="10" fill="{colour}">{label}'
                f" {value:.0f}</text>"
            )
    axis = TOP + plot_h
    parts.append(
        f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{axis}" y2="{axis}" stroke="#333"/>'
        f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{axis}" stroke="#333"/>'
        f'<text x="{LEFT - 4}" y="{TOP + 4}" text-anchor="end" font-family="sans-serif"'
        f' font-size="10">{top:.0f}</text>'
        f'<text x="{LEFT - 4}" y="{axis}" text-anchor="end" font-family="sans-serif"'
        f' font-size="10">0</text>'
    )
    span = n * bucket
    for k in range(6):
        t = span * k / 5
        x = LEFT + plot_w * k / 5
        parts.append(
            f'<text x="{x:.1f}" y="{axis + 14}" text-anchor="middle" font-family="sans-serif"'
            f' font-size="10">{t:.1f} s</text>'
        )
    parts.append(
        f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 4}" text-anchor="middle"'
        ' font-family="sans-serif" font-size="10">reconnect attempts per 100 ms of protocol'
        " time, from each client's loss</text></svg>"
    )
    return "".join(parts)
