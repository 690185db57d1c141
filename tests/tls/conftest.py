"""Certificates for the TLS tests: trustme CAs, made once per session (key generation is the
slow part), and the simulator under compressed time."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme

from squall.clock import LoopClock
from squall.simulator import Simulator

TIMESCALE = 0.01  # one protocol second lasts 10 ms
DEADLINE = 20.0  # real seconds; reached only when something is broken
#: The client's open timer in protocol seconds: 10 s real, so a TLS handshake on a loaded
#: machine never loses a race with it (the default 10 s is 0.1 s real at this timescale).
OPEN_TIMEOUT = 1000.0


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA(organization_name="squall tests")


@pytest.fixture(scope="session")
def stranger_ca() -> trustme.CA:
    """A CA no client of these tests trusts."""
    return trustme.CA(organization_name="someone else")


@pytest.fixture(scope="session")
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    """The simulator's context: a certificate for every loopback name, signed by ``ca``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost", "::1").configure_cert(context)
    return context


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture(scope="session")
def client_tls(ca: trustme.CA) -> ssl.SSLContext:
    """A verifying client context that trusts ``ca`` only."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.fixture
def clock() -> LoopClock:
    return LoopClock(timescale=TIMESCALE)


@pytest.fixture
async def sim(clock: LoopClock, server_tls: ssl.SSLContext) -> AsyncIterator[Simulator]:
    async with Simulator(clock=clock, tls=server_tls) as simulator:
        yield simulator
