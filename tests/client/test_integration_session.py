"""The reference client against the real simulator over loopback: auth, pub/sub, RPC, recovery."""

from __future__ import annotations

import asyncio

import pytest

from squall.client import AuthFailed, CallTimeout, RemoteError, StreamingClient

from .conftest import DEADLINE, server_record


async def test_connect_subscribe_notify_and_call(make_client, sim) -> None:
    """The happy path: authenticated, a notification reaches the topic handler, an RPC answers."""
    client, rec = make_client()
    await client.connect()
    assert client.status is StreamingClient.CONNECTED
    got: asyncio.Queue = asyncio.Queue()
    assert await client.subscribe(["news"], got.put_nowait) == ["news"]
    sim.publish("news", {"n": 1})
    assert await asyncio.wait_for(got.get(), DEADLINE) == {
        "seq": 1,
        "topic": "news",
        "payload": {"n": 1},
    }
    assert await client.call("echo", {"x": 1}) == {"x": 1}
    with pytest.raises(RemoteError) as info:
        await client.call("nope")
    assert info.value.code == "method_not_found"
    assert rec.names()[:2] == ["connected", "subscribed"]


async def test_server_drop_reconnects_recovers_and_replays(make_client, sim) -> None:
    """A cut TCP connection: the client comes back with its token; what was missed is replayed."""
    client, rec = make_client(immediate_first_retry=False, backoff_initial=5.0, jitter=0)
    await client.connect()
    await client.subscribe(["news"])
    sim.drop("alice")
    sim.publish("news", 1)  # the socket is dead: this one is buffered for recovery
    sim.publish("news", 2)
    recovered = await rec.next("recovered", fresh=False)
    assert recovered == {"replayed": 2, "session": "s1"}
    await rec.next("notification", lambda n: n["seq"] == 2, fresh=False)
    assert [n["payload"] for n in rec.of("notification")] == [1, 2]
    assert rec.of("reconnecting")[0]["delay"] == 5.0
    [session] = sim.sessions()
    assert session["connections"] == 2 and session["subscriptions"] == ["news"]


async def test_recovery_buffer_overflow_is_reported(make_client, sim) -> None:
    """Overflow: the newest are replayed, the client says how many were lost."""
    sim.configure(recovery_buffer_size=3)
    client, rec = make_client(immediate_first_retry=False, backoff_initial=5.0)
    await client.connect()
    await client.subscribe(["news"])
    sim.drop("alice")
    for i in range(8):
        sim.publish("news", i)
    failed = await rec.next("recovery_failed")
    assert failed == {"lost": 5, "reason": "overflow", "replayed": 3, "session": "s1"}
    await rec.next("notification", lambda n: n["seq"] == 8, fresh=False)
    assert [n["seq"] for n in rec.of("notification")] == [6, 7, 8]


async def test_expired_session_is_reported_and_topics_are_subscribed_again(make_client, sim):
    """Recovery fails (expired): new session, `recovery_failed`, every topic re-created."""
    client, rec = make_client(immediate_first_retry=False, backoff_initial=5.0)
    await client.connect()
    await client.subscribe(["news", "sport"])
    sim.drop("alice")
    sim.publish("news", "lost")
    sim.expire("s1")
    failed = await rec.next("recovery_failed")
    assert failed["reason"] == "expired" and failed["lost"] == 1
    await rec.next("resubscribed")
    [session] = [s for s in sim.sessions() if s["state"] == "open"]
    assert session["id"] == "s2" and session["subscriptions"] == ["news", "sport"]
    sim.publish("sport", "again")
    assert (await rec.next("notification"))["payload"] == "again"


async def test_auth_failure_is_final(make_client, sim) -> None:
    """connect() raises AuthFailed and no second connection is ever tried."""
    sim.fail_next_auth(reason="invalid_token", message="bad token")
    client, rec = make_client()
    with pytest.raises(AuthFailed) as info:
        await client.connect()
    assert info.value.reason == "invalid_token"
    assert client.status is StreamingClient.CLOSED
    await asyncio.sleep(0.1)  # 10 protocol seconds: a retry would have happened by now
    opens = [r for r in sim.transcript() if r["kind"] == "open"]
    assert len(opens) == 1
    assert rec.of("auth_failed") == [{"reason": "invalid_token", "message": "bad token"}]


async def test_auth_failure_after_a_drop_stops_reconnecting(make_client, sim) -> None:
    client, rec = make_client()
    await client.connect()
    sim.fail_next_auth(reason="expired_token")
    sim.drop("alice")
    closed = await rec.next("closed")
    assert closed["error"] == "AuthFailed"
    assert client.status is StreamingClient.CLOSED


async def test_calls_spooled_while_disconnected_are_sent_once(make_client, sim) -> None:
    """Mixer's spool: calls made while away go out once, in order, after re-auth."""
    client, rec = make_client(immediate_first_retry=False, backoff_initial=5.0, jitter=0)
    await client.connect()
    sim.drop("alice")
    await rec.next("reconnecting")
    calls = [asyncio.ensure_future(client.call("echo", i)) for i in range(3)]
    assert await asyncio.wait_for(asyncio.gather(*calls), DEADLINE) == [0, 1, 2]
    sent = [
        r
        for r in sim.transcript()
        if r["kind"] == "frame" and r["dir"] == "in" and r["type"] == "call"
    ]
    assert len(sent) == 3
    assert len(rec.of("spooled")) == 3


async def test_late_rpc_answer_times_out_from_sending(make_client, sim) -> None:
    """The server answers after 3 s; a 1 s timeout fails, a 5 s timeout succeeds."""
    sim.on_rpc("slow", reply="late", delay=3.0)
    client, _ = make_client()
    await client.connect()
    with pytest.raises(CallTimeout):
        await client.call("slow", timeout=1.0)
    assert await client.call("slow", timeout=5.0) == "late"


async def test_no_reply_call_returns_without_waiting(make_client, sim) -> None:
    sim.on_rpc("fire", no_reply=True)
    client, _ = make_client()
    await client.connect()
    assert await client.call("fire", {"a": 1}, no_reply=True) is None
    await server_record(sim, lambda r: r["kind"] == "rpc" and r.get("method") == "fire")


async def test_failover_to_the_next_url(make_client, sim) -> None:
    """Two endpoints on one server: a drop moves the client to the other URL."""
    second = await sim.listen()
    client, rec = make_client(urls=[sim.url, second])
    await client.connect()
    assert client.snapshot()["url"] == sim.url
    sim.drop("alice")
    connected = await rec.next("connected")
    assert connected["url"] == second


async def test_refused_handshakes_back_off_then_connect(make_client, sim) -> None:
    sim.refuse_connections(count=2, status=503)
    client, rec = make_client(immediate_first_retry=False, backoff_initial=1.0, jitter=0)
    await client.connect()
    assert [e["delay"] for e in rec.of("reconnecting")] == [1.0, 2.0]
    assert rec.of("connect_failed")[0]["reason"] == "handshake refused: HTTP 503"


async def test_disconnect_is_final(make_client, sim) -> None:
    client, rec = make_client()
    await client.connect()
    await client.disconnect()
    assert client.status is StreamingClient.CLOSED
    await asyncio.sleep(0.05)
    assert [r for r in sim.transcript() if r["kind"] == "open"].__len__() == 1
    assert rec.of("disconnected")[-1]["reconnecting"] is False


async def test_debug_mode_logs_every_frame(make_client, sim, caplog) -> None:
    caplog.set_level("DEBUG", logger="squall.client.frames")
    client, _ = make_client(debug=True)
    await client.connect()
    await client.call("echo", 1)
    lines = [r.getMessage() for r in caplog.records if r.name == "squall.client.frames"]
    assert any(line.startswith("in ") and '"authenticated"' in line for line in lines)
    assert any(line.startswith("out") and '"call"' in line for line in lines)
    assert any(line.startswith("in ") and '"result"' in line for line in lines)
