"""Secrets, by construction: one registry masks every credential in every artifact and output.

Unit tests of squall.secrets first, then the places it is wired in: the simulator's
transcript, the reference driver, the conformance run and its reports, ``squall run``
as a subprocess, the whole scenario set, and ``squall serve``.

The recovery tokens the simulator issues are collected independently of the registry
under test: ``SimulatorCore._new_session`` is wrapped (in-process with monkeypatch, in a
subprocess by the small launcher below) and every token it hands out is grepped for.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import html
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from squall.clock import LoopClock
from squall.conformance import report
from squall.conformance.loader import Loaded, load_all
from squall.conformance.run import run_many, scrubbed_logging
from squall.conformance.runner import Run
from squall.conformance.verdicts import Result, Verdict
from squall.secrets import KEYS_ONLY, MIN_LENGTH, REDACTED, Secrets, redact, redact_text
from squall.simulator import AuthPolicy, Simulator
from squall.simulator import transcript as transcript_module
from squall.simulator.auth import DEFAULT_JWT_SECRET, make_guest_jwt
from squall.simulator.core import SimulatorCore
from squall.simulator.transcript import Transcript

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"
SECRET = "SECRET-1"


# --- helpers ---------------------------------------------------------------------------------


def leaks(text: str, secrets: set[str]) -> list[str]:
    return sorted(s for s in secrets if s in text)


def tree_text(directory: Path) -> dict[str, str]:
    """Every file written under ``directory``: path -> text."""
    return {
        str(p.relative_to(directory)): p.read_text(encoding="utf-8", errors="replace")
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def assert_clean(texts: dict[str, str], secrets: set[str]) -> None:
    assert secrets, "nothing to look for"
    found = {name: leaks(text, secrets) for name, text in texts.items()}
    assert {name: hit for name, hit in found.items() if hit} == {}


@pytest.fixture
def issued(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every recovery token the simulator hands out in this test (independent of Secrets)."""
    tokens: list[str] = []
    original = SimulatorCore._new_session

    def new_session(self: SimulatorCore, principal: Any, dialect: str) -> Any:
        session = original(self, principal, dialect)
        tokens.append(session.recovery_token)
        return session

    monkeypatch.setattr(SimulatorCore, "_new_session", new_session)
    return tokens


# --- the registry ----------------------------------------------------------------------------


def test_scrub_at_any_depth_keys_values_lists_and_nested_json() -> None:
    s = Secrets([SECRET])
    inner = json.dumps({"frame": json.dumps({"type": "auth", "token": SECRET})})
    value = {
        SECRET: [f"x {SECRET} y", (SECRET, 1), {"text": inner}],
        "n": 3,
        "ok": True,
        "none": None,
        "user": "alice",
    }
    out = s.scrub(value)
    assert SECRET not in json.dumps(out)
    assert out[REDACTED][0] == f"x {REDACTED} y"
    assert out[REDACTED][1] == (REDACTED, 1)
    assert out["n"] == 3 and out["ok"] is True and out["none"] is None and out["user"] == "alice"
    assert value[SECRET][0] == f"x {SECRET} y"  # a copy: the original is untouched


def test_keys_masked_alike_are_both_kept() -> None:
    out = Secrets(["first-secret", "other-secret"]).scrub({"first-secret": 1, "other-secret": 2})
    assert sorted(out.values()) == [1, 2]
    assert all(k.startswith(REDACTED) for k in out)


def test_urls_query_values_by_key_and_by_value() -> None:
    s = Secrets(["s3cr&t/+="])
    url = "ws://127.0.0.1:1/ws?access_token=WSAT-abcdef&wsc=WSC-123456&x=1&token=t0k3n"
    assert s.scrub_text(url) == "ws://127.0.0.1:1/ws?access_token=***&wsc=***&x=1&token=***"
    # learned by key: the same values elsewhere are masked too
    assert s.scrub_text("later WSAT-abcdef and t0k3n") == "later *** and ***"
    for shown in (urllib.parse.quote("s3cr&t/+=", safe=""), urllib.parse.quote_plus("s3cr&t/+=")):
        assert s.scrub_text(f"ws://h/?p={shown}&q=1") == "ws://h/?p=***&q=1"


def test_json_escaped_and_html_escaped_forms() -> None:
    odd = 'pa"ss\\wörd<&>'
    s = Secrets([odd])
    for text in (
        json.dumps({"x": odd}),
        json.dumps({"x": odd}, ensure_ascii=False),
        json.dumps(json.dumps({"x": odd})),  # JSON text inside JSON text
        f"<p>{html.escape(odd)}</p>",
    ):
        clean = s.scrub_text(text)
        assert clean.count(REDACTED) == 1 and "ss" not in clean, (text, clean)


@pytest.mark.parametrize("prefix", [b"", b"x", b"xy", b"\0user\0authKey:"])
@pytest.mark.parametrize("encode", [base64.b64encode, base64.urlsafe_b64encode])
def test_base64_at_any_alignment_masks_the_whole_payload(prefix: bytes, encode: Any) -> None:
    """A SASL PLAIN ``\\0user\\0authKey:SECRET`` payload, or any base64 carrying a secret."""
    s = Secrets([SECRET])
    payload = encode(prefix + SECRET.encode() + b"-and-more").decode()
    assert s.scrub_text(f'["auth", "{payload}"]') == f'["auth", "{REDACTED}"]'
    assert s.scrub_text(f"AUTHENTICATE {payload.rstrip('=')}") == f"AUTHENTICATE {REDACTED}"


def test_sasl_plain_registered_whole() -> None:
    s = Secrets()
    s.add_sasl_plain("user", "authKey:pw-42")
    payload = base64.b64encode(b"\0user\0authKey:pw-42").decode()
    assert s.scrub_text(f"AUTH PLAIN {payload}") == f"AUTH PLAIN {REDACTED}"
    assert s.scrub_text("password authKey:pw-42") == f"password {REDACTED}"


def test_short_empty_and_missing_values_are_not_secrets() -> None:
    s = Secrets(["", None, "ab", "abc"])
    assert len(s) == 0
    text = "abc ab a ca cab {}"
    assert s.scrub_text(text) is text
    assert len("abcd") == MIN_LENGTH
    s.add("abcd")
    assert s.scrub_text("xabcdx") == f"x{REDACTED}x"
    assert s.scrub_text(base64.b64encode(b"abcd").decode()) == REDACTED  # whole: specific enough
    # but the fragments a short secret decides inside a longer payload are too likely by chance
    longer = base64.b64encode(b"abcdefgh").decode()
    assert s.scrub_text(longer) is longer


def test_public_names_are_never_secrets() -> None:
    """Without a token map the simulator's user *is* the token: masking it would mask the user."""
    s = Secrets(["alice", "alic", "bob-secret"], public=["alice"])
    assert s.values == {"bob-secret"}  # 'alic' is part of a public name
    s.add("alice")
    assert "alice" not in s
    s.public("bob-secret")  # public wins, whichever comes first
    assert len(s) == 0
    assert s.scrub({"user": "alice", "text": "alice bob-secret"}) == {
        "user": "alice",
        "text": "alice bob-secret",
    }
    # key-based masking still hides a public token where it is presented as a credential
    assert s.scrub({"token": "alice"}) == {"token": REDACTED}


def test_learning_from_keys_masks_earlier_parts_too() -> None:
    s = Secrets()
    out = s.scrub({"url": "ws://h/ learned-value", "auth": {"recovery_token": "learned-value"}})
    assert out == {"url": f"ws://h/ {REDACTED}", "auth": {"recovery_token": REDACTED}}
    text = '{"a": "seen-first-xyz", "jwt": "seen-first-xyz"}'
    assert Secrets().scrub_text(text) == '{"a": "***", "jwt": "***"}'
    assert s.scrub_text("Authorization: Bearer abcdefgh12") == "Authorization: Bearer ***"
    assert s.scrub_text("then abcdefgh12") == "then ***"


def test_parent_receives_every_secret() -> None:
    parent = Secrets()
    child = Secrets(["child-secret"], public=["alice"], parent=parent)
    child.add("alice", "other-secret")
    child.scrub({"token": "learned-secret"})
    assert parent.values == {"child-secret", "other-secret", "learned-secret"}


def test_keys_only_is_stateless() -> None:
    with pytest.raises(TypeError):
        KEYS_ONLY.add("x-secret")
    assert KEYS_ONLY.scrub_text('{"token": "abcdef"} abcdef') == '{"token": "***"} abcdef'
    assert len(KEYS_ONLY) == 0
    assert redact({"Authorization": "Bearer x", "list": [{"jwt": {"k": 1}}], "t": None}) == {
        "Authorization": REDACTED,
        "list": [{"jwt": REDACTED}],
        "t": None,
    }
    assert redact_text('{"type":"auth","token": "x", "extra": 1') == (
        '{"type":"auth","token": "***", "extra": 1'
    )


def test_transcript_module_keeps_its_names() -> None:
    """One implementation: transcript.py's names are squall.secrets' own."""
    import squall.secrets as secrets_module

    for name in ("REDACTED", "SECRET_KEYS", "redact", "redact_text", "redact_url"):
        assert getattr(transcript_module, name) is getattr(secrets_module, name)
    assert transcript_module.redact_url("/?token=abc&x=1") == "/?token=***&x=1"


def test_nothing_known_is_cheap_and_untouched() -> None:
    s = Secrets()
    text = '{"type":"notification","topic":"news","seq":1,"payload":{"text":"hello"}}'
    assert s.scrub_text(text) is text
    start = time.perf_counter()
    for _ in range(20_000):
        s.scrub_text(text)
    assert time.perf_counter() - start < 2.0  # ~1 µs each; generous for a shared machine
    many = Secrets(f"recovery-token-{i:06d}" for i in range(600))  # past one bucket
    assert many.scrub_text("x recovery-token-000007 y recovery-token-000599") == "x *** y ***"


def test_log_filter_scrubs_messages_and_tracebacks() -> None:
    s = Secrets([SECRET])
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Keep()
    handler.addFilter(s.log_filter())
    log = logging.getLogger("squall.test_secrets")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("token %s in %r", SECRET, {"token": "k3y-value"})
        try:
            raise ValueError(f"bad {SECRET}")
        except ValueError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
        log.propagate = True
    assert lines and not leaks("\n".join(lines), {SECRET, "k3y-value"})
    assert "ValueError: bad ***" in lines[1]


# --- the simulator's transcript --------------------------------------------------------------


def test_transcript_scrubs_on_record_and_again_on_read() -> None:
    s = Secrets()
    t = Transcript(lambda: 0.0, secrets=s)
    t.record("open", path="/?recovery_token=abcdef123456")  # masked by key and learned
    t.frame("in", "c1", None, "call", "call", '{"params": "late-secret"}')
    t.record("note", text="early late-secret")
    t.add_secret("late-secret")  # learned after both were kept
    dumped = t.to_jsonl()
    assert "late-secret" not in dumped and "abcdef123456" not in dumped
    assert [r["kind"] for r in t.records] == ["open", "frame", "note"]
    assert Transcript(lambda: 0.0).secrets is None  # opt-in: no cost on the hot path
    plain = Transcript(lambda: 0.0)
    plain.add_secret("ignored-secret")
    plain.frame("in", "c1", None, "x", None, "ignored-secret")
    assert "ignored-secret" in plain.to_jsonl()


async def test_simulator_registers_the_recovery_tokens_it_issues(issued: list[str]) -> None:
    from websockets.asyncio.client import connect

    sim = Simulator(clock=LoopClock(0.01), auth=AuthPolicy(tokens={SECRET: "a"}))
    secrets = Secrets([SECRET], public=["a"])
    sim.core.transcript.secrets = secrets
    await sim.start()
    try:
        async with connect(sim.url) as ws:
            await ws.send(json.dumps({"type": "auth", "token": SECRET}))
            hello = json.loads(await ws.recv())
            await ws.send(
                json.dumps(
                    {
                        "type": "call",
                        "id": 1,
                        "method": "echo",
                        "params": {"echo": hello["recovery_token"]},
                    }
                )
            )
            await asyncio.wait_for(ws.recv(), 5)
    finally:
        await sim.stop()
    assert issued == [hello["recovery_token"]]
    assert issued[0] in secrets
    assert_clean({"transcript": sim.core.transcript.to_jsonl()}, {SECRET, *issued})


# --- the reference driver --------------------------------------------------------------------


async def test_driver_output_is_scrubbed(issued: list[str]) -> None:
    from squall.client.driver import Driver

    sim = Simulator(clock=LoopClock(0.01), auth=AuthPolicy(tokens={"SECRET-9": "bob"}))
    await sim.start()
    lines: list[dict[str, Any]] = []
    driver = Driver(lines.append, timescale=0.01)
    try:
        for ref, cmd, args in (
            (1, "connect", {"url": sim.url, "token": "SECRET-9", "auth_via": "frame"}),
            (2, "reconnect", {}),
            (3, "status", {}),
        ):
            await asyncio.wait_for(
                driver.run_command(json.dumps({"id": ref, "cmd": cmd, "args": args})), 10
            )
    finally:
        await driver.close()
        await sim.stop()
    text = "\n".join(json.dumps(line) for line in lines)
    assert issued and len(lines) > 5
    assert_clean({"driver": text}, {"SECRET-9", *issued})
    assert any(line.get("event") == "sent" for line in lines)
    connected = [line for line in lines if line.get("event") == "connected"]
    assert connected and connected[0]["data"]["user"] == "bob"  # names stay readable


async def test_driver_token_that_is_the_user_name_stays_readable() -> None:
    from squall.client.driver import Driver

    sim = Simulator(clock=LoopClock(0.01))  # no token map: the token is the user name
    await sim.start()
    lines: list[dict[str, Any]] = []
    driver = Driver(lines.append, timescale=0.01)
    try:
        command = {"id": 1, "cmd": "connect", "args": {"url": sim.url, "token": "alice"}}
        await asyncio.wait_for(driver.run_command(json.dumps(command)), 10)
    finally:
        await driver.close()
        await sim.stop()
    reply = next(line for line in lines if line.get("reply") == 1)
    assert reply["ok"] and reply["result"]["user"] == "alice"


# --- the conformance run and its reports ------------------------------------------------------

FRAME = f"""\
id: secrets.frame
title: the token travels in an auth frame
server: {{tokens: {{{SECRET}: a}}}}
clients:
  a: {{token: {SECRET}, user: a, policy: {{auth_via: frame, backoff_initial: 1, jitter: 0}}}}
steps:
  - client.connect: a
  - expect.event: {{client: a, event: connected, data: {{user: a}}}}
  - client.subscribe: {{client: a, topics: [news], wait: true}}
  - server.drop: a
  - server.publish: {{topic: news, payload: 1}}
  - expect.event: {{client: a, event: recovered, within: 8s}}
"""

FAILING = f"""\
id: secrets.failing
title: an expectation that cannot hold, with the token on the wire
server: {{tokens: {{{SECRET}: a}}}}
clients: {{a: {{token: {SECRET}, user: a, policy: {{auth_via: frame}}}}}}
steps:
  - client.connect: a
  - expect.event: {{client: a, event: connected}}
  - client.call: {{client: a, method: echo, params: {{echo: "{SECRET}"}}, wait: true}}
  - expect.event: {{client: a, event: connected, data: {{user: "{SECRET}"}}, within: 1s}}
"""

HEADER = """\
id: secrets.header
title: the token travels in an Authorization header
server: {tokens: {SECRET-3: c}}
clients: {c: {token: SECRET-3, user: c, policy: {auth_via: header}}}
steps:
  - client.connect: c
  - expect.event: {client: c, event: connected, data: {user: c}}
"""


def jwt_scenario(jwt: str) -> str:
    return f"""\
id: secrets.jwt
title: a guest JWT travels in the URL, and the recovery token with it on reconnect
clients:
  g: {{jwt: "{jwt}", user: guest-g, policy: {{auth_via: query, backoff_initial: 1, jitter: 0}}}}
steps:
  - client.connect: g
  - expect.event: {{client: g, event: connected, data: {{user: guest-g}}}}
  - server.drop: g
  - expect.event: {{client: g, event: recovered, within: 8s}}
"""


@pytest.fixture
def scenario_dir(tmp_path: Path) -> tuple[Path, set[str]]:
    """The defect's scenario, a failing one, a header one and a JWT one; and their secrets."""
    jwt = make_guest_jwt("guest-g")
    d = tmp_path / "scenarios"
    d.mkdir()
    for name, text in (
        ("frame", FRAME),
        ("failing", FAILING),
        ("header", HEADER),
        ("jwt", jwt_scenario(jwt)),
    ):
        (d / f"{name}.yaml").write_text(text, encoding="utf-8")
    return d, {SECRET, "SECRET-3", jwt, DEFAULT_JWT_SECRET}


def test_the_scenarios_are_valid(scenario_dir: tuple[Path, set[str]]) -> None:
    loaded, problems = load_all([scenario_dir[0]])
    assert problems == [] and len(loaded) == 4


LAUNCHER = textwrap.dedent(
    """\
    import sys
    from squall.simulator.core import SimulatorCore

    original = SimulatorCore._new_session

    def new_session(self, principal, dialect):
        session = original(self, principal, dialect)
        with open(sys.argv[1], "a", encoding="utf-8") as fh:
            fh.write(session.recovery_token + "\\n")
        return session

    SimulatorCore._new_session = new_session
    from squall.cli import main

    sys.exit(main(sys.argv[2:]))
    """
)


@pytest.mark.timeout(300)
def test_squall_run_writes_no_secret(tmp_path: Path, scenario_dir: tuple[Path, set[str]]) -> None:
    """The defect: ``squall run DIR --json o/index.json --html o/html``, then grep."""
    directory, secrets = scenario_dir
    out = tmp_path / "o"
    issued_file = tmp_path / "issued.txt"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            LAUNCHER,
            str(issued_file),
            "run",
            str(directory),
            "-j",
            "2",
            "--json",
            str(out / "index.json"),
            "--html",
            str(out / "html"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.returncode == 1, proc.stderr  # the failing variant failed, nothing else did
    issued = set(issued_file.read_text(encoding="utf-8").split())
    assert len(issued) >= 4  # a session per client, and no recovery made a new one
    matrix = json.loads((out / "index.json").read_text(encoding="utf-8"))
    verdicts = {sid: r["verdict"] for sid, r in matrix["results"]["reference"].items()}
    assert verdicts == {
        "secrets.failing": "FAILED",
        "secrets.frame": "OK",
        "secrets.header": "OK",
        "secrets.jwt": "OK",
    }, proc.stderr
    assert "secrets.failing" in proc.stderr and "expected:" in proc.stderr
    texts = tree_text(out)
    assert any(name.endswith(".jsonl") for name in texts) and "html/index.html" in texts
    texts |= {"<stdout>": proc.stdout, "<stderr>": proc.stderr}
    assert_clean(texts, secrets | issued)


def _loaded(directory: Path) -> list[Loaded]:
    loaded, problems = load_all([directory])
    assert problems == []
    return loaded


def write_everything(results: list[Result], out: Path, secrets: Secrets | None) -> dict[str, str]:
    """Every report: transcripts, JSON, HTML, failure texts, what Allure would attach."""
    for r in results:
        report.write_transcript(r, out / "transcripts")
    dicts = [r.to_json() for r in results]
    report.write_json(dicts, out / "index.json", secrets=secrets)
    report.write_html(dicts, out / "html", secrets=secrets)
    texts = tree_text(out)
    for r in results:
        texts[f"failure_text:{r.scenario}"] = report.failure_text(r)
        texts[f"allure:{r.scenario}"] = report.transcript_jsonl(r) + report.sequence_svg(r)
        texts[f"steps:{r.scenario}"] = "\n".join(report.step_title(s) for s in r.steps)
        texts[f"json:{r.scenario}"] = json.dumps(r.to_json(transcript=True), default=str)
    return texts


@pytest.mark.timeout(300)
def test_in_process_run_and_every_report(
    tmp_path: Path, scenario_dir: tuple[Path, set[str]], issued: list[str]
) -> None:
    directory, secrets = scenario_dir

    async def main() -> list[Result]:
        return [await Run(item).execute() for item in _loaded(directory)]

    results = asyncio.run(main())
    assert {r.scenario: r.verdict for r in results}["secrets.failing"] is Verdict.FAILED
    assert len(issued) >= 4
    failing = next(r for r in results if r.verdict is Verdict.FAILED)
    assert failing.failure is not None and REDACTED in report.failure_text(failing)
    assert_clean(write_everything(results, tmp_path / "out", None), secrets | set(issued))


FAKE_DRIVER = textwrap.dedent(
    """\
    import json, sys
    print(json.dumps({"event": "driver_ready", "data": {"commands": ["configure", "connect"]}}),
          flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        if command["cmd"] == "configure":
            token = command["args"].get("token")
            print(f"fatal: cannot log in with {token} (Authorization: Bearer {token})",
                  file=sys.stderr, flush=True)
            sys.exit(3)
    """
)


@pytest.mark.timeout(120)
def test_driver_stderr_in_failures_is_scrubbed(tmp_path: Path) -> None:
    """A client under test that prints its token to stderr and dies: the failure quotes it."""
    fake = tmp_path / "fake_driver.py"
    fake.write_text(FAKE_DRIVER, encoding="utf-8")
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "one.yaml").write_text(HEADER, encoding="utf-8")
    [item] = _loaded(tmp_path / "s")
    result = asyncio.run(Run(item, client=f"{sys.executable} {fake}").execute())
    assert result.verdict is Verdict.FAILED and result.failure is not None
    text = report.failure_text(result)
    assert "fatal: cannot log in with ***" in text, text
    assert_clean(write_everything([result], tmp_path / "out", None), {"SECRET-3"})


# --- the whole scenario set -------------------------------------------------------------------


def with_secret_tokens(item: Loaded) -> tuple[Loaded, set[str]]:
    """The scenario with each token-is-the-user client given a real secret token instead."""
    sc = item.scenario
    if sc.server.tokens is not None:
        return item, set(sc.server.tokens) | {c.token for c in sc.clients.values() if c.token}
    tokens: dict[str, str] = {}
    clients = {}
    for name, c in sc.clients.items():
        if c.token is None:
            clients[name] = c
            continue
        secret = f"sq-{name}-{abs(hash(sc.id)) % 10**8:08d}-secret"
        tokens[secret] = c.user or c.token
        clients[name] = c.model_copy(update={"token": secret, "user": c.user or c.token})
    if not tokens:
        return item, set()
    for step in sc.steps:  # fake peers log in with their name as the token: keep them working
        peer = getattr(step.args, "name", None) if step.name.startswith("peer.") else None
        if isinstance(peer, str):
            tokens[peer] = peer
    server = sc.server.model_copy(update={"tokens": tokens})
    scenario = sc.model_copy(update={"clients": clients, "server": server})
    return dataclasses.replace(item, scenario=scenario), set(tokens) - set(tokens.values())


@pytest.mark.timeout(900)
def test_the_whole_scenario_set_writes_no_secret(
    tmp_path: Path, issued: list[str], capfd: pytest.CaptureFixture[str]
) -> None:
    loaded, problems = load_all([SCENARIOS])
    assert problems == [] and loaded
    items, known = [], {DEFAULT_JWT_SECRET}
    for item in loaded:
        if "reference" not in item.scenario.dialects:
            continue  # a scenario of another dialect does not run against the reference client
        rewritten, tokens = with_secret_tokens(item)
        items.append(rewritten)
        known |= tokens
    console = Secrets()
    with scrubbed_logging(console):
        results = asyncio.run(run_many(items, ["reference"], jobs=2, secrets=console))
    assert len(results) == len(items)
    assert len(issued) >= len(items) // 2
    assert known <= console.values  # every run fed the command's registry
    texts = write_everything(results, tmp_path / "out", console)
    captured = capfd.readouterr()
    texts |= {"<stdout>": captured.out, "<stderr>": captured.err}
    assert_clean(texts, known | set(issued))


# --- squall serve -----------------------------------------------------------------------------


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], dict[str, str], Path]]:
    transcript = tmp_path / "serve.jsonl"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "squall.cli",
            "serve",
            "--token",
            "SECRET-2=alice",
            "--transcript",
            str(transcript),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    urls: dict[str, str] = {}
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        while "control" not in urls and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            name, _, url = line.strip().partition(" ")
            urls.setdefault(name, url.strip())
        assert "control" in urls and "websocket" in urls, proc.stderr.read() if proc.stderr else ""
        yield proc, urls, transcript
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@pytest.mark.timeout(120)
async def test_squall_serve_keeps_no_secret(
    serve: tuple[subprocess.Popen[str], dict[str, str], Path],
) -> None:
    from websockets.asyncio.client import connect

    proc, urls, transcript_file = serve
    ws_url = urls["websocket"]
    seen: list[str] = []
    async with connect(ws_url) as ws:
        await ws.send(json.dumps({"type": "auth", "token": "SECRET-2"}))
        hello = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert hello["type"] == "authenticated" and hello["user"] == "alice"
        seen.append(hello["recovery_token"])
    bad_frames = [
        # an extra key: decodes as JSON, fails the auth frame's schema
        {"type": "auth", "token": "SECRET-2", "recovery_token": seen[0], "extra": 1},
        # a wrong type
        {"type": "auth", "token": "SECRET-2", "recovery_token": seen[0], "topics": "news"},
    ]
    for frame in bad_frames:
        async with connect(ws_url) as ws:
            await ws.send(json.dumps(frame))
            with pytest.raises(Exception):  # noqa: B017 - an error frame, then the close
                while True:
                    await asyncio.wait_for(ws.recv(), 10)
    async with connect(ws_url) as ws:  # not even JSON: cut short after the credentials
        await ws.send('{"type": "auth", "token": "SECRET-2", "recovery_token": "' + seen[0])
        with pytest.raises(Exception):  # noqa: B017
            while True:
                await asyncio.wait_for(ws.recv(), 10)
    async with connect(ws_url) as ws:  # a recovery presents the token again
        await ws.send(json.dumps({"type": "auth", "token": "SECRET-2", "recovery_token": seen[0]}))
        again = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert again["type"] == "authenticated"
        seen.append(again["recovery_token"])

    def get(url: str) -> str:
        with urllib.request.urlopen(url, timeout=10) as response:
            return str(response.read().decode("utf-8"))

    live = await asyncio.to_thread(get, urls["control"] + "/transcript")
    records = json.loads(live)
    assert any(r.get("kind") == "frame" and r.get("dir") == "in" for r in _items(records))
    proc.send_signal(signal.SIGINT)
    _, err = await asyncio.to_thread(proc.communicate, timeout=30)
    assert proc.returncode == 0, err
    dumped = transcript_file.read_text(encoding="utf-8")
    assert dumped.count('"kind":"frame"') >= 4
    assert_clean(
        {"/v1/transcript": live, "--transcript": dumped, "<stderr>": err}, {"SECRET-2", *seen}
    )


def _items(body: Any) -> list[dict[str, Any]]:
    """The records of a control API answer (a list, or an object holding one)."""
    if isinstance(body, list):
        return body
    for value in body.values() if isinstance(body, dict) else ():
        if isinstance(value, list):
            return value
    return []


def test_many_secrets_stay_cheap_to_add_and_to_find() -> None:
    """One registry per run learns a recovery token per session: 2,000 of them must not make
    each add rebuild everything, nor each scrub try every secret in turn (the regex
    alternation this replaced took 4 ms a string at 1,000 secrets and 160 ms an add)."""
    import secrets as random_tokens

    reg = Secrets()
    tokens = [random_tokens.token_urlsafe(24) for _ in range(2000)]
    for token in tokens:
        reg.add(token)
        reg.scrub_text("a frame after each new session")
    assert len(reg._all) <= 12  # levels: about log2 of the forms known
    for token in (tokens[0], tokens[999], tokens[-1]):
        payload = base64.b64encode(b"u:" + token.encode()).decode()
        text = f'{{"recovery_token":"x","echo":"{token}","b64":"{payload}"}}'
        scrubbed = reg.scrub_text(text)
        assert token not in scrubbed and payload not in scrubbed, scrubbed
