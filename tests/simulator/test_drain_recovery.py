"""Server-requested reconnect (§6) and session recovery (§7) over real loopback sockets."""

from __future__ import annotations

from squall.simulator import ControlError, Simulator

from .conftest import wait_for_record


async def test_drain_pending_then_done(sim: Simulator, open_client) -> None:
    """`pending` holds the connection past the 1 s window; `done` closes it with 1012."""
    client = await open_client("alice")
    sim.request_reconnect("alice", deadline=600)
    req = await client.expect("reconnect_request", deadline=600, answer_within=1)
    assert req["reason"] == "drain"
    await client.send(type="reconnect_response", status="pending")
    await wait_for_record(sim, lambda r: r["kind"] == "drain" and r["state"] == "pending")
    # Well past the 1 s answer window (protocol time), the connection is still open.
    await sim.clock.sleep(3)
    await client.send(type="ping", id=1)
    await client.expect("pong", id=1)
    assert sim.sessions()[0]["drain"] == "pending"
    await client.send(type="reconnect_response", status="done")
    assert await client.closed() == (1012, "reconnect now")


async def test_drain_unanswered_closes_after_one_second(sim: Simulator, open_client) -> None:
    client = await open_client("alice")
    sim.request_reconnect("alice")
    await client.expect("reconnect_request")
    assert await client.closed() == (1012, "reconnect request not answered within 1s")
    forced = [r for r in sim.transcript() if r["kind"] == "drain" and r["state"] == "forced"]
    asked = [r for r in sim.transcript() if r["kind"] == "drain" and r["state"] == "asked"]
    assert 0.99 <= forced[0]["t"] - asked[0]["t"] < 5


async def test_drain_pending_is_cut_at_the_deadline(sim: Simulator, open_client) -> None:
    """A pending answer is honoured only until the deadline (here 20 protocol seconds)."""
    client = await open_client("alice")
    sim.request_reconnect("alice", deadline=20)
    await client.expect("reconnect_request", deadline=20)
    await client.send(type="reconnect_response", status="pending")
    assert await client.closed() == (1012, "reconnect deadline reached")
    forced = next(r for r in sim.transcript() if r.get("state") == "forced")
    asked = next(r for r in sim.transcript() if r.get("state") == "asked")
    assert forced["t"] - asked["t"] >= 19.9


async def test_drain_everyone(sim: Simulator, open_client) -> None:
    """request_reconnect() without a session drains every connected session."""
    a, b = await open_client("alice"), await open_client("bob")
    assert sorted(sim.request_reconnect()) == ["s1", "s2"]
    await a.expect("reconnect_request")
    await b.expect("reconnect_request")


async def test_answer_without_request_is_an_error(open_client) -> None:
    client = await open_client()
    await client.send(type="reconnect_response", status="done")
    await client.expect("error", code="no_reconnect_request")


async def test_drain_of_unknown_session_is_a_404(sim: Simulator) -> None:
    try:
        sim.request_reconnect("nobody")
    except ControlError as exc:
        assert exc.status == 404
        assert str(exc) == "no session matches 'nobody' (sessions: none)"
    else:
        raise AssertionError("expected ControlError")


async def _subscribed(open_client, user: str = "alice", topics=("news",)):
    client = await open_client(user)
    await client.send(type="subscribe", id=1, topics=list(topics))
    await client.expect("subscribed")
    return client


async def test_recovery_replays_what_was_buffered(sim: Simulator, open_client) -> None:
    """A reconnect with the recovery token resumes the session: same seq, buffer replayed."""
    client = await _subscribed(open_client)
    token = next(iter(sim.core.by_token))
    sim.publish("news", 1)
    await client.expect("notification", seq=1)
    sim.drop("alice")  # TCP cut, no close frame
    await wait_for_record(sim, lambda r: r["kind"] == "session" and r["state"] == "detached")
    assert sim.publish("news", 2) == {"delivered": 0, "buffered": 1, "overflowed": 0}
    sim.publish("news", 3)
    back = await open_client(None, url=f"{sim.url}?token=alice&recovery_token={token}")
    auth = await back.expect("authenticated", session="s1")
    assert auth["recovery_token"] == token
    await back.expect("recovery", recovered=True, replayed=2, lost=0, subscriptions=["news"])
    assert [(await back.recv())["seq"] for _ in range(2)] == [2, 3]
    sim.publish("news", 4)
    await back.expect("notification", seq=4, payload=4)


async def test_recovery_with_zero_events_before_the_drop(sim: Simulator, open_client) -> None:
    """Socket.IO #5538: a recovery with nothing published must still succeed."""
    await _subscribed(open_client)
    token = next(iter(sim.core.by_token))
    sim.drop("alice", code=1001)
    await wait_for_record(sim, lambda r: r.get("state") == "detached")
    back = await open_client(None, url=sim.url)
    await back.send(type="auth", token="alice", recovery_token=token)
    await back.expect("authenticated", session="s1")
    await back.expect("recovery", recovered=True, replayed=0, lost=0)


async def test_recovery_overflow_reports_the_lost_count(sim: Simulator, open_client) -> None:
    """Past recovery_buffer_size the oldest are dropped, and the client is told how many."""
    sim.configure(recovery_buffer_size=3)
    await _subscribed(open_client)
    token = next(iter(sim.core.by_token))
    sim.drop("alice")
    await wait_for_record(sim, lambda r: r.get("state") == "detached")
    results = [sim.publish("news", n) for n in range(5)]
    assert [r["overflowed"] for r in results] == [0, 0, 0, 1, 1]
    back = await open_client(None, url=f"{sim.url}?token=alice&recovery_token={token}")
    await back.expect("authenticated")
    await back.expect(
        "recovery", recovered=False, reason="overflow", replayed=3, lost=2, subscriptions=["news"]
    )
    assert [(await back.recv())["payload"] for _ in range(3)] == [2, 3, 4]


async def test_recovery_after_the_window_fails_as_expired(sim: Simulator, open_client) -> None:
    """After recovery_window the session is gone: a new session, nothing replayed."""
    sim.configure(recovery_window=5)
    await _subscribed(open_client)
    token = next(iter(sim.core.by_token))
    sim.drop("alice")
    await wait_for_record(sim, lambda r: r.get("state") == "detached")
    sim.publish("news", "lost in the buffer")
    await wait_for_record(sim, lambda r: r.get("state") == "expired")
    back = await open_client(None, url=f"{sim.url}?token=alice&recovery_token={token}")
    auth = await back.expect("authenticated")
    assert auth["session"] != "s1"
    await back.expect("recovery", recovered=False, reason="expired", lost=1, subscriptions=[])


async def test_recovery_with_an_unknown_token(open_client, sim: Simulator) -> None:
    back = await open_client(None, url=f"{sim.url}?token=alice&recovery_token=made-up")
    await back.expect("authenticated")
    await back.expect("recovery", recovered=False, reason="unknown", replayed=0)


async def test_recovery_token_of_another_user_is_refused(sim: Simulator, open_client) -> None:
    await _subscribed(open_client, "alice")
    token = next(iter(sim.core.by_token))
    sim.drop("alice")
    await wait_for_record(sim, lambda r: r.get("state") == "detached")
    mallory = await open_client(None, url=f"{sim.url}?token=mallory&recovery_token={token}")
    auth = await mallory.expect("authenticated", user="mallory")
    assert auth["session"] != "s1"
    await mallory.expect("recovery", recovered=False, reason="unknown")


async def test_repeated_recoveries(sim: Simulator, open_client) -> None:
    """Socket.IO #4880: recovery must work again and again, not only once per session."""
    await _subscribed(open_client)
    token = next(iter(sim.core.by_token))
    for round_ in range(1, 4):
        start = len(sim.core.transcript)
        sim.drop("alice")
        await wait_for_record(
            sim, lambda r, start=start: r["n"] >= start and r.get("state") == "detached"
        )
        sim.publish("news", round_)
        back = await open_client(None, url=f"{sim.url}?token=alice&recovery_token={token}")
        await back.expect("authenticated", session="s1")
        await back.expect("recovery", recovered=True, replayed=1)
        await back.expect("notification", seq=round_, payload=round_)
    assert sim.sessions()[0]["connections"] == 4


async def test_publish_between_a_cut_and_its_notice_is_buffered(
    sim: Simulator, open_client
) -> None:
    """A notification sent after the socket died, before the server noticed, is not lost."""
    await _subscribed(open_client)
    token = next(iter(sim.core.by_token))
    sim.drop("alice")  # aborts the TCP connection; the server's handler has not run yet
    assert sim.publish("news", "in the gap") == {"delivered": 0, "buffered": 1, "overflowed": 0}
    back = await open_client(None, url=f"{sim.url}?token=alice&recovery_token={token}")
    await back.expect("authenticated", session="s1")
    await back.expect("recovery", recovered=True, replayed=1)
    await back.expect("notification", seq=1, payload="in the gap")
