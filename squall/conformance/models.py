"""The scenario language: pydantic models, ``extra="forbid"`` everywhere, one closed set of steps.

A scenario file is a mapping (:class:`Scenario`); its ``steps`` are a list of
one-key mappings, the key naming the step (``client.connect``, ``server.publish``,
``network.toxic``, ``wait``, ``expect.event``, ...) and the value its arguments.
Server steps are generated from the simulator's control plane
(:data:`squall.simulator.OPERATIONS`), so a scenario can do exactly what the
Python and HTTP faces can, through the same implementation.

``schemas/scenario.schema.json`` is :func:`scenario_json_schema`'s output,
committed and kept equal by a test, so editors autocomplete.

Every step comes from a step pack (:mod:`.packs`): a module with ``STEP_ARGS``
(step name -> argument model, built on :mod:`.base`) and ``HANDLERS`` (step name ->
``async handler(ctx, args, step)``, given a :class:`~.context.RunContext`). The
core actions (:mod:`.steps_core`), the core expectations (:mod:`.expect`) and
WebRTC (:mod:`.steps_webrtc`) are built in (:data:`STEP_PACKS`); more come from the
``squall.steps`` entry-point group. All are merged into :data:`STEP_ARGS` and
:data:`STEP_HANDLERS` before the closed ``Step`` union is built, so validation, the
JSON Schema, ``squall validate`` and the runner all see the same set. A third-party
pack that does not load is left out with a warning (:data:`BROKEN_PACKS`), never
breaking this import.

Durations are protocol seconds: a number, or a string ``"500ms"``, ``"30s"``,
``"10m"``, ``"1h"``. The scenario's ``timescale`` decides how long they take.
"""

from __future__ import annotations

import typing
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Discriminator, Field, Tag, create_model

from . import packs
from .base import (
    DURATION_SCHEMA,
    Args,
    ClientArgs,
    DurationField,
    Model,
    Name,
    ScenarioId,
    Severity,
    Within,
    parse_duration,
)
from .context import StepHandler
from .packs import (
    BROKEN_PACKS,
    ENTRY_POINT_GROUP,
    PACKS,
    STEP_ARGS,
    STEP_HANDLERS,
    BrokenPack,
    StepPackError,
    StepPackWarning,
    register_pack,
)
from .settings import ClientPolicy, ServerConfig

__all__ = [
    "BROKEN_PACKS",
    "CORE_STEPS",
    "DURATION_SCHEMA",
    "ENTRY_POINT_GROUP",
    "PACKS",
    "STEP_ARGS",
    "STEP_HANDLERS",
    "STEP_MODELS",
    "STEP_PACKS",
    "Args",
    "BrokenPack",
    "ClientArgs",
    "ClientPolicy",
    "ClientSpec",
    "DurationField",
    "Model",
    "Name",
    "Scenario",
    "ScenarioId",
    "ServerConfig",
    "Severity",
    "Step",
    "StepHandler",
    "StepPackError",
    "StepPackWarning",
    "Within",
    "parse_duration",
    "register_pack",
    "scenario_json_schema",
]


class ClientSpec(Model):
    """One named client under test: its credentials and where it connects."""

    token: str | None = Field(
        None, description="token presented on connect; the simulator's user is the token itself"
    )
    jwt: str | None = Field(None, description="guest JWT instead of a token")
    user: str | None = Field(
        None, description="the server-side user this client is (default: its token)"
    )
    via: Literal["direct", "proxy"] = Field(
        "direct", description="connect to the simulator directly or through the scenario proxy"
    )
    urls: list[str] | None = Field(
        None,
        description="failover list of endpoint names: server, server2, server3, proxy, dead "
        "(a port nobody listens on); overrides via",
    )
    policy: ClientPolicy = Field(
        default_factory=ClientPolicy,
        description="client settings passed through the driver's configure command",
    )
    autoconnect: bool = Field(False, description="connect before the first step")


class NetworkSpec(Model):
    """The network between clients and server: a fault proxy in front of the first endpoint."""

    proxy: bool = Field(False, description="put a fault proxy named 'main' in front of 'server'")
    endpoints: int = Field(1, ge=1, le=5, description="simulator endpoints (server, server2, ...)")


class ServerSpec(Model):
    """Server policy at start (the control plane's ``configure``) and accepted tokens."""

    config: ServerConfig = Field(default_factory=ServerConfig)
    tokens: dict[str, str] | None = Field(
        None, description="token -> user; absent means any token is accepted as its own user"
    )
    dialect: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="per-dialect options, by dialect name (ringcentral: {expires_in: 60})",
    )


class Scenario(Model):
    """One scenario: a dotted id, what it checks, who takes part, and its steps."""

    schema_: str | None = Field(None, alias="$schema", description="editor schema hint")
    id: ScenarioId = Field(description="dotted id, selectable by glob (drain.*)")
    title: str = Field(min_length=1)
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    spec: list[str] = Field(
        default_factory=list, description="references: docs/protocol.md sections, seed rules"
    )
    timescale: float = Field(0.01, gt=0, description="real seconds per protocol second")
    seed: int = Field(0, description="seeds faker payloads, client jitter and the proxy")
    informational: bool = Field(
        False, description="the outcome is reported, never judged (INFORMATIONAL)"
    )
    requires: list[str] = Field(
        default_factory=list,
        description=(
            "driver commands the client must implement, or behaviours its driver_ready "
            "declares (drain:new_channel), else UNIMPLEMENTED"
        ),
    )
    dialects: list[str] = Field(
        default_factory=lambda: ["reference"],
        description="the dialects this behaviour exists on; a client whose server speaks "
        "another gets UNIMPLEMENTED (see docs/dialects.md)",
    )
    clients: dict[Name, ClientSpec] = Field(min_length=1)
    server: ServerSpec = Field(default_factory=ServerSpec)
    network: NetworkSpec = Field(default_factory=NetworkSpec)
    vars: dict[str, Any] = Field(default_factory=dict, description="initial variables")
    steps: list[Step] = Field(min_length=1)


# --- steps: the packs --------------------------------------------------------------------------

STEP_PACKS: tuple[str, ...] = packs.BUILTIN_PACKS
"""Built-in step packs (module names); more come from the ``squall.steps`` entry points."""

packs.load_packs()

_CORE = ("squall.conformance.steps_core", "squall.conformance.expect")
CORE_STEPS: dict[str, type[Args]] = {
    name: model for pack in _CORE for name, model in PACKS[pack].STEP_ARGS.items()
}
"""The core steps (client, server, network, wait, set, expect): the two core packs'."""


class StepBase(Model):
    """A one-key mapping ``{name: args}``; :attr:`name` and :attr:`args` give both."""

    _name: ClassVar[str] = ""

    @property
    def name(self) -> str:
        return self._name

    @property
    def args(self) -> Args:
        args: Args = getattr(self, _field(self._name))  # the one field create_model gave it
        return args


def _field(step: str) -> str:
    return step.replace(".", "_")


def _step_model(step: str, args: type[Args]) -> type[StepBase]:
    model = create_model(  # type: ignore[call-overload]
        "Step_" + _field(step),
        __base__=StepBase,
        __doc__=args.__doc__,
        **{_field(step): (args, Field(alias=step))},
    )
    model._name = step
    return model


STEP_MODELS = {name: _step_model(name, args) for name, args in STEP_ARGS.items()}


def _step_tag(value: Any) -> str | None:
    if isinstance(value, dict) and value:
        key = next(iter(value))
        return key if key in STEP_MODELS else None
    if isinstance(value, StepBase):
        return value.name
    return None


if typing.TYPE_CHECKING:
    # The union below is built at import from the registered packs, which a type checker
    # cannot evaluate; every member is a StepBase subclass, so that is what a Step is to it.
    Step: typing.TypeAlias = StepBase
else:
    Step = Annotated[
        typing.Union[tuple(Annotated[m, Tag(n)] for n, m in STEP_MODELS.items())],  # noqa: UP007
        Discriminator(
            _step_tag,
            custom_error_type="unknown_step",
            custom_error_message="a step is a one-key mapping whose key is a known step name",
        ),
    ]

Scenario.model_rebuild()
packs.seal()  # the step set is closed: a pack registered from now on would not be in it


def scenario_json_schema() -> dict[str, Any]:
    """The JSON Schema published as ``schemas/scenario.schema.json``."""
    schema = Scenario.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://squall.dev/schemas/scenario.schema.json"
    return schema
