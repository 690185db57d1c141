"""Benchmark the fault proxy against direct loopback TCP, all measured in this run.

Separate processes, so each proxy gets its own interpreter as it would in use: this
client, an upstream (asyncio sink + echo), ``squall proxy`` and ``squall proxy
--no-fast-path``. Three proxy paths are compared with the same traffic:

- ``fast``: no toxic, so the kernel splice path (docs/faults.md, "Fast path");
- ``python``: no toxic, fast path off, every byte through Python (``data_received`` ->
  ``transport.write``), which is what squall did before the fast path;
- ``toxic``: a ``noop`` toxic on the measured direction: the toxic pipeline (stages,
  channels, writer task), the path every toxic pays before its own work.

Figures, each as a ratio against a baseline measured in the same run (rounds interleaved):

- bulk throughput client -> upstream sink vs direct;
- CPU seconds the proxy process spends per GB forwarded (user + system), per path, and
  the toxic path's figure over the fast path's;
- p50 round trip of 64-byte messages vs direct: the latency each path adds;
- 1,000 concurrent proxied connections (fast path), each echoing one message while all
  stay open; the proxy's idle RSS before any proxy exists.

Targets: fast-path throughput ratio >= 0.5, added p50 <= 100 us, 1,000/1,000
connections. Run: ``.venv/bin/python bench/bench_proxy.py [--mb 512] [--rounds 3]``.
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

import psutil

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


def start_proxy(*flags: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "squall.faults.cli", "--port", "0", "--seed", "1", *flags],
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


def add_noop(api: str, name: str) -> None:
    body = json.dumps({"type": "noop", "stream": "upstream"}).encode()
    request = urllib.request.Request(f"{api}/proxies/{name}/toxics", data=body, method="POST")
    with urllib.request.urlopen(request) as response:
        assert response.status == 200


def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


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
    slow_proxy, slow_api = start_proxy("--no-fast-path")
    procs = {"fast": psutil.Process(proxy.pid), "python": psutil.Process(slow_proxy.pid)}
    procs["toxic"] = procs["fast"]
    try:
        idle_rss = procs["fast"].memory_info().rss
        sinks = {
            "direct": sink_port,
            "fast": create_proxy(api, "sink", sink_port),
            "python": create_proxy(slow_api, "sink", sink_port),
            "toxic": create_proxy(api, "sink-noop", sink_port),
        }
        add_noop(api, "sink-noop")
        echoes = {
            "direct": echo_port,
            "fast": create_proxy(api, "echo", echo_port),
            "python": create_proxy(slow_api, "echo", echo_port),
            "toxic": create_proxy(api, "echo-noop", echo_port),
        }
        add_noop(api, "echo-noop")
        total = args.mb << 20

        best = dict.fromkeys(sinks, 0.0)
        cpu = dict.fromkeys(procs, 0.0)
        moved = dict.fromkeys(procs, 0)
        for _ in range(args.rounds):  # interleaved, so a busy moment hurts every path alike
            for path, port in sinks.items():
                before = cpu_seconds(procs[path]) if path in procs else 0.0
                best[path] = max(best[path], throughput(port, total))
                if path in procs:
                    cpu[path] += cpu_seconds(procs[path]) - before
                    moved[path] += total
        per_gb = {path: cpu[path] / (moved[path] / 1e9) for path in procs}

        p50 = {
            path: statistics.median(round_trips(port, args.pings)) for path, port in echoes.items()
        }
        ok, seconds = asyncio.run(concurrent(echoes["fast"], args.connections))
    finally:
        for proc in (proxy, slow_proxy, upstream):
            proc.terminate()
            proc.wait(10)

    mib = 1 << 20
    direct = best["direct"]
    print(f"throughput  direct {direct / mib:7.0f} MiB/s")
    for path in ("fast", "python", "toxic"):
        rate = best[path]
        print(f"            {path:<6} {rate / mib:7.0f} MiB/s   {rate / direct:.2f}x direct")
    print(
        f"cpu / GB    fast {per_gb['fast']:.3f} s   python {per_gb['python']:.3f} s   "
        f"toxic {per_gb['toxic']:.3f} s   (toxic / fast {per_gb['toxic'] / per_gb['fast']:.1f}x, "
        f"python / fast {per_gb['python'] / per_gb['fast']:.1f}x)"
    )
    print(f"p50 rtt     direct {p50['direct'] * 1e6:6.1f} us")
    for path in ("fast", "python", "toxic"):
        added = (p50[path] - p50["direct"]) * 1e6
        print(
            f"            {path:<6} {p50[path] * 1e6:6.1f} us   added {added:5.1f} us = "
            f"{p50[path] / p50['direct']:.2f}x direct"
        )
    print(
        f"concurrency {ok}/{args.connections} proxied connections echoed while all open "
        f"in {seconds:.2f} s"
    )
    print(f"idle RSS    {idle_rss / mib:.1f} MiB (squall proxy, before any proxy exists)")
    ratio = best["fast"] / direct
    added_us = (p50["fast"] - p50["direct"]) * 1e6
    verdicts = {
        "throughput >= 0.5x direct": ratio >= 0.5,
        "added p50 <= 100 us": added_us <= 100,
        f"{args.connections} connections": ok == args.connections,
    }
    print(
        "targets     " + "   ".join(f"{k}: {'PASS' if v else 'FAIL'}" for k, v in verdicts.items())
    )
    return 0 if all(verdicts.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
