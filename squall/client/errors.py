"""Errors the reference client raises or hands to the application.

Tree::

    ClientError                 root; ``str()`` is the sentence to show a person
    ├── IllegalTransition       the session core was asked to do something its state forbids
    ├── AuthFailed              the server answered ``auth_failed``: final, never retried (§2)
    ├── ConnectionFailed        reconnecting gave up (``max_attempts``) or the handshake was refused
    ├── NotConnected            an operation that needs a live session (e.g. ``answer_drain``)
    ├── CallTimeout             an RPC got no answer within its timeout (counted from sending, §5)
    ├── CallInterrupted         the connection ended while an RPC was in flight (it may have run)
    ├── ClientClosed            ``disconnect()`` cancelled a pending operation
    └── RemoteError             the server answered a request with ``error`` (code, message, data)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "AuthFailed",
    "CallInterrupted",
    "CallTimeout",
    "ClientClosed",
    "ClientError",
    "ConnectionFailed",
    "IllegalTransition",
    "NotConnected",
    "RemoteError",
]


class ClientError(Exception):
    """Root of every error of :mod:`squall.client`."""


@dataclass
class IllegalTransition(ClientError):
    state: str
    event: str

    def __str__(self) -> str:
        return f"illegal move: event {self.event!r} is not allowed in state {self.state!r}"


@dataclass
class AuthFailed(ClientError):
    reason: str
    message: str = ""

    def __str__(self) -> str:
        return f"authentication failed ({self.reason}): {self.message}".rstrip(": ")


@dataclass
class ConnectionFailed(ClientError):
    message: str
    attempts: int = 0

    def __str__(self) -> str:
        return self.message


@dataclass
class NotConnected(ClientError):
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass
class CallTimeout(ClientError):
    method: str
    timeout: float

    def __str__(self) -> str:
        return f"call {self.method!r} got no answer within {self.timeout:g}s of being sent"


@dataclass
class CallInterrupted(ClientError):
    method: str
    reason: str

    def __str__(self) -> str:
        return (
            f"call {self.method!r} was in flight when the connection ended ({self.reason});"
            " it may or may not have run"
        )


@dataclass
class ClientClosed(ClientError):
    what: str

    def __str__(self) -> str:
        return f"{self.what} cancelled: the client was disconnected"


@dataclass
class RemoteError(ClientError):
    code: str
    message: str
    data: Any = None

    def __str__(self) -> str:
        return f"server error {self.code}: {self.message}"
