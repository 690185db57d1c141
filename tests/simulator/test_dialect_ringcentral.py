"""The ringcentral dialect (seed 001) over loopback: raw aiohttp/websockets clients, then the
real, unchanged @rc-ex/ws 1.4.2 on @rc-ex/core 1.8.6 driven by a small node script."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from squall.clock import LoopClock
from squall.protocol import ringcentral as rc
from squall.simulator import ControlError, Simulator
from squall.simulator import events as ev
from squall.simulator.auth import AuthPolicy
from squall.simulator.core import Config
from squall.simulator.dialects.ringcentral import CLOSE_CODES, RingCentralDialect
from squall.simulator.http_api import start_http_api
from squall.simulator.seam import CloseReason, Handshake
from tests import needs

from .conftest import DEADLINE, TIMESCALE, wait_for_record

MESSAGES = "/restapi/v1.0/account/~/extension/~/message-store"
PRESENCE = "/restapi/v1.0/account/~/extension/~/presence"
SUBSCRIPTION = "/restapi/v1.0/subscription"


class RcClient:
    """Speaks the WSG wire by hand: ``[meta, body]`` arrays, checked by the codec as they come."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._ids = 0
        self.sequences: list[int] = []

    async def send(self, *frame: Any) -> None:
        await self.ws.send(json.dumps(list(frame)))

    async def request(self, method: str, path: str, body: Any = None, **meta: Any) -> str:
        self._ids += 1
        mid = meta.pop("messageId", f"req-{self._ids}")
        head = {
            "type": "ClientRequest",
            "messageId": mid,
            "method": method,
            "path": path,
            "headers": {},
            **meta,
        }
        await self.send(head) if body is None else await self.send(head, body)
        return mid

    async def recv(self) -> tuple[dict[str, Any], Any]:
        text = await asyncio.wait_for(self.ws.recv(), DEADLINE)
        rc.decode_server(text)  # every frame the dialect sends is one the codec reads back
        frame = json.loads(text)
        meta = frame[0]
        if "wsc" in meta:
            self.sequences.append(meta["wsc"]["sequence"])
        return meta, frame[1] if len(frame) > 1 else None

    async def expect(self, mtype: str, **fields: Any) -> tuple[dict[str, Any], Any]:
        meta, body = await self.recv()
        assert meta["type"] == mtype, f"expected {mtype!r}, got {meta} {body}"
        for key, value in fields.items():
            assert meta[key] == value, f"{key}: expected {value!r}, got {meta} {body}"
        return meta, body

    async def answer(self, mid: str, status: int = 200) -> Any:
        _, body = await self.expect("ClientRequest", messageId=mid, status=status)
        return body

    async def subscribe(self, *filters: str) -> dict[str, Any]:
        mid = await self.request(
            "POST",
            SUBSCRIPTION,
            {"eventFilters": list(filters), "deliveryMode": {"transportType": "WebSocket"}},
        )
        return await self.answer(mid)  # type: ignore[no-any-return]

    async def closed(self) -> tuple[int | None, str]:
        try:
            while True:
                await asyncio.wait_for(self.ws.recv(), DEADLINE)
        except ConnectionClosed as exc:
            return (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else (None, "")


@pytest.fixture
async def rc_sim(request: pytest.FixtureRequest) -> AsyncIterator[Simulator]:
    """A started Simulator(dialect="ringcentral"); indirect params are its keyword arguments."""
    kwargs = {"clock": LoopClock(timescale=TIMESCALE), **getattr(request, "param", {})}
    simulator = Simulator(dialect="ringcentral", **kwargs)
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def wstoken(
    sim: Simulator, http: aiohttp.ClientSession, token: str | None = "alice"
) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with http.post(f"{sim.http_url}/restapi/oauth/wstoken", headers=headers) as resp:
        return resp.status, await resp.json()


@pytest.fixture
async def rc_open(rc_sim: Simulator, http: aiohttp.ClientSession) -> AsyncIterator[Any]:
    """``client, details = await rc_open("alice", wsc=...)``: wstoken, socket, ConnectionDetails."""
    opened: list[RcClient] = []

    async def _open(
        token: str = "alice", *, wsc: str | None = None, url: str | None = None, ready: bool = True
    ) -> tuple[RcClient, Any]:
        if url is None:
            status, grant = await wstoken(rc_sim, http, token)
            assert status == 200, grant
            url = f"{grant['uri']}?access_token={grant['ws_access_token']}"
            if wsc is not None:
                url += f"&wsc={wsc}"
        client = RcClient(await connect(url, compression=None, proxy=None, max_size=None))
        opened.append(client)
        if not ready:
            return client, None
        meta, body = await client.expect("ConnectionDetails", status=200)
        return client, (meta, body)

    yield _open
    await asyncio.gather(*(c.ws.close() for c in opened), return_exceptions=True)


@pytest.fixture
async def bystander(rc_sim: Simulator, rc_open: Any) -> AsyncIterator[RcClient]:
    """A subscribed session that must see nothing of other sessions' trouble."""
    client, _ = await rc_open("bystander")
    await client.subscribe("/by")
    yield client
    rc_sim.publish("/by", "after")
    _, body = await client.expect("ServerNotification")
    assert (body["event"], body["body"], body["ownerId"]) == ("/by", "after", "bystander")
    await client.send({"type": "Heartbeat", "messageId": "still-here"})
    await client.expect("Heartbeat", messageId="still-here", status=200)
    assert client.sequences == list(range(1, len(client.sequences) + 1))


def detached(session: str) -> Callable[[dict[str, Any]], bool]:
    return lambda r: r["kind"] == "session" and r["session"] == session and r["state"] == "detached"


# --- wstoken --------------------------------------------------------------------------------------


async def test_wstoken_hands_out_the_socket_and_a_ws_access_token(rc_sim, http) -> None:
    status, grant = await wstoken(rc_sim, http)
    assert status == 200
    assert set(grant) == {"uri", "ws_access_token", "expires_in"}
    assert grant["uri"] == rc_sim.url.rstrip("/") + "/ws"
    assert grant["expires_in"] == 600
    assert len(grant["ws_access_token"]) >= 32
    _, other = await wstoken(rc_sim, http)
    assert other["ws_access_token"] != grant["ws_access_token"]


@pytest.mark.parametrize(
    "rc_sim",
    [
        {
            "auth": AuthPolicy(tokens={"AT-1": "alice"}),
            "dialect_options": {"expires_in": 60, "uri": "ws://gateway.test/ws"},
        }
    ],
    indirect=True,
)
async def test_wstoken_options_and_401s_in_ringcentral_shape(rc_sim, http) -> None:
    """A bad token is 401 with errorCode/message/errors; scripted failures count here too."""
    status, grant = await wstoken(rc_sim, http, "AT-1")
    assert (status, grant["uri"], grant["expires_in"]) == (200, "ws://gateway.test/ws", 60)
    assert await wstoken(rc_sim, http, None) == (
        401,
        {
            "errorCode": "AGW-401",
            "message": "Authorization header is not specified",
            "errors": [
                {"errorCode": "AGW-401", "message": "Authorization header is not specified"}
            ],
        },
    )
    status, body = await wstoken(rc_sim, http, "AT-2")
    assert (status, body["errorCode"], body["message"]) == (
        401,
        "TokenInvalid",
        "token is not known to this server",
    )
    rc_sim.revoke_token("AT-1")
    status, body = await wstoken(rc_sim, http, "AT-1")
    assert (status, body["errorCode"]) == (401, "TokenExpired")


async def test_fail_next_auth_fails_the_next_wstoken_then_passes(rc_sim, http) -> None:
    rc_sim.fail_next_auth("forbidden")
    status, body = await wstoken(rc_sim, http)
    assert (status, body["errorCode"], body["message"]) == (
        403,
        "InsufficientPermissions",
        "scripted auth failure",
    )
    assert (await wstoken(rc_sim, http))[0] == 200
    http_records = [r for r in rc_sim.transcript() if r["kind"] == "dialect_http"]
    assert [(r["method"], r["path"], r["status"]) for r in http_records] == [
        ("POST", "/restapi/oauth/wstoken", 403),
        ("POST", "/restapi/oauth/wstoken", 200),
    ]


def test_unknown_dialect_options_and_bad_values_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown ringcentral dialect options"):
        Simulator(dialect="ringcentral", dialect_options={"expires": 1})
    with pytest.raises(ValueError, match="expires_in must be a number > 0, got 0"):
        Simulator(dialect="ringcentral", dialect_options={"expires_in": 0})


# --- the handshake and ConnectionDetails ----------------------------------------------------------


async def test_connection_details_is_the_first_frame(rc_sim, rc_open) -> None:
    _, (meta, body) = await rc_open("alice")
    session = rc_sim.sessions()[0]
    assert meta["wsc"]["sequence"] == 1
    assert meta["wsc"]["token"] == rc_sim.core.sessions[session["id"]].recovery_token
    assert set(meta) == {"type", "messageId", "status", "headers", "wsc"}
    assert body.pop("creationTime").endswith("Z")
    assert body == {  # no recoveryState: no wsc was presented
        "maxConnectionsPerSession": 5,
        "recoveryBufferSize": 100,
        "recoveryTimeout": 180,
        "idleTimeout": 900,
        "absoluteTimeout": 86400,
        "maxActiveRequests": 10,
    }
    assert session["user"] == "alice" and session["dialect"] == "ringcentral"


async def test_a_ws_access_token_serves_until_it_expires(rc_sim, http, rc_open) -> None:
    """The SDK reuses its WSAT for every reconnect until 80 % of expires_in (index.js:239)."""
    _, grant = await wstoken(rc_sim, http)
    url = f"{grant['uri']}?access_token={grant['ws_access_token']}"
    await rc_open(url=url)
    await rc_open(url=url)
    assert len(rc_sim.sessions()) == 2


@pytest.mark.parametrize("rc_sim", [{"dialect_options": {"expires_in": 5}}], indirect=True)
async def test_an_expired_ws_access_token_is_refused(rc_sim, http, rc_open, bystander) -> None:
    _, grant = await wstoken(rc_sim, http)
    await rc_sim.clock.sleep(5.5)  # past expires_in: there is no event for a token ageing
    client, _ = await rc_open(
        url=f"{grant['uri']}?access_token={grant['ws_access_token']}", ready=False
    )
    meta, body = await client.expect("Error", status=401)
    assert body == {"errorCode": "WSG-401", "message": "Unauthorized"}
    assert "wsc" not in meta  # no session, no context
    assert await client.closed() == (1008, "access_token expired")


@pytest.mark.parametrize(
    ("query", "reason"),
    [("?access_token=nope", "unknown access_token"), ("", "no access_token in the URL")],
)
async def test_a_socket_without_a_valid_wsat_gets_401_and_a_close(
    rc_sim, rc_open, bystander, query, reason
) -> None:
    """There is no unauthenticated state: a URL without a WSAT fails like a bad one."""
    client, _ = await rc_open(url=rc_sim.url + "ws" + query, ready=False)
    _, body = await client.expect("Error", status=401)
    assert body == {"errorCode": "WSG-401", "message": "Unauthorized"}
    assert await client.closed() == (1008, reason)
    assert [s["user"] for s in rc_sim.sessions()] == ["bystander"]


async def test_fail_next_auth_at_the_socket_with_a_valid_wsat(rc_sim, http, rc_open) -> None:
    """The socket re-checks the access token behind the WSAT: a scripted failure lands here when
    the client reuses a cached WSAT."""
    _, grant = await wstoken(rc_sim, http)
    rc_sim.fail_next_auth("invalid_token")
    client, _ = await rc_open(
        url=f"{grant['uri']}?access_token={grant['ws_access_token']}", ready=False
    )
    _, body = await client.expect("Error", status=401)
    assert body == {"errorCode": "WSG-401", "message": "Unauthorized"}
    assert await client.closed() == (1008, "auth failed: invalid_token")


async def test_a_made_up_wsc_is_malformed_and_closes(rc_sim, rc_open, bystander) -> None:
    """What the real gateway does (github.com/tylerlong/rc-ws-recover-test, experiment 6)."""
    client, _ = await rc_open(wsc="made-up", ready=False)
    _, body = await client.expect("Error", status=400)
    assert body == {"errorCode": "WSG-400", "message": "Malformed WebSocket session context token"}
    assert await client.closed() == (1008, "wsc token was never issued")


# --- subscriptions and notifications --------------------------------------------------------------


async def test_issued_wsc_tokens_are_kept_only_as_long_as_the_core_remembers_sessions() -> None:
    """A long run must not keep every wsc it handed out: tokens of gone sessions beyond
    ``Config.expired_tokens_kept`` are forgotten (and would be refused as malformed)."""
    sim = Simulator(dialect="ringcentral", config=Config(expired_tokens_kept=10))
    dialect = sim.dialect
    assert isinstance(dialect, RingCentralDialect)
    tokens = [f"wsc-{n}" for n in range(2_000)]
    for n, token in enumerate(tokens):
        dialect.session_state(ev.Authenticated(f"s{n}", f"c{n}", "u", False, token, 30, 100, 180))
    assert len(dialect._issued) < 300, len(dialect._issued)
    assert all(t in dialect._issued for t in tokens[-10:])  # the newest, as the core keeps
    assert tokens[0] not in dialect._issued


async def test_subscribe_then_notifications_for_matching_filters_only(rc_sim, rc_open) -> None:
    alice, _ = await rc_open("alice")
    bob, _ = await rc_open("bob")
    sub = await alice.subscribe(MESSAGES, PRESENCE, MESSAGES)
    assert sub.pop("creationTime").endswith("Z") and sub.pop("expirationTime").endswith("Z")
    assert sub == {
        "id": "SUB-1",
        "status": "Active",
        "eventFilters": [MESSAGES, PRESENCE],
        "expiresIn": 900,
        "deliveryMode": {"transportType": "WebSocket", "encryption": False},
    }
    assert (await bob.subscribe(PRESENCE))["id"] == "SUB-2"
    assert rc_sim.publish("/restapi/v1.0/account/~/telephony/sessions", {"x": 0})["delivered"] == 0
    assert rc_sim.publish(MESSAGES, {"changes": [1]}) == {
        "delivered": 1,
        "buffered": 0,
        "overflowed": 0,
    }
    assert rc_sim.publish(PRESENCE, {"presenceStatus": "Busy"})["delivered"] == 2
    meta, body = await alice.expect("ServerNotification", status=200, headers={})
    assert meta["messageId"] == body["uuid"]
    assert body["timestamp"].endswith("Z")
    assert {k: body[k] for k in ("event", "subscriptionId", "ownerId", "body")} == {
        "event": MESSAGES,
        "subscriptionId": "SUB-1",
        "ownerId": "alice",
        "body": {"changes": [1]},
    }
    _, body = await alice.expect("ServerNotification")
    assert (body["event"], body["subscriptionId"]) == (PRESENCE, "SUB-1")
    _, bob_body = await bob.expect("ServerNotification")
    assert (bob_body["subscriptionId"], bob_body["uuid"]) == ("SUB-2", body["uuid"])
    assert alice.sequences == [1, 2, 3, 4]


async def test_put_replaces_filters_delete_ends_and_unknown_ids_are_404(rc_sim, rc_open) -> None:
    """subscription.js: PUT renews (a 404 makes the SDK POST instead); DELETE revokes."""
    client, _ = await rc_open("alice")
    await client.subscribe(MESSAGES)
    put = {"eventFilters": [PRESENCE], "deliveryMode": {"transportType": "WebSocket"}}
    assert (await client.answer(await client.request("PUT", f"{SUBSCRIPTION}/SUB-1", put)))[
        "eventFilters"
    ] == [PRESENCE]
    assert rc_sim.sessions()[0]["subscriptions"] == [PRESENCE]
    assert rc_sim.publish(MESSAGES)["delivered"] == 0
    missing = await client.answer(await client.request("PUT", f"{SUBSCRIPTION}/SUB-9", put), 404)
    assert missing["errorCode"] == "CMN-102"
    got = await client.answer(await client.request("GET", f"{SUBSCRIPTION}/SUB-1"))
    assert got["id"] == "SUB-1"
    listed = await client.answer(await client.request("GET", SUBSCRIPTION))
    assert [r["id"] for r in listed["records"]] == ["SUB-1"]
    renewed = await client.answer(await client.request("POST", f"{SUBSCRIPTION}/SUB-1/renew"))
    assert renewed["expiresIn"] == 900
    assert await client.answer(await client.request("DELETE", f"{SUBSCRIPTION}/SUB-1"), 204) is None
    assert rc_sim.sessions()[0]["subscriptions"] == []
    await client.answer(await client.request("DELETE", f"{SUBSCRIPTION}/SUB-1"), 404)
    assert (await client.subscribe(PRESENCE))["id"] == "SUB-2"
    assert (await client.subscribe(MESSAGES))["id"] == "SUB-3"  # one per session: replaced
    assert rc_sim.sessions()[0]["subscriptions"] == [MESSAGES]
    rc_sim.publish(MESSAGES, 1)
    _, body = await client.expect("ServerNotification")
    assert body["subscriptionId"] == "SUB-3"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (None, "the request body must be an object with eventFilters and deliveryMode"),
        (
            {"eventFilters": ["/a"]},
            "Parameter [deliveryMode.transportType] value is invalid: "
            "this gateway delivers over WebSocket only, got None",
        ),
        (
            {"eventFilters": ["/a"], "deliveryMode": {"transportType": "WebHook"}},
            "Parameter [deliveryMode.transportType] value is invalid: this gateway delivers over "
            "WebSocket only, got 'WebHook'",
        ),
        (
            {"eventFilters": [], "deliveryMode": {"transportType": "WebSocket"}},
            "Parameter [eventFilters] value is invalid: expected a non-empty list",
        ),
        (
            {"eventFilters": ["/a", 3], "deliveryMode": {"transportType": "WebSocket"}},
            "Parameter [eventFilters] value is invalid: every filter must be a string",
        ),
    ],
)
async def test_bad_subscription_requests_are_400(rc_sim, rc_open, body, message) -> None:
    client, _ = await rc_open("alice")
    answer = await client.answer(await client.request("POST", SUBSCRIPTION, body), 400)
    assert answer == {
        "errorCode": "CMN-101",
        "message": message,
        "errors": [{"errorCode": "CMN-101", "message": message}],
    }
    assert rc_sim.sessions()[0]["subscriptions"] == []


async def test_subscriptions_over_http_bind_to_the_users_open_session(
    rc_sim, http, rc_open
) -> None:
    base = f"{rc_sim.http_url}{SUBSCRIPTION}"
    auth = {"Authorization": "Bearer alice"}
    body = {"eventFilters": [MESSAGES], "deliveryMode": {"transportType": "WebSocket"}}
    async with http.post(base, json=body, headers=auth) as resp:
        assert resp.status == 409
        assert (await resp.json())[
            "message"
        ] == "no open WebSocket session for 'alice': connect first"
    client, _ = await rc_open("alice")
    async with http.post(base, json=body, headers=auth) as resp:
        assert (resp.status, (await resp.json())["id"]) == (200, "SUB-1")
    rc_sim.publish(MESSAGES, "over http")
    _, note = await client.expect("ServerNotification")
    assert (note["subscriptionId"], note["body"]) == ("SUB-1", "over http")
    async with http.put(f"{base}/SUB-1", json={"eventFilters": [PRESENCE]}, headers=auth) as resp:
        assert (await resp.json())["eventFilters"] == [PRESENCE]
    async with http.get(f"{base}/SUB-1", headers={"Authorization": "Bearer bob"}) as resp:
        assert resp.status == 409  # bob has no session, and SUB-1 is not his anyway
    async with http.get(base, headers=auth) as resp:
        assert [r["id"] for r in (await resp.json())["records"]] == ["SUB-1"]
    async with http.post(f"{base}/SUB-1/renew", headers=auth) as resp:
        assert resp.status == 200
    async with http.delete(f"{base}/SUB-1", headers=auth) as resp:
        assert resp.status == 204
    async with http.get(f"{base}/SUB-1", headers=auth) as resp:
        assert (resp.status, (await resp.json())["errorCode"]) == (404, "CMN-102")
    assert rc_sim.sessions()[0]["subscriptions"] == []


# --- REST over WebSocket, heartbeats --------------------------------------------------------------


async def test_rest_over_websocket_is_answered_by_on_rpc(rc_sim, rc_open) -> None:
    client, _ = await rc_open("alice")
    seen: list[Any] = []

    def call_log(params: Any) -> dict[str, Any]:
        seen.append(params)
        return {"records": []}

    rc_sim.on_rpc("GET /restapi/v1.0/account/~/extension/~", reply={"id": 101, "status": "Enabled"})
    rc_sim.on_rpc("GET /restapi/v1.0/account/~/call-log", handler=call_log)
    rc_sim.on_rpc("POST /restapi/v1.0/account/~/extension/~/sms", handler=lambda p: p["text"])
    ext = await client.answer(await client.request("GET", "/restapi/v1.0/account/~/extension/~"))
    assert ext == {"id": 101, "status": "Enabled"}
    await client.answer(
        await client.request(
            "GET", "/restapi/v1.0/account/~/call-log?view=Simple", query={"perPage": 10}
        )
    )
    assert seen == [{"perPage": 10, "view": "Simple"}]  # no body: the query is the params
    mid = await client.request("POST", "/restapi/v1.0/account/~/extension/~/sms", {"text": "hi"})
    assert await client.answer(mid) == "hi"


@pytest.mark.parametrize(
    ("error", "status", "body"),
    [
        (
            {"code": "403", "message": "no SMS for you"},
            403,
            {"errorCode": "403", "message": "no SMS for you"},
        ),
        (
            {
                "code": "InsufficientPermissions",
                "message": "needs SMS",
                "data": {"status": 403, "permissionsCode": "SMS"},
            },
            403,
            {
                "errorCode": "InsufficientPermissions",
                "message": "needs SMS",
                "permissionsCode": "SMS",
            },
        ),
        (
            {"code": "CMN-101", "data": {"errorCode": "CMN-102"}},
            400,
            {"errorCode": "CMN-102", "message": "Bad Request"},
        ),
        (
            {"code": "599", "message": "not an HTTP status the SDK knows"},
            400,
            {"errorCode": "599", "message": "not an HTTP status the SDK knows"},
        ),
        (
            {"code": "\u00b2", "message": "a digit, not ASCII"},
            400,
            {"errorCode": "\u00b2", "message": "a digit, not ASCII"},
        ),
        (
            {"code": "E", "message": "m", "data": {"message": "kept out", "code": 1}},
            400,
            {"errorCode": "E", "message": "m", "code": 1},
        ),
    ],
)
async def test_a_scripted_error_is_a_non_2xx_response(rc_sim, rc_open, error, status, body) -> None:
    client, _ = await rc_open("alice")
    rc_sim.on_rpc("POST /restapi/v1.0/account/~/extension/~/sms", error=error)
    got = await client.answer(
        await client.request("POST", "/restapi/v1.0/account/~/extension/~/sms", {"text": "x"}),
        status,
    )
    errors = got.pop("errors")
    assert got == body
    assert errors == [{"errorCode": body["errorCode"], "message": body["message"]}]


async def test_unscripted_routes_are_404_and_failing_handlers_500(rc_sim, rc_open) -> None:
    client, _ = await rc_open("alice")
    got = await client.answer(await client.request("GET", "/restapi/v1.0/dictionary/country"), 404)
    assert (got["errorCode"], got["message"]) == (
        "method_not_found",
        "no handler for method 'GET /restapi/v1.0/dictionary/country'",
    )
    rc_sim.on_rpc("GET /restapi/v1.0/boom", handler=lambda p: 1 / 0)
    got = await client.answer(await client.request("GET", "/restapi/v1.0/boom"), 500)
    assert got["errorCode"] == "handler_failed"


async def test_a_delayed_answer_comes_after_the_delay(rc_sim, rc_open) -> None:
    client, _ = await rc_open("alice")
    rc_sim.on_rpc("GET /restapi/v1.0/slow", reply={"ok": True}, delay=30)
    mid = await client.request("GET", "/restapi/v1.0/slow")
    assert await client.answer(mid) == {"ok": True}
    frames = [r for r in rc_sim.transcript() if r["kind"] == "frame" and mid in r["text"]]
    assert frames[-1]["t"] - frames[0]["t"] >= 30


async def test_heartbeat_is_answered_with_a_heartbeat(rc_sim, rc_open) -> None:
    client, _ = await rc_open("alice")
    await client.send({"type": "Heartbeat", "messageId": "hb-1"})
    meta, body = await client.expect("Heartbeat", messageId="hb-1", status=200, headers={})
    assert body is None and meta["wsc"]["sequence"] == 2
    record = await wait_for_record(
        rc_sim, lambda r: r.get("type") == "Heartbeat" and r.get("dir") == "out"
    )
    assert record["op"] == "pong"


def test_server_pings_drains_and_rooms_show_nothing_on_this_wire() -> None:
    """The SDK answers no server Heartbeat (index.js has no handler) and has no drain."""
    sim = Simulator(dialect="ringcentral")
    wire_session, _ = sim.dialect.open("c1", Handshake("/ws", {}))
    assert wire_session.encode(ev.ServerPing("srv-1")) == ()
    assert wire_session.encode(ev.DrainRequested(600, 1)) == ()
    assert wire_session.encode(ev.Left("room")) == ()
    assert RingCentralDialect.capabilities == frozenset({"pubsub", "rpc", "recovery"})


def test_every_close_reason_has_a_code_and_the_clients_faults_an_error_frame() -> None:
    sim = Simulator(dialect="ringcentral")
    wire_session, _ = sim.dialect.open("c1", Handshake("/ws", {}))
    table = {}
    for reason in CloseReason:
        closing = wire_session.close(reason, "why")
        shown = [json.loads(f.data)[1]["errorCode"] for f in closing.frames]
        table[reason.value] = (closing.code, shown)
    assert table == {
        "normal": (1000, []),
        "going_away": (1001, []),
        "policy": (1008, ["WSG-403"]),
        "auth_failed": (1008, []),  # the AuthFailed event already sent its Error frame
        "service_restart": (1012, []),
        "bad_frame": (1007, ["WSG-400"]),
        "unsupported_data": (1003, ["WSG-400"]),
        "too_big": (1009, ["WSG-413"]),
        "internal_error": (1011, ["WSG-500"]),
    }
    assert set(CLOSE_CODES) == set(CloseReason)


# --- recovery -------------------------------------------------------------------------------------


async def test_recovery_replays_what_was_buffered_and_the_sequence_goes_on(rc_sim, rc_open) -> None:
    client, (meta, _) = await rc_open("alice")
    wsc = meta["wsc"]["token"]
    await client.subscribe(MESSAGES)
    rc_sim.publish(MESSAGES, 1)
    await client.expect("ServerNotification")
    rc_sim.drop("alice")  # no close frame: the TCP connection is cut
    await wait_for_record(rc_sim, detached("s1"))
    assert rc_sim.publish(MESSAGES, 2)["buffered"] == 1
    assert rc_sim.publish(MESSAGES, 3)["buffered"] == 1
    again, (meta, body) = await rc_open("alice", wsc=wsc)
    assert (body["recoveryState"], "recoveryErrorCode" in body) == ("Successful", False)
    assert meta["wsc"] == {"token": wsc, "sequence": 4}  # 1-3 went to the first connection
    payloads = [(await again.expect("ServerNotification"))[1] for _ in range(2)]
    assert [(p["body"], p["subscriptionId"]) for p in payloads] == [(2, "SUB-1"), (3, "SUB-1")]
    assert again.sequences == [4, 5, 6]
    assert rc_sim.sessions()[0]["connections"] == 2


async def test_recovery_of_an_expired_session_fails(rc_sim, rc_open) -> None:
    client, (meta, _) = await rc_open("alice")
    await client.subscribe(MESSAGES)
    rc_sim.expire("alice")  # the open connection is closed: the session is gone
    _, body_err = await client.expect("Error", status=403)
    assert body_err == {"errorCode": "WSG-403", "message": "session expired"}
    assert await client.closed() == (1008, "session expired")
    _, (new_meta, body) = await rc_open("alice", wsc=meta["wsc"]["token"])
    assert (body["recoveryState"], body["recoveryErrorCode"]) == ("Failed", "WSG-1005")
    assert new_meta["wsc"]["token"] != meta["wsc"]["token"]
    assert new_meta["wsc"]["sequence"] == 1  # a new session counts from 1
    assert rc_sim.publish(MESSAGES)["delivered"] == 0  # its subscription went with it


@pytest.mark.parametrize("rc_sim", [{"config": Config(recovery_window=5)}], indirect=True)
async def test_recovery_after_the_window_fails(rc_sim, rc_open) -> None:
    client, (meta, body) = await rc_open("alice")
    assert body["recoveryTimeout"] == 5
    await client.ws.close()
    await wait_for_record(rc_sim, lambda r: r["kind"] == "session" and r["state"] == "expired")
    _, (_, body) = await rc_open("alice", wsc=meta["wsc"]["token"])
    assert (body["recoveryState"], body["recoveryErrorCode"]) == ("Failed", "WSG-1005")


@pytest.mark.parametrize("rc_sim", [{"config": Config(recovery_buffer_size=2)}], indirect=True)
async def test_an_overflowed_buffer_keeps_the_newest_and_still_recovers(rc_sim, rc_open) -> None:
    """RingCentral drops the oldest and calls it a success (seed 001); the core counts the loss."""
    client, (meta, _) = await rc_open("alice")
    await client.subscribe(MESSAGES)
    rc_sim.drop("alice")
    await wait_for_record(rc_sim, detached("s1"))
    counts = [rc_sim.publish(MESSAGES, n)["overflowed"] for n in range(5)]
    assert counts == [0, 0, 1, 1, 1]
    again, (_, body) = await rc_open("alice", wsc=meta["wsc"]["token"])
    assert body["recoveryState"] == "Successful" and "recoveryErrorCode" not in body
    assert [(await again.expect("ServerNotification"))[1]["body"] for _ in range(2)] == [3, 4]
    record = next(r for r in rc_sim.transcript() if r["kind"] == "recovery")
    assert (record["ok"], record["replayed"], record["lost"]) == (False, 2, 3)


async def test_another_users_wsc_fails_recovery_and_leaves_the_owner_alone(rc_sim, rc_open) -> None:
    """WSG-1003: the real gateway's answer to a wsc of another OAuth session (experiment 3)."""
    alice, (meta, _) = await rc_open("alice")
    await alice.subscribe(MESSAGES)
    _, (_, body) = await rc_open("mallory", wsc=meta["wsc"]["token"])
    assert (body["recoveryState"], body["recoveryErrorCode"]) == ("Failed", "WSG-1003")
    rc_sim.publish(MESSAGES, "still alice's")
    _, note = await alice.expect("ServerNotification")
    assert note["ownerId"] == "alice"


async def test_recovering_while_the_old_socket_lingers_closes_the_old_one(rc_sim, rc_open) -> None:
    old, (meta, _) = await rc_open("alice")
    new, (_, body) = await rc_open("alice", wsc=meta["wsc"]["token"])
    assert body["recoveryState"] == "Successful"
    _, err = await old.expect("Error", status=403)
    assert err["message"] == "session resumed on another connection"
    assert await old.closed() == (1008, "session resumed on another connection")
    assert old.sequences + new.sequences == [1, 2, 3]  # one counter for the session


async def test_request_reconnect_is_409_naming_the_dialect(rc_sim, rc_open) -> None:
    await rc_open("alice")
    with pytest.raises(ControlError) as info:
        rc_sim.request_reconnect("alice")
    assert info.value.status == 409
    assert str(info.value) == "the ringcentral dialect has no server-requested reconnect (drain)"
    runner, url = await start_http_api(rc_sim)
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{url}/request_reconnect", json={"session": "alice"}) as resp,
        ):
            assert resp.status == 409
            assert await resp.json() == {
                "error": "the ringcentral dialect has no server-requested reconnect (drain)",
                "status": 409,
            }
    finally:
        await runner.cleanup()


# --- bad input: that session only -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[{"type": "Heartbeat",',
            "frame is not valid JSON: Expecting property name enclosed in "
            "double quotes: line 1 column 23 (char 22)",
        ),
        (
            '{"type": "Heartbeat", "messageId": "m"}',
            "frame must be a JSON array [meta, body], got object",
        ),
        ("[]", "frame must be [meta] or [meta, body], got an array of 0 elements"),
        (
            '[{"type": "Heartbeat", "messageId": "m"}, {}, {}]',
            "frame must be [meta] or [meta, body], got an array of 3 elements",
        ),
        ('["Heartbeat"]', "frame's first element (meta) must be an object, got string"),
    ],
)
async def test_undecodable_frames_get_an_error_then_1007(rc_open, bystander, text, message) -> None:
    client, _ = await rc_open("alice")
    await client.ws.send(text)
    _, body = await client.expect("Error", status=400)
    assert body == {"errorCode": "WSG-400", "message": message}
    assert await client.closed() == (1007, message)


@pytest.mark.parametrize(
    ("frame", "mid", "message"),
    [
        (
            [{"type": "Teleport", "messageId": "m1"}],
            "m1",
            "unknown meta.type 'Teleport' (a client sends ClientRequest, Heartbeat)",
        ),
        (
            [{"type": "Heartbeat"}],
            None,
            "invalid 'Heartbeat' frame: messageId: missing (expected a string)",
        ),
        (
            [{"type": "ClientRequest", "method": "GET", "path": "/a"}],
            None,
            "invalid 'ClientRequest' frame: messageId: missing (expected a string)",
        ),
        (
            [{"type": "ClientRequest", "messageId": "m2", "method": 5, "path": "a", "headers": []}],
            "m2",
            "invalid 'ClientRequest' frame: method: expected an HTTP method string, got "
            "number; path: must start with '/', got 'a'; headers: expected an object, got array",
        ),
    ],
)
async def test_frames_with_wrong_fields_get_an_error_and_the_session_lives(
    rc_open, bystander, frame, mid, message
) -> None:
    client, _ = await rc_open("alice")
    await client.send(*frame)
    meta, body = await client.expect("Error", status=400)
    assert body == {"errorCode": "WSG-400", "message": message}
    if mid is not None:
        assert meta["messageId"] == mid  # rest.js settles that request with a RestException
    await client.send({"type": "Heartbeat", "messageId": "alive"})
    await client.expect("Heartbeat", messageId="alive")


async def test_binary_frames_get_an_error_then_1003(rc_open, bystander) -> None:
    client, _ = await rc_open("alice")
    await client.ws.send(b"\x01\x02")
    _, body = await client.expect("Error", status=400)
    message = "binary frames are not part of the RingCentral WebSocket protocol (JSON text only)"
    assert body == {"errorCode": "WSG-400", "message": message}
    assert await client.closed() == (1003, message)


@pytest.mark.parametrize("rc_sim", [{"config": Config(max_message_size=4096)}], indirect=True)
async def test_oversized_frames_are_closed_1009_by_the_websocket_layer(rc_open, bystander) -> None:
    """websockets enforces max_message_size before any dialect sees the frame: no Error frame."""
    client, _ = await rc_open("alice")
    await client.request("POST", "/restapi/v1.0/big", {"blob": "x" * 5000})
    assert (await client.closed())[0] == 1009


async def test_a_bad_frame_on_another_session_changes_nothing_for_the_bystander(
    rc_sim, rc_open, bystander
) -> None:
    client, _ = await rc_open("alice")
    await client.ws.send("not json")
    await client.expect("Error", status=400)
    await client.closed()
    assert [s["user"] for s in rc_sim.sessions() if s["state"] == "open"] == ["bystander"]


# --- the transcript -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rc_sim", [{"auth": AuthPolicy(tokens={"AT-secret": "alice"})}], indirect=True
)
async def test_the_transcript_masks_what_the_dialect_shows(rc_sim, http, rc_open) -> None:
    """Frame.shown masks wsc tokens, the open record the WSAT and wsc, inbound secrets are
    masked. (Live notifications: the next test.)"""
    client, (meta, _) = await rc_open("AT-secret")
    wsat = client.ws.request.path.split("access_token=")[1]
    token = meta["wsc"]["token"]
    await client.subscribe(MESSAGES)
    await client.request("GET", "/restapi/v1.0/x", headers={"Authorization": "Bearer AT-secret"})
    await client.expect("ClientRequest", status=404)
    await client.send({"type": "Heartbeat", "messageId": "h"})
    await client.expect("Heartbeat")
    rc_sim.drop("alice")
    await wait_for_record(rc_sim, detached("s1"))
    rc_sim.publish(MESSAGES, "replayed")
    again, _ = await rc_open("AT-secret", wsc=token)
    await again.expect("ServerNotification")
    shown = [r for r in rc_sim.transcript() if r["kind"] in ("frame", "open", "dialect_http")]
    text = json.dumps(shown)
    for secret in (wsat, token, "AT-secret"):
        assert secret not in text
    assert [r["path"] for r in shown if r["kind"] == "open"] == [
        "/ws?access_token=***",
        "/ws?access_token=***&wsc=***",
    ]
    outs = [r for r in shown if r.get("dir") == "out"]
    assert all('"token":"***"' in r["text"] for r in outs)
    assert [r["type"] for r in outs] == [
        "ConnectionDetails",
        "ClientRequest",
        "ClientRequest",
        "Heartbeat",
        "ConnectionDetails",
        "ServerNotification",
    ]


async def test_the_transcript_never_holds_a_wsc_token(rc_sim, rc_open) -> None:
    client, (meta, _) = await rc_open("alice")
    await client.subscribe(MESSAGES)
    rc_sim.publish(MESSAGES, "live")
    await client.expect("ServerNotification")
    await client.ws.close()
    await wait_for_record(rc_sim, detached("s1"))
    await rc_open("alice", wsc=meta["wsc"]["token"])
    assert meta["wsc"]["token"] not in json.dumps(rc_sim.transcript())


# --- the real SDK ---------------------------------------------------------------------------------

SDK_SCRIPT = r"""
'use strict';
// The real @rc-ex/ws 1.4.2 on @rc-ex/core 1.8.6, unchanged: JSON commands in on stdin, events out.
const readline = require('readline');
const RingCentral = require('@rc-ex/core').default;
const ws = require('@rc-ex/ws');
const [server, token, wscToken] = process.argv.slice(2);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const text = (e) => String((e && e.message) || e).slice(0, 600);
process.on('unhandledRejection', (e) => out({ ev: 'unhandledRejection', error: text(e) }));
const rc = new RingCentral({ server });
rc.token = { access_token: token };
const wse = new ws.default({
  restOverWebSocket: true,
  autoRecover: { enabled: true, checkInterval: () => 100 },
  wscToken: wscToken || undefined,
});
for (const name of Object.keys(ws.Events)) {
  wse.eventEmitter.on(name, (arg) => {
    const e = { ev: name };
    if (name === 'newWsc') e.sequence = arg.sequence;
    if (name === 'autoRecoverError') e.error = text(arg);
    if (name === 'connectionReady' || name.startsWith('autoRecover')) {
      const details = wse.connectionDetails || {};
      e.recoveryState = details.recoveryState || null;
      e.recoveryErrorCode = details.recoveryErrorCode || null;
    }
    out(e);
  });
}
let subscription;
const commands = {
  async install() { await rc.installExtension(wse); return {}; },
  async subscribe({ filters }) {
    subscription = await wse.subscribe(filters, (body) => out({ ev: 'notification', body }));
    return { subscriptionId: subscription.subscriptionInfo.id };
  },
  async subscriptionId() { return { subscriptionId: subscription.subscriptionInfo.id }; },
  async rest({ method, path, body }) {
    try {
      const r = await rc.request(method, path, body);
      return { status: r.status, data: r.data };
    } catch (e) {
      return { failed: e.constructor.name, status: e.response && e.response.status,
               data: e.response && e.response.data };
    }
  },
  async revoke() { await wse.revoke(); return {}; },
};
readline.createInterface({ input: process.stdin }).on('line', async (line) => {
  const { id, cmd, args } = JSON.parse(line);
  try {
    out({ ev: 'done', id, cmd, ...(await commands[cmd](args || {})) });
  } catch (e) {
    out({ ev: 'done', id, cmd, error: text(e) });
  }
});
out({ ev: 'ready' });
"""

SDK_DIR = Path(__file__).resolve().parents[2] / "drivers" / "ringcentral-sdk"


def sdk_modules() -> Path:
    """node_modules holding @rc-ex/ws 1.4.2 and @rc-ex/core 1.8.6, or skip."""
    if shutil.which("node") is None:
        needs.unavailable("node is needed to run the real RingCentral SDK")
    for candidate in (os.environ.get("SQUALL_RINGCENTRAL_SDK"), SDK_DIR / "node_modules"):
        if candidate and (Path(candidate) / "@rc-ex" / "ws" / "package.json").is_file():
            version = json.loads((Path(candidate) / "@rc-ex/ws/package.json").read_text())
            assert version["version"] == "1.4.2", version["version"]
            return Path(candidate)
    needs.unavailable(
        "no @rc-ex/ws here: npm ci in drivers/ringcentral-sdk, or SQUALL_RINGCENTRAL_SDK"
    )


class Sdk:
    """One node process running SDK_SCRIPT; every line it writes is kept in ``events``.

    Both pipes are read to their end whatever they hold (asyncio's ``Process.wait`` returns
    only once they are closed), so a failing test can never hang in its teardown.
    """

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.events: list[dict[str, Any]] = []
        self.stderr: list[str] = []
        self._changed = asyncio.Condition()
        self._ids = 0
        self._reader = asyncio.create_task(self._read())
        self._errors = asyncio.create_task(self._read_stderr())

    @classmethod
    async def start(cls, tmp_path: Path, *args: str) -> Sdk:
        script = tmp_path / "rc_sdk.js"
        script.write_text(SDK_SCRIPT)
        proc = await asyncio.create_subprocess_exec(
            "node",
            str(script),
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "NODE_PATH": str(sdk_modules())},
        )
        sdk = cls(proc)
        await sdk.wait("ready")
        return sdk

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        pending = b""
        try:
            while chunk := await self.proc.stdout.read(1 << 16):
                *lines, pending = (pending + chunk).split(b"\n")
                async with self._changed:
                    self.events.extend(json.loads(line) for line in lines if line.strip())
                    self._changed.notify_all()
        finally:
            async with self._changed:
                self._changed.notify_all()  # a waiter sees the end instead of its deadline

    async def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        while chunk := await self.proc.stderr.read(1 << 16):
            self.stderr.append(chunk.decode(errors="replace"))

    def mark(self) -> int:
        return len(self.events)

    async def wait(self, ev_name: str, since: int = 0, **fields: Any) -> dict[str, Any]:
        def match(e: dict[str, Any]) -> bool:
            return e["ev"] == ev_name and all(e.get(k) == v for k, v in fields.items())

        async def find() -> dict[str, Any]:
            async with self._changed:
                while True:
                    found = [e for e in self.events[since:] if match(e)]
                    if found:
                        return found[0]
                    if self._reader.done():
                        raise AssertionError(f"node ended: {self.events} {''.join(self.stderr)}")
                    await self._changed.wait()

        try:
            return await asyncio.wait_for(find(), DEADLINE * 2)
        except TimeoutError:
            raise AssertionError(f"no {ev_name} {fields} since {since}: {self.events}") from None

    async def cmd(self, cmd: str, **args: Any) -> dict[str, Any]:
        self._ids += 1
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"id": self._ids, "cmd": cmd, "args": args}).encode())
        self.proc.stdin.write(b"\n")
        await self.proc.stdin.drain()
        return await self.wait("done", id=self._ids)

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
        await self.proc.wait()
        await asyncio.gather(self._reader, self._errors, return_exceptions=True)


@pytest.fixture
async def sdk_sim() -> AsyncIterator[Simulator]:
    """Real time (timescale 1): the SDK's own timers are real milliseconds."""
    async with Simulator(dialect="ringcentral", dialect_options={"expires_in": 600}) as sim:
        yield sim


@pytest.fixture
async def sdk(sdk_sim: Simulator, tmp_path: Path) -> AsyncIterator[Any]:
    started: list[Sdk] = []

    async def _start(token: str = "alice", *args: str) -> Sdk:
        process = await Sdk.start(tmp_path, str(sdk_sim.http_url), token, *args)
        started.append(process)
        return process

    yield _start
    for process in started:
        await process.stop()


async def test_real_sdk_subscribe_rest_recover_and_resubscribe(sdk_sim, sdk) -> None:
    """installExtension, subscribe, notifications, REST over WS, drop -> autoRecoverSuccess with
    the replay, a 401 at the socket -> autoRecoverError then success, expire -> autoRecoverFailed
    and a new subscription, revoke -> DELETE."""
    node = await sdk("alice")
    assert "error" not in await node.cmd("install")
    await node.wait("connectionReady", recoveryState=None)
    await node.wait("newWsc", sequence=1)
    assert (await node.cmd("subscribe", filters=[MESSAGES]))["subscriptionId"] == "SUB-1"

    assert sdk_sim.publish(PRESENCE, "not subscribed")["delivered"] == 0
    sdk_sim.publish(MESSAGES, {"n": 1})
    note = (await node.wait("notification"))["body"]
    assert {k: note[k] for k in ("event", "subscriptionId", "ownerId", "body")} == {
        "event": MESSAGES,
        "subscriptionId": "SUB-1",
        "ownerId": "alice",
        "body": {"n": 1},
    }

    sdk_sim.on_rpc("GET /restapi/v1.0/account/~/extension/~", reply={"id": 101})
    assert await node.cmd("rest", method="GET", path="/restapi/v1.0/account/~/extension/~") == {
        "ev": "done",
        "id": 3,
        "cmd": "rest",
        "status": 200,
        "data": {"id": 101},
    }
    sdk_sim.on_rpc(
        "POST /restapi/v1.0/account/~/extension/~/sms",
        error={"code": "InsufficientPermissions", "data": {"status": 403}},
    )
    failed = await node.cmd(
        "rest", method="POST", path="/restapi/v1.0/account/~/extension/~/sms", body={"text": "hi"}
    )
    assert (failed["failed"], failed["status"], failed["data"]["errorCode"]) == (
        "RestException",
        403,
        "InsufficientPermissions",
    )
    failed = await node.cmd("rest", method="GET", path="/restapi/v1.0/unscripted")
    assert (failed["failed"], failed["status"]) == ("RestException", 404)

    # drop: the TCP connection is cut; a notification waits in the recovery buffer. It is big
    # (> one 64 KiB socket read) so that it reaches the SDK after it re-attached its listener:
    # a small one sent in the same read as ConnectionDetails is dropped by the SDK itself
    # (index.js:287-297 re-attaches after an await; ws 8 dispatches a read's frames at once).
    mark = node.mark()
    sdk_sim.drop("alice")
    await wait_for_record(sdk_sim, detached("s1"))
    blob = "x" * 300_000
    assert sdk_sim.publish(MESSAGES, {"n": 2, "blob": blob})["buffered"] == 1
    recovered = await node.wait("autoRecoverSuccess", mark)
    assert recovered["recoveryState"] == "Successful"
    replayed = (await node.wait("notification", mark))["body"]
    assert (replayed["subscriptionId"], replayed["body"]["n"]) == ("SUB-1", 2)
    opens = [r["path"] for r in sdk_sim.transcript() if r["kind"] == "open"]
    assert len(opens) == 2 and "&wsc=" in opens[1]
    sequences = [e["sequence"] for e in node.events if e["ev"] == "newWsc"]
    assert sequences == sorted(sequences) and len(set(sequences)) == len(sequences)

    # a scripted failure at the socket (the SDK reuses its cached WSAT): Error 401 ->
    # ConnectionException -> autoRecoverError, and the next attempt recovers
    mark = node.mark()
    sdk_sim.fail_next_auth()
    sdk_sim.drop("alice")
    error = await node.wait("autoRecoverError", mark)
    assert '"errorCode": "WSG-401"' in error["error"]
    assert (await node.wait("autoRecoverSuccess", mark))["recoveryState"] == "Successful"

    # expire: the session is gone; the SDK presents its wsc, gets Failed, POSTs a subscription
    mark = node.mark()
    sdk_sim.expire("alice")
    failed = await node.wait("autoRecoverFailed", mark)
    assert (failed["recoveryState"], failed["recoveryErrorCode"]) == ("Failed", "WSG-1005")
    assert (await node.cmd("subscriptionId"))["subscriptionId"] == "SUB-2"
    sdk_sim.publish(MESSAGES, {"n": 3})
    note = (await node.wait("notification", mark))["body"]
    assert (note["subscriptionId"], note["body"]) == ("SUB-2", {"n": 3})

    with pytest.raises(ControlError, match="ringcentral dialect has no server-requested"):
        sdk_sim.request_reconnect("alice")
    await node.cmd("revoke")
    delete = await wait_for_record(
        sdk_sim, lambda r: r.get("dir") == "in" and '"DELETE"' in r.get("text", "")
    )
    assert "/restapi/v1.0/subscription/SUB-2" in delete["text"]
    assert not [e for e in node.events if e["ev"] == "unhandledRejection"]


async def test_real_sdk_fetches_a_new_wstoken_when_its_wsat_ages(tmp_path) -> None:
    """expires_in 1 s: the SDK keeps its WSAT for 0.8 s (index.js:239-243), then POSTs again.
    A 401 on that POST during auto-recovery escapes the SDK (index.js:135-137): an unhandled
    rejection, and no retry ever after (index.js:124 cleared the interval)."""
    async with Simulator(dialect="ringcentral", dialect_options={"expires_in": 1}) as sim:
        node = await Sdk.start(tmp_path, str(sim.http_url), "alice")
        try:
            await node.cmd("install")
            await node.cmd("subscribe", filters=[MESSAGES])
            await sim.clock.sleep(0.9)  # the SDK's token cache ages on its own clock: no event
            mark = node.mark()
            sim.drop("alice")
            await node.wait("autoRecoverSuccess", mark)
            posts = [r for r in sim.transcript() if r["kind"] == "dialect_http"]
            assert [(r["path"], r["status"]) for r in posts] == [
                ("/restapi/oauth/wstoken", 200),
                ("/restapi/oauth/wstoken", 200),
            ]

            await sim.clock.sleep(0.9)
            mark = node.mark()
            sim.fail_next_auth()
            sim.drop("alice")
            crash = await node.wait("unhandledRejection", mark)
            assert crash["error"].startswith("HTTP 401 Unauthorized - scripted auth failure")
            # a negative: ten check intervals (100 ms each) pass without another attempt
            await sim.clock.sleep(1.0)
            posts = [r for r in sim.transcript() if r["kind"] == "dialect_http"]
            assert [r["status"] for r in posts] == [200, 200, 401]
            assert not [e for e in node.events[mark:] if e["ev"].startswith("autoRecover")]
        finally:
            await node.stop()


async def test_real_sdk_install_rejects_on_a_wstoken_401(sdk_sim, sdk) -> None:
    sdk_sim.fail_next_auth("invalid_token")
    node = await sdk("alice")
    done = await node.cmd("install")
    assert done["error"].startswith("HTTP 401 Unauthorized - scripted auth failure")


async def test_real_sdk_with_a_made_up_wsc_token_never_connects_plain(sdk_sim, sdk) -> None:
    """wscToken: the SDK recovers, but with no ConnectionDetails yet it never falls back to a
    plain connect (index.js:186-201): every attempt presents the same wsc, gets WSG-400."""
    node = await sdk("alice", "made-up")
    await node.cmd("install")
    for _ in range(3):
        mark = node.mark()
        error = await node.wait("autoRecoverError", mark)
        assert '"errorCode": "WSG-400"' in error["error"]
    opens = [r["path"] for r in sdk_sim.transcript() if r["kind"] == "open"]
    assert len(opens) >= 3 and all(p.endswith("&wsc=***") for p in opens)  # masked
