"""Core rules for subscriptions, recovery (§4, §7), RPC and the spool (§5), on fake time."""

from __future__ import annotations

from typing import Any

from squall.client import CallInterrupted, CallTimeout, ClientClosed, RemoteError, Status

from .harness import Harness


def ack_last_subscribe(h: Harness) -> dict[str, Any]:
    frame = h.sent("subscribe")[-1]
    h.frame(type="subscribed", id=frame["id"], topics=frame["topics"])
    return frame


def test_subscribe_sends_and_resolves_on_the_answer() -> None:
    h = Harness()
    h.connect()
    ticket = h.core.subscribe(["news", "sport"], h.now)
    h.pump()
    assert h.sent("subscribe") == [{"type": "subscribe", "id": ticket, "topics": ["news", "sport"]}]
    ack_last_subscribe(h)
    assert h.results[ticket] == ["news", "sport"]


def test_subscribe_before_connecting_is_sent_after_authenticated() -> None:
    h = Harness()
    ticket = h.core.subscribe(["news"], 0)
    h.connect()
    frame = ack_last_subscribe(h)
    assert frame["topics"] == ["news"]
    assert h.results[ticket] == ["news"]


def test_recovered_reconnect_does_not_resubscribe_and_says_recovered() -> None:
    h = Harness(immediate_first_retry=True)
    h.connect()
    h.core.subscribe(["news"], h.now)
    h.pump()
    ack_last_subscribe(h)
    h.close(1006)
    h.clear()
    h.accept(recovered={"recovered": True, "replayed": 2, "subscriptions": ["news"]})
    assert h.sent("subscribe") == []
    assert h.events("recovered") == [{"replayed": 2, "session": "s1"}]
    assert h.event_names()[-2:] == ["recovered", "connected"]


def test_failed_recovery_is_reported_and_every_topic_is_subscribed_again() -> None:
    """§7 expired/unknown: a new session with no subscriptions; never silent."""
    h = Harness(immediate_first_retry=True)
    h.connect()
    h.core.subscribe(["news", "sport"], h.now)
    h.pump()
    ack_last_subscribe(h)
    h.close(1006)
    h.clear()
    h.accept(
        recovered={"recovered": False, "reason": "expired", "lost": 3, "keep": False},
    )
    assert h.events("recovery_failed") == [
        {"lost": 3, "reason": "expired", "replayed": 0, "session": "s2"}
    ]
    assert [f["topics"] for f in h.sent("subscribe")] == [["news", "sport"]]
    ack_last_subscribe(h)
    assert h.events("resubscribed") == [{"topics": ["news", "sport"]}]


def test_overflow_keeps_the_session_but_reports_the_loss() -> None:
    h = Harness(immediate_first_retry=True)
    h.connect()
    h.core.subscribe(["news"], h.now)
    h.pump()
    ack_last_subscribe(h)
    h.close(1006)
    h.clear()
    h.accept(
        recovered={
            "recovered": False,
            "reason": "overflow",
            "replayed": 100,
            "lost": 12,
            "subscriptions": ["news"],
        }
    )
    assert h.events("recovery_failed") == [
        {"lost": 12, "reason": "overflow", "replayed": 100, "session": "s1"}
    ]
    assert h.sent("subscribe") == []


def test_topics_unsubscribed_while_away_are_unsubscribed_after_recovery() -> None:
    h = Harness(immediate_first_retry=True)
    h.connect()
    h.core.subscribe(["news", "sport"], h.now)
    h.pump()
    ack_last_subscribe(h)
    h.close(1006)
    h.core.unsubscribe(["sport"], h.now)
    h.pump()
    h.clear()
    h.accept(recovered={"recovered": True, "subscriptions": ["news", "sport"]})
    assert [f["topics"] for f in h.sent("unsubscribe")] == [["sport"]]


def test_broken_no_resubscribe_policy_forgets_topics() -> None:
    h = Harness(immediate_first_retry=True, resubscribe=False)
    h.connect()
    h.core.subscribe(["news"], h.now)
    h.pump()
    ack_last_subscribe(h)
    h.close(1006)
    h.clear()
    h.accept(recovered={"recovered": False, "reason": "unknown", "keep": False})
    assert h.sent("subscribe") == []


def test_duplicate_sequence_numbers_are_dropped() -> None:
    h = Harness()
    h.connect()
    for seq in (1, 2, 2, 4):
        h.frame(type="notification", seq=seq, topic="news", payload=seq)
    assert [n["seq"] for n in h.events("notification")] == [1, 2, 4]
    assert h.events("duplicate") == [{"seq": 2, "topic": "news"}]
    assert h.events("gap") == [{"expected": 3, "seq": 4}]


def test_call_is_matched_by_id() -> None:
    h = Harness()
    h.connect()
    a = h.core.call("echo", [1], h.now)
    b = h.core.call("echo", [2], h.now)
    h.pump()
    h.frame(type="result", id=b, result="B")
    h.frame(type="error", id=a, code="nope", message="no", data={"x": 1})
    assert h.results[b] == "B"
    assert h.errors[a] == RemoteError("nope", "no", {"x": 1})


def test_calls_while_disconnected_are_spooled_fifo_and_sent_once_after_auth() -> None:
    """Mixer's spool: FIFO, once, after re-authentication; `spooled` for each."""
    h = Harness(jitter=0)
    h.connect()
    h.close(1006)
    tickets = [h.core.call("msg", [i], h.now) for i in range(3)]
    h.pump()
    assert len(h.events("spooled")) == 3
    h.advance(0.5)
    h.accept()
    h.advance(0)
    assert [f["params"] for f in h.sent("call")] == [[0], [1], [2]]
    h.close(1006)
    h.advance(0.5)
    h.accept()
    assert [f["id"] for f in h.sent("call")] == tickets  # not sent again


def test_call_timeout_starts_when_the_call_is_sent() -> None:
    h = Harness(jitter=0)
    ticket = h.core.call("slow", None, 0, timeout=5)
    h.pump()
    h.advance(100)  # not connected: no timer runs
    assert ticket not in h.errors
    h.connect()
    h.advance(4.99)
    assert ticket not in h.errors
    h.advance(0.01)
    assert h.errors[ticket] == CallTimeout("slow", 5)


def test_no_reply_call_resolves_when_sent() -> None:
    h = Harness()
    h.connect()
    ticket = h.core.call("fire", None, h.now, no_reply=True)
    h.pump()
    assert h.sent("call")[-1]["no_reply"] is True
    assert h.results[ticket] is None
    assert "call:" + str(ticket) not in h.timers


def test_call_in_flight_when_the_socket_drops_is_interrupted() -> None:
    h = Harness()
    h.connect()
    ticket = h.core.call("msg", None, h.now)
    h.pump()
    h.close(1006, "reset")
    assert h.errors[ticket] == CallInterrupted("msg", "reset")


def test_disconnect_rejects_spooled_calls() -> None:
    h = Harness()
    ticket = h.core.call("msg", None, 0)
    h.core.disconnect(0)
    h.pump()
    assert h.errors[ticket] == ClientClosed("operation")
    assert h.core.status is Status.CLOSED


def test_debug_events_cover_every_frame_in_and_out() -> None:
    """`sent` for each frame out, `packet` for each frame in."""
    h = Harness()
    h.connect()
    h.core.call("echo", 1, h.now)
    h.pump()
    h.frame(type="result", id=1, result=1)
    assert [e["type"] for e in h.events("packet")] == ["authenticated", "result"]
    assert [e["type"] for e in h.events("sent")] == ["call"]
