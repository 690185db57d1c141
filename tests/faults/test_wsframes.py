"""Frame toxics against a real websockets client and server on loopback.

The proxy runs on the test's own loop through the async API
(``async with ProxyServer(...)``) and is driven through its Python control
plane, the same code the HTTP API calls.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosedError

from squall.faults import ProxyServer

pytestmark = pytest.mark.usefixtures("squall_only")


async def echo(ws) -> None:
    async for message in ws:
        await ws.send(message)


@pytest.fixture
async def ws_proxy():
    """(server, proxy name, ws:// URL through the proxy) with an echo WebSocket server upstream."""
    async with serve(echo, "127.0.0.1", 0, compression=None) as upstream:
        port = upstream.sockets[0].getsockname()[1]
        async with ProxyServer(port=0, seed=42) as srv:
            proxy = await srv.collection.create(
                {"name": "ws", "listen": "127.0.0.1:0", "upstream": f"127.0.0.1:{port}"}
            )
            yield srv, f"ws://{proxy.listen}/"


async def add(srv: ProxyServer, type_: str, stream: str = "downstream", **attributes) -> None:
    await srv.collection.add_toxic(
        "ws", {"type": type_, "stream": stream, "attributes": attributes}
    )


async def exchange(url: str, messages: list[str], expect: int) -> list[str]:
    async with connect(url, compression=None) as ws:
        for m in messages:
            await ws.send(m)
        return [await asyncio.wait_for(ws.recv(), 30) for _ in range(expect)]


async def test_handshake_passes_untouched(ws_proxy):
    """With a frame toxic that selects nothing, the echo works end to end."""
    srv, url = ws_proxy
    await add(srv, "ws_drop", match="never-matches")
    assert await exchange(url, ["a", "b"], 2) == ["a", "b"]


async def test_drop_nth_frame_downstream(ws_proxy):
    """ws_drop nth=2 count=1 drops the second server->client data frame only."""
    srv, url = ws_proxy
    await add(srv, "ws_drop", nth=2, count=1)
    assert await exchange(url, ["1", "2", "3", "4"], 3) == ["1", "3", "4"]
    assert [e.detail["frame"] for e in srv.events if e.action == "ws_drop"] == [2]


async def test_drop_upstream_by_pattern(ws_proxy):
    """Masked client->server frames are parsed too: drop those whose text matches."""
    srv, url = ws_proxy
    await add(srv, "ws_drop", stream="upstream", match=r"^secret")
    assert await exchange(url, ["a", "secret-1", "b", "secret-2", "c"], 3) == ["a", "b", "c"]


async def test_duplicate(ws_proxy):
    """ws_duplicate copies=2 delivers the selected frame three times."""
    srv, url = ws_proxy
    await add(srv, "ws_duplicate", match="dup", copies=2)
    assert await exchange(url, ["x", "dup", "y"], 5) == ["x", "dup", "dup", "dup", "y"]


async def test_reorder(ws_proxy):
    """ws_reorder by=2 lets two later frames overtake the selected one."""
    srv, url = ws_proxy
    await add(srv, "ws_reorder", nth=1, count=1, by=2)
    assert await exchange(url, ["1", "2", "3", "4"], 4) == ["2", "3", "1", "4"]


async def test_delay(ws_proxy):
    """ws_delay holds the matching frame (and those behind it) for its delay."""
    srv, url = ws_proxy
    await add(srv, "ws_delay", match="slow", delay=300)
    async with connect(url, compression=None) as ws:
        await ws.send("fast")
        assert await ws.recv() == "fast"
        start = time.monotonic()
        await ws.send("slow")
        assert await ws.recv() == "slow"
        assert 0.3 <= time.monotonic() - start < 2.3


async def test_corrupt_text_frame_closes_with_1007(ws_proxy):
    """A corrupted client text frame is invalid UTF-8: the server closes with 1007."""
    srv, url = ws_proxy
    await add(srv, "ws_corrupt", stream="upstream", match="^bad$")
    async with connect(url, compression=None) as ws:
        await ws.send("ok")
        assert await ws.recv() == "ok"
        await ws.send("bad")
        with pytest.raises(ConnectionClosedError) as info:
            await asyncio.wait_for(ws.recv(), 30)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1007


async def test_removing_a_frame_toxic_keeps_held_frames(ws_proxy):
    """Frames held by ws_reorder are delivered when the toxic is removed."""
    srv, url = ws_proxy
    await add(srv, "ws_reorder", nth=1, count=1, by=100)
    async with connect(url, compression=None) as ws:
        await ws.send("held")
        await ws.send("next")
        assert await asyncio.wait_for(ws.recv(), 30) == "next"
        await srv.collection.remove_toxic("ws", "ws_reorder_downstream")
        assert await asyncio.wait_for(ws.recv(), 30) == "held"


async def test_invalid_pattern_is_refused(ws_proxy):
    """A bad regex is a 400 with a clear message, before anything is added."""
    from squall.faults import ApiError

    srv, _ = ws_proxy
    with pytest.raises(ApiError) as info:
        await add(srv, "ws_drop", match="(")
    assert info.value.status == 400
    assert info.value.message.startswith("bad request body: invalid match pattern:")
