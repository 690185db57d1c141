"""Seeded fault schedules: what the soak does, and when, as pure functions of ``random.Random``.

A :class:`Schedule` is everything one soak run plays: the server and client settings, the
workload (RPC calls and publishes, each with a key) and the faults (the *nemesis*, in
Jepsen's word), all at protocol times from the start. :func:`generate` draws one from a
seed and nothing else, so ``generate(7)`` is the same schedule on every machine: a failing
seed replays the same plan. (How the real network interleaves with the plan is not
deterministic; see :mod:`squall.chaos.soak`.)

Faults (docs/chaos.md):

- ``drop``: the server cuts the connection (``server.drop``: no close frame, or a code);
- ``reset`` / ``timeout``: the proxy's ``reset_peer`` (TCP RST) and ``timeout`` (data
  swallowed until the toxic goes, then the connection closes);
- ``latency``, ``slicer``, ``limit_data``: byte-level toxics for a while;
- ``ws_drop`` / ``ws_duplicate``: WebSocket frame toxics on connections opened while they
  exist (so the step also forces a reconnect, when ``reconnect`` says so);
- ``drain``: a server-requested reconnect, answered ``done``, ``pending`` then ``done``, or
  not at all;
- ``restart``: the server process dies (every socket cut) and a new one, with no memory of
  sessions, listens on the same port after ``duration``;
- ``toxic_storm``: several tasks update one latency toxic at once while traffic flows.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: Every fault kind, with its weight in a draw.
FAULT_WEIGHTS: Mapping[str, int] = {
    "drop": 3,
    "reset": 2,
    "timeout": 2,
    "latency": 2,
    "slicer": 2,
    "limit_data": 2,
    "ws_drop": 3,
    "ws_duplicate": 3,
    "drain": 2,
    "restart": 2,
    "toxic_storm": 2,
}

#: RPC methods the workload calls; the server answers each by a scripted rule (soak.py).
METHODS: Mapping[str, int] = {"echo": 4, "slow": 2, "boom": 1, "void": 1}

#: Frames a frame toxic picks, by a regular expression on the payload.
FRAME_MATCHES = ('"notification"', '"result"', '"call"', '"ping"|"pong"', "")

TOPIC = "chaos"


@dataclass(frozen=True)
class Fault:
    """One nemesis step: ``kind`` at ``at`` protocol seconds, lasting ``duration``."""

    at: float
    kind: str
    duration: float = 0.0
    params: Mapping[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        shown = " ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.at:7.3f} {self.kind} for {self.duration:.3f}s {shown}".rstrip()


@dataclass(frozen=True)
class Op:
    """One workload step: a ``call`` of ``method`` or a ``publish``, named by ``key``."""

    at: float
    f: str
    key: int
    method: str = ""


@dataclass(frozen=True)
class Settings:
    """Server and client settings drawn per schedule (protocol seconds)."""

    recovery_buffer_size: int
    recovery_window: float
    slow_delay: float
    call_timeout: float
    ping_interval: float = 1.0
    pong_timeout: float = 0.5
    open_timeout: float = 2.0
    backoff_initial: float = 0.05
    backoff_max: float = 0.5
    drain_answer_within: float = 1.0
    drain_deadline: float = 3.0


@dataclass(frozen=True)
class Schedule:
    seed: int
    duration: float
    settings: Settings
    faults: tuple[Fault, ...]
    workload: tuple[Op, ...]

    def describe(self) -> list[str]:
        """The plan as lines, for ``python -m squall.chaos --seed N``."""
        s = self.settings
        calls = sum(op.f == "call" for op in self.workload)
        lines = [
            f"schedule seed={self.seed} duration={self.duration:.3f}s calls={calls}"
            f" publishes={len(self.workload) - calls} faults={len(self.faults)}",
            f"settings recovery_buffer_size={s.recovery_buffer_size}"
            f" recovery_window={s.recovery_window:g}s slow_delay={s.slow_delay:.3f}s"
            f" call_timeout={s.call_timeout:g}s",
        ]
        lines.extend("fault " + f.describe() for f in self.faults)
        return lines


def generate(seed: int) -> Schedule:
    """The schedule of ``seed``: a pure function of it."""
    rng = random.Random(seed)
    duration = round(rng.uniform(8.0, 16.0), 3)
    return Schedule(
        seed=seed,
        duration=duration,
        settings=settings(rng),
        faults=faults(rng, duration),
        workload=workload(rng, duration),
    )


def settings(rng: random.Random) -> Settings:
    return Settings(
        # a small buffer sometimes, so that overflow (and its `lost` count) is exercised
        recovery_buffer_size=rng.choice((2, 5, 100)),
        # a short window sometimes, so that a restart-free outage can expire the session
        recovery_window=rng.choice((1.5, 60.0, 60.0)),
        slow_delay=round(rng.uniform(0.05, 1.0), 3),
        call_timeout=rng.choice((1.5, 3.0)),
    )


def workload(rng: random.Random, duration: float) -> tuple[Op, ...]:
    """Calls and publishes spread over the run; keys count up from 1 in time order."""
    count = rng.randint(20, 50)
    times = sorted(round(rng.uniform(0.0, duration), 3) for _ in range(count))
    names, weights = zip(*METHODS.items(), strict=True)
    ops = []
    for key, at in enumerate(times, 1):
        if rng.random() < 0.5:
            ops.append(Op(at, "call", key, rng.choices(names, weights)[0]))
        else:
            ops.append(Op(at, "publish", key))
    return tuple(ops)


def faults(rng: random.Random, duration: float) -> tuple[Fault, ...]:
    """Three to eight faults at random times; they may overlap."""
    kinds, weights = zip(*FAULT_WEIGHTS.items(), strict=True)
    out = []
    for _ in range(rng.randint(3, 8)):
        at = round(rng.uniform(0.2, duration * 0.9), 3)
        out.append(fault(rng, rng.choices(kinds, weights)[0], at))
    return tuple(sorted(out, key=lambda f: (f.at, f.kind)))


def fault(rng: random.Random, kind: str, at: float) -> Fault:
    """One fault of ``kind`` with its parameters drawn."""
    hold = round(rng.uniform(0.3, 3.0), 3)
    stream = rng.choice(("upstream", "downstream"))
    if kind == "drop":
        return Fault(at, kind, params={"code": rng.choice((None, None, 1011, 4000))})
    if kind == "reset":
        return Fault(at, kind, hold, {"stream": stream, "timeout": rng.choice((0, 50, 300))})
    if kind == "timeout":
        return Fault(at, kind, hold, {"stream": stream, "timeout": rng.choice((0, 200, 1000))})
    if kind == "latency":
        attrs = {"latency": rng.randint(5, 400), "jitter": rng.randint(0, 100)}
        return Fault(at, kind, hold, {"stream": stream, **attrs})
    if kind == "slicer":
        attrs = {
            "average_size": rng.randint(1, 64),
            "size_variation": rng.randint(0, 16),
            "delay": rng.randint(0, 2000),
        }
        return Fault(at, kind, hold, {"stream": stream, **attrs})
    if kind == "limit_data":
        return Fault(at, kind, hold, {"stream": stream, "bytes": rng.randint(1, 2000)})
    if kind in ("ws_drop", "ws_duplicate"):
        params: dict[str, Any] = {
            "stream": stream,
            "match": rng.choice(FRAME_MATCHES),
            "nth": rng.randint(1, 4),
            "count": rng.choice((1, 1, 2, 0)),
            "reconnect": rng.random() < 0.7,
        }
        if kind == "ws_duplicate":
            params["copies"] = rng.randint(1, 3)
        return Fault(at, kind, hold, params)
    if kind == "drain":
        answer = rng.choice(("done", "done", "pending", "none"))
        return Fault(at, kind, params={"answer": answer, "after": round(rng.uniform(0, 1.5), 3)})
    if kind == "restart":
        return Fault(at, kind, round(rng.uniform(0.0, 2.5), 3))
    if kind == "toxic_storm":
        tasks = rng.randint(2, 4)
        values = [[rng.randint(0, 120) for _ in range(rng.randint(3, 8))] for _ in range(tasks)]
        return Fault(at, kind, params={"stream": stream, "updates": values})
    raise ValueError(f"unknown fault kind {kind!r} (expected one of: {', '.join(FAULT_WEIGHTS)})")
