"""A seeded chaos soak of the whole stack, Jepsen style (docs/chaos.md).

``schedule`` draws a fault plan and a workload from a seed, ``soak`` plays it on a real
simulator, fault proxy and reference client, and ``history`` records what happened and
checks it. ``python -m squall.chaos --seed N`` replays one schedule.
"""

from .history import Entry, History, Violation, check
from .schedule import Fault, Op, Schedule, generate
from .soak import Outcome, SoakError, play, soak

__all__ = [
    "Entry",
    "Fault",
    "History",
    "Op",
    "Outcome",
    "Schedule",
    "SoakError",
    "Violation",
    "check",
    "generate",
    "play",
    "soak",
]
