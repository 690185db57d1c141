"""Run one scenario: the real simulator, the real proxy and real client processes, one clock.

:class:`Run` owns everything a scenario starts (a :class:`Simulator` on
127.0.0.1 port 0, a :class:`ProxyServer`'s collection when the scenario has a
network, one driver process per client) and stops all of it when the scenario
ends, faults included. Steps run in order; each expectation waits on the
transcript (never a blind sleep) until it holds or its deadline passes.

Blame: a step that fails because of the client is FAILED; one that fails for any
other reason is ERROR, with :class:`~.verdicts.Blame` saying whose: the scenario
(a server step that cannot be carried out, an unknown variable), the client's
driver (it did not start) or squall (any other exception, with where it was raised).

Steps: every step, the core ones included, is a step pack's (:mod:`.packs`); its
handler gets the run's :class:`~.context.RunContext` (``self.ctx``), never the
:class:`Run` itself. What a step may raise and how long its waits last is
:mod:`.contract`'s (``StepFailed``, ``GRACE``, ...), re-exported here.

Times: a scenario's durations are protocol seconds; the shared
``LoopClock(timescale)`` turns them into real ones. Deadlines get a real-time
``GRACE`` on top, because processes and sockets do not run at the timescale; an
expectation met after ``within`` (plus ``LATE_SLACK`` real seconds) is *late*,
which makes the verdict NON-STRICT, not FAILED. The same ``GRACE`` is the clock's
``deadline_floor``: a window the simulator gives the client to answer in (a drain's
``answer_within``, the auth timeout) never lasts less real time than the lesser of
its protocol duration and ``GRACE`` (:func:`squall.clock.deadline_delay`), because
the answer crosses real sockets; expectations measure ``within`` the same way.

Secrets: a run's :class:`~squall.secrets.Secrets` knows the scenario's tokens and
JWTs from the start and the recovery tokens the simulator issues as it issues
them (the simulator's transcript shares the registry). Every record passes
through :meth:`Run.record`, which scrubs it; the driver's stderr is scrubbed
where it is quoted; and the :class:`Result` is sealed (scrubbed once more, with
everything learned by then) before it leaves :meth:`Run.execute`.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

from squall.clock import LoopClock, Timer
from squall.faults import FaultEvent, ProxyServer
from squall.secrets import Secrets
from squall.simulator import AuthPolicy, Config, ControlError, Simulator

from . import models as m
from .clients import DriverError, DriverProcess, client_label, command_line, profile
from .context import RunContext
from .contract import (
    CLEANUP_TIMEOUT,
    GRACE,
    LATE_SLACK,
    NOISY_EVENTS,
    StepFailed,
    scenario_error,
    squall_bug,
    unimplemented,
)
from .loader import Loaded
from .match import dig
from .packs import pack_of
from .template import Templates
from .verdicts import Blame, Failure, Result, StepResult, StepStatus, Verdict


class ExternalServer:
    """Stands in for the simulator when a run targets a server squall does not run
    (``Run(server_url=...)``): it has no control plane, so every ``server.*`` step and
    every ``expect.server`` on it is UNIMPLEMENTED, with the reason, never a fake pass."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.urls = [url]
        self.http_url = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise unimplemented(
            f"squall's control plane ({name})",
            f"the run targets the external server {self.url}, which has none",
        )


class MutedUsers:
    """Which server records belong to muted users: by ``user``, then by the connections and
    sessions seen with one. A handshake's ``open`` names no user: one that presented
    credentials is held until the next server record, which the core writes for the same
    connection in the same call (its recovery, session or auth), and goes or stays with it."""

    def __init__(self) -> None:
        self.users: set[str] = set()
        self.count = 0
        self._ids: set[str] = set()  # connection and session ids of muted users
        self._held: dict[str, Any] | None = None

    def admit(self, rec: dict[str, Any]) -> list[dict[str, Any]]:
        """The records to keep now: ``rec``'s decision, and the held ``open``'s before it."""
        ids = self._ids
        params = rec.get("params")
        refs = [rec.get("conn"), rec.get("sid"), rec.get("session")]
        if isinstance(params, dict):
            refs.append(params.get("session"))
        muted = rec.get("user") in self.users or any(r in ids for r in refs if r)
        out: list[dict[str, Any]] = []
        held, self._held = self._held, None
        if held is not None:
            if muted:
                refs.append(held.get("conn"))
                self.count += 1
            else:
                out.append(held)
        if muted:
            ids.update(r for r in refs if isinstance(r, str))
            self.count += 1
        elif rec.get("kind") == "open" and rec.get("credentials"):
            self._held = rec
        else:
            out.append(rec)
        return out

    def flush(self) -> list[dict[str, Any]]:
        """The held ``open``, if any (the run ends): kept, nothing said against it."""
        held, self._held = self._held, None
        return [] if held is None else [held]


def free_dead_url() -> str:
    """A ws:// URL on a port nothing listens on: bound, then closed."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"ws://127.0.0.1:{port}/"


class Run:
    """One scenario against one client spec. ``await Run(loaded).execute()`` -> :class:`Result`."""

    def __init__(
        self,
        loaded: Loaded,
        *,
        client: str = "reference",
        timescale: float | None = None,
        on_step: Callable[[StepResult], None] | None = None,
        secrets: Secrets | None = None,
        server_url: str | None = None,
    ) -> None:
        """``secrets``: a registry that also receives every secret this run learns.
        ``server_url``: run against that server (a real backend the caller started) instead
        of a simulator; the steps that need squall's control plane are UNIMPLEMENTED."""
        self.loaded = loaded
        self.sc: m.Scenario = loaded.scenario
        self.client_spec = client
        self.profile = profile(client)
        # a client whose own timers cannot keep up runs at its floor (Profile.min_timescale)
        self.timescale = timescale or max(self.sc.timescale, self.profile.min_timescale or 0.0)
        # The client's answers cross real sockets: the simulator's deadlines for them are
        # never shorter than GRACE real seconds (or their own protocol duration, if less).
        self.clock = LoopClock(self.timescale, deadline_floor=GRACE)
        self.on_step = on_step
        self.templates = Templates(dict(self.sc.vars), self.sc.seed)
        self.records: list[dict[str, Any]] = []
        self.sim: Simulator | None = None
        self.server_url = server_url
        self.proxy: ProxyServer | None = None
        self.drivers: dict[str, DriverProcess] = {}
        self.events: dict[str, list[dict[str, Any]]] = {n: [] for n in self.sc.clients}
        self.cursor: dict[str, int] = dict.fromkeys(self.sc.clients, 0)
        self.replies: dict[str, dict[str, Any]] = {}  # as-name (or client) -> reply record
        self.endpoints: dict[str, str] = {}
        self.users = {n: (c.user or c.token or n) for n, c in self.sc.clients.items()}
        self.secrets = self._secrets(secrets)
        self.t0 = 0.0
        self.changed = asyncio.Event()  # set on every new record: wakes RunContext.until
        self.timers: list[Timer] = []  # RunContext.later's, cancelled when the run ends
        self.tasks: set[asyncio.Task[Any]] = set()
        self.ext: dict[str, Any] = {}  # step packs keep their per-run state here
        self.muted = MutedUsers()  # a crowd's server records stay out of this transcript
        self.ctx = RunContext(self)  # what every step handler gets
        self.cleanups: list[Callable[[], Awaitable[Any]]] = []  # run at the end, last first
        self.result = Result(
            scenario=self.sc.id,
            title=self.sc.title,
            path=str(loaded.path),
            client=client_label(client),
            spec=list(self.sc.spec),
            timescale=self.timescale,
            secrets=self.secrets,
        )

    def _secrets(self, parent: Secrets | None) -> Secrets:
        """The scenario's credentials; the names it shows openly are not secrets."""
        sc = self.sc
        tokens = sc.server.tokens
        shown: list[str | None] = [*sc.clients, *(tokens or {}).values()]
        for c in sc.clients.values():
            # Without a token map the simulator takes a token as its own user name.
            shown.append(c.user or (c.token if tokens is None else tokens.get(c.token or "")))
        secrets = Secrets(public=shown, parent=parent)
        secrets.add(*(tokens or {}))
        for c in sc.clients.values():
            secrets.add(c.token, c.jwt, c.policy.recovery_token)
        return secrets

    # --- the transcript ------------------------------------------------------------------------

    def now(self) -> float:
        return self.clock.now() - self.t0

    def record(self, src: str, kind: str, **fields: Any) -> dict[str, Any]:
        """Append one record to the run's transcript, scrubbed: the one way in."""
        return self._append(src, kind, self.secrets.scrub(fields))

    def _append(self, src: str, kind: str, fields: dict[str, Any]) -> dict[str, Any]:
        rec = {
            "n": len(self.records),
            "t": round(self.now(), 6),
            "src": src,
            "kind": kind,
            **fields,
        }
        self.records.append(rec)
        self.changed.set()
        return rec

    def _server_record(self, rec: dict[str, Any]) -> None:
        # The simulator's transcript scrubbed it with this run's registry a moment ago.
        for kept in self.muted.admit(rec) if self.muted.users else (rec,):
            self._forward(kept)

    def _forward(self, rec: dict[str, Any]) -> None:
        fields = {k: v for k, v in rec.items() if k not in ("n", "t", "src", "kind")}
        self._append("server", rec["kind"], fields)

    def _fault(self, event: FaultEvent) -> None:
        self.record(
            "proxy",
            "fault",
            action=event.action,
            proxy=event.proxy,
            conn=event.connection,
            toxic=event.toxic,
            detail=event.detail,
        )

    def _client_line(self, name: str, obj: dict[str, Any]) -> None:
        if "event" in obj:
            rec = self.record(
                f"client:{name}", "event", event=obj["event"], data=obj.get("data"), ct=obj.get("t")
            )
            self.events[name].append(rec)
        elif "reply" in obj:
            self.record(
                f"client:{name}",
                "reply",
                ref=obj.get("reply"),
                ok=obj.get("ok"),
                result=obj.get("result"),
                error=obj.get("error"),
                type=obj.get("type"),
            )

    # --- setup and teardown --------------------------------------------------------------------

    async def _start(self) -> None:
        sc = self.sc
        # Keys and types were checked when the file was loaded (models.ServerConfig).
        config = Config(**sc.server.config.model_dump(exclude_unset=True))
        dialect = self.profile.dialect
        if dialect not in sc.dialects:
            raise unimplemented(
                f"a server speaking one of: {', '.join(sc.dialects)}",
                f"client {self.profile.name} speaks {dialect}: this behaviour is not part of it",
            )
        if self.server_url is not None:
            await self._start_external(self.server_url)
            return
        self.sim = Simulator(
            clock=self.clock,
            config=config,
            auth=AuthPolicy(tokens=sc.server.tokens),
            dialect=dialect,
            dialect_options=sc.server.dialect.get(dialect),
        )
        # The simulator's transcript scrubs with this run's registry, and feeds it the
        # recovery tokens it issues (before the frame that carries one is sent).
        self.sim.core.transcript.secrets = self.secrets
        self.secrets.add(self.sim.core.auth.jwt_secret)
        self.sim.core.transcript.listen(self._server_record)
        await self.sim.start(ports=sc.network.endpoints)
        for i, url in enumerate(self.sim.urls):
            self.endpoints["server" if i == 0 else f"server{i + 1}"] = url
        self.endpoints["dead"] = free_dead_url()
        if sc.network.proxy:
            self.proxy = ProxyServer(port=0, clock=self.clock, seed=sc.seed, on_event=self._fault)
            # host:port, whatever the scheme (a Socket.IO dialect's URL is http://)
            upstream = urlsplit(self.sim.urls[0]).netloc
            proxy = await self.proxy.collection.create(
                {"name": "main", "listen": "127.0.0.1:0", "upstream": upstream}
            )
            self.endpoints["proxy"] = f"ws://{proxy.listen}/"
            if any(c.via == "proxy" for c in sc.clients.values()):
                self.sim.dialect.reached_through(self.endpoints["proxy"])
        await asyncio.gather(*(self._spawn(name) for name in sc.clients))

    async def _start_external(self, url: str) -> None:
        """The scenario's clients against ``url``: no simulator, no control plane."""
        # Steps reach the simulator through RunContext.sim; the stand-in says UNIMPLEMENTED.
        self.sim = cast("Simulator", ExternalServer(url))
        self.endpoints["server"] = url
        self.endpoints["dead"] = free_dead_url()
        if self.sc.network.endpoints != 1:
            raise unimplemented(
                f"{self.sc.network.endpoints} server endpoints",
                f"the run targets the one external server {url}",
            )
        if self.sc.network.proxy:  # the faults sit in front of the external server too
            parts = urlsplit(url)
            self.proxy = ProxyServer(
                port=0, clock=self.clock, seed=self.sc.seed, on_event=self._fault
            )
            proxy = await self.proxy.collection.create(
                {"name": "main", "listen": "127.0.0.1:0", "upstream": parts.netloc}
            )
            self.endpoints["proxy"] = urlunsplit(parts._replace(netloc=str(proxy.listen)))
        await asyncio.gather(*(self._spawn(name) for name in self.sc.clients))

    async def _spawn(self, name: str) -> None:
        try:
            argv = command_line(self.client_spec, timescale=self.timescale, seed=self.sc.seed)
            driver = DriverProcess(
                argv,
                lambda obj: self._client_line(name, obj),
                env={"SQUALL_TIMESCALE": repr(self.timescale), "SQUALL_SEED": str(self.sc.seed)},
                secrets=self.secrets,
            )
            self.drivers[name] = driver
            await driver.start()
        except DriverError as exc:  # nothing of the client was judged
            raise StepFailed(
                f"the driver of client {name} starts", str(exc), blame=Blame.DRIVER
            ) from None
        spec = self.sc.clients[name]
        args: dict[str, Any] = {
            "urls": self.ctx.urls(spec.urls or [spec.via if spec.via == "proxy" else "server"])
        }
        if spec.token is not None:
            args["token"] = spec.token
        if spec.jwt is not None:
            args["jwt"] = spec.jwt
        if spec.user is not None:
            args["user"] = spec.user
        if self.sim is not None and self.server_url is None and self.sim.http_url is not None:
            args["server"] = self.sim.http_url  # the dialect's HTTP prelude (a token endpoint)
        args.update(self.templates.render(spec.policy.model_dump(exclude_unset=True)))
        await self.ctx.command(name, "configure", args, wait=True)

    async def _stop(self) -> None:
        for timer in self.timers:
            timer.cancel()
        for task in list(self.tasks):
            task.cancel()
        while self.cleanups:
            cleanup = self.cleanups.pop()
            try:
                await asyncio.wait_for(cleanup(), CLEANUP_TIMEOUT)
            except Exception as exc:  # reported; everything else still stops
                self.result.notes.append(f"cleanup {cleanup!r}: {exc!r}")
        results = await asyncio.gather(
            *(d.stop() for d in self.drivers.values()), return_exceptions=True
        )
        for name, res in zip(self.drivers, results, strict=True):
            if isinstance(res, BaseException):
                self.result.notes.append(f"stopping client {name}: {res!r}")
        if self.proxy is not None:
            await self.proxy.stop()
        if self.sim is not None and self.server_url is None:
            await self.sim.stop()

    # --- running -------------------------------------------------------------------------------

    async def execute(self) -> Result:
        """Run every step; always stops everything; returns the result with its verdict."""
        start = time.perf_counter()
        self.t0 = self.clock.now()
        self.record("runner", "scenario", id=self.sc.id, client=self.result.client)
        steps = [
            StepResult(
                i,
                s.name,
                self.loaded.step_line(i),
                s.args.model_dump(by_alias=True, exclude_defaults=True),
            )
            for i, s in enumerate(self.sc.steps)
        ]
        self.result.steps = steps
        try:
            await self._start()
            missing = [
                c
                for d in self.drivers.values()
                for c in self.sc.requires
                if c not in d.commands and c not in d.behaviours
            ]
            if missing:
                raise unimplemented(
                    f"the client implements {', '.join(sorted(set(self.sc.requires)))}",
                    f"it lacks {', '.join(sorted(set(missing)))}",
                )
            for name, spec in self.sc.clients.items():
                if spec.autoconnect:
                    await self.ctx.command(name, "connect", {}, wait=True)
            for step, sr in zip(self.sc.steps, steps, strict=True):
                await self._run_step(step, sr)
                if sr.status in (StepStatus.FAILED, StepStatus.UNIMPLEMENTED, StepStatus.ERROR):
                    break
        except StepFailed as exc:
            self._fail(None, exc)
        except DriverError as exc:
            self._fail(None, StepFailed("the client follows the driver protocol", str(exc)))
        except Exception as exc:  # a squall bug: still stop everything, and say so
            self._fail(None, squall_bug(exc))
        finally:
            self.result.protocol_time = self.now()
            for held in self.muted.flush():
                self._forward(held)
            muted = {"muted": self.muted.count} if self.muted.count else {}
            self.record("runner", "end", **muted)
            try:
                await self._stop()
            finally:
                self.result.wall = time.perf_counter() - start
                self.result.transcript = self.records
        self._conclude()
        self.result.seal()
        return self.result

    def _conclude(self) -> None:
        res = self.result
        statuses = {s.status for s in res.steps}
        if res.verdict is Verdict.ERROR or StepStatus.ERROR in statuses:
            res.verdict = Verdict.ERROR  # never judged: not even informational
            return
        if res.verdict is Verdict.UNIMPLEMENTED or StepStatus.UNIMPLEMENTED in statuses:
            res.verdict = Verdict.UNIMPLEMENTED
        elif res.failure is not None and (
            res.verdict is Verdict.FAILED or StepStatus.FAILED in statuses
        ):
            res.verdict = Verdict.FAILED
        elif StepStatus.LATE in statuses or any(
            s.status is StepStatus.MISSED and s.args.get("level") == "non-strict" for s in res.steps
        ):
            res.verdict = Verdict.NON_STRICT
        else:
            res.verdict = Verdict.OK
        if self.sc.informational and res.verdict is not Verdict.UNIMPLEMENTED:
            res.notes.append(f"informational: would have been {res.verdict.value}")
            res.verdict = Verdict.INFORMATIONAL

    def _fail(self, sr: StepResult | None, exc: StepFailed) -> None:
        if self.result.failure is not None:
            return
        t_from = (sr.started or 0.0) if sr else 0.0
        window = [
            r
            for r in self.records
            if r["t"] >= t_from - 5.0 and not (r["kind"] == "event" and r["event"] in NOISY_EVENTS)
        ]
        self.result.failure = Failure(
            step=sr.index if sr else -1,
            name=sr.name if sr else "setup",
            line=sr.line if sr else self.loaded.line,
            expected=exc.expected,
            observed=exc.observed,
            transcript=window[-40:],
            blame=exc.blame,
            rule=self._rule(sr),
        )
        if exc.blame is not Blame.CLIENT:
            self.result.verdict = Verdict.ERROR
        else:
            self.result.verdict = Verdict.UNIMPLEMENTED if exc.unimplemented else Verdict.FAILED

    def _rule(self, sr: StepResult | None) -> str | None:
        """The ``rule:`` of the step that failed, if it says which rule it checks."""
        if sr is None:
            return None
        rule = getattr(self.sc.steps[sr.index].args, "rule", None)
        return str(rule) if rule else None

    async def _run_step(self, step: Any, sr: StepResult) -> None:
        sr.started = round(self.now(), 6)
        self.record("runner", "step", index=sr.index, name=sr.name, line=sr.line)
        level = getattr(step.args, "level", "strict")
        try:
            late = await self._dispatch(step.name, step.args, sr)
            sr.status = StepStatus.LATE if late else StepStatus.OK
            if late:
                sr.message = late
        except StepFailed as exc:
            sr.message = self.secrets.scrub_text(
                f"expected {exc.expected}; observed {exc.observed}"
            )
            if exc.blame is not Blame.CLIENT:
                sr.status = StepStatus.ERROR
                self._fail(sr, exc)
            elif exc.unimplemented:
                sr.status = StepStatus.UNIMPLEMENTED
                self._fail(sr, exc)
            elif level == "strict":
                sr.status = StepStatus.FAILED
                self._fail(sr, exc)
            else:
                sr.status = StepStatus.MISSED
                self.result.notes.append(f"{sr.label}: {sr.message}")
        except DriverError as exc:
            sr.status = StepStatus.FAILED
            self._fail(sr, StepFailed("the client follows the driver protocol", str(exc)))
        except (ControlError, LookupError, ValueError) as exc:
            # The scenario asked for what cannot be done here (a server step on a session
            # that is not there, an unknown variable): the scenario's fault, not the client's.
            self._error(sr, scenario_error(f"{sr.name} can be carried out", _why(exc)))
        except Exception as exc:  # a bug: squall's, or the third-party pack's the step is from
            self._error(sr, squall_bug(exc, pack=pack_of(sr.name)))
        sr.ended = round(self.now(), 6)
        if self.on_step is not None:
            self.on_step(sr)

    def _error(self, sr: StepResult, exc: StepFailed) -> None:
        sr.status = StepStatus.ERROR
        sr.message = self.secrets.scrub_text(f"expected {exc.expected}; observed {exc.observed}")
        self._fail(sr, exc)

    async def _dispatch(self, name: str, args: Any, sr: StepResult) -> str | None:
        """Every step, core or not, is a pack's: its handler gets the run's context."""
        return await m.STEP_HANDLERS[name](self.ctx, args, sr)


def _why(exc: BaseException) -> str:
    """An exception as its message (a KeyError's ``str`` is its key, quoted)."""
    plain_key_error = isinstance(exc, KeyError) and type(exc).__str__ is KeyError.__str__
    text = exc.args[0] if plain_key_error and exc.args else str(exc)
    return str(text) or type(exc).__name__


def run_sync(loaded: Loaded, **kwargs: Any) -> Result:
    """Run one scenario on a fresh event loop (for the pytest plugin and ``squall run``)."""
    return asyncio.run(Run(loaded, **kwargs).execute())


__all__ = ["GRACE", "LATE_SLACK", "Run", "StepFailed", "dig", "run_sync", "squall_bug"]
