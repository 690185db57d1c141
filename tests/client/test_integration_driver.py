"""The driver protocol: the reference client as a subprocess speaking JSON lines."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from .conftest import DEADLINE


class DriverProcess:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[dict[str, Any]] = []
        self._next = 0

    async def send(self, cmd: str, **args: Any) -> int:
        self._next += 1
        line = json.dumps({"id": self._next, "cmd": cmd, "args": args}) + "\n"
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode())
        await self.proc.stdin.drain()
        return self._next

    async def until(self, predicate: Any) -> dict[str, Any]:
        for line in self.lines:
            if predicate(line):
                return line
        assert self.proc.stdout is not None
        while True:
            raw = await asyncio.wait_for(self.proc.stdout.readline(), DEADLINE)
            assert raw, "driver exited"
            line = json.loads(raw)
            self.lines.append(line)
            if predicate(line):
                return line

    async def reply(self, ref: int) -> dict[str, Any]:
        return await self.until(lambda line: line.get("reply") == ref)

    async def event(self, name: str) -> dict[str, Any]:
        return await self.until(lambda line: line.get("event") == name)

    async def run(self, cmd: str, **args: Any) -> dict[str, Any]:
        return await self.reply(await self.send(cmd, **args))


async def start_driver(*flags: str) -> DriverProcess:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "squall.client.driver",
        "--timescale",
        "0.01",
        *flags,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    driver = DriverProcess(proc)
    await driver.event("driver_ready")
    return driver


async def stop(driver: DriverProcess) -> None:
    await driver.run("quit")
    assert await asyncio.wait_for(driver.proc.wait(), DEADLINE) == 0


async def test_driver_session_connect_subscribe_call_drain(sim) -> None:
    """A whole session through the driver: every reply and the events in order."""
    d = await start_driver()
    connected = await d.run("connect", url=sim.url, token="alice", immediate_first_retry=True)
    assert connected["ok"] and connected["result"]["status"] == "connected"
    assert (await d.run("subscribe", topics=["news"]))["result"] == ["news"]
    sim.publish("news", {"n": 1})
    note = await d.event("notification")
    assert note["data"] == {"seq": 1, "topic": "news", "payload": {"n": 1}}
    assert (await d.run("call", method="echo", params=[1, 2]))["result"] == [1, 2]
    failed = await d.run("call", method="nope")
    assert failed["ok"] is False and failed["type"] == "RemoteError"
    assert (await d.run("answer_drain", **{"with": "done"}))["result"] == {
        "standing": "done",
        "answered_now": False,
    }
    sim.request_reconnect("alice")
    await d.event("recovered")
    status = (await d.run("status"))["result"]
    assert status["status"] == "connected" and status["sid"] == "c2"
    bad = await d.run("fly")
    assert bad["ok"] is False and bad["error"].startswith("unknown command 'fly'")
    await stop(d)


async def test_no_resubscribe_flag_breaks_resubscription(sim) -> None:
    """--no-resubscribe: after an expired session the topics are not re-created."""
    d = await start_driver("--no-resubscribe")
    await d.run("connect", url=sim.url, token="alice", immediate_first_retry=False)
    await d.run("subscribe", topics=["news"])
    sim.drop("alice")
    sim.expire("s1")
    await d.event("recovery_failed")
    await d.until(lambda line: line.get("event") == "connected" and line["data"]["sid"] == "c2")
    [session] = [s for s in sim.sessions() if s["state"] == "open"]
    assert session["subscriptions"] == []
    await stop(d)


async def test_retry_auth_failure_flag_reconnects_after_auth_failed(sim) -> None:
    d = await start_driver("--retry-auth-failure")
    sim.fail_next_auth()
    reply = await d.run("connect", url=sim.url, token="alice", immediate_first_retry=True)
    assert reply["ok"] is True  # the broken client retried and got in
    opens = [r for r in sim.transcript() if r["kind"] == "open"]
    assert len(opens) == 2
    await stop(d)


async def test_auth_failure_through_the_driver_is_final(sim) -> None:
    d = await start_driver()
    sim.fail_next_auth(reason="forbidden")
    reply = await d.run("connect", url=sim.url, token="alice")
    assert reply == {
        "reply": 1,
        "ok": False,
        "error": "authentication failed (forbidden): scripted auth failure",
        "type": "AuthFailed",
    }
    await stop(d)
