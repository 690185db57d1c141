"""Benchmark the fault proxy against direct loopback TCP, both measured in this run.

Three processes, so the proxy gets its own interpreter as it would in use:
this client, an upstream (asyncio sink + echo) and ``squall proxy``. Figures:

- bulk throughput client -> upstream sink, through the proxy (no toxics) vs direct;
- p50 round trip of 64-byte messages through the proxy vs direct: the added latency;
- 1,000 concurrent proxied connections, each echoing one message while all stay open.

Targets: throughput ratio >= 0.5, added p50 <= 100 us, 1,000/1,000 connections.
Run: ``.venv/bin/python bench/bench_proxy.py [--mb 512] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

UPSTREAM = r"""
import asyncio, struct, sys

class Sink(asyncio.Protocol):
    # The first 8 bytes announce the total; the count goes back once it all arrived.
    # (No half-close: like Toxiproxy, the proxy closes both ways on EOF.)
    def connection_made(self, t):
        self.t, self.n, self.want = t, 0, None
    def data_received(self, d):
        self.n += len(d)
        if self.want is None and self.n >= 8:
            self.want = struct.unpack("!Q", d[:8])[0] + 8
        if self.want is not None and self.n >= self.want:
            self.t.write(struct.pack("!Q", self.n - 8))

class Echo(asyncio.Protocol):
    def connection_made(self, t):
        self.t = t
    def data_received(self, d):
        self.t.write(d)

async def main():
    loop = asyncio.get_running_loop()
    sink = await loop.create_server(Sink, "127.0.0.1", 0, backlog=4096)
    echo = await loop.create_server(Echo, "127.0.0.1", 0, backlog=4096)
    ports = [s.sockets[0].getsockname()[1] for s in (sink, echo)]
    print(*ports, flush=True)
    await loop.create_future()

asyncio.run(main())
"""


def raise_fd_limit(want: int = 20_000) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))


def start_upstream() -> tuple[subprocess.Popen[str], int, int]:
    proc = subprocess.Popen([sys.executable, "-c", UPSTREAM], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    sink, echo = map(int, proc.stdout.readline().split())
    return proc, sink, echo


def start_proxy() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "squall.faults.cli", "--port", "0", "--seed", "1"],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()
    match = re.search(r"(http://\S+?),? ", line)
    if not match:
        proc.kill()
        raise SystemExit(f"squall proxy did not start: {line!r}")
    return proc, match.group(1)


def create_proxy(api: str, name: str, upstream_port: int) -> int:
    body = json.dumps(
        {"name": name, "listen": "127.0.0.1:0", "upstream": f"127.0.0.1:{upstream_port}"}
    ).encode()
    request = urllib.request.Request(f"{api}/proxies", data=body, method="POST")
    with urllib.request.urlopen(request) as response:
        return int(json.load(response)["listen"].rsplit(":", 1)[1])


def throughput(port: int, total: int) -> float:
    """Bytes per second to send ``total`` bytes and get the sink's count back."""
    block = memoryview(os.urandom(1 << 20))
    with socket.create_connection(("127.0.0.1", port)) as sock:
        start = time.perf_counter()
        sent = 0
        total = -(-total // len(block)) * len(block)
        sock.sendall(total.to_bytes(8, "big"))
        while sent < total:
            sock.sendall(block)
            sent += len(block)
        reply = b""
        while len(reply) < 8:
            chunk = sock.recv(8 - len(reply))
            if not chunk:
                break
            reply += chunk
        elapsed = time.perf_counter() - start
    received = int.from_bytes(reply, "big")
    assert received == sent, (received, sent)
    return sent / elapsed


def round_trips(port: int, count: int) -> list[float]:
    message = b"m" * 64
    samples = []
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(200):  # warm up
            sock.sendall(message)
            sock.recv(64)
        for _ in range(count):
            start = time.perf_counter()
            sock.sendall(message)
            got = 0
            while got < 64:
                got += len(sock.recv(64 - got))
            samples.append(time.perf_counter() - start)
    return samples


async def concurrent(port: int, n: int) -> tuple[int, float]:
    """Open ``n`` connections, echo one message on each while all are open; (ok, seconds)."""
    start = time.perf_counter()
    sem = asyncio.Semaphore(200)  # pace connects so the accept backlog never overflows

    async def open_one(i: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        async with sem:
            return await asyncio.open_connection("127.0.0.1", port)

    conns = await asyncio.gather(*(open_one(i) for i in range(n)))

    async def echo_one(i: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        payload = f"conn-{i:05d}".encode()
        writer.write(payload)
        return await asyncio.wait_for(reader.readexactly(len(payload)), 60) == payload

    results = await asyncio.gather(*(echo_one(i, r, w) for i, (r, w) in enumerate(conns)))
    elapsed = time.perf_counter() - start
    for _, writer in conns:
        writer.close()
    return sum(results), elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=512, help="MiB per throughput round")
    parser.add_argument("--rounds", type=int, default=3, help="throughput rounds (best kept)")
    parser.add_argument("--pings", type=int, default=5000, help="round trips per latency run")
    parser.add_argument("--connections", type=int, default=1000)
    args = parser.parse_args()
    raise_fd_limit()

    upstream, sink_port, echo_port = start_upstream()
    proxy, api = start_proxy()
    try:
        sink_via = create_proxy(api, "sink", sink_port)
        echo_via = create_proxy(api, "echo", echo_port)
        total = args.mb << 20

        direct_bps = max(throughput(sink_port, total) for _ in range(args.rounds))
        proxied_bps = max(throughput(sink_via, total) for _ in range(args.rounds))

        direct_p50 = statistics.median(round_trips(echo_port, args.pings))
        proxied_p50 = statistics.median(round_trips(echo_via, args.pings))
        added_us = (proxied_p50 - direct_p50) * 1e6

        ok, seconds = asyncio.run(concurrent(echo_via, args.connections))
    finally:
        for proc in (proxy, upstream):
            proc.terminate()
            proc.wait(10)

    ratio = proxied_bps / direct_bps
    mib = 1 << 20
    print(
        f"throughput  direct {direct_bps / mib:8.0f} MiB/s   proxied {proxied_bps / mib:8.0f} "
        f"MiB/s   ratio {ratio:.2f}x  (target >= 0.5x) {'PASS' if ratio >= 0.5 else 'FAIL'}"
    )
    print(
        f"p50 rtt     direct {direct_p50 * 1e6:8.1f} us      proxied {proxied_p50 * 1e6:8.1f} "
        f"us      added {added_us:.1f} us = {proxied_p50 / direct_p50:.2f}x  "
        f"(target <= 100 us) {'PASS' if added_us <= 100 else 'FAIL'}"
    )
    print(
        f"concurrency {ok}/{args.connections} proxied connections echoed while all open "
        f"in {seconds:.2f} s  {'PASS' if ok == args.connections else 'FAIL'}"
    )
    return 0 if ratio >= 0.5 and added_us <= 100 and ok == args.connections else 1


if __name__ == "__main__":
    sys.exit(main())
