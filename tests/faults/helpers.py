"""Loopback upstreams for the fault proxy tests: small threaded TCP servers, no mocks."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable

import requests

Handler = Callable[[socket.socket], None]


class TcpServer:
    """A 127.0.0.1 listener on an OS-chosen port; each connection runs ``handler`` in a thread."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn: socket.socket) -> None:
        try:
            self.handler(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):  # shutdown wakes the blocked accept() on Linux
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.close()
        self._thread.join(timeout=5)

    def __enter__(self) -> TcpServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def echo(conn: socket.socket) -> None:
    while data := conn.recv(65536):
        conn.sendall(data)


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        data = sock.recv(n - len(buf))
        if not data:
            break
        buf += data
    return bytes(buf)


def recv_all(sock: socket.socket) -> bytes:
    """Read until EOF (raises ConnectionResetError on an RST)."""
    buf = bytearray()
    while data := sock.recv(65536):
        buf += data
    return bytes(buf)


def connect(listen: str, timeout: float = 30.0) -> socket.socket:
    host, port = listen.rsplit(":", 1)
    sock = socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class Api:
    """A thin requests wrapper for raw wire checks."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.http = requests.Session()

    def __getattr__(self, method: str) -> Callable[..., requests.Response]:
        def call(path: str, **kw: object) -> requests.Response:
            return self.http.request(method.upper(), self.url + path, timeout=60, **kw)

        return call

    def proxy(self, name: str, upstream: str, **extra: object) -> dict:
        r = self.post(
            "/proxies", json={"name": name, "listen": "127.0.0.1:0", "upstream": upstream, **extra}
        )
        assert r.status_code == 201, r.text
        return r.json()

    def toxic(self, proxy: str, type_: str, **body: object) -> dict:
        r = self.post(f"/proxies/{proxy}/toxics", json={"type": type_, **body})
        assert r.status_code == 200, r.text
        return r.json()
