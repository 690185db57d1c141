"""Socket.IO as a dialect transport: Engine.IO v4 (engine.py) and Socket.IO v5 packets (wire.py)."""
