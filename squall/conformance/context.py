"""The run context: the one object a step handler receives, be it squall's step or a pack's.

A step pack is a module with ``STEP_ARGS`` (step name -> its argument model, built
on :mod:`.base`) and ``HANDLERS`` (step name -> ``async handler(ctx, args, step)``),
registered by :mod:`.models` (docs/scenarios.md, "Step packs"). The core steps
(:mod:`.steps_core`, :mod:`.expect`) and the WebRTC steps (:mod:`.steps_webrtc`)
are packs like any other and use nothing but this class, so a third-party pack can
do whatever they do.

A handler gets a :class:`RunContext` (``ctx``), its validated arguments and the
:class:`~.verdicts.StepResult` of its step (``step.started`` is when it began, in
protocol seconds). It returns ``None`` (it held on time) or a sentence (it held,
but late: NON-STRICT), or raises :class:`~.contract.StepFailed` (FAILED, or an
ERROR kind: :func:`~.contract.scenario_error`, :func:`~.contract.unimplemented`).

What a step has through ``ctx``: the run's clock and timescale; the simulator
(:attr:`sim`, its Python control plane) and the fault proxy (:attr:`proxy`); the
clients by name with their events, cursors and replies; :meth:`command` to send a
client's driver a command and await its reply; :meth:`until` to wait, with the run's
grace, until a check over events, the transcript or any state holds; :meth:`record`
to add to the transcript; variables (:meth:`render`, :attr:`vars`); per-run state
(:attr:`ext`); and teardown (:meth:`on_cleanup`, :meth:`later`).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from squall.clock import LoopClock

from .contract import (
    GRACE,
    LATE_SLACK,
    REPLY_WITHIN,
    StepFailed,
    scenario_error,
    short,
    unimplemented,
)
from .match import error_matches, matches

if TYPE_CHECKING:
    from squall.faults import ProxyServer
    from squall.simulator import Simulator

    from .models import ClientSpec, Scenario
    from .runner import Run
    from .template import Templates
    from .verdicts import StepResult

__all__ = ["RunContext", "StepFailed", "StepHandler"]

StepHandler = Callable[["RunContext", Any, "StepResult"], Awaitable["str | None"]]
"""``async handler(ctx, args, step)``: ``None`` (held on time), a sentence (held late) or
raises :class:`~.contract.StepFailed`."""

Record = dict[str, Any]


class RunContext:
    """What a step may use of the run it is part of (see the module docstring).

    One per run, made by the runner; it stays valid while the run's steps run.
    """

    def __init__(self, run: Run) -> None:
        self._run = run
        self.media_clock = LoopClock(1.0)
        """The wall clock media runs on: a media step's ``within`` and ``over`` are real
        seconds whatever the timescale (aiortc does not compress)."""

    # --- the scenario and its time --------------------------------------------------------------

    @property
    def scenario(self) -> Scenario:
        """The validated scenario being run."""
        return self._run.sc

    @property
    def clients(self) -> Mapping[str, ClientSpec]:
        """The scenario's clients by name (their credentials, ``via``, policy)."""
        return self._run.sc.clients

    @property
    def clock(self) -> LoopClock:
        """The run's clock: protocol seconds, shared by simulator, proxy and transcript."""
        return self._run.clock

    @property
    def timescale(self) -> float:
        """Real seconds per protocol second."""
        return self._run.timescale

    def now(self) -> float:
        """Protocol seconds since the run started (the transcript's ``t``)."""
        return self._run.now()

    def deadline(self, within: float) -> float:
        """Real seconds an expectation of ``within`` protocol seconds waits: measured as the
        simulator measures its own windows (floored, squall.clock.deadline_delay), plus GRACE."""
        return self.clock.real_deadline(within) + GRACE

    def late(self, step: StepResult, within: float, at: float) -> str | None:
        """A sentence when something that held at ``at`` (protocol seconds) was later than
        ``within`` after ``step`` started (beyond LATE_SLACK real seconds), else ``None``."""
        started = step.started or 0.0
        if (at - started) * self.timescale > self.clock.real_deadline(within) + LATE_SLACK:
            return f"held after {at - started:.2f}s of protocol time, later than within={within:g}s"
        return None

    # --- the parts ------------------------------------------------------------------------------

    @property
    def sim(self) -> Simulator:
        """The scenario's simulator: its methods are the control plane (``publish``,
        ``drop``, ``sessions()``, ...), the same the HTTP API and ``server.*`` steps use."""
        sim = self._run.sim
        if sim is None:
            raise RuntimeError("the simulator is not running: steps run only after setup")
        return sim

    @property
    def proxy(self) -> ProxyServer | None:
        """The fault proxy (``network: {proxy: true}``), or ``None`` when the scenario has none."""
        return self._run.proxy

    def require_proxy(self) -> ProxyServer:
        """The fault proxy, or an ERROR blamed on the scenario when it has none."""
        if self._run.proxy is None:
            raise scenario_error("a proxy (network: {proxy: true})", "the scenario has none")
        return self._run.proxy

    @property
    def endpoints(self) -> Mapping[str, str]:
        """Endpoint name -> ws:// URL: ``server``, ``server2``..., ``proxy``, ``dead``."""
        return self._run.endpoints

    def urls(self, names: Sequence[str]) -> list[str]:
        """The URLs of endpoint names; an unknown name is the scenario's fault."""
        out = []
        for ref in names:
            if ref not in self._run.endpoints:
                raise scenario_error(
                    f"an endpoint named {ref!r}", f"endpoints: {', '.join(self._run.endpoints)}"
                )
            out.append(self._run.endpoints[ref])
        return out

    # --- clients, their events and replies ----------------------------------------------------

    @property
    def users(self) -> Mapping[str, str]:
        """Client name -> the server-side user it is (its ``user``, else its token)."""
        return self._run.users

    @property
    def events(self) -> Mapping[str, list[Record]]:
        """Client name -> its event records so far, in order (``event``, ``data``, ``t``)."""
        return self._run.events

    @property
    def cursor(self) -> dict[str, int]:
        """Client name -> index into its events past the last one an expectation matched;
        an expectation that consumes events moves it."""
        return self._run.cursor

    @property
    def replies(self) -> Mapping[str, Record]:
        """An ``as`` name (or a client name: its last reply) -> the reply record, with ``cmd``."""
        return self._run.replies

    def event_matches(self, rec: Record, event: str, data: dict[str, Any] | None) -> bool:
        """Whether an event record is ``event`` with data partially matching ``data``."""
        return rec["event"] == event and (data is None or matches(data, rec.get("data")))

    def sessions_of(self, client: str) -> list[dict[str, Any]]:
        """The simulator's views of every session of ``client``'s user."""
        user = self._run.users[client]
        return [s for s in self.sim.sessions() if s["user"] == user]

    def session_of(self, client: str) -> dict[str, Any] | None:
        """``client``'s current session: its open one, else its newest; ``None`` if none."""
        views = self.sessions_of(client)
        if not views:
            return None
        views.sort(key=lambda s: (s["state"] == "open", int(str(s["id"])[1:] or 0)))
        return views[-1]

    async def command(
        self,
        client: str,
        cmd: str,
        args: dict[str, Any],
        *,
        wait: bool = False,
        store: str | None = None,
        expect_error: bool | str | None = None,
        real_timeout: float | None = None,
    ) -> dict[str, Any] | None:
        """Send ``client``'s driver one command (docs/driver.md); with ``wait``, its reply.

        ``args`` go as given (render variables first with :meth:`render`). The reply is
        kept in :attr:`replies` under ``store`` (an ``as`` name, whose ``result`` also
        becomes a variable) or the client's name. With ``wait`` the reply is checked:
        a failure is FAILED unless ``expect_error`` (``True``, or a regex its type or
        message must match) asks for one; an unknown command is UNIMPLEMENTED. The wait
        lasts REPLY_WITHIN protocol seconds plus 3 x GRACE, or ``real_timeout`` real
        seconds if longer (a command that itself waits, such as a media report).
        """
        driver = self._run.drivers[client]
        if driver.commands and cmd not in driver.commands and cmd != "configure":
            raise unimplemented(
                f"the client implements the {cmd!r} command",
                f"its driver offers: {', '.join(driver.commands)}",
            )
        ref, fut = driver.send(cmd, args)
        self.record(f"client:{client}", "command", ref=ref, cmd=cmd, args=args)
        key = store or client

        def done(f: asyncio.Future[Any]) -> None:
            if f.cancelled() or f.exception() is not None:
                return
            reply = f.result()
            self._run.replies[key] = {**reply, "cmd": cmd}
            if store and reply.get("ok"):
                self._run.templates.vars[store] = reply.get("result")

        fut.add_done_callback(done)
        if not wait:
            return None
        timeout = max(self.clock.real(REPLY_WITHIN) + GRACE * 3, real_timeout or 0.0)
        try:
            # real seconds: the protocol window already scaled, plus grace for the process
            reply = await asyncio.wait_for(asyncio.shield(fut), timeout)
        except TimeoutError:
            raise StepFailed(f"a reply to {cmd}", "no reply before the deadline") from None
        if (
            not reply.get("ok")
            and reply.get("type") == "CommandError"
            and "unknown command" in str(reply.get("error"))
        ):
            raise unimplemented(f"the client implements {cmd!r}", str(reply.get("error")))
        if expect_error:
            if reply.get("ok"):
                raise StepFailed(f"{cmd} to fail", f"it succeeded: {short(reply.get('result'))}")
            if isinstance(expect_error, str) and not error_matches(
                expect_error, reply.get("type"), reply.get("error")
            ):
                shown = expect_error if expect_error.startswith("/") else f"/{expect_error}/"
                raise StepFailed(
                    f"{cmd} to fail with an error matching {shown}",
                    f"{reply.get('type')}: {reply.get('error')}",
                )
        elif not reply.get("ok"):
            raise StepFailed(f"{cmd} to succeed", f"{reply.get('type')}: {reply.get('error')}")
        return dict(reply)

    # --- waiting -----------------------------------------------------------------------------

    async def until(
        self,
        check: Callable[[], Any],
        *,
        within: float | None = None,
        real: float | None = None,
        poll: float = 0.02,
    ) -> Any:
        """Re-evaluate ``check`` on every new transcript record until it returns something
        truthy (returned), or ``None`` once the deadline passes.

        The deadline is ``within`` protocol seconds with the run's grace (:meth:`deadline`),
        or ``real`` real seconds exactly (pass ``ctx.clock.real(d)`` for a protocol
        duration without grace, a media window as it is). State can change without a
        record (timers, aiortc): ``check`` is also re-run every ``poll`` real seconds.
        ``check`` may be a coroutine function (one that asks a driver, say); the records
        its own work adds do not wake it early.
        """
        if (within is None) == (real is None):
            raise TypeError("until() takes one of within= (protocol seconds) or real=")
        timeout = self.deadline(within) if within is not None else float(real or 0.0)
        changed = self._run.changed
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout  # real seconds: the deadline is already real
        while True:
            changed.clear()
            value = check()
            if inspect.isawaitable(value):
                value = await value
                changed.clear()  # what the check itself caused is no news
            if value:
                return value
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), min(remaining, poll))

    # --- the transcript, variables and per-run state -----------------------------------------

    @property
    def records(self) -> Sequence[Record]:
        """The transcript so far (read it; add to it with :meth:`record`)."""
        return self._run.records

    def record(self, src: str, kind: str, **fields: Any) -> Record:
        """Append one record to the transcript (scrubbed of the run's secrets); it wakes
        every :meth:`until`. ``src``: ``runner``, ``client:NAME``, ``peer:NAME``, ..."""
        return self._run.record(src, kind, **fields)

    def mute_users(self, users: Iterable[str]) -> None:
        """Leave these users' server records out of the transcript from now on (a crowd's
        thousands: docs/herd.md); the ``end`` record counts what was left out (``muted``),
        so nothing goes unsaid."""
        self._run.muted.users.update(users)

    @property
    def templates(self) -> Templates:
        """The run's variables and ``${...}`` / faker rendering."""
        return self._run.templates

    @property
    def vars(self) -> dict[str, Any]:
        """The scenario's variables (``set``, ``as``, ``capture``): read and write."""
        return self._run.templates.vars

    def render(self, value: Any) -> Any:
        """``value`` with every ``${name}`` and ``${fake.X}`` replaced; an unknown variable
        is the scenario's fault (ERROR)."""
        return self._run.templates.render(value)

    @property
    def ext(self) -> dict[str, Any]:
        """Per-run state of step packs: key it by your pack (``"webrtc.peers"``)."""
        return self._run.ext

    def on_cleanup(self, cleanup: Callable[[], Awaitable[Any]]) -> None:
        """Await ``cleanup()`` when the run ends (last added first; CLEANUP_TIMEOUT each)."""
        self._run.cleanups.append(cleanup)

    def later(self, delay: float, coro: Coroutine[Any, Any, Any]) -> None:
        """Run ``coro`` after ``delay`` protocol seconds, unless the run has ended by then
        (undoing a fault ``for`` a while: the run's end undoes it in any case)."""
        run = self._run

        def fire() -> None:
            task = asyncio.ensure_future(coro)
            run.tasks.add(task)
            task.add_done_callback(run.tasks.discard)

        run.timers.append(self.clock.call_later(delay, fire))
