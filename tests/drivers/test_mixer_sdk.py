"""drivers/mixer-sdk: the real @mixer/client-node 3.5.0 driven through the driver protocol,
against a small Mixer chat server written here (seed-protocols.md section 4)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from .helpers import COMMANDS, DRIVERS, NodeDriver, npm_ci

MIXER = DRIVERS / "mixer-sdk"
GOOD_KEY = "good-authkey-1234"
TIMESCALE = 0.1  # the SDK's 5 s welcome timeout is 0.5 s real: enough for a loaded machine


@pytest.fixture(scope="session")
def mixer_modules():
    return npm_ci(MIXER, "@mixer/client-node")


class FakeChat:
    """WelcomeEvent on open; `method` packets answered with `reply` packets; `event` pushes."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.packets: list[dict[str, Any]] = []
        self.conns: set[ServerConnection] = set()
        self.server: Any = None
        self.url = ""

    async def __aenter__(self) -> FakeChat:
        self.server = await serve(self.handler, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}/chat"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def handler(self, ws: ServerConnection) -> None:
        self.paths.append(ws.request.path)
        self.conns.add(ws)
        try:
            await ws.send(json.dumps({"type": "event", "event": "WelcomeEvent", "data": {}}))
            async for text in ws:
                packet = json.loads(text)
                self.packets.append(packet)
                await self.answer(ws, packet)
        finally:
            self.conns.discard(ws)

    async def answer(self, ws: ServerConnection, packet: dict[str, Any]) -> None:
        method, args, ref = packet["method"], packet["arguments"], packet["id"]

        async def reply(data: Any = None, error: Any = None) -> None:
            await ws.send(json.dumps({"type": "reply", "id": ref, "error": error, "data": data}))

        if method == "auth":
            key = args[2]
            if key is None or key == GOOD_KEY:
                await reply({"authenticated": key is not None, "roles": ["User"] if key else []})
            else:
                await reply(error="UNOTFOUND")
        elif method == "msg":
            await reply({"ok": True})
            await self.publish(
                "ChatMessage",
                {
                    "channel": 1,
                    "user_id": 456,
                    "user_name": "alice",
                    "message": {"message": [{"type": "text", "text": args[0]}], "meta": {}},
                },
            )
        elif method == "explode":
            await reply(error={"code": 4003, "message": "no such thing", "stacktrace": []})
        # "hang": never answered

    async def publish(self, event: str, data: Any) -> None:
        for ws in list(self.conns):
            await ws.send(json.dumps({"type": "event", "event": event, "data": data}))

    def methods(self, name: str) -> list[dict[str, Any]]:
        return [p for p in self.packets if p.get("method") == name]


@pytest.fixture
async def chat():
    async with FakeChat() as server:
        yield server


@pytest.fixture
async def driver(mixer_modules):
    proc = NodeDriver(MIXER / "driver.js", timescale=TIMESCALE)
    yield proc
    assert await proc.stop() == 0, proc.tail()


async def test_driver_ready_lists_the_commands(driver):
    ready = await driver.start()
    assert set(ready["data"]["commands"]) == COMMANDS
    assert ready["t"] == 0
    assert ready["data"]["timescale"] == TIMESCALE
    unknown = await driver.command("join_room", {"room": "lobby"})
    assert unknown["ok"] is False and unknown["type"] == "UnknownCommand"


async def test_connect_subscribe_notification_and_calls(driver, chat):
    await driver.start()
    reply = await driver.command(
        "connect",
        {
            "url": chat.url,
            "token": GOOD_KEY,
            "user": 456,
            "mixer": {"channel_id": 7, "client_id": "cid"},
        },
    )
    assert reply["ok"], reply
    assert reply["result"]["status"] == "connected"
    assert reply["result"]["sdk_status_name"] == "CONNECTED"
    assert chat.paths == ["/chat?version=1.0&Client-ID=cid"]
    assert chat.methods("auth")[0]["arguments"] == [7, 456, GOOD_KEY, None]
    authenticated = await driver.event("authenticated")
    assert authenticated["data"]["authenticated"] is True
    assert (await driver.event("connected"))["data"]["url"] == chat.url

    assert (await driver.command("subscribe", {"topics": ["ChatMessage"]}))["result"] == [
        "ChatMessage"
    ]
    answered = await driver.command("call", {"method": "msg", "params": "hello"})  # wrapped
    assert answered == {"reply": answered["reply"], "ok": True, "result": {"ok": True}}
    note = await driver.event("notification")
    assert note["data"]["topic"] == "ChatMessage"
    assert note["data"]["payload"]["message"]["message"][0]["text"] == "hello"

    remote = await driver.command("call", {"method": "explode", "params": []})
    assert remote["ok"] is False and remote["type"] == "RemoteError"
    assert "4003" in remote["error"] and "no such thing" in remote["error"]
    # protocol seconds: 1 s is 0.1 s of wall time here
    late = await driver.command("call", {"method": "hang", "params": [], "timeout": 1})
    assert late["ok"] is False and late["type"] == "CallTimeout"

    sent = [e["text"] for e in driver.events("sent")]
    assert any('"method":"msg"' in text for text in sent)
    assert any(e["type"] == "reply" for e in driver.events("packet"))
    assert driver.events("sdk.WelcomeEvent") == [{}]  # raw SDK events are forwarded too

    gone = await driver.command("disconnect")
    assert gone["ok"] and gone["result"]["status"] == "closed"
    assert driver.events("disconnected")[-1]["reconnecting"] is False
    assert driver.events("closed")[-1]["reason"] == "client disconnect"
    assert GOOD_KEY not in driver.output()  # the authkey never leaves the driver


async def test_auth_failure_is_reported_as_auth_failed(driver, chat):
    await driver.start()
    reply = await driver.command("connect", {"url": chat.url, "token": "wrong-key-5678", "user": 1})
    assert reply["ok"] is False and reply["type"] == "AuthFailed", reply
    assert "UNOTFOUND" in reply["error"]
    failed = await driver.event("auth_failed")
    assert failed["data"]["reason"] == "UNOTFOUND"
    # the SDK closes for good after a failed auth during unspool (seed-protocols.md section 4)
    closed = await driver.event("closed")
    assert closed["data"]["error"] == "AuthFailed"
    assert (await driver.command("status"))["result"]["status"] == "closed"
    assert len(chat.paths) == 1
    assert not driver.events("reconnecting")


async def test_a_call_before_connect_is_spooled_and_sent_after_auth(driver, chat):
    await driver.start()
    assert (await driver.command("configure", {"url": chat.url}))["ok"]
    early = driver.send("call", {"method": "msg", "params": ["early"]})
    spooled = await driver.event("spooled")
    assert spooled["data"]["method"] == "msg"
    assert (await driver.command("connect", {"url": chat.url}))["ok"]  # anonymous
    assert (await driver.reply(early))["result"] == {"ok": True}
    # the remembered auth goes first, then the spool; ids were taken at call() time
    assert [(p["method"], p["id"]) for p in chat.packets] == [("auth", 1), ("msg", 0)]
    assert chat.packets[0]["arguments"] == [1, None, None, None]


async def test_reconnect_command_and_a_server_drop(driver, chat):
    await driver.start()
    assert (await driver.command("connect", {"url": chat.url}))["ok"]  # anonymous

    mark = len(driver.lines)
    back = await driver.command("reconnect")
    assert back["ok"] and back["result"]["status"] == "connected", back
    dropped = await driver.event("disconnected", start=mark)
    assert dropped["data"]["reconnecting"] is True
    retry = await driver.event("reconnecting", start=mark)
    assert retry["data"]["delay"] in (0.5, 1.0)  # 500 * 2^(0 + round(random())) ms
    # the SDK's timer and the event clock both run in protocol time
    again = await driver.event("connected", start=mark)
    assert again["t"] - retry["t"] >= retry["data"]["delay"] * 0.9
    assert len(chat.paths) == 2 and len(chat.methods("auth")) == 2  # auth replayed

    mark = len(driver.lines)
    for ws in list(chat.conns):
        await ws.close(1011, "server restart")
    await driver.event("connected", start=mark)
    dropped = await driver.event("disconnected", start=mark)
    assert dropped["data"]["code"] == 1011 and dropped["data"]["reconnecting"] is True
    assert len(chat.methods("auth")) == 3
