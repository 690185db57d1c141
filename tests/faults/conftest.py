"""Fixtures: the Toxiproxy API under test (embedded by default, ``TOXIPROXY_URL`` when set)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest

from squall.faults import ProxyServer

from .helpers import Api, TcpServer, echo

REAL_TOXIPROXY = os.environ.get("TOXIPROXY_URL")


@pytest.fixture
def api_url() -> Iterator[str]:
    """The API URL: a fresh embedded server, or the real Toxiproxy at ``TOXIPROXY_URL``."""
    if REAL_TOXIPROXY:
        yield REAL_TOXIPROXY.rstrip("/")
        Api(REAL_TOXIPROXY).post("/reset")
        api = Api(REAL_TOXIPROXY)
        for name in api.get("/proxies").json():
            api.delete(f"/proxies/{name}")
        return
    with ProxyServer.in_thread(port=0, seed=1234) as srv:
        yield srv.url


@pytest.fixture
def api(api_url: str) -> Api:
    return Api(api_url)


@pytest.fixture
def squall_only() -> None:
    """Skip a test of a squall-only feature when pointed at a real Toxiproxy."""
    if REAL_TOXIPROXY:
        pytest.skip("squall-only toxic or behaviour; TOXIPROXY_URL points at a real Toxiproxy")


@pytest.fixture
def toxiproxy(api_url: str) -> Iterator[object]:
    """The unmodified toxiproxy-python client, aimed at ``api_url``."""
    from toxiproxy import Toxiproxy
    from toxiproxy.api import APIConsumer

    parsed = urlparse(api_url)
    saved = APIConsumer.host, APIConsumer.port
    APIConsumer.host, APIConsumer.port = parsed.hostname, parsed.port
    try:
        yield Toxiproxy()
    finally:
        APIConsumer.host, APIConsumer.port = saved


@pytest.fixture
def echo_server() -> Iterator[TcpServer]:
    with TcpServer(echo) as server:
        yield server
