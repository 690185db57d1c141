"""The terms every step works under: how it says it failed, and the real time its waits get.

One module, imported by the runner, the run context and every step pack (the core
ones included), and importing none of them, so no step module and the runner can
ever import each other in a circle.

Failing: a step raises :class:`StepFailed` with what it expected and what it
observed. Whose fault it was decides the verdict: the client's (FAILED, the
default; :func:`unimplemented` for UNIMPLEMENTED) or someone else's (ERROR:
:func:`scenario_error` for a scenario that asks what cannot be done, :func:`squall_bug`
for an internal error). A handler may also let :class:`~squall.simulator.ControlError`,
``LookupError`` or ``ValueError`` escape: the runner counts those as the scenario's
fault. Any other exception is an ERROR blamed on squall, or on the third-party pack
whose handler raised it.

Time: a scenario's durations are protocol seconds, but processes and sockets do not
run at the timescale, so every positive deadline gets :data:`GRACE` real seconds on
top (and the simulator's answer windows are floored at it, squall.clock.deadline_delay);
an expectation met after ``within`` plus :data:`LATE_SLACK` real seconds is *late*.
"""

from __future__ import annotations

import json
import traceback
from typing import Any

from .verdicts import Blame

__all__ = [
    "CLEANUP_TIMEOUT",
    "GRACE",
    "LATE_SLACK",
    "MEDIA_GRACE",
    "NOISY_EVENTS",
    "REPLY_WITHIN",
    "StepFailed",
    "scenario_error",
    "short",
    "squall_bug",
    "unimplemented",
]

GRACE = 3.0
"""Real seconds added to every positive deadline; also the floor (in real seconds) of the
simulator's answer windows."""

LATE_SLACK = 0.5
"""Real seconds past ``within`` before a match counts as late (NON-STRICT)."""

REPLY_WITHIN = 30.0
"""Protocol seconds a driver has to answer a command a step waits on (plus 3 x GRACE)."""

MEDIA_GRACE = 5.0
"""Real seconds on top of a media window: process start, aiortc warm-up."""

CLEANUP_TIMEOUT = 15.0
"""Real seconds one cleanup (a pack's teardown) may take when the run ends."""

NOISY_EVENTS = frozenset({"sent", "packet", "status"})
"""Client events left out of failure summaries: they say nothing a person acts on."""


class StepFailed(Exception):
    """An expectation (or action) that did not hold: what was expected, what was seen.

    ``blame`` is whose fault it is: the client's (FAILED, the default) or, for anything
    else (:class:`~.verdicts.Blame`), nobody's the run can judge (ERROR).
    ``unimplemented``: the client lacks what the step needs (UNIMPLEMENTED).
    """

    def __init__(
        self,
        expected: str,
        observed: str,
        *,
        unimplemented: bool = False,
        blame: Blame = Blame.CLIENT,
    ) -> None:
        super().__init__(expected)
        self.expected = expected
        self.observed = observed
        self.unimplemented = unimplemented
        self.blame = blame


def unimplemented(expected: str, observed: str) -> StepFailed:
    """The client does not implement what the step needs: UNIMPLEMENTED, not FAILED."""
    return StepFailed(expected, observed, unimplemented=True)


def scenario_error(expected: str, observed: str) -> StepFailed:
    """The scenario asks for what cannot be done (a name nobody defined): ERROR, its fault."""
    return StepFailed(expected, observed, blame=Blame.SCENARIO)


def squall_bug(exc: BaseException, *, pack: str | None = None) -> StepFailed:
    """An exception no step should raise, as an ERROR that names it and where it came from.

    ``pack``: the third-party step pack whose handler raised it; the ERROR is then its
    fault (:attr:`~.verdicts.Blame.PACK`), not squall's.
    """
    frames = traceback.extract_tb(exc.__traceback__)
    at = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    expected = (
        f"step pack {pack} runs the step without an internal error"
        if pack
        else "the step runs without an internal error"
    )
    return StepFailed(
        expected, f"{type(exc).__name__}: {exc}{at}", blame=Blame.PACK if pack else Blame.SQUALL
    )


def short(value: Any, limit: int = 300) -> str:
    """``value`` as compact JSON for a failure message, cut to ``limit`` characters."""
    text = json.dumps(value, default=str, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 3] + "..."
