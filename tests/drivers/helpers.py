"""A node driver of a real SDK as a subprocess speaking the driver protocol (docs/driver.md)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fcntl
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

DRIVERS = Path(__file__).resolve().parents[2] / "drivers"
TIMESCALE_JS = DRIVERS / "common" / "timescale.js"
#: what both SDK drivers announce in driver_ready
COMMANDS = {
    "configure",
    "connect",
    "disconnect",
    "reconnect",
    "subscribe",
    "unsubscribe",
    "call",
    "status",
    "quit",
}


def npm_ci(folder: Path, marker: str) -> Path:
    """Install ``folder``'s locked dependencies (npm ci) unless ``node_modules/<marker>`` exists."""
    import pytest

    from tests import needs

    needs.node()
    # one install at a time, also across pytest-xdist workers
    lock_path = Path(tempfile.gettempdir()) / f"squall-npm-ci-{folder.name}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / "node_modules" / marker).is_dir():
            command = ["npm", "ci", "--no-audit", "--no-fund"]
            result = subprocess.run(
                command, cwd=folder, capture_output=True, text=True, timeout=300, check=False
            )
            if result.returncode != 0:
                pytest.fail(f"{' '.join(command)} failed in {folder}:\n{result.stderr}")
    return folder / "node_modules"


class NodeDriver:
    """``node -r timescale.js <driver.js>``; every line it writes is kept in ``lines``."""

    def __init__(self, script: Path, *, timescale: float, args: tuple[str, ...] = ()) -> None:
        self.argv = ["node", "-r", str(TIMESCALE_JS), str(script), *args]
        self.timescale = timescale
        self.proc: asyncio.subprocess.Process | None = None
        self.lines: list[dict[str, Any]] = []
        self.noise: list[str] = []
        self.stderr: collections.deque[str] = collections.deque(maxlen=50)
        self._changed = asyncio.Condition()
        self._ids = 0
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, timeout: float = 20.0) -> dict[str, Any]:
        env = {**os.environ, "SQUALL_TIMESCALE": repr(self.timescale)}
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        self._tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._read_err())]
        return await self.event("driver_ready", timeout=timeout)

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            try:
                obj = json.loads(line)
            except ValueError:
                self.noise.append(line.decode(errors="replace"))
                continue
            async with self._changed:
                self.lines.append(obj)
                self._changed.notify_all()
        async with self._changed:
            self._changed.notify_all()

    async def _read_err(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        while line := await self.proc.stderr.readline():
            self.stderr.append(line.decode(errors="replace").rstrip())

    def send(self, cmd: str, args: dict[str, Any] | None = None) -> int:
        assert self.proc is not None and self.proc.stdin is not None
        self._ids += 1
        line = json.dumps({"id": self._ids, "cmd": cmd, "args": args or {}})
        self.proc.stdin.write(line.encode() + b"\n")
        return self._ids

    async def _first(self, match: Any, timeout: float, what: str, start: int = 0) -> dict[str, Any]:
        async def find() -> dict[str, Any]:
            async with self._changed:
                while True:
                    for obj in self.lines[start:]:
                        if match(obj):
                            return obj
                    if (
                        self.proc is not None
                        and self.proc.stdout is not None
                        and (self.proc.stdout.at_eof())
                    ):
                        raise AssertionError(f"driver exited before {what}: {self.tail()}")
                    await self._changed.wait()

        try:
            return await asyncio.wait_for(find(), timeout)
        except TimeoutError:
            raise AssertionError(f"no {what} within {timeout}s: {self.tail()}") from None

    async def reply(self, ref: int, timeout: float = 20.0) -> dict[str, Any]:
        return await self._first(lambda o: o.get("reply") == ref, timeout, f"reply {ref}")

    async def command(self, cmd: str, args: dict[str, Any] | None = None, timeout: float = 20.0):
        return await self.reply(self.send(cmd, args), timeout)

    async def event(
        self, name: str, where: Any = None, *, timeout: float = 20.0, start: int = 0
    ) -> dict[str, Any]:
        def match(o: dict[str, Any]) -> bool:
            return o.get("event") == name and (where is None or where(o.get("data") or {}))

        return await self._first(match, timeout, f"event {name}", start)

    def events(self, name: str) -> list[dict[str, Any]]:
        return [o["data"] for o in self.lines if o.get("event") == name]

    def output(self) -> str:
        return "\n".join(json.dumps(o) for o in self.lines) + "\n".join(self.noise)

    def tail(self) -> str:
        last = [json.dumps(o)[:300] for o in self.lines[-12:]]
        return "\n  out: " + "\n  out: ".join(last) + "\n  err: " + " | ".join(self.stderr)

    async def stop(self, timeout: float = 10.0) -> int | None:
        """``quit`` and wait; kill if it lingers. Leaves no process behind."""
        proc = self.proc
        if proc is None:
            return None
        if proc.returncode is None and proc.stdin is not None:
            with contextlib.suppress(OSError, RuntimeError):
                proc.stdin.write(b'{"id": "bye", "cmd": "quit"}\n')
                proc.stdin.close()
        try:
            code = await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            proc.kill()
            code = await proc.wait()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 5)
        return code
