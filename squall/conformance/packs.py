"""Step packs: how the closed set of steps is assembled, and what becomes of a broken pack.

A step pack is a module with ``STEP_ARGS`` (step name -> its argument model, a
:class:`~.base.Args`) and ``HANDLERS`` (step name -> ``async handler(ctx, args,
step)``, which gets a :class:`~.context.RunContext`). The built-in packs
(:data:`BUILTIN_PACKS`: the core actions, the core expectations, WebRTC) load first,
in order, and a broken one is squall's bug: it raises. Then every entry point of the
``squall.steps`` group loads; one whose load raises, or whose module is malformed (a
step that clashes, lacks a handler, has a model that is not ``Args``, a handler that
is not a coroutine function), is left out whole. It does not break
``import squall.conformance.models``: a :class:`StepPackWarning` says what broke,
:data:`BROKEN_PACKS` keeps it, and a scenario that uses one of its steps gets a
problem naming the pack and its exception (:func:`broken_pack_note`), which
``squall validate`` prints and pytest reports as an error.

:mod:`.models` calls :func:`load_packs` before it builds the ``Step`` union, so
validation, the JSON Schema, ``squall validate`` and the runner see the same set.
"""

from __future__ import annotations

import importlib
import inspect
import re
import warnings
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import Any

from .base import Args
from .context import StepHandler

__all__ = [
    "BROKEN_PACKS",
    "BUILTIN_PACKS",
    "ENTRY_POINT_GROUP",
    "PACKS",
    "STEP_ARGS",
    "STEP_HANDLERS",
    "BrokenPack",
    "StepPackError",
    "StepPackWarning",
    "broken_pack_note",
    "load_packs",
    "pack_of",
    "register_pack",
    "seal",
]

BUILTIN_PACKS: tuple[str, ...] = (
    "squall.conformance.steps_core",
    "squall.conformance.expect",
    "squall.conformance.steps_webrtc",
    "squall.conformance.steps_crowd",
    "squall.conformance.steps_softphone",
)
"""The packs squall ships, in the order their steps appear (in the schema, in errors)."""

ENTRY_POINT_GROUP = "squall.steps"
"""The entry-point group third-party packs publish under: ``name = module``."""

STEP_ARGS: dict[str, type[Args]] = {}
"""Every step name and the model of its arguments: the closed set."""

STEP_HANDLERS: dict[str, StepHandler] = {}
"""Step name -> its handler."""

PACKS: dict[str, ModuleType] = {}
"""Module name -> every pack registered."""

_PACK_OF: dict[str, str] = {}  # step name -> the module of the pack that defines it
_SEALED: list[str] = []  # non-empty once models built the Step union from STEP_ARGS

STEP_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")


class StepPackError(Exception):
    """A step pack that cannot be merged: a clash with an existing step, a step with no
    handler, a model that is not :class:`~.base.Args`, a handler that is not async."""


class StepPackWarning(UserWarning):
    """A third-party step pack did not load: its steps are unknown in this process."""


@dataclass(frozen=True)
class BrokenPack:
    """A third-party pack left out, and why."""

    name: str  # the entry point's name
    target: str  # what it points at (``module`` or ``module:attr``)
    dist: str  # the distribution that publishes it ("" when unknown)
    error: str  # ``Type: message`` of what its load raised
    steps: tuple[str, ...] = ()  # the steps it declares, when its module did load

    @property
    def what(self) -> str:
        """``step pack 'crowd' (crowd_steps, from crowd-steps 1.0)``"""
        src = f"{self.target}, from {self.dist}" if self.dist else self.target
        return f"step pack {self.name!r} ({src})"

    def __str__(self) -> str:
        return f"{self.what} did not load: {self.error}"


BROKEN_PACKS: list[BrokenPack] = []
"""The third-party packs that did not load, in the order they were tried."""


def register_pack(module: ModuleType) -> None:
    """Merge one pack's ``STEP_ARGS`` and ``HANDLERS``, all or nothing.

    Raises :class:`StepPackError` (and merges nothing) when the pack is malformed, or
    when ``squall.conformance.models`` has already built the step set from the packs
    (at its import): register a pack before that import, or publish it as a
    ``squall.steps`` entry point, which that import loads.
    """
    name = module.__name__
    if name in PACKS:
        return
    if name not in BUILTIN_PACKS:
        _load_builtins()  # squall's steps come first, and a clash is the newcomer's
    args: Any = getattr(module, "STEP_ARGS", {})
    handlers: Any = getattr(module, "HANDLERS", {})
    if not isinstance(args, dict) or not isinstance(handlers, dict):
        raise StepPackError(f"step pack {name}: STEP_ARGS and HANDLERS must be dicts")
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
        if not (isinstance(step, str) and STEP_NAME.match(step)):
            raise StepPackError(
                f"step pack {name}: {step!r} is not a step name (dotted lowercase words)"
            )
        if not (isinstance(model, type) and issubclass(model, Args)):
            raise StepPackError(f"step pack {name}: {step} is not a squall.conformance.base.Args")
        if not inspect.iscoroutinefunction(handlers[step]):
            raise StepPackError(
                f"step pack {name}: the handler of {step} is not an async function "
                "(async def handler(ctx, args, step))"
            )
    if _SEALED:
        raise StepPackError(
            f"step pack {name}: registered after squall.conformance.models built the step set; "
            "register it before that import, or publish it as a squall.steps entry point"
        )
    STEP_ARGS.update(args)
    STEP_HANDLERS.update(handlers)
    _PACK_OF.update(dict.fromkeys(args, name))
    PACKS[name] = module


def seal() -> None:
    """Called by :mod:`.models` once it built the ``Step`` union: no more packs."""
    _SEALED.append("models")


def pack_of(step: str) -> str | None:
    """The module of the third-party pack that defines ``step``; ``None`` for squall's own."""
    module = _PACK_OF.get(step)
    return None if module is None or module in BUILTIN_PACKS else module


def load_packs() -> None:
    """The built-in packs (a broken one raises), then every ``squall.steps`` entry point
    (a broken one is left out with a :class:`StepPackWarning`). Loads each once."""
    _load_builtins()
    tried = {b.name for b in BROKEN_PACKS}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in tried:
            _load_entry_point(ep)


def _load_builtins() -> None:
    for name in BUILTIN_PACKS:
        if name not in PACKS:
            register_pack(importlib.import_module(name))


def _load_entry_point(ep: EntryPoint) -> None:
    module: Any = None
    try:
        module = ep.load()
        if not isinstance(module, ModuleType):
            raise StepPackError(f"{ep.value} is a {type(module).__name__}, not a module")
        register_pack(module)
    except Exception as exc:  # any failure of someone else's code: left out, said loudly
        steps = getattr(module, "STEP_ARGS", None)
        broken = BrokenPack(
            ep.name,
            ep.value,
            f"{ep.dist.name} {ep.dist.version}" if ep.dist is not None else "",
            f"{type(exc).__name__}: {exc}",
            tuple(str(s) for s in steps) if isinstance(steps, dict) else (),
        )
        BROKEN_PACKS.append(broken)
        warnings.warn(f"{broken}; its steps are unknown", StepPackWarning, stacklevel=2)


def broken_pack_note(step: str) -> str | None:
    """Why ``step`` may be unknown: the broken pack that declares it, else (when a pack
    broke before it could declare anything) every such pack; ``None`` when none broke."""
    for broken in BROKEN_PACKS:
        if step in broken.steps:
            return f"it is a step of {broken.what}, which did not load: {broken.error}"
    unknown = [b for b in BROKEN_PACKS if not b.steps]
    if not unknown:
        return None
    return "; ".join(f"{b.what} did not load and may define it: {b.error}" for b in unknown)
