"""Core rules for keepalive (§3) and server-requested reconnects (§6), on fake time."""

from __future__ import annotations

import time

import pytest

from squall.client import NotConnected, Status
from squall.client.actions import CancelTimer, Close, SetTimer
from squall.client.phases import Drain, Phase

from .harness import Harness


def test_pings_on_the_server_heartbeat_and_a_pong_clears_the_miss() -> None:
    """No ping_interval set: ping every `heartbeat` (30 s); the pong cancels the pong timer."""
    h = Harness()
    h.connect()
    h.advance(29.9)
    assert h.sent("ping") == []
    h.advance(0.1)
    assert h.sent("ping") == [{"type": "ping", "id": 1}]
    h.frame(type="pong", id=1)
    assert "pong" not in h.timers
    for _ in range(10):
        h.advance(30)
        h.frame(type="pong", id=h.sent("ping")[-1]["id"])
    assert h.core.status is Status.CONNECTED
    assert h.closes() == []


def test_two_missed_pongs_drop_the_socket_and_reconnect() -> None:
    """Genesys: the second consecutive miss drops the socket; one miss alone does not."""
    h = Harness(ping_interval=15, pong_timeout=15, jitter=0)
    h.connect()
    h.advance(30)  # ping 1 at 15 s, missed at 30 s; ping 2 sent at 30 s
    assert [e["missed"] for e in h.events("pong_missed")] == [1]
    assert h.core.status is Status.CONNECTED
    h.advance(15)  # ping 2 missed at 45 s
    assert h.closes() == [Close(1, 1000, "2 pongs missed in a row", abort=True)]
    assert h.core.status is Status.RECONNECTING
    assert h.events("reconnecting") == [{"attempt": 1, "delay": 0.5, "url": "ws://b.example/"}]


def test_an_answered_ping_between_misses_resets_the_count() -> None:
    h = Harness(ping_interval=10, pong_timeout=5)
    h.connect()
    h.advance(15)  # ping 1 missed
    h.advance(5)  # ping 2 at 20 s
    h.frame(type="pong", id=2)
    h.advance(15)  # ping 3 at 30 s missed at 35 s
    assert h.closes() == []
    assert [e["missed"] for e in h.events("pong_missed")] == [1, 1]


def test_server_ping_is_answered_with_the_same_id() -> None:
    h = Harness()
    h.connect()
    h.frame(type="ping", id="srv-9")
    assert h.sent() == [{"type": "pong", "id": "srv-9"}]


def request(h: Harness, **fields: object) -> None:
    h.frame(type="reconnect_request", deadline=600.0, answer_within=1.0, reason="drain", **fields)


def test_drain_request_is_emitted_and_unanswered_reconnects_after_one_second() -> None:
    """Genesys: no answer within 1 s -> the client reconnects, at once (no backoff)."""
    h = Harness()
    h.connect()
    request(h)
    assert h.events("request_reconnect") == [
        {"deadline": 600.0, "answer_within": 1.0, "reason": "drain"}
    ]
    h.advance(0.99)
    assert h.closes() == []
    h.advance(0.01)
    assert h.closes()[-1].reason == "reconnect request not answered in time"
    assert h.events("reconnecting") == [{"attempt": 1, "delay": 0.0, "url": "ws://b.example/"}]
    assert len(h.opens()) == 2


def test_drain_pending_holds_until_the_ten_minute_cap_in_microseconds() -> None:
    """pending cancels the 1 s timer; the client moves at the deadline (600 s) at the latest."""
    started = time.perf_counter()
    h = Harness(ping_interval=30, pong_timeout=10)
    h.connect()
    request(h)
    h.core.answer_drain("pending", h.now)
    h.pump()
    assert h.sent("reconnect_response") == [{"type": "reconnect_response", "status": "pending"}]
    for _ in range(19):  # keep answering pings for 9.5 minutes
        h.advance(30)
        h.frame(type="pong", id=h.sent("ping")[-1]["id"])
    assert len(h.opens()) == 1
    h.advance(600 - h.now - 0.001)
    assert len(h.opens()) == 1
    h.advance(0.001)
    assert h.closes()[-1].reason == "reconnect request deadline reached"
    assert len(h.opens()) == 2
    assert time.perf_counter() - started < 0.5


def test_drain_done_sends_done_and_a_1012_reconnects_at_once() -> None:
    h = Harness(jitter=0)
    h.connect()
    request(h)
    h.core.answer_drain("pending", h.now)
    h.advance(20)
    h.core.answer_drain("done", h.now)
    h.pump()
    assert [f["status"] for f in h.sent("reconnect_response")] == ["pending", "done"]
    h.close(1012, "reconnect now")
    assert h.events("reconnecting") == [{"attempt": 1, "delay": 0.0, "url": "ws://b.example/"}]
    assert "retry" not in h.timers
    assert len(h.opens()) == 2


def test_drain_done_without_a_server_close_moves_after_the_grace() -> None:
    h = Harness()
    h.connect()
    request(h)
    h.core.answer_drain("done", h.now)
    h.pump()
    h.advance(2)
    assert h.closes()[-1].reason == "server did not close after drain done"
    assert len(h.opens()) == 2


def test_a_shorter_server_deadline_wins() -> None:
    h = Harness()
    h.connect()
    h.frame(type="reconnect_request", deadline=5.0, answer_within=1.0, reason="drain")
    h.core.answer_drain("pending", h.now)
    h.pump()
    h.advance(5)
    assert len(h.opens()) == 2


def test_answer_without_a_request_is_refused() -> None:
    h = Harness()
    h.connect()
    with pytest.raises(NotConnected, match="no reconnect request is outstanding"):
        h.core.answer_drain("done", h.now)
    with pytest.raises(ValueError, match="'pending' or 'done'"):
        h.core.answer_drain("later", h.now)


def test_a_new_reconnect_request_starts_over_whatever_was_answered() -> None:
    """A second `reconnect_request` is a new request: asked again, with a new answer window,
    whether the first was unanswered, answered `pending` (its deadline ends) or `done` (the
    close grace ends)."""
    h = Harness()
    h.connect()
    request(h)
    h.advance(0.5)
    request(h)  # unanswered: the window restarts at 0.5 s
    assert h.core._drain is Drain.ASKED
    h.advance(0.99)
    assert h.closes() == []
    h.advance(0.01)
    assert h.closes()[-1].reason == "reconnect request not answered in time"

    for answer, ended in (("pending", "drain_deadline"), ("done", "drain_close")):
        h = Harness()
        h.connect()
        request(h)
        h.core.answer_drain(answer, h.now)
        h.pump()
        h.clear()
        request(h)
        assert [a for a in h.log if isinstance(a, (SetTimer, CancelTimer))] == [
            CancelTimer(ended),
            SetTimer("drain_answer", h.now + 1.0),
        ]
        assert h.core._drain is Drain.ASKED
        assert len(h.events("request_reconnect")) == 1
        h.advance(1.0)
        assert h.closes()[-1].reason == "reconnect request not answered in time"
        assert h.core._drain is Drain.NONE
        assert h.opens()[-1].conn == 2


def test_a_reconnect_request_before_connected_is_timed_too() -> None:
    """A server that asks before the session is up (opening, authenticating, or awaiting the
    recovery answer) gets the same window: no answer, and the socket is given up at once."""
    for phase in (Phase.OPENING, Phase.AUTHENTICATING, Phase.RECOVERING):
        h = Harness(immediate_first_retry=True)
        if phase is Phase.RECOVERING:
            h.connect()
            h.close(1006)
            h.core.socket_opened(h.core.conn, h.now)
            h.authenticated("s1")
        else:
            h.core.connect(0)
            h.pump()
            if phase is Phase.AUTHENTICATING:
                h.core.socket_opened(1, 0)
        assert h.core.phase is phase
        h.clear()
        request(h)
        assert h.events("request_reconnect") == [
            {"deadline": 600.0, "answer_within": 1.0, "reason": "drain"}
        ], phase
        with pytest.raises(NotConnected):  # only a connected client can answer
            h.core.answer_drain("pending", h.now)
        h.advance(1.0)
        assert h.closes()[-1].reason == "reconnect request not answered in time", phase
        assert h.event_names()[-2:] == ["connect_failed", "reconnecting"], phase
        assert h.events("reconnecting")[-1]["delay"] == 0.0, phase
