"""Regression tests for the client bugs the soak found, on the fake-clock harness (the soak
itself, tests/chaos/test_soak.py, finds them again end to end: before the fix, 10 of the
first 30 seeds failed).

1. The client reported no gap for notifications missing at the start of a new session: it
   only compared against a previous seq (``if self._last_seq and ...``), so a session whose
   first frames a dead socket swallowed (seed 13: a ``timeout`` toxic ate seq 1-13, the
   replay after recovery brought 14 and 15) lost them silently.
2. After a failed recovery the client kept counting from the old session's seq when the new
   session had the same id (a restarted server numbers sessions from ``s1`` again), so every
   notification of the new session up to the old seq was dropped as a duplicate (the
   ``restart`` fault).
3. The same, when the ``recovery`` answer that would have said so was lost: the client kept
   the old count from ``authenticated`` on, and the next connection recovered the *new*
   session with it (seed 971 of the first 1,000: a ``limit_data`` toxic cut the answer after
   a restart; the last notification, seq 1 of the new session, was dropped as a duplicate).
4. The first fix of 3 forgot the count whenever an answer was lost, so a gap in the same
   session went unreported (seeds 330, 337, 351, 402, 936 of the second 1,000: a
   ``ws_drop`` of the 2nd frame, the ``recovery``). A server that kept the token kept the
   session: the count goes on.
5. A lost answer could also hide the end of a session: the client presented s1's token,
   the server said ``expired`` and gave a new s2 in a ``recovery`` frame that was dropped,
   and the next connection recovered s2. The application heard ``recovered`` and never
   that s1, with what it was owed, was gone (seed 330 of the third 1,000). Now that
   recovery is reported as ``recovery_failed`` (``unknown``: nobody can count the loss).
"""

from __future__ import annotations

from squall.client.core import ClientCore

from ..client.harness import Harness


def notify(h: Harness, *seqs: int) -> None:
    for seq in seqs:
        h.frame(type="notification", seq=seq, topic="news", payload=seq)


def test_a_new_session_missing_its_first_notifications_reports_a_gap() -> None:
    h = Harness()
    h.connect()
    notify(h, 3, 4)
    assert h.events("gap") == [{"expected": 1, "seq": 3}]
    assert [n["seq"] for n in h.events("notification")] == [3, 4]


def test_a_recovered_session_missing_its_first_replays_reports_a_gap() -> None:
    h = Harness(immediate_first_retry=True)
    h.connect()
    h.close(1006)  # nothing received on s1 yet; its first notifications go into the void
    h.clear()
    h.accept(recovered={"recovered": True, "replayed": 2, "subscriptions": []})
    notify(h, 14, 15)
    assert h.events("gap") == [{"expected": 1, "seq": 14}]


def test_a_failed_recovery_restarts_the_count_even_when_the_session_id_repeats() -> None:
    """A restarted server names its first session s1 again: seq 1 is new, not a duplicate."""
    h = Harness(immediate_first_retry=True)
    h.connect()
    notify(h, 1, 2, 3)
    h.close(1006)
    h.clear()
    h.accept(session="s1", recovered={"recovered": False, "reason": "unknown", "keep": False})
    notify(h, 1, 2)
    assert h.events("duplicate") == []
    assert h.events("gap") == []
    assert [n["seq"] for n in h.events("notification")] == [1, 2]


def test_an_overflowed_recovery_keeps_counting_and_reports_the_gap() -> None:
    h = Harness(immediate_first_retry=True)
    h.connect()
    notify(h, 1, 2)
    h.close(1006)
    h.clear()
    overflow = {"recovered": False, "reason": "overflow", "lost": 3, "replayed": 1}
    h.accept(recovered={**overflow, "subscriptions": []})
    notify(h, 2, 6)
    assert h.events("duplicate") == [{"seq": 2, "topic": "news"}]
    assert h.events("gap") == [{"expected": 3, "seq": 6}]


def test_a_session_resumed_from_a_token_given_at_construction_starts_counting_at_once() -> None:
    """The client never saw this session's numbers: its first seq is no gap."""
    h = Harness()
    h.core = ClientCore(["ws://a.example/"], token="alice", recovery_token="tok-s9")
    h.connect(recovered={"recovered": True, "subscriptions": []})
    notify(h, 41, 42, 44)
    assert h.events("gap") == [{"expected": 43, "seq": 44}]


def unanswered(h: Harness, token: str, session: str = "s1") -> None:
    """A reconnect whose ``authenticated`` (``session``, ``token``) arrives, and then the
    socket dies before the ``recovery`` answer."""
    h.close(1006)
    h.core.socket_opened(h.core.conn, h.now)
    h.frame(
        type="authenticated",
        session=session,
        sid="c9",
        user="alice",
        recovery_token=token,
        heartbeat=30.0,
        recovery_buffer_size=100,
        recovery_window=180.0,
    )


def test_a_recovery_never_answered_leaves_the_count_unknown_not_stale() -> None:
    """Presented s1's token to a restarted server: a new s1, whose answer never arrived."""
    h = Harness(immediate_first_retry=True)
    h.connect()
    notify(h, 1, 2, 3)
    unanswered(h, "tok-new-s1")  # a new token: maybe a new session
    h.close(1006)  # the `recovery` frame (recovered: false, unknown) was cut off
    h.advance(5)  # the backoff before the next attempt
    h.clear()
    h.accept(session="s1", recovered={"recovered": True, "subscriptions": []})
    notify(h, 1, 2)
    assert h.events("duplicate") == []
    assert [n["seq"] for n in h.events("notification")] == [1, 2]


def test_a_recovery_never_answered_keeps_the_count_when_the_token_is_kept() -> None:
    """The same session with the same token: a gap after the lost answer is still a gap."""
    h = Harness(immediate_first_retry=True)
    h.connect()
    notify(h, 1, 2, 3)
    unanswered(h, "tok-s1")
    notify(h, 5)  # delivered before the socket died; seq 4 went with the old socket
    h.close(1006)
    h.advance(5)
    h.accept(recovered={"recovered": True, "subscriptions": []})
    notify(h, 7)
    assert h.events("gap") == [{"expected": 4, "seq": 5}, {"expected": 6, "seq": 7}]
    assert h.events("duplicate") == []


def test_a_session_swapped_behind_a_lost_answer_is_reported() -> None:
    h = Harness(immediate_first_retry=True)
    h.connect()
    notify(h, 1)
    unanswered(h, "tok-s2", session="s2")  # s1 expired; the `recovery` saying so was lost
    h.close(1006)
    h.advance(5)
    h.clear()
    h.accept(session="s2", recovered={"recovered": True, "replayed": 0, "subscriptions": []})
    assert h.events("recovered") == []
    assert h.events("recovery_failed") == [
        {"lost": 0, "reason": "unknown", "replayed": 0, "session": "s2"}
    ]


def test_a_plain_recovery_after_a_lost_answer_of_the_same_session_says_recovered() -> None:
    h = Harness(immediate_first_retry=True)
    h.connect()
    unanswered(h, "tok-s1")  # the server kept s1 and its token; the answer was lost
    h.close(1006)
    h.advance(5)
    h.clear()
    h.accept(recovered={"recovered": True, "replayed": 0, "subscriptions": []})
    assert h.events("recovered") == [{"replayed": 0, "session": "s1"}]
    assert h.events("recovery_failed") == []
