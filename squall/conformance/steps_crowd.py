"""The crowd step pack: herds of reference clients in scenarios (docs/herd.md).

A crowd is N reference-client cores driven by one asyncio driver in the runner's
process (:class:`squall.crowd.Crowd`), each with the crowd's reconnect policy (a seed
SDK's, by name, or Policy fields) and its own seeded random source. It is not the
client under test: it is load, shaped like a fleet of one SDK, and what the
expectations judge is what that fleet does to the scenario's simulator and what the
simulator and the reference client do for it (recovery, exactly-once delivery).

- ``crowd.start`` declares a crowd and connects all of it (batched: setting a crowd up
  is not the storm); ``SQUALL_HERD_SIZE`` in the environment overrides every size;
- ``crowd.request_reconnect`` (a drain of every session of the crowd, optionally
  staggered over ``spread``), ``crowd.drop`` (every session cut, or closed with a
  code), ``crowd.publish`` (numbered notifications during the storm), ``crowd.mark``
  (a storm the pack did not cause starts here: a ``network.down``), ``crowd.wait_ready``;
- ``expect.crowd`` waits until the crowd is back and what was published arrived, then
  judges the storm since the last mark: time until 99 % were back, peak reconnects per
  100 ms (absolute, as a share, or against the policy's own prediction), synchronised
  or not, sessions recovered, notifications delivered exactly once. It records the
  figures (a ``crowd`` record) and the reconnect-rate histogram as an SVG in an
  ``attachment`` record (``step``, ``name``, ``mime``, ``content``), which the HTML report
  draws under its step and the pytest plugin attaches to its Allure step.

The transcript keeps the server records of the first ``recorded`` members (3) in full;
the others' are left out (``RunContext.mute_users``) and counted in its ``end``
record: a thousand members' frames would be most of the transcript and of the run's time.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from squall.crowd import Crowd, seed_policy
from squall.crowd.crowd import check_fd_budget
from squall.crowd.net import widen_backlog
from squall.crowd.summary import StormKind, StormSummary, summarise
from squall.crowd.svg import histogram_svg

from .base import Args, DurationField, Name, Severity
from .contract import StepFailed, scenario_error

if TYPE_CHECKING:
    from .context import RunContext
    from .verdicts import StepResult

__all__ = ["HANDLERS", "SIZE_ENV", "STEP_ARGS"]

SIZE_ENV = "SQUALL_HERD_SIZE"
"""Environment variable: when set, the size of every crowd (the 10,000-client run)."""
MAX_SIZE = 100_000
START_SECONDS_PER_CLIENT = 0.02  # real seconds a crowd's setup may take per client, + 30 s
BACK_SECONDS_PER_CLIENT = 0.01  # real seconds back_within allows per member (back_allowance)


# --- argument models -------------------------------------------------------------------------


class CrowdStart(Args):
    """Declare a crowd of reference-client cores and connect all of it."""

    name: Name
    size: int = Field(ge=1, le=MAX_SIZE, description=f"clients (overridden by ${SIZE_ENV})")
    policy: str | dict[str, Any] = Field(
        "reference",
        description="a seed policy (reference, genesys-v19, ringcentral, mixer) or Policy "
        "fields, on top of the reference default or of the seed policy named in 'base'",
    )
    dialect: str = Field("reference", description="the wire the crowd speaks")
    via: Literal["direct", "proxy"] = "direct"
    topics: list[str] = Field(default_factory=lambda: ["herd"], description="subscribed by all")
    drain_answer: Literal["done", "pending", "none"] = Field(
        "done", description="what every member answers a request_reconnect with"
    )
    seed: int | None = Field(None, description="seeds each core's jitter (default: the scenario's)")
    prefix: str = Field("", description="user names are <prefix><index> (default: <name>-)")
    recorded: int = Field(
        3,
        ge=0,
        description="members whose server records go into the transcript in full; the"
        " others' are left out (counted as 'muted' in the end record), the crowd's figures"
        " and histogram stand for them",
    )


class CrowdRef(Args):
    _shorthand: ClassVar[str | None] = "crowd"
    crowd: Name


class CrowdWait(CrowdRef):
    within: DurationField = Field(60.0, description="protocol seconds until all are connected")


class CrowdDrain(CrowdRef):
    """Ask every session of the crowd to reconnect (the server's drain, §6)."""

    deadline: DurationField | None = None
    answer_within: DurationField | None = None
    reason: str = "drain"
    spread: DurationField = Field(
        0.0, description="stagger the requests evenly over this long (0: all at once)"
    )


class CrowdDrop(CrowdRef):
    """Drop every session of the crowd: no code cuts TCP (1006), else a close frame."""

    code: int | None = Field(None, ge=1000, le=4999)
    reason: str = ""


class CrowdPublish(CrowdRef):
    """Publish ``count`` numbered notifications (payload ``{n}``), one every ``every``."""

    _shorthand: ClassVar[str | None] = None
    topic: str = "herd"
    count: int = Field(20, ge=1, le=10_000)
    every: DurationField = Field(0.1)


class CrowdMark(CrowdRef):
    """A storm starts here (one the pack does not cause, such as ``network.down``)."""

    kind: Literal["backoff", "immediate"] = "backoff"


class ExpectCrowd(Args, Severity):
    """Judge the crowd's storm since the last mark, once it is back (or ``within`` passed)."""

    crowd: Name
    within: DurationField = Field(
        120.0, description="how long to wait for the crowd and deliveries"
    )
    back_within: DurationField | None = Field(
        None,
        description="99 % of those that lost their connection were back within this (plus"
        " 10 ms of real time per member: one loop serves all their handshakes)",
    )
    peak_per_100ms_at_most: int | None = Field(None, ge=1)
    peak_share_at_most: float | None = Field(
        None, gt=0, le=1, description="peak 100 ms window as a share of those that lost"
    )
    peak_as_policy: bool | None = Field(
        None, description="the peak is no higher than the policy's own draw predicts"
    )
    synchronised: bool | None = Field(
        None, description="false: the herd must be spread (peak window <= sync_share of it)"
    )
    sync_share: float = Field(0.1, gt=0, le=1)
    delivered_exactly_once: bool | None = None
    recovered_at_least: float | None = Field(None, ge=0, le=1)
    settle: DurationField = Field(
        5.0, description="once back, how long deliveries may still take to arrive"
    )


# --- per-run state ----------------------------------------------------------------------------


class CrowdState:
    """A crowd in a run: the crowd, what was published to it, and its storm's kind."""

    def __init__(self, crowd: Crowd) -> None:
        self.crowd = crowd
        self.published: list[int] = []
        self.publishing: list[asyncio.Task[None]] = []
        self.kind: StormKind = "backoff"
        self.storm_step: int | None = None
        self.attached: int | None = None  # the storm whose histogram is attached already
        self.hit = 0  # sessions the pack's own storm step dropped or drained


def _crowds(ctx: RunContext) -> dict[str, CrowdState]:
    crowds: dict[str, CrowdState] = ctx.ext.setdefault("crowd.crowds", {})
    return crowds


def _state(ctx: RunContext, name: str) -> CrowdState:
    state = _crowds(ctx).get(name)
    if state is None:
        known = ", ".join(_crowds(ctx)) or "none"
        raise scenario_error(f"a crowd named {name!r} (crowd.start)", f"crowds: {known}")
    return state


def _mark(
    ctx: RunContext, state: CrowdState, kind: StormKind, step: StepResult, hit: int = 0
) -> None:
    state.crowd.mark()
    state.kind = kind
    state.hit = hit
    state.storm_step = step.index
    ctx.record("runner", "crowd_storm", crowd=state.crowd.name, storm=kind)


# --- steps ------------------------------------------------------------------------------------


async def start(ctx: RunContext, a: CrowdStart, step: StepResult) -> None:
    if a.name in _crowds(ctx):
        raise scenario_error(f"a new crowd name, not {a.name!r}", "it is taken")
    size = a.size
    override = os.environ.get(SIZE_ENV)
    if override:
        try:
            size = int(override)
        except ValueError:
            raise scenario_error(f"{SIZE_ENV} a number of clients", repr(override)) from None
        if not 1 <= size <= MAX_SIZE:
            raise scenario_error(f"{SIZE_ENV} between 1 and {MAX_SIZE}", str(size))
    server_dialect = ctx.sim.dialect.name
    if a.dialect != server_dialect:
        raise scenario_error(
            f"a crowd speaking the server's dialect ({server_dialect})", f"dialect: {a.dialect}"
        )
    try:
        policy = seed_policy(a.policy)
    except (TypeError, ValueError) as exc:
        raise scenario_error("a crowd policy", str(exc)) from None
    url = ctx.urls(["proxy" if a.via == "proxy" else "server"])
    # the crowd's sockets, the simulator's ends of them, and the proxy's two per connection
    check_fd_budget(size * (4 if a.via == "proxy" else 2), f"a crowd of {size}")
    widen_backlog(sock for server in ctx.sim.servers for sock in server.sockets)
    crowd = Crowd(
        url,
        size,
        policy=policy,
        clock=ctx.clock,
        seed=ctx.scenario.seed if a.seed is None else a.seed,
        dialect=a.dialect,
        prefix=a.prefix or f"{a.name}-",
        topics=a.topics,
        drain_answer=a.drain_answer,
        name=a.name,
    )
    state = CrowdState(crowd)
    _crowds(ctx)[a.name] = state
    # A thousand members' every frame would be most of the transcript and of the run's time
    # (each one kept, sealed, drawn): a few stay as examples.
    ctx.mute_users(crowd.users[a.recorded :])
    ctx.on_cleanup(lambda: _stop(state))
    ctx.record(
        "runner",
        "crowd",
        op="start",
        crowd=a.name,
        size=size,
        policy=policy.name,
        settings=policy.settings,
        source=policy.source,
        recorded=min(a.recorded, size),
    )
    try:
        await crowd.start(timeout=30.0 + size * START_SECONDS_PER_CLIENT)
    except TimeoutError as exc:
        raise StepFailed(f"all {size} of crowd {a.name} connected", str(exc)) from None
    _mark(ctx, state, "backoff", step)


async def _stop(state: CrowdState) -> None:
    for task in state.publishing:
        task.cancel()
    await state.crowd.close()


async def wait_ready(ctx: RunContext, a: CrowdWait, step: StepResult) -> None:
    crowd = _state(ctx, a.crowd).crowd
    try:
        await crowd.wait_ready(ctx.deadline(a.within))
    except TimeoutError as exc:
        raise StepFailed(
            f"all of crowd {a.crowd} connected within {a.within:g}s", str(exc)
        ) from None


def _open_sessions(ctx: RunContext, crowd: Crowd) -> list[str]:
    users = set(crowd.users)
    return [
        s.id for s in ctx.sim.core.sessions.values() if s.user in users and s.connection is not None
    ]


async def request_reconnect(ctx: RunContext, a: CrowdDrain, step: StepResult) -> None:
    state = _state(ctx, a.crowd)
    sessions = _open_sessions(ctx, state.crowd)
    _mark(ctx, state, "immediate", step, hit=len(sessions))
    kw: dict[str, Any] = {"reason": a.reason}
    if a.deadline is not None:
        kw["deadline"] = a.deadline
    if a.answer_within is not None:
        kw["answer_within"] = a.answer_within
    if a.spread <= 0:
        for sid in sessions:
            ctx.sim.request_reconnect(sid, **kw)
    else:
        gap = a.spread / max(len(sessions), 1)
        for i, sid in enumerate(sessions):
            ctx.later(i * gap, _drain_later(ctx, sid, kw))
    ctx.record("runner", "crowd", op="request_reconnect", crowd=a.crowd, sessions=len(sessions))


async def _drain_later(ctx: RunContext, sid: str, kw: dict[str, Any]) -> None:
    session = ctx.sim.core.sessions.get(sid)
    if session is not None and session.connection is not None:
        ctx.sim.request_reconnect(sid, **kw)


async def drop(ctx: RunContext, a: CrowdDrop, step: StepResult) -> None:
    state = _state(ctx, a.crowd)
    sessions = _open_sessions(ctx, state.crowd)
    _mark(ctx, state, "immediate" if a.code == 1012 else "backoff", step, hit=len(sessions))
    for sid in sessions:
        ctx.sim.drop(sid, code=a.code, reason=a.reason)
    ctx.record("runner", "crowd", op="drop", crowd=a.crowd, sessions=len(sessions), code=a.code)


async def publish(ctx: RunContext, a: CrowdPublish, step: StepResult) -> None:
    state = _state(ctx, a.crowd)
    first = len(state.published)
    numbers = list(range(first, first + a.count))
    state.published.extend(numbers)

    async def run() -> None:
        for n in numbers:
            ctx.sim.publish(a.topic, {"n": n})
            await ctx.clock.sleep(a.every)

    task = asyncio.ensure_future(run())
    state.publishing.append(task)
    ctx.record("runner", "crowd", op="publish", crowd=a.crowd, first=first, count=a.count)


async def mark(ctx: RunContext, a: CrowdMark, step: StepResult) -> None:
    _mark(ctx, _state(ctx, a.crowd), a.kind, step)


# --- the expectation --------------------------------------------------------------------------


def back_allowance(size: int, timescale: float) -> float:
    """Protocol seconds ``back_within`` allows on top for the harness: one loop serves every
    member's handshake and replay one after another (BACK_SECONDS_PER_CLIENT real seconds
    each), which a fleet of real clients, each on its own machine, does not wait for."""
    return size * BACK_SECONDS_PER_CLIENT / timescale


def _verdict(a: ExpectCrowd, s: StormSummary, allowance: float = 0.0) -> list[str]:
    problems = []
    limit = None if a.back_within is None else a.back_within + allowance
    if limit is not None and (s.back_p99 is None or s.back_p99 > limit):
        shown = "never" if s.back_p99 is None else f"after {s.back_p99:.2f}s"
        problems.append(
            f"99 % back within {a.back_within:g}s (+{allowance:.1f}s for one loop serving"
            f" {s.size} handshakes): {shown} ({s.never_back} never)"
        )
    if a.peak_per_100ms_at_most is not None and s.peak_per_100ms > a.peak_per_100ms_at_most:
        problems.append(
            f"peak <= {a.peak_per_100ms_at_most} per 100 ms: {s.peak_per_100ms} (histogram in"
            " the attachment)"
        )
    if a.peak_share_at_most is not None and s.peak_share > a.peak_share_at_most:
        problems.append(
            f"peak <= {a.peak_share_at_most:.0%} of the herd per 100 ms: {s.peak_share:.1%}"
        )
    if a.peak_as_policy and s.peak_per_100ms > s.peak_bound:
        problems.append(
            f"peak within the policy's draw (<= {s.peak_bound}, {s.expected_peak_share:.1%}"
            f" predicted): {s.peak_per_100ms} ({s.peak_share:.1%})"
        )
    if a.synchronised is not None and s.synchronised != a.synchronised:
        want = (
            "a synchronised herd"
            if a.synchronised
            else f"a spread herd (no 100 ms window with more than {a.sync_share:.0%} of it)"
        )
        problems.append(
            f"{want}: {s.peak_per_100ms} of {s.lost_connection} ({s.peak_share:.1%}) reconnected"
            f" in one 100 ms (the policy's draw puts {s.expected_peak_share:.0%} there)"
        )
    if a.delivered_exactly_once and not s.exactly_once:
        problems.append(
            f"every notification delivered exactly once: {s.missing} missing, {s.duplicated}"
            f" duplicated, {s.unexpected} never published ({'; '.join(s.delivery_problems)})"
        )
    if a.recovered_at_least is not None:
        share = s.recovered / s.lost_connection if s.lost_connection else 1.0
        if share < a.recovered_at_least:
            problems.append(
                f"recovered >= {a.recovered_at_least:.0%}: {share:.1%} ({s.recovered} recovered,"
                f" {s.recovery_failed} failed, {s.back_unanswered} unanswered,"
                f" {s.never_back} never back)"
            )
    return problems


def _back(state: CrowdState) -> bool:
    """Every member connected, after every session the storm step hit was lost (a member
    that has not noticed its cut yet is still 'connected'), and publishing done."""
    crowd = state.crowd
    return (
        crowd.lost_count >= state.hit
        and crowd.ready_count >= len(crowd)
        and all(t.done() for t in state.publishing)
    )


def _delivered(state: CrowdState) -> bool:
    wanted = len(state.published)
    return all(len(m.received) >= wanted for m in state.crowd.members)


async def expect_crowd(ctx: RunContext, a: ExpectCrowd, step: StepResult) -> None:
    state = _state(ctx, a.crowd)
    crowd = state.crowd
    allowance = back_allowance(len(crowd), ctx.timescale)
    await ctx.until(lambda: _back(state), within=a.within + allowance)
    if a.delivered_exactly_once:  # replays follow the recovery answer: let them land
        await ctx.until(lambda: _delivered(state), within=a.settle)
    summary = summarise(
        crowd.timelines(),
        crowd.received(),
        state.published,
        crowd.seed_policy,
        kind=state.kind,
        sync_share=a.sync_share,
    )
    figures = summary.to_json()
    ctx.record(
        "runner",
        "crowd",
        op="storm",
        crowd=a.crowd,
        policy=crowd.seed_policy.name,
        back_allowance=allowance,
        **figures,
    )
    title = (
        f"{a.crowd}: {crowd.seed_policy.name}, {summary.lost_connection} reconnecting, peak"
        f" {summary.peak_per_100ms} per 100 ms"
        + (" (synchronised)" if summary.synchronised else "")
    )
    svg = histogram_svg(
        summary.histogram,
        title=title,
        expected_peak=summary.expected_peak_share * summary.lost_connection,
        threshold=a.sync_share * summary.lost_connection,
    )
    if state.attached != state.storm_step:
        state.attached = state.storm_step
        ctx.record(
            "runner",
            "attachment",
            step=step.index,
            name=f"{a.crowd}-step{step.index + 1}-reconnects.svg",
            mime="image/svg+xml",
            title=title,
            content=svg,
        )
    problems = _verdict(a, summary, allowance)
    if problems:
        raise StepFailed(
            f"crowd {a.crowd} ({crowd.seed_policy.name}) after its storm",
            "; ".join(problems),
        )


STEP_ARGS: dict[str, type[Args]] = {
    "crowd.start": CrowdStart,
    "crowd.wait_ready": CrowdWait,
    "crowd.request_reconnect": CrowdDrain,
    "crowd.drop": CrowdDrop,
    "crowd.publish": CrowdPublish,
    "crowd.mark": CrowdMark,
    "expect.crowd": ExpectCrowd,
}
"""The crowd steps and the model of their arguments."""

HANDLERS: dict[str, Any] = {
    "crowd.start": start,
    "crowd.wait_ready": wait_ready,
    "crowd.request_reconnect": request_reconnect,
    "crowd.drop": drop,
    "crowd.publish": publish,
    "crowd.mark": mark,
    "expect.crowd": expect_crowd,
}
"""How the runner carries out each crowd step: ``await handler(ctx, args, step)``."""
