"""The OpenAPI document of the control API: served, valid, complete, and true to the code.

The document is built from the operation registry, so these tests hold the registry's
claims (arguments, types, errors) to what the operations do, and the committed
docs/control-api.md to the document.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
import shlex
import textwrap
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from squall.clock import LoopClock
from squall.simulator import Simulator
from squall.simulator.control import OPERATIONS, Control, InvalidArguments
from squall.simulator.http_api import OPENAPI_PATH, PYTHON_ONLY_ARGS, start_http_api
from squall.simulator.openapi import openapi_document, render_markdown

from .conftest import TIMESCALE

PAGE = Path(__file__).resolve().parents[2] / "docs" / "control-api.md"
SIM_OPS = [name for name in OPERATIONS if hasattr(Simulator, name)]


def _operation(doc: dict[str, Any], name: str) -> dict[str, Any]:
    item = doc["paths"][f"/v1/{name}"]
    (op,) = item.values()
    return op  # type: ignore[no-any-return]


def _arguments(op: dict[str, Any]) -> dict[str, Any]:
    """The schema of an operation's arguments, whether a query (GET) or a body (POST)."""
    if "parameters" in op:
        return {
            "properties": {p["name"]: p["schema"] for p in op["parameters"]},
            "required": [p["name"] for p in op["parameters"] if p["required"]],
        }
    return op["requestBody"]["content"]["application/json"]["schema"]  # type: ignore[no-any-return]


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


# --- served over real HTTP -----------------------------------------------------------------


async def test_the_document_is_served_and_names_every_operation() -> None:
    sim = Simulator(clock=LoopClock(timescale=TIMESCALE))
    await sim.start(control_port=0)
    try:
        assert sim.control_url is not None
        async with aiohttp.ClientSession() as http:
            async with http.get(sim.control_url) as resp:
                index = await resp.json()
            base = sim.control_url.removesuffix("/v1")
            async with http.get(base + OPENAPI_PATH) as resp:
                assert resp.status == 200
                assert resp.content_type == "application/json"
                doc = await resp.json()
            async with http.post(base + OPENAPI_PATH) as resp:
                assert resp.status == 405
                assert (await resp.json())["error"] == f"{OPENAPI_PATH} takes GET, not POST"
    finally:
        await sim.stop()
    assert doc == openapi_document(sim)
    assert doc["openapi"] == "3.1.0"
    assert "security" not in doc and "securitySchemes" not in doc["components"]
    documented = {path.removeprefix("/v1/") for path in doc["paths"]} - {"/v1", "openapi.json"}
    assert documented == set(index) == set(SIM_OPS)
    for name in SIM_OPS:
        op = _operation(doc, name)
        assert op["operationId"] == name
        assert OPERATIONS[name].method.lower() in doc["paths"][f"/v1/{name}"]
        accepted = [p for p in OPERATIONS[name].params if p not in PYTHON_ONLY_ARGS]
        assert (
            list(_arguments(op)["properties"]) == accepted == index[name]["params"][: len(accepted)]
        )
        assert {"200", "400", "405", "500"} <= set(op["responses"])
        assert "401" not in op["responses"]


async def test_with_a_control_token_the_document_needs_it_and_says_so() -> None:
    sim = Simulator(clock=LoopClock(timescale=TIMESCALE))
    await sim.start()
    runner, url = await start_http_api(sim, token="s3cret")
    try:
        openapi = url.removesuffix("/v1") + OPENAPI_PATH
        async with aiohttp.ClientSession() as http:
            async with http.get(openapi) as resp:
                assert resp.status == 401
            async with http.get(openapi, headers={"Authorization": "Bearer s3cret"}) as resp:
                assert resp.status == 200
                doc = await resp.json()
    finally:
        await runner.cleanup()
        await sim.stop()
    scheme = doc["components"]["securitySchemes"]["controlToken"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    assert doc["security"] == [{"controlToken": []}]
    for item in doc["paths"].values():
        for op in item.values():
            assert "401" in op["responses"]
    assert "s3cret" not in json.dumps(doc)


# --- valid and self-consistent ---------------------------------------------------------------


@pytest.mark.parametrize("auth", [False, True])
def test_the_document_is_valid_openapi_3_1(auth: bool) -> None:
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(openapi_document(Simulator, auth=auth))


@pytest.mark.parametrize("auth", [False, True])
def test_every_reference_resolves_and_every_answer_is_described(auth: bool) -> None:
    """What a validator checks first, checked here without one."""
    doc = openapi_document(Simulator, auth=auth)
    refs = _refs(doc)
    assert refs
    for ref in refs:
        assert isinstance(_resolve(doc, ref), dict), ref
    ids = []
    for path, item in doc["paths"].items():
        assert path.startswith("/v1")
        for method, op in item.items():
            assert method in ("get", "post")
            assert op["responses"]["200"]["content"]["application/json"]["schema"]
            for code, answer in op["responses"].items():
                assert 200 <= int(code) <= 599 and answer["description"], (path, code)
            ids.append(op.get("operationId", path))
    assert len(ids) == len(set(ids))
    # A bare Control has no server to refuse connections: the document says only what it has.
    assert "/v1/refuse_connections" not in openapi_document(Control)["paths"]


def test_declared_errors_are_the_ones_the_operations_raise() -> None:
    """Each operation's ``errors`` (404, 409, ...) against its body's ControlError statuses."""
    for name in SIM_OPS:
        spec = OPERATIONS[name]
        tree = ast.parse(textwrap.dedent(inspect.getsource(spec.fn)))  # type: ignore[arg-type]
        raised = set()
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            callee = ast.unparse(node.func)
            if callee == "self._session":
                raised.add(404)
            elif callee == "ControlError":
                status = {k.arg: k.value for k in node.keywords}.get("status")
                if status is None:
                    raised.add(400)  # ControlError's default
                else:
                    assert isinstance(status, ast.Constant), ast.unparse(node)
                    assert isinstance(status.value, int), ast.unparse(node)
                    raised.add(status.value)
        assert set(spec.errors) == raised - {400}, (
            f"{name} raises {sorted(raised - {400})}: list them in @operation(errors=...)"
        )
        doc_codes = set(_operation(openapi_document(Simulator), name)["responses"])
        assert {str(code) for code in spec.errors} <= doc_codes


def test_the_argument_schemas_are_what_calls_are_checked_against() -> None:
    """The documented names, bounds, choices and required arguments, against real refusals."""
    doc = openapi_document(Simulator)
    sim = Simulator(clock=LoopClock(timescale=TIMESCALE))  # never started: nothing to reach
    checked = 0
    for name in SIM_OPS:
        args = _arguments(_operation(doc, name))
        call = getattr(sim, name)
        required = {p: "x" for p in args.get("required", [])}
        with pytest.raises(InvalidArguments) as info:
            call(**required, no_such_argument=1)
        python_only = [p for p in OPERATIONS[name].params if p in PYTHON_ONLY_ARGS]
        accepted = ", ".join([*args["properties"], *python_only]) or "none"
        assert f"accepted: {accepted})" in str(info.value), name
        for param in required:
            with pytest.raises(InvalidArguments, match=f"{param}: Missing required argument"):
                call(**{p: v for p, v in required.items() if p != param})
        for param, schema in args["properties"].items():
            options = schema.get("anyOf", [schema])
            bounded = [s for s in options if "minimum" in s or "exclusiveMinimum" in s]
            choices = [s for s in options if "enum" in s]
            if bounded:
                low = bounded[0].get("minimum", bounded[0].get("exclusiveMinimum"))
                bad: Any = low - 1 if "minimum" in bounded[0] else low
            elif choices:
                bad = "not-" + "-".join(choices[0]["enum"])
            else:
                continue
            with pytest.raises(InvalidArguments) as info:
                call(**{**required, param: bad})
            assert info.value.problems[0].startswith(f"{param}: "), (name, param, bad)
            checked += 1
    assert checked >= 15  # every bounded or enumerated argument above was tried


# --- the page in docs/ ------------------------------------------------------------------------


def test_the_committed_page_is_generated_from_the_document() -> None:
    """Regenerate with: python -m squall.simulator.openapi --markdown > docs/control-api.md."""
    page = render_markdown(openapi_document(Simulator, auth=True))
    assert PAGE.read_text() == page, (
        "docs/control-api.md is out of date: python -m squall.simulator.openapi --markdown "
        "> docs/control-api.md"
    )


def test_the_page_shows_every_operation_and_its_own_errors() -> None:
    page = PAGE.read_text()
    for name in SIM_OPS:
        spec = OPERATIONS[name]
        assert f"### {name}\n\n`{spec.method} /v1/{name}`" in page
        for code, when in spec.errors.items():
            assert f"- {code}: {when}" in page
    assert "`since` | integer ≥ 0 | `0` |" in page
    assert "`code` | integer 1000 to 4999 \\| null | `null` |" in page


async def test_the_pages_curl_examples_work() -> None:
    block = re.search(r"```sh\n(.*?)```", PAGE.read_text(), re.S)
    assert block is not None
    commands = [shlex.split(line) for line in block.group(1).splitlines()]
    assert commands and all(words[0] == "curl" for words in commands)
    sim = Simulator(clock=LoopClock(timescale=TIMESCALE))
    await sim.start(control_port=0)
    try:
        assert sim.control_url is not None
        origin = sim.control_url.removesuffix("/v1")
        async with aiohttp.ClientSession() as http:
            for words in commands:
                (url,) = [w for w in words if w.startswith("http")]
                method = words[words.index("-X") + 1] if "-X" in words else "GET"
                body = words[words.index("-d") + 1] if "-d" in words else None
                url = url.replace("http://127.0.0.1:PORT", origin)
                async with http.request(method, url, data=body) as resp:
                    assert resp.status == 200, (words, await resp.text())
    finally:
        await sim.stop()


# --- a wrong argument, on every face: one implementation (control.did_you_mean) -----------


@pytest.mark.parametrize(
    ("op", "args", "wrong", "meant"),
    [
        ("on_rpc", {"method": "add"}, "result", "reply"),  # by alias: the protocol's word
        ("publish", {"topic": "t"}, "paylod", "payload"),  # by spelling
        ("drop", {"session": "alice"}, "cdoe", "code"),
    ],
)
async def test_a_wrong_argument_gets_the_same_suggestion_on_every_face(
    op: str, args: dict[str, Any], wrong: str, meant: str
) -> None:
    from squall.conformance.loader import ScenarioError, parse

    hint = f"did you mean {meant!r}? "
    sim = Simulator(clock=LoopClock(timescale=TIMESCALE))
    await sim.start(control_port=0)
    try:
        with pytest.raises(InvalidArguments) as python:
            getattr(sim, op)(**args, **{wrong: 1})
        assert sim.control_url is not None
        url = f"{sim.control_url}/{op}"
        async with aiohttp.ClientSession() as http, http.post(url, json={**args, wrong: 1}) as resp:
            assert resp.status == 400
            answer = await resp.json()
    finally:
        await sim.stop()
    assert answer["error"] == str(python.value)
    assert answer["problems"] == [
        f"{wrong}: Unexpected keyword argument ({hint}accepted: "
        + ", ".join(OPERATIONS[op].params)
        + ")"
    ]
    step = json.dumps({f"server.{op}": {**args, wrong: 1}})
    text = f"id: x.y\ntitle: t\nclients: {{alice: {{token: alice}}}}\nsteps:\n  - {step}\n"
    with pytest.raises(ScenarioError) as scenario:
        parse(text)
    assert f"unknown key {wrong!r} ({hint}expected one of: " in str(scenario.value)
