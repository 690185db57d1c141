"""The scenario language: pydantic models, ``extra="forbid"`` everywhere, one closed set of steps.

A scenario file is a mapping (:class:`Scenario`); its ``steps`` are a list of
one-key mappings, the key naming the step (``client.connect``, ``server.publish``,
``network.toxic``, ``wait``, ``expect.event``, ...) and the value its arguments.
Server steps are generated from the simulator's control plane
(:data:`squall.simulator.OPERATIONS`), so a scenario can do exactly what the
Python and HTTP faces can, through the same implementation.

``schemas/scenario.schema.json`` is :func:`scenario_json_schema`'s output,
committed and kept equal by a test, so editors autocomplete.

Step packs extend the set: a module with ``STEP_ARGS`` (step name -> argument
model, built on :mod:`.base`) and ``HANDLERS`` (step name -> ``async (run, args,
step_result)``), listed in :data:`STEP_PACKS` or published under the
``squall.steps`` entry-point group. :func:`register_pack` merges each into
:data:`STEP_ARGS` and :data:`STEP_HANDLERS` before the closed ``Step`` union is
built, so validation, the JSON Schema, ``squall validate`` and the runner all see
the same set. :mod:`.steps_webrtc` (peers, tracks, media) is the built-in pack.

Durations are protocol seconds: a number, or a string ``"500ms"``, ``"30s"``,
``"10m"``, ``"1h"``. The scenario's ``timescale`` decides how long they take.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import typing
from collections.abc import Awaitable, Callable
from importlib.metadata import entry_points
from types import ModuleType
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    create_model,
    model_validator,
)

from squall.client.policy import Policy
from squall.faults import TOXICS
from squall.simulator import OPERATIONS, Config
from squall.simulator.dialects import names as dialect_names
from squall.simulator.server import Simulator

from .base import (
    DURATION_SCHEMA,
    Args,
    ClientArgs,
    DurationField,
    ErrorPattern,
    Model,
    Name,
    ScenarioId,
    Severity,
    Within,
    _is_duration,
    parse_duration,
)

__all__ = [
    "DURATION_SCHEMA",
    "STEP_ARGS",
    "STEP_HANDLERS",
    "STEP_MODELS",
    "STEP_PACKS",
    "Args",
    "ClientArgs",
    "DurationField",
    "Model",
    "Name",
    "Scenario",
    "ScenarioId",
    "Severity",
    "Step",
    "Within",
    "parse_duration",
    "register_pack",
    "scenario_json_schema",
]


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
    return create_model(name, __base__=Model, __doc__=doc, **fields)  # type: ignore[call-overload,no-any-return]


def _limits(op: str) -> dict[str, dict[str, Any]]:
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
        limits=_limits("configure"),
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
        description="driver commands the client must implement, else UNIMPLEMENTED",
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


# --- steps -----------------------------------------------------------------------------------


class Connect(ClientArgs):
    token: str | None = Field(None, description="override the client's token for this connect")
    urls: list[str] | None = None


class Topics(ClientArgs):
    _shorthand: ClassVar[str | None] = None
    topics: list[str] = Field(min_length=1)


class CallArgs(ClientArgs):
    _shorthand: ClassVar[str | None] = None
    method: str = Field(min_length=1)
    params: Any = None
    timeout: DurationField | None = None
    no_reply: bool = False


class AnswerDrain(ClientArgs):
    _shorthand: ClassVar[str | None] = None
    with_: Literal["pending", "done", "none"] = Field(alias="with")


class Room(ClientArgs):
    _shorthand: ClassVar[str | None] = None
    room: str = Field(min_length=1)
    permanent_id: str | None = None


class SendMessage(ClientArgs):
    _shorthand: ClassVar[str | None] = None
    message: Any = None
    to: str | None = Field(None, description="peer sid, or absent for every peer")
    room: str | None = None


class SendSignal(ClientArgs):
    _shorthand: ClassVar[str | None] = None
    room: str
    kind: Literal["offer", "answer", "candidate", "message", "bye"]
    data: Any = None
    to: str | None = None


class ConfigureClient(ClientArgs):
    _shorthand: ClassVar[str | None] = None
    policy: ClientPolicy


class Command(ClientArgs):
    """Any driver command by name: for clients with commands beyond the standard set."""

    _shorthand: ClassVar[str | None] = None
    cmd: str
    args: dict[str, Any] = Field(default_factory=dict)


class Wait(Args):
    _shorthand: ClassVar[str | None] = "for_"
    for_: DurationField = Field(alias="for")


class SetVars(Args):
    """Set variables (values may use ``${...}`` and faker)."""

    model_config = ConfigDict(extra="allow")


class ExpectEvent(Args, Within):
    """A client event happened (after the last one matched for that client), matching ``data``."""

    client: Name
    event: str
    data: dict[str, Any] | None = Field(None, description="partial match on the event's data")
    count: int = Field(1, ge=1, description="this many matching events")
    capture: dict[str, str] = Field(
        default_factory=dict, description="var -> dotted path into the event (data.sid)"
    )
    anywhere: bool = Field(
        False, description="search from the client's first event, not its cursor"
    )


class ExpectNoEvent(Args, Severity):
    """No matching client event for a duration (from the client's cursor on)."""

    client: Name
    event: str
    data: dict[str, Any] | None = None
    for_: DurationField = Field(alias="for")


class ExpectReply(Args, Within):
    """The reply to a command stored with ``as`` (or the client's last one) was ok / an error."""

    client: Name
    reply: Name | None = Field(None, description="the 'as' name of the command")
    ok: bool = Field(True, description="false: the reply must be an error (implied by 'error')")
    result: Any = Field(None, description="partial match on the result")
    error: ErrorPattern | None = Field(
        None,
        description="the reply is an error whose type or message matches this regex "
        "(bare or /regex/): CommandError, /timed? ?out/",
    )

    @model_validator(mode="after")
    def _error_means_not_ok(self) -> ExpectReply:
        if self.error is not None:
            if "ok" in self.model_fields_set and self.ok:
                raise ValueError("'error' checks a failed reply: drop 'ok: true'")
            self.ok = False
        return self


SessionState = Literal["open", "detached", "expired", "absent"]


class ExpectServer(Args, Within):
    """The simulator's state, polled until it matches or the deadline passes."""

    sessions: dict[str, SessionState] | None = Field(None, description="client -> session state")
    subscriptions: dict[str, list[str]] | None = Field(
        None, description="client -> exact set of subscribed topics"
    )
    session: dict[str, dict[str, Any]] | None = Field(
        None, description="client -> partial match on the session view (seq, lost, connections)"
    )
    rooms: dict[str, list[str]] | None = Field(None, description="room -> clients in it")


class ExpectTranscript(Args, Within):
    """A pattern of transcript records, in order, each a partial match (src, kind, type, ...)."""

    pattern: list[dict[str, Any]] = Field(min_length=1)
    since: Literal["start", "step"] = Field("step", description="search from the scenario start")
    absent: bool = Field(False, description="the pattern must NOT occur by the deadline")


class ExpectVar(Args, Severity):
    """A variable (or expression) equals / matches a value."""

    value: Any
    equals: Any = None
    matches: str | None = None
    greater: float | None = None
    less: float | None = None


class Toxic(Args):
    """Add a proxy toxic (byte-level or WebSocket-frame); removed at ``for`` or at the end."""

    proxy: str = "main"
    type: Literal[tuple(TOXICS)]  # type: ignore[valid-type]
    name: str | None = None
    stream: Literal["upstream", "downstream"] = "downstream"
    toxicity: float = Field(1.0, ge=0, le=1)
    attributes: dict[str, Any] = Field(default_factory=dict)
    for_: DurationField | None = Field(None, alias="for", description="remove after this long")


class RemoveToxic(Args):
    _shorthand: ClassVar[str | None] = "name"
    proxy: str = "main"
    name: str


class ProxyRef(Args):
    _shorthand: ClassVar[str | None] = "proxy"
    proxy: str = "main"
    for_: DurationField | None = Field(None, alias="for", description="undo after this long")


class ServerOp(Args):
    """Base of the generated server steps: ``client`` names a session by its client."""

    _op: ClassVar[str] = ""
    _client_for: ClassVar[str | None] = None


def _server_args(op: str) -> type[ServerOp]:
    """A model of one control operation's arguments, built from its signature."""
    fn = getattr(Simulator, op)
    target = inspect.unwrap(fn)
    hints = typing.get_type_hints(target, include_extras=True)
    fields: dict[str, Any] = {}
    client_for = None
    for pname, param in inspect.signature(target).parameters.items():
        if pname == "self" or pname == "handler":
            continue
        annotation = hints.get(pname, Any)
        default = param.default
        if _is_duration(annotation):
            annotation = Annotated[annotation, BeforeValidator(parse_duration)]
        if isinstance(default, type(Field())):
            info = default
        else:
            info = Field(... if default is inspect.Parameter.empty else default)
        if pname in ("session", "user") and client_for is None:
            client_for = pname
            annotation = annotation | None
            if info.is_required():
                info = Field(None, description=f"the {pname} (a user name, sid or session id)")
        fields[pname] = (annotation, info)
    if client_for:
        fields["client"] = (
            Name | None,
            Field(None, description=f"a scenario client, standing for its {client_for}"),
        )
    doc = OPERATIONS[op].doc
    model = create_model(  # type: ignore[call-overload]
        f"Server_{op}", __base__=ServerOp, __doc__=doc, **fields
    )
    model._op = op
    model._client_for = client_for
    if client_for:
        model._shorthand = "client"
    return model


SERVER_OPS = [name for name, spec in OPERATIONS.items() if spec.method == "POST"]

CORE_STEPS: dict[str, type[Args]] = {
    "client.connect": Connect,
    "client.disconnect": ClientArgs,
    "client.reconnect": ClientArgs,
    "client.subscribe": Topics,
    "client.unsubscribe": Topics,
    "client.call": CallArgs,
    "client.answer_drain": AnswerDrain,
    "client.join_room": Room,
    "client.leave_room": Room,
    "client.send_message": SendMessage,
    "client.send_signal": SendSignal,
    "client.configure": ConfigureClient,
    "client.status": ClientArgs,
    "client.command": Command,
    **{f"server.{op}": _server_args(op) for op in SERVER_OPS},
    "network.toxic": Toxic,
    "network.remove": RemoveToxic,
    "network.down": ProxyRef,
    "network.up": ProxyRef,
    "network.reset": ProxyRef,
    "wait": Wait,
    "set": SetVars,
    "expect.event": ExpectEvent,
    "expect.no_event": ExpectNoEvent,
    "expect.reply": ExpectReply,
    "expect.server": ExpectServer,
    "expect.transcript": ExpectTranscript,
    "expect.var": ExpectVar,
}
"""The core steps, run by the runner itself (client, server, network, wait, set, expect)."""

StepHandler = Callable[[Any, Any, Any], Awaitable["str | None"]]
"""``async handler(run, args, step_result)``: ``None`` (held on time), a sentence (late) or
raises ``StepFailed``; the same contract as the core expectations."""

STEP_PACKS: tuple[str, ...] = ("squall.conformance.steps_webrtc",)
"""Built-in step packs (module names); more come from the ``squall.steps`` entry points."""

ENTRY_POINT_GROUP = "squall.steps"

STEP_ARGS: dict[str, type[Args]] = dict(CORE_STEPS)
"""Every step name and the model of its arguments: the closed set (core + packs)."""

STEP_HANDLERS: dict[str, StepHandler] = {}
"""Step name -> handler, for every step a pack contributed."""

PACKS: dict[str, ModuleType] = {}


class StepPackError(Exception):
    """A step pack that cannot be merged: a clash with an existing step, or a step with no
    handler."""


def register_pack(module: ModuleType) -> None:
    """Merge one pack's ``STEP_ARGS`` and ``HANDLERS`` (before ``Step`` is built)."""
    name = module.__name__
    if name in PACKS:
        return
    args: dict[str, type[Args]] = getattr(module, "STEP_ARGS", {})
    handlers: dict[str, StepHandler] = getattr(module, "HANDLERS", {})
    clash = sorted(set(args) & set(STEP_ARGS))
    if clash:
        raise StepPackError(f"step pack {name} redefines steps: {', '.join(clash)}")
    missing = sorted(set(args) - set(handlers))
    extra = sorted(set(handlers) - set(args))
    if missing or extra:
        raise StepPackError(
            f"step pack {name}: steps without a handler {missing}, handlers without a step {extra}"
        )
    for step, model in args.items():
        if not (isinstance(model, type) and issubclass(model, Args)):
            raise StepPackError(f"step pack {name}: {step} is not a squall.conformance.base.Args")
    STEP_ARGS.update(args)
    STEP_HANDLERS.update(handlers)
    PACKS[name] = module


def _load_packs() -> None:
    for name in STEP_PACKS:
        register_pack(importlib.import_module(name))
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        register_pack(ep.load())


_load_packs()


class StepBase(Model):
    """A one-key mapping ``{name: args}``; :attr:`name` and :attr:`args` give both."""

    _name: ClassVar[str] = ""

    @property
    def name(self) -> str:
        return self._name

    @property
    def args(self) -> Args:
        return getattr(self, _field(self._name))


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


Step = Annotated[
    typing.Union[tuple(Annotated[m, Tag(n)] for n, m in STEP_MODELS.items())],  # type: ignore[misc]  # noqa: UP007
    Discriminator(
        _step_tag,
        custom_error_type="unknown_step",
        custom_error_message="a step is a one-key mapping whose key is a known step name",
    ),
]

Scenario.model_rebuild()


def scenario_json_schema() -> dict[str, Any]:
    """The JSON Schema published as ``schemas/scenario.schema.json``."""
    schema = Scenario.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://squall.dev/schemas/scenario.schema.json"
    return schema
