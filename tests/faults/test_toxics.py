"""Each toxic's effect, measured on real loopback traffic through the proxy.

Time assertions are one-sided where it matters (at least the delay asked for)
with a generous upper margin, so a loaded machine cannot make them flake.
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time

import pytest

from .helpers import TcpServer, connect, recv_all, recv_exactly

MARGIN = 2.0  # seconds of slack above any expected delay


def source(payload: bytes):
    """Upstream that sends ``payload`` at once, then waits for the client to hang up."""

    def handler(conn: socket.socket) -> None:
        conn.sendall(payload)
        while conn.recv(65536):
            pass

    return handler


def send_then_close(payload: bytes):
    def handler(conn: socket.socket) -> None:
        conn.sendall(payload)

    return handler


def round_trip(sock: socket.socket, data: bytes = b"ping") -> float:
    start = time.monotonic()
    sock.sendall(data)
    assert recv_exactly(sock, len(data)) == data
    return time.monotonic() - start


def test_latency_adds_its_delay(api, echo_server):
    """A 200 ms downstream latency makes an echo round trip take at least 200 ms."""
    listen = api.proxy("lat", echo_server.address)["listen"]
    api.toxic("lat", "latency", attributes={"latency": 200})
    with connect(listen) as sock:
        rtt = round_trip(sock)
    assert 0.2 <= rtt < 0.2 + MARGIN


def test_latency_both_directions_add_up(api, echo_server):
    """Upstream 100 ms plus downstream 150 ms: at least 250 ms per round trip."""
    listen = api.proxy("lat2", echo_server.address)["listen"]
    api.toxic("lat2", "latency", stream="upstream", attributes={"latency": 100})
    api.toxic("lat2", "latency", attributes={"latency": 150})
    with connect(listen) as sock:
        assert 0.25 <= round_trip(sock) < 0.25 + MARGIN


def test_toxicity_zero_never_applies(api, echo_server):
    """A toxic rolled with toxicity 0 is a noop for the connection."""
    listen = api.proxy("t0", echo_server.address)["listen"]
    api.toxic("t0", "latency", toxicity=0.0, attributes={"latency": 5000})
    with connect(listen) as sock:
        assert round_trip(sock) < 2.0


def test_bandwidth_caps_the_rate(api):
    """100 KB at 200 KB/s takes at least about half a second."""
    payload = b"b" * 100_000
    with TcpServer(source(payload)) as upstream:
        listen = api.proxy("bw", upstream.address)["listen"]
        api.toxic("bw", "bandwidth", attributes={"rate": 200})
        with connect(listen) as sock:
            start = time.monotonic()
            assert recv_exactly(sock, len(payload)) == payload
            elapsed = time.monotonic() - start
    assert 0.4 <= elapsed < 0.5 + MARGIN


def test_reset_peer_gives_econnreset(api, echo_server):
    """reset_peer closes with a TCP RST once data flows: the client sees ECONNRESET."""
    listen = api.proxy("rp", echo_server.address)["listen"]
    api.toxic("rp", "reset_peer", attributes={"timeout": 100})
    with connect(listen) as sock:
        sock.sendall(b"hello")
        with pytest.raises(ConnectionResetError):
            recv_all(sock)


def test_timeout_stalls_then_closes(api, echo_server):
    """timeout swallows data, then closes the connection after the silence it names."""
    listen = api.proxy("to", echo_server.address)["listen"]
    api.toxic("to", "timeout", attributes={"timeout": 300})
    with connect(listen) as sock:
        start = time.monotonic()
        sock.sendall(b"lost")
        assert recv_all(sock) == b""
        assert 0.3 <= time.monotonic() - start < 0.3 + MARGIN


def test_timeout_zero_holds_until_removed(api, echo_server):
    """timeout 0 holds forever; removing the toxic closes the connection (Toxiproxy's Cleanup)."""
    listen = api.proxy("to0", echo_server.address)["listen"]
    api.toxic("to0", "timeout", attributes={"timeout": 0})
    with connect(listen) as sock:
        sock.sendall(b"lost")
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            sock.recv(10)
        sock.settimeout(30)
        assert api.delete("/proxies/to0/toxics/timeout_downstream").status_code == 204
        assert recv_all(sock) == b""


def test_limit_data_cuts_at_n_bytes(api):
    """limit_data forwards exactly N bytes, then closes."""
    with TcpServer(source(bytes(range(256)) * 4)) as upstream:
        listen = api.proxy("ld", upstream.address)["listen"]
        api.toxic("ld", "limit_data", attributes={"bytes": 100})
        with connect(listen) as sock:
            assert recv_all(sock) == bytes(range(100))


def test_slicer_splits_writes(api):
    """One 40-byte write arrives as several slices of about 10 bytes."""
    payload = b"s" * 40
    with TcpServer(source(payload)) as upstream:
        listen = api.proxy("sl", upstream.address)["listen"]
        api.toxic(
            "sl", "slicer", attributes={"average_size": 10, "size_variation": 0, "delay": 50_000}
        )
        with connect(listen) as sock:
            reads = []
            while sum(map(len, reads)) < len(payload):
                reads.append(sock.recv(65536))
    assert b"".join(reads) == payload
    assert len(reads) >= 2
    assert max(map(len, reads)) <= 20


def test_slow_close_delays_the_close(api):
    """slow_close keeps the connection open for ``delay`` ms after upstream closed."""
    with TcpServer(send_then_close(b"bye")) as upstream:
        listen = api.proxy("sc", upstream.address)["listen"]
        api.toxic("sc", "slow_close", attributes={"delay": 300})
        with connect(listen) as sock:
            assert recv_exactly(sock, 3) == b"bye"
            start = time.monotonic()
            assert recv_all(sock) == b""
            assert 0.25 <= time.monotonic() - start < 0.3 + MARGIN


def test_update_applies_to_live_connection(api, echo_server):
    """Changing a latency toxic's attributes affects a connection already open."""
    listen = api.proxy("up", echo_server.address)["listen"]
    api.toxic("up", "latency", attributes={"latency": 10})
    with connect(listen) as sock:
        round_trip(sock)
        r = api.patch(
            "/proxies/up/toxics/latency_downstream", json={"attributes": {"latency": 300}}
        )
        assert r.status_code == 200
        assert 0.3 <= round_trip(sock) < 0.3 + MARGIN
        api.delete("/proxies/up/toxics/latency_downstream")
        assert round_trip(sock) < 0.3


def test_live_toxic_changes_lose_no_byte(api, echo_server):
    """Adding, updating and removing toxics while 4 MB stream through keeps every byte in order."""
    listen = api.proxy("live", echo_server.address)["listen"]
    payload = hashlib.sha256(b"seed").digest() * (4 * 1024 * 1024 // 32)
    received = bytearray()
    with connect(listen) as sock:
        reader = threading.Thread(
            target=lambda: received.extend(recv_exactly(sock, len(payload))), daemon=True
        )
        reader.start()
        writer = threading.Thread(target=sock.sendall, args=(payload,), daemon=True)
        writer.start()
        for stream in ("upstream", "downstream"):
            api.toxic("live", "latency", stream=stream, attributes={"latency": 5})
            api.toxic(
                "live",
                "slicer",
                stream=stream,
                attributes={"average_size": 4096, "size_variation": 100},
            )
            api.toxic("live", "bandwidth", stream=stream, attributes={"rate": 0})
        api.patch("/proxies/live/toxics/latency_upstream", json={"attributes": {"latency": 1}})
        for name in ("latency", "slicer", "bandwidth"):
            for stream in ("upstream", "downstream"):
                assert api.delete(f"/proxies/live/toxics/{name}_{stream}").status_code == 204
        writer.join(60)
        reader.join(60)
    assert len(received) == len(payload)
    assert bytes(received) == payload


def test_disable_closes_live_connections(api, echo_server):
    """enabled: false stops the listener and closes connections that were open."""
    listen = api.proxy("off", echo_server.address)["listen"]
    with connect(listen) as sock:
        round_trip(sock)
        assert api.patch("/proxies/off", json={"enabled": False}).json()["enabled"] is False
        assert recv_all(sock) == b""
    with pytest.raises(ConnectionRefusedError):
        connect(listen)


# -- squall-only ---------------------------------------------------------------------------


def test_packet_loss_drops_chunks(api, echo_server, squall_only):
    """loss_rate 1 drops everything; after removing it, data flows again."""
    listen = api.proxy("pl", echo_server.address)["listen"]
    api.toxic("pl", "packet_loss", attributes={"loss_rate": 1.0})
    with connect(listen) as sock:
        sock.sendall(b"gone")
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.recv(10)
        sock.settimeout(30)
        api.delete("/proxies/pl/toxics/packet_loss_downstream")
        assert round_trip(sock) < 2.0


def test_limit_time_cuts_while_traffic_flows(api, echo_server, squall_only):
    """limit_time closes a busy connection after N ms, which timeout cannot do."""
    listen = api.proxy("lt", echo_server.address)["listen"]
    api.toxic("lt", "limit_time", attributes={"time": 300})
    start = time.monotonic()  # before connecting: the toxic's time starts at the proxy's accept
    with connect(listen) as sock:
        with pytest.raises((ConnectionError, AssertionError)):
            while time.monotonic() - start < 10:
                round_trip(sock, b"x" * 100)
        assert 0.3 <= time.monotonic() - start < 0.3 + MARGIN


def test_refuse_first_connections(api, echo_server, squall_only):
    """The first N connections are closed at once; the next one works."""
    listen = api.proxy("rf", echo_server.address)["listen"]
    api.toxic("rf", "refuse_first", attributes={"connections": 2})
    for _ in range(2):
        with connect(listen) as sock:
            assert recv_all(sock) == b""
    with connect(listen) as sock:
        assert round_trip(sock) < 2.0


def test_reset_first_connections(api, echo_server, squall_only):
    """The first connection is reset (RST); the second works."""
    listen = api.proxy("rs", echo_server.address)["listen"]
    api.toxic("rs", "reset_first", attributes={"connections": 1})
    with pytest.raises(ConnectionResetError), connect(listen) as sock:  # RST may beat setsockopt
        recv_all(sock)
    with connect(listen) as sock:
        assert round_trip(sock) < 2.0
