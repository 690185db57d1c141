"""Herd metrics as pure functions of per-client timelines (protocol seconds, no I/O).

A storm is read one client at a time: when it lost its connection, when its policy
scheduled each reconnect attempt (the ``reconnecting`` event's time plus its ``delay``),
when it was back, and what recovery said. Every offset is taken from that client's own
loss, and the histogram lays them on one timeline from the storm's instant. This
removes what a harness adds and a production herd does not have: one event loop
noticing a thousand closes one after the other, which under a compressed clock
smears an instant over protocol seconds. What remains is the herd the policy makes.

The reconnect rate is attempts per 100 ms (:data:`BUCKET`) of protocol time; its peak
is the largest count in any 100 ms window (a sliding window, so a herd split by a bucket
edge still counts whole). A policy predicts that peak (:func:`expected_peak_share`,
from the distribution of its first delay); a herd is *synchronised* when the peak
window holds more than a share of it (:func:`synchronised`, default a tenth: a herd
needs at least a second of spread to pass).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from squall.client.policy import Policy

BUCKET = 0.1
"""The histogram's bucket and the peak's window: 100 ms of protocol time."""

SYNC_SHARE = 0.1
"""A herd whose peak 100 ms window holds more than this share of it is synchronised."""


@dataclass(frozen=True)
class Timeline:
    """One client across a storm (protocol seconds, absolute on the crowd's clock).

    ``lost``: its first loss after the storm began (None: it never lost its connection);
    ``attempts``: when its policy scheduled each reconnect attempt after that loss;
    ``back``: when it was connected again (None: never); ``recovered``: the recovery
    answer (True recovered, False failed, None none came).
    """

    lost: float | None
    attempts: tuple[float, ...] = ()
    back: float | None = None
    recovered: bool | None = None


@dataclass(frozen=True)
class Delivery:
    """Per-client seq accounting of numbered notifications across a storm."""

    clients: int
    published: int
    exactly_once: bool
    missing: int  # (client, notification) pairs never delivered
    duplicated: int  # (client, notification) pairs delivered more than once
    unexpected: int  # deliveries of numbers never published
    worst: list[str] = field(default_factory=list)  # a few clients with problems, explained


def histogram(times: Iterable[float], *, bucket: float = BUCKET, start: float = 0.0) -> list[int]:
    """Counts per ``bucket`` from ``start`` up to the last time (times before start dropped)."""
    counts: Counter[int] = Counter()
    for t in times:
        if t >= start:
            counts[int((t - start) // bucket)] += 1
    if not counts:
        return []
    return [counts.get(i, 0) for i in range(max(counts) + 1)]


def peak_window(times: Iterable[float], window: float = BUCKET) -> int:
    """The most times in any half-open window ``[t, t + window)``."""
    ordered = sorted(times)
    best = lo = 0
    for hi, t in enumerate(ordered):
        while ordered[lo] <= t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (nearest rank, so it is one of ``values``); ValueError if empty."""
    if not values:
        raise ValueError("quantile of no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def lost(timelines: Sequence[Timeline]) -> list[Timeline]:
    return [t for t in timelines if t.lost is not None]


def attempt_offsets(timelines: Sequence[Timeline], *, first_only: bool = False) -> list[float]:
    """Each scheduled attempt's time after its own client's loss."""
    out: list[float] = []
    for t in lost(timelines):
        assert t.lost is not None
        attempts = t.attempts[:1] if first_only else t.attempts
        out.extend(a - t.lost for a in attempts)
    return out


def back_offsets(timelines: Sequence[Timeline]) -> list[float]:
    """How long each client that lost its connection took to be connected again."""
    return [t.back - t.lost for t in lost(timelines) if t.back is not None and t.lost is not None]


def time_until_back(timelines: Sequence[Timeline], share: float = 0.99) -> float | None:
    """Protocol seconds until ``share`` of the clients that lost were back; None if they
    never all were (fewer than ``share`` of them came back)."""
    gone = lost(timelines)
    if not gone:
        return 0.0
    offsets = sorted(back_offsets(timelines))
    need = max(1, math.ceil(share * len(gone)))
    if len(offsets) < need:
        return None
    return offsets[need - 1]


def recovery_counts(timelines: Sequence[Timeline]) -> dict[str, int]:
    """Of the clients that lost: recovered, recovery failed, back with no answer, never back."""
    gone = lost(timelines)
    return {
        "lost_connection": len(gone),
        "recovered": sum(t.recovered is True for t in gone),
        "recovery_failed": sum(t.recovered is False for t in gone),
        "back_unanswered": sum(t.recovered is None and t.back is not None for t in gone),
        "never_back": sum(t.back is None for t in gone),
    }


def delivery(published: Sequence[int], received: Sequence[Sequence[int]]) -> Delivery:
    """Every client got every published number exactly once (``received[i]``: what client
    i's application saw, in order, after the client's own duplicate filter)."""
    wanted = Counter(published)
    missing = duplicated = unexpected = 0
    worst: list[str] = []
    for i, got in enumerate(received):
        counts = Counter(got)
        miss = [n for n in wanted if counts[n] == 0]
        dup = [n for n, c in counts.items() if n in wanted and c > wanted[n]]
        extra = [n for n in counts if n not in wanted]
        missing += len(miss)
        duplicated += len(dup)
        unexpected += sum(counts[n] for n in extra)
        if (miss or dup or extra) and len(worst) < 5:
            parts = []
            if miss:
                parts.append(f"missing {_few(miss)}")
            if dup:
                parts.append(f"twice or more {_few(dup)}")
            if extra:
                parts.append(f"never published {_few(extra)}")
            worst.append(f"client {i}: " + "; ".join(parts))
    ok = missing == duplicated == unexpected == 0
    return Delivery(len(received), len(published), ok, missing, duplicated, unexpected, worst)


def _few(values: list[int]) -> str:
    shown = sorted(values)[:5]
    more = f" (+{len(values) - 5} more)" if len(values) > 5 else ""
    return "#" + ", #".join(map(str, shown)) + more


# --- what a policy predicts --------------------------------------------------------------------

Mass = tuple[float, float, float]
"""``(lo, hi, weight)``: ``weight`` of the probability spread uniformly over [lo, hi]
(a point when lo == hi)."""


def first_delay_distribution(policy: Policy, draw: str = "uniform") -> list[Mass]:
    """The distribution of the first reconnect delay after a loss that backs off."""
    if policy.immediate_first_retry:
        return [(0.0, 0.0, 1.0)]
    base = min(policy.backoff_initial, policy.backoff_max)
    j = policy.jitter
    if j == 0:
        return [(base, base, 1.0)]
    if draw == "coin":
        return [(base * (1 - j), base * (1 - j), 0.5), (base * (1 + j), base * (1 + j), 0.5)]
    return [(base * (1 - j), base * (1 + j), 1.0)]


def expected_peak_share(masses: Sequence[Mass], window: float = BUCKET) -> float:
    """The largest share of the herd a policy puts in one ``window`` (its predicted peak)."""
    candidates = {lo for lo, _, _ in masses} | {hi - window for _, hi, _ in masses}

    def share(x: float) -> float:
        total = 0.0
        for lo, hi, weight in masses:
            if hi == lo:
                total += weight if x <= lo < x + window else 0.0
            else:
                overlap = max(0.0, min(hi, x + window) - max(lo, x))
                total += weight * overlap / (hi - lo)
        return total

    return min(1.0, max(share(x) for x in candidates))


def expected_spread(masses: Sequence[Mass]) -> float:
    """Protocol seconds between a policy's earliest and latest first attempt."""
    return max(hi for _, hi, _ in masses) - min(lo for lo, _, _ in masses)


def peak_bound(n: int, share: float, sigmas: float = 4.0) -> int:
    """The highest peak ``n`` clients drawing from a policy whose predicted peak share is
    ``share`` should show: the mean plus ``sigmas`` binomial deviations, plus one."""
    return math.ceil(n * share + sigmas * math.sqrt(n * share * (1 - share)) + 1)


def synchronised(peak: int, n: int, share: float = SYNC_SHARE) -> bool:
    """Did the herd arrive together: its peak window held more than ``share`` of it?"""
    return n > 0 and peak > share * n
