"""The server's and the client's settings as scenario models, generated from their dataclasses.

:class:`ServerConfig` is :class:`squall.simulator.Config` (``server.config``) and
:class:`ClientPolicy` the reference client's :class:`squall.client.policy.Policy`
(a client's ``policy``, ``client.configure``): the same keys, types, defaults and
bounds, so an unknown key or a wrong type is found when the file is loaded. Apart
from :mod:`.models` so that step packs (:mod:`.steps_core`) can use them.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, create_model

from squall.client.policy import Policy
from squall.simulator import Config
from squall.simulator.dialects import names as dialect_names
from squall.simulator.server import Simulator

from .base import Model, _is_duration, parse_duration

__all__ = ["ClientPolicy", "ServerConfig", "limits_of"]


def _settings_model(
    name: str,
    source: type,
    doc: str,
    *,
    not_durations: frozenset[str] = frozenset(),
    limits: dict[str, dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
) -> type[Model]:
    """A model of a settings dataclass (the server's :class:`Config`, the client's
    :class:`Policy`): the same keys, types and defaults, so an unknown key or a wrong type
    is found when the file is loaded, with a did-you-mean, instead of at run time. Float
    settings are durations (``"30s"``) unless named in ``not_durations``."""
    hints = typing.get_type_hints(source)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(source):
        annotation = hints[f.name]
        if _is_duration(annotation) and f.name not in not_durations:
            annotation = Annotated[annotation, BeforeValidator(parse_duration)]
        fields[f.name] = (annotation, Field(f.default, **(limits or {}).get(f.name, {})))
    fields.update(extra or {})
    return create_model(name, __base__=Model, __doc__=doc, **fields)


def limits_of(op: str) -> dict[str, dict[str, Any]]:
    """The bounds the control plane's ``op`` puts on each argument (``ge=0``, ...)."""
    out: dict[str, dict[str, Any]] = {}
    for pname, param in inspect.signature(
        inspect.unwrap(getattr(Simulator, op))
    ).parameters.items():
        if isinstance(param.default, type(Field())):
            bounds: dict[str, Any] = {}
            for meta in param.default.metadata:
                bounds.update(
                    {k: getattr(meta, k) for k in ("ge", "gt", "le", "lt") if hasattr(meta, k)}
                )
            out[pname] = bounds
    return out


class ServerConfig(
    _settings_model(  # type: ignore[misc]  # its fields are generated from Config
        "ServerConfig",
        Config,
        "",
        not_durations=frozenset({"rate_limit"}),
        limits=limits_of("configure"),
    )
):
    """Server policy at start: any field of squall.simulator.Config (durations in protocol
    seconds)."""


class ClientPolicy(
    _settings_model(  # type: ignore[misc]  # its fields are generated from Policy
        "ClientPolicy",
        Policy,
        "",
        not_durations=frozenset({"backoff_multiplier", "jitter"}),
        extra={
            "recovery_token": (
                str | None,
                Field(None, description="resume this session on the first connect"),
            ),
            **{
                d: (
                    dict[str, Any] | None,
                    Field(None, description=f"options of the {d} dialect (docs/dialects/{d}.md)"),
                )
                for d in dialect_names()
                if d != "reference"
            },
        },
    )
):
    """Settings for the driver's configure command: any field of the reference client's
    squall.client.policy.Policy, a recovery_token, and a dialect's own options under its
    name. A driver ignores what it does not use; for settings of your own driver, send
    client.command: {cmd: configure, args: {...}}."""
