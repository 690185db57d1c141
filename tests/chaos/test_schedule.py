"""Schedules are pure functions of their seed: the same plan on every run and machine."""

from __future__ import annotations

import random

import pytest

from squall.chaos.schedule import FAULT_WEIGHTS, METHODS, fault, generate


def test_a_seed_always_gives_the_same_schedule() -> None:
    state = random.getstate()
    assert generate(7) == generate(7)
    assert random.getstate() == state  # the global generator is never touched


def test_seeds_give_different_schedules() -> None:
    assert len({repr(generate(seed)) for seed in range(50)}) == 50


def test_every_fault_kind_and_method_is_drawn() -> None:
    schedules = [generate(seed) for seed in range(200)]
    kinds = {f.kind for s in schedules for f in s.faults}
    methods = {op.method for s in schedules for op in s.workload if op.f == "call"}
    assert kinds == set(FAULT_WEIGHTS)
    assert methods == set(METHODS)


def test_the_workload_is_in_time_order_with_keys_counting_up() -> None:
    for seed in range(20):
        s = generate(seed)
        assert [op.key for op in s.workload] == list(range(1, len(s.workload) + 1))
        assert [op.at for op in s.workload] == sorted(op.at for op in s.workload)
        assert all(0 <= f.at <= s.duration for f in s.faults)
        assert {op.f for op in s.workload} <= {"call", "publish"}


def test_the_plan_is_printable() -> None:
    lines = generate(3).describe()
    assert lines[0].startswith("schedule seed=3 ")
    assert sum(line.startswith("fault ") for line in lines) == len(generate(3).faults)


def test_an_unknown_fault_kind_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unknown fault kind 'flood'"):
        fault(random.Random(1), "flood", 1.0)
