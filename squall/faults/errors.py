"""Errors of the fault proxy.

Tree::

    FaultError                 root: everything the fault proxy raises on purpose
    └── ApiError               a request broke a rule of Toxiproxy's HTTP API;
                               carries the HTTP status and Toxiproxy's exact message

``ApiError`` is raised by the proxy collection itself, so the Python API and the
HTTP API refuse the same input with the same words.
"""

from __future__ import annotations


class FaultError(Exception):
    """Root of every error the fault proxy raises."""


class ApiError(FaultError):
    """A control request was refused; ``status`` and ``message`` are Toxiproxy's."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message, status)
        self.message = message
        self.status = status

    def joined(self, detail: str) -> ApiError:
        """Toxiproxy's ``joinError``: ``"<message>: <detail>"`` with the same status."""
        return ApiError(f"{self.message}: {detail}", self.status)

    def to_json(self) -> dict[str, object]:
        return {"error": self.message, "status": self.status}

    def __str__(self) -> str:
        return f"{self.message} (HTTP {self.status})"


# The error values of Toxiproxy 2.12 ``api.go``, word for word.
BAD_REQUEST_BODY = ApiError("bad request body", 400)
MISSING_FIELD = ApiError("missing required field", 400)
PROXY_NOT_FOUND = ApiError("proxy not found", 404)
PROXY_EXISTS = ApiError("proxy already exists", 409)
INVALID_STREAM = ApiError("stream was invalid, can be either upstream or downstream", 400)
INVALID_TOXIC_TYPE = ApiError("invalid toxic type", 400)
TOXIC_EXISTS = ApiError("toxic already exists", 409)
TOXIC_NOT_FOUND = ApiError("toxic not found", 404)
