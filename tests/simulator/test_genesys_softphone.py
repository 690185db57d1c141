"""Genesys softphone calls (jingle-message + ``genesys-webrtc``) with real media on loopback.

First a raw XMPP client that plays the SDK's part by hand, with its own aiortc peer, so every
stanza is asserted and media is counted at both ends; then bad input; then the real, unchanged
genesys-cloud-streaming-client 19.4.1 in node with libwebrtc (npm ``@roamhq/wrtc``) as its
``RTCPeerConnection``, through drivers/genesys-sdk/softphone.js.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from aiortc.sdp import candidate_from_sdp

from squall.clock import LoopClock
from squall.media import ice
from squall.media.probe import TrackProbe
from squall.media.tracks import ToneAudioTrack
from squall.protocol import genesys as x
from squall.simulator import ControlError, Simulator
from squall.simulator.dialects.genesys_softphone import CallState
from tests.drivers.helpers import DRIVERS, NodeDriver, npm_ci

from .conftest import DEADLINE, TIMESCALE
from .test_dialect_genesys import TOKEN, Xmpp, channel, stream

MEDIA_FRAMES = 25  # 20 ms frames: half a second of audio each way


@pytest.fixture
async def gsim() -> AsyncIterator[Simulator]:
    sim = Simulator(clock=LoopClock(timescale=TIMESCALE), dialect="genesys")
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()
        assert not ice.active(), "a call's media kept the loopback ICE scope after stop()"
        broken = [r for r in sim.core.transcript.since(0) if r.get("kind") == "internal_error"]
        assert broken == [], broken


async def logged_in(sim: Simulator) -> tuple[Xmpp, str]:
    client = await stream(sim, await channel(sim))
    return client, await client.login()


def rpc_of(el: x.Element) -> dict[str, Any]:
    payload = el.child("genesys-webrtc", x.NS_GENESYS)
    assert payload is not None, f"not a genesys-webrtc iq: {el}"
    return dict(json.loads(payload.text))


def rpc_iq(iq_id: str, to: str, method: str, **params: Any) -> str:
    body = json.dumps({"jsonrpc": "2.0", "id": iq_id, "method": method, "params": params})
    return x.iq("set", iq_id, x.tag("genesys-webrtc", {"xmlns": x.NS_GENESYS}, text=body), to=to)


def message(to: str, action: str, session_id: str) -> str:
    return x.tag(
        "message",
        {"xmlns": x.NS_CLIENT, "to": to},
        x.tag(action, {"xmlns": x.NS_JINGLE_MESSAGE, "id": session_id}),
    )


async def acked(client: Xmpp, iq_id: str) -> x.Element:
    el = await client.expect("iq")
    assert (el.get("type"), el.get("id")) == ("result", iq_id), f"expected a result: {el}"
    return el


def offered_candidates(sim: Simulator, call_id: str) -> int:
    history = sim.dialect.softphone.calls[call_id].history  # type: ignore[attr-defined]
    return int(next(h["candidates"] for h in history if h["what"] == "offered"))


async def call_state(sim: Simulator, call_id: str, state: CallState) -> dict[str, Any]:
    call = sim.dialect.softphone.calls[call_id]  # type: ignore[attr-defined]
    if call.state is not state:
        await call.events.wait_for(state.value, timeout=DEADLINE)
    return dict(call.view())


# --- the codec -----------------------------------------------------------------------------------


def test_softphone_stanzas_parse_back() -> None:
    el = x.parse(x.propose("s1", conversation_id="c1", frm="m@gjoll.d/r", to="a@d/r"))
    propose = el.child("propose", x.NS_JINGLE_MESSAGE)
    assert propose is not None and propose.attrs["inin-sdp-over-xmpp"] == "true"
    assert (propose.get("id"), propose.get("inin-cid")) == ("s1", "c1")
    iq = x.parse(
        x.genesys_webrtc("g1", "offer", {"sessionId": "s1", "sdp": "v=0"}, frm="m", to="a")
    )
    assert rpc_of(iq) == {
        "jsonrpc": "2.0",
        "id": "g1",
        "method": "offer",
        "params": {"sessionId": "s1", "sdp": "v=0"},
    }
    with pytest.raises(ValueError, match="jingle-message action"):
        x.jingle_message("hold", "s1", frm="m", to=None)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("{", "not JSON"),
        ("[1]", "not a JSON list"),
        ('{"method": "answer", "params": {}}', 'jsonrpc must be "2.0"'),
        ('{"jsonrpc": "2.0", "method": "offer", "params": {}}', "not one a client sends"),
        ('{"jsonrpc": "2.0", "method": "answer", "params": []}', "params must be an object"),
        ('{"jsonrpc": "2.0", "method": "info", "params": {"sessionId": ""}}', "sessionId"),
        ('{"jsonrpc": "2.0", "method": "answer", "params": {"sessionId": "s"}}', "sdp"),
        ('{"jsonrpc": "2.0", "method": "mute", "params": {"sessionId": "s", "type": 1}}', "type"),
        ("[" * 5000 + "]" * 5000, "nested too deep"),
    ],
)
def test_parse_rpc_says_what_is_wrong(text: str, words: str) -> None:
    with pytest.raises(ValueError, match=words.replace("[", r"\[")):
        x.parse_rpc(text)


# --- the wire, by hand, with an aiortc peer as the client ---------------------------------------


class ClientMedia:
    """The SDK's part played with aiortc: answers the offer, sends a 660 Hz tone, trickles its
    candidates the way GenesysCloudMediaSession does (``m=<mid> 9 RTP/AVP 0\\r\\na=...``)."""

    def __init__(self) -> None:
        ice.acquire()
        self.pc = RTCPeerConnection(ice.rtc_configuration())
        self.probe: TrackProbe | None = None
        self.got_track = asyncio.Event()
        self.pc.on("track", self._on_track)

    def _on_track(self, track: MediaStreamTrack) -> None:
        self.probe = TrackProbe(track)
        self.got_track.set()

    async def answer(self, offer_sdp: str) -> tuple[str, list[str]]:
        await self.pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
        self.pc.addTrack(ToneAudioTrack(660.0))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        sdp = self.pc.localDescription.sdp
        mid = self.pc.getTransceivers()[0].mid
        bare = "".join(
            f"{line}\r\n" for line in sdp.splitlines() if not line.startswith("a=candidate:")
        )
        cands = [
            f"m={mid} 9 RTP/AVP 0\r\n{line}\r\n"
            for line in sdp.splitlines()
            if line.startswith("a=candidate:")
        ]
        return bare, cands

    async def add_remote(self, fragment: str) -> None:
        line = next(part for part in fragment.split("\r\n") if part.startswith("a=candidate:"))
        candidate = candidate_from_sdp(line[len("a=candidate:") :])
        candidate.sdpMid = self.pc.getTransceivers()[0].mid
        await self.pc.addIceCandidate(candidate)

    async def close(self) -> None:
        try:
            if self.probe is not None:
                await self.probe.stop()
            await self.pc.close()
        finally:
            ice.release()


@pytest.mark.parametrize("trickle", [False, True], ids=["candidates-in-offer", "trickled"])
async def test_call_proposed_proceeded_answered_media_both_ways_muted_terminated(
    gsim: Simulator, trickle: bool
) -> None:
    client, jid = await logged_in(gsim)
    view = gsim.place_call(session=gsim.sessions()[0]["id"], trickle=trickle)
    sid = view["id"]
    # 1. propose, from the media service's softphone jid
    el = await client.expect("message")
    propose = el.child("propose", x.NS_JINGLE_MESSAGE)
    assert propose is not None and propose.get("id") == sid
    assert propose.get("inin-cid") == view["conversation_id"]
    assert propose.get("inin-sdp-over-xmpp") == "true" and el.get("to") == jid
    gjoll = el.get("from") or ""
    assert "@gjoll." in gjoll
    # 2. proceed (acceptRtcSession) -> the offer, from the same jid
    await client.send(message(gjoll, "proceed", sid))
    offer_iq = await client.expect("iq")
    assert (offer_iq.get("type"), offer_iq.get("from")) == ("set", gjoll)
    offer = rpc_of(offer_iq)
    assert offer["method"] == "offer" and offer["jsonrpc"] == "2.0"
    assert offer["params"]["sessionId"] == sid
    assert offer["params"]["conversationId"] == view["conversation_id"]
    assert "m=audio" in offer["params"]["sdp"]
    assert ("a=candidate:" in offer["params"]["sdp"]) is not trickle
    media = ClientMedia()
    try:
        if trickle:  # the server's candidates follow the offer (no end-of-candidates: see below)
            fragments = [
                rpc_of(await client.expect("iq")) for _ in range(offered_candidates(gsim, sid))
            ]
            assert all(f["method"] == "iceCandidate" for f in fragments)
            assert all(f["params"]["sessionId"] == sid for f in fragments)
            fragments = [f["params"]["sdp"] for f in fragments]
            assert fragments and all("127.0.0.1" in f for f in fragments)
        answer_sdp, candidates = await media.answer(offer["params"]["sdp"])
        if trickle:
            for fragment in fragments:
                await media.add_remote(fragment)
        # 3. answer and candidates, each acknowledged with an iq result from the gjoll jid
        await client.send(rpc_iq("a1", gjoll, "answer", sessionId=sid, sdp=answer_sdp))
        assert (await acked(client, "a1")).get("from") == gjoll
        for i, fragment in enumerate([*candidates, "a=end-of-candidates\r\n"]):
            await client.send(rpc_iq(f"c{i}", gjoll, "iceCandidate", sessionId=sid, sdp=fragment))
            await acked(client, f"c{i}")
        await client.send(rpc_iq("i1", gjoll, "info", sessionId=sid, status="active"))
        await acked(client, "i1")
        await client.send(message(f"{jid.partition('/')[0]}", "accept", sid))
        await call_state(gsim, sid, CallState.ACTIVE)
        # 4. media both ways: the server's tone here, ours there
        await asyncio.wait_for(media.got_track.wait(), DEADLINE)
        assert media.probe is not None
        heard = await media.probe.frames_at_least(MEDIA_FRAMES, timeout=DEADLINE)
        assert heard.silent < heard.frames  # a tone, not silence
        server_side = gsim.dialect.softphone.calls[sid].media  # type: ignore[attr-defined]
        await asyncio.wait_for(server_side.track_seen.wait(), DEADLINE)
        got = await server_side.probe.frames_at_least(MEDIA_FRAMES, timeout=DEADLINE)
        assert got.silent < got.frames
        report = await gsim.dialect.softphone.report(sid)  # type: ignore[attr-defined]
        assert report["media"]["packets_received"] > 0 and report["media"]["packets_sent"] > 0
        assert report["media"]["ice_connection"] == "completed", report["media"]["states"]
        assert report["media"]["added_candidates"] >= 1
        # 5. mute / unmute, then terminate from the client
        await client.send(rpc_iq("m1", gjoll, "mute", sessionId=sid, type="audio"))
        await acked(client, "m1")
        assert gsim.calls()[0]["muted"] is True
        await client.send(rpc_iq("m2", gjoll, "unmute", sessionId=sid, type="audio"))
        await acked(client, "m2")
        await client.send(rpc_iq("t1", gjoll, "terminate", sessionId=sid, reason="success"))
        await acked(client, "t1")
        ended = await call_state(gsim, sid, CallState.ENDED)
        assert (ended["ended_by"], ended["reason"], ended["muted"], ended["accepted"]) == (
            "client",
            "success",
            False,
            True,
        )
        whats = [h["what"] for h in ended["history"]]
        assert whats[:5] == ["proposed", "proceed", "offered", "answer", "answer_applied"] or (
            whats[:4] == ["proposed", "proceed", "offered", "answer"]
        )
        assert {"active", "mute", "unmute", "ended"} <= set(whats)
    finally:
        await media.close()
        await client.ws.close()
    await gsim.dialect.aclose()  # type: ignore[attr-defined]
    final = gsim.calls()[0]["media"]
    assert final["frames_received"] >= MEDIA_FRAMES and final["packets_received"] > 0
    # the transcript has the whole sequence, in and out
    ops = [r.get("op") for r in gsim.transcript() if r.get("kind") == "frame"]
    assert "call_signal" in ops


async def test_server_terminates_an_active_call_and_retracts_an_unanswered_one(
    gsim: Simulator,
) -> None:
    client, jid = await logged_in(gsim)
    user = gsim.sessions()[0]["id"]
    first = gsim.place_call(session=user)["id"]
    el = await client.expect("message")
    gjoll = el.get("from") or ""
    # retracted before it is answered: the SDK's cancelIncomingRtcSession
    ended = gsim.end_call(call=first)
    assert ended["state"] == "retracted" and ended["ended_by"] == "server"
    retract = (await client.expect("message")).child("retract", x.NS_JINGLE_MESSAGE)
    assert retract is not None and retract.get("id") == first
    # a proceed after the retract is answered with a message error, not an offer
    await client.send(message(gjoll, "proceed", first))
    error = await client.expect("message")
    assert error.get("type") == "error" and "retracted" in str(error)
    assert gsim.end_call(call=first)["state"] == "retracted"  # idempotent
    # a second call, proceeded, then terminated from the server
    second = gsim.place_call(session=user)["id"]
    gjoll = (await client.expect("message")).get("from") or ""
    await client.send(message(gjoll, "proceed", second))
    assert rpc_of(await client.expect("iq"))["method"] == "offer"
    assert gsim.end_call(call=second, reason="hangup")["state"] == "ended"
    terminate = rpc_of(await client.expect("iq"))
    assert terminate["method"] == "terminate"
    assert terminate["params"] == {"sessionId": second, "reason": "hangup"}
    # a third, rejected by the client (to its own bare jid and to the media service)
    third = gsim.place_call(session=user)["id"]
    gjoll = (await client.expect("message")).get("from") or ""
    await client.send(message(jid.partition("/")[0], "reject", third))
    await client.send(message(gjoll, "reject", third))
    rejected = await call_state(gsim, third, CallState.REJECTED)
    assert rejected["ended_by"] == "client"
    assert [c["state"] for c in gsim.calls()] == ["retracted", "ended", "rejected"]
    await client.ws.close()


async def test_bad_softphone_input_is_answered_clearly_and_the_stream_stays_up(
    gsim: Simulator,
) -> None:
    client, _ = await logged_in(gsim)
    sid = gsim.place_call(session=gsim.sessions()[0]["id"])["id"]
    gjoll = (await client.expect("message")).get("from") or ""

    async def refused(stanza: str, condition: str, words: str) -> None:
        await client.send(stanza)
        el = await client.recv()
        assert el.get("type") == "error", f"expected an error for {stanza}: {el}"
        err = el.child("error")
        assert err is not None and err.child(condition, x.NS_STANZAS) is not None, str(el)
        text = err.child("text", x.NS_STANZAS)
        assert text is not None and words in text.text, text.text if text else el

    bad_json = x.iq(
        "set", "b1", x.tag("genesys-webrtc", {"xmlns": x.NS_GENESYS}, text="{nope"), to=gjoll
    )
    await refused(bad_json, "bad-request", "not JSON")
    await refused(rpc_iq("b2", gjoll, "dance", sessionId=sid), "bad-request", "known: answer")
    await refused(rpc_iq("b3", gjoll, "info", sessionId="nope"), "item-not-found", "no call")
    await refused(
        rpc_iq("b4", gjoll, "answer", sessionId=sid, sdp="v=0"), "unexpected-request", "proposed"
    )
    await refused(
        rpc_iq("b5", gjoll, "iceCandidate", sessionId=sid, sdp="a=end-of-candidates\r\n"),
        "unexpected-request",
        "no offer",
    )
    get = rpc_iq("b6", gjoll, "info", sessionId=sid).replace('type="set"', 'type="get"')
    await refused(get, "bad-request", "iq type set")
    await refused(message(gjoll, "proceed", "no-such-call"), "item-not-found", "no such call")
    await refused(message(gjoll, "propose", "mine"), "feature-not-implemented", "outgoing")
    hold = x.tag(
        "message",
        {"xmlns": x.NS_CLIENT, "to": gjoll},
        x.tag("hold", {"xmlns": x.NS_JINGLE_MESSAGE, "id": sid}),
    )
    await refused(hold, "bad-request", "not a jingle-message action")
    # still served: a ping, and the call is untouched
    await client.send(
        '<iq xmlns="jabber:client" type="get" id="p1"><ping xmlns="urn:xmpp:ping"/></iq>'
    )
    await acked(client, "p1")
    assert gsim.calls()[0]["state"] == "proposed"
    await client.ws.close()


async def test_control_plane_refusals(gsim: Simulator) -> None:
    with pytest.raises(ControlError) as err:
        gsim.place_call(session="nobody")
    assert err.value.status == 404
    with pytest.raises(ControlError) as err:
        gsim.end_call(call="no-such-call")
    assert err.value.status == 404 and "no call" in str(err.value)
    with pytest.raises(ValueError, match="tone_hz"):
        gsim.place_call(session="x", tone_hz=5)
    async with Simulator() as ref:  # the reference dialect has no softphone
        with pytest.raises(ControlError) as err:
            ref.place_call(session="x")
        assert err.value.status == 409 and "softphone" in str(err.value)
        assert ref.calls() == []


# --- the real SDK (v19) in node, libwebrtc as its RTCPeerConnection -------------------------------

SDK_DIR = DRIVERS / "genesys-sdk"


@pytest.fixture(scope="module")
def sdk_modules() -> None:
    npm_ci(SDK_DIR, "@roamhq/wrtc")


async def test_real_sdk_v19_answers_a_call_with_libwebrtc_media_both_ways(
    gsim: Simulator, sdk_modules: None
) -> None:
    driver = NodeDriver(SDK_DIR / "driver.js", timescale=1.0, args=("--sdk", "19"))
    await driver.start()
    try:
        ready = await driver.command("softphone.configure", {"answer": "auto", "tone_hz": 330})
        assert ready["ok"], ready
        reply = await driver.command(
            "connect", {"url": gsim.url, "server": gsim.http_url, "token": TOKEN}, timeout=30
        )
        assert reply["ok"], reply
        user = gsim.sessions()[0]["user"]
        sid = gsim.place_call(session=user, trickle=True)["id"]
        proposed = await driver.event("softphone.proposed", timeout=DEADLINE)
        assert (
            proposed["data"]["sessionId"] == sid and proposed["data"]["sessionType"] == "softphone"
        )
        await call_state(gsim, sid, CallState.ACTIVE)
        server_side = gsim.dialect.softphone.calls[sid].media  # type: ignore[attr-defined]
        await asyncio.wait_for(server_side.track_seen.wait(), DEADLINE)
        got = await server_side.probe.frames_at_least(MEDIA_FRAMES, timeout=DEADLINE)
        assert got.silent < got.frames, "libwebrtc's tone arrived as silence"
        # the SDK side counts what libwebrtc decoded from aiortc's tone (RTCAudioSink)
        heard = await driver.event(
            "softphone.media",
            lambda d: d.get("frames_received", 0) >= MEDIA_FRAMES,
            timeout=DEADLINE,
        )
        assert heard["data"]["audible_frames"] > 0
        mute = await driver.command("softphone.mute", {})
        assert mute["ok"], mute
        assert gsim.calls()[0]["muted"] is True
        hang = await driver.command("softphone.hangup", {})
        assert hang["ok"], hang
        ended = await call_state(gsim, sid, CallState.ENDED)
        assert ended["ended_by"] == "client" and ended["reason"] == "success"
        report = ended["history"]
        assert [h["what"] for h in report][:4] == ["proposed", "proceed", "offered", "answer"]
        media = gsim.calls()[0]["media"]
        assert media["refused_checks"] >= 0 and media["ignored_candidates"] >= 1
    finally:
        await driver.stop()
