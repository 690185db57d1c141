"""Verdicts and results: what one run of one scenario against one client concluded.

Autobahn|Testsuite's set, with the same meaning:

- ``OK``: every expectation held, on time;
- ``NON-STRICT``: it conforms, but missed a ``level: non-strict`` expectation or
  met one late (later than ``within`` in protocol time, beyond a real-time slack);
- ``FAILED``: a strict expectation did not hold, or the client broke the driver protocol;
- ``INFORMATIONAL``: the scenario is marked ``informational``: run and reported, never judged;
- ``UNIMPLEMENTED``: the client does not implement a command the scenario needs.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from enum import StrEnum
from typing import Any

from squall.secrets import Secrets


class Verdict(StrEnum):
    OK = "OK"
    NON_STRICT = "NON-STRICT"
    FAILED = "FAILED"
    INFORMATIONAL = "INFORMATIONAL"
    UNIMPLEMENTED = "UNIMPLEMENTED"

    @property
    def passed(self) -> bool:
        """Whether pytest and ``squall run`` count it as a pass."""
        return self is not Verdict.FAILED


class StepStatus(StrEnum):
    OK = "ok"
    LATE = "late"
    MISSED = "missed"  # a non-strict or informational expectation that did not hold
    FAILED = "failed"
    SKIPPED = "skipped"
    UNIMPLEMENTED = "unimplemented"


@dataclass
class StepResult:
    index: int
    name: str
    line: int
    args: dict[str, Any]
    status: StepStatus = StepStatus.SKIPPED
    started: float | None = None  # protocol seconds, the run's clock
    ended: float | None = None
    message: str = ""

    @property
    def label(self) -> str:
        return f"step {self.index + 1} ({self.name}, line {self.line})"


@dataclass
class Failure:
    """The expectation that decided the verdict and what was seen instead."""

    step: int
    name: str
    line: int
    expected: str
    observed: str
    transcript: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Result:
    scenario: str
    title: str
    path: str
    client: str
    verdict: Verdict = Verdict.OK
    steps: list[StepResult] = field(default_factory=list)
    failure: Failure | None = None
    notes: list[str] = field(default_factory=list)
    wall: float = 0.0  # real seconds
    protocol_time: float = 0.0  # protocol seconds the run covered
    timescale: float = 1.0
    transcript: list[dict[str, Any]] = field(default_factory=list)
    transcript_file: str | None = None
    #: The run's credentials: everything that leaves the result (JSON, reports) is scrubbed
    #: with them. Never serialized.
    secrets: Secrets | None = field(default=None, repr=False, compare=False)

    def to_json(self, *, transcript: bool = False) -> dict[str, Any]:
        out = {
            f.name: _plain(getattr(self, f.name))
            for f in fields(self)
            if f.name != "secrets" and (transcript or f.name != "transcript")
        }
        out["verdict"] = self.verdict.value
        return self.secrets.scrub(out) if self.secrets is not None else out

    def seal(self) -> None:
        """Scrub, in place, everything the run wrote here: step arguments and messages, the
        failure, notes, the transcript (with every secret known by the end of the run)."""
        secrets = self.secrets
        if secrets is None:
            return
        for step in self.steps:
            step.args = secrets.scrub(step.args)
            step.message = secrets.scrub_text(step.message)
        f = self.failure
        if f is not None:
            f.expected, f.observed = secrets.scrub_text(f.expected), secrets.scrub_text(f.observed)
            f.transcript = secrets.scrub(f.transcript)
        self.notes = secrets.scrub(self.notes)
        self.transcript = secrets.scrub(self.transcript)


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return copy.deepcopy(value)
