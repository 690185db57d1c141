"""Herds of reference clients: N sans-I/O cores on one event loop, and what their storms did.

- :mod:`.crowd`: :class:`Crowd`, the one asyncio driver of N cores;
- :mod:`.seeds`: the seed SDKs' reconnect policies as reference-client configurations;
- :mod:`.metrics`: reconnect-rate histogram, peaks, time until back, recovery and
  exactly-once delivery, as pure functions;
- :mod:`.svg`: the histogram drawn for reports.

See docs/herd.md.
"""

from .crowd import Crowd, raise_fd_limit
from .metrics import Timeline
from .seeds import SEED_POLICIES, SeedPolicy, seed_policy

__all__ = ["SEED_POLICIES", "Crowd", "SeedPolicy", "Timeline", "raise_fd_limit", "seed_policy"]
