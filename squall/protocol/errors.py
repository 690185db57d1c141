"""Errors a codec raises: each says what was wrong, where, and which close code answers it.

Tree::

    ProtocolError                 root; ``close_code`` is what a peer should close with
    ├── MalformedFrame            not JSON / not UTF-8 / not an object (1007)
    ├── UnsupportedFrame          a binary frame where only text is allowed (1003)
    ├── UnknownMessageType        valid JSON, unknown ``type`` (answered, not closed)
    └── InvalidMessage            known ``type``, fields wrong (answered, not closed)
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Close codes used by the reference protocol (docs/protocol.md, "Errors and close codes").
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_UNSUPPORTED_DATA = 1003
CLOSE_ABNORMAL = 1006
CLOSE_BAD_PAYLOAD = 1007
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011
CLOSE_SERVICE_RESTART = 1012


@dataclass
class ProtocolError(Exception):
    """Root of every wire-format error. ``str()`` is the sentence to show a person."""

    message: str
    close_code: int | None = None
    code: str = "protocol_error"

    def __str__(self) -> str:
        return self.message


@dataclass
class MalformedFrame(ProtocolError):
    close_code: int | None = CLOSE_BAD_PAYLOAD
    code: str = "bad_payload"


@dataclass
class UnsupportedFrame(ProtocolError):
    close_code: int | None = CLOSE_UNSUPPORTED_DATA
    code: str = "unsupported_data"


@dataclass
class UnknownMessageType(ProtocolError):
    type: str = ""
    ref: str | int | None = None
    code: str = "unknown_type"


@dataclass
class InvalidMessage(ProtocolError):
    type: str = ""
    ref: str | int | None = None
    problems: list[str] = field(default_factory=list)
    code: str = "invalid_message"
