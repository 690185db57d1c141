"""The core expectations, a step pack like any other: each waits until it holds or times out.

Each handler returns ``None`` (held on time), a sentence (held, but late:
NON-STRICT) or raises :class:`~.contract.StepFailed` with what was expected and
what was observed instead, in words a client author can act on. They use nothing
but the :class:`~.context.RunContext`, as a third-party pack would.

``within`` is measured as the simulator measures its own deadlines
(:meth:`squall.clock.LoopClock.real_deadline`): compressed, but never below the
clock's floor in real time, so an expectation of what a server deadline causes
(a close after an unanswered drain) waits at least as long as that deadline, and
``GRACE`` more (:meth:`RunContext.deadline <.context.RunContext.deadline>`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from .base import Args, DurationField, ErrorPattern, Name, Severity, Within
from .contract import NOISY_EVENTS, StepFailed, short
from .match import dig, error_matches, matches

if TYPE_CHECKING:
    from .context import RunContext
    from .verdicts import StepResult

__all__ = ["HANDLERS", "STEP_ARGS"]


# --- argument models -------------------------------------------------------------------------


class ExpectEvent(Args, Within):
    """A client event happened (after the last one matched for that client), matching ``data``."""

    client: Name
    event: str
    data: dict[str, Any] | None = Field(None, description="partial match on the event's data")
    count: int = Field(1, ge=1, description="this many matching events")
    capture: dict[str, str] = Field(
        default_factory=dict, description="var -> dotted path into the event (data.sid)"
    )
    anywhere: bool = Field(
        False, description="search from the client's first event, not its cursor"
    )


class ExpectNoEvent(Args, Severity):
    """No matching client event for a duration (from the client's cursor on)."""

    client: Name
    event: str
    data: dict[str, Any] | None = None
    for_: DurationField = Field(alias="for")


class ExpectReply(Args, Within):
    """The reply to a command stored with ``as`` (or the client's last one) was ok / an error."""

    client: Name
    reply: Name | None = Field(None, description="the 'as' name of the command")
    ok: bool = Field(True, description="false: the reply must be an error (implied by 'error')")
    result: Any = Field(None, description="partial match on the result")
    error: ErrorPattern | None = Field(
        None,
        description="the reply is an error whose type or message matches this regex "
        "(bare or /regex/): CommandError, /timed? ?out/",
    )

    @model_validator(mode="after")
    def _error_means_not_ok(self) -> ExpectReply:
        if self.error is not None:
            if "ok" in self.model_fields_set and self.ok:
                raise ValueError("'error' checks a failed reply: drop 'ok: true'")
            self.ok = False
        return self


SessionState = Literal["open", "detached", "expired", "absent"]


class ExpectServer(Args, Within):
    """The simulator's state, polled until it matches or the deadline passes."""

    sessions: dict[str, SessionState] | None = Field(None, description="client -> session state")
    subscriptions: dict[str, list[str]] | None = Field(
        None, description="client -> exact set of subscribed topics"
    )
    session: dict[str, dict[str, Any]] | None = Field(
        None, description="client -> partial match on the session view (seq, lost, connections)"
    )
    rooms: dict[str, list[str]] | None = Field(None, description="room -> clients in it")


class ExpectTranscript(Args, Within):
    """A pattern of transcript records, in order, each a partial match (src, kind, type, ...)."""

    pattern: list[dict[str, Any]] = Field(min_length=1)
    since: Literal["start", "step"] = Field("step", description="search from the scenario start")
    absent: bool = Field(False, description="the pattern must NOT occur by the deadline")


class ExpectVar(Args, Severity):
    """A variable (or expression) equals / matches a value."""

    value: Any
    equals: Any = None
    matches: str | None = None
    greater: float | None = None
    less: float | None = None


# --- expectations ----------------------------------------------------------------------------


def _events_seen(ctx: RunContext, client: str, start: int, limit: int = 12) -> str:
    seen = [
        f"{r['event']} {short(r.get('data'), 120)} @{r['t']:.2f}"
        for r in ctx.events[client][start:]
        if r["event"] not in NOISY_EVENTS
    ]
    if not seen:
        return f"{client} emitted no event since its cursor"
    more = f" (+{len(seen) - limit} earlier)" if len(seen) > limit else ""
    return f"{client} emitted{more}: " + "; ".join(seen[-limit:])


async def expect_event(ctx: RunContext, a: ExpectEvent, step: StepResult) -> str | None:
    data = ctx.render(a.data) if a.data is not None else None
    start = 0 if a.anywhere else ctx.cursor[a.client]

    def check() -> list[dict[str, Any]] | None:
        found = [r for r in ctx.events[a.client][start:] if ctx.event_matches(r, a.event, data)]
        return found[: a.count] if len(found) >= a.count else None

    found = await ctx.until(check, within=a.within)
    what = f"{a.count}x " if a.count > 1 else ""
    want = f"{what}event {a.event!r}" + (f" with {short(data)}" if data else "")
    if not found:
        raise StepFailed(
            f"{want} from {a.client} within {a.within:g}s", _events_seen(ctx, a.client, start)
        )
    last = found[-1]
    if not a.anywhere:
        ctx.cursor[a.client] = ctx.events[a.client].index(last) + 1
    for var, path in a.capture.items():
        ctx.vars[var] = dig(last, path)
    return ctx.late(step, a.within, last["t"])


async def expect_no_event(ctx: RunContext, a: ExpectNoEvent, step: StepResult) -> None:
    data = ctx.render(a.data) if a.data is not None else None
    start = ctx.cursor[a.client]

    def check() -> dict[str, Any] | None:
        for r in ctx.events[a.client][start:]:
            if ctx.event_matches(r, a.event, data):
                return r
        return None

    hit = await ctx.until(check, real=ctx.clock.real(a.for_))
    if hit:
        raise StepFailed(
            f"no event {a.event!r} from {a.client} for {a.for_:g}s",
            f"{a.event} {short(hit.get('data'))} at t={hit['t']:.2f}s",
        )


async def expect_reply(ctx: RunContext, a: ExpectReply, step: StepResult) -> str | None:
    key = a.reply or a.client
    reply = await ctx.until(lambda: ctx.replies.get(key), within=a.within)
    if reply is None:
        raise StepFailed(f"a reply to {key!r}", "no reply arrived")
    if bool(reply.get("ok")) != a.ok:
        shown = (
            reply.get("result") if reply.get("ok") else f"{reply.get('type')}: {reply.get('error')}"
        )
        raise StepFailed(
            f"{reply['cmd']} to {'succeed' if a.ok else 'fail'}",
            f"ok={reply.get('ok')}: {short(shown)}",
        )
    if a.result is not None:
        want = ctx.render(a.result)
        if not matches(want, reply.get("result")):
            raise StepFailed(f"result matching {short(want)}", short(reply.get("result")))
    if a.error is not None and not error_matches(a.error, reply.get("type"), reply.get("error")):
        shown = a.error if a.error.startswith("/") else f"/{a.error}/"
        raise StepFailed(
            f"an error whose type or message matches {shown}",
            f"{reply.get('type')}: {reply.get('error')}",
        )
    return None


def _state(ctx: RunContext, client: str) -> str:
    views = ctx.sessions_of(client)
    states = {v["state"] for v in views}
    for state in ("open", "detached", "expired"):
        if state in states:
            return state
    return "absent"


def _server_mismatches(ctx: RunContext, a: ExpectServer) -> list[str]:
    problems = []
    for client, want in (a.sessions or {}).items():
        got = _state(ctx, client)
        if got != want:
            problems.append(f"session of {client} is {got}, not {want}")
    for client, topics in (a.subscriptions or {}).items():
        view = ctx.session_of(client)
        subscribed = sorted(view["subscriptions"]) if view else None
        if subscribed != sorted(ctx.render(topics)):
            problems.append(f"subscriptions of {client} are {subscribed}, not {sorted(topics)}")
    for client, partial in (a.session or {}).items():
        view = ctx.session_of(client)
        want = ctx.render(partial)
        if view is None or not matches(want, view):
            problems.append(f"session of {client} is {short(view)}, not matching {short(want)}")
    for room, clients in (a.rooms or {}).items():
        inside = sorted(
            c
            for c in ctx.clients
            if (v := ctx.session_of(c)) and v["state"] == "open" and room in v["rooms"]
        )
        if inside != sorted(clients):
            problems.append(f"room {room} holds {inside}, not {sorted(clients)}")
    return problems


async def expect_server(ctx: RunContext, a: ExpectServer, step: StepResult) -> str | None:
    ok = await ctx.until(lambda: not _server_mismatches(ctx, a), within=a.within)
    if not ok:
        raise StepFailed(
            "server state " + short(a.model_dump(exclude_defaults=True, exclude={"level", "rule"})),
            "; ".join(_server_mismatches(ctx, a)),
        )
    return ctx.late(step, a.within, ctx.now())


def _find_pattern(
    records: Sequence[dict[str, Any]], pattern: list[dict[str, Any]]
) -> tuple[int, float]:
    """How many pattern items matched in order, and the time of the last one matched."""
    i = 0
    t = 0.0
    for rec in records:
        if i < len(pattern) and matches(pattern[i], rec):
            i += 1
            t = rec["t"]
    return i, t


async def expect_transcript(ctx: RunContext, a: ExpectTranscript, step: StepResult) -> str | None:
    pattern = ctx.render(a.pattern)
    first = 0
    if a.since == "step":
        first = next(
            (r["n"] for r in ctx.records if r["t"] >= (step.started or 0.0)), len(ctx.records)
        )
        # the step's own marker is in the list; records of earlier steps are not
        first = max(0, first - 1)
    if a.absent:
        await ctx.clock.sleep(a.within)
        got, t = _find_pattern(ctx.records[first:], pattern)
        if got == len(pattern):
            raise StepFailed(
                f"no transcript pattern {short(pattern)}", f"it occurred, ending at t={t:.2f}s"
            )
        return None

    def check() -> float | None:
        got, t = _find_pattern(ctx.records[first:], pattern)
        return t or 0.000001 if got == len(pattern) else None

    t = await ctx.until(check, within=a.within)
    if t is None:
        got, _ = _find_pattern(ctx.records[first:], pattern)
        raise StepFailed(
            f"transcript pattern of {len(pattern)} records in order",
            f"matched {got}; no record after them matches {short(pattern[got])}",
        )
    return ctx.late(step, a.within, t)


async def expect_var(ctx: RunContext, a: ExpectVar, step: StepResult) -> None:
    value = ctx.render(a.value)
    checks = []
    if "equals" in a.model_fields_set:
        checks.append(("equal " + short(a.equals), matches(ctx.render(a.equals), value)))
    if a.matches is not None:
        checks.append((f"match /{a.matches}/", re.search(a.matches, str(value)) is not None))
    if a.greater is not None:
        checks.append((f"be > {a.greater:g}", isinstance(value, int | float) and value > a.greater))
    if a.less is not None:
        checks.append((f"be < {a.less:g}", isinstance(value, int | float) and value < a.less))
    failed = [what for what, ok in checks if not ok]
    if failed:
        raise StepFailed(f"{a.value!r} to " + " and ".join(failed), short(value))


# --- the pack ----------------------------------------------------------------------------------

STEP_ARGS: dict[str, type[Args]] = {
    "expect.event": ExpectEvent,
    "expect.no_event": ExpectNoEvent,
    "expect.reply": ExpectReply,
    "expect.server": ExpectServer,
    "expect.transcript": ExpectTranscript,
    "expect.var": ExpectVar,
}
"""The core expectations and the model of their arguments."""

HANDLERS: dict[str, Any] = {
    "expect.event": expect_event,
    "expect.no_event": expect_no_event,
    "expect.reply": expect_reply,
    "expect.server": expect_server,
    "expect.transcript": expect_transcript,
    "expect.var": expect_var,
}
"""How each expectation is checked: ``await handler(ctx, args, step)``."""
