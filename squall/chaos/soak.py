"""The soak runner: one :class:`~squall.chaos.schedule.Schedule` played on a real stack.

The stack is real, per schedule: a :class:`~squall.simulator.Simulator` (reference dialect)
on 127.0.0.1, the fault proxy (:class:`~squall.faults.ProxyServer`, driven through its
Python API on this loop) in front of it, and the reference client
(:class:`~squall.client.StreamingClient`, spooling and recovery on) connected through the
proxy. Everything runs on one compressed clock (``LoopClock(timescale)``): a 15-second
schedule takes about 0.15 s of real time at the default 0.01.

What is deterministic: the plan. The schedule (settings, workload, faults and their
parameters) is a pure function of the seed, the proxy's random choices are seeded with it
and so is the client's backoff jitter. What is not: the real network and event loop. Two
runs of one seed play the same plan, but a frame may cross a socket just before a fault in
one run and just after it in the other, so their histories can differ; the checker's rules
hold for every interleaving, so a violation is a bug whichever one produced it.

The run, in order: connect and subscribe; play the workload and the faults at their
protocol times; *heal* (wait for every fault step to end, remove every toxic, make sure a
server runs); *quiet period* (wait until every call has settled and the client is
subscribed again, then publish a last notification and wait for it, so that a loss at the
end of the stream shows as a gap); then ``end`` and shut down. Real-time deadlines bound
every wait; one reached is recorded (``end`` says ``timed_out``) and the checker then finds
what was left hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any

from squall.client import ClientError, NotConnected, Policy, RemoteError, StreamingClient
from squall.client.streaming import DrainRequest
from squall.clock import LoopClock
from squall.faults import ApiError, FaultEvent, ProxyServer
from squall.simulator import Config, ControlError, Simulator

from .history import BOOM, History, Violation, check
from .schedule import TOPIC, Fault, Op, Schedule, generate

TIMESCALE = 0.01  # real seconds per protocol second
PROXY = "chaos"
USER = "chaos"  # the token, which the simulator takes as the user's name (not a secret)
SETUP_DEADLINE = 10.0  # real seconds, for connecting, starting and stopping things
QUIET_DEADLINE = 20.0  # real seconds for the quiet period; reached only when something hangs
BIND_ATTEMPTS = 20

TOXIC_TYPES = {
    "reset": "reset_peer",
    "timeout": "timeout",
    "latency": "latency",
    "slicer": "slicer",
    "limit_data": "limit_data",
    "ws_drop": "ws_drop",
    "ws_duplicate": "ws_duplicate",
}
TOXIC_ATTRIBUTES = {
    "reset": ("timeout",),
    "timeout": ("timeout",),
    "latency": ("latency", "jitter"),
    "slicer": ("average_size", "size_variation", "delay"),
    "limit_data": ("bytes",),
    "ws_drop": ("match", "nth", "count"),
    "ws_duplicate": ("match", "nth", "count", "copies"),
}


class SoakError(Exception):
    """The stack itself could not be run (a port would not bind, a setup step hung)."""


@dataclass(frozen=True)
class Outcome:
    """One schedule played: its history, what the checker found, and the real time it took."""

    schedule: Schedule
    history: History
    violations: tuple[Violation, ...]
    real_seconds: float

    @property
    def seed(self) -> int:
        return self.schedule.seed

    def report(self) -> str:
        """Every violation, each with the seed, the operation and its history excerpt."""
        return "\n\n".join(v.render(self.seed) for v in self.violations)


class Run:
    """The state of one schedule being played; see the module docstring for the phases."""

    def __init__(self, schedule: Schedule, timescale: float) -> None:
        self.schedule = schedule
        self.clock = LoopClock(timescale)
        self.history = History(schedule.seed)
        self.t0 = 0.0
        self.sim: Simulator | None = None
        self.incarnation = 0
        self.port = 0
        self.faults: ProxyServer | None = None
        self.client: StreamingClient | None = None
        self.aliases: dict[str, str] = {}
        self.started = False  # entries are recorded from the start of the plan on
        self.current: str | None = None  # the client's session, by alias
        self.known: str | None = None  # the session the application last heard of (connected)
        self.sent: set[int] = set()
        self.delivered: set[int] = set()
        self.calls: set[asyncio.Task[None]] = set()
        self.steps: set[asyncio.Task[None]] = set()
        self.drain_answer: dict[str, Any] = {"answer": "done", "after": 0.0}
        self.restarting = asyncio.Lock()  # overlapping restarts take turns: one port, one server
        self.failures: list[BaseException] = []  # the stack failed (not a violation): re-raised
        self._waiters: list[asyncio.Event] = []

    # --- plumbing -------------------------------------------------------------------------------

    def now(self) -> float:
        return self.clock.now() - self.t0

    def record(
        self, process: str, type: str, f: str, key: int | None = None, value: Any = None
    ) -> None:
        self.history.append(process, type, f, key, value, time=self.now())

    def alias(self, token: str | None) -> str | None:
        """A session's name in the history: its recovery token is a credential, never shown."""
        if token is None:
            return None
        if token not in self.aliases:
            self.aliases[token] = f"S{len(self.aliases) + 1}"
        return self.aliases[token]

    def wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.set()

    async def until(self, predicate: Callable[[], bool], deadline: float) -> bool:
        """Wait, woken by every client and server event, until ``predicate()``; False at the
        real-time ``deadline`` (monotonic seconds)."""
        loop = asyncio.get_running_loop()
        while not predicate():
            left = deadline - loop.time()
            if left <= 0:
                return False
            woken = asyncio.Event()
            self._waiters.append(woken)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), left)
        return True

    async def sleep_until(self, at: float) -> None:
        await self.clock.sleep(at - self.now())

    def spawn(self, into: set[asyncio.Task[None]], coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        into.add(task)
        task.add_done_callback(lambda t: self._done(into, t))

    def _done(self, into: set[asyncio.Task[None]], task: asyncio.Task[None]) -> None:
        into.discard(task)
        exc = None if task.cancelled() else task.exception()
        if exc is not None:
            self.failures.append(exc)
        self.wake()

    # --- the server -----------------------------------------------------------------------------

    async def start_server(self) -> Simulator:
        s = self.schedule.settings
        config = Config(
            recovery_buffer_size=s.recovery_buffer_size,
            recovery_window=s.recovery_window,
            drain_deadline=s.drain_deadline,
            drain_answer_within=s.drain_answer_within,
        )
        sim = Simulator(clock=self.clock, config=config)
        for attempt in range(BIND_ATTEMPTS):  # a restart binds the port the proxy dials
            try:
                await sim.listen(self.port)
                break
            except OSError as exc:
                if attempt == BIND_ATTEMPTS - 1 or not self.port:
                    raise SoakError(f"cannot listen on 127.0.0.1:{self.port}: {exc}") from exc
                await asyncio.sleep(0.01)
        self.port = int(sim.url.rsplit(":", 1)[1].rstrip("/"))
        sim.on_rpc("slow", handler=_echo_k, delay=s.slow_delay)
        sim.on_rpc("boom", error={"code": BOOM, "message": "scripted failure"})
        sim.on_rpc("void", no_reply=True)
        self.incarnation += 1
        incarnation = self.incarnation
        sim.core.transcript.listen(lambda rec: self.on_server(incarnation, rec))
        self.sim = sim
        return sim

    def on_server(self, incarnation: int, rec: dict[str, Any]) -> None:
        kind = rec.get("kind")
        if kind == "frame" and rec.get("dir") == "in" and rec.get("op") == "call":
            key = _call_key(rec.get("text"))
            if key is not None:
                self.record("server", "info", "recv", key, {"conn": f"{incarnation}/{rec['conn']}"})
        elif kind == "close":
            conn = f"{incarnation}/{rec.get('conn')}"
            self.record("server", "info", "close", None, {"conn": conn, "code": rec.get("code")})
        self.wake()

    async def crash_server(self) -> None:
        """The server process dies: every socket cut, no close frame, all state forgotten."""
        sim, self.sim = self.sim, None
        if sim is None:
            return
        for conn in list(sim.core.connections.values()):
            conn.link.abort()
        await asyncio.wait_for(sim.stop(), SETUP_DEADLINE)

    # --- the client -----------------------------------------------------------------------------

    def make_client(self, url: str) -> StreamingClient:
        s = self.schedule.settings
        policy = Policy(
            ping_interval=s.ping_interval,
            pong_timeout=s.pong_timeout,
            open_timeout=s.open_timeout,
            backoff_initial=s.backoff_initial,
            backoff_max=s.backoff_max,
            call_timeout=s.call_timeout,
            drain_answer_within=s.drain_answer_within,
        )
        client = StreamingClient(
            url,
            token=USER,
            clock=self.clock,
            rng=random.Random(self.schedule.seed),
            policy=policy,
        )
        client.on("*", self.on_client)
        return client

    def on_client(self, event: str, data: Any) -> None:
        client = self.client
        assert client is not None
        self.current = self.alias(client.recovery_token)
        if not self.started:
            self.known = self.current
            return
        if event == "notification":
            key = _payload_key(data.get("payload"))
            if key is not None:
                self.delivered.add(key)
                value = {"session": self.current, "seq": data["seq"]}
                self.record("client", "ok", "notify", key, value)
        elif event == "sent" and data.get("type") == "call":
            key = _call_key(data.get("text"))
            if key is not None:
                self.sent.add(key)
                self.record("client", "info", "sent", key, {"id": _frame_id(data.get("text"))})
        elif event == "gap":
            value = {"session": self.current, "expected": data["expected"], "seq": data["seq"]}
            self.record("client", "info", "gap", None, value)
        elif event == "duplicate":
            self.record("client", "info", "duplicate", None, {"session": self.current, **data})
        elif event in ("recovered", "recovery_failed"):
            value = {
                "recovered": event == "recovered",
                "reason": data.get("reason"),
                "lost": data.get("lost", 0),
                "replayed": data.get("replayed", 0),
                "previous": self.known,  # the session this answer is about, for the app
                "session": self.current,
            }
            self.record("client", "info", "recovery", None, value)
        elif event == "connected":
            self.known = self.current
            self.record("client", "info", "connected", None, {"session": self.current})
        elif event == "disconnected":
            value = {"code": data.get("code"), "reason": str(data.get("reason"))[:120]}
            self.record("client", "info", "disconnected", None, value)
        elif event == "error":
            value = {"kind": data.get("kind"), "message": str(data.get("message"))[:200]}
            self.record("client", "info", "error", None, value)
        elif event == "request_reconnect" and isinstance(data, DrainRequest):
            self.answer_drain(data)
        self.wake()

    def answer_drain(self, request: DrainRequest) -> None:
        answer = self.drain_answer["answer"]
        if answer == "done":
            request({"done": True})
        elif answer == "pending":
            request({"pending": True})
            self.spawn(self.steps, self.finish_drain(float(self.drain_answer["after"])))

    async def finish_drain(self, after: float) -> None:
        await self.clock.sleep(after)
        client = self.client
        if client is not None:
            with contextlib.suppress(NotConnected):  # the connection went meanwhile
                client.answer_drain("done")

    # --- the workload ---------------------------------------------------------------------------

    async def play_workload(self) -> None:
        for op in self.schedule.workload:
            await self.sleep_until(op.at)
            if op.f == "call":
                self.spawn(self.calls, self.call(op))
            else:
                self.publish(op.key)

    async def call(self, op: Op) -> None:
        client = self.client
        assert client is not None
        self.record("client", "invoke", "call", op.key, {"method": op.method})
        try:
            result = await client.call(op.method, {"k": op.key})
        except RemoteError as exc:
            self.record("client", "ok", "call", op.key, {"error": exc.code})
        except ClientError as exc:
            kind = "info" if op.key in self.sent else "fail"
            value = {"error": type(exc).__name__, "message": str(exc)[:160]}
            self.record("client", kind, "call", op.key, value)
        else:
            self.record("client", "ok", "call", op.key, {"result": result})

    def publish(self, key: int) -> None:
        self.record("control", "invoke", "publish", key)
        sim = self.sim
        if sim is None:
            self.record("control", "fail", "publish", key, {"error": "no server running"})
            return
        core = sim.core
        subscribers = set(core.topics.get(TOPIC, ())) | set(core.topics.get("*", ()))
        counts = sim.publish(TOPIC, {"k": key})
        owed = sorted([self.alias(s.recovery_token), s.seq] for s in subscribers)
        self.record("control", "ok", "publish", key, {"owed": owed, **counts})

    # --- the nemesis ----------------------------------------------------------------------------

    async def play_faults(self) -> None:
        for n, fault in enumerate(self.schedule.faults, 1):
            await self.sleep_until(fault.at)
            self.spawn(self.steps, self.step(n, fault))

    async def step(self, n: int, fault: Fault) -> None:
        value = {"step": n, **fault.params}
        self.record("nemesis", "invoke", fault.kind, None, value)
        try:
            outcome = await self.apply(n, fault)
        except ApiError as exc:
            self.record("nemesis", "fail", fault.kind, None, {**value, "error": str(exc)})
            return
        except ControlError as exc:  # nothing to act on (no session connected just now)
            outcome = {"skipped": str(exc)[:120]}
        self.record("nemesis", "ok" if not outcome else "info", fault.kind, None, outcome or None)

    async def apply(self, n: int, fault: Fault) -> dict[str, Any]:
        kind, p = fault.kind, fault.params
        if kind == "drop":
            return self.drop(p.get("code"))
        if kind == "drain":
            if self.sim is None:
                return {"skipped": "no server running"}
            self.drain_answer = dict(p)
            self.sim.request_reconnect(session=USER, reason="chaos drain")
            return {}
        if kind == "restart":
            async with self.restarting:
                await self.crash_server()
                self.record("nemesis", "info", "restart", None, {"step": n, "down": fault.duration})
                await self.clock.sleep(fault.duration)
                await self.start_server()
            return {}
        if kind == "toxic_storm":
            await self.storm(n, p)
            return {}
        return await self.toxic(n, fault)

    def drop(self, code: int | None) -> dict[str, Any]:
        if self.sim is None:
            return {"skipped": "no server running"}
        self.sim.drop(session=USER, code=code, reason="chaos drop" if code else "")
        return {}

    async def toxic(self, n: int, fault: Fault) -> dict[str, Any]:
        assert self.faults is not None
        collection = self.faults.collection
        name = f"{fault.kind}_{n}"
        attributes = {a: fault.params[a] for a in TOXIC_ATTRIBUTES[fault.kind]}
        body = {
            "name": name,
            "type": TOXIC_TYPES[fault.kind],
            "stream": fault.params["stream"],
            "attributes": attributes,
        }
        await collection.add_toxic(PROXY, body)
        outcome: dict[str, Any] = {}
        if fault.params.get("reconnect"):  # frame toxics act on connections opened from now on
            with contextlib.suppress(ControlError):
                outcome = self.drop(None)
        await self.clock.sleep(fault.duration)
        await collection.remove_toxic(PROXY, name)
        return outcome

    async def storm(self, n: int, params: Any) -> None:
        """Several tasks update one latency toxic at once while traffic flows (issue 10 #4)."""
        assert self.faults is not None
        collection = self.faults.collection
        name = f"storm_{n}"
        body = {"name": name, "type": "latency", "stream": params["stream"]}
        await collection.add_toxic(PROXY, {**body, "attributes": {"latency": 0}})

        async def updates(values: Iterable[int]) -> None:
            for latency in values:
                await collection.update_toxic(PROXY, name, {"attributes": {"latency": latency}})
                await asyncio.sleep(0)

        await asyncio.gather(*(updates(values) for values in params["updates"]))
        await collection.remove_toxic(PROXY, name)

    def on_fault(self, event: FaultEvent) -> None:
        if event.action in ("toxic.error", "api.error"):
            detail = {"action": event.action, "toxic": event.toxic, **event.detail}
            detail.pop("traceback", None)
            self.record("proxy", "info", "error", None, detail)

    # --- one run --------------------------------------------------------------------------------

    async def run(self) -> History:
        loop = asyncio.get_running_loop()
        self.t0 = self.clock.now()
        await self.start_server()
        self.faults = ProxyServer(
            port=0, clock=self.clock, seed=self.schedule.seed, on_event=self.on_fault
        )
        await self.faults.start()
        try:
            upstream = f"127.0.0.1:{self.port}"
            proxy = await self.faults.collection.create(
                {"name": PROXY, "listen": "127.0.0.1:0", "upstream": upstream}
            )
            self.client = self.make_client(f"ws://{proxy.listen}/")
            await asyncio.wait_for(self.client.connect(), SETUP_DEADLINE)
            await asyncio.wait_for(self.client.subscribe([TOPIC]), SETUP_DEADLINE)
            self.t0 = self.clock.now()
            self.started = True
            self.record("control", "info", "start", None, {"seed": self.schedule.seed})
            self.record("client", "info", "connected", None, {"session": self.current})
            await asyncio.gather(self.play_workload(), self.play_faults())
            await self.heal(loop.time() + QUIET_DEADLINE)
            await self.quiet(loop.time() + QUIET_DEADLINE)
        finally:
            await self.shutdown()
        if self.failures:
            error = self.failures[0]
            raise SoakError(f"seed {self.schedule.seed}: the stack failed: {error!r}") from error
        return self.history

    async def heal(self, deadline: float) -> None:
        """Let every fault step finish, then remove every toxic and make sure a server runs."""
        await self.until(lambda: not self.steps, deadline)
        for task in list(self.steps):  # reached only past the deadline
            task.cancel()
        assert self.faults is not None
        await self.faults.collection.reset()
        if self.sim is None:
            await self.start_server()
        self.record("control", "info", "heal")

    def subscribed(self) -> bool:
        """The client is connected and the server has its session subscribed on a live socket."""
        sim, client = self.sim, self.client
        if sim is None or client is None or not client.is_connected():
            return False
        sessions = sim.core.topics.get(TOPIC, ())
        return any(s.connection is not None and not s.connection.closed for s in sessions)

    async def quiet(self, deadline: float) -> None:
        settled = await self.until(lambda: not self.calls and self.subscribed(), deadline)
        last = len(self.schedule.workload) + 1
        self.publish(last)
        delivered = await self.until(lambda: last in self.delivered and not self.calls, deadline)
        value: dict[str, Any] = {"session": self.current}
        if not (settled and delivered):
            value["timed_out"] = True
        self.record("control", "info", "end", None, value)

    async def shutdown(self) -> None:
        for task in (*self.calls, *self.steps):
            task.cancel()
        if self.calls or self.steps:
            await asyncio.gather(*self.calls, *self.steps, return_exceptions=True)
        if self.client is not None:
            await asyncio.wait_for(self.client.disconnect(), SETUP_DEADLINE)
        if self.faults is not None:
            await asyncio.wait_for(self.faults.stop(), SETUP_DEADLINE)
        await self.crash_server()


def _echo_k(params: Any) -> Any:
    return {"k": params["k"]} if isinstance(params, dict) else params


def _parse(text: Any) -> dict[str, Any] | None:
    if not isinstance(text, str):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _call_key(text: Any) -> int | None:
    frame = _parse(text)
    params = frame.get("params") if frame else None
    return _payload_key(params)


def _frame_id(text: Any) -> Any:
    frame = _parse(text)
    return frame.get("id") if frame else None


def _payload_key(payload: Any) -> int | None:
    key = payload.get("k") if isinstance(payload, dict) else None
    return key if isinstance(key, int) else None


async def play(schedule: Schedule, *, timescale: float = TIMESCALE) -> Outcome:
    """Play one schedule on a fresh stack and check its history."""
    started = time.perf_counter()
    history = await Run(schedule, timescale).run()
    violations = tuple(check(history))
    return Outcome(schedule, history, violations, time.perf_counter() - started)


async def soak(seeds: Iterable[int], *, timescale: float = TIMESCALE) -> list[Outcome]:
    """Play the schedule of every seed, one after the other."""
    return [await play(generate(seed), timescale=timescale) for seed in seeds]
