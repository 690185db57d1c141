"""The seed SDKs' documented reconnect policies, as reference-client configurations.

A herd scenario runs N reference-client cores with one of these, so the report can say
which policy spreads a herd and which synchronises it. Each entry is a
:class:`~squall.client.policy.Policy` (what the core's backoff rules read) plus the kind
of random draw that policy's jitter uses, and the source of every number. Where an SDK's
schedule is not a Policy exactly, ``differs`` says how it differs.

Mixer's "random round" (``500 * 2**(n + round(random()))`` ms) is a two-point draw, not a
uniform jitter. It is reproduced exactly through the core's own rules: with jitter 1/3
the core scales a delay by ``1 + (2r - 1) / 3``, so a random source whose ``random()``
returns 0.0 or 1.0 (:class:`CoinRandom`) gives x2/3 or x4/3, and a base of 750 ms x 2**n
gives 500 or 1000, 1000 or 2000, ... 32000 or 64000 ms.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Literal

from squall.client.policy import Policy

Draw = Literal["uniform", "coin"]


class CoinRandom(random.Random):
    """``random()`` is 0.0 or 1.0: JavaScript's ``Math.round(Math.random())``."""

    def random(self) -> float:
        return 0.0 if super().random() < 0.5 else 1.0


@dataclass(frozen=True)
class SeedPolicy:
    """A reconnect policy a crowd's cores run: the Policy, its draw, and where it comes from."""

    name: str
    policy: Policy
    draw: Draw = "uniform"
    source: str = ""
    differs: str = ""
    #: Policy fields set on top of the reference default (what a scenario shows).
    settings: dict[str, Any] = field(default_factory=dict)

    def rng(self, seed: int) -> random.Random:
        """A core's own random source: seeded per core, so jitter differs between cores."""
        return CoinRandom(seed) if self.draw == "coin" else random.Random(seed)

    def with_settings(self, **changes: Any) -> SeedPolicy:
        """The same seed policy with some Policy fields changed (``ping_interval``, ...)."""
        if not changes:
            return self
        return SeedPolicy(
            self.name,
            self.policy.replace(**changes),
            self.draw,
            self.source,
            self.differs,
            {**self.settings, **changes},
        )


def _seed(
    name: str, draw: Draw = "uniform", *, source: str, differs: str = "", **kw: Any
) -> SeedPolicy:
    return SeedPolicy(name, Policy(**kw), draw, source, differs, dict(kw))


SEED_POLICIES: dict[str, SeedPolicy] = {
    p.name: p
    for p in (
        _seed(
            "reference",
            source="squall/client/policy.py defaults: 0.5 s x2, max 30 s, jitter +-20 %"
            " (Mixer's 500 ms start, Genesys v14's randomisation factor 0.2)",
        ),
        _seed(
            "genesys-v19",
            source="genesys-cloud-streaming-client 19.4.1 dist/npm/client.js: INITIAL_DELAY = 2000"
            " (l. 36, the floor of getStartingDelay), maxDelayBetweenConnectionAttempts 90000"
            " (l. 311), backOff({jitter: 'none'}) (l. 335) with exponential-backoff's"
            " timeMultiple 2 (dist/options.js); seed-protocols.md §1 'Reconnect': no jitter, x2,"
            " unlimited, cap 90 s, failing attempts at 0, 2, 6, 14, 30 s",
            differs="the SDK remembers its last delay across connect() calls (sessionStorage) and"
            " starts at max(stored, 2 s); a crowd starts every core at 2 s",
            backoff_initial=2.0,
            backoff_multiplier=2.0,
            backoff_max=90.0,
            jitter=0.0,
        ),
        _seed(
            "ringcentral",
            source="@rc-ex/ws 1.4.2 dist/cjs/index.js l. 55-56: checkInterval(n) ="
            " min(8000, 2000 + 2000 n), a setInterval with no jitter and no attempt limit;"
            " seed-protocols.md §2 'Recovery'",
            differs="the SDK steps by +2 s (2, 4, 6, 8, 8 s); a Policy multiplies, so this is"
            " 2, 4, 8, 8 s (the same first two delays and cap). The SDK's first check falls on"
            " a tick of an interval started at its last (re)connect: a herd that reconnected"
            " together (after a previous storm) ticks together, which is the case modelled",
            backoff_initial=2.0,
            backoff_multiplier=2.0,
            backoff_max=8.0,
            jitter=0.0,
        ),
        _seed(
            "mixer",
            "coin",
            source="@mixer/chat-client-websocket 1.2.0 dist/commonjs/socket/Socket.js l. 127-129:"
            " (1 << ((retries++ % 7) + Math.round(Math.random()))) * 500 ms, retries reset on"
            " connect (l. 286); seed-protocols.md §4 'Reconnect'",
            differs="the SDK wraps back to 500 ms after 7 retries (retries % 7); a Policy stays"
            " at its cap (32 or 64 s)",
            backoff_initial=0.75,
            backoff_multiplier=2.0,
            backoff_max=48.0,
            jitter=1 / 3,
        ),
    )
}
"""The reference default and each seed SDK's documented reconnect policy, by name."""


def seed_policy(spec: str | dict[str, Any] | None) -> SeedPolicy:
    """A seed policy by name, or Policy fields (``{base: mixer, ping_interval: 15}``: on top
    of a named one; no ``base``: on top of the reference default). ValueError names the
    known names, or the bad field."""
    if spec is None:
        return SEED_POLICIES["reference"]
    if isinstance(spec, str):
        known = SEED_POLICIES.get(spec)
        if known is None:
            raise ValueError(
                f"unknown crowd policy {spec!r} (known: {', '.join(SEED_POLICIES)},"
                " or a mapping of Policy fields)"
            )
        return known
    settings = dict(spec)
    base = seed_policy(settings.pop("base", "reference"))
    custom = base.with_settings(**settings)
    if settings:
        custom = SeedPolicy(
            f"{base.name}+custom",
            custom.policy,
            custom.draw,
            custom.source,
            custom.differs,
            custom.settings,
        )
    return custom
