"""The unmodified Toxiproxy Python client against squall's embedded proxy: 100 ms of latency."""

import socket
import threading
import time

from toxiproxy import Toxiproxy
from toxiproxy.api import APIConsumer

from squall.faults import ProxyServer

# A one-connection echo server to stand upstream.
upstream = socket.create_server(("127.0.0.1", 0))


def echo() -> None:
    conn, _ = upstream.accept()
    with conn:
        while data := conn.recv(4096):
            conn.sendall(data)


threading.Thread(target=echo, daemon=True).start()

with ProxyServer.in_thread(port=0, seed=1) as srv:  # the proxy runs on its own thread
    APIConsumer.host, APIConsumer.port = srv.host, srv.port
    proxy = Toxiproxy().create(
        upstream=f"127.0.0.1:{upstream.getsockname()[1]}", name="echo", listen="127.0.0.1:0"
    )
    proxy.add_toxic(type="latency", stream="downstream", attributes={"latency": 100})
    host, port = proxy.listen.rsplit(":", 1)
    with socket.create_connection((host, int(port))) as client:
        started = time.perf_counter()
        client.sendall(b"ping")
        assert client.recv(4) == b"ping"
        elapsed = time.perf_counter() - started
    print(f"round trip through a 100 ms latency toxic: {elapsed * 1000:.0f} ms")
    assert elapsed >= 0.1
    print("faults applied:", [event.action for event in srv.events])
upstream.close()
