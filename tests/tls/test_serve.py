"""``squall serve --tls`` as a user runs it: a subprocess that prints the CA file to trust."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import ssl
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import trustme
from websockets.asyncio.client import connect

from .conftest import DEADLINE

SQUALL = [sys.executable, "-m", "squall.cli", "serve"]


@contextlib.asynccontextmanager
async def serving(*args: str) -> AsyncIterator[dict[str, str]]:
    """Start ``squall serve ARGS``; yields its printed lines as {label: value} (the first
    websocket URL under "websocket"), and stops it with SIGTERM, checking it exits 0."""
    proc = await asyncio.create_subprocess_exec(
        *SQUALL,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        printed: dict[str, str] = {}
        last = "trust" if "--tls" in args else "control"  # the last line it prints
        while last not in printed:
            line = (await asyncio.wait_for(proc.stdout.readline(), DEADLINE)).decode()
            assert line, f"squall serve exited: {(await proc.communicate())[1].decode()}"
            label, _, value = line.rstrip("\n").partition(" ")
            printed.setdefault(label, value.strip())
        yield printed
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), DEADLINE) == 0


async def test_serve_tls_prints_the_ca_file_a_client_connects_with() -> None:
    async with serving("--tls", "--port", "0") as printed:
        ca_file = Path(printed["ca-file"])
        url, control = printed["websocket"], printed["control"]
        assert url.startswith("wss://127.0.0.1:") and control.startswith("https://127.0.0.1:")
        assert ca_file.is_file() and ca_file.read_text().startswith("-----BEGIN CERTIFICATE")
        assert f"NODE_EXTRA_CA_CERTS={ca_file}" in printed["trust"]
        trust = ssl.create_default_context(cafile=str(ca_file))  # only what serve printed
        async with connect(url + "?token=alice", ssl=trust, proxy=None) as ws:
            assert json.loads(await ws.recv())["type"] == "authenticated"
        localhost = url.replace("127.0.0.1", "localhost")  # the certificate names both
        async with connect(localhost + "?token=bob", ssl=trust, proxy=None) as ws:
            assert json.loads(await ws.recv())["type"] == "authenticated"
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{control}/sessions", ssl=trust) as answer,
        ):
            assert answer.status == 200
        with pytest.raises(ssl.SSLCertVerificationError):  # the system store does not know it
            async with connect(url + "?token=carol", proxy=None):
                pass
    assert not ca_file.exists()  # a temporary CA: gone with the server


async def test_serve_with_your_own_certificate_and_a_kept_ca_dir(tmp_path: Path) -> None:
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    both = tmp_path / "server.pem"  # key and chain in one file: --tls-key is optional
    leaf.private_key_and_cert_chain_pem.write_to_path(str(both))
    async with serving("--tls-cert", str(both)) as printed:
        assert "ca-file" not in printed  # not ours to print
        trust = ssl.create_default_context()
        ca.configure_trust(trust)
        async with connect(printed["websocket"] + "?token=alice", ssl=trust, proxy=None) as ws:
            assert json.loads(await ws.recv())["type"] == "authenticated"
    kept = tmp_path / "ca"
    async with serving("--tls", "--tls-dir", str(kept)) as printed:
        assert printed["ca-file"] == str((kept / "squall-ca.pem").resolve())
    assert (kept / "squall-ca.pem").is_file()  # asked for: kept


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--tls-cert", "/nonexistent/cert.pem"], "TLS certificate or key not found"),
        (["--tls-key", "key.pem"], "--tls-key needs --tls-cert"),
    ],
)
async def test_bad_tls_options_are_one_line_and_exit_2(args: list[str], said: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        *SQUALL, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), DEADLINE)
    assert proc.returncode == 2
    assert err.decode().startswith(f"squall serve: {said}") and err.count(b"\n") == 1
    assert out == b""
