"""Observing peer connections: every state change in order, and getStats deltas.

:class:`StateLog` is aiortc's ``track_states`` test helper made reusable: it records
each ``connectionState``, ``iceConnectionState``, ``iceGatheringState`` and
``signalingState`` a peer connection goes through, so tests assert whole
sequences (``["new", "connecting", "connected", "closed"]``), not one value.

:func:`stats_snapshot` reduces ``getStats()`` to counters by kind, and
:func:`stats_delta` subtracts two snapshots: "packets rising" is a delta > 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCPeerConnection

__all__ = [
    "STATE_PROPERTIES",
    "StateLog",
    "stat_types",
    "stats_delta",
    "stats_snapshot",
]

STATE_PROPERTIES = {
    "connectionstatechange": "connectionState",
    "iceconnectionstatechange": "iceConnectionState",
    "icegatheringstatechange": "iceGatheringState",
    "signalingstatechange": "signalingState",
}


@dataclass
class StateLog:
    """The history of one peer connection's four state machines, first value included."""

    connection: list[str] = field(default_factory=list)
    ice_connection: list[str] = field(default_factory=list)
    ice_gathering: list[str] = field(default_factory=list)
    signaling: list[str] = field(default_factory=list)

    @classmethod
    def attach(cls, pc: RTCPeerConnection) -> StateLog:
        log = cls(
            [pc.connectionState],
            [pc.iceConnectionState],
            [pc.iceGatheringState],
            [pc.signalingState],
        )
        lists = {
            "connectionState": log.connection,
            "iceConnectionState": log.ice_connection,
            "iceGatheringState": log.ice_gathering,
            "signalingState": log.signaling,
        }
        for event, prop in STATE_PROPERTIES.items():

            def record(prop: str = prop) -> None:
                value = getattr(pc, prop)
                if lists[prop][-1] != value:
                    lists[prop].append(value)

            pc.on(event, record)
        return log

    def as_dict(self) -> dict[str, list[str]]:
        return {
            "connection": list(self.connection),
            "ice_connection": list(self.ice_connection),
            "ice_gathering": list(self.ice_gathering),
            "signaling": list(self.signaling),
        }


async def stats_snapshot(pc: RTCPeerConnection) -> dict[str, int]:
    """``getStats()`` counters summed by kind: ``{"outbound-rtp.video.packetsSent": n, ...}``."""
    out: dict[str, int] = {}
    report = await pc.getStats()
    for stat in report.values():
        kind = getattr(stat, "kind", None) or "-"
        for name in ("packetsSent", "bytesSent", "packetsReceived", "bytesReceived", "packetsLost"):
            value = getattr(stat, name, None)
            if isinstance(value, int):
                key = f"{stat.type}.{kind}.{name}"
                out[key] = out.get(key, 0) + value
    return out


def stats_delta(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    """``after - before`` for every counter in ``after`` (a new counter counts from 0)."""
    return {key: value - before.get(key, 0) for key, value in after.items()}


def stat_types(report: Mapping[str, Any]) -> list[str]:
    """The sorted set of stat types in a ``getStats()`` report."""
    return sorted({stat.type for stat in report.values()})
