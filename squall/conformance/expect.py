"""The expectations: each waits on the run's transcript until it holds or its deadline passes.

Each returns ``None`` (held on time), a sentence (held, but late: NON-STRICT)
or raises :class:`~.runner.StepFailed` with what was expected and what was
observed instead, in words a client author can act on.

``within`` is measured as the simulator measures its own deadlines
(:meth:`squall.clock.LoopClock.real_deadline`): compressed, but never below the
clock's floor in real time, so an expectation of what a server deadline causes
(a close after an unanswered drain) waits at least as long as that deadline, and
``GRACE`` more.
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, Any

from . import models as m
from .match import dig, error_matches, matches
from .runner import GRACE, LATE_SLACK, NOISY_EVENTS, StepFailed, _short

if TYPE_CHECKING:
    from .runner import Run
    from .verdicts import StepResult


def _deadline(run: Run, within: float) -> float:
    return run.clock.real_deadline(within) + GRACE


def _late(run: Run, sr: StepResult, within: float, at: float) -> str | None:
    started = sr.started or 0.0
    if (at - started) * run.timescale > run.clock.real_deadline(within) + LATE_SLACK:
        return f"held after {at - started:.2f}s of protocol time, later than within={within:g}s"
    return None


def _events_seen(run: Run, client: str, start: int, limit: int = 12) -> str:
    seen = [
        f"{r['event']} {_short(r.get('data'), 120)} @{r['t']:.2f}"
        for r in run.events[client][start:]
        if r["event"] not in NOISY_EVENTS
    ]
    if not seen:
        return f"{client} emitted no event since its cursor"
    more = f" (+{len(seen) - limit} earlier)" if len(seen) > limit else ""
    return f"{client} emitted{more}: " + "; ".join(seen[-limit:])


async def expect_event(run: Run, a: m.ExpectEvent, sr: StepResult) -> str | None:
    data = run.templates.render(a.data) if a.data is not None else None
    start = 0 if a.anywhere else run.cursor[a.client]

    def check() -> list[dict[str, Any]] | None:
        found = [r for r in run.events[a.client][start:] if run.event_matches(r, a.event, data)]
        return found[: a.count] if len(found) >= a.count else None

    found = await run._until(check, _deadline(run, a.within))
    what = f"{a.count}x " if a.count > 1 else ""
    want = f"{what}event {a.event!r}" + (f" with {_short(data)}" if data else "")
    if not found:
        raise StepFailed(
            f"{want} from {a.client} within {a.within:g}s", _events_seen(run, a.client, start)
        )
    last = found[-1]
    if not a.anywhere:
        run.cursor[a.client] = run.events[a.client].index(last) + 1
    for var, path in a.capture.items():
        run.templates.vars[var] = dig(last, path)
    return _late(run, sr, a.within, last["t"])


async def expect_no_event(run: Run, a: m.ExpectNoEvent, sr: StepResult) -> None:
    data = run.templates.render(a.data) if a.data is not None else None
    start = run.cursor[a.client]

    def check() -> dict[str, Any] | None:
        for r in run.events[a.client][start:]:
            if run.event_matches(r, a.event, data):
                return r
        return None

    hit = await run._until(check, run.clock.real(a.for_))
    if hit:
        raise StepFailed(
            f"no event {a.event!r} from {a.client} for {a.for_:g}s",
            f"{a.event} {_short(hit.get('data'))} at t={hit['t']:.2f}s",
        )


async def expect_reply(run: Run, a: m.ExpectReply, sr: StepResult) -> str | None:
    key = a.reply or a.client
    reply = await run._until(lambda: run.replies.get(key), _deadline(run, a.within))
    if reply is None:
        raise StepFailed(f"a reply to {key!r}", "no reply arrived")
    if bool(reply.get("ok")) != a.ok:
        shown = (
            reply.get("result") if reply.get("ok") else f"{reply.get('type')}: {reply.get('error')}"
        )
        raise StepFailed(
            f"{reply['cmd']} to {'succeed' if a.ok else 'fail'}",
            f"ok={reply.get('ok')}: {_short(shown)}",
        )
    if a.result is not None:
        want = run.templates.render(a.result)
        if not matches(want, reply.get("result")):
            raise StepFailed(f"result matching {_short(want)}", _short(reply.get("result")))
    if a.error is not None and not error_matches(a.error, reply.get("type"), reply.get("error")):
        shown = a.error if a.error.startswith("/") else f"/{a.error}/"
        raise StepFailed(
            f"an error whose type or message matches {shown}",
            f"{reply.get('type')}: {reply.get('error')}",
        )
    return None


def _state(run: Run, client: str) -> str:
    views = run.sessions_of(client)
    states = {v["state"] for v in views}
    for state in ("open", "detached", "expired"):
        if state in states:
            return state
    return "absent"


def _server_mismatches(run: Run, a: m.ExpectServer) -> list[str]:
    problems = []
    for client, want in (a.sessions or {}).items():
        got = _state(run, client)
        if got != want:
            problems.append(f"session of {client} is {got}, not {want}")
    for client, topics in (a.subscriptions or {}).items():
        view = run.session_of(client)
        got = sorted(view["subscriptions"]) if view else None
        if got != sorted(run.templates.render(topics)):
            problems.append(f"subscriptions of {client} are {got}, not {sorted(topics)}")
    for client, partial in (a.session or {}).items():
        view = run.session_of(client)
        want = run.templates.render(partial)
        if view is None or not matches(want, view):
            problems.append(f"session of {client} is {_short(view)}, not matching {_short(want)}")
    for room, clients in (a.rooms or {}).items():
        got = sorted(
            c
            for c in run.sc.clients
            if (v := run.session_of(c)) and v["state"] == "open" and room in v["rooms"]
        )
        if got != sorted(clients):
            problems.append(f"room {room} holds {got}, not {sorted(clients)}")
    return problems


async def expect_server(run: Run, a: m.ExpectServer, sr: StepResult) -> str | None:
    ok = await run._until(lambda: not _server_mismatches(run, a), _deadline(run, a.within))
    if not ok:
        raise StepFailed(
            "server state "
            + _short(a.model_dump(exclude_defaults=True, exclude={"level", "rule"})),
            "; ".join(_server_mismatches(run, a)),
        )
    return _late(run, sr, a.within, run.now())


def _find_pattern(
    records: list[dict[str, Any]], pattern: list[dict[str, Any]]
) -> tuple[int, float]:
    """How many pattern items matched in order, and the time of the last one matched."""
    i = 0
    t = 0.0
    for rec in records:
        if i < len(pattern) and matches(pattern[i], rec):
            i += 1
            t = rec["t"]
    return i, t


async def expect_transcript(run: Run, a: m.ExpectTranscript, sr: StepResult) -> str | None:
    pattern = run.templates.render(a.pattern)
    first = 0
    if a.since == "step":
        first = next(
            (r["n"] for r in run.records if r["t"] >= (sr.started or 0.0)), len(run.records)
        )
        # the step's own marker is in the list; records of earlier steps are not
        first = max(0, first - 1)
    if a.absent:
        await asyncio.sleep(run.clock.real(a.within))
        got, t = _find_pattern(run.records[first:], pattern)
        if got == len(pattern):
            raise StepFailed(
                f"no transcript pattern {_short(pattern)}", f"it occurred, ending at t={t:.2f}s"
            )
        return None

    def check() -> float | None:
        got, t = _find_pattern(run.records[first:], pattern)
        return t or 0.000001 if got == len(pattern) else None

    t = await run._until(check, _deadline(run, a.within))
    if t is None:
        got, _ = _find_pattern(run.records[first:], pattern)
        raise StepFailed(
            f"transcript pattern of {len(pattern)} records in order",
            f"matched {got}; no record after them matches {_short(pattern[got])}",
        )
    return _late(run, sr, a.within, t)


async def expect_var(run: Run, a: m.ExpectVar, sr: StepResult) -> None:
    value = run.templates.render(a.value)
    checks = []
    if "equals" in a.model_fields_set:
        checks.append(("equal " + _short(a.equals), matches(run.templates.render(a.equals), value)))
    if a.matches is not None:
        checks.append((f"match /{a.matches}/", re.search(a.matches, str(value)) is not None))
    if a.greater is not None:
        checks.append((f"be > {a.greater:g}", isinstance(value, int | float) and value > a.greater))
    if a.less is not None:
        checks.append((f"be < {a.less:g}", isinstance(value, int | float) and value < a.less))
    failed = [what for what, ok in checks if not ok]
    if failed:
        raise StepFailed(f"{a.value!r} to " + " and ".join(failed), _short(value))


async def run(runner: Run, name: str, args: Any, sr: StepResult) -> str | None:
    handler = {
        "expect.event": expect_event,
        "expect.no_event": expect_no_event,
        "expect.reply": expect_reply,
        "expect.server": expect_server,
        "expect.transcript": expect_transcript,
        "expect.var": expect_var,
    }[name]
    return await handler(runner, args, sr)  # type: ignore[operator]
