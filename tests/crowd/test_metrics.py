"""Herd metrics on hand-made reconnect times: no sockets, every number checkable by eye."""

from __future__ import annotations

import random

import pytest

from squall.client.policy import backoff_delays
from squall.crowd import SEED_POLICIES, seed_policy
from squall.crowd import metrics as mt
from squall.crowd.summary import summarise
from squall.crowd.svg import histogram_svg


def herd(
    offsets: list[float], *, lost_at: float = 10.0, back_after: float = 0.05
) -> list[mt.Timeline]:
    """One client per offset: lost at ``lost_at``, one attempt ``offset`` later, back soon after."""
    return [mt.Timeline(lost_at, (lost_at + o,), lost_at + o + back_after, True) for o in offsets]


def test_a_synchronised_herd_is_flagged() -> None:
    offsets = [2.0] * 1000  # Genesys v19: 2 s, no jitter
    peak = mt.peak_window(mt.attempt_offsets(herd(offsets)))
    assert peak == 1000
    assert mt.synchronised(peak, 1000)


def test_a_jittered_herd_is_not_flagged() -> None:
    rng = random.Random(7)
    offsets = [rng.uniform(0.5, 4.5) for _ in range(1000)]  # spread over 4 s
    peak = mt.peak_window(mt.attempt_offsets(herd(offsets)))
    assert 25 <= peak <= 60  # ~25 per 100 ms on average
    assert not mt.synchronised(peak, 1000)


def test_a_herd_split_by_a_bucket_edge_still_peaks_whole() -> None:
    offsets = [0.09] * 500 + [0.11] * 500
    assert mt.histogram(offsets) == [500, 500]
    assert mt.peak_window(offsets) == 1000


def test_offsets_are_taken_from_each_clients_own_loss() -> None:
    # The loop noticed the losses over 3 s; each client still retried 2 s after its own.
    timelines = [
        mt.Timeline(10.0 + i * 0.003, (12.0 + i * 0.003,), 12.1 + i * 0.003) for i in range(1000)
    ]
    assert mt.peak_window(mt.attempt_offsets(timelines)) == 1000


def test_time_until_99_percent_back_and_never_back() -> None:
    timelines = [*herd([1.0] * 99, back_after=0.0), mt.Timeline(10.0, (11.0,), None, None)]
    assert mt.time_until_back(timelines, 0.99) == pytest.approx(1.0)
    assert mt.time_until_back(timelines, 1.0) is None
    counts = mt.recovery_counts(timelines)
    assert counts == {
        "lost_connection": 100,
        "recovered": 99,
        "recovery_failed": 0,
        "back_unanswered": 0,
        "never_back": 1,
    }


def test_delivery_counts_missing_duplicated_and_unexpected() -> None:
    assert mt.delivery([0, 1, 2], [[0, 1, 2], [2, 0, 1]]).exactly_once
    d = mt.delivery([0, 1, 2], [[0, 1, 2], [0, 1, 1, 2], [0, 2], [0, 1, 2, 9]])
    assert not d.exactly_once
    assert (d.missing, d.duplicated, d.unexpected) == (1, 1, 1)
    assert d.worst == [
        "client 1: twice or more #1",
        "client 2: missing #1",
        "client 3: never published #9",
    ]


@pytest.mark.parametrize(
    ("name", "share", "spread"),
    [
        ("reference", 0.5, 0.2),  # 0.4-0.6 s: 200 ms of spread
        ("genesys-v19", 1.0, 0.0),
        ("ringcentral", 1.0, 0.0),
        ("mixer", 0.5, 0.5),  # 500 or 1000 ms: two points
    ],
)
def test_each_seed_policy_predicts_its_peak(name: str, share: float, spread: float) -> None:
    p = SEED_POLICIES[name]
    masses = mt.first_delay_distribution(p.policy, p.draw)
    assert mt.expected_peak_share(masses) == pytest.approx(share)
    assert mt.expected_spread(masses) == pytest.approx(spread)


def test_mixers_random_round_is_reproduced_exactly() -> None:
    mixer = SEED_POLICIES["mixer"]
    seen: list[set[float]] = [set() for _ in range(8)]
    for seed in range(200):
        delays = backoff_delays(mixer.policy, mixer.rng(seed))
        for i in range(8):
            seen[i].add(round(next(delays), 6))
    want = [{0.5, 1.0}, {1.0, 2.0}, {2.0, 4.0}, {4.0, 8.0}, {8.0, 16.0}, {16.0, 32.0}]
    assert seen[:6] == want
    assert seen[6] == seen[7] == {32.0, 64.0}  # capped where the SDK wraps (seeds.py)


def test_genesys_v19_fails_at_0_2_6_14_30() -> None:
    delays = backoff_delays(SEED_POLICIES["genesys-v19"].policy, random.Random(0))
    at, times = 0.0, []
    for _ in range(4):
        at += next(delays)
        times.append(at)
    assert times == [2.0, 6.0, 14.0, 30.0]  # seed-protocols.md: failing attempts 0, 2, 6, 14, 30


def test_seed_policy_names_and_fields_are_checked() -> None:
    assert seed_policy({"base": "mixer", "ping_interval": 15}).draw == "coin"
    with pytest.raises(ValueError, match=r"unknown crowd policy 'genesys'.*genesys-v19"):
        seed_policy("genesys")
    with pytest.raises(ValueError, match="unknown policy setting"):
        seed_policy({"backoff": 2})


def test_summary_and_svg_of_a_synchronised_storm() -> None:
    s = summarise(herd([2.0] * 1000), [[0]] * 1000, [0], SEED_POLICIES["genesys-v19"])
    assert s.synchronised and s.peak_per_100ms == 1000 and s.exactly_once
    assert s.peak_bound >= 1000 and s.back_p99 == pytest.approx(2.05)
    svg = histogram_svg(s.histogram, title="genesys <v19>", expected_peak=1000, threshold=100)
    assert svg.startswith("<svg") and svg.endswith("</svg>") and "genesys &lt;v19&gt;" in svg
    assert svg.count("<rect") == 2  # the background and the one bar


def test_a_jittered_policy_whose_cores_shared_one_draw_fails_its_own_bound() -> None:
    reference = SEED_POLICIES["reference"]
    same = summarise(herd([0.5] * 1000), [[]] * 1000, [], reference)  # one draw for all
    rng = random.Random(3)
    own = summarise(herd([rng.uniform(0.4, 0.6) for _ in range(1000)]), [[]] * 1000, [], reference)
    assert same.peak_per_100ms > same.peak_bound
    assert own.peak_per_100ms <= own.peak_bound
