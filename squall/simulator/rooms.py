"""Signalling rooms: members by sid, their permanent ids and their track definitions.

A member that disconnects leaves a *ghost* (permanent id -> old sid) for the
recovery window. When the same permanent id joins again (or names its old sid
as ``prev_sid``), the room re-keys it and the others hear
``peer_sid_reassigned`` instead of a stranger joining (RTCCafe's prevSid).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Member:
    sid: str
    permanent_id: str
    tracks: dict[str, dict[str, Any]] = field(default_factory=dict)

    def view(self) -> dict[str, Any]:
        return {
            "sid": self.sid,
            "permanent_id": self.permanent_id,
            "tracks": list(self.tracks.values()),
        }


@dataclass
class Ghost:
    sid: str
    permanent_id: str
    left_at: float


@dataclass
class Room:
    name: str
    members: dict[str, Member] = field(default_factory=dict)
    ghosts: dict[str, Ghost] = field(default_factory=dict)  # by permanent id

    def find_ghost(
        self, permanent_id: str, prev_sid: str | None, now: float, window: float
    ) -> Ghost | None:
        for pid, stale in list(self.ghosts.items()):
            if now - stale.left_at > window:
                del self.ghosts[pid]
        ghost = self.ghosts.get(permanent_id)
        if ghost is None and prev_sid is not None:
            ghost = next((g for g in self.ghosts.values() if g.sid == prev_sid), None)
        return ghost

    def stale_member(self, permanent_id: str, sid: str) -> Member | None:
        """A member with this permanent id on another connection that has not been reaped yet."""
        return next(
            (m for m in self.members.values() if m.permanent_id == permanent_id and m.sid != sid),
            None,
        )

    def view(self) -> dict[str, Any]:
        return {
            "members": [m.view() for m in self.members.values()],
            "ghosts": [
                {"sid": g.sid, "permanent_id": g.permanent_id} for g in self.ghosts.values()
            ],
        }
