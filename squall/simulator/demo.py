"""Start the simulator and walk a raw WebSocket client through the protocol, printing each step.

This is the smoke session: it speaks the wire protocol by hand (no reference
client), so what it prints is exactly what travels. Exit status 1 if any step
does not see what the protocol promises.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from squall.clock import LoopClock

from .server import Simulator


class StepFailed(Exception):
    pass


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--verbose", "-v", action="store_true", help="print every frame")
    parser.add_argument("--transcript", default=None, help="write the server transcript here")


class Walk:
    def __init__(self, verbose: bool) -> None:
        self.verbose = verbose
        self.n = 0

    def step(self, text: str) -> None:
        self.n += 1
        print(f"{self.n:2d}. {text}", flush=True)

    def ok(self, text: str) -> None:
        print(f"    ok  {text}", flush=True)

    async def send(self, ws: ClientConnection, obj: dict[str, Any]) -> None:
        if self.verbose:
            print(f"    >>  {json.dumps(obj)}")
        await ws.send(json.dumps(obj))

    async def recv(self, ws: ClientConnection, want: str) -> dict[str, Any]:
        text = await asyncio.wait_for(ws.recv(decode=True), 5)
        if self.verbose:
            print(f"    <<  {text}")
        obj = json.loads(text)
        if not isinstance(obj, dict) or obj.get("type") != want:
            raise StepFailed(f"expected a {want!r} frame, got {text}")
        return obj


async def smoke(args: argparse.Namespace) -> int:
    w = Walk(args.verbose)
    # Protocol time runs 100x faster than real time: the 1 s drain answer window takes 10 ms.
    sim = Simulator(clock=LoopClock(timescale=0.01))
    await sim.start(ports=2, control_port=0)
    print(f"simulator listening on {', '.join(sim.urls)}; control API {sim.control_url}\n")
    try:
        w.step("alice connects with a token in the URL")
        alice = await connect(sim.urls[0] + "?token=alice", compression=None, proxy=None)
        auth = await w.recv(alice, "authenticated")
        w.ok(f"authenticated as {auth['user']}, session {auth['session']}, sid {auth['sid']}")

        w.step("alice subscribes to news; the server publishes twice")
        await w.send(alice, {"type": "subscribe", "id": 1, "topics": ["news"]})
        await w.recv(alice, "subscribed")
        sim.publish("news", {"headline": "first"})
        sim.publish("news", {"headline": "second"})
        seqs = [(await w.recv(alice, "notification"))["seq"] for _ in range(2)]
        w.ok(f"notifications arrived with seq {seqs}")

        w.step("alice calls echo; the server is scripted to fail 'charge'")
        await w.send(alice, {"type": "call", "id": 2, "method": "echo", "params": {"x": 1}})
        w.ok(f"echo -> {(await w.recv(alice, 'result'))['result']}")
        sim.on_rpc("charge", error={"code": "card_declined", "message": "insufficient funds"})
        await w.send(alice, {"type": "call", "id": 3, "method": "charge", "params": [10]})
        w.ok(f"charge -> error {(await w.recv(alice, 'error'))['code']}")

        w.step("the server asks alice to reconnect (drain); she answers pending, then done")
        sim.request_reconnect("alice")
        req = await w.recv(alice, "reconnect_request")
        await w.send(alice, {"type": "reconnect_response", "status": "pending"})
        w.ok(f"drain requested (deadline {req['deadline']:g}s), answered pending")
        await w.send(alice, {"type": "reconnect_response", "status": "done"})
        try:
            await asyncio.wait_for(alice.recv(), 5)
            raise StepFailed("the server did not close after 'done'")
        except ConnectionClosed as exc:
            w.ok(f"server closed with {exc.rcvd.code if exc.rcvd else None} (service restart)")

        w.step("while alice is away, two notifications are buffered for her")
        print(f"    publish -> {sim.publish('news', {'headline': 'while away 1'})}")
        print(f"    publish -> {sim.publish('news', {'headline': 'while away 2'})}")

        w.step("alice reconnects to the second endpoint with her recovery token")
        url = f"{sim.urls[1]}?token=alice&recovery_token={auth['recovery_token']}"
        alice = await connect(url, compression=None, proxy=None)
        auth2 = await w.recv(alice, "authenticated")
        rec = await w.recv(alice, "recovery")
        replay = [(await w.recv(alice, "notification"))["seq"] for _ in range(rec["replayed"])]
        if not rec["recovered"] or replay != [3, 4]:
            raise StepFailed(f"recovery answer {rec}, replayed seqs {replay}")
        w.ok(
            f"same session {auth2['session']}, new sid {auth2['sid']}; "
            f"recovered, replayed seq {replay}, subscriptions {rec['subscriptions']}"
        )

        w.step("bob joins room 'lobby' with alice and relays an offer to her")
        bob = await connect(sim.urls[0] + "?token=bob", compression=None, proxy=None)
        await w.recv(bob, "authenticated")
        await w.send(alice, {"type": "join", "id": 4, "room": "lobby"})
        await w.recv(alice, "joined")
        await w.send(bob, {"type": "join", "id": 5, "room": "lobby"})
        joined = await w.recv(bob, "joined")
        await w.recv(alice, "peer_joined")
        await w.send(
            bob,
            {
                "type": "signal",
                "room": "lobby",
                "to": joined["peers"][0]["sid"],
                "kind": "offer",
                "data": {"sdp": "v=0..."},
            },
        )
        sig = await w.recv(alice, "signal")
        w.ok(f"alice got a {sig['kind']} from {sig['from']} ({sig['from_permanent_id']})")

        w.step("bob sends a frame that is not JSON")
        await bob.send("{not json")
        try:
            await asyncio.wait_for(bob.recv(), 5)
            raise StepFailed("the server did not close on a malformed frame")
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else None
            w.ok(f"bob's connection closed with {code}: {exc.rcvd.reason if exc.rcvd else ''}")
        left = await w.recv(alice, "peer_left")
        await w.send(alice, {"type": "ping", "id": 9})
        await w.recv(alice, "pong")
        w.ok(f"alice only heard that bob left ({left['reason']}); her ping was answered")
        await alice.close()

        print(
            f"\nall {w.n} steps passed; "
            f"the server transcript has {len(sim.core.transcript)} records"
        )
        return 0
    except (StepFailed, TimeoutError, ConnectionClosed) as exc:
        print(f"    FAILED: {exc!r}")
        return 1
    finally:
        await sim.stop()
        if args.transcript:
            sim.core.transcript.dump(args.transcript)
            print(f"transcript written to {args.transcript}")


def run(args: argparse.Namespace) -> int:
    return asyncio.run(smoke(args))
