"""The unmodified toxiproxy-python client drives every call it has."""

from __future__ import annotations

import pytest
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists

from .helpers import connect, recv_exactly


def test_version_and_running(toxiproxy):
    """version() returns Toxiproxy's JSON bytes; running() finds the API port."""
    assert toxiproxy.running() is True
    assert b'"version"' in toxiproxy.version()


def test_create_list_get_destroy(toxiproxy, echo_server):
    """create() binds 127.0.0.1:0 to a real port; proxies(), get_proxy() and destroy() follow."""
    proxy = toxiproxy.create(upstream=echo_server.address, name="echo")
    assert proxy.listen.startswith("127.0.0.1:") and not proxy.listen.endswith(":0")
    assert proxy.enabled is True
    assert set(toxiproxy.proxies()) == {"echo"}
    assert toxiproxy.get_proxy("echo").upstream == echo_server.address
    assert toxiproxy.get_proxy("missing") is None
    with connect(proxy.listen) as sock:
        sock.sendall(b"ping")
        assert recv_exactly(sock, 4) == b"ping"
    assert toxiproxy.destroy(proxy)
    assert toxiproxy.proxies() == {}


def test_create_twice_raises_proxy_exists(toxiproxy, echo_server):
    """The client checks first, and the server's 409 maps to ProxyExists too."""
    toxiproxy.create(upstream=echo_server.address, name="dup")
    with pytest.raises(ProxyExists):
        toxiproxy.create(upstream=echo_server.address, name="dup")


def test_toxics_add_list_get_destroy(toxiproxy, echo_server):
    """add_toxic() with defaults, toxics(), get_toxic(), destroy_toxic()."""
    proxy = toxiproxy.create(upstream=echo_server.address, name="t")
    proxy.add_toxic(type="latency", attributes={"latency": 10, "jitter": 1})
    proxy.add_toxic(
        type="bandwidth", stream="upstream", name="bw", toxicity=0.5, attributes={"rate": 1000}
    )
    toxics = proxy.toxics()
    assert set(toxics) == {"latency_downstream", "bw"}
    lat = proxy.get_toxic("latency_downstream")
    assert (lat.type, lat.stream, lat.toxicity) == ("latency", "downstream", 1)
    assert lat.attributes == {"latency": 10, "jitter": 1}
    bw = proxy.get_toxic("bw")
    assert (bw.stream, bw.toxicity, bw.attributes) == ("upstream", 0.5, {"rate": 1000})
    assert proxy.get_toxic("nope") is None
    proxy.destroy_toxic("bw")
    assert set(proxy.toxics()) == {"latency_downstream"}


def test_errors_map_to_client_exceptions(toxiproxy, echo_server):
    """400 -> InvalidToxic, 409 -> ProxyExists, 404 -> NotFound."""
    proxy = toxiproxy.create(upstream=echo_server.address, name="e")
    with pytest.raises(InvalidToxic):
        proxy.add_toxic(type="no_such_toxic")
    with pytest.raises(InvalidToxic):
        proxy.add_toxic(type="latency", stream="sideways")
    proxy.add_toxic(type="noop")
    with pytest.raises(ProxyExists):
        proxy.add_toxic(type="noop")
    with pytest.raises(NotFound):
        proxy.destroy_toxic("nope")
    proxy.destroy()
    with pytest.raises(NotFound):
        proxy.destroy()


def test_disable_enable_and_down(toxiproxy, echo_server):
    """disable() stops listening and closes live connections; down() restores on exit."""
    proxy = toxiproxy.create(upstream=echo_server.address, name="d")
    live = connect(proxy.listen)
    live.sendall(b"x")
    assert recv_exactly(live, 1) == b"x"
    with proxy.down():
        assert toxiproxy.get_proxy("d").enabled is False
        assert live.recv(10) == b""  # closed by the proxy
        with pytest.raises(ConnectionRefusedError):
            connect(proxy.listen)
    assert toxiproxy.get_proxy("d").enabled is True
    with connect(proxy.listen) as sock:
        sock.sendall(b"back")
        assert recv_exactly(sock, 4) == b"back"
    live.close()


def test_reset_enables_all_and_removes_toxics(toxiproxy, echo_server):
    """reset() re-enables every proxy and removes every toxic."""
    a = toxiproxy.create(upstream=echo_server.address, name="a")
    a.add_toxic(type="latency", attributes={"latency": 5})
    a.disable()
    assert toxiproxy.reset() is True
    again = toxiproxy.get_proxy("a")
    assert again.enabled is True
    assert again.toxics() == {}


def test_client_populate_and_destroy_all(toxiproxy, echo_server):
    """The client's own populate() (a client-side diff) and destroy_all()."""
    toxiproxy.populate(
        [
            {"name": "p1", "upstream": echo_server.address, "listen": "127.0.0.1:0"},
            {"name": "p2", "upstream": echo_server.address, "listen": "127.0.0.1:0"},
        ]
    )
    assert set(toxiproxy.proxies()) == {"p1", "p2"}
    toxiproxy.destroy_all()
    assert toxiproxy.proxies() == {}
