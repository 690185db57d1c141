"""The kernel fast path (splice) for a direction with no toxic, and the switches to and from it.

Every stream is checked byte for byte (length and SHA-256). The behaviour tests run twice,
once spliced and once with the fast path off, and must see the same thing: the fast path
changes where bytes are copied, never what a peer observes. ``Proxy.spliced`` (bytes the
kernel path moved) shows which path ran, so a test of the fast path fails if it silently
fell back.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import random
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import requests

from squall.faults import ProxyServer, ThreadedServer
from squall.faults.proxy import Proxy
from squall.faults.splice import available

from .helpers import Api, TcpServer, connect, recv_exactly

pytestmark = pytest.mark.skipif(not available(), reason="os.splice needs Linux")

DEADLINE = 60.0  # seconds for any one stream or wait; each takes well under one
BLOCK = 64 * 1024
MODES = [pytest.param(None, id="spliced"), pytest.param(False, id="python")]
Proxies = Callable[..., contextlib.AbstractContextManager[ThreadedServer]]  # proxy_server
# ``squall proxy`` runs on uvloop where it is installed; embedded servers on asyncio's loop.
LOOPS = [pytest.param(None, id="asyncio")]
with contextlib.suppress(ImportError):  # without uvloop the tests run on asyncio's loop only
    import uvloop

    LOOPS.append(pytest.param(uvloop.new_event_loop, id="uvloop"))


def blocks(seed: int) -> Iterator[bytes]:
    """An endless, reproducible byte stream in BLOCK-sized pieces."""
    rng = random.Random(seed)
    while True:
        yield rng.randbytes(BLOCK)


@pytest.fixture(params=LOOPS)
def loop_factory(request: pytest.FixtureRequest) -> Callable[[], asyncio.AbstractEventLoop] | None:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def proxy_server(
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None,
) -> Proxies:
    """A context manager factory: ``with proxy_server(fast_path) as srv``, on each loop."""

    @contextlib.contextmanager
    def start(fast_path: bool | None = None) -> Iterator[ThreadedServer]:
        with ProxyServer.in_thread(
            port=0, seed=9, fast_path=fast_path, loop_factory=loop_factory
        ) as srv:
            yield srv

    return start


def proxy_of(srv: ThreadedServer, name: str) -> Proxy:
    return srv.server.collection.get(name)


def spliced(srv: ThreadedServer, name: str) -> int:
    """Bytes the proxy spliced, read on its loop: a peer can hold spliced bytes before the
    callback that moved them has counted them."""

    async def count() -> int:
        return proxy_of(srv, name).spliced

    return int(srv.call(count()))


def check_answer(r: requests.Response, allowed: set[int]) -> None:
    assert r.status_code in allowed, (r.status_code, r.text)
    if r.status_code >= 400:
        body = r.json()
        assert body["status"] == r.status_code and isinstance(body["error"], str), r.text


class Tally:
    """A running count and SHA-256 of one side of a stream."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.count = 0

    def add(self, data: bytes) -> None:
        self.digest.update(data)
        self.count += len(data)

    def same_as(self, other: Tally) -> bool:
        return (self.count, self.digest.digest()) == (other.count, other.digest.digest())


def pump(sock: socket.socket, total: int, seed: int, tally: Tally) -> None:
    """Send ``total`` bytes (rounded up to a block) of stream ``seed``."""
    for block in blocks(seed):
        if tally.count >= total:
            return
        sock.sendall(block)
        tally.add(block)


def read_into(sock: socket.socket, tally: Tally, upto: int) -> None:
    """Read until ``tally`` has ``upto`` bytes, or EOF."""
    while tally.count < upto:
        data = sock.recv(min(1 << 20, upto - tally.count))
        if not data:
            return
        tally.add(data)


def echo_both_ways(listen: str, total: int, seed: int) -> None:
    """``total`` bytes up through the proxy to an echo server and back, checked both ways."""
    sent, got = Tally(), Tally()
    with connect(listen, timeout=DEADLINE) as sock:
        sender = threading.Thread(target=pump, args=(sock, total, seed, sent))
        sender.start()
        read_into(sock, got, total)
        sender.join(DEADLINE)
    assert not sender.is_alive()
    assert got.same_as(sent), f"got {got.count} bytes of {sent.count}, or different ones"


# -- the fast path itself ------------------------------------------------------------------------


def test_a_clean_stream_is_spliced_byte_exact(
    echo_server: TcpServer, proxy_server: Proxies
) -> None:
    """8 MB up and 8 MB back through a proxy with no toxic: exact, and moved by the kernel."""
    total = 8 << 20
    with proxy_server() as srv:
        listen = Api(srv.url).proxy("clean", echo_server.address)["listen"]
        echo_both_ways(listen, total, seed=1)
        # Both directions went through splice; only bytes that arrived before the switch
        # (none here: the client sends after connecting) could have taken the Python path.
        assert spliced(srv, "clean") >= 2 * total * 0.9


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_with_the_fast_path_off_every_byte_goes_through_python(
    echo_server: TcpServer, how: str, monkeypatch: pytest.MonkeyPatch, proxy_server: Proxies
) -> None:
    """``fast_path=False`` or ``SQUALL_PROXY_FAST_PATH=0``: the same exact stream, none spliced."""
    fast_path: bool | None = False
    if how == "environment":
        monkeypatch.setenv("SQUALL_PROXY_FAST_PATH", "0")
        fast_path = None
    with proxy_server(fast_path) as srv:
        listen = Api(srv.url).proxy("slow", echo_server.address)["listen"]
        echo_both_ways(listen, 2 << 20, seed=2)
        assert spliced(srv, "slow") == 0


def test_toxics_come_and_go_through_the_api_while_a_stream_flows(
    echo_server: TcpServer, proxy_server: Proxies
) -> None:
    """Concurrent POST, PATCH and DELETE of toxics on both directions while a stream echoes:
    every switch between the kernel path and the pipeline keeps every byte, in order.

    The client keeps sending until the API storm is over, so the switches happen mid-stream
    whatever the machine's speed (the stream is capped at 256 MB).
    """
    rounds = 40
    with proxy_server() as srv:
        api = Api(srv.url)
        listen = api.proxy("storm", echo_server.address)["listen"]
        storm_over = threading.Event()
        errors: list[BaseException] = []
        base = "/proxies/storm/toxics"

        def latency_down(client: Api, i: int) -> None:
            body = {"type": "latency", "stream": "downstream", "attributes": {"latency": i % 2}}
            check_answer(client.post(base, json=body), {200, 409})
            check_answer(client.delete(f"{base}/latency_downstream"), {204, 404})

        def patch_latency(client: Api, i: int) -> None:
            body = {"attributes": {"latency": i % 3, "jitter": i % 2}}
            check_answer(client.patch(f"{base}/latency_downstream", json=body), {200, 404})

        def slicer_up(client: Api, i: int) -> None:
            body = {"type": "slicer", "stream": "upstream", "attributes": {"average_size": 4096}}
            check_answer(client.post(base, json=body), {200, 409})
            check_answer(client.delete(f"{base}/slicer_upstream"), {204, 404})

        def run(work: Callable[[Api, int], None]) -> None:
            client = Api(srv.url)
            try:
                for i in range(rounds):
                    work(client, i)
            except BaseException as exc:  # reported below
                errors.append(exc)
            finally:
                client.http.close()

        sent, got = Tally(), Tally()
        finished = threading.Event()  # the sender has sent its last byte
        with connect(listen, timeout=DEADLINE) as sock:

            def send_until_the_storm_is_over() -> None:
                try:
                    for block in blocks(3):
                        if storm_over.is_set() or sent.count >= 256 << 20:
                            return
                        sock.sendall(block)
                        sent.add(block)
                finally:
                    finished.set()

            def storm() -> None:
                workers = [
                    threading.Thread(target=run, args=(work,))
                    for work in (latency_down, patch_latency, slicer_up)
                ]
                for worker in workers:
                    worker.start()
                for worker in workers:
                    worker.join(DEADLINE)
                storm_over.set()

            sender = threading.Thread(target=send_until_the_storm_is_over)
            sender.start()
            read_into(sock, got, BLOCK)  # the stream flows before the storm starts
            conductor = threading.Thread(target=storm)
            conductor.start()
            # Read on (the echo would stall the sender otherwise) until all that was sent
            # came back; select bounds each wait, so a lost byte fails instead of hanging.
            deadline = time.monotonic() + DEADLINE
            while time.monotonic() < deadline:
                if finished.is_set() and got.count >= sent.count:
                    break
                if select.select([sock], [], [], 0.05)[0]:
                    data = sock.recv(1 << 20)
                    if not data:
                        break
                    got.add(data)
            conductor.join(DEADLINE)
            sender.join(DEADLINE)
            assert not sender.is_alive() and not conductor.is_alive()
        if errors:
            raise errors[0]
        assert got.same_as(sent), f"got {got.count} bytes of {sent.count}, or different ones"
        # Every toxic is gone: the direction is back on the kernel path.
        assert api.get(base).json() == []
        before = spliced(srv, "storm")
        echo_both_ways(listen, 1 << 20, seed=4)
        assert spliced(srv, "storm") - before >= 2 * (1 << 20) * 0.9
        actions = [e.action for e in srv.events if e.proxy == "storm"]
        assert actions.count("toxic.add") >= rounds and actions.count("toxic.remove") >= rounds
        assert "toxic.error" not in actions


# -- bytes in the pipe when a toxic arrives ----------------------------------------------------


async def eventually(predicate: Callable[[], bool], what: str) -> None:
    """Wait, bounded, for proxy state no event announces (a pipe filling up behind a reader)."""
    deadline = asyncio.get_running_loop().time() + DEADLINE
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, f"never: {what}"
        await asyncio.sleep(0.002)


async def test_bytes_held_in_the_pipe_go_through_the_new_toxic_first() -> None:
    """A reader that stops reading fills the splicer's pipe; a toxic added then gets those
    bytes before any the socket still holds, and removing it while the pipeline is backed up
    switches back to splicing once the pipeline has drained. The reader gets every byte."""
    total = 8 << 20
    stream = b"".join(itertools.islice(blocks(5), total // BLOCK))
    done = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(stream)
        await writer.drain()
        await done.wait()
        writer.close()

    upstream = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = upstream.sockets[0].getsockname()[1]
    try:
        async with ProxyServer(port=0, seed=5) as srv:
            proxy = await srv.collection.create(
                {"name": "held", "listen": "127.0.0.1:0", "upstream": f"127.0.0.1:{port}"}
            )
            host, lport = proxy.listen.rsplit(":", 1)
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)  # fills fast
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, (host, int(lport)))
            await eventually(lambda: len(proxy.connections) == 1, "the proxy connected")
            (conn,) = proxy.connections
            down = conn.links[1]

            await eventually(
                lambda: down.splicer is not None and down.splicer.waiting, "a full pipe"
            )
            assert down.splicer is not None and down.splicer.pending > 0
            spec = await srv.collection.add_toxic(
                "held", {"type": "latency", "stream": "downstream", "attributes": {"latency": 1}}
            )
            assert down.splicer is None and proxy.handed_back > 0
            await eventually(lambda: down.dest.paused, "the pipeline backed up")
            await srv.collection.remove_toxic("held", spec.name)

            got = bytearray()
            loop = asyncio.get_running_loop()
            while len(got) < total:
                data = await asyncio.wait_for(loop.sock_recv(sock, 1 << 20), DEADLINE)
                assert data, f"EOF after {len(got)} of {total} bytes"
                got += data
            assert hashlib.sha256(got).digest() == hashlib.sha256(stream).digest()
            assert down.splicer is not None, "the direction went back to the kernel path"
            assert proxy.spliced > 0
            assert not [e for e in srv.events if e.action == "toxic.error"]
            done.set()
            sock.close()
    finally:
        done.set()
        upstream.close()
        await upstream.wait_closed()


# -- half-close and reset: the same on both paths -----------------------------------------------


class Upstream:
    """A one-connection upstream whose handler records what it saw."""

    def __init__(self, handler: Callable[[socket.socket, Upstream], None]) -> None:
        self.seen: dict[str, object] = {}
        self.ready = threading.Event()  # the test's side of a handshake with the handler
        self.done = threading.Event()

        def run(conn: socket.socket) -> None:
            conn.settimeout(DEADLINE)
            try:
                handler(conn, self)
            finally:
                self.done.set()

        self.server = TcpServer(run)

    def __enter__(self) -> Upstream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.close()


def outcome(sock: socket.socket) -> tuple[str, bytes]:
    """What a peer sees next: ("eof", bytes before it) or ("reset", bytes before it)."""
    buf = bytearray()
    try:
        while data := sock.recv(65536):
            buf += data
    except ConnectionResetError:
        return "reset", bytes(buf)
    return "eof", bytes(buf)


def check_path(srv: ThreadedServer, name: str, fast_path: bool | None) -> None:
    moved = spliced(srv, name)
    assert moved > 0 if fast_path is None else moved == 0


@pytest.mark.parametrize("fast_path", MODES)
def test_client_half_close_delivers_everything_then_closes_both_ways(
    fast_path: bool | None, proxy_server: Proxies
) -> None:
    """Client sends 1 MB then FIN: the server gets all of it then EOF, and the client gets
    EOF (no half-open connection: the proxy closes both ways, as Toxiproxy does)."""
    data = random.Random(6).randbytes(1 << 20)

    def handler(conn: socket.socket, up: Upstream) -> None:
        conn.sendall(b"hi")
        up.seen["server"] = outcome(conn)

    with Upstream(handler) as up, proxy_server(fast_path) as srv:
        listen = Api(srv.url).proxy("fin", up.server.address)["listen"]
        with connect(listen, timeout=DEADLINE) as sock:
            assert (
                recv_exactly(sock, 2) == b"hi"
            )  # both links run: the client's bytes take the path
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            assert outcome(sock) == ("eof", b"")
        assert up.done.wait(DEADLINE)
        assert up.seen["server"] == ("eof", data)
        check_path(srv, "fin", fast_path)


@pytest.mark.parametrize("fast_path", MODES)
def test_server_half_close_delivers_everything_then_closes_both_ways(
    fast_path: bool | None, proxy_server: Proxies
) -> None:
    """Server sends 1 MB then FIN: the client gets all of it then EOF, the server then EOF."""
    data = random.Random(7).randbytes(1 << 20)

    def handler(conn: socket.socket, up: Upstream) -> None:
        conn.sendall(data)
        conn.shutdown(socket.SHUT_WR)
        up.seen["server"] = outcome(conn)

    with Upstream(handler) as up, proxy_server(fast_path) as srv:
        listen = Api(srv.url).proxy("fin", up.server.address)["listen"]
        with connect(listen, timeout=DEADLINE) as sock:
            assert outcome(sock) == ("eof", data)
            assert up.done.wait(DEADLINE)
        assert up.seen["server"] == ("eof", b"")
        check_path(srv, "fin", fast_path)


def reset(sock: socket.socket) -> None:
    """Close with SO_LINGER 0: the peer gets an RST."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@pytest.mark.parametrize("fast_path", MODES)
def test_a_server_reset_closes_the_client_as_before(
    fast_path: bool | None, proxy_server: Proxies
) -> None:
    """The server resets after a round of data: the client gets the data, then EOF (the proxy
    closes its side with a FIN; only reset_peer turns a close into an RST)."""

    def handler(conn: socket.socket, up: Upstream) -> None:
        conn.sendall(b"hello")
        assert up.ready.wait(DEADLINE)  # the client has the bytes: nothing is in flight
        reset(conn)

    with Upstream(handler) as up, proxy_server(fast_path) as srv:
        listen = Api(srv.url).proxy("rst", up.server.address)["listen"]
        with connect(listen, timeout=DEADLINE) as sock:
            assert recv_exactly(sock, 5) == b"hello"
            up.ready.set()
            assert outcome(sock) == ("eof", b"")
        check_path(srv, "rst", fast_path)


@pytest.mark.parametrize("fast_path", MODES)
def test_a_client_reset_closes_the_server_as_before(
    fast_path: bool | None, proxy_server: Proxies
) -> None:
    """The client resets after sending: the server gets the bytes, then EOF."""

    def handler(conn: socket.socket, up: Upstream) -> None:
        conn.sendall(b"hi")
        up.seen["hello"] = recv_exactly(conn, 5)
        up.ready.set()
        up.seen["server"] = outcome(conn)

    with Upstream(handler) as up, proxy_server(fast_path) as srv:
        listen = Api(srv.url).proxy("rst", up.server.address)["listen"]
        sock = connect(listen, timeout=DEADLINE)
        assert recv_exactly(sock, 2) == b"hi"
        sock.sendall(b"hello")
        assert up.ready.wait(DEADLINE)
        reset(sock)
        assert up.done.wait(DEADLINE)
        assert up.seen == {"hello": b"hello", "server": ("eof", b"")}
        check_path(srv, "rst", fast_path)


@pytest.mark.parametrize("fast_path", MODES)
def test_reset_peer_added_to_a_live_connection_resets_it(
    fast_path: bool | None, echo_server: TcpServer, proxy_server: Proxies
) -> None:
    """A connection echoing on the fast path gets a reset_peer toxic: the next byte that
    comes back through it turns into an RST for the client."""
    with proxy_server(fast_path) as srv:
        api = Api(srv.url)
        listen = api.proxy("rp", echo_server.address)["listen"]
        with connect(listen, timeout=DEADLINE) as sock:
            sock.sendall(b"ping")
            assert recv_exactly(sock, 4) == b"ping"
            check_path(srv, "rp", fast_path)
            api.toxic("rp", "reset_peer", stream="downstream", attributes={"timeout": 0})
            sock.sendall(b"ping")
            assert outcome(sock) == ("reset", b"")
