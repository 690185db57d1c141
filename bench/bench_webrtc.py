"""WebRTC on loopback: time to connect, and the share of video frames received in order.

Run: ``python bench/bench_webrtc.py [--runs 10] [--window 2]``. Real aiortc peers on
127.0.0.1 (no STUN), signalling through the simulator.

- *time to connect*: from the second client's ``join`` being sent to ``connect_to_peer``
  on both sides (both peer connections connected, data channels open). Target <= 150 ms.
- *frames in order*: one 30 fps indexed video track, requested once connected; over a
  ``--window`` second window, the share of consecutive frames whose decoded index is the
  previous + 1 (loss, reordering and frozen frames all count against it). Target 100 %.

The baseline, measured in the same run, is a bare aiortc pair connected in-process
(offer/answer handed over directly, no signalling server, data channel only): the
figure squall cannot beat. Each time to connect is also printed as a ratio to it.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from aiortc import RTCPeerConnection

from squall.client.webrtc import WebRTCClient
from squall.media import IndexedVideoTrack, TrackProbe, ice
from squall.simulator import Simulator

TARGET_CONNECT_MS = 150.0
TARGET_IN_ORDER = 1.0


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def baseline_pair() -> float:
    """A bare pair, in-process signalling: the aiortc floor on this machine."""
    a, b = RTCPeerConnection(ice.rtc_configuration()), RTCPeerConnection(ice.rtc_configuration())
    opened = asyncio.get_running_loop().create_future()
    t0 = time.perf_counter()
    channel = a.createDataChannel("bench")
    channel.on("open", lambda: opened.done() or opened.set_result(None))
    await a.setLocalDescription(await a.createOffer())
    await b.setRemoteDescription(a.localDescription)
    await b.setLocalDescription(await b.createAnswer())
    await a.setRemoteDescription(b.localDescription)
    await asyncio.wait_for(opened, 10)
    elapsed = time.perf_counter() - t0
    await a.close()
    await b.close()
    return elapsed


async def one_run(url: str, run: int, window: float) -> tuple[float, float, int]:
    room = f"bench-{run}"
    alice = WebRTCClient(urls=[url], token=f"alice{run}")
    bob = WebRTCClient(urls=[url], token=f"bob{run}")
    try:
        await alice.join_room(room)
        await bob.connect()
        t0 = time.perf_counter()
        await bob.join_room(room)
        await asyncio.gather(
            alice.events.wait_for("connect_to_peer"), bob.events.wait_for("connect_to_peer")
        )
        connect = time.perf_counter() - t0
        alice.add_track(IndexedVideoTrack(), "bench", id="cam")
        await bob.events.wait_for("peer_track_defined")
        bob.request_peer_track(str(alice.sid), "cam")
        ev = await bob.events.wait_for("peer_track_identified")
        probe = TrackProbe(ev.args[2])
        await probe.frames_at_least(1)  # the window starts at the first frame, not before
        probe.reset()
        await asyncio.sleep(window)  # the measurement window itself
        report = await probe.stop()
        return connect, report.in_order_share, report.frames
    finally:
        await alice.close()
        await bob.close()


async def main(runs: int, window: float) -> bool:
    with ice.loopback_ice():
        base = [await baseline_pair() for _ in range(runs)]
        async with Simulator() as sim:
            results = [await one_run(sim.url, i, window) for i in range(runs)]
    connects = [r[0] for r in results]
    shares = [r[1] for r in results]
    frames = [r[2] for r in results]
    b50 = statistics.median(base)
    c50, c95 = statistics.median(connects), pct(connects, 0.95)
    print(f"WebRTC on loopback, {runs} runs, {window:g} s media window")
    print(f"  baseline (bare aiortc pair, data channel open): p50 {b50 * 1000:6.1f} ms")
    print(
        f"  time to connect (join -> connect_to_peer, both): p50 {c50 * 1000:6.1f} ms  "
        f"p95 {c95 * 1000:6.1f} ms  max {max(connects) * 1000:6.1f} ms  "
        f"(x{c50 / b50:.2f} baseline)  target <= {TARGET_CONNECT_MS:g} ms"
    )
    print(
        f"  frames in order over {window:g} s: min {min(shares) * 100:.1f} %  "
        f"mean {statistics.mean(shares) * 100:.1f} %  frames/run {min(frames)}..{max(frames)}  "
        f"target {TARGET_IN_ORDER * 100:g} %"
    )
    ok = c95 * 1000 <= TARGET_CONNECT_MS and min(shares) >= TARGET_IN_ORDER
    print("  targets met" if ok else "  TARGETS MISSED")
    return ok


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--window", type=float, default=2.0)
    args = parser.parse_args()
    raise SystemExit(0 if asyncio.run(main(args.runs, args.window)) else 1)
