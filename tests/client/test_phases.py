"""The core's tables (squall/client/phases.py, states.py): enforced, complete, every move
taken by the core tests, and drawn in docs/client.md as committed."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from enum import StrEnum
from types import ModuleType
from typing import Any

import pytest

from squall.client import core as core_module
from squall.client import machine_doc, phases, states
from squall.client.core import ClientCore
from squall.client.phases import (
    DRAIN_TIMERS,
    DRAINS,
    PHASES,
    SOCKET_TIMERS,
    TIMERS,
    Drain,
    DrainEvent,
    Phase,
    PhaseEvent,
    Timer,
    call_timer,
    next_drain,
    next_phase,
    parse_timer,
)
from squall.client.states import TRANSITIONS, Status

from . import (
    test_core_keepalive_drain,
    test_core_lifecycle,
    test_core_session,
    test_core_signalling,
)

CORE_TESTS: tuple[ModuleType, ...] = (
    test_core_lifecycle,
    test_core_keepalive_drain,
    test_core_session,
    test_core_signalling,
)


def test_an_undeclared_phase_move_is_a_loud_bug() -> None:
    with pytest.raises(AssertionError) as info:
        next_phase(Phase.READY, PhaseEvent.OPEN)
    assert str(info.value) == (
        "client bug: undeclared phase move: event 'open' in phase 'ready' (declared: close, gone)"
    )
    with pytest.raises(AssertionError, match="event 'gone' in phase 'none'"):
        next_phase(Phase.NONE, PhaseEvent.GONE)
    core = ClientCore(["ws://a.example/"])
    with pytest.raises(AssertionError, match="event 'ready' in phase 'none'"):
        core._to_phase(PhaseEvent.READY)
    assert core.phase is Phase.NONE


def test_an_undeclared_drain_move_is_a_loud_bug() -> None:
    with pytest.raises(AssertionError) as info:
        next_drain(Drain.DONE, DrainEvent.PENDING)
    assert str(info.value) == (
        "client bug: undeclared drain move: event 'pending' in drain 'done'"
        " (declared: reconnect_request, gone)"
    )
    with pytest.raises(AssertionError, match="event 'done' in drain 'none'"):
        next_drain(Drain.NONE, DrainEvent.DONE)


def test_a_timer_set_in_a_phase_its_row_does_not_name_is_a_loud_bug() -> None:
    core = ClientCore(["ws://a.example/"])
    with pytest.raises(AssertionError) as info:
        core._set_timer(Timer.PING, 1.0)
    assert str(info.value) == "client bug: timer 'ping' set in phase 'none' (TIMERS allows ready)"
    assert core.actions() == []


def _reachable(table: Mapping[Any, Mapping[Any, Any]], start: Any) -> set[Any]:
    seen, todo = {start}, [start]
    while todo:
        for dst in table[todo.pop()].values():
            if dst not in seen:
                seen.add(dst)
                todo.append(dst)
    return seen


def test_the_tables_are_closed_and_every_state_is_reachable() -> None:
    """Every state has a row and is reachable from the start; every socket phase and drain
    state can end (back to none), so nothing is left behind a lost socket."""
    for table, start, every in (
        (TRANSITIONS, Status.IDLE, Status),
        (PHASES, Phase.NONE, Phase),
        (DRAINS, Drain.NONE, Drain),
    ):
        assert set(table) == set(every)
        assert _reachable(table, start) == set(every)
    for phase in Phase:
        assert Phase.NONE in _reachable(PHASES, phase)
    for drain in Drain:
        assert drain is Drain.NONE or DRAINS[drain][DrainEvent.GONE] is Drain.NONE


def test_timers_are_named_as_before_and_end_with_their_socket() -> None:
    """The names are the wire of SetTimer/CancelTimer: unchanged strings, call:<ticket>."""
    assert [t.value for t in SOCKET_TIMERS] == [
        "open", "ping", "pong", "drain_answer", "drain_deadline", "drain_close",
    ]  # fmt: skip
    assert set(TIMERS) == set(Timer)
    assert set(DRAIN_TIMERS.values()) <= set(SOCKET_TIMERS)
    assert set(DRAIN_TIMERS) == set(Drain) - {Drain.NONE}
    assert call_timer(12) == "call:12"
    assert type(call_timer(12)) is str
    assert parse_timer("call:12") == (Timer.CALL, 12)
    assert parse_timer("drain_answer") == (Timer.DRAIN_ANSWER, None)


def _zero_argument_tests(module: ModuleType) -> list[Callable[[], None]]:
    return [
        fn
        for name, fn in vars(module).items()
        if name.startswith("test_")
        and inspect.isfunction(fn)
        and not inspect.iscoroutinefunction(fn)
        and not inspect.signature(fn).parameters
    ]


def test_every_declared_move_is_taken_by_the_core_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs the fake-time tests of tests/client/test_core_*.py with the core's three tables
    and the timer rows watched: a move (or a timer's phase) no test takes is named here."""
    taken: dict[str, set[tuple[str, ...]]] = {"status": set(), "phase": set(), "drain": set()}

    def watch(kind: str, move: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        def watched(state: StrEnum, event: StrEnum) -> Any:
            new = move(state, event)
            taken[kind].add((state.value, event.value, new.value))
            return new

        return watched

    monkeypatch.setattr(core_module, "next_status", watch("status", states.next_status))
    monkeypatch.setattr(core_module, "next_phase", watch("phase", phases.next_phase))
    monkeypatch.setattr(core_module, "next_drain", watch("drain", phases.next_drain))
    armed: set[tuple[str, str]] = set()
    set_timer = ClientCore._set_timer

    def watched_set_timer(
        self: ClientCore, timer: Timer, at: float, ticket: int | None = None
    ) -> None:
        armed.add((timer.value, self.phase.value))
        set_timer(self, timer, at, ticket)

    monkeypatch.setattr(ClientCore, "_set_timer", watched_set_timer)
    ran = 0
    for module in CORE_TESTS:
        for test in _zero_argument_tests(module):
            test()
            ran += 1
    assert ran > 40

    untaken: dict[str, list[tuple[str, ...]]] = {}
    for kind, table in (("status", TRANSITIONS), ("phase", PHASES), ("drain", DRAINS)):
        declared = {(s.value, e.value, d.value) for s, row in table.items() for e, d in row.items()}
        assert taken[kind] <= declared
        if declared - taken[kind]:
            untaken[kind] = sorted(declared - taken[kind])
    declared_armed = {(t.value, p.value) for t, rule in TIMERS.items() for p in rule.armed_in}
    if declared_armed - armed:
        untaken["timer"] = sorted(declared_armed - armed)
    assert untaken == {}, f"declared but taken by no core test: {untaken}"


def test_docs_client_md_shows_the_tables_as_they_are() -> None:
    """docs/client.md between the markers is what the tables render today."""
    page = machine_doc.PAGE.read_text(encoding="utf-8")
    assert page.count(machine_doc.BEGIN) == 1
    assert page.count(machine_doc.END) == 1
    assert machine_doc.updated(page) == page, (
        "docs/client.md is out of date with the client's tables:"
        " run `python -m squall.client.machine_doc --write`"
    )
    section = machine_doc.doc_section()
    for diagram in (states.diagram(), phases.phase_diagram(), phases.drain_diagram()):
        assert f"```mermaid\n{diagram}\n```" in section
    moves = sum(len(row) for row in PHASES.values())
    assert phases.phase_diagram().count("-->") == moves + 1
    assert all(f"`{t.value}" in phases.timer_table() for t in Timer)


def test_the_section_is_replaced_in_place_and_missing_markers_are_named() -> None:
    page = f"# t\n\nbefore\n\n{machine_doc.BEGIN}\nstale\n{machine_doc.END}\n\nafter\n"
    out = machine_doc.updated(page)
    assert out.startswith("# t\n\nbefore\n\n" + machine_doc.BEGIN)
    assert out.endswith(machine_doc.END + "\n\nafter\n")
    assert "stale" not in out
    with pytest.raises(ValueError, match=r"has no .*BEGIN state machine.* markers"):
        machine_doc.updated("# no markers\n")
