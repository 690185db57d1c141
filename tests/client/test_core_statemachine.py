"""Hypothesis drives the core through random event sequences; invariants hold after each step."""

from __future__ import annotations

from collections import Counter

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from squall.client import NotConnected, Status
from squall.client.phases import DRAIN_TIMERS, Drain, Phase

from .harness import Harness


class CoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.h = Harness(max_attempts=5)
        self.tickets: list[int] = []
        self.auth_failed = False

    @precondition(lambda self: self.h.core.status in (Status.IDLE, Status.CLOSED))
    @rule()
    def connect(self) -> None:
        self.h.core.connect(self.h.now)
        self.h.pump()
        self.auth_failed = False

    @precondition(lambda self: self.h.core.phase is Phase.OPENING)
    @rule()
    def accept(self) -> None:
        self.h.accept()

    @precondition(lambda self: self.h.core.phase is Phase.OPENING)
    @rule()
    def refuse(self) -> None:
        self.h.fail_open()

    @precondition(lambda self: self.h.core.phase is Phase.OPENING)
    @rule()
    def fail_auth(self) -> None:
        self.h.core.socket_opened(self.h.core.conn, self.h.now)
        self.h.frame(type="auth_failed", reason="invalid_token", message="")
        self.h.close(1008)
        self.auth_failed = True
        self.opens_at_failure = len(self.h.opens())

    @precondition(lambda self: self.h.core.phase not in (Phase.NONE,))
    @rule(code=st.sampled_from([None, 1000, 1001, 1006, 1011, 1012]))
    def drop(self, code: int | None) -> None:
        self.h.close(code)

    @rule(seconds=st.floats(0, 120))
    def advance(self, seconds: float) -> None:
        self.h.advance(seconds)

    @rule()
    def call(self) -> None:
        self.tickets.append(self.h.core.call("m", None, self.h.now, timeout=5))
        self.h.pump()

    @rule()
    def answer_calls(self) -> None:
        for frame in self.h.sent("call"):
            if frame["id"] not in self.h.results and frame["id"] not in self.h.errors:
                self.h.frame(type="result", id=frame["id"], result=frame["id"])

    @precondition(lambda self: self.h.core.status is not Status.CLOSING)
    @rule()
    def reconnect(self) -> None:
        self.h.core.reconnect(self.h.now)
        self.h.pump()
        self.auth_failed = False

    @precondition(lambda self: self.h.core.phase is not Phase.NONE)
    @rule(answer=st.sampled_from([None, "pending", "done"]))
    def drain(self, answer: str | None) -> None:
        self.h.frame(type="reconnect_request", deadline=60.0, answer_within=1.0, reason="drain")
        if answer is not None:
            try:
                self.h.core.answer_drain(answer, self.h.now)
            except NotConnected:
                assert not self.h.core.ready
            self.h.pump()

    @rule()
    def disconnect(self) -> None:
        self.h.core.disconnect(self.h.now)
        self.h.pump()
        if self.h.core.phase is Phase.CLOSING:
            self.h.close(1000)

    @invariant()
    def each_call_sent_at_most_once(self) -> None:
        counts = Counter(f["id"] for f in self.h.sent("call"))
        assert all(n == 1 for n in counts.values()), counts

    @invariant()
    def each_ticket_settled_at_most_once(self) -> None:
        assert not set(self.h.results) & set(self.h.errors)

    @invariant()
    def nothing_reopens_after_auth_failure(self) -> None:
        if self.auth_failed:
            assert len(self.h.opens()) == self.opens_at_failure
            assert self.h.core.status is Status.CLOSED

    @invariant()
    def status_and_phase_agree(self) -> None:
        status, phase = self.h.core.status, self.h.core.phase
        assert (status is Status.CONNECTED) == (phase is Phase.READY), (status, phase)
        assert (status is Status.CLOSING) == (phase is Phase.CLOSING), (status, phase)
        if status in (Status.IDLE, Status.CLOSED):
            assert phase is Phase.NONE, (status, phase)

    @invariant()
    def a_drain_runs_its_own_timer_only(self) -> None:
        drain, phase = self.h.core._drain, self.h.core.phase
        if phase is Phase.NONE:
            assert drain is Drain.NONE
        if phase is not Phase.CLOSING:  # disconnect() cancelled every timer
            armed = {timer.value for timer in DRAIN_TIMERS.values()} & set(self.h.timers)
            assert armed == ({DRAIN_TIMERS[drain].value} if drain in DRAIN_TIMERS else set())

    @invariant()
    def closed_means_no_timers(self) -> None:
        if self.h.core.status is Status.CLOSED:
            assert self.h.timers == {}


TestCoreMachine = CoreMachine.TestCase
TestCoreMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
