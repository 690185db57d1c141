"""The seam itself: docs/dialects.md's worked example is a real dialect, added with no core edit."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from squall.simulator import Simulator
from squall.simulator.control import ControlError
from squall.simulator.dialects import dialect_class, names

DOC = Path(__file__).resolve().parents[2] / "docs" / "dialects.md"


def _example() -> dict[str, Any]:
    """Execute the python block of the worked example, as a user would paste it."""
    text = DOC.read_text(encoding="utf-8")
    block = re.search(r"## Adding a dialect.*?```python\n(.*?)```", text, re.S)
    assert block, "docs/dialects.md lost its worked example"
    scope: dict[str, Any] = {}
    exec(compile(block.group(1), str(DOC), "exec"), scope)
    return scope


async def test_the_worked_example_serves_a_real_client() -> None:
    dialect = _example()["LinesDialect"]
    async with Simulator(dialect=dialect) as sim:
        async with connect(sim.url, proxy=None) as ws:
            assert await ws.recv() == "HELLO"
            await ws.send("LOGIN alice")
            assert await ws.recv() == "OK alice"
            await ws.send("SUB news")
            assert await ws.recv() == "OK news"
            assert sim.publish("news", {"n": 1}) == {"delivered": 1, "buffered": 0, "overflowed": 0}
            assert await ws.recv() == 'MSG news {"n": 1}'
            await ws.send("DANCE")
            assert await ws.recv() == "ERR unknown verb 'DANCE'"
        records = sim.core.transcript.since(0)
    frames = [r for r in records if r["kind"] == "frame"]
    login = next(r for r in frames if r["type"] == "LOGIN")
    assert (login["op"], login["text"]) == ("authenticate", "LOGIN ***")  # the token never lands
    msg = next(r for r in frames if r["type"] == "MSG")
    assert (msg["op"], msg["dir"]) == ("delivered", "out")


async def test_an_operation_the_dialect_lacks_names_it() -> None:
    dialect = _example()["LinesDialect"]
    async with Simulator(dialect=dialect) as sim, connect(sim.url, proxy=None) as ws:
        await ws.recv()
        await ws.send("LOGIN bob")
        await ws.recv()
        with pytest.raises(ControlError, match="the lines dialect has no server-requested"):
            sim.request_reconnect("bob")


def test_unknown_dialect_and_option_are_sentences() -> None:
    with pytest.raises(ValueError, match=r"unknown dialect 'nope' \(known: reference, mixer"):
        dialect_class("nope")
    with pytest.raises(ValueError, match="unknown reference dialect options"):
        Simulator(dialect="reference", dialect_options={"colour": "red"})
    assert names()[:3] == ["reference", "mixer", "ringcentral"]


def test_every_reference_client_message_maps_to_an_operation() -> None:
    """The reference dialect dispatches on the decoded class: the table covers the union."""
    import typing

    from squall.protocol.messages import ClientMessage
    from squall.simulator.dialects.reference import _TO_OP

    union = typing.get_args(ClientMessage)[0]
    assert set(typing.get_args(union)) == set(_TO_OP)
