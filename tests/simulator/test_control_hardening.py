"""Control API hardening: every bad call is a 4xx with a sentence, and a refused call does nothing.

Each test drives a real Simulator over real HTTP (aiohttp) on loopback, with one connected,
subscribed bystander that must notice nothing of the refused calls.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from squall.clock import LoopClock
from squall.simulator import ControlError, Simulator
from squall.simulator.control import MAX_DEPTH, InvalidArguments
from squall.simulator.http_api import MAX_BODY

from .conftest import TIMESCALE, RawClient

Api = tuple[aiohttp.ClientSession, str, Simulator, RawClient]


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    sim = Simulator(clock=LoopClock(timescale=TIMESCALE))
    await sim.start(control_port=0)
    ws = await connect(sim.url + "?token=bystander", compression=None, proxy=None)
    bystander = RawClient(ws)
    await bystander.expect("authenticated")
    await bystander.send(type="subscribe", id=1, topics=["t"])
    await bystander.expect("subscribed")
    try:
        async with aiohttp.ClientSession() as http:
            assert sim.control_url is not None
            yield http, sim.control_url, sim, bystander
        # The bystander is still served, and saw nothing before this publication.
        sim.publish("t", "after")
        await bystander.expect("notification", seq=1, payload="after")
    finally:
        await ws.close()
        await sim.stop()


async def _post(http: aiohttp.ClientSession, url: str, body: bytes | str) -> tuple[int, Any]:
    async with http.post(url, data=body, headers={"Content-Type": "application/json"}) as resp:
        return resp.status, await resp.json()


async def _refused(api: Api, op: str, body: bytes | str, status: int = 400) -> str:
    """POST ``body`` to ``op``; assert a refusal with a sentence and no effect; the sentence."""
    http, url, sim, _ = api
    before = (sim.sessions(), len(sim.core.transcript))
    got, answer = await _post(http, f"{url}/{op}", body)
    assert got == status, answer
    assert answer["status"] == status
    assert isinstance(answer["error"], str) and answer["error"]
    assert "Traceback" not in answer["error"]
    assert (sim.sessions(), len(sim.core.transcript)) == before
    return answer["error"]


# --- the cases -----------------------------------------------------------------------


async def test_invalid_utf8_body_is_a_400(api: Api) -> None:
    error = await _refused(api, "publish", b'{"topic": "\xff"}')
    assert error == "request body is not valid UTF-8: invalid start byte at byte 11"


async def test_json_nested_5000_deep_is_a_400(api: Api) -> None:
    error = await _refused(api, "publish", "[" * 5000 + "]" * 5000)
    assert error == (
        f"request body nests too deeply to parse (arguments may nest {MAX_DEPTH} levels)"
    )


async def test_payload_deeper_than_the_encoders_go_is_a_400(api: Api) -> None:
    """101 levels parse, but the dialects' JSON encoders stop at a few hundred: refused whole."""
    deep = "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)
    error = await _refused(api, "publish", f'{{"topic": "t", "payload": {deep}}}')
    assert error == (
        f"invalid arguments for publish: payload: nests deeper than {MAX_DEPTH} levels of "
        "lists and objects"
    )
    http, url, _, _ = api
    ok = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    status, _ = await _post(http, f"{url}/publish", f'{{"topic": "elsewhere", "payload": {ok}}}')
    assert status == 200


async def test_refuse_connections_with_a_huge_count_is_a_400(api: Api) -> None:
    error = await _refused(api, "refuse_connections", '{"count": 1000000000000}')
    assert error == (
        "invalid arguments for refuse_connections: count: Input should be less than or equal "
        "to 1000000"
    )
    _, _, sim, _ = api
    async with connect(sim.url + "?token=next", proxy=None) as ws:  # nothing is refused
        assert json.loads(await ws.recv())["type"] == "authenticated"


async def test_lone_surrogate_in_send_text_is_a_400(api: Api) -> None:
    error = await _refused(api, "send", r'{"session": "bystander", "text": "ok \ud800"}')
    assert error == (
        "invalid arguments for send: text: contains a lone surrogate (U+D800 at position 3), "
        "which UTF-8 cannot encode"
    )


async def test_lone_surrogate_in_a_reconnect_reason_is_a_400_and_closes_nothing(
    api: Api,
) -> None:
    error = await _refused(
        api, "request_reconnect", r'{"session": "bystander", "reason": "\udc00"}'
    )
    assert error.startswith("invalid arguments for request_reconnect: reason: contains a lone")
    _, _, sim, _ = api
    # It used to drain anyway: the session was closed answer_within (1 s) later.
    await asyncio.sleep(sim.core.config.drain_answer_within * TIMESCALE * 5)
    assert sim.sessions()[0]["state"] == "open" and sim.sessions()[0]["drain"] is None


async def test_a_refused_drain_of_one_leaves_no_control_record(api: Api) -> None:
    error = await _refused(api, "request_reconnect", '{"session": "nobody"}', status=404)
    assert error.startswith("no session matches 'nobody'")


# --- unknown arguments: the accepted names and a suggestion, on every face ------------------


async def test_unknown_argument_names_the_accepted_ones_over_http(api: Api) -> None:
    error = await _refused(api, "on_rpc", '{"method": "add", "result": 3}')
    expected = (
        "invalid arguments for on_rpc: result: Unexpected keyword argument (did you mean "
        "'reply'? accepted: method, reply, error, delay, no_reply, times, handler)"
    )
    assert error == expected
    _, _, sim, _ = api
    with pytest.raises(ControlError) as info:
        sim.on_rpc(method="add", result=3)  # type: ignore[call-arg]
    assert str(info.value) == expected and info.value.status == 400
    assert isinstance(info.value, InvalidArguments) and isinstance(info.value, ValueError)


async def test_misspelt_argument_gets_the_closest_name(api: Api) -> None:
    error = await _refused(api, "publish", '{"topic": "t", "paylod": 1}')
    assert error == (
        "invalid arguments for publish: paylod: Unexpected keyword argument (did you mean "
        "'payload'? accepted: topic, payload)"
    )
    error = await _refused(api, "publish", '{"self": 1}')
    assert error.startswith("invalid arguments for publish: self: Unexpected keyword argument")


async def test_unknown_query_argument_and_operation(api: Api) -> None:
    http, url, _, _ = api
    async with http.get(f"{url}/transcript", params={"snice": "3"}) as resp:
        assert resp.status == 400
        error = (await resp.json())["error"]
    assert error == (
        "invalid arguments for transcript: snice: Unexpected keyword argument (did you mean "
        "'since'? accepted: since)"
    )
    assert await _refused(api, "publsh", "{}", status=404) == (
        "unknown operation 'publsh' (did you mean 'publish'? see GET /v1)"
    )


def test_the_scenario_face_names_the_accepted_keys() -> None:
    """Scenarios validate server steps against the same signature, at load time."""
    from squall.conformance.loader import ScenarioError, parse

    text = (
        "id: x.y\ntitle: t\nclients: {a: {token: a}}\n"
        "steps:\n  - server.on_rpc: {method: add, result: 1}\n"
    )
    with pytest.raises(ScenarioError) as info:
        parse(text)
    message = str(info.value)
    assert "unknown key 'result'" in message
    assert "method, reply, error, delay, no_reply, times" in message


# --- more that used to 500, or to answer 200 and fail later ---------------------------------


@pytest.mark.parametrize(
    ("op", "body", "error"),
    [
        (
            "drop",
            '{"session": "bystander", "code": 1005}',
            "invalid arguments for drop: code: 1005 cannot be sent in a close frame",
        ),
        (
            "refuse_connections",
            '{"status": 499}',
            "invalid arguments for refuse_connections: status: 499 is not an HTTP error status",
        ),
        ("publish", '{"topic": "t", "payload": NaN}', "request body is not valid JSON: NaN is"),
        ("configure", '{"heartbeat": Infinity}', "request body is not valid JSON: Infinity is"),
        ("configure", '{"recovery_window": 1e400}', "request body is not valid JSON: 1e400 is"),
        (
            "configure",
            '{"rate_burst": ' + "9" * 400 + "}",
            "invalid arguments for configure: rate_burst: Input should be less than or equal",
        ),
        ("publish", '{"topic": "t", "payload": ' + "1" * 5000 + "}", "request body is not valid"),
        ("publish", '"topic"', "request body must be a JSON object of arguments"),
        ("publish", "\ufeff{}", "request body is not valid JSON: Unexpected UTF-8 BOM"),
        ("publish", r'{"topic": "\ud83d"}', "invalid arguments for publish: topic: contains a"),
        ("publish", r'{"topic": "t", "payload": {"\udfff": 1}}', "invalid arguments for publish"),
    ],
)
async def test_more_bad_bodies(api: Api, op: str, body: str, error: str) -> None:
    assert (await _refused(api, op, body)).startswith(error)


async def test_a_refused_close_code_is_not_sent(api: Api) -> None:
    """drop with 1005 answered 200 and then failed inside websockets (a task's traceback)."""
    _, _, sim, bystander = api
    with pytest.raises(ControlError, match="1005 cannot be sent in a close frame"):
        sim.drop("bystander", code=1005)
    await bystander.send(type="ping", id="alive")
    await bystander.expect("pong", id="alive")


async def test_a_refused_status_is_never_answered(api: Api) -> None:
    """refuse_connections(status=499) used to be accepted and turn into websockets' 500."""
    _, _, sim, _ = api
    with pytest.raises(ControlError, match="499 is not an HTTP error status"):
        sim.refuse_connections(count=1, status=499)
    sim.refuse_connections(count=1, status=429)
    with pytest.raises(InvalidStatus) as info:
        async with connect(sim.url + "?token=x", proxy=None):
            pass
    assert info.value.response.status_code == 429


async def test_aiohttp_refusals_are_sentences_too(api: Api) -> None:
    http, url, _, _ = api
    root = url.removesuffix("/v1")
    async with http.get(f"{root}/v2/sessions") as resp:
        assert resp.status == 404
        assert (await resp.json())["error"] == (
            "no such path '/v2/sessions' (operations are under /v1)"
        )
    async with http.post(url) as resp:
        assert resp.status == 405
        assert (await resp.json())["error"] == "Method Not Allowed: POST /v1"
    body = b'{"topic": "t", "payload": "' + b"x" * MAX_BODY + b'"}'
    async with http.post(f"{url}/publish", data=body) as resp:
        assert resp.status == 413
        assert (await resp.json())["error"] == f"request body is larger than {MAX_BODY} bytes"


async def test_index_lists_parameters(api: Api) -> None:
    http, url, _, _ = api
    async with http.get(url) as resp:
        ops = await resp.json()
    assert ops["on_rpc"]["params"] == [
        "method",
        "reply",
        "error",
        "delay",
        "no_reply",
        "times",
        "handler",
    ]
