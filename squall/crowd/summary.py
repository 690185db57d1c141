"""One storm of one crowd in figures: what ``expect.crowd`` checks and the bench prints."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from . import metrics as mt
from .seeds import SeedPolicy

StormKind = Literal["backoff", "immediate"]
"""What the policy does after the loss: back off (a drop, an outage) or reconnect at once
(a drain's 1012 close, §6: the backoff policy is not consulted)."""


@dataclass(frozen=True)
class StormSummary:
    size: int
    lost_connection: int
    histogram: list[int]  # attempts per BUCKET, from each client's loss
    peak_per_100ms: int
    peak_share: float
    expected_peak_share: float  # what the policy predicts for the first attempt
    peak_bound: int  # the most the policy's draw should give (mean + 4 sigma)
    expected_spread: float  # protocol s between the earliest and latest first attempt
    synchronised: bool
    sync_share: float
    back_p99: float | None  # protocol s until 99 % of those that lost were back
    back_max: float | None
    recovered: int
    recovery_failed: int
    back_unanswered: int
    never_back: int
    published: int
    exactly_once: bool
    missing: int
    duplicated: int
    unexpected: int
    delivery_problems: list[str]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def summarise(
    timelines: Sequence[mt.Timeline],
    received: Sequence[Sequence[int]],
    published: Sequence[int],
    policy: SeedPolicy,
    *,
    kind: StormKind = "backoff",
    sync_share: float = mt.SYNC_SHARE,
) -> StormSummary:
    n = len(timelines)
    offsets = mt.attempt_offsets(timelines)
    peak = mt.peak_window(offsets)
    masses = (
        [(0.0, 0.0, 1.0)]
        if kind == "immediate"
        else mt.first_delay_distribution(policy.policy, policy.draw)
    )
    share = mt.expected_peak_share(masses)
    gone = len(mt.lost(timelines))
    counts = mt.recovery_counts(timelines)
    backs = mt.back_offsets(timelines)
    d = mt.delivery(published, received)
    return StormSummary(
        size=n,
        lost_connection=gone,
        histogram=mt.histogram(offsets),
        peak_per_100ms=peak,
        peak_share=peak / gone if gone else 0.0,
        expected_peak_share=share,
        peak_bound=mt.peak_bound(gone, share),
        expected_spread=mt.expected_spread(masses),
        synchronised=mt.synchronised(peak, gone, sync_share),
        sync_share=sync_share,
        back_p99=mt.time_until_back(timelines, 0.99),
        back_max=max(backs) if backs else None,
        recovered=counts["recovered"],
        recovery_failed=counts["recovery_failed"],
        back_unanswered=counts["back_unanswered"],
        never_back=counts["never_back"],
        published=len(published),
        exactly_once=d.exactly_once,
        missing=d.missing,
        duplicated=d.duplicated,
        unexpected=d.unexpected,
        delivery_problems=d.worst,
    )
