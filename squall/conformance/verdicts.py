"""Verdicts and results: what one run of one scenario against one client concluded.

Autobahn|Testsuite's set, with the same meaning:

- ``OK``: every expectation held, on time;
- ``NON-STRICT``: it conforms, but missed a ``level: non-strict`` expectation or
  met one late (later than ``within`` in protocol time, beyond a real-time slack);
- ``FAILED``: a strict expectation did not hold, or the client broke the driver protocol;
- ``INFORMATIONAL``: the scenario is marked ``informational``: run and reported, never judged;
- ``UNIMPLEMENTED``: the client does not implement a command the scenario needs;

and one of squall's own, for what is not the client's fault:

- ``ERROR``: the run could not judge the client: the scenario is wrong in a way only
  running it shows (a server step naming a session that does not exist), the client's
  driver did not start, squall itself broke, or a third-party step pack did.
  :attr:`Failure.blame` says which.

A FAILED verdict names the rule the client broke: the scenario's ``spec`` references
(:attr:`Result.spec`) and, when the broken expectation says which rule it checks
(its ``rule:``), that rule (:attr:`Failure.rule`). :meth:`Result.headline` puts the
expectation, the observation and the rule on one line, for consoles and summaries.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from enum import StrEnum
from typing import Any

from squall.secrets import Secrets

__all__ = ["Blame", "Failure", "Result", "StepResult", "StepStatus", "Verdict"]


class Verdict(StrEnum):
    OK = "OK"
    NON_STRICT = "NON-STRICT"
    FAILED = "FAILED"
    INFORMATIONAL = "INFORMATIONAL"
    UNIMPLEMENTED = "UNIMPLEMENTED"
    ERROR = "ERROR"

    @property
    def passed(self) -> bool:
        """Whether pytest and ``squall run`` count it as a pass."""
        return self not in (Verdict.FAILED, Verdict.ERROR)


class Blame(StrEnum):
    """Who has to act on a failure: the client's author (FAILED) or someone else (ERROR)."""

    CLIENT = "client"  # the client under test broke a rule: FAILED
    SCENARIO = "scenario"  # the scenario asks for something that cannot be done
    DRIVER = "driver"  # the client's driver did not start: nothing was judged
    SQUALL = "squall"  # a bug in squall itself
    PACK = "pack"  # a bug in a third-party step pack (squall.steps entry point)

    @property
    def who(self) -> str:
        """The party in words, for the headline."""
        return {
            Blame.CLIENT: "the client",
            Blame.SCENARIO: "the scenario",
            Blame.DRIVER: "the client's driver",
            Blame.SQUALL: "squall itself (please report it)",
            Blame.PACK: "a third-party step pack (report it to its authors)",
        }[self]


class StepStatus(StrEnum):
    OK = "ok"
    LATE = "late"
    MISSED = "missed"  # a non-strict or informational expectation that did not hold
    FAILED = "failed"
    SKIPPED = "skipped"
    UNIMPLEMENTED = "unimplemented"
    ERROR = "error"  # not the client's fault: the verdict is ERROR


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
    blame: Blame = Blame.CLIENT
    rule: str | None = None  # the expectation's ``rule:``, the rule it checks

    @property
    def where(self) -> str:
        """``step 3 expect.event`` (numbered from 1, as ``squall validate`` numbers them)."""
        return f"step {self.step + 1} {self.name}" if self.step >= 0 else self.name


@dataclass
class Result:
    scenario: str
    title: str
    path: str
    client: str
    verdict: Verdict = Verdict.OK
    spec: list[str] = field(default_factory=list)  # the scenario's references (its ``spec:``)
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
        if self.failure is not None:
            out["failure"]["blame"] = self.failure.blame.value
        out["headline"] = self.headline()  # the one line to act on ("" when nothing failed)
        return self.secrets.scrub(out) if self.secrets is not None else out

    def rules(self) -> str:
        """The rule of the failure and the scenario's references: ``an auth failure is final:
        §2; spec: protocol.md §2``; empty when there are none."""
        parts = []
        if self.failure is not None and self.failure.rule:
            parts.append(self.failure.rule)
        if self.spec:
            parts.append("spec: " + ", ".join(self.spec))
        return "; ".join(parts)

    def headline(self) -> str:
        """One line that says what to fix: the step, expected, observed, the rule; for
        ERROR, whose fault it is. Empty when nothing failed."""
        f = self.failure
        if f is None or self.verdict not in (Verdict.FAILED, Verdict.ERROR):
            return ""
        text = f"{f.where}: expected {f.expected}; observed {f.observed}"
        if self.verdict is Verdict.ERROR:
            text = f"not the client's fault, {f.blame.who}: {text}"
        rules = self.rules()
        if rules and self.verdict is Verdict.FAILED:
            text += f" [rule: {rules}]"
        text = " ".join(text.split())  # one line, whatever the parts held
        return self.secrets.scrub_text(text) if self.secrets is not None else text

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
            f.rule = secrets.scrub_text(f.rule) if f.rule is not None else None
            f.transcript = secrets.scrub(f.transcript)
        self.notes = secrets.scrub(self.notes)
        self.transcript = secrets.scrub(self.transcript)


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return copy.deepcopy(value)
