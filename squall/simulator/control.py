"""The control plane, implemented once: the Python API, the HTTP API and scenario steps call these.

Every public operation is decorated with :func:`operation`, which validates
its arguments with pydantic (a wrong call gets a sentence naming the argument,
not a stack trace) and registers it in :data:`OPERATIONS`, from which the HTTP
API (``http_api.py``) builds its routes. A session is named by its session id
(``s3``), its connection sid (``c7``) or its user (``alice``).

Every face gets the same refusal, raised before the operation has any effect:
:class:`InvalidArguments` (a :class:`ControlError`, HTTP 400) names each bad
argument; an unknown one is answered with the accepted names and the closest
of them (``result: Unexpected keyword argument (did you mean 'reply'? ...)``).
Beyond pydantic's checks, every string anywhere in an argument must be
encodable as UTF-8 (no lone surrogates: nothing could send it) and no value
may nest deeper than :data:`MAX_DEPTH` lists and objects (the JSON encoders
behind the dialects stop at a few hundred).

The registry is also the API's description: :func:`arguments_schema` and
:func:`result_schema` are pydantic's JSON Schemas of an operation's signature, and
each :class:`OperationSpec` lists the errors the operation can answer with (beyond the
400 every operation may give), from which ``http_api.py`` builds its OpenAPI document.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import typing
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, ParamSpec, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    create_model,
    validate_call,
)
from pydantic.json_schema import GenerateJsonSchema
from websockets.frames import EXTERNAL_CLOSE_CODES

from .core import Session, SessionState, SimulatorCore
from .rpc import RpcRule
from .seam import Unsupported

CLOSE_ABNORMAL = 1006  # RFC 6455: no close frame, the TCP connection is cut

#: How deeply lists and objects may nest in any argument (a publish payload, an RPC reply).
MAX_DEPTH = 100
#: ``configure(rate_burst=...)`` ceiling: the token bucket is a float, and a billion frames
#: at once is no limit at all already.
MAX_BURST = 1_000_000_000

P = ParamSpec("P")
R = TypeVar("R")


#: The refusal of an operation that names a session (``session``) matching none.
NO_SESSION = "no session matches `session` (a session id, connection sid or user name)"
#: The refusal of an operation on a session that has no open connection now.
NOT_CONNECTED = "the session has no open connection"


@dataclass(frozen=True)
class OperationSpec:
    """One registered operation: what every face (Python, HTTP, scenario step) offers."""

    name: str
    method: Literal["GET", "POST"]
    doc: str
    params: tuple[str, ...] = field(default=())
    #: HTTP status -> when it is the answer, beyond the 400 for arguments any call may get.
    errors: Mapping[int, str] = field(default_factory=dict)
    fn: Callable[..., Any] | None = field(default=None, compare=False, repr=False)


OPERATIONS: dict[str, OperationSpec] = {}


class ControlError(Exception):
    """A control call that cannot be carried out; ``status`` is its HTTP status."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class InvalidArguments(ControlError, ValueError):
    """A call refused for its arguments, before it had any effect: one problem per argument.

    A :class:`ValueError` too, as pydantic's ``ValidationError`` (what this used to be) is.
    """

    def __init__(self, op: str, problems: Sequence[str]) -> None:
        super().__init__(f"invalid arguments for {op}: " + "; ".join(problems), status=400)
        self.op = op
        self.problems = list(problems)


#: Words people reach for that are not spelled like the argument they mean
#: (``result`` is the reference protocol's name for what ``on_rpc`` calls ``reply``).
ALIASES = {
    "result": "reply",
    "response": "reply",
    "answer": "reply",
    "returns": "reply",
    "data": "payload",
    "body": "payload",
    "message": "text",
    "channel": "topic",
    "user": "session",
    "sid": "session",
    "session_id": "session",
}


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """``"did you mean 'reply'? "`` for the closest of ``choices`` (by spelling, else by
    :data:`ALIASES`), or ``""``."""
    options = list(choices)
    close = difflib.get_close_matches(name, options, n=1)
    if not close and ALIASES.get(name.lower()) in options:
        close = [ALIASES[name.lower()]]
    return f"did you mean {close[0]!r}? " if close else ""


def unknown_argument(name: str, params: Sequence[str]) -> str:
    """The problem sentence for an argument ``params`` does not have."""
    accepted = ", ".join(params) or "none"
    shown = name if name.isidentifier() else repr(name)
    return (
        f"{shown}: Unexpected keyword argument ({did_you_mean(name, params)}accepted: {accepted})"
    )


def _value_problem(value: Any) -> str | None:
    """Why ``value`` cannot go anywhere (a lone surrogate, too deep), or None. No recursion."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError as exc:
                    return (
                        f"contains a lone surrogate (U+{ord(item[exc.start]):04X} at position "
                        f"{exc.start}), which UTF-8 cannot encode"
                    )
        elif isinstance(item, dict | list | tuple):
            if depth >= MAX_DEPTH:
                return f"nests deeper than {MAX_DEPTH} levels of lists and objects"
            if isinstance(item, dict):
                stack.extend((k, depth + 1) for k in item if isinstance(k, str))
                stack.extend((v, depth + 1) for v in item.values())
            else:
                stack.extend((v, depth + 1) for v in item)
    return None


def _check(params: Sequence[str], args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[str]:
    """Problems found before pydantic sees the call: unknown names, unsendable values."""
    problems = [unknown_argument(k, params) for k in kwargs if k not in params]
    if problems:
        return problems
    named = [*zip(params, args, strict=False), *kwargs.items()]
    for name, value in named:
        if isinstance(value, str | dict | list | tuple):
            problem = _value_problem(value)
            if problem is not None:
                problems.append(f"{name}: {problem}")
    return problems


def _problems(exc: ValidationError, params: Sequence[str]) -> list[str]:
    out = []
    for e in exc.errors(include_url=False):
        where = ".".join(str(p) for p in e["loc"]) or "(arguments)"
        if e["type"] == "unexpected_keyword_argument":
            out.append(unknown_argument(where, params))
        elif e["type"] == "value_error":  # our own validators' sentences, without the prefix
            out.append(f"{where}: {e['ctx']['error']}")
        else:
            out.append(f"{where}: {e['msg']}")
    return out


def operation(
    method: Literal["GET", "POST"] = "POST", *, errors: Mapping[int, str] | None = None
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Register a control operation and validate its arguments on every call.

    A refused call raises :class:`InvalidArguments` before the operation's body runs.
    ``errors`` are the other :class:`ControlError` statuses the body may raise, each with
    when (tests/simulator/test_openapi.py holds them to the body's source).
    """

    def wrap(fn: Callable[P, R]) -> Callable[P, R]:
        params = tuple(p for p in inspect.signature(fn).parameters if p != "self")
        OPERATIONS[fn.__name__] = OperationSpec(
            fn.__name__, method, (fn.__doc__ or "").strip(), params, dict(errors or {}), fn
        )
        validated = validate_call(config=ConfigDict(arbitrary_types_allowed=True))(fn)

        @functools.wraps(fn)
        def call(*args: P.args, **kwargs: P.kwargs) -> R:
            problems = _check(params, args[1:], kwargs)
            if problems:
                raise InvalidArguments(fn.__name__, problems)
            try:
                return validated(*args, **kwargs)
            except ValidationError as exc:
                if exc.title != fn.__qualname__:
                    raise  # raised inside the operation, not by its arguments: a bug
                raise InvalidArguments(fn.__name__, _problems(exc, params)) from None

        return call

    return wrap


class _NoFieldTitles(GenerateJsonSchema):
    """Pydantic's JSON Schema without the ``title`` it derives from each argument's name."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


@functools.cache
def arguments_model(name: str, exclude: frozenset[str] = frozenset()) -> type[BaseModel]:
    """Operation ``name``'s keyword arguments (less ``exclude``) as a pydantic model, built
    from the same signature ``validate_call`` checks calls against."""
    spec = OPERATIONS[name]
    assert spec.fn is not None
    hints = typing.get_type_hints(spec.fn, include_extras=True)
    signature = inspect.signature(spec.fn)
    fields: dict[str, Any] = {}
    for param in spec.params:
        if param in exclude:
            continue
        default = signature.parameters[param].default
        fields[param] = (
            hints.get(param, Any),
            ... if default is inspect.Parameter.empty else default,
        )
    return create_model(
        f"{name}_arguments", __config__=ConfigDict(extra="forbid"), __doc__=spec.doc, **fields
    )


def arguments_schema(
    name: str, exclude: Collection[str] = (), *, ref_template: str = "#/$defs/{model}"
) -> dict[str, Any]:
    """The JSON Schema (2020-12, as OpenAPI 3.1 uses) of the object of ``name``'s arguments."""
    model = arguments_model(name, frozenset(exclude))
    return model.model_json_schema(ref_template=ref_template, schema_generator=_NoFieldTitles)


def result_schema(name: str, *, ref_template: str = "#/$defs/{model}") -> dict[str, Any]:
    """The JSON Schema of what operation ``name`` returns (its return annotation)."""
    spec = OPERATIONS[name]
    assert spec.fn is not None
    returns = typing.get_type_hints(spec.fn, include_extras=True).get("return", Any)
    return TypeAdapter(returns).json_schema(
        mode="serialization", ref_template=ref_template, schema_generator=_NoFieldTitles
    )


def _sendable_close_code(code: int) -> int:
    if code == CLOSE_ABNORMAL or code in EXTERNAL_CLOSE_CODES or 3000 <= code <= 4999:
        return code
    raise ValueError(
        f"{code} cannot be sent in a close frame (RFC 6455 §7.4: 1000-1003, 1007-1014 or "
        "3000-4999; 1006 cuts the connection without one)"
    )


class Control:
    """Scripting and inspection of one :class:`SimulatorCore`."""

    def __init__(self, core: SimulatorCore) -> None:
        self.core = core

    def _session(self, ref: str) -> Session:
        core = self.core
        session = core.sessions.get(ref)
        if session is None and ref in core.connections:
            session = core.connections[ref].session
        if session is None:
            matches = [s for s in core.sessions.values() if s.user == ref]
            # Prefer the open session, then the most recent one.
            matches.sort(key=lambda s: (s.state is SessionState.OPEN, int(s.id[1:])))
            session = matches[-1] if matches else None
        if session is None:
            known = ", ".join(f"{s.id}({s.user})" for s in core.sessions.values()) or "none"
            raise ControlError(f"no session matches {ref!r} (sessions: {known})", status=404)
        return session

    def _record(self, op: str, **params: Any) -> None:
        self.core.transcript.record("control", op=op, params=params)

    # --- operations ----------------------------------------------------------------------------

    @operation()
    def publish(self, topic: str = Field(min_length=1), payload: Any = None) -> dict[str, int]:
        """Publish ``payload`` on ``topic`` to every subscribed session (buffered if detached)."""
        self._record("publish", topic=topic)
        return self.core.publish(topic, payload)

    @operation(
        errors={
            404: NO_SESSION,
            409: f"{NOT_CONNECTED}, or its dialect cannot ask a client to reconnect",
        }
    )
    def request_reconnect(
        self,
        session: str | None = None,
        deadline: float | None = Field(None, ge=0),
        answer_within: float | None = Field(None, ge=0),
        reason: str = "drain",
    ) -> list[str]:
        """Ask one session (or, with no session, every open one) to reconnect: a drain."""
        targets = (
            [self._session(session)]
            if session is not None
            else [s for s in self.core.sessions.values() if s.connection is not None]
        )
        for target in targets:  # refuse before draining any: all of them or none
            if target.connection is None:
                raise ControlError(
                    f"session {target.id} ({target.user}) has no open connection", status=409
                )
            try:
                target.connection.wire.dialect.require("drain", "server-requested reconnect")
            except Unsupported as exc:
                raise ControlError(str(exc), status=409) from None
        self._record("request_reconnect", session=session, deadline=deadline)
        for target in targets:
            try:
                self.core.request_reconnect(
                    target, deadline=deadline, answer_within=answer_within, reason=reason
                )
            except LookupError as exc:
                raise ControlError(str(exc), status=409) from None
            except Unsupported as exc:
                raise ControlError(str(exc), status=409) from None
        return [t.id for t in targets]

    @operation(errors={404: NO_SESSION, 409: NOT_CONNECTED})
    def drop(
        self,
        session: str,
        code: Annotated[int, Field(ge=1000, le=4999), AfterValidator(_sendable_close_code)]
        | None = None,
        reason: str = "",
    ) -> str:
        """Close a session's connection with ``code``, or with no code cut the TCP connection."""
        target = self._session(session)
        conn = target.connection
        if conn is None:
            raise ControlError(f"session {target.id} ({target.user}) is not connected", status=409)
        self._record("drop", session=target.id, code=code, reason=reason)
        if code is None or code == CLOSE_ABNORMAL:
            conn.link.abort()
        else:
            self.core.close_with_code(conn, code, reason or "dropped by the simulator")
        return conn.sid

    @operation()
    def fail_next_auth(
        self,
        reason: Literal[
            "invalid_token", "expired_token", "missing_credentials", "forbidden", "invalid_jwt"
        ] = "invalid_token",
        count: int = Field(1, ge=1),
        user: str | None = None,
        message: str = "",
    ) -> None:
        """Fail the next ``count`` authentications (of ``user`` only, if given) with ``reason``."""
        self._record("fail_next_auth", reason=reason, count=count, user=user)
        self.core.auth.fail_next(reason, count, user, message)

    @operation()
    def revoke_token(self, token: str) -> None:
        """Make ``token`` fail with ``expired_token`` from the next authentication on."""
        self._record("revoke_token")
        self.core.auth.revoke(token)

    @operation()
    def on_rpc(
        self,
        method: str = Field(min_length=1),
        reply: Any = None,
        error: dict[str, Any] | str | None = None,
        delay: float = Field(0.0, ge=0),
        no_reply: bool = False,
        times: int | None = Field(None, ge=1),
        handler: Callable[[Any], Any] | None = None,
    ) -> None:
        """Script the answer to ``method``: a reply, an error, no reply, after ``delay`` seconds."""
        if isinstance(error, str):
            error = {"code": error, "message": error}
        if error is not None and "code" not in error:
            raise ControlError("error must have a 'code' (and may have 'message', 'data')")
        self._record(
            "on_rpc", method=method, error=error, delay=delay, no_reply=no_reply, times=times
        )
        self.core.rpc.add(RpcRule(method, reply, error, delay, no_reply, times, handler))

    @operation()
    def clear_rpc(self, method: str | None = None) -> None:
        """Forget scripted RPC answers (of one method, or all)."""
        self._record("clear_rpc", method=method)
        self.core.rpc.clear(method)

    @operation(errors={404: NO_SESSION, 409: NOT_CONNECTED})
    def silence(self, session: str, silent: bool = True) -> None:
        """Stop (or resume) sending anything to a session, pongs included: a half-dead server."""
        target = self._session(session)
        if target.connection is None:
            raise ControlError(f"session {target.id} ({target.user}) is not connected", status=409)
        self._record("silence", session=target.id, silent=silent)
        target.connection.silenced = silent

    @operation(errors={404: NO_SESSION})
    def expire(self, session: str) -> None:
        """Forget a session now, so a recovery with its token fails (reason ``expired``)."""
        target = self._session(session)
        self._record("expire", session=target.id)
        self.core.expire(target)

    @operation(errors={404: NO_SESSION, 409: NOT_CONNECTED})
    def send(self, session: str, text: str) -> None:
        """Send a raw text frame to a session, well-formed or not: for testing clients' parsers."""
        target = self._session(session)
        if target.connection is None:
            raise ControlError(f"session {target.id} ({target.user}) is not connected", status=409)
        self._record("send", session=target.id)
        self.core.send_raw(target.connection, text)

    @operation()
    def configure(
        self,
        recovery_buffer_size: int | None = Field(None, ge=0),
        recovery_window: float | None = Field(None, ge=0),
        heartbeat: float | None = Field(None, gt=0),
        drain_deadline: float | None = Field(None, ge=0),
        drain_answer_within: float | None = Field(None, ge=0),
        rate_limit: float | None = Field(None, gt=0),
        rate_burst: int | None = Field(None, ge=1, le=MAX_BURST),
        server_ping_interval: float | None = Field(None, gt=0),
    ) -> dict[str, Any]:
        """Change server policy for what happens next; returns the whole policy."""
        changes = {k: v for k, v in locals().items() if k != "self" and v is not None}
        self._record("configure", **changes)
        for key, value in changes.items():
            setattr(self.core.config, key, value)
        return dict(vars(self.core.config))

    @operation("GET")
    def sessions(self) -> list[dict[str, Any]]:
        """Every session the server knows: open or detached (awaiting recovery)."""
        return [s.view() for s in self.core.sessions.values()]

    @operation("GET")
    def rooms(self) -> dict[str, Any]:
        """Every signalling room with its members, their tracks, and recent leavers."""
        return {name: room.view() for name, room in self.core.rooms.items()}

    @operation("GET")
    def transcript(self, since: int = Field(0, ge=0)) -> list[dict[str, Any]]:
        """Transcript records from index ``since`` on."""
        return self.core.transcript.since(since)
