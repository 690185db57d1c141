"""Scripted answers to RPC calls: ``sim.on_rpc(method, reply= | error= | no_reply=, delay=)``.

Rules stack per method, newest first; a rule with ``times`` expires after that
many calls and the older rule shows through again. With no rule, the built-ins
answer (``echo`` returns its params, ``time`` the server clock) and any other
method gets the error ``method_not_found``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Handler = Callable[[Any], Any]


@dataclass
class RpcRule:
    method: str
    reply: Any = None
    error: dict[str, Any] | None = None
    delay: float = 0.0
    no_reply: bool = False
    times: int | None = None
    handler: Handler | None = None
    calls: int = 0


@dataclass(frozen=True)
class RpcOutcome:
    """What to do with one call: ``result`` or ``error`` after ``delay``, or no answer."""

    delay: float = 0.0
    result: Any = None
    error: dict[str, Any] | None = None
    silent: bool = False


class RpcTable:
    def __init__(self, now: Callable[[], float]) -> None:
        self._rules: dict[str, list[RpcRule]] = {}
        self._now = now

    def add(self, rule: RpcRule) -> None:
        self._rules.setdefault(rule.method, []).insert(0, rule)

    def clear(self, method: str | None = None) -> None:
        if method is None:
            self._rules.clear()
        else:
            self._rules.pop(method, None)

    def rules(self) -> list[dict[str, Any]]:
        return [
            {
                "method": r.method,
                "delay": r.delay,
                "no_reply": r.no_reply,
                "times": r.times,
                "calls": r.calls,
                "error": r.error,
                "reply": r.reply if r.handler is None else "<callable>",
            }
            for rules in self._rules.values()
            for r in rules
        ]

    def resolve(self, method: str, params: Any) -> RpcOutcome:
        rules = self._rules.get(method)
        if rules:
            rule = rules[0]
            rule.calls += 1
            if rule.times is not None and rule.calls >= rule.times:
                rules.pop(0)
            if rule.no_reply:
                return RpcOutcome(silent=True)
            if rule.error is not None:
                return RpcOutcome(delay=rule.delay, error=rule.error)
            if rule.handler is not None:
                try:
                    return RpcOutcome(delay=rule.delay, result=rule.handler(params))
                except Exception as exc:  # a user's handler failing is an RPC error, not a crash
                    return RpcOutcome(
                        delay=rule.delay,
                        error={"code": "handler_failed", "message": f"{type(exc).__name__}: {exc}"},
                    )
            return RpcOutcome(delay=rule.delay, result=rule.reply)
        if method == "echo":
            return RpcOutcome(result=params)
        if method == "time":
            return RpcOutcome(result=self._now())
        return RpcOutcome(
            error={"code": "method_not_found", "message": f"no handler for method {method!r}"}
        )
