"""The softphone step pack: incoming calls on a dialect that places them (genesys), checked at
both ends.

The server's side is the control plane's: ``server.place_call`` offers a call to a client's
session (a real aiortc peer sends a tone and counts what comes back) and ``server.end_call``
retracts or terminates it; both are generated core steps. This pack adds:

- ``client.softphone.*``: the driver's ``softphone.*`` commands (docs/driver.md): how the
  client answers a propose (``configure``), ``accept`` / ``reject`` a pending one, ``mute`` /
  ``unmute`` / ``hangup`` the call in progress, ``status`` (with its getStats packets);
- ``expect.call``: a call's state, mute, who ended it, and its media counted at both ends:
  at the simulator's aiortc peer (audible frames read from the client, RTP packets from
  getStats) and at the client (audible frames its own RTC stack decoded, from the driver's
  ``softphone.media`` / ``softphone.ended`` events; RTP packets from ``softphone.status``).

Media runs on the wall clock: ``within`` of ``expect.call`` is **real** seconds, whatever the
timescale, as for the WebRTC pack's media steps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from .base import Args, ClientArgs, DurationField, Name, Severity
from .contract import MEDIA_GRACE, StepFailed, scenario_error, short

if TYPE_CHECKING:
    from .context import RunContext
    from .verdicts import StepResult

__all__ = ["HANDLERS", "STEP_ARGS", "call_problems"]

CALL_STATES = (
    "proposed",
    "proceeding",
    "offered",
    "answered",
    "active",
    "ended",
    "retracted",
    "rejected",
    "failed",
)
#: the events a driver reports a call's client-side counts in (drivers/genesys-sdk/softphone.js)
COUNT_EVENTS = ("softphone.media", "softphone.ended")


# --- argument models -------------------------------------------------------------------------


class Configure(ClientArgs):
    """How the client answers the next propose: proceed at once, wait for ``accept``, reject."""

    _shorthand: ClassVar[str | None] = None
    answer: Literal["auto", "manual", "reject"] | None = None
    tone_hz: float | None = Field(None, ge=50, le=4000, description="the client's microphone tone")


class PendingRef(ClientArgs):
    """A pending (proposed, not yet proceeded) call: its session id, else the newest."""

    session_id: str | None = Field(None, min_length=1, description="the call id (propose id)")


class ExpectCall(Args, Severity):
    """A call on ``client``'s session (the newest, or ``call``) is as described, within
    ``within`` real seconds. Media counts are minimums."""

    client: Name = Field(description="the client whose session the call is on")
    call: str | None = Field(None, min_length=1, description="a call id (${call.id}); else newest")
    state: Literal[CALL_STATES] | None = None  # type: ignore[valid-type]
    muted: bool | None = Field(None, description="the client's last mute / unmute request")
    accepted: bool | None = Field(None, description="the client sent <accept/>")
    ended_by: Literal["client", "server"] | None = None
    reason: str | None = None
    server_frames: int | None = Field(
        None, ge=1, description="audible frames the simulator's peer read from the client"
    )
    server_packets: int | None = Field(
        None, ge=1, description="RTP packets the simulator's peer received (getStats)"
    )
    client_frames: int | None = Field(
        None, ge=1, description="audible frames the client decoded (its softphone.media events)"
    )
    client_packets: int | None = Field(
        None, ge=1, description="RTP packets the client received (softphone.status, getStats)"
    )
    as_: Name | None = Field(None, alias="as", description="store the call's view in this var")
    within: DurationField = Field(10.0, description="real seconds (media runs on the wall clock)")


# --- helpers -----------------------------------------------------------------------------------


def _calls_of(ctx: RunContext, client: str) -> list[dict[str, Any]]:
    sessions = {str(s["id"]) for s in ctx.sessions_of(client)}
    return [c for c in ctx.sim.calls() if c.get("session") in sessions]


def _find(ctx: RunContext, a: ExpectCall, call_id: str | None) -> dict[str, Any] | None:
    if call_id is not None:
        return next((c for c in ctx.sim.calls() if c.get("id") == call_id), None)
    mine = _calls_of(ctx, a.client)
    return mine[-1] if mine else None


async def _with_packets(ctx: RunContext, call: dict[str, Any]) -> dict[str, Any]:
    """The call with its packets counted now, where the dialect can (getStats of its peer)."""
    report = getattr(getattr(ctx.sim.dialect, "softphone", None), "report", None)
    if report is None:
        return call
    try:
        fresh: dict[str, Any] = await report(call["id"])
    except KeyError:  # forgotten since: the view we have is all there is
        return call
    return fresh


def _client_counts(ctx: RunContext, client: str, call_id: str) -> dict[str, Any]:
    """The client's latest counts for ``call_id``, from its driver's events."""
    for rec in reversed(ctx.events.get(client, [])):
        data = rec.get("data") or {}
        if rec["event"] in COUNT_EVENTS and data.get("sessionId") == call_id:
            return dict(data)
    return {}


def _audible(media: dict[str, Any] | None) -> int:
    if not media:
        return 0
    return int(media.get("frames_received", 0)) - int(media.get("silent_frames_received", 0))


def call_problems(
    a: ExpectCall,
    call: dict[str, Any] | None,
    client: dict[str, Any],
    client_packets: int | None = None,
) -> list[str]:
    """What of ``a`` does not hold for ``call`` (the simulator's view) and ``client`` (the
    client's counts); empty when all of it does."""
    if call is None:
        return ["no such call"]
    problems = []
    for key in ("state", "muted", "accepted", "ended_by", "reason"):
        want = getattr(a, key)
        if want is not None and call.get(key) != want:
            problems.append(f"{key} is {call.get(key)!r}, not {want!r}")
    media = call.get("media") or {}
    if a.server_frames is not None and _audible(media) < a.server_frames:
        problems.append(
            f"the simulator read {_audible(media)} audible frames of the client "
            f"(of {media.get('frames_received', 0)}), not {a.server_frames}"
        )
    if a.server_packets is not None and int(media.get("packets_received", 0)) < a.server_packets:
        problems.append(
            f"the simulator received {media.get('packets_received', 0)} RTP packets, "
            f"not {a.server_packets}"
        )
    heard = int(client.get("audible_frames", 0))
    if a.client_frames is not None and heard < a.client_frames:
        problems.append(
            f"the client decoded {heard} audible frames (of {client.get('frames_received', 0)}), "
            f"not {a.client_frames}"
        )
    if a.client_packets is not None and (client_packets or 0) < a.client_packets:
        problems.append(
            f"the client received {client_packets or 0} RTP packets, not {a.client_packets}"
        )
    return problems


async def _client_packets(ctx: RunContext, client: str, call_id: str) -> int:
    """RTP packets the client's RTC stack received on ``call_id`` (its getStats, asked now)."""
    reply = await ctx.command(client, "softphone.status", {}, wait=True)
    call = ((reply or {}).get("result") or {}).get("call") or {}
    return int(call.get("packets_received", 0)) if call.get("sessionId") == call_id else 0


# --- handlers ----------------------------------------------------------------------------------


def client_step(cmd: str, fields: tuple[str, ...]) -> Any:
    """The handler of ``client.softphone.<cmd>``: the driver's ``softphone.<cmd>``."""

    async def handler(ctx: RunContext, args: ClientArgs, step: StepResult) -> None:
        payload = {f: getattr(args, f) for f in fields if getattr(args, f) is not None}
        await ctx.command(
            args.client,
            f"softphone.{cmd}",
            ctx.render(payload),
            wait=args.wait,
            store=args.as_,
            expect_error=args.expect_error,
        )

    handler.__name__ = handler.__qualname__ = f"softphone_{cmd}"
    return handler


async def expect_call(ctx: RunContext, a: ExpectCall, step: StepResult) -> None:
    if a.client not in ctx.clients:
        raise scenario_error(f"a client named {a.client!r}", f"clients: {', '.join(ctx.clients)}")
    call_id = ctx.render(a.call) if a.call is not None else None
    seen: dict[str, Any] = {"call": None, "client": {}, "packets": None}

    async def held() -> bool:
        call = _find(ctx, a, call_id)
        if call is not None and a.server_packets is not None:
            call = await _with_packets(ctx, call)
        client = _client_counts(ctx, a.client, str(call["id"])) if call else {}
        packets = None
        if call is not None and a.client_packets is not None:
            packets = await _client_packets(ctx, a.client, str(call["id"]))
        seen.update(call=call, client=client, packets=packets)
        return not call_problems(a, call, client, packets)

    poll = 0.5 if (a.server_packets or a.client_packets) else 0.1
    if not await ctx.until(held, real=a.within + (MEDIA_GRACE if _media(a) else 0.0), poll=poll):
        call = seen["call"]
        wanted = a.model_dump(exclude_defaults=True, exclude={"client", "level", "rule", "as_"})
        history = [h.get("what") for h in (call or {}).get("history", [])]
        raise StepFailed(
            f"a call on {a.client}'s session with {short(wanted)}",
            "; ".join(call_problems(a, call, seen["client"], seen["packets"]))
            + (f" (history: {', '.join(history)})" if history else "")
            + ("" if call_id or call else f" (calls: {short(ctx.sim.calls(), 200)})"),
        )
    call = seen["call"]
    ctx.record("runner", "call", client=a.client, call=call, client_counts=seen["client"])
    if a.as_:
        ctx.vars[a.as_] = call


def _media(a: ExpectCall) -> bool:
    return any(
        v is not None
        for v in (a.server_frames, a.server_packets, a.client_frames, a.client_packets)
    )


# --- the pack ----------------------------------------------------------------------------------

_CLIENT: dict[str, tuple[type[ClientArgs], tuple[str, ...]]] = {
    "configure": (Configure, ("answer", "tone_hz")),
    "accept": (PendingRef, ("session_id",)),
    "reject": (PendingRef, ("session_id",)),
    "mute": (ClientArgs, ()),
    "unmute": (ClientArgs, ()),
    "hangup": (ClientArgs, ()),
    "status": (ClientArgs, ()),
}

STEP_ARGS: dict[str, type[Args]] = {
    **{f"client.softphone.{cmd}": model for cmd, (model, _) in _CLIENT.items()},
    "expect.call": ExpectCall,
}
"""The softphone steps and the model of their arguments."""

HANDLERS: dict[str, Any] = {
    **{f"client.softphone.{cmd}": client_step(cmd, fields) for cmd, (_, fields) in _CLIENT.items()},
    "expect.call": expect_call,
}
"""How the runner carries out each step: ``await handler(ctx, args, step_result)``."""
