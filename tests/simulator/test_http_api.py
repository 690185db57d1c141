"""The HTTP control API, through real HTTP on loopback: same operations, same validation."""

from __future__ import annotations

import aiohttp
import pytest

from squall.clock import LoopClock
from squall.simulator import ControlError, Simulator
from squall.simulator.http_api import start_http_api


@pytest.fixture
async def api(sim: Simulator):
    runner, url = await start_http_api(sim)
    async with aiohttp.ClientSession() as http:
        yield http, url
    await runner.cleanup()


async def test_index_lists_every_operation(api) -> None:
    http, url = api
    async with http.get(url) as resp:
        ops = await resp.json()
    assert {
        "publish",
        "request_reconnect",
        "drop",
        "fail_next_auth",
        "on_rpc",
        "sessions",
        "transcript",
        "refuse_connections",
        "configure",
        "silence",
    } <= set(ops)
    assert ops["sessions"]["method"] == "GET"


async def test_publish_over_http_reaches_a_subscriber(api, open_client) -> None:
    http, url = api
    client = await open_client("alice")
    await client.send(type="subscribe", id=1, topics=["news"])
    await client.expect("subscribed")
    async with http.post(f"{url}/publish", json={"topic": "news", "payload": {"x": 1}}) as resp:
        assert resp.status == 200
        assert await resp.json() == {"result": {"delivered": 1, "buffered": 0, "overflowed": 0}}
    await client.expect("notification", payload={"x": 1})
    async with http.get(f"{url}/sessions") as resp:
        sessions = (await resp.json())["result"]
    assert sessions[0]["user"] == "alice" and sessions[0]["seq"] == 1


async def test_drain_and_rpc_script_over_http(api, open_client) -> None:
    http, url = api
    client = await open_client("alice")
    async with http.post(f"{url}/on_rpc", json={"method": "pay", "error": "declined"}) as resp:
        assert resp.status == 200
    await client.send(type="call", id=1, method="pay")
    await client.expect("error", id=1, code="declined")
    async with http.post(f"{url}/request_reconnect", json={"session": "alice", "deadline": 5}) as r:
        assert (await r.json())["result"] == ["s1"]
    await client.expect("reconnect_request", deadline=5)


async def test_transcript_since(api, open_client) -> None:
    http, url = api
    await open_client("alice")
    async with http.get(f"{url}/transcript", params={"since": "1"}) as resp:
        records = (await resp.json())["result"]
    assert records[0]["n"] == 1 and records[0]["kind"] == "session"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "error"),
    [
        (
            "POST",
            "publish",
            "{not json",
            400,
            "request body is not valid JSON: Expecting property name",
        ),
        ("POST", "publish", "[1]", 400, "request body must be a JSON object of arguments"),
        (
            "POST",
            "publish",
            "{}",
            400,
            "invalid arguments for publish: topic: Missing required argument",
        ),
        (
            "POST",
            "publish",
            '{"topic": "t", "colour": 1}',
            400,
            "invalid arguments for publish: colour: Unexpected keyword argument",
        ),
        (
            "POST",
            "drop",
            '{"session": "ghost"}',
            404,
            "no session matches 'ghost' (sessions: none)",
        ),
        ("POST", "teleport", "{}", 404, "unknown operation 'teleport' (see GET /v1)"),
        ("GET", "publish", None, 405, "publish takes POST, not GET"),
        (
            "POST",
            "on_rpc",
            '{"method": "m", "handler": "x"}',
            400,
            "argument(s) ['handler'] are only available from Python",
        ),
        (
            "POST",
            "fail_next_auth",
            '{"reason": "because"}',
            400,
            "invalid arguments for fail_next_auth: reason: Input should be 'invalid_token', "
            "'expired_token', 'missing_credentials', 'forbidden' or 'invalid_jwt'",
        ),
    ],
)
async def test_bad_calls_get_a_sentence(api, method, path, body, status, error) -> None:
    http, url = api
    async with http.request(method, f"{url}/{path}", data=body) as resp:
        assert resp.status == status
        payload = await resp.json()
    assert payload["status"] == status
    assert payload["error"].startswith(error), payload["error"]


async def test_bearer_token_when_configured() -> None:
    async with Simulator(clock=LoopClock(0.01)) as sim:
        await sim.start(ports=0, control_port=0, control_token="s3cret")
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{sim.control_url}/sessions") as resp:
                assert resp.status == 401
                assert (await resp.json())["error"].startswith("a bearer token is required")
            headers = {"Authorization": "Bearer s3cret"}
            async with http.get(f"{sim.control_url}/sessions", headers=headers) as resp:
                assert resp.status == 200


async def test_refuses_to_bind_beyond_loopback_without_a_token(sim: Simulator) -> None:
    with pytest.raises(ControlError, match="without a bearer token"):
        await start_http_api(sim, host="0.0.0.0")


async def test_several_endpoints_share_one_core(open_client) -> None:
    """Failover needs several URLs: sessions, topics and recovery span them all."""
    async with Simulator(clock=LoopClock(0.01)) as sim:
        second = await sim.listen()
        assert len(sim.urls) == 2 and second != sim.urls[0]
        a = await open_client(None, url=sim.urls[0] + "?token=alice")
        b = await open_client(None, url=sim.urls[1] + "?token=bob")
        for c in (a, b):
            await c.expect("authenticated")
            await c.send(type="subscribe", id=1, topics=["x"])
            await c.expect("subscribed")
        assert sim.publish("x")["delivered"] == 2


async def test_refused_handshakes(open_client) -> None:
    """refuse_connections answers the next upgrades with an HTTP status, then accepts again."""
    from websockets.exceptions import InvalidStatus

    async with Simulator(clock=LoopClock(0.01)) as sim:
        sim.refuse_connections(count=2, status=503)
        for _ in range(2):
            with pytest.raises(InvalidStatus) as info:
                await open_client(None, url=sim.url + "?token=alice")
            assert info.value.response.status_code == 503
        ok = await open_client(None, url=sim.url + "?token=alice")
        await ok.expect("authenticated")
        assert [r["status"] for r in sim.transcript() if r["kind"] == "refused"] == [503, 503]
