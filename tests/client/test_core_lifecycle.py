"""Core rules for connecting, auth failure, disconnect, failover and backoff, on fake time."""

from __future__ import annotations

import random
import time

import pytest

from squall.client import (
    AuthFailed,
    ConnectionFailed,
    IllegalTransition,
    NotConnected,
    Policy,
    Status,
    Verdict,
    backoff_delays,
    classify_close,
)
from squall.client.actions import Close, OpenSocket
from squall.client.phases import Phase
from squall.client.states import TRANSITIONS, Trigger, diagram, next_status

from .harness import Harness


def test_connect_opens_with_token_and_is_connected_only_after_authenticated() -> None:
    """§2: the token goes in the URL query; `connected` comes only with `authenticated`."""
    h = Harness()
    h.core.connect(h.now)
    assert h.pump()[-1] == OpenSocket(1, "ws://a.example/?token=alice", {})
    assert h.core.status is Status.CONNECTING
    h.core.socket_opened(1, h.now)
    h.pump()
    assert h.core.status is Status.CONNECTING
    h.accept()
    assert h.core.status is Status.CONNECTED
    assert h.events("connected") == [
        {"session": "s1", "sid": "c1", "user": "alice", "url": "ws://a.example/"}
    ]


def test_header_and_frame_auth() -> None:
    """auth_via=header sends a Bearer header; auth_via=frame sends an `auth` frame first."""
    h = Harness(auth_via="header")
    h.core.connect(0)
    assert h.pump()[-1] == OpenSocket(1, "ws://a.example/", {"Authorization": "Bearer alice"})
    h = Harness(auth_via="frame")
    h.core.connect(0)
    assert h.pump()[-1] == OpenSocket(1, "ws://a.example/", {})
    h.core.socket_opened(1, 0)
    h.pump()
    assert h.sent() == [
        {"type": "auth", "token": "alice", "client": {"name": "squall-reference-client"}}
    ]


def test_illegal_move_names_state_and_event() -> None:
    """The transition table refuses a connect() while connected, naming both."""
    h = Harness()
    h.connect()
    with pytest.raises(IllegalTransition) as info:
        h.core.connect(h.now)
    assert str(info.value) == "illegal move: event 'connect' is not allowed in state 'connected'"
    with pytest.raises(IllegalTransition):
        next_status(Status.CLOSING, Trigger.READY)


def test_transition_table_is_closed_and_diagram_lists_every_move() -> None:
    """Every status has a row; the generated diagram has one line per move."""
    assert set(TRANSITIONS) == set(Status)
    moves = sum(len(row) for row in TRANSITIONS.values())
    assert diagram().count("-->") == moves + 1


def test_auth_failure_is_final() -> None:
    """§2: auth_failed then 1008 -> CLOSED, no socket opened again, ever."""
    h = Harness(immediate_first_retry=True)
    h.core.connect(0)
    h.pump()
    h.core.socket_opened(1, 0)
    h.frame(type="auth_failed", reason="invalid_token", message="nope")
    h.close(1008, "auth failed: invalid_token")
    assert h.core.status is Status.CLOSED
    assert isinstance(h.core.final_error, AuthFailed)
    assert h.events("auth_failed") == [{"reason": "invalid_token", "message": "nope"}]
    assert h.events("disconnected")[-1]["reconnecting"] is False
    h.advance(3600)
    assert len(h.opens()) == 1
    assert h.timers == {}


def test_auth_failure_on_a_reconnect_is_final_too() -> None:
    """A session that was fine fails auth when it comes back: stop there."""
    h = Harness(immediate_first_retry=True)
    h.connect()
    h.close(1006)
    h.core.socket_opened(2, h.now)
    h.frame(type="auth_failed", reason="expired_token", message="")
    h.close(1008)
    h.advance(3600)
    assert len(h.opens()) == 2
    assert h.core.status is Status.CLOSED


def test_broken_policy_retries_auth_failure() -> None:
    """retry_auth_failure exists so the conformance suite can prove it catches the bug."""
    h = Harness(retry_auth_failure=True, immediate_first_retry=True)
    h.core.connect(0)
    h.pump()
    h.frame(type="auth_failed", reason="invalid_token", message="")
    h.close(1008)
    assert len(h.opens()) == 2


def test_disconnect_never_reconnects() -> None:
    """disconnect() closes with 1000 and nothing reopens, whatever the close code."""
    h = Harness(immediate_first_retry=True)
    h.connect()
    h.core.disconnect(h.now)
    assert h.pump()[-1] == Close(1, 1000, "client disconnect")
    assert h.core.status is Status.CLOSING
    h.close(1000, "bye")
    assert h.core.status is Status.CLOSED
    h.advance(3600)
    assert len(h.opens()) == 1
    assert h.events("disconnected") == [{"code": 1000, "reason": "bye", "reconnecting": False}]


def test_disconnect_while_waiting_to_retry_cancels_the_retry() -> None:
    h = Harness()
    h.connect()
    h.close(1006)
    assert "retry" in h.timers
    h.core.disconnect(h.now)
    h.pump()
    assert h.timers == {}
    assert h.core.status is Status.CLOSED


def test_disconnect_before_authenticated_closes_the_opening_socket() -> None:
    """disconnect() while the handshake runs, while authenticating, or while the recovery
    answer is awaited, closes that socket and ends CLOSED once it is gone; nothing reopens."""
    for opened in (False, True):
        h = Harness(immediate_first_retry=True)
        h.core.connect(0)
        h.pump()
        if opened:
            h.core.socket_opened(1, 0)
        assert h.core.phase is (Phase.AUTHENTICATING if opened else Phase.OPENING)
        h.core.disconnect(h.now)
        assert h.pump()[-1] == Close(1, 1000, "client disconnect")
        assert h.core.status is Status.CLOSING
        h.core.socket_opened(1, 0)  # a handshake that completes anyway changes nothing
        h.close(1000)
        assert h.core.status is Status.CLOSED
        assert h.events("connected") == []
        assert h.events("closed") == [{"reason": "", "error": None}]
        h.advance(3600)
        assert len(h.opens()) == 1

    h = Harness(immediate_first_retry=True)
    h.connect()
    h.close(1006)  # the next socket presents tok-s1: `recovery` follows `authenticated`
    h.core.socket_opened(2, h.now)
    h.authenticated("s1")
    assert h.core.status is Status.RECONNECTING  # not connected before the recovery answer
    assert h.core.phase is Phase.RECOVERING
    h.core.disconnect(h.now)
    assert h.pump()[-1] == Close(2, 1000, "client disconnect")
    h.close(1000)
    assert h.core.status is Status.CLOSED
    assert h.events("recovered") == h.events("recovery_failed") == []
    h.advance(3600)
    assert len(h.opens()) == 2


def test_a_drop_while_connected_with_reconnect_off_is_final() -> None:
    """reconnect=False: the first lost connection closes the client, saying why."""
    h = Harness(reconnect=False)
    h.connect()
    h.close(1006, "gone")
    assert h.core.status is Status.CLOSED
    assert h.events("status")[-1] == {
        "status": "closed",
        "previous": "connected",
        "trigger": "fatal",
    }
    assert h.events("disconnected") == [{"code": 1006, "reason": "gone", "reconnecting": False}]
    message = "connection lost (1006: gone) and reconnecting is disabled"
    assert h.events("error") == [{"kind": "gave_up", "message": message}]
    assert h.events("closed") == [{"reason": message, "error": "ConnectionFailed"}]
    h.advance(3600)
    assert len(h.opens()) == 1


def test_reconnect_drops_the_socket_and_opens_the_next_at_once() -> None:
    """reconnect() from every status: connected (says `disconnected`), still connecting, and
    waiting out a backoff (the retry timer is cancelled); no backoff in any of them."""
    h = Harness(jitter=0)
    h.connect()
    h.clear()
    h.core.reconnect(h.now)
    h.pump()
    assert h.closes() == [Close(1, 1000, "client reconnect")]
    assert h.core.status is Status.RECONNECTING
    assert h.event_names() == ["disconnected", "reconnecting"]
    assert h.events("disconnected") == [
        {"code": 1000, "reason": "client reconnect", "reconnecting": True}
    ]
    assert h.events("reconnecting") == [{"attempt": 1, "delay": 0.0, "url": "ws://b.example/"}]
    assert h.opens()[-1].conn == 2
    h.core.reconnect(h.now)  # again, while that socket is still opening
    h.pump()
    assert h.closes()[-1] == Close(2, 1000, "client reconnect")
    assert h.core.status is Status.RECONNECTING
    assert h.events("reconnecting")[-1] == {"attempt": 2, "delay": 0.0, "url": "ws://a.example/"}
    h.accept()
    assert h.core.status is Status.CONNECTED

    h = Harness(jitter=0)
    h.core.connect(0)
    h.pump()
    h.clear()
    h.core.reconnect(h.now)  # the first connection is still opening
    h.pump()
    assert h.closes() == [Close(1, 1000, "client reconnect")]
    assert h.core.status is Status.CONNECTING
    assert h.event_names() == ["reconnecting"]
    assert h.opens()[-1].conn == 2

    h = Harness(jitter=0)
    h.connect()
    h.close(1006)
    assert h.timers["retry"] == 0.5
    h.clear()
    h.core.reconnect(h.now)  # waiting out the backoff: there is no socket to close
    h.pump()
    assert h.closes() == []
    assert "retry" not in h.timers
    assert h.opens()[-1].conn == 2
    assert h.events("reconnecting") == [{"attempt": 2, "delay": 0.0, "url": "ws://b.example/"}]


def test_reconnect_from_idle_or_closed_connects_and_refuses_while_closing() -> None:
    h = Harness()
    h.core.reconnect(0)
    assert isinstance(h.pump()[-1], OpenSocket)
    assert h.core.status is Status.CONNECTING
    h.accept()
    h.core.disconnect(h.now)
    h.pump()
    with pytest.raises(NotConnected, match="the client is disconnecting"):
        h.core.reconnect(h.now)
    h.close(1000)
    h.core.reconnect(h.now)
    h.pump()
    assert h.core.status is Status.CONNECTING
    assert len(h.opens()) == 2


def test_failover_round_robin_on_every_connect() -> None:
    """Each (re)connect takes the next URL: a, b, a, b."""
    h = Harness(immediate_first_retry=True, jitter=0)
    h.connect()
    for _ in range(3):
        h.close(1006)
        h.accept()
    assert [o.url.split("?")[0] for o in h.opens()] == [
        "ws://a.example/",
        "ws://b.example/",
        "ws://a.example/",
        "ws://b.example/",
    ]


def test_reconnect_presents_the_recovery_token() -> None:
    """§7: the token from `authenticated` goes in the next URL."""
    h = Harness(immediate_first_retry=True)
    h.connect()
    h.close(1006)
    assert h.opens()[-1].url == "ws://b.example/?token=alice&recovery_token=tok-s1"


def test_backoff_schedule_without_jitter() -> None:
    """initial 0.5 s, x2, capped at 30 s; attempts end at max_attempts."""
    policy = Policy(jitter=0, max_attempts=9)
    assert list(backoff_delays(policy, random.Random(0))) == [
        0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0,
    ]  # fmt: skip
    immediate = Policy(jitter=0, max_attempts=4, immediate_first_retry=True)
    assert list(backoff_delays(immediate, random.Random(0))) == [0.0, 0.5, 1.0, 2.0]


def test_backoff_jitter_stays_within_its_band_and_is_seeded() -> None:
    policy = Policy(jitter=0.2, max_attempts=50)
    a = list(backoff_delays(policy, random.Random(3)))
    assert a == list(backoff_delays(policy, random.Random(3)))
    bases = list(backoff_delays(policy.replace(jitter=0), random.Random(3)))
    assert all(0.8 * b <= d <= 1.2 * b for d, b in zip(a, bases, strict=True))
    assert a != bases


def test_whole_backoff_schedule_runs_in_the_core_in_microseconds() -> None:
    """Every failed attempt emits `reconnecting` with the delay chosen, then the core gives up."""
    started = time.perf_counter()
    h = Harness(max_attempts=12, seed=11)
    h.connect()
    h.close(1006)
    while h.core.status is Status.RECONNECTING:
        h.advance(h.timers["retry"] - h.now)
        h.fail_open()
    expected = list(backoff_delays(h.core.policy, random.Random(11)))
    assert [e["delay"] for e in h.events("reconnecting")] == expected
    assert [e["attempt"] for e in h.events("reconnecting")] == list(range(1, 13))
    assert h.core.status is Status.CLOSED
    assert isinstance(h.core.final_error, ConnectionFailed)
    assert str(h.core.final_error).startswith("gave up after 12 reconnect attempts")
    assert len(h.opens()) == 13
    assert time.perf_counter() - started < 0.5


def test_backoff_resets_after_a_successful_connection() -> None:
    h = Harness(jitter=0)
    h.connect()
    h.close(1006)
    h.advance(0.5)
    h.fail_open()
    h.advance(1.0)
    h.accept()
    h.close(1006)
    assert [e["delay"] for e in h.events("reconnecting")] == [0.5, 1.0, 0.5]


def test_close_classification() -> None:
    """auth_failed is fatal, 1012 immediate, everything else backs off."""
    p = Policy()
    assert classify_close(1008, auth_failed=True, policy=p) is Verdict.FATAL
    assert classify_close(1012, auth_failed=False, policy=p) is Verdict.IMMEDIATE
    for code in (None, 1000, 1001, 1006, 1008, 1011):
        assert classify_close(code, auth_failed=False, policy=p) is Verdict.BACKOFF
    assert classify_close(1006, auth_failed=False, policy=p.replace(reconnect=False)) is (
        Verdict.FATAL
    )


def test_open_timeout_abandons_a_silent_handshake() -> None:
    """No `authenticated` within open_timeout: drop the socket and retry."""
    h = Harness(jitter=0)
    h.core.connect(0)
    h.pump()
    h.core.socket_opened(1, 0)
    h.advance(10)
    assert h.closes()[-1] == Close(1, 1000, "not authenticated within 10s", abort=True)
    assert h.core.status is Status.RECONNECTING
    assert h.events("reconnecting")[-1]["delay"] == 0.5


def test_stale_socket_reports_are_ignored() -> None:
    """Frames and closes from an abandoned socket change nothing."""
    h = Harness(immediate_first_retry=True)
    h.connect()
    h.close(1006)
    h.core.socket_closed(1, 1000, "late", h.now)
    h.core.receive_frame(1, '{"type":"notification","seq":9,"topic":"x"}', h.now)
    assert h.pump() == []


def test_invalid_policy_says_what_is_wrong() -> None:
    with pytest.raises(
        ValueError, match=r"pong_timeout \(20\) must not exceed ping_interval \(5\)"
    ):
        Policy(ping_interval=5, pong_timeout=20)
    with pytest.raises(ValueError, match="unknown policy setting"):
        Policy().replace(bogus=1)
