"""Client wires for the dialects beside the reference protocol (``squall/client/wire.py``)."""
