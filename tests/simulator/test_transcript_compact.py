"""The transcript keeps compact rows but reads exactly as if it kept dicts (issue 14).

A simulator holding 100,000 idle sessions holds four records for each; these tests pin
that the compact form changes nothing a reader sees (keys, their order, ``n``, ``t``,
secrets masked on record and again on read), that the rows really are compact, and that a
fan-out recorded in one :meth:`Transcript.frames` call reads like one ``frame`` call each.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

import pytest
from websockets.asyncio.client import connect

from squall.secrets import Secrets
from squall.simulator import Simulator
from squall.simulator.transcript import Transcript

from .conftest import DEADLINE


def ticking() -> Any:
    """A clock that advances 0.5 s per read: every record gets its own ``t``."""
    times = iter(range(10**6))
    return lambda: next(times) / 2


def test_records_read_as_the_dicts_they_were_given_in_the_same_key_order() -> None:
    t = Transcript(ticking(), source="srv")
    returned = t.record("open", conn="c1", path="/?token=***", credentials=True, recovery=False)
    t.frame("in", "c1", None, "auth", "authenticate", '{"type":"auth"}')
    t.record("control", op="publish", params={"topic": "news", "payload": [1, {"a": None}]})
    t.frame("out", "c1", "s1", "binary", None, b"\x00\x01\x02")
    t.record("publish", at=9.25, topic="news", delivered=1, buffered=0, overflowed=0)
    records = t.records
    assert records[0] == returned
    assert list(records[0]) == ["n", "t", "src", "kind", "conn", "path", "credentials", "recovery"]
    assert records[1] == {
        "n": 1,
        "t": 0.5,
        "src": "srv",
        "kind": "frame",
        "dir": "in",
        "conn": "c1",
        "session": None,
        "type": "auth",
        "op": "authenticate",
        "text": '{"type":"auth"}',
    }
    assert records[2]["params"] == {"topic": "news", "payload": [1, {"a": None}]}
    assert records[3]["text"] == "<3 bytes>"
    assert (records[4]["t"], records[4]["delivered"]) == (9.25, 1)
    assert [r["n"] for r in records] == [0, 1, 2, 3, 4]
    assert list(t) == records and t.since(3) == records[3:]
    lines = [json.loads(line) for line in t.to_jsonl().splitlines()]
    assert lines == records


def test_rows_are_tuples_sharing_one_shape_per_kind_and_keys_with_no_float_each() -> None:
    t = Transcript(ticking())
    for i in range(3):
        t.record("auth", conn=f"c{i}", ok=True, session=f"s{i}", user="u")
    t.record("auth", conn="c9", ok=False, reason="bad_token")  # other keys: another shape
    rows = t._rows
    assert all(type(row) is tuple for row in rows)
    assert rows[0][0] is rows[1][0] is rows[2][0]  # one shape object for the three
    assert rows[3][0] is not rows[0][0]
    assert rows[3][0] == ("auth", "conn", "ok", "reason")
    assert len(t._times) == 4 and t._times.typecode == "d"  # timestamps as raw doubles
    # The compact row is under half the dict it stands for (what 100,000 sessions multiply).
    row_bytes = sys.getsizeof(rows[0])
    assert row_bytes * 2 < sys.getsizeof(t.records[0])


def test_a_batch_of_frames_reads_like_one_frame_call_each_and_wakes_listeners_in_order() -> None:
    batch = Transcript(lambda: 1.0)
    single = Transcript(lambda: 1.0)
    rows = [("out", f"c{i}", f"s{i}", "notification", "delivered", f"n{i}") for i in range(5)]
    heard: list[int] = []
    batch.listen(lambda rec: heard.append(rec["n"]))
    batch.record("open", conn="c0")
    single.record("open", conn="c0")
    batch.frames(rows, at=2.0)
    for row in rows:
        single.frame(*row, at=2.0)
    batch.frames([])  # nothing to record: nothing recorded
    assert batch.records == single.records
    assert heard == [0, 1, 2, 3, 4, 5]


def test_a_batch_larger_than_the_bound_keeps_the_newest_and_counts_the_rest() -> None:
    t = Transcript(lambda: 3.0, max_records=4)
    t.record("open", conn="c0")
    t.frames([("out", "c1", "s1", "notification", "delivered", f"f{i}") for i in range(10)])
    assert (len(t), t.dropped) == (11, 7)
    records = t.since(0)
    assert (records[0]["kind"], records[0]["dropped"], records[0]["first"]) == ("truncated", 7, 7)
    assert [r["text"] for r in records[1:]] == ["f6", "f7", "f8", "f9"]
    assert records[0]["t"] == 3.0


def test_secrets_are_masked_in_compact_rows_on_record_and_again_on_read() -> None:
    secrets = Secrets(["early-secret"])
    t = Transcript(lambda: 0.0, secrets=secrets)
    t.record("auth", conn="c1", token="by-key-secret", note="has early-secret inside")
    t.record("control", op="x", params={"password": "nested-secret", "text": "later-secret"})
    t.frames([("in", "c1", None, "call", "call", '{"p":"later-secret early-secret"}')])
    t.frame("in", "c1", None, "call", "call", "frame with later-secret")
    secrets.add("later-secret")  # learned after all four were kept: masked on the next read
    dumped = t.to_jsonl()
    for secret in ("early-secret", "by-key-secret", "nested-secret", "later-secret"):
        assert secret not in dumped, secret
    records = t.records
    assert records[0]["token"] == "***" and records[1]["params"]["password"] == "***"
    assert [r["kind"] for r in records] == ["auth", "control", "frame", "frame"]
    assert type(t._rows[0]) is tuple  # scrubbed again, still compact
    assert t._rows[0][0] is t._rows[0][0] and t._rows[0][0][0] == "auth"


async def test_an_idle_session_keeps_four_compact_records_that_read_as_before() -> None:
    async with (
        Simulator() as sim,
        connect(f"{sim.url}?token=alice", compression=None, proxy=None) as ws,
    ):
        hello = json.loads(await asyncio.wait_for(ws.recv(), DEADLINE))
        assert hello["type"] == "authenticated"
        async with connect(f"{sim.url}?token=bob", compression=None, proxy=None) as ws2:
            await asyncio.wait_for(ws2.recv(), DEADLINE)
            transcript = sim.core.transcript
            kinds = [r.get("op") or r["kind"] for r in transcript]
            assert kinds == ["open", "session", "auth", "authenticated"] * 2
            opens = [row for row in transcript._rows if row[0][0] == "open"]
            assert opens[0][3] is opens[1][3] == "/?token=***"  # one path string for both
            records = transcript.records
            assert records[0]["path"] == "/?token=***" and records[0]["conn"] == "c1"
            assert hello["recovery_token"] not in transcript.to_jsonl()
            sim.publish("news", {"n": 1})  # no subscriber: a publish record, no frame
            assert transcript.records[-1]["kind"] == "publish"


async def test_a_fan_out_records_every_delivery_in_order_after_what_came_before() -> None:
    async with Simulator() as sim:
        clients = []
        for i in range(3):
            ws = await connect(f"{sim.url}?token=u{i}", compression=None, proxy=None)
            clients.append(ws)
            await asyncio.wait_for(ws.recv(), DEADLINE)
            await ws.send(json.dumps({"type": "subscribe", "id": 1, "topics": ["news"]}))
            await asyncio.wait_for(ws.recv(), DEADLINE)
        try:
            start = len(sim.core.transcript)
            assert sim.publish("news", {"n": 1})["delivered"] == 3
            for ws in clients:
                note = json.loads(await asyncio.wait_for(ws.recv(), DEADLINE))
                assert (note["type"], note["seq"], note["payload"]) == ("notification", 1, {"n": 1})
            after = sim.core.transcript.since(start)
            assert [r["kind"] for r in after] == ["control", "frame", "frame", "frame", "publish"]
            assert sorted(r["session"] for r in after[1:4]) == ["s1", "s2", "s3"]
            assert [r["n"] for r in after] == list(range(start, start + 5))
        finally:
            for ws in clients:
                await ws.close()


def listen_backlog(port: int) -> int:
    """The backlog the kernel shows for a listening socket (``ss``: Send-Q of LISTEN)."""
    out = subprocess.run(
        ["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout
    return int(out.split()[2])


async def test_the_backlog_option_reaches_every_listening_socket() -> None:
    async with Simulator(backlog=77) as sim:
        await sim.listen()
        ports = [server.sockets[0].getsockname()[1] for server in sim.servers]
        assert [listen_backlog(port) for port in ports] == [77, 77]
    async with Simulator() as sim:  # asyncio's default, unchanged
        assert listen_backlog(sim.servers[0].sockets[0].getsockname()[1]) == 100


@pytest.mark.parametrize("bad", [0, -1, 1.5, "4096", True])
def test_a_bad_backlog_is_a_clear_error(bad: Any) -> None:
    with pytest.raises(ValueError, match="backlog must be a positive number"):
        Simulator(backlog=bad)


async def test_text_frames_of_every_header_length_reach_the_client_intact() -> None:
    # The link builds a server text frame's header itself (7-, 16- and 64-bit lengths).
    texts = ["", "é" * 62 + "x", "x" * 126, "ü" * 40_000, "y" * 70_000]
    async with (
        Simulator() as sim,
        connect(f"{sim.url}?token=alice", compression=None, proxy=None, max_size=None) as ws,
    ):
        hello = json.loads(await asyncio.wait_for(ws.recv(), DEADLINE))
        for text in texts:
            sim.send(hello["session"], text)
        got = [await asyncio.wait_for(ws.recv(), DEADLINE) for _ in texts]
        assert got == texts
