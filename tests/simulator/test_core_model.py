"""The simulator core against a model, driven by hypothesis: no sockets, no event loop, fake time.

Whatever interleaving of subscribe / publish / drop / recover / time passing
hypothesis picks, every client sees sequence numbers without gaps or repeats,
and every notification missed while away is either replayed or counted as lost.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from squall.clock import ManualClock
from squall.simulator.core import Config, Connection, SimulatorCore
from squall.simulator.dialects.reference import ReferenceDialect
from squall.simulator.ops import Authenticate
from squall.simulator.seam import Handshake

USERS = ("alice", "bob")
TOPICS = ("a", "b")
BUFFER = 3
WINDOW = 100.0


class FakeLink:
    """A socket as the core sees it: frames are collected, closes wait for the network step."""

    def __init__(self, link_id: str) -> None:
        self.id = link_id
        self.frames: list[dict[str, Any]] = []
        self.open = True
        self.close_requested: int | None = None

    def send(self, text: str | bytes) -> bool:
        if self.open:
            self.frames.append(json.loads(text))
        return self.open

    def close(self, code: int, reason: str) -> None:
        self.close_requested = code

    def abort(self) -> None:
        self.close_requested = 1006


@dataclass
class Model:
    conn: Connection | None = None
    link: FakeLink | None = None
    session: str | None = None
    token: str | None = None
    last_seq: int = 0
    topics: set[str] = field(default_factory=set)
    missed: int = 0  # published to our session while detached
    detached_at: float | None = None


class CoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock()
        self.core = SimulatorCore(
            self.clock, config=Config(recovery_buffer_size=BUFFER, recovery_window=WINDOW)
        )
        self.users = {u: Model() for u in USERS}

    def _connect(self, user: str, recovery_token: str | None) -> list[dict[str, Any]]:
        model = self.users[user]
        link = FakeLink(self.core.new_connection_id())
        model.link = link
        wire, _ = ReferenceDialect(self.core).open(link.id, Handshake("/", {}))
        creds = Authenticate(token=user, recovery_token=recovery_token)
        model.conn = self.core.connect(link, wire, creds)
        auth = link.frames[0]
        assert auth["type"] == "authenticated"
        frames = link.frames[1:]
        link.frames = []
        if model.session != auth["session"]:  # a new session: sequence restarts, nothing kept
            model.session, model.last_seq, model.topics = auth["session"], 0, set()
        model.token = auth["recovery_token"]
        return frames

    @precondition(lambda self: any(m.conn is None and m.token is None for m in self.users.values()))
    @rule(data=st.data())
    def connect_fresh(self, data: st.DataObject) -> None:
        user = data.draw(
            st.sampled_from(
                [u for u, m in self.users.items() if m.conn is None and m.token is None]
            )
        )
        assert self._connect(user, None) == []

    @rule(user=st.sampled_from(USERS), topic=st.sampled_from(TOPICS))
    def subscribe(self, user: str, topic: str) -> None:
        model = self.users[user]
        if model.conn is None:
            return
        self.core.receive(model.conn, json.dumps({"type": "subscribe", "topics": [topic]}))
        assert model.link is not None and model.link.frames.pop()["type"] == "subscribed"
        model.topics.add(topic)

    @rule(topic=st.sampled_from(TOPICS))
    def publish(self, topic: str) -> None:
        self.core.publish(topic, {"t": self.clock.now()})
        for model in self.users.values():
            if topic not in model.topics:
                continue
            if model.conn is None:
                assert model.detached_at is not None
                if (
                    self.clock.now() - model.detached_at < WINDOW
                ):  # an expired session hears nothing
                    model.missed += 1
                continue
            assert model.link is not None
            frame = model.link.frames.pop()
            assert frame["type"] == "notification" and frame["topic"] == topic
            assert frame["seq"] == model.last_seq + 1, "a gap or a repeat in seq"
            model.last_seq = frame["seq"]

    @rule(user=st.sampled_from(USERS))
    def drop(self, user: str) -> None:
        model = self.users[user]
        if model.conn is None:
            return
        assert model.link is not None
        model.link.open = False
        self.core.disconnected(model.conn, 1006, "")
        model.conn, model.missed, model.detached_at = None, 0, self.clock.now()

    @rule(user=st.sampled_from(USERS))
    def recover(self, user: str) -> None:
        model = self.users[user]
        if model.conn is not None or model.token is None:
            return
        expired = model.detached_at is not None and self.clock.now() - model.detached_at >= WINDOW
        old_session, missed = model.session, model.missed
        frames = self._connect(user, model.token)
        recovery, replay = frames[0], frames[1:]
        assert recovery["type"] == "recovery"
        if expired:
            assert recovery == {
                "type": "recovery",
                "recovered": False,
                "replayed": 0,
                "lost": missed,
                "subscriptions": [],
                "reason": "expired",
            }
            assert model.session != old_session
            return
        assert model.session == old_session
        assert recovery["replayed"] == min(missed, BUFFER) == len(replay)
        assert recovery["lost"] == max(0, missed - BUFFER)
        assert recovery["recovered"] is (missed <= BUFFER)
        assert [f["seq"] for f in replay] == list(
            range(model.last_seq + recovery["lost"] + 1, model.last_seq + missed + 1)
        )
        model.last_seq += missed

    @rule(seconds=st.sampled_from([1.0, WINDOW / 2, WINDOW]))
    def time_passes(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @invariant()
    def sessions_match_the_model(self) -> None:
        open_users = {s.user for s in self.core.sessions.values() if s.connection is not None}
        assert open_users == {u for u, m in self.users.items() if m.conn is not None}


CoreMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestCore = CoreMachine.TestCase
