"""The genesys dialect (seed 000) over loopback: the codec, the wire with raw aiohttp and
websockets clients, then the real, unchanged genesys-cloud-streaming-client 14.2.1 and 19.4.1
through drivers/genesys-sdk."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from squall.clock import LoopClock
from squall.protocol import genesys as x
from squall.protocol.errors import UnsupportedFrame
from squall.secrets import Secrets
from squall.simulator import Config, Simulator
from tests.drivers.helpers import DRIVERS, NodeDriver, npm_ci

from .conftest import DEADLINE, TIMESCALE, wait_for_record

TOKEN = "alice-access-token-0001"
TOPIC = "v2.users.alice.presence"

# --- the codec -----------------------------------------------------------------------------------


def test_parse_reads_one_namespaced_element() -> None:
    el = x.parse('<iq xmlns="jabber:client" type="get" id="1"><ping xmlns="urn:xmpp:ping"/></iq>')
    assert (el.ns, el.name, el.get("type")) == (x.NS_CLIENT, "iq", "get")
    ping = el.child("ping", x.NS_PING)
    assert ping is not None and ping.children == []


@pytest.mark.parametrize(
    ("text", "condition", "words"),
    [
        (
            '<!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
            '<x xmlns="jabber:client">&b;</x>',
            "restricted-xml",
            "DOCTYPE",
        ),
        ('<x xmlns="jabber:client"><!-- hi --></x>', "restricted-xml", "comment"),
        ('<x xmlns="jabber:client"><?pi data?></x>', "restricted-xml", "processing instruction"),
        ('<x xmlns="jabber:client">&unknown;</x>', "not-well-formed", "undefined entity"),
        ('<iq xmlns="jabber:client"><open>', "not-well-formed", "line 1"),
        ('<a xmlns="jabber:client"/><b xmlns="jabber:client"/>', "not-well-formed", "one complete"),
        ("", "not-well-formed", "XML"),
    ],
)
def test_parse_refuses_what_xmpp_forbids(text: str, condition: str, words: str) -> None:
    with pytest.raises(x.StreamError) as err:
        x.parse(text)
    assert err.value.condition == condition
    assert words in str(err.value)


def test_parse_bounds_size_and_depth_and_refuses_binary() -> None:
    with pytest.raises(x.StreamError, match="over this server's 300") as err:
        x.parse('<x xmlns="jabber:client">' + "a" * 400 + "</x>", max_size=300)
    assert err.value.condition == "policy-violation"
    with pytest.raises(x.StreamError, match="deeper") as err:
        x.parse("<a>" * 40 + "</a>" * 40)
    assert err.value.condition == "policy-violation"
    with pytest.raises(UnsupportedFrame, match="text only"):
        x.parse(b"<open/>")


def test_plain_credentials_and_combined_topics() -> None:
    payload = base64.b64encode(b"\0alice@squall.test\0authKey:T").decode()
    assert x.plain_credentials(payload) == ("", "alice@squall.test", "authKey:T")
    for bad, condition in (("not base64!", "incorrect-encoding"), ("YWJj", "malformed-request")):
        with pytest.raises(ValueError) as err:
            x.plain_credentials(bad)
        assert err.value.args[0] == condition
    assert x.split_topics("v2.users.u1?presence&routingStatus") == [
        "v2.users.u1.presence",
        "v2.users.u1.routingStatus",
    ]
    with pytest.raises(ValueError, match="not a topic"):
        x.split_topics("v2 users")


def test_encoders_escape_and_parse_back() -> None:
    event = x.pubsub_event("v2.t", '{"a":"<&>"}', "i1", frm="notifications.h", to="a@d/r")
    el = x.parse(event)
    items = el.child("event", x.NS_PUBSUB_EVENT).child("items")  # type: ignore[union-attr]
    assert items is not None and items.get("node") == "v2.t"
    assert items.children[0].children[0].text == '{"a":"<&>"}'
    err = x.parse(x.stream_error("policy-violation", "too <big>"))
    assert err.child("policy-violation", x.NS_STREAMS) is not None


# --- the wire, by hand ---------------------------------------------------------------------------


class Xmpp:
    """A raw XMPP-over-WebSocket client: each message one element, checked by the codec."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def send(self, text: str) -> None:
        await self.ws.send(text)

    async def recv(self) -> x.Element:
        text = await asyncio.wait_for(self.ws.recv(), DEADLINE)
        assert isinstance(text, str)
        return x.parse(text)

    async def expect(self, name: str, ns: str | None = None) -> x.Element:
        el = await self.recv()
        assert el.name == name and (ns is None or el.ns == ns), f"expected <{name}>, got {el}"
        return el

    async def open(self) -> x.Element:
        await self.send(f'<open xmlns="{x.NS_FRAMING}" to="squall.test" version="1.0"/>')
        await self.expect("open", x.NS_FRAMING)
        return await self.expect("features", x.NS_STREAM)

    async def auth(self, token: str = TOKEN, user: str = "alice@squall.test") -> x.Element:
        payload = base64.b64encode(f"\0{user}\0authKey:{token}".encode()).decode()
        await self.send(f'<auth xmlns="{x.NS_SASL}" mechanism="PLAIN">{payload}</auth>')
        return await self.recv()

    async def login(self) -> str:
        features = await self.open()
        assert features.child("mechanisms", x.NS_SASL) is not None
        assert (await self.auth()).name == "success"
        assert (await self.open()).child("bind", x.NS_BIND) is not None
        await self.send(
            f'<iq xmlns="jabber:client" type="set" id="b1"><bind xmlns="{x.NS_BIND}">'
            "<resource>r1</resource></bind></iq>"
        )
        bound = await self.expect("iq")
        jid = bound.child("bind", x.NS_BIND).child("jid")  # type: ignore[union-attr]
        assert jid is not None
        return jid.text

    async def closed(self) -> tuple[list[x.Element], int | None]:
        """Everything the server sent until it closed, and its close code."""
        seen: list[x.Element] = []
        try:
            while True:
                seen.append(await self.recv())
        except ConnectionClosed as exc:
            return seen, exc.rcvd.code if exc.rcvd else None


@pytest.fixture
async def gsim() -> AsyncIterator[Simulator]:
    sim = Simulator(
        clock=LoopClock(timescale=TIMESCALE),
        # a loaded machine must not meet the auth timeout before the test's own frames
        config=Config(auth_timeout=600.0),
        dialect="genesys",
        dialect_options={"server_ping_interval": 5.0, "max_stanza_size": 2048},
    )
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


async def channel(sim: Simulator, token: str = TOKEN) -> str:
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{sim.http_url}/api/v2/users/me", headers=headers) as r:
            assert r.status == 200, await r.text()
            assert (await r.json())["chat"]["jabberId"] == "alice-access-token-0001@squall.test"
        url = f"{sim.http_url}/api/v2/notifications/channels?connectionType=streaming"
        async with http.post(url, headers=headers) as r:
            assert r.status == 200
            return str((await r.json())["id"])


async def stream(sim: Simulator, channel_id: str) -> Xmpp:
    ws = await connect(f"{sim.url}stream/channels/{channel_id}", subprotocols=["xmpp"])  # type: ignore[list-item]
    assert ws.subprotocol == "xmpp"
    return Xmpp(ws)


async def test_prelude_stream_subscribe_publish_and_pings(gsim: Simulator) -> None:
    gsim.core.transcript.secrets = Secrets()
    cid = await channel(gsim)
    client = await stream(gsim, cid)
    jid = await client.login()
    assert jid.endswith("@squall.test/r1")
    await client.send(
        f'<iq xmlns="jabber:client" type="set" id="s1" to="notifications.h">'
        f'<pubsub xmlns="{x.NS_PUBSUB}"><subscribe node="{TOPIC}" jid="a@squall.test"/>'
        "</pubsub></iq>"
    )
    result = await client.expect("iq")
    sub = result.child("pubsub", x.NS_PUBSUB).child("subscription")  # type: ignore[union-attr]
    assert sub is not None and sub.attrs == {
        "node": TOPIC,
        "jid": "a@squall.test",
        "subscription": "subscribed",
    }
    # the HTTP subscription API reaches the same session
    async with aiohttp.ClientSession() as http:
        url = f"{gsim.http_url}/api/v2/notifications/channels/{cid}/subscriptions"
        body = [{"id": "v2.users.alice?geo&routingStatus"}]
        async with http.put(url, json=body, headers={"Authorization": f"Bearer {TOKEN}"}) as r:
            assert r.status == 200
            ids = [e["id"] for e in (await r.json())["entities"]]
    # PUT replaced the set, the XMPP subscription included
    assert ids == ["v2.users.alice.geo", "v2.users.alice.routingStatus"]
    assert gsim.publish(TOPIC, {"n": 0})["delivered"] == 0
    assert gsim.publish("v2.users.alice.geo", {"n": 1})["delivered"] == 1
    event = await client.expect("message")
    items = event.child("event", x.NS_PUBSUB_EVENT).child("items")  # type: ignore[union-attr]
    assert items is not None and items.get("node") == "v2.users.alice.geo"
    assert items.children[0].children[0].text == (
        '{"topicName":"v2.users.alice.geo","version":"2","eventBody":{"n":1}}'
    )
    assert event.get("from") == "notifications.h"
    # a client ping is answered
    await client.send(
        f'<iq xmlns="jabber:client" type="get" id="p1"><ping xmlns="{x.NS_PING}"/></iq>'
    )
    pong = await client.expect("iq")
    assert (pong.get("type"), pong.get("id")) == ("result", "p1")
    # server pings start once the client asks for them, and its answer is a pong
    await client.send(
        f'<iq xmlns="jabber:client" type="set" id="s2"><pubsub xmlns="{x.NS_PUBSUB}">'
        f'<subscribe node="enable.server.side.pings" jid="a@squall.test"/></pubsub></iq>'
    )
    assert (await client.expect("iq")).get("id") == "s2"
    ping = await client.expect("iq")
    assert ping.get("type") == "get" and ping.child("ping", x.NS_PING) is not None
    await client.send(f'<iq xmlns="jabber:client" type="result" id="{ping.get("id")}"/>')
    await wait_for_record(gsim, lambda r: r.get("op") == "pong" and r.get("dir") == "in")
    # no credential in the transcript: neither the token nor the PLAIN payload
    text = gsim.core.transcript.to_jsonl()
    plain = base64.b64encode(f"\0alice@squall.test\0authKey:{TOKEN}".encode()).decode()
    assert TOKEN not in text and plain not in text and "authKey" not in text
    await client.ws.close()


async def test_a_reconnect_on_the_same_channel_keeps_its_subscriptions(gsim: Simulator) -> None:
    cid = await channel(gsim)
    first = await stream(gsim, cid)
    await first.login()
    await first.send(
        f'<iq xmlns="jabber:client" type="set" id="s1"><pubsub xmlns="{x.NS_PUBSUB}">'
        f'<subscribe node="{TOPIC}"/></pubsub></iq>'
    )
    await first.expect("iq")
    await first.ws.close()
    second = await stream(gsim, cid)
    await second.login()
    assert len(gsim.sessions()) == 1
    assert gsim.publish(TOPIC, {"n": 2})["delivered"] == 1
    assert (await second.expect("message")).child("event", x.NS_PUBSUB_EVENT) is not None
    # the channel is gone once its session is: not-authorized, which v14 reads as "expired"
    gsim.expire("alice-access-token-0001")
    seen, _ = await second.closed()
    assert [e.name for e in seen][-2:] == ["error", "close"]
    third = await stream(gsim, cid)
    await third.open()
    failure = await third.auth()
    assert failure.name == "failure" and failure.child("not-authorized") is not None
    assert "is gone" in failure.child("text").text  # type: ignore[union-attr]
    seen, code = await third.closed()
    assert [e.name for e in seen] == ["close"] and code == 1008


async def test_sasl_failures_and_http_auth(gsim: Simulator) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"{gsim.http_url}/api/v2/users/me") as r:
        assert r.status == 401 and (await r.json())["code"] == "authentication.required"
    gsim.revoke_token("revoked-token-0002")
    async with aiohttp.ClientSession() as http:
        headers = {"Authorization": "Bearer revoked-token-0002"}
        async with http.post(
            f"{gsim.http_url}/api/v2/notifications/channels", headers=headers
        ) as r:
            assert r.status == 401
    cid = await channel(gsim)
    gsim.fail_next_auth("invalid_token")  # for the streaming authentication, not the prelude
    client = await stream(gsim, cid)
    await client.open()
    failure = await client.auth()
    assert failure.ns == x.NS_SASL and failure.child("not-authorized") is not None
    seen, _ = await client.closed()
    assert [e.name for e in seen] == ["close"]
    unknown = await stream(gsim, "streaming-nope")
    await unknown.open()
    failure = await unknown.auth()
    assert "never created" in failure.child("text").text  # type: ignore[union-attr]


async def test_scripted_http_failure_carries_retry_after(gsim: Simulator) -> None:
    gsim.on_rpc(
        "POST /api/v2/notifications/channels",
        error={"code": "503", "message": "busy", "data": {"retry_after": 3}},
        times=1,
    )
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession() as http:
        url = f"{gsim.http_url}/api/v2/notifications/channels"
        async with http.post(url, headers=headers) as r:
            assert r.status == 503 and r.headers["Retry-After"] == "3"
        async with http.post(url, headers=headers) as r:
            assert r.status == 200


@pytest.mark.parametrize(
    ("frames", "condition"),
    [
        (["<open"], "not-well-formed"),
        (
            [f'<iq xmlns="jabber:client" type="get" id="1"><ping xmlns="{x.NS_PING}"/></iq>'],
            "not-authorized",
        ),
        (["open", '<iq xmlns="urn:example:other" type="get" id="1"/>'], "invalid-namespace"),
        (["open", '<blob xmlns="jabber:client"/>'], "unsupported-stanza-type"),
        (["open", '<x xmlns="jabber:client">' + "a" * 3000 + "</x>"], "policy-violation"),
        (["open", '<!DOCTYPE x><x xmlns="jabber:client"/>'], "restricted-xml"),
    ],
)
async def test_bad_input_ends_that_stream_only(
    gsim: Simulator, frames: list[str], condition: str
) -> None:
    cid = await channel(gsim)
    bystander = await stream(gsim, cid)
    await bystander.login()
    bad = await stream(gsim, "any")
    for frame in frames:
        if frame == "open":
            await bad.open()
        else:
            await bad.send(frame)
    seen, code = await bad.closed()
    error = next(e for e in seen if e.name == "error" and e.ns == x.NS_STREAM)
    assert error.child(condition, x.NS_STREAMS) is not None, seen
    assert seen[-1].name == "close" and code is not None and code != 1000
    # the other session is untouched
    await bystander.send(
        f'<iq xmlns="jabber:client" type="get" id="p"><ping xmlns="{x.NS_PING}"/></iq>'
    )
    assert (await bystander.expect("iq")).get("id") == "p"


async def test_request_reconnect_sends_cxfr_and_waits_for_the_client(gsim: Simulator) -> None:
    cid = await channel(gsim)
    client = await stream(gsim, cid)
    await client.login()
    gsim.request_reconnect("alice-access-token-0001")
    cxfr = await client.expect("iq")
    query = cxfr.child("query", x.NS_CXFR)
    assert cxfr.get("type") == "set" and query is not None
    assert query.child("domain").text == "squall.test"  # type: ignore[union-attr]
    # the client's answer never crosses this wire: the server waits the whole deadline
    asked = next(r for r in gsim.transcript() if r["kind"] == "drain" and r["state"] == "asked")
    assert asked["answer_within"] == asked["deadline"] == gsim.core.config.drain_deadline
    assert gsim.core.config.drain_answer_within == 1.0  # the server's policy is left alone
    await client.send(f'<close xmlns="{x.NS_FRAMING}"/>')
    seen, code = await client.closed()
    assert [e.name for e in seen] == ["close"] and code == 1000


# --- the real SDKs -------------------------------------------------------------------------------

GENESYS = DRIVERS / "genesys-sdk"
SDK_TIMESCALE = 0.05


@pytest.fixture(scope="session")
def genesys_modules() -> Any:
    return npm_ci(GENESYS, "genesys-cloud-streaming-client-19")


@pytest.fixture
async def sdk_sim() -> AsyncIterator[Simulator]:
    sim = Simulator(clock=LoopClock(timescale=SDK_TIMESCALE), dialect="genesys")
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


def channels_created(sim: Simulator) -> list[dict[str, Any]]:
    return [
        r
        for r in sim.core.transcript.records
        if r["kind"] == "dialect_http" and r["method"] == "POST" and r["path"].endswith("streaming")
    ]


@pytest.mark.parametrize("version", ["14", "19"])
async def test_real_sdk_connects_subscribes_pings_and_drains_its_own_way(
    genesys_modules: Any, sdk_sim: Simulator, version: str
) -> None:
    sdk_sim.core.transcript.secrets = Secrets()
    node = NodeDriver(GENESYS / "driver.js", timescale=SDK_TIMESCALE, args=("--sdk", version))
    await node.start()
    try:
        args = {"url": sdk_sim.url, "server": sdk_sim.http_url, "token": TOKEN}
        done = await node.command("connect", args)
        assert done["ok"], done
        first = done["result"]["channel"]
        sub = await node.command("subscribe", {"topics": [TOPIC]})  # the debounced HTTP PUT
        assert sub["ok"], sub
        sdk_sim.publish(TOPIC, {"status": "busy"})
        note = await node.event("notification")
        assert note["data"]["topic"] == TOPIC and note["data"]["payload"] == {"status": "busy"}
        # keepalive: v19 answers the server's pings, v14 pings the server every 15 s
        if version == "19":
            await wait_for_record(sdk_sim, lambda r: r.get("op") == "pong" and r.get("dir") == "in")
        else:
            await wait_for_record(sdk_sim, lambda r: r.get("op") == "ping" and r.get("dir") == "in")
        mark = len(node.lines)
        if version == "14":  # the standing answer, given at once inside the SDK's callback
            standing = await node.command("answer_drain", {"with": "pending"})
            assert standing["result"] == {"standing": "pending", "answered_now": False}
        sdk_sim.request_reconnect(TOKEN)
        if version == "14":
            # requestReconnect: pending holds the drain, done reconnects on the same channel
            await node.event("drain_answered", lambda d: d.get("with") == "pending", start=mark)
            # held past v14's 1 s failure timer: the SDK's next 15 s ping comes on the same socket
            seen = len(sdk_sim.core.transcript)
            await wait_for_record(
                sdk_sim,
                lambda r: r.get("op") == "ping" and r.get("dir") == "in" and r["n"] >= seen,
            )
            assert not [r for r in sdk_sim.core.transcript.since(seen) if r["kind"] == "close"]
            await node.command("answer_drain", {"with": "done"})
            back = await node.event("connected", start=mark)
            assert back["data"]["channel"] == first
            assert len(channels_created(sdk_sim)) == 1
        else:
            # no callback: disconnect, then a new channel
            back = await node.event("connected", start=mark, timeout=30)
            assert back["data"]["channel"] != first
            assert len(channels_created(sdk_sim)) == 2
        # the topic is still delivered after the reconnect: v14 is back on its channel (the
        # subscriptions live there), v19 resubscribes the new channel with an HTTP PUT
        if version == "19":
            puts = iter(range(2))
            await wait_for_record(
                sdk_sim,
                lambda r: (
                    r["kind"] == "dialect_http" and r["method"] == "PUT" and next(puts, 2) == 1
                ),
            )
        mark = len(node.lines)
        sdk_sim.publish(TOPIC, {"status": "away"})
        again = await node.event("notification", start=mark)
        assert again["data"]["payload"] == {"status": "away"}
        assert TOKEN not in sdk_sim.core.transcript.to_jsonl()
        assert TOKEN not in node.output()
        assert not node.events("sdk.uncaught_exception"), node.events("sdk.uncaught_exception")
    finally:
        await node.stop()
