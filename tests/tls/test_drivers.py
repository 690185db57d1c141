"""Clients under test over wss: the reference client's driver (``--ca-file`` and the
``ca_file`` configure key) and a real node SDK trusting the CA through NODE_EXTRA_CA_CERTS."""

from __future__ import annotations

import ssl
import sys
from pathlib import Path

import pytest

from squall.clock import LoopClock
from squall.simulator import Simulator

from ..drivers.helpers import DRIVERS, NodeDriver
from .conftest import DEADLINE, OPEN_TIMEOUT

MIXER_SDK = DRIVERS / "mixer-sdk"


def reference_driver(*flags: str) -> NodeDriver:
    """The reference client's driver under the node drivers' harness (it speaks the same
    protocol; only the command line differs)."""
    proc = NodeDriver(Path("unused.js"), timescale=0.01)
    proc.argv = [sys.executable, "-m", "squall.client.driver", "--timescale", "0.01", *flags]
    return proc


async def test_reference_driver_verifies_with_ca_file_flag_and_key(
    sim: Simulator, ca_file: str
) -> None:
    """``--ca-file`` on the command line, ``ca_file`` in configure: both verify and connect;
    neither given, the same server is refused with the TLS sentence (and no retry)."""
    for flags, key in ((("--ca-file", ca_file), {}), ((), {"ca_file": ca_file})):
        driver = reference_driver(*flags)
        await driver.start()
        try:
            args = {"url": sim.url, "token": "alice", "open_timeout": OPEN_TIMEOUT, **key}
            reply = await driver.command("connect", args, timeout=DEADLINE)
            assert reply["ok"] is True, driver.tail()
            assert reply["result"]["status"] == "connected"
            call = await driver.command("call", {"method": "echo", "params": 7}, timeout=DEADLINE)
            assert call["result"] == 7
        finally:
            await driver.stop()
    driver = reference_driver()
    await driver.start()
    try:
        args = {"url": sim.url, "token": "alice", "open_timeout": OPEN_TIMEOUT}
        reply = await driver.command("connect", args, timeout=DEADLINE)
        assert reply["ok"] is False and reply["type"] == "ConnectionFailed"
        assert reply["error"].startswith(f"TLS certificate verification failed for {sim.url}: ")
        error = await driver.event("error", lambda d: d.get("kind") == "tls")
        assert error["data"]["url"] == sim.url
        assert driver.events("reconnecting") == []
    finally:
        await driver.stop()


async def test_reference_driver_names_a_bad_ca_file(tmp_path: Path) -> None:
    driver = reference_driver("--ca-file", str(tmp_path / "none.pem"))
    await driver.start()
    try:
        reply = await driver.command("connect", {"url": "wss://127.0.0.1:9/", "token": "a"})
        assert reply["ok"] is False
        assert reply["error"] == f"ca_file '{tmp_path / 'none.pem'}': no such file"
    finally:
        await driver.stop()


async def test_mixer_sdk_over_wss_with_node_extra_ca_certs(
    server_tls: ssl.SSLContext, ca_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real @mixer/client-node in node, unchanged: trusting the CA is all it takes."""
    if not (MIXER_SDK / "node_modules" / "@mixer" / "client-node").is_dir():
        pytest.skip("drivers/mixer-sdk/node_modules is absent (cd drivers/mixer-sdk && npm ci)")
    monkeypatch.setenv("NODE_EXTRA_CA_CERTS", ca_file)  # NodeDriver passes os.environ on
    async with Simulator(clock=LoopClock(0.1), tls=server_tls, dialect="mixer") as sim:
        assert sim.url.startswith("wss://")
        driver = NodeDriver(MIXER_SDK / "driver.js", timescale=0.1, args=("--timescale", "0.1"))
        await driver.start()
        try:
            reply = await driver.command("connect", {"url": sim.url, "token": "alice"})
            assert reply["ok"] is True, driver.tail()
            sim.on_rpc("tls.check", reply={"over": "wss"})
            call = await driver.command("call", {"method": "tls.check", "params": {}})
            assert call["ok"] is True and call["result"] == {"over": "wss"}, driver.tail()
            assert [s["user"] for s in sim.sessions()] == ["alice"]
        finally:
            await driver.stop()
