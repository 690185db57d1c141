"""The simulator over TLS and the reference client verifying it: real handshakes, trustme CAs."""

from __future__ import annotations

import asyncio
import json
import re
import ssl
from pathlib import Path

import aiohttp
import pytest
import trustme
from websockets.asyncio.client import connect

from squall.client import StreamingClient
from squall.client.errors import ConnectionFailed
from squall.client.wire import client_wire
from squall.clock import LoopClock
from squall.simulator import Simulator
from squall.simulator.tls import TLSConfigError, local_ca

from .conftest import DEADLINE, OPEN_TIMEOUT


async def test_reference_client_over_wss_auth_pubsub_rpc(sim: Simulator, ca_file: str) -> None:
    assert sim.url.startswith("wss://127.0.0.1:")
    client = StreamingClient(
        sim.url, token="alice", clock=sim.clock, ca_file=ca_file, open_timeout=OPEN_TIMEOUT
    )
    got: asyncio.Queue[object] = asyncio.Queue()
    await asyncio.wait_for(client.connect(), DEADLINE)
    try:
        assert client.is_connected()
        assert [s["user"] for s in sim.sessions()] == ["alice"]
        await asyncio.wait_for(client.subscribe("news", lambda n: got.put_nowait(n["payload"])), 5)
        sim.publish("news", {"n": 1})
        assert await asyncio.wait_for(got.get(), DEADLINE) == {"n": 1}
        assert await asyncio.wait_for(client.call("echo", {"hi": 1}), DEADLINE) == {"hi": 1}
    finally:
        await client.disconnect()


async def test_unknown_ca_is_a_final_error_naming_the_url_and_reason(
    sim: Simulator, stranger_ca: trustme.CA, tmp_path: Path
) -> None:
    """A certificate the client cannot verify: one clear error, no retry loop, no hang."""
    wrong = tmp_path / "stranger.pem"
    stranger_ca.cert_pem.write_to_path(str(wrong))
    for ca_file in (str(wrong), None):  # a CA file that does not sign it; the system store
        url = sim.url + "?token=alice"
        client = StreamingClient(url, clock=sim.clock, ca_file=ca_file, open_timeout=OPEN_TIMEOUT)
        events: list[tuple[str, object]] = []
        client.on("*", lambda event, data, seen=events: seen.append((event, data)))
        with pytest.raises(ConnectionFailed) as failed:
            await asyncio.wait_for(client.connect(), DEADLINE)
        message = str(failed.value)
        assert message.startswith(f"TLS certificate verification failed for {sim.url}: ")
        assert "certificate" in message.removeprefix("TLS certificate").lower()  # the reason
        assert "token=alice" not in message
        errors = [d for e, d in events if e == "error"]
        assert errors[0] == {"kind": "tls", "url": sim.url, "message": message}
        assert errors[1:] == [{"kind": "gave_up", "message": message}]  # the core's final word
        names = [e for e, _ in events]
        assert "reconnecting" not in names and "connected" not in names
        assert names[-1] == "closed"
        assert client.status == "closed"
        assert sim.sessions() == []


async def test_hostname_mismatch_is_the_same_clear_error(
    clock: LoopClock, ca: trustme.CA, ca_file: str
) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("elsewhere.test").configure_cert(context)  # not valid for 127.0.0.1
    async with Simulator(clock=clock, tls=context) as sim:
        client = StreamingClient(
            sim.url, token="alice", clock=clock, ca_file=ca_file, open_timeout=OPEN_TIMEOUT
        )
        with pytest.raises(ConnectionFailed, match=r"verification failed for wss://.*mismatch"):
            await asyncio.wait_for(client.connect(), DEADLINE)


async def test_a_ca_file_that_cannot_be_read_fails_when_the_client_is_built(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "missing.pem"
    with pytest.raises(ValueError, match=f"ca_file '{missing}': no such file"):
        StreamingClient("wss://127.0.0.1:1/", token="a", ca_file=str(missing))
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(ValueError, match=f"ca_file '{junk}': not a PEM file"):
        StreamingClient("wss://127.0.0.1:1/", token="a", ca_file=str(junk))
    with pytest.raises(ValueError, match="ca_file must be the path of a PEM file"):
        StreamingClient("wss://127.0.0.1:1/", token="a", ca_file="")


async def test_cert_and_key_files_every_face_over_tls(clock: LoopClock, tmp_path: Path) -> None:
    """A (cert, key) pair; the WebSocket, the dialect's HTTP routes and the control API all
    answer over TLS with it, and only over TLS."""
    made = local_ca(tmp_path)
    assert made.ca_file == (tmp_path / "squall-ca.pem").resolve()
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    trust = ssl.create_default_context()
    ca.configure_trust(trust)
    sim = Simulator(clock=clock, tls=(cert, key), dialect="ringcentral")
    await sim.start(control_port=0)
    try:
        assert sim.url.startswith("wss://")
        assert sim.http_url is not None and sim.http_url.startswith("https://127.0.0.1:")
        assert sim.control_url is not None and sim.control_url.startswith("https://127.0.0.1:")
        async with aiohttp.ClientSession() as http:
            async with http.get(sim.control_url, ssl=trust) as answer:
                assert answer.status == 200
                assert "publish" in await answer.json()
            async with http.post(
                f"{sim.control_url}/publish", json={"topic": "t"}, ssl=trust
            ) as answer:
                assert answer.status == 200, await answer.text()
            wstoken = f"{sim.http_url}/restapi/oauth/wstoken"
            async with http.post(
                wstoken, headers={"Authorization": "Bearer alice"}, ssl=trust
            ) as answer:
                body = await answer.json()
                assert answer.status == 200, body
                assert body["uri"].startswith(sim.url.rstrip("/"))  # the wss URL, given back
            plain = sim.control_url.replace("https://", "http://")
            with pytest.raises(aiohttp.ClientError):
                async with http.get(plain) as answer:
                    await answer.read()
    finally:
        await sim.stop()


def test_bad_certificate_files_are_one_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(TLSConfigError, match=f"TLS certificate or key not found: {missing}"):
        Simulator(tls=(missing, missing))
    junk = tmp_path / "junk.pem"
    junk.write_text("junk\n")
    with pytest.raises(TLSConfigError, match=f"cannot load TLS certificate {junk}"):
        Simulator(tls=(junk, junk))
    with pytest.raises(TypeError, match=r"tls must be an ssl\.SSLContext"):
        Simulator(tls="cert.pem")  # type: ignore[arg-type]


async def test_a_plain_or_stalled_client_costs_nothing(
    clock: LoopClock, server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    """ws:// to a wss server and a peer that never finishes its TLS handshake: both are
    dropped (the second after ``open_timeout``), and the server keeps serving wss."""
    async with Simulator(clock=clock, tls=server_tls, open_timeout=0.5) as sim:
        port = sim.url.rsplit(":", 1)[1].strip("/")
        with pytest.raises(Exception):  # noqa: B017 - the server answers a TLS alert, not HTTP
            async with connect(f"ws://127.0.0.1:{port}/?token=a", proxy=None, open_timeout=5):
                pass
        reader, writer = await asyncio.open_connection("127.0.0.1", int(port))
        writer.write(b"\x16\x03\x01")  # the start of a TLS record, and then nothing
        assert await asyncio.wait_for(reader.read(), DEADLINE) == b""  # closed by the server
        writer.close()
        async with connect(sim.url + "?token=bob", ssl=client_tls, proxy=None) as ws:
            assert json.loads(await ws.recv())["type"] == "authenticated"


async def test_ringcentral_prelude_over_https_uses_the_same_ca(
    clock: LoopClock, server_tls: ssl.SSLContext, ca_file: str
) -> None:
    """The RingCentral mode's token exchange (POST /restapi/oauth/wstoken) is https too: it
    verifies with the client's ca_file, and without it fails as clearly as the socket does."""
    async with Simulator(clock=clock, tls=server_tls, dialect="ringcentral") as sim:
        assert sim.http_url is not None and sim.http_url.startswith("https://")
        wire = client_wire("ringcentral", server=sim.http_url)
        client = StreamingClient(
            sim.url,
            token="alice",
            clock=clock,
            dialect=wire,
            ca_file=ca_file,
            open_timeout=OPEN_TIMEOUT,
        )
        await asyncio.wait_for(client.connect(), DEADLINE)
        try:
            assert [s["user"] for s in sim.sessions()] == ["alice"]
        finally:
            await client.disconnect()
        wire = client_wire("ringcentral", server=sim.http_url)
        client = StreamingClient(
            sim.url, token="alice", clock=clock, dialect=wire, open_timeout=OPEN_TIMEOUT
        )
        events: list[tuple[str, object]] = []
        client.on("*", lambda event, data: events.append((event, data)))
        expected = f"TLS certificate verification failed for {sim.http_url}/restapi/oauth/wstoken"
        with pytest.raises(ConnectionFailed, match=re.escape(expected)):
            await asyncio.wait_for(client.connect(), DEADLINE)
        assert [d["kind"] for e, d in events if e == "error"] == ["tls", "gave_up"]  # type: ignore[index]
        assert "reconnecting" not in [e for e, _ in events]
