"""The unmodified npm toxiproxy-node-client drives the calls it has, /populate included."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

NODE_DIR = Path(__file__).resolve().parent.parent / "node"


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """Install tests/node's locked dependencies with npm when node_modules is missing."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed for the toxiproxy-node-client tests")
    if not (NODE_DIR / "node_modules" / "toxiproxy-node-client").is_dir():
        command = ["npm", "ci", "--no-audit", "--no-fund"]
        if not (NODE_DIR / "package-lock.json").exists():
            command[1] = "install"
        result = subprocess.run(
            command, cwd=NODE_DIR, capture_output=True, text=True, timeout=300, check=False
        )
        if result.returncode != 0:
            pytest.fail(f"{' '.join(command)} failed in {NODE_DIR}:\n{result.stderr}")
    return NODE_DIR / "node_modules"


def run_node(script: str, *args: str) -> dict:
    result = subprocess.run(
        ["node", script, *args], cwd=NODE_DIR, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_node_client_every_call(node_modules, api_url, echo_server):
    """createProxy, addToxic, Toxic.update, getToxic, get, Proxy.update, getAll, populate,
    Toxic.remove, reset, Proxy.remove and a 404, as the node client sees them."""
    out = run_node("toxiproxy_calls.js", api_url, echo_server.address)
    assert json.loads(out["version"])["version"]
    listen = out["created"]["listen"]
    assert listen.startswith("127.0.0.1:") and not listen.endswith(":0")
    assert out["toxic"] == {
        "attributes": {"latency": 50, "jitter": 5},
        "name": "latency_downstream",
        "stream": "downstream",
        "toxicity": 1,
        "type": "latency",
    }
    assert out["updated"]["attributes"] == {"latency": 75, "jitter": 5}  # merged
    assert out["updated"]["toxicity"] == 0.5
    assert out["fetchedToxic"] == out["updated"]
    assert out["disabled"]["enabled"] is False
    assert out["all"] == ["node"]
    # populate keeps an identical proxy untouched (still disabled) and creates the new one
    assert out["populated"]["node"]["enabled"] is False
    assert out["populated"]["pop2"]["enabled"] is True
    assert out["afterReset"]["enabled"] is True
    assert out["missing"] == "Request failed with status code 404"
    assert out["final"] == []
