"""The socket's phase, a drain's progress and the client's timers, as tables the core obeys.

:mod:`squall.client.states` holds what the application sees (``Status``); this
module holds what the session core keeps underneath it, in the same form:

- ``PHASES``: where the current socket is, and the events that move it. The core
  changes phase only through :func:`next_phase`.
- ``DRAINS``: a server's reconnect request (§6) from ``reconnect_request`` to the
  socket's end, through :func:`next_drain`; ``DRAIN_TIMERS`` names the one timer
  each drain state runs.
- ``TIMERS``: every timer the core sets, the phases it may be set in, what ends it
  and what its firing does.

An undeclared move is a bug in the client, not a misuse by the application (that
is ``IllegalTransition``, raised for ``Status``), so it raises ``AssertionError``
naming the state, the event and the moves the table allows. The tables are drawn
in docs/client.md by :mod:`squall.client.machine_doc`; tests/client/test_phases.py
fails when the committed page is out of date, or when no test takes a declared move.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar


class Phase(StrEnum):
    """Where the current socket is; NONE when there is none."""

    NONE = "none"  # before the first socket, between attempts, after the last
    OPENING = "opening"  # the handshake is under way
    AUTHENTICATING = "authenticating"  # open; waiting for `authenticated` (§2)
    RECOVERING = "recovering"  # authenticated with a recovery token; `recovery` follows (§7)
    READY = "ready"  # frames flow: the status is CONNECTED
    CLOSING = "closing"  # disconnect() closed it; waiting for the socket to end


class PhaseEvent(StrEnum):
    OPEN = "open"  # connect() or a retry opens a new socket
    OPENED = "opened"  # the handshake completed
    RECOVER = "recover"  # `authenticated` after a recovery token was presented
    READY = "ready"  # `authenticated` without a token, or the `recovery` answer
    CLOSE = "close"  # disconnect()
    GONE = "gone"  # the socket ended, the client abandoned it, or reconnect() dropped it


P, E = Phase, PhaseEvent

PHASES: dict[Phase, dict[PhaseEvent, Phase]] = {
    P.NONE: {E.OPEN: P.OPENING},
    P.OPENING: {E.OPENED: P.AUTHENTICATING, E.CLOSE: P.CLOSING, E.GONE: P.NONE},
    P.AUTHENTICATING: {
        E.RECOVER: P.RECOVERING,
        E.READY: P.READY,
        E.CLOSE: P.CLOSING,
        E.GONE: P.NONE,
    },
    P.RECOVERING: {E.READY: P.READY, E.CLOSE: P.CLOSING, E.GONE: P.NONE},
    P.READY: {E.CLOSE: P.CLOSING, E.GONE: P.NONE},
    P.CLOSING: {E.GONE: P.NONE},
}


class Drain(StrEnum):
    """A server's reconnect request (§6), from its arrival to the socket's end."""

    NONE = "none"  # no request outstanding
    ASKED = "asked"  # `reconnect_request` received; the application has not answered
    PENDING = "pending"  # answered `pending`: held until `done` or the deadline
    DONE = "done"  # answered `done`: the server should close 1012 now


class DrainEvent(StrEnum):
    REQUEST = "reconnect_request"  # the server asks the client to move (again, it restarts)
    PENDING = "pending"  # answer_drain("pending")
    DONE = "done"  # answer_drain("done")
    GONE = "gone"  # the socket ended: the request ends with it


D, DE = Drain, DrainEvent

DRAINS: dict[Drain, dict[DrainEvent, Drain]] = {
    D.NONE: {DE.REQUEST: D.ASKED},
    D.ASKED: {DE.REQUEST: D.ASKED, DE.PENDING: D.PENDING, DE.DONE: D.DONE, DE.GONE: D.NONE},
    D.PENDING: {DE.REQUEST: D.ASKED, DE.DONE: D.DONE, DE.GONE: D.NONE},
    D.DONE: {DE.REQUEST: D.ASKED, DE.GONE: D.NONE},
}


class Timer(StrEnum):
    """A timer's name in ``SetTimer`` / ``CancelTimer``; a call's is ``call:<ticket>``."""

    RETRY = "retry"
    OPEN = "open"
    PING = "ping"
    PONG = "pong"
    DRAIN_ANSWER = "drain_answer"
    DRAIN_DEADLINE = "drain_deadline"
    DRAIN_CLOSE = "drain_close"
    CALL = "call"


class Ends(StrEnum):
    """What cancels a timer besides its own firing (disconnect() and giving up cancel all)."""

    CLIENT = "reconnect()"  # the retry outlives sockets: there is none while it runs
    SOCKET = "the socket's end"
    CALL = "its answer, the socket's end"


@dataclass(frozen=True)
class TimerRule:
    armed_in: frozenset[Phase]  # the phases in which the core may set it
    ends: Ends
    fires: str  # what its firing does (docs/client.md)


_FRAMES = frozenset({P.OPENING, P.AUTHENTICATING, P.RECOVERING, P.READY})  # frames are read

TIMERS: dict[Timer, TimerRule] = {
    Timer.RETRY: TimerRule(
        frozenset({P.NONE}), Ends.CLIENT, "the backoff delay is over: open the next socket"
    ),
    Timer.OPEN: TimerRule(
        frozenset({P.OPENING}),
        Ends.SOCKET,
        "not connected within `open_timeout`: abort the socket, reconnect with backoff",
    ),
    Timer.PING: TimerRule(
        frozenset({P.READY}),
        Ends.SOCKET,
        "send a ping (a ping still unanswered is judged first) and set the next",
    ),
    Timer.PONG: TimerRule(
        frozenset({P.READY}),
        Ends.SOCKET,
        "a missed pong; `max_missed_pongs` in a row abort the socket and reconnect",
    ),
    Timer.DRAIN_ANSWER: TimerRule(
        _FRAMES, Ends.SOCKET, "the application did not answer: reconnect at once"
    ),
    Timer.DRAIN_DEADLINE: TimerRule(
        frozenset({P.READY}), Ends.SOCKET, "`pending` held to the deadline: reconnect at once"
    ),
    Timer.DRAIN_CLOSE: TimerRule(
        frozenset({P.READY}),
        Ends.SOCKET,
        "the server did not close after `done`: reconnect at once",
    ),
    Timer.CALL: TimerRule(
        frozenset({P.READY}), Ends.CALL, "no answer within the call's timeout: `CallTimeout`"
    ),
}

# Cancelled, in this order, when the socket is forgotten.
SOCKET_TIMERS: tuple[Timer, ...] = tuple(t for t, r in TIMERS.items() if r.ends is Ends.SOCKET)

# The timer each drain state runs; entering a state cancels the others'.
DRAIN_TIMERS: dict[Drain, Timer] = {
    D.ASKED: Timer.DRAIN_ANSWER,
    D.PENDING: Timer.DRAIN_DEADLINE,
    D.DONE: Timer.DRAIN_CLOSE,
}


def call_timer(ticket: int) -> str:
    """The name of the timeout timer of call ``ticket``."""
    return f"{Timer.CALL.value}:{ticket}"


def parse_timer(name: str) -> tuple[Timer, int | None]:
    """``"ping"`` -> (PING, None); ``"call:7"`` -> (CALL, 7)."""
    kind, _, ticket = name.partition(":")
    return Timer(kind), int(ticket) if ticket else None


_S = TypeVar("_S", bound=StrEnum)
_V = TypeVar("_V", bound=StrEnum)


def _move(table: Mapping[_S, Mapping[_V, _S]], what: str, state: _S, event: _V) -> _S:
    moves = table[state]
    if event not in moves:
        allowed = ", ".join(e.value for e in moves) or "none"
        raise AssertionError(
            f"client bug: undeclared {what} move: event {event.value!r} in {what}"
            f" {state.value!r} (declared: {allowed})"
        )
    return moves[event]


def next_phase(phase: Phase, event: PhaseEvent) -> Phase:
    """The phase after ``event``; AssertionError if ``PHASES`` does not declare the move."""
    return _move(PHASES, "phase", phase, event)


def next_drain(drain: Drain, event: DrainEvent) -> Drain:
    """The drain state after ``event``; AssertionError if ``DRAINS`` does not declare it."""
    return _move(DRAINS, "drain", drain, event)


# --- docs ---------------------------------------------------------------------------------------


def _mermaid(table: Mapping[_S, Mapping[_V, _S]], start: StrEnum) -> str:
    lines = ["stateDiagram-v2", f"    [*] --> {start.value}"]
    for src, moves in table.items():
        for event, dst in moves.items():
            lines.append(f"    {src.value} --> {dst.value}: {event.value}")
    return "\n".join(lines)


def phase_diagram() -> str:
    """``PHASES`` as a Mermaid state diagram."""
    return _mermaid(PHASES, Phase.NONE)


def drain_diagram() -> str:
    """``DRAINS`` as a Mermaid state diagram."""
    return _mermaid(DRAINS, Drain.NONE)


def timer_table() -> str:
    """``TIMERS`` as a Markdown table."""
    drains = {timer: state for state, timer in DRAIN_TIMERS.items()}
    rows = [
        "| timer | set in phase | ends with | on firing |",
        "|---|---|---|---|",
    ]
    for timer, rule in TIMERS.items():
        name = f"`{timer.value}:<ticket>`" if timer is Timer.CALL else f"`{timer.value}`"
        phases = ", ".join(p.value for p in Phase if p in rule.armed_in)
        if timer in drains:
            phases += f" (drain `{drains[timer].value}`)"
        rows.append(f"| {name} | {phases} | {rule.ends.value} | {rule.fires} |")
    return "\n".join(rows)
