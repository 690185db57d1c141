"""drivers/ringcentral-sdk: the real @rc-ex/ws 1.4.2 (on @rc-ex/core 1.8.6) driven through the
driver protocol, against a small RingCentral WebSocket gateway written here (seed-protocols.md
section 2): aiohttp for POST /restapi/oauth/wstoken, websockets for the [meta, body] frames."""

from __future__ import annotations

import itertools
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import web
from websockets.asyncio.server import ServerConnection, serve

from .helpers import COMMANDS, DRIVERS, NodeDriver, npm_ci

RINGCENTRAL = DRIVERS / "ringcentral-sdk"
ACCESS_TOKEN = "access-token-good-0001"
REFUSED_BY_GATEWAY = "access-token-revoked-02"  # wstoken works, the WebSocket answers Error 401
WS_TOKEN = "WSAT-good-0001"
WSC_TOKEN = "WSC-secret-token-77"
TIMESCALE = 0.1


@pytest.fixture(scope="session")
def ringcentral_modules():
    return npm_ci(RINGCENTRAL, "@rc-ex/ws")


class FakeGateway:
    """The REST prelude and the WebSocket gateway, with one subscription SUB-1."""

    def __init__(self) -> None:
        self.ws_paths: list[str] = []
        self.frames: list[list[Any]] = []
        self.conns: set[ServerConnection] = set()
        self.sequence = itertools.count(1)
        self.server: Any = None
        self.runner: web.AppRunner | None = None
        self.http = ""
        self.ws_url = ""

    async def __aenter__(self) -> FakeGateway:
        self.server = await serve(self.handler, "127.0.0.1", 0)
        self.ws_url = f"ws://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/ws"
        app = web.Application()
        app.router.add_post("/restapi/oauth/wstoken", self.wstoken)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.http = f"http://127.0.0.1:{self.runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()
        assert self.runner is not None
        await self.runner.cleanup()

    async def wstoken(self, request: web.Request) -> web.Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token not in (ACCESS_TOKEN, REFUSED_BY_GATEWAY):
            return web.json_response(
                {"errorCode": "OAU-149", "message": "Invalid token"}, status=401
            )
        ws_token = WS_TOKEN if token == ACCESS_TOKEN else "WSAT-refused-03"
        return web.json_response(
            {"uri": self.ws_url, "ws_access_token": ws_token, "expires_in": 600}
        )

    def meta(self, kind: str, message_id: str, status: int = 200) -> dict[str, Any]:
        wsc = {"token": WSC_TOKEN, "sequence": next(self.sequence)}
        return {"type": kind, "messageId": message_id, "status": status, "headers": {}, "wsc": wsc}

    async def handler(self, ws: ServerConnection) -> None:
        self.ws_paths.append(ws.request.path)
        query = parse_qs(urlsplit(ws.request.path).query)
        if query.get("access_token") != [WS_TOKEN]:
            error = {"type": "Error", "messageId": "e1", "status": 401, "headers": {}}
            await ws.send(json.dumps([error, {"errorCode": "WSG-401", "message": "Unauthorized"}]))
            await ws.close(1008, "unauthorized")
            return
        details = {
            "creationTime": "2026-01-01T00:00:00Z",
            "maxConnectionsPerSession": 5,
            "recoveryBufferSize": 100,
            "recoveryTimeout": 180,
            "idleTimeout": 900,
            "absoluteTimeout": 86400,
            "maxActiveRequests": 10,
        }
        if "wsc" in query:
            details["recoveryState"] = "Successful" if query["wsc"] == [WSC_TOKEN] else "Failed"
        self.conns.add(ws)
        try:
            await ws.send(json.dumps([self.meta("ConnectionDetails", "cd1"), details]))
            async for text in ws:
                frame = json.loads(text)
                self.frames.append(frame)
                await self.answer(ws, frame[0], frame[1] if len(frame) > 1 else None)
        finally:
            self.conns.discard(ws)

    async def answer(self, ws: ServerConnection, meta: dict[str, Any], body: Any) -> None:
        if meta["type"] == "Heartbeat":
            await ws.send(
                json.dumps([{"type": "Heartbeat", "messageId": meta["messageId"], "status": 200}])
            )
            return
        route, ref = (meta["method"], meta["path"]), meta["messageId"]
        if route == ("POST", "/restapi/v1.0/subscription"):
            status, out = (
                200,
                {
                    "id": "SUB-1",
                    "status": "Active",
                    "eventFilters": body["eventFilters"],
                    "deliveryMode": body["deliveryMode"],
                },
            )
        elif route == ("DELETE", "/restapi/v1.0/subscription/SUB-1"):
            status, out = 200, None
        elif route == ("GET", "/restapi/v1.0/account/~"):
            status, out = 200, {"id": "12345", "status": "Confirmed", "query": meta.get("query")}
        else:
            status, out = 404, {"errorCode": "CMN-102", "message": "Resource not found"}
        frame = [self.meta("ClientRequest", ref, status)] + ([] if out is None else [out])
        await ws.send(json.dumps(frame))

    async def publish(self, event: str, body: Any) -> None:
        note = {
            "uuid": "n-1",
            "event": event,
            "timestamp": "2026-01-01T00:00:01Z",
            "subscriptionId": "SUB-1",
            "ownerId": "1",
            "body": body,
        }
        for ws in list(self.conns):
            await ws.send(json.dumps([self.meta("ServerNotification", "n-1"), note]))

    def requests(self, method: str) -> list[dict[str, Any]]:
        return [f[0] for f in self.frames if f[0].get("method") == method]


@pytest.fixture
async def gateway():
    async with FakeGateway() as server:
        yield server


@pytest.fixture
async def driver(ringcentral_modules):
    proc = NodeDriver(RINGCENTRAL / "driver.js", timescale=TIMESCALE)
    yield proc
    assert await proc.stop() == 0, proc.tail()


def assert_no_secrets(driver: NodeDriver) -> None:
    out = driver.output()
    for secret in (ACCESS_TOKEN, WS_TOKEN, WSC_TOKEN):
        assert secret not in out


async def test_driver_ready_lists_the_commands(driver):
    ready = await driver.start()
    assert set(ready["data"]["commands"]) == COMMANDS
    assert ready["t"] == 0
    early = await driver.command("subscribe", {"topics": ["/restapi/v1.0/account/~/presence"]})
    assert early["ok"] is False and early["type"] == "NotConnected"


async def test_connect_subscribe_notification_and_rest_over_websocket(driver, gateway):
    await driver.start()
    reply = await driver.command("connect", {"server": gateway.http, "token": ACCESS_TOKEN})
    assert reply["ok"], reply
    assert reply["result"]["status"] == "connected"
    assert gateway.ws_paths == [f"/ws?access_token={WS_TOKEN}"]
    assert (await driver.event("connected"))["data"]["url"] == gateway.ws_url
    assert (await driver.event("sdk.newWsc"))["data"]["token"] == "***"

    topic = "/restapi/v1.0/account/~/extension/~/presence"
    subscribed = await driver.command("subscribe", {"topics": [topic]})
    assert subscribed["ok"] and subscribed["result"] == [topic], subscribed
    posted = gateway.requests("POST")[0]
    assert posted["path"] == "/restapi/v1.0/subscription"
    await gateway.publish(topic, {"presenceStatus": "Available"})
    note = await driver.event("notification")
    assert note["data"] == {
        "topic": topic,
        "payload": {"presenceStatus": "Available"},
        "subscription": "SUB-1",
        "uuid": "n-1",
    }

    account = await driver.command(
        "call", {"method": "GET /restapi/v1.0/account/~", "params": {"view": "full"}}
    )
    assert account["ok"], account
    assert account["result"]["id"] == "12345"
    assert account["result"]["query"] == {"view": "full"}  # GET params travel as the query
    missing = await driver.command("call", {"method": "GET /restapi/v1.0/nothing"})
    assert missing["ok"] is False and missing["type"] == "RemoteError"
    assert "404" in missing["error"] and "CMN-102" in missing["error"]

    gone = await driver.command("disconnect")
    assert gone["ok"] and gone["result"]["status"] == "closed", gone
    assert gateway.requests("DELETE")[0]["path"] == "/restapi/v1.0/subscription/SUB-1"
    assert driver.events("disconnected")[-1]["reconnecting"] is False
    assert driver.events("closed")[-1]["reason"] == "client disconnect"
    assert_no_secrets(driver)


async def test_wstoken_401_is_auth_failed(driver, gateway):
    await driver.start()
    reply = await driver.command("connect", {"server": gateway.http, "token": "not-a-valid-token"})
    assert reply["ok"] is False and reply["type"] == "AuthFailed", reply
    assert "401" in reply["error"]
    await driver.event("closed")
    assert gateway.ws_paths == []


async def test_gateway_error_401_is_auth_failed(driver, gateway):
    await driver.start()
    reply = await driver.command("connect", {"server": gateway.http, "token": REFUSED_BY_GATEWAY})
    assert reply["ok"] is False and reply["type"] == "AuthFailed", reply
    assert "WSG-401" in reply["error"]
    assert (await driver.event("auth_failed"))["data"]["reason"] == "WSG-401"


async def test_reconnect_presents_the_wsc_token_and_recovers(driver, gateway):
    await driver.start()
    connected = await driver.command(
        "connect",
        {
            "server": gateway.http,
            "token": ACCESS_TOKEN,
            "ringcentral": {"check_interval": 0.5},
        },
    )
    assert connected["ok"], connected
    mark = len(driver.lines)
    back = await driver.command("reconnect")
    assert back["ok"] and back["result"]["status"] == "connected", back
    assert (await driver.event("disconnected", start=mark))["data"]["reconnecting"] is True
    await driver.event("recovered", start=mark)
    assert gateway.ws_paths[-1] == f"/ws?access_token={WS_TOKEN}&wsc={WSC_TOKEN}"
    assert back["result"]["recovery_state"] == "Successful"
    assert_no_secrets(driver)
