"""Loopback ICE, the frame-index code through a real VP8 codec, the probe, the event history."""

from __future__ import annotations

import asyncio
import fractions

import aioice.ice
import pytest
from aiortc import RTCPeerConnection
from aiortc.codecs import get_decoder, get_encoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from squall.client.webrtc import WebRTCClient
from squall.media import IndexedVideoTrack, TrackProbe, ice
from squall.media.events import Events
from squall.media.probe import MediaReport
from squall.media.tracks import decode_index, indexed_frame, is_black

from .conftest import DEADLINE

VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=100)


def test_loopback_scope_is_reference_counted_and_restored() -> None:
    """Nested holders keep 127.0.0.1-only gathering; the last one restores aioice's function."""
    original = aioice.ice.get_host_addresses
    assert "127.0.0.1" not in original(use_ipv4=True, use_ipv6=False)  # why squall patches
    with ice.loopback_ice():
        with ice.loopback_ice():
            assert aioice.ice.get_host_addresses(True, True) == ["127.0.0.1"]
        assert ice.active()
    assert aioice.ice.get_host_addresses is original
    with pytest.raises(RuntimeError, match="released more often than acquired"):
        ice.release()


def test_configuration_never_names_a_public_stun_server() -> None:
    """No ICE server unless configured: aiortc's default would ask stun.l.google.com."""
    assert ice.rtc_configuration().iceServers == []
    [server] = ice.rtc_configuration(["stun:127.0.0.1:3478"]).iceServers
    assert server.urls == "stun:127.0.0.1:3478"


async def test_offer_carries_only_loopback_host_candidates() -> None:
    """Every candidate in a gathered offer is a host candidate on 127.0.0.1."""
    with ice.loopback_ice():
        pc = RTCPeerConnection(ice.rtc_configuration())
        pc.createDataChannel("x")
        pc.addTransceiver("video")
        await pc.setLocalDescription(await pc.createOffer())
        lines = [x for x in pc.localDescription.sdp.splitlines() if x.startswith("a=candidate")]
        await pc.close()
    assert lines and all(" 127.0.0.1 " in x and x.endswith("typ host") for x in lines), lines


@pytest.mark.parametrize("index", [0, 1, 255, 256, 65535, 1_000_003, (1 << 24) - 1])
def test_index_survives_vp8(index: int) -> None:
    """The index painted in the pixels is read back after a VP8 encode/decode round trip."""
    encoder, decoder = get_encoder(VP8), get_decoder(VP8)
    frame = indexed_frame(index)
    frame.pts, frame.time_base = 0, fractions.Fraction(1, 90000)
    payloads, _ = encoder.encode(frame, force_keyframe=True)
    from aiortc.codecs.vpx import VpxPayloadDescriptor
    from aiortc.jitterbuffer import JitterFrame

    data = b"".join(VpxPayloadDescriptor.parse(p)[1] for p in payloads)
    [decoded] = decoder.decode(JitterFrame(data=data, timestamp=0))
    assert decode_index(decoded) == index
    assert not is_black(decoded)


def test_damaged_frame_reads_as_none() -> None:
    """The check byte turns a frame whose blocks were damaged into None, never a wrong index."""
    frame = indexed_frame(12345)
    plane = bytearray(bytes(frame.planes[0]))
    plane[:] = bytes([220]) * len(plane)  # every block light: bits all 1, check fails
    frame.planes[0].update(bytes(plane))
    assert decode_index(frame) is None


def test_media_report_refuses_impossible_counts() -> None:
    """An invalid report cannot exist."""
    with pytest.raises(ValueError, match="kind must be 'audio' or 'video'"):
        MediaReport(kind="data", frames=1)
    with pytest.raises(ValueError, match="inconsistent counts"):
        MediaReport(kind="video", frames=1, indexed=2)
    assert MediaReport(kind="video", frames=0).in_order_share == 1.0


async def test_probe_counts_a_local_track_in_order() -> None:
    """Read straight from the source, every step is +1 and nothing is frozen or black."""
    probe = TrackProbe(IndexedVideoTrack(fps=100))
    report = await probe.frames_at_least(10, timeout=DEADLINE)
    await probe.stop()
    assert (report.first_index, report.in_order_share, report.black) == (0, 1.0, 0)


async def test_events_wait_sees_past_and_future_and_names_what_it_saw() -> None:
    """wait_for returns a past match, awaits a future one, and a timeout lists the events."""
    events = Events()
    events.emit("a", 1)
    assert (await events.wait_for("a")).args == (1,)
    mark = events.mark()
    asyncio.get_running_loop().call_soon(events.emit, "a", 2)
    assert (await events.wait_for("a", since=mark)).args == (2,)
    with pytest.raises(TimeoutError, match=r"no 'b' event within 0.01s \(events since the mark: a"):
        await events.wait_for("b", timeout=0.01)


async def test_wire_signalling_reconnect_rekeys(sim) -> None:
    """The thin wire adapter drops its socket, comes back with prev_sid and is re-keyed."""
    alice = WebRTCClient(urls=[sim.url], token="alice", signalling="wire")
    bob = WebRTCClient(urls=[sim.url], token="bob", signalling="wire")
    try:
        await alice.join_room("lobby")
        await bob.join_room("lobby")
        old = alice.sid
        new = await alice.reconnect()
        ev = await bob.events.wait_for("reassign_peer_sid", timeout=DEADLINE)
        assert ev.args == (old, new) and new != old
    finally:
        await alice.close()
        await bob.close()
