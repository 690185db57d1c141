"""Who may connect: tokens, guest JWTs, revoked tokens and scripted failures.

The policy answers one question, :meth:`AuthPolicy.check`, with either a
:class:`Principal` or an :class:`AuthRejected` carrying the reason code that
``auth_failed`` sends (docs/protocol.md §2). Scripted failures
(``fail_next_auth``) are consumed first, so a test can fail exactly the Nth
attempt of exactly one user.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import jwt as pyjwt

DEFAULT_JWT_SECRET = "squall-simulator-development-secret-not-for-production"


@dataclass(frozen=True)
class Principal:
    user: str
    guest: bool = False


@dataclass(frozen=True)
class AuthRejected(Exception):
    reason: str
    message: str

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


@dataclass
class ScriptedFailure:
    reason: str
    remaining: int
    user: str | None = None
    message: str = ""


@dataclass
class AuthPolicy:
    """``tokens`` maps token -> user; ``None`` accepts any non-empty token as its own user name."""

    tokens: dict[str, str] | None = None
    revoked: set[str] = field(default_factory=set)
    jwt_secret: str = DEFAULT_JWT_SECRET
    allow_guests: bool = True
    scripted: list[ScriptedFailure] = field(default_factory=list)

    def fail_next(
        self,
        reason: str = "invalid_token",
        count: int = 1,
        user: str | None = None,
        message: str = "",
    ) -> None:
        self.scripted.append(ScriptedFailure(reason, count, user, message))

    def revoke(self, token: str) -> None:
        self.revoked.add(token)

    def check(self, token: str | None, guest_jwt: str | None) -> Principal:
        principal = self._identify(token, guest_jwt)
        for failure in self.scripted:
            if failure.remaining > 0 and failure.user in (None, principal.user):
                failure.remaining -= 1
                if failure.remaining == 0:
                    self.scripted.remove(failure)
                raise AuthRejected(failure.reason, failure.message or "scripted auth failure")
        return principal

    def _identify(self, token: str | None, guest_jwt: str | None) -> Principal:
        if token:
            if token in self.revoked:
                raise AuthRejected("expired_token", "token has expired or was revoked")
            if self.tokens is None:
                return Principal(user=token)
            if token not in self.tokens:
                raise AuthRejected("invalid_token", "token is not known to this server")
            return Principal(user=self.tokens[token])
        if guest_jwt:
            return self._guest(guest_jwt)
        raise AuthRejected("missing_credentials", "no token or jwt in URL, header or auth frame")

    def _guest(self, guest_jwt: str) -> Principal:
        if not self.allow_guests:
            raise AuthRejected("forbidden", "guest access is disabled")
        try:
            claims = pyjwt.decode(guest_jwt, self.jwt_secret, algorithms=["HS256"])
        except pyjwt.ExpiredSignatureError:
            raise AuthRejected("expired_token", "guest jwt has expired") from None
        except pyjwt.InvalidTokenError as exc:
            raise AuthRejected("invalid_jwt", f"guest jwt rejected: {exc}") from None
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise AuthRejected("invalid_jwt", "guest jwt has no 'sub' claim")
        return Principal(user=sub, guest=True)


def make_guest_jwt(
    sub: str, *, secret: str = DEFAULT_JWT_SECRET, ttl: float = 3600.0, now: float | None = None
) -> str:
    """A guest JWT the simulator accepts. JWT expiry is wall-clock time by definition."""
    issued = time.time() if now is None else now
    return pyjwt.encode({"sub": sub, "iat": int(issued), "exp": int(issued + ttl)}, secret, "HS256")
