"""Concurrent control requests against live traffic: no byte lost, no connection cut, no 500.

Each test streams a few MB with a known digest through a toxic while several
HTTP clients (one ``requests`` session per thread) change that toxic as fast
as the API answers.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import socket
import threading
from collections.abc import Callable

import requests

from .helpers import Api, TcpServer, connect, recv_all

PAYLOAD_BYTES = 6 * 1024 * 1024
DEADLINE = 90.0  # seconds for a whole stream; the stream itself takes well under one


def payload(seed: int) -> bytes:
    return random.Random(seed).randbytes(PAYLOAD_BYTES)


def source(data: bytes, gate: threading.Event) -> Callable[[socket.socket], None]:
    """Upstream that waits for ``gate`` (the API storm is under way), then sends ``data`` in
    16 KB writes and closes (EOF ends the proxied stream)."""

    def handler(conn: socket.socket) -> None:
        assert gate.wait(DEADLINE)
        for at in range(0, len(data), 16384):
            conn.sendall(data[at : at + 16384])

    return handler


def check_answer(r: requests.Response, allowed: set[int]) -> None:
    """A proper Toxiproxy answer: an allowed status, JSON body (or none for 204)."""
    assert r.status_code in allowed, (r.status_code, r.text)
    if r.status_code != 204:
        body = r.json()
        assert isinstance(body, dict | list), r.text
        if r.status_code >= 400:
            assert body["status"] == r.status_code and isinstance(body["error"], str), r.text


class Hammer:
    """Threads that each run ``work(api, i)`` until ``stop`` is set or ``rounds`` are done."""

    def __init__(self, url: str, threads: int, rounds: int, work: Callable[[Api, int], None]):
        self.stop = threading.Event()
        self.started = threading.Event()  # set once any request has been answered
        self.errors: list[BaseException] = []
        self.done = [0] * threads

        def run(n: int) -> None:
            api = Api(url)
            try:
                for i in range(rounds):
                    if self.stop.is_set():
                        return
                    work(api, i)
                    self.done[n] += 1
                    self.started.set()
            except BaseException as exc:  # reported by join()
                self.errors.append(exc)
                self.started.set()
            finally:
                api.http.close()

        self.threads = [
            threading.Thread(target=run, args=(n,), daemon=True) for n in range(threads)
        ]
        for t in self.threads:
            t.start()

    def join(self) -> None:
        for t in self.threads:
            t.join(timeout=DEADLINE)
            assert not t.is_alive(), "an API client thread is stuck"
        if self.errors:
            raise self.errors[0]


def read_stream(listen: str) -> bytes:
    """Everything the proxy forwards on one connection, until the upstream's EOF."""
    with connect(listen, timeout=DEADLINE) as sock:
        return recv_all(sock)


def test_concurrent_patches_of_one_latency_toxic_lose_nothing(api: Api) -> None:
    """Three clients PATCH one latency toxic 150 times each while 6 MB flow: all bytes, in order."""
    data = payload(4)
    gate = threading.Event()
    with TcpServer(source(data, gate)) as upstream:
        listen = api.proxy("race", upstream.address)["listen"]
        api.toxic("race", "latency", attributes={"latency": 2, "jitter": 1})

        def patch(client: Api, i: int) -> None:
            r = client.patch(
                "/proxies/race/toxics/latency_downstream",
                json={"attributes": {"latency": i % 4, "jitter": i % 3}},
            )
            check_answer(r, {200})
            assert r.json()["name"] == "latency_downstream"

        hammer = Hammer(api.url, threads=3, rounds=150, work=patch)
        assert hammer.started.wait(DEADLINE)
        gate.set()
        try:
            got = read_stream(listen)
        finally:
            hammer.stop.set()
        hammer.join()
        assert len(got) == len(data), f"lost {len(data) - len(got)} bytes"
        assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
        assert sum(hammer.done) > 0


def test_patches_racing_deletes_and_adds_answer_2xx_or_4xx(api: Api) -> None:
    """PATCH against DELETE and re-create of the same toxic: JSON 2xx/4xx only; stream intact."""
    data = payload(5)
    gate = threading.Event()
    with TcpServer(source(data, gate)) as upstream:
        listen = api.proxy("churn", upstream.address)["listen"]
        api.toxic("churn", "latency", attributes={"latency": 1})
        url = "/proxies/churn/toxics/latency_downstream"

        def patch(client: Api, i: int) -> None:
            check_answer(client.patch(url, json={"attributes": {"latency": i % 3}}), {200, 404})

        def delete_and_add(client: Api, i: int) -> None:
            check_answer(client.delete(url), {204, 404})
            r = client.post(
                "/proxies/churn/toxics", json={"type": "latency", "attributes": {"latency": 1}}
            )
            check_answer(r, {200, 409})

        patchers = Hammer(api.url, threads=3, rounds=120, work=patch)
        churner = Hammer(api.url, threads=1, rounds=120, work=delete_and_add)
        assert patchers.started.wait(DEADLINE) and churner.started.wait(DEADLINE)
        gate.set()
        try:
            got = read_stream(listen)
        finally:
            patchers.stop.set()
            churner.stop.set()
        patchers.join()
        churner.join()
        assert len(got) == len(data), f"lost {len(data) - len(got)} bytes"
        assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()


def test_streams_survive_the_whole_control_storm(api: Api) -> None:
    """After the storm the proxy still forwards a fresh stream through the surviving toxic."""
    data = payload(6)
    gate = threading.Event()
    with TcpServer(source(data, gate)) as upstream:
        listen = api.proxy("after", upstream.address)["listen"]
        api.toxic("after", "latency", attributes={"latency": 1})
        url = "/proxies/after/toxics/latency_downstream"

        def storm(client: Api, i: int) -> None:
            if i % 10 == 9:
                check_answer(client.delete(url), {204, 404})
                r = client.post(
                    "/proxies/after/toxics",
                    json={"type": "latency", "attributes": {"latency": 1}},
                )
                check_answer(r, {200, 409})
            else:
                check_answer(client.post(url, json={"toxicity": 1.0}), {200, 404})

        hammer = Hammer(api.url, threads=3, rounds=60, work=storm)
        assert hammer.started.wait(DEADLINE)
        gate.set()
        try:
            first = read_stream(listen)
        finally:
            hammer.stop.set()
        hammer.join()
        assert hashlib.sha256(first).digest() == hashlib.sha256(data).digest()
        assert hashlib.sha256(read_stream(listen)).digest() == hashlib.sha256(data).digest()


async def test_link_level_updates_and_removals_interleave_safely() -> None:
    """Proxy.update_toxic/remove_toxic gathered directly (no API lock): the chain stays whole.

    This drives the link layer itself, so the fix does not rest on the HTTP API's lock alone.
    """
    from squall.faults import FaultEvent, ProxyServer

    data = payload(7)
    digest = hashlib.sha256(data).digest()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for at in range(0, len(data), 16384):
            writer.write(data[at : at + 16384])
            await writer.drain()
        writer.close()

    upstream = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = upstream.sockets[0].getsockname()[1]
    try:
        connected = asyncio.Event()

        def on_event(event: FaultEvent) -> None:
            if event.action == "connect":
                connected.set()

        async with ProxyServer(port=0, seed=3, on_event=on_event) as srv:
            coll = srv.collection
            proxy = await coll.create(
                {"name": "links", "listen": "127.0.0.1:0", "upstream": f"127.0.0.1:{port}"}
            )
            spec = await coll.add_toxic("links", {"type": "latency", "attributes": {"latency": 1}})
            host, lport = proxy.listen.rsplit(":", 1)
            reader, writer = await asyncio.open_connection(host, int(lport))
            received = bytearray()

            async def read_all() -> None:
                while chunk := await reader.read(65536):
                    received.extend(chunk)

            reading = asyncio.create_task(read_all())
            await asyncio.wait_for(connected.wait(), DEADLINE)  # the links exist from here
            for round_ in range(40):
                spec.toxic.attributes["latency"] = round_ % 3
                await asyncio.gather(*(proxy.update_toxic(spec) for _ in range(3)))
            await asyncio.gather(proxy.update_toxic(spec), proxy.remove_toxic(spec))
            await asyncio.wait_for(reading, DEADLINE)
            writer.close()
            assert len(received) == len(data)
            assert hashlib.sha256(received).digest() == digest
            assert not [e for e in srv.events if e.action == "toxic.error"]
    finally:
        upstream.close()
        await upstream.wait_closed()
