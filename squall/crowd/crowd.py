"""A crowd: N reference-client cores driven by one asyncio driver, on one event loop.

:class:`~squall.client.streaming.StreamingClient` runs one core; a crowd runs thousands,
with one shared pump instead of an emitter, a future per ticket and a waiter list per
client, so what a client costs is its core and its socket. Each core gets the crowd's
policy and its own seeded random source (seed ``seed * 1_000_003 + index``): a herd
whose cores shared one source, or one seed, would draw the same jitter and look
synchronised whatever its policy.

The driver carries out the core's actions as ``StreamingClient`` does (a real websockets
connection per ``OpenSocket``, ``clock.call_later`` per ``SetTimer``), with one
difference: the ``open``, ``pong`` and ``drain_close`` timers time a round trip over real
sockets, so under a compressed clock they are floored like any network deadline
(:func:`squall.clock.deadline_delay`), and never last less than ``network_floor`` real
seconds (30 ms per member by default): a thousand handshakes on one loop must not time
out because a protocol second lasts 10 ms, nor because the loop runs the other 999 first.
A member that gave up on a handshake the server had already recovered would lose the
replay that handshake carried, and the storm would measure the harness, not the policy.

What each member saw (loss, scheduled attempts, back, recovery, numbered notifications)
is kept per member for :mod:`.metrics`; :meth:`Crowd.timelines` reads it from a mark.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import ssl
from collections import Counter
from collections.abc import Sequence
from typing import Any, Literal

from websockets.asyncio.client import connect
from websockets.asyncio.connection import broadcast
from websockets.exceptions import ConnectionClosed, InvalidStatus

from squall.client.actions import (
    CancelTimer,
    Close,
    Emit,
    Loopback,
    OpenSocket,
    Reject,
    Resolve,
    Send,
    SetTimer,
)
from squall.client.core import ClientCore
from squall.client.errors import ConnectionFailed
from squall.client.wire import Opening, PreludeFailed, client_wire
from squall.clock import Clock, LoopClock, deadline_delay

from .member import Member
from .metrics import Timeline
from .seeds import SeedPolicy, seed_policy

DrainAnswer = Literal["done", "pending", "none"]
NETWORK_TIMERS = frozenset({"open", "pong", "drain_close"})
"""Core timers that time a round trip over real sockets: floored under compression. The
``drain_close`` grace waits for the server's 1012 after ``done``: a member that left
before the close arrived would drop, unread, what the server wrote before it (delivered,
so never replayed)."""
FDS_PER_CLIENT = 1
NETWORK_FLOOR_PER_CLIENT = 0.03
"""Real seconds of network-timer floor per member: the loop that runs a member's handshake
runs every other member's too, so a timer that times one round trip must allow for the
herd queued ahead of it (1,000 members: 30 s; 10,000: 300 s), on a machine whose
cores are shared: a handshake that times out here measures the harness, not the policy."""


def _reason(code: Any, reason: Any) -> str:
    """A failed attempt's code and reason, short enough to count alike ones together."""
    text = " ".join(str(reason or "").split())
    return f"{code if code is not None else '-'} {text[:80]}"


def raise_fd_limit() -> int:
    """Raise the soft limit on open files to the hard one (as bench_simulator.py does);
    returns the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def check_fd_budget(sockets: int, what: str) -> None:
    """ValueError, before anything opens, when ``sockets`` more open files cannot fit."""
    limit = raise_fd_limit()
    import os

    in_use = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0
    if in_use + sockets + 64 > limit:
        raise ValueError(
            f"{what} needs about {sockets} more open files; {in_use} are open and this"
            f" process may hold {limit} (RLIMIT_NOFILE hard limit): use a smaller size, or"
            " put the simulator in another process (bench/bench_herd.py does)"
        )


class Crowd:
    """N reference-client cores on one loop, connected to ``urls`` as users ``<prefix><i>``.

    ``policy``: a :class:`~.seeds.SeedPolicy`, a seed policy's name, or Policy fields.
    ``topics``: subscribed by every member on connect. ``drain_answer``: what every member
    answers a ``request_reconnect`` with (``none``: nothing, so its answer timer fires).
    """

    def __init__(
        self,
        urls: Sequence[str],
        size: int,
        *,
        policy: SeedPolicy | str | dict[str, Any] | None = None,
        clock: Clock | None = None,
        seed: int = 0,
        dialect: str = "reference",
        prefix: str = "herd-",
        topics: Sequence[str] = (),
        drain_answer: DrainAnswer = "done",
        name: str = "crowd",
        network_floor: float | None = None,
    ) -> None:
        if size < 1:
            raise ValueError(f"a crowd needs at least one client, got size {size}")
        if drain_answer not in ("done", "pending", "none"):
            raise ValueError(f"drain_answer must be done, pending or none, got {drain_answer!r}")
        self.name = name
        self.seed_policy = policy if isinstance(policy, SeedPolicy) else seed_policy(policy)
        self.clock: Clock = clock or LoopClock()
        self.topics = list(topics)
        self.drain_answer = drain_answer
        self.dialect = dialect
        self.epoch = 0.0  # storm mark: timelines read from here
        #: real seconds a network timer lasts at least (NETWORK_FLOOR_PER_CLIENT)
        self.network_floor = (
            size * NETWORK_FLOOR_PER_CLIENT if network_floor is None else network_floor
        )
        self.members = [
            Member(
                i,
                f"{prefix}{i}",
                ClientCore(
                    list(urls),
                    token=f"{prefix}{i}",
                    policy=self.seed_policy.policy,
                    rng=self.seed_policy.rng(seed * 1_000_003 + i),
                    wire=client_wire(dialect),
                ),
            )
            for i in range(size)
        ]
        self.ready_count = 0
        self.subscribed_count = 0
        self.lost_count = 0  # members that lost their connection since the mark
        #: why members lost a connection and why attempts failed, counted across the crowd
        #: (``"attempt: - connect failed: [Errno 111] ..."``, ``"lost: 1006 connection lost"``)
        self.failures: Counter[str] = Counter()
        self._all_ready = asyncio.Event()
        self._changed = asyncio.Event()
        self._closers: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self.members)

    @property
    def users(self) -> list[str]:
        return [m.user for m in self.members]

    # --- crowd-wide actions ------------------------------------------------------------------

    def connect_all(self) -> None:
        """Every member starts connecting now (the loop runs the handshakes)."""
        for member in self.members:
            self._connect(member)

    def _connect(self, member: Member) -> None:
        now = self.clock.now()
        if self.topics and not member.core.wanted:
            member.core.subscribe(self.topics, now)  # sent once connected
        member.core.connect(now)
        self._pump(member)

    async def start(self, *, batch: int = 200, timeout: float = 60.0) -> None:
        """Connect every member, ``batch`` handshakes at a time (a listen backlog is finite:
        setting a crowd up is not the storm under test), and wait until all are ready and
        the server has confirmed their topics.
        ``timeout`` is real seconds; TimeoutError says how many were ready."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for lo in range(0, len(self.members), batch):
            for member in self.members[lo : lo + batch]:
                self._connect(member)
            target = min(lo + batch, len(self.members))
            while self.ready_count < target:
                await self._wait_change(deadline, f"{target} of the crowd connected")
        await self.wait_ready(max(0.0, deadline - loop.time()))
        while self.topics and self.subscribed_count < len(self.members):
            await self._wait_change(deadline, "every member subscribed")

    async def wait_ready(self, timeout: float) -> None:
        """Until every member is connected; TimeoutError (real seconds) with the counts."""
        if self.ready_count >= len(self.members):
            return
        try:
            await asyncio.wait_for(self._all_ready.wait(), timeout)
        except TimeoutError:
            raise TimeoutError(
                f"{self.ready_count} of {len(self.members)} connected after {timeout:g} s"
                f" ({self.describe_counts()})"
            ) from None

    async def _wait_change(self, deadline: float, what: str) -> None:
        loop = asyncio.get_running_loop()
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise TimeoutError(f"not {what} in time ({self.describe_counts()})")
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), min(remaining, 0.5))

    def counts(self) -> dict[str, int]:
        """How many members are in each client status (idle, connected, reconnecting...)."""
        return dict(Counter(m.core.status.value for m in self.members))

    def describe_counts(self) -> str:
        return ", ".join(f"{n} {s}" for s, n in sorted(self.counts().items()))

    def mark(self) -> float:
        """Start a storm's record here: :meth:`timelines` reads what follows."""
        self.epoch = self.clock.now()
        self.lost_count = 0
        return self.epoch

    def timelines(self) -> list[Timeline]:
        """Each member since :meth:`mark`: first loss, attempts after it, back, recovery."""
        out = []
        since = self.epoch
        for m in self.members:
            lost = next((t for t in m.lost if t >= since), None)
            if lost is None:
                out.append(Timeline(None))
                continue
            back = next((t for t in m.back if t >= lost), None)
            attempts = tuple(a for a in m.attempts if a >= lost and (back is None or a <= back))
            answer = next((ok for t, ok in m.recovered if t >= lost), None)
            out.append(Timeline(lost, attempts, back, answer))
        return out

    def received(self) -> list[list[int]]:
        return [list(m.received) for m in self.members]

    async def close(self) -> None:
        """Disconnect every member for good and wait for its socket to end."""
        for member in self.members:
            member.core.disconnect(self.clock.now())
            self._pump(member)
        tasks = [t for m in self.members for t in m.tasks.values() if not t.done()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=10.0)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5.0)
        if self._closers:
            await asyncio.wait(set(self._closers), timeout=5.0)
        for member in self.members:
            for timer in member.timers.values():
                timer.cancel()
            member.timers.clear()

    # --- the pump ----------------------------------------------------------------------------

    def _pump(self, member: Member) -> None:
        core = member.core
        while actions := core.actions():
            for action in actions:
                self._do(member, action)

    def _do(self, member: Member, action: Any) -> None:
        if isinstance(action, Send):
            ws = member.sockets.get(action.conn)
            if ws is not None:
                broadcast([ws], action.text)  # synchronous write: frames stay in core order
        elif isinstance(action, Emit):
            self._on_event(member, action.event, action.data)
        elif isinstance(action, SetTimer):
            old = member.timers.pop(action.name, None)
            if old is not None:
                old.cancel()
            now = self.clock.now()
            delay = action.at - now
            if action.name in NETWORK_TIMERS:
                floor = self.network_floor / self.clock.timescale
                delay = max(deadline_delay(self.clock, delay), floor)
            member.timers[action.name] = self.clock.call_later(
                delay, self._fire, member, action.name
            )
        elif isinstance(action, CancelTimer):
            old = member.timers.pop(action.name, None)
            if old is not None:
                old.cancel()
        elif isinstance(action, Resolve | Reject):
            if isinstance(action, Reject):
                member.errors.append(f"{type(action.error).__name__}: {action.error}")
        elif isinstance(action, Loopback):
            member.core.receive_message(action.conn, action.message, self.clock.now())
        elif isinstance(action, OpenSocket):
            member.tasks[action.conn] = asyncio.ensure_future(self._run_socket(member, action))
        elif isinstance(action, Close):
            self._close(member, action)

    def _on_event(self, member: Member, event: str, data: dict[str, Any]) -> None:
        now = self.clock.now()
        if event == "connected":
            member.back.append(now)
            if not member.ready:
                member.ready = True
                self.ready_count += 1
                if self.ready_count >= len(self.members):
                    self._all_ready.set()
            self._changed_now()
        elif event == "disconnected" or event == "closed":
            if event == "disconnected":
                self.failures["lost: " + _reason(data.get("code"), data.get("reason"))] += 1
            if member.ready:
                member.ready = False
                self.ready_count -= 1
                self._all_ready.clear()
            if event == "disconnected" and data.get("reconnecting"):
                if not member.lost or member.lost[-1] < self.epoch:
                    self.lost_count += 1  # its first loss since the mark
                member.lost.append(now)
            elif event == "closed":
                member.final = str(data.get("reason"))
            self._changed_now()
        elif event == "subscribed" and not member.subscribed:
            member.subscribed = True
            self.subscribed_count += 1
            self._changed_now()
        elif event == "connect_failed":
            self.failures["attempt: " + _reason(data.get("code"), data.get("reason"))] += 1
        elif event == "reconnecting":
            member.attempts.append(now + float(data.get("delay") or 0.0))
        elif event == "notification":
            payload = data.get("payload")
            if isinstance(payload, dict) and isinstance(payload.get("n"), int):
                member.received.append(payload["n"])
        elif event == "recovered":
            member.recovered.append((now, True))
        elif event == "recovery_failed":
            member.recovered.append((now, False))
        elif event == "duplicate":
            member.duplicates += 1
        elif event == "gap":
            member.gaps += 1
        elif event == "request_reconnect" and self.drain_answer != "none":
            member.core.answer_drain(self.drain_answer, now)  # queued: this pump sends it

    def _changed_now(self) -> None:
        self._changed.set()

    def _fire(self, member: Member, name: str) -> None:
        member.timers.pop(name, None)
        member.core.timer_fired(name, self.clock.now())
        self._pump(member)

    def _close(self, member: Member, action: Close) -> None:
        ws = member.sockets.get(action.conn)
        if ws is None:
            task = member.tasks.get(action.conn)
            if task is not None and not task.done():
                task.cancel()  # still opening: stop the handshake
            return
        if action.abort:
            ws.transport.abort()
            return
        closer = asyncio.ensure_future(ws.close(action.code, action.reason))
        self._closers.add(closer)
        closer.add_done_callback(self._closers.discard)

    def _lost(self, member: Member, conn: int, reason: str, **kw: Any) -> None:
        member.core.socket_closed(conn, None, reason, self.clock.now(), **kw)
        self._pump(member)

    async def _run_socket(self, member: Member, action: OpenSocket) -> None:
        conn, core = action.conn, member.core
        try:
            opening = await core.wire.prelude(Opening(action.url, dict(action.headers)), core.token)
            ws = await connect(
                opening.url,
                additional_headers=opening.headers or None,
                ping_interval=None,  # the protocol's own keepalive (§3)
                compression=None,
                proxy=None,
                open_timeout=None,  # the core's "open" timer covers handshake + auth
                close_timeout=2.0,
                max_size=None,
            )
        except asyncio.CancelledError:
            self._lost(member, conn, "connect cancelled")
            member.tasks.pop(conn, None)
            return
        except PreludeFailed as exc:
            error = ConnectionFailed(str(exc), core.attempt) if exc.final else None
            self._lost(member, conn, str(exc), fatal=exc.final, error=error)
            member.tasks.pop(conn, None)
            return
        except InvalidStatus as exc:
            status = exc.response.status_code
            self._lost(
                member, conn, f"handshake refused: HTTP {status}", fatal=status in (401, 403)
            )
            member.tasks.pop(conn, None)
            return
        except (OSError, ssl.SSLError, Exception) as exc:  # refused, reset...: each is a retry
            self._lost(member, conn, f"connect failed: {exc}")
            member.tasks.pop(conn, None)
            return
        member.sockets[conn] = ws
        try:
            core.socket_opened(conn, self.clock.now())
            self._pump(member)
            async for text in ws:
                core.receive_frame(conn, text, self.clock.now())
                self._pump(member)
        except ConnectionClosed:
            pass
        except asyncio.CancelledError:
            ws.transport.abort()
        finally:
            member.sockets.pop(conn, None)
            member.tasks.pop(conn, None)
            rcvd = ws.protocol.close_rcvd  # None: no close frame from the server (1006)
            code = rcvd.code if rcvd else None
            reason = rcvd.reason if rcvd else "connection lost"
            core.socket_closed(conn, code, reason, self.clock.now())
            self._pump(member)
