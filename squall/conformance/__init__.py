"""Scenarios and the conformance suite: YAML that drives client, server and network together.

- :mod:`.models` the scenario language (pydantic, ``extra="forbid"``), the JSON Schema's source;
- :mod:`.loader` YAML with source marks, so every error names file:line:column;
- :mod:`.validate` / :mod:`.cli` ``squall validate`` and ``squall run``;
- :mod:`.runner` runs one scenario against real parts and returns a :class:`~.verdicts.Result`;
- :mod:`.clients` the client under test, spoken to through the driver protocol (docs/driver.md);
- :mod:`.plugin` the pytest plugin (``pytest11``): one test item per scenario;
- :mod:`.report` the JSON matrix, the static HTML report and sequence diagrams.
"""

__all__: list[str] = []  # nothing at package level: import the modules above
