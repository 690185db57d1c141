"""drivers/common/driver.js: the driver-protocol plumbing, with a tiny driver written here."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests import needs

from .helpers import DRIVERS, NodeDriver


@pytest.fixture(autouse=True)
def _node() -> None:
    needs.node()


TOY = """
const { Driver, CommandError } = require(%(common)s);
const { EventEmitter } = require('events');
const sdk = new EventEmitter();
let release;
const driver = new Driver({
  name: 'toy',
  commands: {
    wait: () => new Promise((resolve) => { release = resolve; }),
    free: async () => { release('freed'); return 'ok'; },
    refuse: async () => { throw new CommandError('AuthFailed', 'no, Bearer abc.def'); },
    crash: async () => { setTimeout(() => { throw new Error('boom in a timer'); }, 5);
                         Promise.reject(new Error('nobody catches me')); return null; },
    typo: async () => { const x = null; return x.field; },
    emit: async () => { sdk.emit('newWsc', { token: 'W', sequence: 2 }); return null; },
  },
  quit: async () => { console.log('console.log goes to stderr'); },
});
driver.forward(sdk);
driver.start();
"""


@pytest.fixture
async def toy(tmp_path):
    script = tmp_path / "toy.js"
    script.write_text(TOY % {"common": json.dumps(str(DRIVERS / "common" / "driver.js"))})
    proc = NodeDriver(script, timescale=1)
    yield proc
    await proc.stop()


async def test_plumbing(toy):
    ready = await toy.start()
    assert ready["data"]["commands"] == ["wait", "free", "refuse", "crash", "typo", "emit", "quit"]

    waiting = toy.send("wait")  # pending: must not hold up the next commands
    refused = await toy.command("refuse")
    assert refused == {
        "reply": refused["reply"],
        "ok": False,
        "error": "no, Bearer ***",
        "type": "AuthFailed",
    }
    assert (await toy.command("free"))["result"] == "ok"
    assert (await toy.reply(waiting))["result"] == "freed"

    assert (await toy.command("crash"))["ok"] is True
    assert (await toy.event("sdk.unhandled_rejection"))["data"]["message"] == "nobody catches me"
    assert (await toy.event("sdk.uncaught_exception"))["data"]["message"] == "boom in a timer"
    await toy.command("emit")  # the driver is still running
    assert (await toy.event("sdk.newWsc"))["data"] == {"token": "***", "sequence": 2}

    unknown = await toy.command("fly")
    assert unknown["ok"] is False and unknown["type"] == "UnknownCommand"
    typo = await toy.command("typo")
    assert typo["ok"] is False and typo["type"] == "TypeError"
    pending = toy.send("wait")
    bye = toy.send("quit")
    interrupted = await toy.reply(pending)
    assert interrupted["ok"] is False and interrupted["type"] == "Interrupted"
    assert (await toy.reply(bye))["ok"] is True
    assert await asyncio.wait_for(toy.proc.wait(), 10) == 0
    assert toy.noise == []  # console.log did not reach stdout
    await toy.stop()
    assert any("console.log goes to stderr" in line for line in toy.stderr)


async def test_end_of_stdin_quits(toy):
    await toy.start()
    toy.proc.stdin.close()
    assert await asyncio.wait_for(toy.proc.wait(), 10) == 0


async def test_timescale_and_seed_arguments(tmp_path):
    script = tmp_path / "toy.js"
    script.write_text(TOY % {"common": json.dumps(str(DRIVERS / "common" / "driver.js"))})
    proc = NodeDriver(script, timescale=1, args=("--timescale", "0.05", "--seed", "7"))
    try:
        ready = await proc.start()
        assert ready["data"]["timescale"] == 0.05 and ready["data"]["seed"] == 7
    finally:
        assert await proc.stop() == 0
