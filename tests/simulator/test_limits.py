"""Bounded state and time (docs/protocol.md §9): fragments, handshakes, the transcript.

Real sockets on loopback against a real Simulator (or a real ``squall serve``); each test
stops every server it starts.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from websockets.asyncio.client import connect
from websockets.frames import Frame, Opcode

from squall.cli import build_parser
from squall.clock import LoopClock
from squall.simulator import Simulator
from squall.simulator.serve import TRANSCRIPT_MAX_RECORDS
from squall.simulator.transcript import Transcript

from .conftest import DEADLINE, TIMESCALE, RawClient

FRAGMENT_TIMEOUT = 0.3  # real seconds


@pytest.fixture
async def limited() -> AsyncIterator[Simulator]:
    sim = Simulator(
        clock=LoopClock(timescale=TIMESCALE),
        fragment_timeout=FRAGMENT_TIMEOUT,
        open_timeout=FRAGMENT_TIMEOUT,
    )
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


async def _client(sim: Simulator, token: str) -> RawClient:
    ws = await connect(f"{sim.url}?token={token}", compression=None, proxy=None)
    client = RawClient(ws)
    await client.expect("authenticated")
    return client


def _fragment(client: RawClient, opcode: Opcode, data: bytes, *, fin: bool) -> None:
    client.ws.protocol.send_frame(Frame(opcode, data, fin=fin))
    client.ws.send_data()


# --- fragment assembly -----------------------------------------------------------------------


async def test_an_unfinished_fragmented_message_is_closed_1008(limited: Simulator) -> None:
    """websockets waits for the last fragment for ever; the simulator gives it a deadline."""
    bystander = await _client(limited, "bystander")
    await bystander.send(type="subscribe", id=1, topics=["t"])
    await bystander.expect("subscribed")
    client = await _client(limited, "alice")
    started = time.monotonic()
    _fragment(client, Opcode.TEXT, b'{"type": "ping", ', fin=False)
    code, reason = await client.closed()
    elapsed = time.monotonic() - started
    assert (code, reason) == (1008, f"message fragments not completed within {FRAGMENT_TIMEOUT}s")
    assert FRAGMENT_TIMEOUT * 0.9 <= elapsed < DEADLINE
    closing = [r for r in limited.core.transcript if r["kind"] == "closing"]
    assert [(r["conn"], r["code"]) for r in closing] == [("c2", 1008)]
    assert limited.publish("t", "after")["delivered"] == 1
    await bystander.expect("notification", payload="after")
    await bystander.close()


async def test_fragments_completed_in_time_are_one_message(limited: Simulator) -> None:
    client = await _client(limited, "alice")
    _fragment(client, Opcode.TEXT, b'{"type": "ping", ', fin=False)
    await asyncio.sleep(FRAGMENT_TIMEOUT / 3)
    _fragment(client, Opcode.CONT, b'"id": "split"}', fin=True)
    await client.expect("pong", id="split")
    await asyncio.sleep(FRAGMENT_TIMEOUT * 1.5)  # the deadline was disarmed by the last one
    await client.send(type="ping", id="later")
    await client.expect("pong", id="later")
    await client.close()


async def test_a_stream_of_fragmented_messages_is_timed_per_message(limited: Simulator) -> None:
    """The deadline runs from each message's first fragment, not from the connection's start."""
    client = await _client(limited, "alice")
    for i in range(4):
        _fragment(client, Opcode.TEXT, b'{"type": "ping",', fin=False)
        await asyncio.sleep(FRAGMENT_TIMEOUT / 2)
        _fragment(client, Opcode.CONT, f'"id": {i}}}'.encode(), fin=True)
        await client.expect("pong", id=i)
    await client.close()


async def test_no_fragment_deadline_when_disabled() -> None:
    async with Simulator(clock=LoopClock(TIMESCALE), fragment_timeout=None) as sim:
        client = await _client(sim, "alice")
        _fragment(client, Opcode.TEXT, b'{"type": "ping", ', fin=False)
        await asyncio.sleep(0.2)
        _fragment(client, Opcode.CONT, b'"id": 1}', fin=True)
        await client.expect("pong", id=1)
        await client.close()


# --- opening handshake -----------------------------------------------------------------------


async def test_a_stalled_opening_handshake_is_dropped(limited: Simulator) -> None:
    host, port = limited.servers[0].sockets[0].getsockname()[:2]
    reader, writer = await asyncio.open_connection(host, port)
    started = time.monotonic()
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")  # and never the end
    await writer.drain()
    rest = await asyncio.wait_for(reader.read(), DEADLINE)
    elapsed = time.monotonic() - started
    assert FRAGMENT_TIMEOUT * 0.9 <= elapsed < DEADLINE
    assert rest == b""  # the connection is dropped, no response
    writer.close()
    client = await _client(limited, "alice")  # and the server is fine
    await client.close()


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="fragment_timeout must be a positive number"):
        Simulator(fragment_timeout=0)
    with pytest.raises(ValueError, match="max_records must be at least 1"):
        Transcript(time.monotonic, max_records=0)


# --- the transcript ring ---------------------------------------------------------------------


def test_a_bounded_transcript_keeps_the_newest_and_says_what_it_dropped() -> None:
    now = iter(range(10**6)).__next__
    t = Transcript(lambda: float(now()), max_records=5)
    for i in range(12):
        if i % 2:
            t.record("x", i=i)
        else:
            t.frame("out", "c1", "s1", "notification", "delivered", f"frame {i}")
    assert (len(t), t.dropped) == (12, 7)
    records = t.since(0)
    assert records[0] == {
        "n": 0,
        "t": records[1]["t"],
        "src": "server",
        "kind": "truncated",
        "dropped": 7,
        "first": 7,
        "max_records": 5,
    }
    assert [r["n"] for r in records[1:]] == [7, 8, 9, 10, 11]
    assert [r.get("i", r.get("text")) for r in records[1:]] == [7, "frame 8", 9, "frame 10", 11]
    assert list(t) == records and t.records == records
    assert t.since(9) == records[3:]  # absolute indices: nothing dropped in range, no marker
    gap = t.since(3)[0]
    assert (gap["kind"], gap["n"], gap["dropped"], gap["first"]) == ("truncated", 3, 4, 7)
    assert t.since(12) == [] and t.since(10**9) == []


def test_a_bounded_transcript_stays_bounded() -> None:
    t = Transcript(lambda: 0.0, max_records=1000)
    for i in range(20_000):
        t.frame("out", "c1", "s1", "notification", "delivered", "x")
        if i % 7 == 0:
            t.record("publish", topic="t")
    kept = [r for r in t if r["kind"] != "truncated"]
    assert len(kept) == 1000 and kept[-1]["n"] == len(t) - 1
    assert len(t._rows) <= 1000 + 1000 // 4  # dropped rows go in batches, never more than that
    assert t.dropped == len(t) - 1000
    unbounded = Transcript(lambda: 0.0)
    for _ in range(3000):
        unbounded.record("x")
    assert unbounded.dropped == 0 and len(unbounded.since(0)) == 3000


async def test_waiting_on_a_bounded_transcript() -> None:
    t = Transcript(lambda: 0.0, max_records=2)
    for i in range(5):
        t.record("x", i=i)
    assert (await t.wait_for(lambda r: r.get("i") == 4, DEADLINE))["n"] == 4
    asyncio.get_running_loop().call_soon(t.record, "y")
    assert (await t.wait_for(lambda r: r["kind"] == "y", DEADLINE))["n"] == 5


async def test_the_bound_over_http_since_and_a_long_run_of_connections() -> None:
    sim = Simulator(clock=LoopClock(TIMESCALE), transcript_max_records=40)
    await sim.start(control_port=0)
    try:
        for i in range(30):  # each connection leaves open, auth, session, frames, close...
            async with connect(f"{sim.url}?token=u{i}", proxy=None) as ws:
                await ws.recv()
        total = len(sim.core.transcript)
        assert total > 100
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{sim.control_url}/transcript") as resp:
                records = (await resp.json())["result"]
            async with http.get(f"{sim.control_url}/transcript", params={"since": total - 3}) as r:
                tail = (await r.json())["result"]
        assert records[0]["kind"] == "truncated"
        assert records[0]["dropped"] == records[0]["first"] == records[1]["n"]
        assert [r["n"] for r in records[1:]] == list(range(records[1]["n"], records[-1]["n"] + 1))
        assert len(records) == 41
        # (the last close may land after ``total`` was read)
        assert [r["n"] for r in tail] == list(range(total - 3, total - 3 + len(tail)))
        assert len(tail) >= 3
    finally:
        await sim.stop()


# --- squall serve ----------------------------------------------------------------------------


def test_serve_bounds_the_transcript_by_default() -> None:
    args = build_parser("serve").parse_args(["serve"])
    assert args.transcript_max_records == TRANSCRIPT_MAX_RECORDS == 100_000
    assert (args.fragment_timeout, args.open_timeout) == (10.0, 10.0)
    assert build_parser("serve").parse_args(["serve", "--transcript-max-records", "0"])


@pytest.mark.parametrize(
    "argv",
    [["--transcript-max-records", "-1"], ["--fragment-timeout", "x"], ["--open-timeout", "-2"]],
)
def test_serve_refuses_bad_limits(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser("serve").parse_args(["serve", *argv])
    assert info.value.code == 2
    assert "expected" in capsys.readouterr().err


async def _lines(proc: asyncio.subprocess.Process, count: int) -> dict[str, str]:
    urls: dict[str, str] = {}
    assert proc.stdout is not None
    while len(urls) < count:
        line = (await asyncio.wait_for(proc.stdout.readline(), DEADLINE)).decode()
        assert line, "squall serve exited early"
        key, _, value = line.strip().partition(" ")
        urls[key] = value.strip()
    return urls


async def test_squall_serve_keeps_a_ring_and_dumps_it(tmp_path: Path) -> None:
    dump = tmp_path / "transcript.jsonl"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "squall.cli",
        "serve",
        "--transcript-max-records",
        "10",
        "--fragment-timeout",
        "0.3",
        "--transcript",
        str(dump),
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        urls = await _lines(proc, 3)  # dialect, websocket, control
        for i in range(4):
            async with connect(f"{urls['websocket']}?token=u{i}", proxy=None) as ws:
                await ws.recv()
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{urls['control']}/transcript") as resp,
        ):
            records: list[dict[str, Any]] = (await resp.json())["result"]
        assert records[0]["kind"] == "truncated" and records[0]["dropped"] > 0
        assert len(records) == 11
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), DEADLINE) == 0
    lines = [json.loads(line) for line in dump.read_text().splitlines()]
    assert lines[0]["kind"] == "truncated" and len(lines) == 11


async def test_frames_arriving_together_keep_their_order(sim: Simulator, open_client) -> None:
    """Whole text frames skip websockets' queue; a fragmented one, a binary one and an
    invalid-UTF-8 one do not, and whatever follows them in the same read waits its turn."""
    from websockets.frames import Frame, Opcode

    client = await open_client("alice")

    def frame(opcode: Opcode, data: bytes, fin: bool = True) -> bytes:
        return Frame(opcode, data, fin=fin).serialize(mask=True, extensions=[])

    def ping(n: int) -> bytes:
        return b'{"type":"ping","id":%d}' % n

    burst = b"".join(
        [
            frame(Opcode.TEXT, ping(1)),
            frame(Opcode.TEXT, ping(2)[:9], fin=False),  # a fragmented message: the queue
            frame(Opcode.CONT, ping(2)[9:]),
            frame(Opcode.TEXT, ping(3)),  # behind it in the queue, not ahead of it
            frame(Opcode.TEXT, ping(4)),
        ]
    )
    client.ws.transport.write(burst)  # one write: the server reads them together
    for n in (1, 2, 3, 4):
        await client.expect("pong", id=n)
    client.ws.transport.write(frame(Opcode.TEXT, b'{"type":"ping","id":5,"x":"\xff"}'))
    assert (await client.closed())[0] == 1007  # invalid UTF-8: websockets' own answer
