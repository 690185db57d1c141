"""The HTTP control API described as OpenAPI 3.1, built from the operation registry.

Nothing here is written by hand per operation: each path comes from an
:class:`~squall.simulator.control.OperationSpec` (its method, doc and errors), each
argument and answer schema is pydantic's JSON Schema of the operation's signature
(:func:`~squall.simulator.control.arguments_schema`), so the document cannot drift
from what the server accepts. ``GET /v1/openapi.json`` serves it; docs/control-api.md
is its Markdown rendering::

    python -m squall.simulator.openapi            # the document, as JSON
    python -m squall.simulator.openapi --markdown > docs/control-api.md
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

import squall

from .control import OPERATIONS, Control, arguments_schema, result_schema
from .http_api import MAX_BODY, OPENAPI_PATH, PYTHON_ONLY_ARGS

REF = "#/components/schemas/{model}"

#: Every error answer's body (``problems``: one sentence per bad argument, on a 400).
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "error": {"type": "string", "description": "what was wrong, as a sentence"},
        "status": {"type": "integer", "description": "the HTTP status again"},
        "problems": {
            "type": "array",
            "items": {"type": "string"},
            "description": "one sentence per bad argument (400 for arguments only)",
        },
    },
    "required": ["error", "status"],
}

#: Answers any operation may give, whatever it does.
COMMON_ERRORS = {
    400: "invalid arguments, each named with what was expected (an unknown one with the "
    "accepted names); the call had no effect",
    405: "the operation was called with the other method",
    500: "a bug in the simulator (the answer names the exception; the call may have had an effect)",
}
AUTH_ERROR = "no `Authorization: Bearer <token>` header with the control token"
BODY_ERROR = f"the request body is larger than {MAX_BODY} bytes"


def _text(doc: str) -> str:
    """A docstring as CommonMark: reST's double backquotes as single ones."""
    return doc.replace("``", "`")


def _summary(doc: str) -> str:
    first = _text(doc).split("\n\n", 1)[0].replace("\n", " ")
    return re.split(r"(?<=\.)\s", first, maxsplit=1)[0].rstrip(".")


def _hoist(schema: dict[str, Any], into: dict[str, Any]) -> dict[str, Any]:
    """Move a schema's ``$defs`` into the document's components (its refs already point there)."""
    into.update(schema.pop("$defs", {}))
    return schema


def _error(text: str) -> dict[str, Any]:
    return {
        "description": text,
        "content": {"application/json": {"schema": {"$ref": REF.format(model="Error")}}},
    }


def _responses(result: dict[str, Any], errors: dict[int, str]) -> dict[str, Any]:
    ok = {
        "description": "done: `result` is what the operation returned",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"result": result},
                    "required": ["result"],
                    "additionalProperties": False,
                }
            }
        },
    }
    return {"200": ok, **{str(code): _error(errors[code]) for code in sorted(errors)}}


def _operation(name: str, auth: bool, schemas: dict[str, Any]) -> dict[str, Any]:
    spec = OPERATIONS[name]
    args = _hoist(arguments_schema(name, PYTHON_ONLY_ARGS, ref_template=REF), schemas)
    args.pop("title", None)
    args.pop("description", None)  # the operation's own, below
    errors = {**COMMON_ERRORS, **spec.errors}
    if auth:
        errors[401] = AUTH_ERROR
    out: dict[str, Any] = {
        "operationId": name,
        "summary": _summary(spec.doc),
        "description": _text(spec.doc),
    }
    if spec.method == "GET":
        required = set(args.get("required", ()))
        out["parameters"] = [
            {"name": param, "in": "query", "required": param in required, "schema": schema}
            for param, schema in args["properties"].items()
        ]
    else:
        errors[413] = BODY_ERROR
        out["requestBody"] = {
            "required": bool(args.get("required")),
            "description": "the keyword arguments; an empty body is `{}`",
            "content": {"application/json": {"schema": args}},
        }
    out["responses"] = _responses(_hoist(result_schema(name, ref_template=REF), schemas), errors)
    return out


def _fixed(summary: str, schema: dict[str, Any], auth: bool) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": {"description": summary, "content": {"application/json": {"schema": schema}}}
    }
    if auth:
        responses["401"] = _error(AUTH_ERROR)
    return {"get": {"summary": summary, "responses": responses}}


def operation_names(control: Control | type[Control]) -> list[str]:
    """The registered operations ``control`` (an instance or a class) offers."""
    return [name for name in OPERATIONS if hasattr(control, name)]


def openapi_document(control: Control | type[Control], *, auth: bool = False) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the control API serving ``control``'s operations;
    ``auth`` when a control token is set (every request then needs the bearer header)."""
    schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}
    names = operation_names(control)
    index = {
        "type": "object",
        "description": "operation name -> its method, doc and parameter names",
        "additionalProperties": {
            "type": "object",
            "properties": {
                "method": {"enum": ["GET", "POST"]},
                "doc": {"type": "string"},
                "params": {"type": "array", "items": {"type": "string"}},
            },
        },
    }
    paths: dict[str, Any] = {
        "/v1": _fixed("the operations, with their docs and parameter names", index, auth),
        OPENAPI_PATH: _fixed("this document", {"type": "object"}, auth),
    }
    for name in names:
        paths[f"/v1/{name}"] = {OPERATIONS[name].method.lower(): _operation(name, auth, schemas)}
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "squall simulator control API",
            "version": squall.__version__,
            "description": "Script and inspect the simulator: the same operations as the "
            "Python API (`Simulator.<operation>`) and the scenario steps (`server.<operation>`)."
            " Bound to 127.0.0.1 unless a control token is set.",
        },
        "paths": paths,
        "components": {"schemas": schemas},
    }
    if auth:
        doc["components"]["securitySchemes"] = {
            "controlToken": {
                "type": "http",
                "scheme": "bearer",
                "description": "the control token (`squall serve --control-token`)",
            }
        }
        doc["security"] = [{"controlToken": []}]
    return doc


# --- the Markdown page ----------------------------------------------------------------------

_BOUNDS = (
    ("minimum", "≥"),
    ("exclusiveMinimum", ">"),
    ("maximum", "≤"),
    ("exclusiveMaximum", "<"),
)


def type_text(schema: dict[str, Any]) -> str:
    """A JSON Schema as a short phrase: ``integer ≥ 1``, ``string | null``, ``any``."""
    if "anyOf" in schema:
        return " \\| ".join(type_text(s) for s in schema["anyOf"])
    if "enum" in schema:
        return " \\| ".join(json.dumps(v) for v in schema["enum"])
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    kind = schema.get("type")
    if kind is None:
        return "any"
    if kind == "array":
        return f"list of {type_text(schema.get('items', {}))}"
    if kind == "object":
        values = schema.get("additionalProperties")
        if isinstance(values, dict) and values:
            return f"object of {type_text(values)}"
        return "object"
    text = "non-empty string" if schema.get("minLength") == 1 else str(kind)
    if "minimum" in schema and "maximum" in schema:
        return f"{text} {schema['minimum']} to {schema['maximum']}"
    bounds = [f"{sign} {schema[key]}" for key, sign in _BOUNDS if key in schema]
    return " ".join([text, *bounds])


def _arguments_table(args: dict[str, Any]) -> list[str]:
    props = args.get("properties", {})
    if not props:
        return ["No arguments."]
    required = set(args.get("required", ()))
    rows = ["| argument | type | default |", "| --- | --- | --- |"]
    for name, schema in props.items():
        default = "required" if name in required else f"`{json.dumps(schema.get('default'))}`"
        rows.append(f"| `{name}` | {type_text(schema)} | {default} |")
    return rows


def _schema_of(body: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = body["content"]["application/json"]["schema"]
    return schema


def render_markdown(doc: dict[str, Any]) -> str:
    """docs/control-api.md: the document for people, operation by operation."""
    ops = [
        (path, method, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if "operationId" in op
    ]
    lines = [
        "# The control API",
        "",
        "<!-- Generated from the operation registry (squall/simulator/control.py) by",
        "     `python -m squall.simulator.openapi --markdown > docs/control-api.md`;",
        "     tests/simulator/test_openapi.py fails when this page is out of date. -->",
        "",
        "Every operation that scripts or inspects the simulator exists once, in",
        "`squall/simulator/control.py`, and is offered three ways with the same arguments,",
        "the same checks and the same error sentences: as a method of `Simulator` in Python",
        '(`sim.publish(topic="news", payload=1)`), as a scenario step (`server.publish:',
        "{topic: news, payload: 1}`), and over HTTP, described on this page.",
        "",
        "`squall serve` prints the API's URL on its `control` line (any free port unless",
        "`--control-port` is given); `Simulator.start(control_port=0)` sets",
        "`sim.control_url`. The machine-readable description of everything below is served at",
        f"`GET {OPENAPI_PATH}` (OpenAPI {doc['openapi']}: feed it to a client generator or",
        "an HTTP tool).",
        "",
        "## Requests and answers",
        "",
        "- `GET /v1/<operation>?argument=value` for the read operations, `POST",
        "  /v1/<operation>` with a JSON object of keyword arguments for the rest (an empty",
        "  body is `{}`). `GET /v1` lists the operations.",
        '- A call that is done answers `200 {"result": ...}`. Every refusal answers',
        '  `{"error": sentence, "status": code}` (a 400 for arguments also has `problems`,',
        "  one sentence per bad argument, an unknown one with the accepted names and the",
        "  closest of them). A refused call has had no effect.",
        f"- A body is at most {MAX_BODY:,} bytes of strict UTF-8 JSON (no `NaN`, no",
        "  `Infinity`); arguments nest at most 100 levels. docs/protocol.md §9 lists every",
        "  limit.",
        "- The API binds to 127.0.0.1. Bound to any other address it requires a control token",
        "  (`squall serve --control-token TOKEN`); with one set, every request needs",
        "  `Authorization: Bearer TOKEN` or is answered 401.",
        "- Arguments that take Python objects (`on_rpc`'s `handler`) exist only in Python.",
        "",
        "```sh",
        'curl -s -X POST http://127.0.0.1:PORT/v1/on_rpc -d \'{"method": "add", "reply": 3}\'',
        "curl -s 'http://127.0.0.1:PORT/v1/transcript?since=10'",
        "```",
        "",
        "Errors every operation may answer with:",
        "",
        "| status | when |",
        "| --- | --- |",
        *(f"| {code} | {text} |" for code, text in COMMON_ERRORS.items()),
        f"| 401 | {AUTH_ERROR} (only when a control token is set) |",
        f"| 413 | {BODY_ERROR} (POST) |",
        "",
        "## Operations",
        "",
        "| operation | method | what it does |",
        "| --- | --- | --- |",
        *(
            f"| [`{op['operationId']}`](#{op['operationId']}) | {method.upper()} | "
            f"{op['summary']} |"
            for _, method, op in ops
        ),
    ]
    common = {str(code) for code in (*COMMON_ERRORS, 200, 401, 413)}
    for path, method, op in ops:
        if method == "get":
            args = {
                "properties": {p["name"]: p["schema"] for p in op["parameters"]},
                "required": [p["name"] for p in op["parameters"] if p["required"]],
            }
        else:
            args = _schema_of(op["requestBody"])
        result = _schema_of(op["responses"]["200"])["properties"]["result"]
        lines += [
            "",
            f"### {op['operationId']}",
            "",
            f"`{method.upper()} {path}`",
            "",
            op["description"],
            "",
            *_arguments_table(args),
            "",
            f"Answer: `result` is {type_text(result).replace('null', '`null`')}.",
        ]
        own = [(code, r) for code, r in op["responses"].items() if code not in common]
        if own:
            lines += ["", "Errors of its own:", ""]
            lines += [f"- {code}: {r['description']}" for code, r in own]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m squall.simulator.openapi",
        description="Print the control API's OpenAPI document (or its Markdown page).",
    )
    parser.add_argument("--markdown", action="store_true", help="docs/control-api.md instead")
    parser.add_argument(
        "--auth", action="store_true", help="as served with a control token (bearer auth)"
    )
    args = parser.parse_args(argv)
    from .server import Simulator  # every operation, the server's own included

    doc = openapi_document(Simulator, auth=args.auth or args.markdown)
    sys.stdout.write(render_markdown(doc) if args.markdown else json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
