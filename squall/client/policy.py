"""Client policy: every knob with its default and the seed it comes from, and pure retry rules.

All durations are protocol seconds; the driver's clock decides how long one
lasts in real time (``LoopClock(timescale=0.01)`` makes them 100x shorter).

Defaults and where they come from (docs/protocol.md §10; seed-protocols.md):

==========================  ========  ============================================================
setting                     default   seed / why
==========================  ========  ============================================================
ping_interval               None      the server's ``heartbeat`` (30 s); Genesys/Mixer 15 s
pong_timeout                10 s      Genesys 15 s; must not exceed the ping interval
max_missed_pongs            2         Genesys: "the second consecutive miss" drops the socket
reconnect                   True      every seed reconnects by itself
backoff_initial             0.5 s     Mixer 500 ms, Genesys v14 250 ms, socket.io 1 s
backoff_multiplier          2.0       every seed with a backoff
backoff_max                 30 s      Genesys v14 5 s, socket.io 5 s, Genesys v19 90 s, Mixer 64 s
jitter                      0.2       Genesys v14 ``randomisationFactor`` 0.2; ±20 % here
max_attempts                None      unlimited, as Mixer, RingCentral, socket.io, Genesys v19
immediate_first_retry       False     no seed retries at 0 s; the bench turns it on
open_timeout                10 s      Genesys v14 connect timeout; socket open + ``authenticated``
drain_answer_within         1 s       Genesys: no answer within 1 s -> reconnect
drain_deadline              600 s     Genesys: pending is honoured 10 minutes at most
drain_close_grace           2 s       squall: after ``done`` the server should close 1012 at once
call_timeout                20 s      Mixer ``callTimeout``
recover                     True      RingCentral ``autoRecover``
resubscribe                 True      RingCentral re-creates subscriptions after a failed recovery
auth_via                    "query"   ``?token=``; also "header" or "frame" (§2)
debug                       False     RingCentral ``debugMode``: every frame in and out logged
ca_file                     None      the CA (PEM) that ``wss://`` certificates must chain to;
                                      None: the system's trust store. Verification is never off
==========================  ========  ============================================================
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any, Literal

from squall.protocol.errors import CLOSE_SERVICE_RESTART


@dataclass(frozen=True)
class Policy:
    """How one client behaves. Frozen: build a new one with :meth:`replace`."""

    ping_interval: float | None = None
    pong_timeout: float = 10.0
    max_missed_pongs: int = 2
    reconnect: bool = True
    backoff_initial: float = 0.5
    backoff_multiplier: float = 2.0
    backoff_max: float = 30.0
    jitter: float = 0.2
    max_attempts: int | None = None
    immediate_first_retry: bool = False
    open_timeout: float = 10.0
    drain_answer_within: float = 1.0
    drain_deadline: float = 600.0
    drain_close_grace: float = 2.0
    call_timeout: float = 20.0
    recover: bool = True
    resubscribe: bool = True
    retry_auth_failure: bool = False  # deliberately broken: only for proving scenarios catch it
    auth_via: Literal["query", "header", "frame"] = "query"
    permanent_id: str | None = None
    debug: bool = False
    ca_file: str | None = None

    def __post_init__(self) -> None:
        problems = []
        for name in ("pong_timeout", "backoff_initial", "backoff_max", "open_timeout"):
            if not getattr(self, name) > 0:
                problems.append(f"{name} must be > 0, got {getattr(self, name)!r}")
        if self.ping_interval is not None and not self.ping_interval > 0:
            problems.append(f"ping_interval must be > 0 or None, got {self.ping_interval!r}")
        if self.ping_interval is not None and self.pong_timeout > self.ping_interval:
            problems.append(
                f"pong_timeout ({self.pong_timeout:g}) must not exceed ping_interval"
                f" ({self.ping_interval:g}): a ping's answer is judged before the next ping"
            )
        if self.max_missed_pongs < 1:
            problems.append(f"max_missed_pongs must be >= 1, got {self.max_missed_pongs}")
        if self.backoff_multiplier < 1:
            problems.append(f"backoff_multiplier must be >= 1, got {self.backoff_multiplier}")
        if not 0 <= self.jitter < 1:
            problems.append(f"jitter must be in [0, 1), got {self.jitter}")
        if self.max_attempts is not None and self.max_attempts < 1:
            problems.append(f"max_attempts must be >= 1 or None, got {self.max_attempts}")
        for name in ("drain_answer_within", "drain_deadline", "drain_close_grace", "call_timeout"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.ca_file is not None and not (isinstance(self.ca_file, str) and self.ca_file):
            problems.append(f"ca_file must be the path of a PEM file, got {self.ca_file!r}")
        if self.auth_via not in ("query", "header", "frame"):
            problems.append(f"auth_via must be query, header or frame, got {self.auth_via!r}")
        if problems:
            raise ValueError("invalid client policy: " + "; ".join(problems))

    def replace(self, **changes: Any) -> Policy:
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown policy setting(s): {', '.join(unknown)}")
        return Policy(**{**{f.name: getattr(self, f.name) for f in fields(self)}, **changes})


def backoff_delays(policy: Policy, rng: random.Random) -> Iterator[float]:
    """Delays before reconnect attempts 1, 2, ...; ends after ``max_attempts``.

    Attempt n waits ``min(initial * multiplier**(n-1), max)`` scaled by a uniform
    factor in ``[1 - jitter, 1 + jitter]`` (jitter spreads a herd of clients that
    lost one server at the same instant). With ``immediate_first_retry`` the
    first attempt waits 0 and the schedule starts at attempt 2.
    """
    attempt = 0
    base = policy.backoff_initial
    while policy.max_attempts is None or attempt < policy.max_attempts:
        attempt += 1
        if attempt == 1 and policy.immediate_first_retry:
            yield 0.0
            continue
        spread = 1.0 + policy.jitter * (2.0 * rng.random() - 1.0) if policy.jitter else 1.0
        yield min(base, policy.backoff_max) * spread
        base = min(base * policy.backoff_multiplier, policy.backoff_max)


class Verdict(StrEnum):
    """What a lost connection calls for."""

    FATAL = "fatal"  # never reconnect
    IMMEDIATE = "immediate"  # reconnect at once, no backoff
    BACKOFF = "backoff"  # reconnect after the next backoff delay


def classify_close(code: int | None, *, auth_failed: bool, policy: Policy) -> Verdict:
    """The reconnect rule in one place (docs/protocol.md §9 close-code table).

    - ``auth_failed`` was received: final (§2), unless the policy is deliberately broken;
    - 1012: a drain (§6), reconnect at once;
    - anything else (1000/1001 from the server, 1006, 1008 without ``auth_failed``,
      1011...): reconnect with backoff.
    """
    if auth_failed and not policy.retry_auth_failure:
        return Verdict.FATAL
    if not policy.reconnect:
        return Verdict.FATAL
    if code == CLOSE_SERVICE_RESTART:
        return Verdict.IMMEDIATE
    return Verdict.BACKOFF
