"""A fake-time harness for :class:`ClientCore`: no sockets, no event loop, no sleeps.

``Harness`` plays the driver: it collects actions, keeps the timers the core set
and fires them in order when the test advances time, and speaks the server's
side of the wire as plain dicts.
"""

from __future__ import annotations

import json
import random
from typing import Any

from squall.client.actions import (
    Action,
    CancelTimer,
    Close,
    Emit,
    OpenSocket,
    Reject,
    Resolve,
    Send,
    SetTimer,
)
from squall.client.core import ClientCore
from squall.client.policy import Policy

URLS = ["ws://a.example/", "ws://b.example/"]


class Harness:
    def __init__(self, urls: list[str] | None = None, seed: int = 7, **policy: Any) -> None:
        self.core = ClientCore(
            urls or URLS, token="alice", policy=Policy(**policy), rng=random.Random(seed)
        )
        self.now = 0.0
        self.timers: dict[str, float] = {}
        self.log: list[Action] = []
        self.results: dict[int, Any] = {}
        self.errors: dict[int, Exception] = {}
        self.sessions = 0
        self.sids = 0

    # --- driving the core -----------------------------------------------------------------------

    def pump(self) -> list[Action]:
        actions = self.core.actions()
        for action in actions:
            if isinstance(action, SetTimer):
                self.timers[action.name] = action.at
            elif isinstance(action, CancelTimer):
                self.timers.pop(action.name, None)
            elif isinstance(action, Resolve):
                self.results[action.ticket] = action.value
            elif isinstance(action, Reject):
                self.errors[action.ticket] = action.error
        self.log.extend(actions)
        return actions

    def advance(self, seconds: float) -> None:
        """Move time, firing due timers in order (each sees ``now`` = its due time)."""
        target = self.now + seconds
        while True:
            due = [(at, name) for name, at in self.timers.items() if at <= target]
            if not due:
                break
            at, name = min(due)
            del self.timers[name]
            self.now = max(self.now, at)
            self.core.timer_fired(name, self.now)
            self.pump()
        self.now = target

    def connect(self, *, recovered: dict[str, Any] | None = None) -> None:
        """connect() then a socket that opens and authenticates."""
        self.core.connect(self.now)
        self.pump()
        self.accept(recovered=recovered)

    def accept(
        self,
        *,
        recovered: dict[str, Any] | None = None,
        session: str | None = None,
        heartbeat: float = 30.0,
    ) -> None:
        """The socket the core opened last opens, and the server authenticates it."""
        self.core.socket_opened(self.core.conn, self.now)
        self.sids += 1
        if recovered is None and self.core._presented_recovery:  # §7: always answered
            recovered = {"recovered": True, "subscriptions": sorted(self.core.confirmed)}
        if session is None:
            if self.sessions == 0 or recovered is None or not recovered.get("keep", True):
                self.sessions += 1
            session = f"s{self.sessions}"
        self.authenticated(session, heartbeat=heartbeat)
        if recovered is not None:
            body = {k: v for k, v in recovered.items() if k != "keep"}
            self.frame(type="recovery", **body)

    def authenticated(self, session: str, *, heartbeat: float = 30.0) -> list[Action]:
        """Only the `authenticated` frame (after a recovery token, `recovery` is still due)."""
        return self.frame(
            type="authenticated",
            session=session,
            sid=f"c{self.sids}",
            user="alice",
            recovery_token=f"tok-{session}",
            heartbeat=heartbeat,
            recovery_buffer_size=100,
            recovery_window=180.0,
        )

    def frame(self, **msg: Any) -> list[Action]:
        self.core.receive_frame(self.core.conn, json.dumps(msg), self.now)
        return self.pump()

    def close(self, code: int | None = 1006, reason: str = "") -> list[Action]:
        self.core.socket_closed(self.core.conn, code, reason, self.now)
        return self.pump()

    def fail_open(self, reason: str = "connection refused") -> list[Action]:
        self.core.socket_closed(self.core.conn, None, reason, self.now)
        return self.pump()

    # --- reading what happened ------------------------------------------------------------------

    def sent(self, mtype: str | None = None) -> list[dict[str, Any]]:
        frames = [json.loads(a.text) for a in self.log if isinstance(a, Send)]
        return [f for f in frames if mtype is None or f["type"] == mtype]

    def events(self, name: str) -> list[dict[str, Any]]:
        return [a.data for a in self.log if isinstance(a, Emit) and a.event == name]

    def event_names(self) -> list[str]:
        skip = {"sent", "packet", "status"}
        return [a.event for a in self.log if isinstance(a, Emit) and a.event not in skip]

    def opens(self) -> list[OpenSocket]:
        return [a for a in self.log if isinstance(a, OpenSocket)]

    def closes(self) -> list[Close]:
        return [a for a in self.log if isinstance(a, Close)]

    def clear(self) -> None:
        self.log.clear()
