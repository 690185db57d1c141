"""Dialects: the wire formats the simulator speaks, each behind the seam (``seam.py``).

:data:`DIALECTS` maps a name to its class. A third-party dialect registers
itself through the ``squall.dialects`` entry point group (``name = module:Class``)
and is found by :func:`dialect_class` like the built-in ones.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from ..seam import CloseReason, Dialect

#: Each close reason as RFC 6455's code for it: what a dialect over plain WebSocket closes
#: with unless its service says otherwise (the reference, Mixer and RingCentral dialects).
RFC6455_CLOSE_CODES: dict[CloseReason, int] = {
    CloseReason.NORMAL: 1000,
    CloseReason.GOING_AWAY: 1001,
    CloseReason.POLICY: 1008,
    CloseReason.AUTH_FAILED: 1008,
    CloseReason.SERVICE_RESTART: 1012,
    CloseReason.BAD_FRAME: 1007,
    CloseReason.UNSUPPORTED_DATA: 1003,
    CloseReason.TOO_BIG: 1009,
    CloseReason.INTERNAL_ERROR: 1011,
}

#: name -> "module:Class", imported on first use so one dialect's imports cost nothing to others
BUILTIN: dict[str, str] = {
    "reference": "squall.simulator.dialects.reference:ReferenceDialect",
    "mixer": "squall.simulator.dialects.mixer:MixerDialect",
    "ringcentral": "squall.simulator.dialects.ringcentral:RingCentralDialect",
    "rtccafe": "squall.simulator.dialects.rtccafe:RTCCafeDialect",
    "genesys": "squall.simulator.dialects.genesys:GenesysDialect",
    "reliable-signaler": "squall.simulator.dialects.reliable_signaler:ReliableSignalerDialect",
}


def names() -> list[str]:
    """Every dialect this installation knows, built-in first."""
    extra = [ep.name for ep in entry_points(group="squall.dialects") if ep.name not in BUILTIN]
    return [*BUILTIN, *sorted(extra)]


def dialect_class(name: str) -> type[Dialect]:
    """The class of dialect ``name``; a ValueError naming the known ones otherwise."""
    target = BUILTIN.get(name)
    if target is None:
        found = [ep for ep in entry_points(group="squall.dialects") if ep.name == name]
        if not found:
            raise ValueError(f"unknown dialect {name!r} (known: {', '.join(names())})")
        cls = found[0].load()
    else:
        module, _, attr = target.partition(":")
        cls = getattr(importlib.import_module(module), attr)
    if not (isinstance(cls, type) and issubclass(cls, Dialect)):
        raise ValueError(f"dialect {name!r} is not a squall.simulator.seam.Dialect subclass")
    return cls
