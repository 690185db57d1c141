"""The checker on histories written by hand: a correct one passes, each kind of violation is
caught (a checker that cannot fail is a defect), and a violation names the seed, the
operation and the history excerpt."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from squall.chaos.history import History, Violation, check

Step = tuple[Any, ...]  # (process, type, f, key, value)


def history(*steps: Step) -> History:
    h = History(seed=42)
    for n, (process, type_, f, key, value) in enumerate(steps):
        h.append(process, type_, f, key, value, time=n * 0.1)
    return h


def call_ok(key: int, method: str = "echo", conn: str = "1/c1") -> list[Step]:
    answer = {"result": {"k": key}} if method != "boom" else {"error": "boom"}
    return [
        ("client", "invoke", "call", key, {"method": method}),
        ("client", "info", "sent", key, {"id": key}),
        ("server", "info", "recv", key, {"conn": conn}),
        ("client", "ok", "call", key, answer),
    ]


def publish(key: int, *owed: tuple[str, int]) -> list[Step]:
    return [
        ("control", "invoke", "publish", key, None),
        ("control", "ok", "publish", key, {"owed": [list(o) for o in owed]}),
    ]


def notify(key: int, session: str, seq: int) -> Step:
    return ("client", "ok", "notify", key, {"session": session, "seq": seq})


END = ("control", "info", "end", None, {"session": "S1"})


def clean() -> list[Step]:
    """A run where everything went right, faults included: every rule holds."""
    return [
        *call_ok(1),
        *call_ok(2, "boom"),
        ("client", "invoke", "call", 3, {"method": "void"}),
        ("client", "info", "sent", 3, {"id": 3}),
        ("server", "info", "recv", 3, {"conn": "1/c1"}),
        ("client", "info", "call", 3, {"error": "CallTimeout"}),
        ("client", "invoke", "call", 4, {"method": "echo"}),  # spooled, the client closed
        ("client", "fail", "call", 4, {"error": "ClientClosed"}),
        *publish(5, ("S1", 1)),
        notify(5, "S1", 1),
        *publish(6, ("S1", 2)),  # swallowed by a fault; the gap says so
        *publish(7, ("S1", 3)),
        ("client", "info", "gap", None, {"session": "S1", "expected": 2, "seq": 3}),
        notify(7, "S1", 3),
        *publish(8),  # nobody subscribed: not owed
        *publish(9, ("S0", 4)),  # the tail of a session whose recovery failed
        (
            "client",
            "info",
            "recovery",
            None,
            {"recovered": False, "reason": "unknown", "previous": "S0", "session": "S1"},
        ),
        *call_ok(10, conn="1/c2"),
        END,
    ]


def test_a_correct_history_passes() -> None:
    assert check(history(*clean())) == []


def rules(steps: list[Step]) -> list[str]:
    return [v.rule for v in check(history(*steps))]


def without(steps: list[Step], drop: Callable[[Step], bool]) -> list[Step]:
    return [s for s in steps if not drop(s)]


# --- calls ----------------------------------------------------------------------------------


def test_a_silent_call_is_caught() -> None:
    steps = without(clean(), lambda s: s[2] == "call" and s[3] == 1 and s[1] == "ok")
    assert rules(steps) == ["call-silent"]


def test_an_answer_after_the_end_is_silence() -> None:
    steps = without(clean(), lambda s: s[2] == "call" and s[3] == 1 and s[1] == "ok")
    assert rules([*steps, ("client", "ok", "call", 1, {"result": {"k": 1}})]) == ["call-silent"]


def test_a_call_answered_twice_is_caught() -> None:
    assert rules([*call_ok(1), ("client", "ok", "call", 1, {"result": {"k": 1}}), END]) == [
        "call-answered-twice"
    ]


def test_a_call_answered_and_failed_is_caught() -> None:
    late = ("client", "info", "call", 1, {"error": "CallInterrupted"})
    assert rules([*call_ok(1), late, END]) == ["call-answered-and-failed"]


@pytest.mark.parametrize(
    ("method", "answer"),
    [
        ("echo", {"result": {"k": 2}}),  # another call's answer
        ("boom", {"result": {"k": 1}}),  # a result where the script says error
        ("void", {"result": None}),  # an answer the server never gives
    ],
)
def test_a_wrong_answer_is_caught(method: str, answer: dict[str, Any]) -> None:
    steps = [
        ("client", "invoke", "call", 1, {"method": method}),
        ("client", "info", "sent", 1, {"id": 1}),
        ("server", "info", "recv", 1, {"conn": "1/c1"}),
        ("client", "ok", "call", 1, answer),
        END,
    ]
    assert rules(steps) == ["call-wrong-answer"]


def test_an_answer_the_server_never_read_is_caught() -> None:
    steps = without(call_ok(1), lambda s: s[0] == "server")
    assert rules([*steps, END]) == ["call-phantom-answer"]


def test_a_failed_call_that_was_sent_is_caught() -> None:
    steps = [
        ("client", "invoke", "call", 1, {"method": "echo"}),
        ("server", "info", "recv", 1, {"conn": "1/c1"}),
        ("client", "fail", "call", 1, {"error": "ClientClosed"}),
        END,
    ]
    assert rules(steps) == ["call-failed-but-sent"]


def test_a_completion_without_an_invoke_is_caught() -> None:
    assert rules([("client", "ok", "call", 9, {"result": {"k": 9}}), END]) == ["call-unasked"]


def test_a_call_sent_twice_is_caught() -> None:
    steps = [*call_ok(1), ("client", "info", "sent", 1, {"id": 1}), END]
    assert rules(steps) == ["call-sent-twice"]


def test_spooled_calls_sent_out_of_order_are_caught() -> None:
    steps = [
        ("client", "invoke", "call", 1, {"method": "echo"}),
        ("client", "invoke", "call", 2, {"method": "echo"}),
        ("client", "info", "sent", 2, {"id": 2}),
        ("client", "info", "sent", 1, {"id": 1}),
        ("server", "info", "recv", 2, {"conn": "1/c1"}),
        ("server", "info", "recv", 1, {"conn": "1/c2"}),  # another connection: no order
        ("client", "ok", "call", 1, {"result": {"k": 1}}),
        ("client", "ok", "call", 2, {"result": {"k": 2}}),
        END,
    ]
    assert rules(steps) == ["call-sent-out-of-order"]


def test_calls_read_out_of_order_on_one_connection_are_caught() -> None:
    steps = [
        ("client", "invoke", "call", 1, {"method": "echo"}),
        ("client", "invoke", "call", 2, {"method": "echo"}),
        ("client", "info", "sent", 1, {"id": 1}),
        ("client", "info", "sent", 2, {"id": 2}),
        ("server", "info", "recv", 2, {"conn": "1/c1"}),
        ("server", "info", "recv", 1, {"conn": "1/c1"}),
        ("client", "ok", "call", 1, {"result": {"k": 1}}),
        ("client", "ok", "call", 2, {"result": {"k": 2}}),
        END,
    ]
    assert rules(steps) == ["call-received-out-of-order"]


def test_a_duplicated_call_frame_is_not_out_of_order() -> None:
    steps = [*call_ok(1), ("server", "info", "recv", 1, {"conn": "1/c1"}), END]
    assert rules(steps) == []


# --- notifications --------------------------------------------------------------------------


def test_a_duplicated_notification_is_caught() -> None:
    steps = [*publish(1, ("S1", 1)), notify(1, "S1", 1), notify(1, "S1", 1), END]
    assert rules(steps) == ["notify-duplicate"]


def test_a_notification_never_published_is_caught() -> None:
    assert rules([notify(1, "S1", 1), END]) == ["notify-phantom"]


def test_a_notification_with_another_seq_is_caught() -> None:
    assert rules([*publish(1, ("S1", 1)), notify(1, "S1", 2), END]) == ["notify-phantom"]


def test_a_gap_nobody_reported_is_caught() -> None:
    steps = [*publish(1, ("S1", 1)), *publish(2, ("S1", 2)), notify(2, "S1", 2), END]
    assert rules(steps) == ["notify-silent-gap"]


def test_a_gap_reported_on_another_session_does_not_excuse() -> None:
    steps = [
        *publish(1, ("S1", 1)),
        *publish(2, ("S1", 2)),
        ("client", "info", "gap", None, {"session": "S2", "expected": 1, "seq": 2}),
        notify(2, "S1", 2),
        END,
    ]
    assert rules(steps) == ["notify-silent-gap"]


def test_a_loss_at_the_end_of_the_live_session_is_caught() -> None:
    assert rules([*publish(1, ("S1", 1)), END]) == ["notify-silent-loss"]


def test_a_session_that_ended_unreported_is_caught() -> None:
    steps = [
        *publish(1, ("S0", 1)),
        ("client", "info", "recovery", None, {"recovered": True, "previous": "S0"}),
        END,
    ]
    assert rules(steps) == ["notify-silent-loss"]


def test_an_overflow_alone_does_not_excuse_a_tail() -> None:
    """Overflow keeps the session: its losses show as a gap, so a missing tail is silent."""
    recovery = {"recovered": False, "reason": "overflow", "previous": "S0", "lost": 1}
    steps = [*publish(1, ("S0", 1)), ("client", "info", "recovery", None, recovery), END]
    assert rules(steps) == ["notify-silent-loss"]


# --- the stream and the proxy ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "rule"),
    [
        (("server", "info", "close", None, {"conn": "1/c1", "code": 1002}), "stream-broken"),
        (("server", "info", "close", None, {"conn": "1/c1", "code": 1007}), "stream-broken"),
        (("client", "info", "error", None, {"kind": "bad_frame"}), "stream-broken"),
        (("proxy", "info", "error", None, {"action": "toxic.error"}), "proxy-error"),
        (("nemesis", "fail", "latency", None, {"error": "toxic not found"}), "proxy-error"),
    ],
)
def test_stream_and_proxy_failures_are_caught(step: Step, rule: str) -> None:
    assert rules([*clean(), step]) == [rule]


def test_ordinary_closes_and_errors_pass() -> None:
    steps = [
        *clean(),
        ("server", "info", "close", None, {"conn": "1/c1", "code": 1006}),
        ("client", "info", "error", None, {"kind": "unexpected"}),
    ]
    assert rules(steps) == []


# --- the report -----------------------------------------------------------------------------


def test_a_violation_names_the_seed_the_operation_and_the_excerpt() -> None:
    steps = without(clean(), lambda s: s[2] == "call" and s[3] == 1 and s[1] == "ok")
    (violation,) = check(history(*steps))
    assert isinstance(violation, Violation)
    text = violation.render(42)
    assert text.startswith("seed 42: call-silent (op 1): neither answered nor reported failed")
    assert "python -m squall.chaos --seed 42" in text
    excerpt = [e for e in violation.excerpt if e.key == 1]
    assert [e.f for e in excerpt] == ["call", "sent", "recv"]
    assert "invoke call" in text


def test_history_entries_are_typed_like_jepsen() -> None:
    with pytest.raises(ValueError, match="invoke, ok, fail, info"):
        History().append("client", "done", "call", 1)
