"""Drains (§6) and keepalive (§3) against the real simulator, in compressed time."""

from __future__ import annotations

import asyncio

from .conftest import server_record


async def test_drain_done_reconnects_at_once_and_recovers(make_client, sim) -> None:
    """cb({'done': True}) -> the server closes 1012 -> the client is back without backoff."""
    client, rec = make_client(immediate_first_retry=False, backoff_initial=50.0)
    client.on("request_reconnect", lambda cb: cb({"done": True}))
    await client.connect()
    await client.subscribe(["news"])
    sim.request_reconnect("alice")
    await rec.next("recovered")
    assert rec.of("disconnected")[0]["code"] == 1012
    assert rec.of("reconnecting") == [{"attempt": 1, "delay": 0.0, "url": sim.url}]
    [session] = sim.sessions()
    assert session["subscriptions"] == ["news"]


async def test_unanswered_drain_reconnects_after_one_second(make_client, sim) -> None:
    client, rec = make_client()
    await client.connect()
    sim.request_reconnect("alice")
    asked = await rec.next("request_reconnect")
    assert asked.answer_within == 1.0
    await rec.next("connected")
    assert rec.of("reconnecting")[0]["delay"] == 0.0


async def test_pending_drain_holds_until_done(make_client, sim, clock) -> None:
    """pending holds the connection well past 1 s; done later moves it."""
    client, rec = make_client()
    holder: list = []

    def on_request(cb) -> None:
        cb({"pending": True})
        holder.append(cb)

    client.on("request_reconnect", on_request)
    await client.connect()
    sim.request_reconnect("alice")
    await server_record(sim, lambda r: r["kind"] == "drain" and r["state"] == "pending")
    await clock.sleep(30)  # 30 protocol seconds, 0.3 s real
    assert [s["state"] for s in sim.sessions()] == ["open"]
    assert rec.of("reconnecting") == []
    holder[0]({"done": True})
    await rec.next("connected")
    assert rec.of("disconnected")[0]["code"] == 1012


async def test_pending_drain_ends_at_the_deadline(make_client, sim) -> None:
    client, rec = make_client(drain_deadline=20.0)
    client.on("request_reconnect", lambda cb: cb({"pending": True}))
    await client.connect()
    sim.request_reconnect("alice")
    await rec.next("connected")
    assert rec.of("reconnecting")[0]["delay"] == 0.0


async def test_silent_server_is_detected_by_missed_pongs(make_client, sim) -> None:
    """The server stops answering: two missed pongs drop the socket and the client reconnects."""
    client, rec = make_client(ping_interval=2.0, pong_timeout=1.0)
    await client.connect()
    sim.silence("alice")
    await rec.next("connected")
    assert [e["missed"] for e in rec.of("pong_missed")] == [1, 2]
    assert rec.of("disconnected")[0]["reason"] == "2 pongs missed in a row"


async def test_server_pings_are_answered(make_client, sim) -> None:
    sim.configure(server_ping_interval=1.0)
    client, _ = make_client()
    await client.connect()
    await server_record(
        sim, lambda r: r["kind"] == "frame" and r["dir"] == "in" and r["type"] == "pong"
    )


async def test_client_pings_are_answered_and_keep_the_session(make_client, sim, clock) -> None:
    client, rec = make_client(ping_interval=1.0, pong_timeout=0.5)
    await client.connect()
    await clock.sleep(5)
    assert rec.of("pong_missed") == []
    assert len([e for e in rec.of("sent") if e["type"] == "ping"]) >= 3
    assert client.status == "connected"
    await asyncio.sleep(0)
