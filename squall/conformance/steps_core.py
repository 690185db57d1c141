"""The core actions, a step pack like any other: client, server, network, ``wait``, ``set``.

- ``client.*`` send one driver command (docs/driver.md) through
  :meth:`RunContext.command <.context.RunContext.command>`;
- ``server.*`` are generated from the simulator's control plane
  (:data:`squall.simulator.OPERATIONS`): one step per operation, with its arguments
  and the same implementation as the Python and HTTP faces;
- ``network.*`` act on the scenario's fault proxy; a fault ``for`` a while is undone
  on the run's clock, and every fault when the run ends;
- ``wait`` sleeps on the run's clock; ``set`` sets variables.

The expectations are the other core pack, :mod:`.expect`. Registered by :mod:`.models`
(``STEP_ARGS`` + ``HANDLERS``) before any other pack, so their order is the schema's.
"""

from __future__ import annotations

import inspect
import typing
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model

from squall.faults import TOXICS
from squall.simulator import OPERATIONS
from squall.simulator.server import Simulator

from .base import Args, ClientArgs, DurationField, Name, _is_duration, parse_duration
from .settings import ClientPolicy

if TYPE_CHECKING:
    from .context import RunContext
    from .verdicts import StepResult

__all__ = ["HANDLERS", "SERVER_OPS", "STEP_ARGS", "ServerOp"]


# --- argument models -------------------------------------------------------------------------


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
    model = create_model(f"Server_{op}", __base__=ServerOp, __doc__=doc, **fields)
    model._op = op
    model._client_for = client_for
    if client_for:
        model._shorthand = "client"
    return model


SERVER_OPS = [name for name, spec in OPERATIONS.items() if spec.method == "POST"]


# --- client steps ------------------------------------------------------------------------------

_NOT_PAYLOAD = frozenset({"client", "wait", "as_", "expect_error", "level"})


def _payload(ctx: RunContext, args: ClientArgs) -> dict[str, Any]:
    """The driver command's arguments: every field the step set (or has by default),
    policies as the scenario wrote them, variables rendered."""
    fields = set(type(args).model_fields) - _NOT_PAYLOAD
    payload = {}
    for f in fields:
        value = getattr(args, f)
        info = type(args).model_fields[f]
        if value is None and f not in args.model_fields_set:
            continue
        if isinstance(value, BaseModel):  # a policy: what the scenario set, parsed
            value = value.model_dump(exclude_unset=True)
        payload[info.alias or f] = value
    rendered: dict[str, Any] = ctx.render(payload)
    return rendered


def client_step(cmd: str) -> Any:
    """The handler of ``client.<cmd>``: send ``cmd`` with the step's arguments."""

    async def handler(ctx: RunContext, args: ClientArgs, step: StepResult) -> None:
        name, payload = cmd, _payload(ctx, args)
        if cmd == "command":
            name, payload = payload["cmd"], payload.get("args", {})
        elif cmd == "configure":
            payload = payload["policy"]
        elif cmd == "connect" and "urls" in payload:
            payload["urls"] = ctx.urls(payload["urls"])
        await ctx.command(
            args.client,
            name,
            payload,
            wait=args.wait,
            store=args.as_,
            expect_error=args.expect_error,
        )

    handler.__name__ = handler.__qualname__ = f"client_{cmd}"
    return handler


# --- server steps ------------------------------------------------------------------------------


async def server_step(ctx: RunContext, args: ServerOp, step: StepResult) -> None:
    """Call the control operation the step is named after; ``client`` stands for its user."""
    kwargs = args.model_dump(exclude={"client"}, exclude_unset=True)
    kwargs = ctx.render(kwargs)
    client = getattr(args, "client", None)  # a generated field, on the ops that take a user
    if args._client_for and client is not None:
        kwargs[args._client_for] = ctx.users[client]
    result = getattr(ctx.sim, args._op)(**kwargs)
    ctx.record("runner", "server_op", op=args._op, result=result)


# --- network steps -----------------------------------------------------------------------------


async def toxic(ctx: RunContext, args: Toxic, step: StepResult) -> None:
    col = ctx.require_proxy().collection
    body = {
        "type": args.type,
        "stream": args.stream,
        "toxicity": args.toxicity,
        "attributes": ctx.render(args.attributes),
    }
    if args.name:
        body["name"] = args.name
    spec = await col.add_toxic(args.proxy, body)
    if args.for_ is not None:
        ctx.later(args.for_, col.remove_toxic(args.proxy, spec.name))


async def remove(ctx: RunContext, args: RemoveToxic, step: StepResult) -> None:
    await ctx.require_proxy().collection.remove_toxic(args.proxy, args.name)


def _switch(up: bool) -> Any:
    async def handler(ctx: RunContext, args: ProxyRef, step: StepResult) -> None:
        col = ctx.require_proxy().collection
        await col.update(args.proxy, {"enabled": up})
        if args.for_ is not None:
            ctx.later(args.for_, col.update(args.proxy, {"enabled": not up}))

    handler.__name__ = handler.__qualname__ = "up" if up else "down"
    return handler


async def reset(ctx: RunContext, args: ProxyRef, step: StepResult) -> None:
    col = ctx.require_proxy().collection
    await col.get(args.proxy).reset_toxics()
    await col.update(args.proxy, {"enabled": True})


# --- wait and set ------------------------------------------------------------------------------


async def wait(ctx: RunContext, args: Wait, step: StepResult) -> None:
    await ctx.clock.sleep(args.for_)


async def set_vars(ctx: RunContext, args: SetVars, step: StepResult) -> None:
    for key, value in (args.model_extra or {}).items():
        ctx.vars[key] = ctx.render(value)


# --- the pack ----------------------------------------------------------------------------------

_CLIENT_STEPS: dict[str, type[Args]] = {
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
}

STEP_ARGS: dict[str, type[Args]] = {
    **_CLIENT_STEPS,
    **{f"server.{op}": _server_args(op) for op in SERVER_OPS},
    "network.toxic": Toxic,
    "network.remove": RemoveToxic,
    "network.down": ProxyRef,
    "network.up": ProxyRef,
    "network.reset": ProxyRef,
    "wait": Wait,
    "set": SetVars,
}
"""The core actions and the model of their arguments."""

HANDLERS: dict[str, Any] = {
    **{name: client_step(name.removeprefix("client.")) for name in _CLIENT_STEPS},
    **{f"server.{op}": server_step for op in SERVER_OPS},
    "network.toxic": toxic,
    "network.remove": remove,
    "network.down": _switch(up=False),
    "network.up": _switch(up=True),
    "network.reset": reset,
    "wait": wait,
    "set": set_vars,
}
"""How each core action is carried out: ``await handler(ctx, args, step)``."""
