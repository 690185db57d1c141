"""squall: a test harness and protocol simulator for realtime streaming and signalling clients.

Subpackages and the dependency rules between them (checked by ``tests/test_layering.py``):

- ``squall.protocol``: wire formats, no I/O; imports nothing else of squall's.
- ``squall.clock``: the one injectable clock every duration goes through.
- ``squall.client``: the reference client; never imports ``squall.simulator``.
- ``squall.simulator``: the fake server; its core never imports ``squall.client``.
- ``squall.faults``: the Toxiproxy-compatible fault proxy.
- ``squall.conformance``: scenarios, runner and the pytest plugin.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
