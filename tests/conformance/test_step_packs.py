"""Step packs: how the scenario language is extended (models.register_pack), and the WebRTC one."""

from __future__ import annotations

import types
from pathlib import Path

import pytest

from squall.conformance import models, steps_webrtc
from squall.conformance.base import Args
from squall.conformance.loader import ScenarioError, parse
from squall.conformance.models import (
    CORE_STEPS,
    STEP_ARGS,
    STEP_HANDLERS,
    STEP_PACKS,
    StepPackError,
    register_pack,
)


def test_the_webrtc_pack_is_registered_with_a_handler_per_step() -> None:
    assert "squall.conformance.steps_webrtc" in STEP_PACKS
    for name, model in steps_webrtc.STEP_ARGS.items():
        assert STEP_ARGS[name] is model
        assert STEP_HANDLERS[name] is steps_webrtc.HANDLERS[name]
    assert set(STEP_ARGS) == set(CORE_STEPS) | set(steps_webrtc.STEP_ARGS)
    assert not set(CORE_STEPS) & set(STEP_HANDLERS)  # core steps stay the runner's own


def _pack(name: str, **steps: type[Args]) -> types.ModuleType:
    module = types.ModuleType(name)
    module.STEP_ARGS = steps  # type: ignore[attr-defined]

    async def handler(run: object, args: object, sr: object) -> None:
        return None

    module.HANDLERS = dict.fromkeys(steps, handler)  # type: ignore[attr-defined]
    return module


def test_a_pack_may_not_redefine_a_step() -> None:
    with pytest.raises(StepPackError, match=r"redefines steps: expect\.media, wait"):
        register_pack(_pack("clash", **{"wait": Args, "expect.media": Args}))


def test_a_pack_needs_a_handler_for_every_step() -> None:
    module = _pack("partial", **{"thing.one": Args})
    module.HANDLERS = {}  # type: ignore[attr-defined]
    with pytest.raises(StepPackError, match=r"without a handler \['thing.one'\]"):
        register_pack(module)
    assert "thing.one" not in STEP_ARGS


def test_a_step_model_must_be_scenario_args() -> None:
    with pytest.raises(StepPackError, match=r"is not a squall\.conformance\.base\.Args"):
        register_pack(_pack("wrong", **{"thing.two": dict}))  # type: ignore[arg-type]
    assert "thing.two" not in STEP_ARGS and "wrong" not in models.PACKS


HEAD = """id: x.y
title: t
timescale: 1
clients: {alice: {token: alice}}
steps:
"""


def test_webrtc_steps_validate_with_places(tmp_path: Path) -> None:
    ok = parse(
        HEAD
        + "  - peer.join: {name: bob, room: lobby, request: [cam]}\n"
        + "  - client.webrtc.request_peer_track: {client: alice, peer: bob, id: cam}\n"
        + "  - expect.media: {receiver: alice, sender: bob, track: cam, within: 3s, since: last}\n",
        str(tmp_path / "ok.yaml"),
    )
    steps = ok.scenario.steps
    assert [s.name for s in steps] == [
        "peer.join",
        "client.webrtc.request_peer_track",
        "expect.media",
    ]
    assert steps[2].args.within == 3.0
    with pytest.raises(ScenarioError) as err:
        parse(
            HEAD + "  - peer.jion: {name: bob, room: lobby}\n"
            "  - expect.media: {receiver: alice, sender: bob, track: cam, frmaes: 3}\n",
            str(tmp_path / "bad.yaml"),
        )
    text = str(err.value)
    assert "bad.yaml:6:" in text and "did you mean 'peer.join'" in text
    assert "bad.yaml:7:" in text and "did you mean 'frames'" in text
    with pytest.raises(ScenarioError, match=r"x.yaml:6:.*sender: unknown client 'zed'"):
        parse(
            HEAD + "  - expect.media: {receiver: alice, sender: zed, track: cam}\n",
            str(tmp_path / "x.yaml"),
        )


def test_state_histories_match_in_order_from_first_to_last() -> None:
    match = steps_webrtc.states_match
    want = ["new", "connecting", "connected"]
    assert match(["new", "connecting", "connected"], want, exact=False)
    assert match(["new", "connecting", "connected", "connecting", "connected"], want, exact=False)
    assert not match(["new", "connecting"], want, exact=False)
    assert not match(["new", "connecting", "connected", "closed"], want, exact=False)
    assert not match(["new", "connected", "connecting", "connected"], want, exact=True)
