"""The building blocks of the scenario language, shared by the core steps and step packs.

Durations, names, :class:`Model` (``extra="forbid"``), :class:`Args` (a step's
arguments, with a scalar shorthand), :class:`Severity`, :class:`Within` and
:class:`ClientArgs`. :mod:`.models` builds the closed step set from these and from
every registered step pack (:mod:`.steps_core`, :mod:`.expect`, :mod:`.steps_webrtc`
and third-party ones); a pack imports this module, never :mod:`.models`, so
registering it cannot be circular.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

__all__ = [
    "DURATION_SCHEMA",
    "Args",
    "ClientArgs",
    "DurationField",
    "ErrorPattern",
    "Model",
    "Name",
    "ScenarioId",
    "Severity",
    "Within",
    "parse_duration",
]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: Any) -> Any:
    """``"500ms"`` -> 0.5, ``"10m"`` -> 600.0, numbers unchanged; anything else is left to fail."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise PydanticCustomError(
                "duration",
                "expected a duration like 500ms, 30s, 10m or a number of seconds, got {value}",
                {"value": repr(value)},
            )
        return float(match.group(1)) * _UNITS[match.group(2)]
    return value


DURATION_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|m|min|h)?\s*$"},
    ],
}

Name = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_-]*$", max_length=64)]
ScenarioId = Annotated[str, Field(pattern=r"^[a-z0-9_-]+(\.[a-z0-9_-]+)+$")]
DurationField = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]
"""Protocol seconds; the JSON Schema accepts a number or a duration string."""


def _regex(value: Any) -> Any:
    """A regex, bare or as ``/regex/``, that compiles (else an error at its line)."""
    if isinstance(value, str):
        body = value[1:-1] if len(value) >= 2 and value[0] == value[-1] == "/" else value
        try:
            re.compile(body)
        except re.error as exc:
            raise PydanticCustomError(
                "regex", "not a valid regex: {why}", {"why": str(exc)}
            ) from None
    return value


ErrorPattern = Annotated[str, AfterValidator(_regex), Field(min_length=1)]
"""What an expected error must match: a regex, bare or ``/regex/`` (match.error_matches)."""


class Model(BaseModel):
    """Base of every scenario model: unknown keys are an error, never ignored."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        out = handler(schema)
        out = handler.resolve_ref_schema(out)
        # Durations: a number or "30s" (pydantic only knows the float after parsing).
        for name, field in cls.model_fields.items():
            if any(
                isinstance(m, BeforeValidator) and m.func is parse_duration for m in field.metadata
            ):
                key = field.alias or name
                prop = out.get("properties", {}).get(key)
                if prop is not None:
                    extra = {k: v for k, v in prop.items() if k in ("title", "description")}
                    default = {"default": prop["default"]} if "default" in prop else {}
                    if "anyOf" in prop and {"type": "null"} in prop["anyOf"]:
                        prop.clear()
                        prop.update({"anyOf": [*DURATION_SCHEMA["anyOf"], {"type": "null"}]})
                    else:
                        prop.clear()
                        prop.update(DURATION_SCHEMA)
                    prop.update(extra | default)
        return out


def _is_duration(annotation: Any) -> bool:
    return annotation in (float, float | None)


# --- the scenario header -------------------------------------------------------------------


# --- step arguments ------------------------------------------------------------------------


class Args(Model):
    """Arguments of one step. ``_shorthand`` names the field a bare scalar fills."""

    _shorthand: ClassVar[str | None] = None
    _declares: ClassVar[str | None] = None
    """A field naming a participant this step brings in (``peer.join``'s ``name``): steps
    may then refer to it wherever they name a client, peer, receiver or sender."""

    @classmethod
    def _shorthand_key(cls) -> str | None:
        if not cls._shorthand:
            return None
        field = cls.model_fields[cls._shorthand]
        return field.alias or cls._shorthand

    @model_validator(mode="before")
    @classmethod
    def _scalar(cls, value: Any) -> Any:
        key = cls._shorthand_key()
        if key and not isinstance(value, dict):
            return {key: value}
        return value

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        out = super().__get_pydantic_json_schema__(schema, handler)
        key = cls._shorthand_key()
        if key:
            prop = out.get("properties", {}).get(key, {})
            short = {k: v for k, v in prop.items() if k not in ("title", "description")}
            body = {k: v for k, v in out.items()}
            out.clear()
            out.update({"anyOf": [short or {"type": "string"}, body]})
            for key in ("title", "description"):
                if key in body:
                    out[key] = body.pop(key)
        return out


class Severity(Model):
    """Mixed into expectations: how a miss counts, and the rule a miss breaks."""

    level: Literal["strict", "non-strict", "informational"] = Field(
        "strict",
        description="strict: a miss is FAILED; non-strict: NON-STRICT; informational: noted only",
    )
    rule: str | None = Field(
        None,
        min_length=1,
        description="the rule this expectation checks, shown with a failure "
        "('an auth failure is final: protocol.md §2')",
    )


class ClientArgs(Args):
    _shorthand: ClassVar[str | None] = "client"
    client: Name
    wait: bool = Field(False, description="wait for the driver's reply before the next step")
    as_: Name | None = Field(None, alias="as", description="store the reply's result in this var")
    expect_error: bool | ErrorPattern | None = Field(
        None,
        description="with wait: the reply must be an error (whose type or message matches "
        "this regex, bare or /regex/)",
    )


class Within(Severity):
    within: DurationField = Field(2.0, description="deadline in protocol seconds")
