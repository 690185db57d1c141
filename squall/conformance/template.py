"""Variables and generated payloads inside step arguments: ``${name}``, ``${fake.word}``.

A string that is exactly one ``${...}`` is replaced by the value itself (a
number stays a number); inside a longer string it is formatted. ``name`` may be
a dotted path into a variable (``${reply.sid}``). ``fake.X`` calls faker's
provider ``X`` on a generator seeded with the scenario's ``seed``, so the same
scenario sends the same payloads every run.
"""

from __future__ import annotations

import re
from typing import Any

from .match import dig

_EXPR = re.compile(r"\$\{([^}]+)\}")


class UnknownVariable(KeyError):
    def __str__(self) -> str:
        return f"unknown variable ${{{self.args[0]}}} (known: {self.args[1] or 'none'})"


class Templates:
    """Renders values against the scenario's variables and its seeded faker."""

    def __init__(self, variables: dict[str, Any], seed: int) -> None:
        self.vars = variables
        self.seed = seed
        self._faker: Any = None

    @property
    def faker(self) -> Any:
        if self._faker is None:
            from faker import Faker

            self._faker = Faker()
            self._faker.seed_instance(self.seed)
        return self._faker

    def evaluate(self, expr: str) -> Any:
        expr = expr.strip()
        if expr.startswith("fake."):
            provider = getattr(self.faker, expr[5:], None)
            if provider is None:
                raise ValueError(f"faker has no provider {expr[5:]!r}")
            return provider()
        head = expr.split(".", 1)[0]
        if head not in self.vars:
            raise UnknownVariable(expr, ", ".join(sorted(self.vars)))
        return dig(self.vars, expr)

    def render(self, value: Any) -> Any:
        if isinstance(value, str):
            whole = _EXPR.fullmatch(value)
            if whole:
                return self.evaluate(whole.group(1))
            return _EXPR.sub(lambda m: str(self.evaluate(m.group(1))), value)
        if isinstance(value, dict):
            return {self.render(k): self.render(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.render(v) for v in value]
        return value
