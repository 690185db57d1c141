"""Keepalive (§3), pub/sub (§4) and RPC (§5) over real loopback sockets."""

from __future__ import annotations

import pytest

from squall.simulator import Simulator

from .conftest import wait_for_record


async def test_ping_is_answered_with_the_same_id(open_client) -> None:
    client = await open_client()
    await client.send(type="ping", id=41)
    await client.expect("pong", id=41)


async def test_server_pings_when_configured(sim: Simulator, open_client) -> None:
    """With server_ping_interval set, the server pings each new connection on that schedule."""
    sim.configure(server_ping_interval=5)  # 50 ms real
    client = await open_client()
    ping = await client.expect("ping")
    await client.send(type="pong", id=ping["id"])
    await wait_for_record(sim, lambda r: r.get("type") == "pong" and r.get("dir") == "in")


async def test_silenced_session_gets_no_pongs(sim: Simulator, open_client) -> None:
    """silence() withholds every frame, pongs included: a half-dead server, seen by the client."""
    client = await open_client("alice")
    sim.silence("alice")
    await client.send(type="ping", id=1)
    withheld = await wait_for_record(sim, lambda r: r["kind"] == "withheld")
    assert withheld["type"] == "pong"
    sim.silence("alice", silent=False)
    await client.send(type="ping", id=2)
    await client.expect("pong", id=2)


async def test_notifications_carry_a_per_session_sequence(sim: Simulator, open_client) -> None:
    """Each session counts its own notifications from 1, whatever others receive."""
    alice = await open_client("alice")
    bob = await open_client("bob")
    await alice.send(type="subscribe", id=1, topics=["a", "b"])
    await alice.expect("subscribed", id=1, topics=["a", "b"])
    await bob.send(type="subscribe", id="x", topics=["b"])
    await bob.expect("subscribed", id="x")
    assert sim.publish("a", {"n": 1}) == {"delivered": 1, "buffered": 0, "overflowed": 0}
    sim.publish("b", {"n": 2})
    assert [(f["seq"], f["topic"]) for f in [await alice.recv(), await alice.recv()]] == [
        (1, "a"),
        (2, "b"),
    ]
    assert await bob.expect("notification", seq=1, topic="b", payload={"n": 2})


async def test_unsubscribe_stops_delivery(sim: Simulator, open_client) -> None:
    client = await open_client()
    await client.send(type="subscribe", id=1, topics=["a", "b"])
    await client.expect("subscribed")
    await client.send(type="unsubscribe", id=2, topics=["a"])
    await client.expect("unsubscribed", id=2, topics=["a"])
    assert sim.publish("a")["delivered"] == 0
    sim.publish("b", "still here")
    await client.expect("notification", topic="b", payload="still here", seq=1)
    assert sim.sessions()[0]["subscriptions"] == ["b"]


async def test_builtin_echo_and_unknown_method(open_client) -> None:
    client = await open_client()
    await client.send(type="call", id=1, method="echo", params={"k": [1, 2]})
    await client.expect("result", id=1, result={"k": [1, 2]})
    await client.send(type="call", id=2, method="nope")
    err = await client.expect("error", id=2, code="method_not_found")
    assert err["message"] == "no handler for method 'nope'"


async def test_scripted_reply_error_and_times(sim: Simulator, open_client) -> None:
    """Rules stack newest first; `times` expires a rule and the older one shows through."""
    client = await open_client()
    sim.on_rpc("get", reply={"v": 1})
    sim.on_rpc("get", error={"code": "busy", "message": "try later"}, times=1)
    await client.send(type="call", id=1, method="get")
    await client.expect("error", id=1, code="busy", message="try later")
    await client.send(type="call", id=2, method="get")
    await client.expect("result", id=2, result={"v": 1})


async def test_python_handler_and_its_failure(sim: Simulator, open_client) -> None:
    """A Python handler computes the reply; if it raises, the caller gets `handler_failed`."""
    client = await open_client()
    sim.on_rpc("add", handler=lambda params: sum(params))
    sim.on_rpc("boom", handler=lambda params: 1 / 0)
    await client.send(type="call", id=1, method="add", params=[1, 2, 3])
    await client.expect("result", id=1, result=6)
    await client.send(type="call", id=2, method="boom")
    await client.expect(
        "error", id=2, code="handler_failed", message="ZeroDivisionError: division by zero"
    )


async def test_delayed_reply_arrives_after_later_calls(sim: Simulator, open_client) -> None:
    """A delayed answer is sent after the delay (protocol time), after faster answers."""
    client = await open_client()
    sim.on_rpc("slow", reply="late", delay=5)
    await client.send(type="call", id=1, method="slow")
    await client.send(type="call", id=2, method="echo", params="fast")
    first, second = await client.recv(), await client.recv()
    assert (first["id"], second["id"]) == (2, 1)
    assert second == {"type": "result", "id": 1, "result": "late"}
    sent = [r["t"] for r in sim.transcript() if r.get("type") == "result"]
    assert sent[1] - sent[0] >= 4.9  # protocol seconds


async def test_no_reply_rule_and_no_reply_call(sim: Simulator, open_client) -> None:
    """Neither a `no_reply` rule nor a `no_reply` call gets an answer; the next call does."""
    client = await open_client()
    sim.on_rpc("fire", no_reply=True)
    await client.send(type="call", id=1, method="fire")
    await client.send(type="call", id=2, method="echo", no_reply=True)
    await client.send(type="call", id=3, method="echo", params=3)
    await client.expect("result", id=3)
    answers = [r["answer"] for r in sim.transcript() if r["kind"] == "rpc"]
    assert answers == ["none", "none"]


@pytest.mark.parametrize("bad", [{"error": {"message": "no code"}}, {"delay": -1}])
async def test_on_rpc_rejects_bad_arguments(sim: Simulator, bad: dict) -> None:
    from pydantic import ValidationError

    from squall.simulator import ControlError

    with pytest.raises((ValidationError, ControlError)):
        sim.on_rpc("m", **bad)
