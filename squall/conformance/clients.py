"""The client under test, as a subprocess speaking the driver protocol (docs/driver.md).

The runner reaches every client, the reference one included, only through
this: JSON-line commands on the process's stdin, events and replies on its
stdout. A :class:`ClientSpec` string says which program:

- a name from :data:`PROFILES`: ``reference`` (``python -m squall.client.driver``),
  ``reference-mixer`` / ``reference-ringcentral`` / ``reference-rtccafe`` /
  ``reference-genesys`` (the same client on another dialect), ``mixer-sdk`` /
  ``ringcentral-sdk`` (the real npm SDKs through the node drivers in ``drivers/``); each
  names the dialect its server must speak;
- a name with extra flags: ``reference --no-resubscribe`` (the broken variants);
- anything else: a command line, with ``{timescale}`` and ``{seed}`` substituted
  (both are also in the environment as ``SQUALL_TIMESCALE`` / ``SQUALL_SEED``),
  speaking the reference protocol unless a dialect is given.

I/O runs on two daemon threads per process (``Popen``, not asyncio
subprocesses), and lines are handed to the event loop with
``call_soon_threadsafe``: that keeps one process independent of any one loop.

:func:`preflight` starts a client's driver once before a run: a driver that
cannot start (a mistyped ``--client``, ``Cannot find module ...``) is reported
once, with its whole stderr, instead of as every scenario failing at setup.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import difflib
import itertools
import json
import os
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from squall.secrets import KEYS_ONLY, Secrets

REFERENCE = "reference"

#: The repository's node drivers (drivers/*/driver.js), each run with the time-compression
#: preload so the SDK's own timers follow the scenario's timescale (drivers/README.md).
DRIVERS_DIR = Path(__file__).resolve().parents[2] / "drivers"


@dataclass(frozen=True)
class Profile:
    """A client under test: how to start it, and the dialect its server must speak."""

    name: str
    dialect: str
    argv: tuple[str, ...]  # {timescale} and {seed} substituted; "{python}" is this interpreter
    about: str = ""
    needs_install: Path | None = None  # node_modules that ``npm ci`` must have created
    #: The fastest compression the client's own timers keep up with: a scenario's timescale
    #: below it runs at it instead (an explicit ``--timescale`` still wins).
    min_timescale: float | None = None


def _node(folder: str) -> tuple[str, ...]:
    return (
        "node",
        "-r",
        str(DRIVERS_DIR / "common" / "timescale.js"),
        str(DRIVERS_DIR / folder / "driver.js"),
        "--timescale",
        "{timescale}",
        "--seed",
        "{seed}",
    )


_PY = ("{python}", "-m", "squall.client.driver", "--timescale", "{timescale}", "--seed", "{seed}")

#: Named clients: the reference client on every dialect, and the real SDKs from npm.
PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("reference", "reference", _PY, "squall's reference client"),
        Profile(
            "reference-mixer",
            "mixer",
            (*_PY, "--dialect", "mixer"),
            "the reference client speaking Mixer's chat protocol",
        ),
        Profile(
            "reference-ringcentral",
            "ringcentral",
            (*_PY, "--dialect", "ringcentral"),
            "the reference client speaking RingCentral's WebSocket protocol",
        ),
        Profile(
            "reference-rtccafe",
            "rtccafe",
            (*_PY, "--dialect", "rtccafe"),
            "the reference client speaking RTCCafe's Socket.IO signalling (Engine.IO 4, WebSocket)",
        ),
        Profile(
            "reference-genesys",
            "genesys",
            (*_PY, "--dialect", "genesys"),
            "the reference client speaking Genesys Cloud streaming (XMPP over WebSocket)",
        ),
        Profile(
            "mixer-sdk",
            "mixer",
            _node("mixer-sdk"),
            "@mixer/client-node 3.5.0, unchanged, in node",
            DRIVERS_DIR / "mixer-sdk" / "node_modules",
        ),
        Profile(
            "ringcentral-sdk",
            "ringcentral",
            _node("ringcentral-sdk"),
            "@rc-ex/ws 1.4.2 with @rc-ex/core, unchanged, in node",
            DRIVERS_DIR / "ringcentral-sdk" / "node_modules",
        ),
        Profile(
            "genesys-sdk-14",
            "genesys",
            (*_node("genesys-sdk"), "--sdk", "14"),
            "genesys-cloud-streaming-client 14.2.1 (requestReconnect drain), unchanged, in node",
            DRIVERS_DIR / "genesys-sdk" / "node_modules",
        ),
        Profile(
            "genesys-sdk-19",
            "genesys",
            (*_node("genesys-sdk"), "--sdk", "19"),
            "genesys-cloud-streaming-client 19.4.1, unchanged, in node",
            DRIVERS_DIR / "genesys-sdk" / "node_modules",
        ),
        Profile(
            "reliable-signaler-sdk",
            "reliable-signaler",
            _node("reliable-signaler-sdk"),
            "reliable-signaler 1.0.2's signaler.js on socket.io-client 2.5.0, unchanged, in node",
            DRIVERS_DIR / "reliable-signaler-sdk" / "node_modules",
            # socket.io-client 2 waits pingTimeout (20 s) for a pong and 20 s for a connect:
            # 0.2 real s at 0.01, missed on a loaded machine (docs/dialects/reliable-signaler.md)
            min_timescale=0.05,
        ),
        Profile(
            "libwebrtc-peer",
            "reference",
            _node("libwebrtc-peer"),
            "a reference-protocol room member whose WebRTC is libwebrtc (@roamhq/wrtc 0.10.0)",
            DRIVERS_DIR / "libwebrtc-peer" / "node_modules",
        ),
    )
}

Sink = Callable[[dict[str, Any]], None]

HEAD_LINES = 20  # stderr lines kept from the start, besides the last 40

#: What ``--client all`` (and a plain ``pytest``) runs: every named client.
ALL = "all"


def profile(spec: str, *, dialect: str | None = None) -> Profile:
    """The profile of a client spec: a name (with extra flags), or any command line.

    ``reference --no-resubscribe`` is the reference profile with a flag added; an
    unknown first word is a command line of the user's own, which speaks ``dialect``
    (the reference protocol unless told otherwise).
    """
    words = shlex.split(spec.strip() or REFERENCE)
    known = PROFILES.get(words[0])
    if known is not None:
        if dialect is not None and dialect != known.dialect:
            raise ValueError(f"client {known.name} speaks {known.dialect}, not {dialect}")
        return Profile(
            " ".join(words),
            known.dialect,
            (*known.argv, *words[1:]),
            known.about,
            known.needs_install,
            known.min_timescale,
        )
    return Profile(" ".join(words), dialect or REFERENCE, tuple(words), "a driver command")


def expand(specs: list[str] | None) -> list[str]:
    """``--client`` values -> client specs; none given (or ``all``) means every named client."""
    if not specs:
        return list(PROFILES)
    out: list[str] = []
    for spec in specs:
        out.extend(PROFILES if spec.strip() == ALL else [spec])
    return list(dict.fromkeys(out))


def command_line(
    spec: str, *, timescale: float, seed: int, dialect: str | None = None
) -> list[str]:
    """The argv for a client spec (see :func:`profile`)."""
    prof = profile(spec, dialect=dialect)
    if prof.needs_install is not None and not prof.needs_install.is_dir():
        raise DriverError(
            f"client {prof.name} is not installed: {prof.needs_install} is missing "
            "(run `bash ci/bootstrap.sh --setup`, which runs `npm ci` in drivers/)"
        )
    return [
        w.replace("{timescale}", repr(timescale))
        .replace("{seed}", str(seed))
        .replace("{python}", sys.executable)
        for w in prof.argv
    ]


def client_label(spec: str) -> str:
    """A short name for reports: ``reference``, ``reference --no-resubscribe``, ``node drv.js``."""
    return " ".join(shlex.split(spec.strip() or REFERENCE))


class DriverError(Exception):
    """The client process cannot be driven: it did not start, exited, or broke the protocol."""


class DriverStartError(DriverError):
    """The driver did not get as far as ``driver_ready``: nothing of the client was judged.

    ``str()`` is the whole report: the command, why, and every line of its stderr.
    """

    def __init__(self, client: str, why: str, stderr: str = "") -> None:
        self.client = client
        self.why = why
        self.stderr = stderr
        text = f"the driver of client {client!r} did not start: {why}"
        if stderr:
            text += "\n  its stderr:\n" + "\n".join(f"    {x}" for x in stderr.splitlines())
        super().__init__(text)


def unknown_client(spec: str) -> str | None:
    """Why ``spec`` names no client: not a named one, and its program is nowhere to be found
    (``refrence`` -> did you mean ``reference``?). None when it can be started."""
    words = shlex.split(spec.strip() or REFERENCE)
    program = words[0]
    if program in PROFILES or shutil.which(program) is not None or Path(program).is_file():
        return None
    close = difflib.get_close_matches(program, [*PROFILES, ALL], n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return (
        f"unknown client {program!r}: {hint}a client is a name ({', '.join(PROFILES)}, "
        f"or {ALL}) or a driver command line, and {program!r} is not a program on PATH"
    )


async def preflight(spec: str, *, timescale: float = 0.01, seed: int = 0) -> str | None:
    """Start the driver of ``spec`` once and stop it: None when it said ``driver_ready``,
    else the report of why it did not (:class:`DriverStartError`'s text)."""
    why = unknown_client(spec)
    if why is not None:
        return str(DriverStartError(client_label(spec), why))
    try:
        argv = command_line(spec, timescale=timescale, seed=seed)
        driver = DriverProcess(argv, lambda _obj: None, env={"SQUALL_TIMESCALE": repr(timescale)})
        await driver.start()
    except DriverStartError as exc:
        return str(DriverStartError(client_label(spec), exc.why, exc.stderr))
    except DriverError as exc:
        return str(DriverStartError(client_label(spec), str(exc)))
    await driver.stop()
    return None


async def preflight_all(specs: list[str], **kw: Any) -> dict[str, str]:
    """:func:`preflight` for every spec at once: spec -> report, for those that did not start."""
    reports = await asyncio.gather(*(preflight(s, **kw) for s in specs))
    return {s: r for s, r in zip(specs, reports, strict=True) if r is not None}


class DriverProcess:
    """One client under test. ``sink`` receives every event and reply (on the loop).

    ``secrets`` scrubs the process's stderr wherever it is quoted (:meth:`stderr_tail`).
    """

    def __init__(
        self,
        argv: list[str],
        sink: Sink,
        *,
        env: dict[str, str] | None = None,
        secrets: Secrets | None = None,
    ) -> None:
        self.argv = argv
        self.sink = sink
        self.env = env or {}
        self.secrets = secrets if secrets is not None else KEYS_ONLY
        self.proc: subprocess.Popen[str] | None = None
        self.commands: list[str] = []
        self.behaviours: list[str] = []
        self.stderr: collections.deque[str] = collections.deque(maxlen=40)
        self.stderr_head: list[str] = []  # the first lines, where node puts the key one
        self.stderr_lines = 0
        self._stderr_thread: threading.Thread | None = None
        self.exited: asyncio.Future[int] | None = None
        self._ready: asyncio.Future[list[str]] | None = None
        self._replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._write_lock = threading.Lock()
        self.noise: list[str] = []

    async def start(self, timeout: float = 20.0) -> list[str]:
        """Spawn and wait for ``driver_ready``; returns the commands the client implements."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._ready = loop.create_future()
        self.exited = loop.create_future()
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        try:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                encoding="utf-8",
                bufsize=1,
                env=env,
            )
        except OSError as exc:
            raise DriverStartError(shlex.join(self.argv), f"cannot run it: {exc}") from exc
        threading.Thread(target=self._pump_stdout, daemon=True, name="driver-out").start()
        self._stderr_thread = threading.Thread(
            target=self._pump_stderr, daemon=True, name="driver-err"
        )
        self._stderr_thread.start()
        either: set[asyncio.Future[Any]] = {self._ready, self.exited}  # two result types
        await asyncio.wait(either, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if self._ready.done():
            self.commands = self._ready.result()
            return self.commands
        await self.stop()
        if self.exited.done():
            why = f"{shlex.join(self.argv)} exited ({self.exited.result()}) before driver_ready"
        else:
            why = f"{shlex.join(self.argv)} sent no driver_ready within {timeout:g}s"
        # stop() reaped the process: its stderr is at its end, and the reader finishes it
        await asyncio.get_running_loop().run_in_executor(None, self._stderr_thread.join, 2.0)
        raise DriverStartError(shlex.join(self.argv), why, self.stderr_text())

    def stderr_text(self) -> str:
        """All of the process's stderr kept (the first and the last lines), scrubbed."""
        tail = list(self.stderr)
        before = self.stderr_lines - len(tail)  # lines that fell out of the tail
        head = self.stderr_head[: min(before, HEAD_LINES)]
        if before > len(head):
            head.append(f"... ({before - len(head)} more lines)")
        return self.secrets.scrub_text("\n".join([*head, *tail]))

    def stderr_tail(self, lines: int = 8) -> str:
        tail = list(self.stderr)[-lines:]
        return self.secrets.scrub_text(" | ".join(tail)) if tail else "(no stderr)"

    def _pump_stdout(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None and self._loop is not None
        for line in self.proc.stdout:
            self._call(self._deliver, line)
        code = self.proc.wait()
        self._call(self._exit, code)

    def _pump_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr_lines += 1
            if len(self.stderr_head) < HEAD_LINES:
                self.stderr_head.append(line.rstrip())
            self.stderr.append(line.rstrip())

    def _call(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            # the loop may close between the check and the call
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(fn, *args)

    def _exit(self, code: int) -> None:
        if self.exited is not None and not self.exited.done():
            self.exited.set_result(code)
        for fut in self._replies.values():
            if not fut.done():
                fut.set_exception(DriverError(f"client exited ({code}): {self.stderr_tail()}"))
        self._replies.clear()

    def _deliver(self, line: str) -> None:
        try:
            obj = json.loads(line)
        except ValueError:
            if line.strip():
                self.noise.append(line.rstrip())
            return
        if not isinstance(obj, dict):
            self.noise.append(line.rstrip())
            return
        if obj.get("event") == "driver_ready" and self._ready is not None:
            if not self._ready.done():
                data = obj.get("data") or {}
                # behaviours no command shows (docs/driver.md): what `requires:` may name too
                self.behaviours = [str(b) for b in data.get("behaviours") or []]
                self._ready.set_result(list(data.get("commands") or []))
            return
        if "reply" in obj:
            fut = self._replies.pop(obj["reply"], None) if obj["reply"] is not None else None
            if fut is not None and not fut.done():
                fut.set_result(obj)
        self.sink(obj)

    def send(self, cmd: str, args: dict[str, Any] | None = None) -> tuple[int, asyncio.Future[Any]]:
        """Write one command; returns its id and the future of its reply line."""
        if self.proc is None or self.proc.stdin is None or self._loop is None:
            raise DriverError("client not started")
        if self.exited is not None and self.exited.done():
            raise DriverError(f"client has exited ({self.exited.result()}): {self.stderr_tail()}")
        ref = next(self._ids)
        fut: asyncio.Future[Any] = self._loop.create_future()
        self._replies[ref] = fut
        line = json.dumps({"id": ref, "cmd": cmd, "args": args or {}}, default=str)
        try:
            with self._write_lock:
                self.proc.stdin.write(line + "\n")
                self.proc.stdin.flush()
        except (OSError, ValueError) as exc:
            self._replies.pop(ref, None)
            raise DriverError(f"cannot write to client: {exc}; {self.stderr_tail()}") from exc
        return ref, fut

    async def stop(self, timeout: float = 5.0) -> int | None:
        """``quit``, close stdin, wait; kill if it lingers. Always leaves no process behind."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            try:
                with self._write_lock:
                    assert proc.stdin is not None
                    proc.stdin.write(json.dumps({"id": 0, "cmd": "quit"}) + "\n")
                    proc.stdin.flush()
                    proc.stdin.close()
            except (OSError, ValueError):
                pass
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(loop.run_in_executor(None, proc.wait), timeout)
        except TimeoutError:
            proc.kill()
            return await loop.run_in_executor(None, proc.wait)
