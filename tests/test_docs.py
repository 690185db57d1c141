"""The docs' examples are real programs: each block that names an example file is that file,
and every example runs to completion."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from squall.protocol import ProtocolError, decode_client, decode_server
from squall.protocol.messages import CLIENT_TYPES, SERVER_TYPES

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"```python\n# (examples/\S+\.py)[^\n]*\n(.*?)```", re.S)
# examples/client_usage.py is run, with its output checked, by tests/client/test_examples.py.
RUN_HERE = sorted(p for p in (ROOT / "examples").glob("*.py") if p.name != "client_usage.py")


def doc_blocks() -> list[tuple[str, str, str]]:
    found = []
    for doc in sorted((ROOT / "docs").glob("*.md")):
        for match in BLOCK.finditer(doc.read_text(encoding="utf-8")):
            found.append((doc.name, match.group(1), match.group(2)))
    return found


@pytest.mark.parametrize(("doc", "path", "code"), doc_blocks(), ids=lambda v: str(v)[:40])
def test_doc_block_is_the_example_file(doc: str, path: str, code: str) -> None:
    assert (ROOT / path).read_text(encoding="utf-8") == code, f"{doc} shows an outdated {path}"


@pytest.mark.parametrize("example", RUN_HERE, ids=lambda p: p.name)
def test_example_runs(example: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(example)], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip(), "an example prints what it showed"


def protocol_examples() -> list[str]:
    """Every JSON object in docs/protocol.md's json blocks, but those cut short with "..."."""
    text = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    decoder = json.JSONDecoder()
    found = []
    for block in re.findall(r"```json\n(.*?)```", text, re.S):
        pos = 0
        while (start := block.find("{", pos)) != -1:
            obj, pos = decoder.raw_decode(block, start)
            if "..." not in obj:  # {"...": "..."} marks an example cut short
                found.append(json.dumps(obj))
    return found


@pytest.mark.parametrize("example", protocol_examples(), ids=lambda s: json.loads(s)["type"])
def test_protocol_doc_examples_are_valid_frames(example: str) -> None:
    """Each example is a frame one side may send: the codec of the other side accepts it."""
    errors = []
    for decode in (decode_client, decode_server):
        try:
            decode(example)
            return
        except ProtocolError as exc:
            errors.append(str(exc))
    pytest.fail(f"{example}: {errors}")


def test_protocol_doc_shows_every_message_type() -> None:
    shown = {json.loads(e)["type"] for e in protocol_examples()}
    assert (CLIENT_TYPES | SERVER_TYPES) - shown == set()
