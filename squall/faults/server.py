"""ProxyServer: the HTTP API plus every proxy, on an event loop of your choice.

Two ways to run it, because Toxiproxy clients are mostly synchronous:

- ``async with ProxyServer(port=0) as srv`` / ``await srv.start()`` runs it on
  the current loop, for asyncio code that drives it with an async HTTP client
  or through :attr:`ProxyServer.collection` directly;
- ``with ProxyServer.in_thread(port=0) as srv`` runs it on its own loop in a
  daemon thread, so a blocking client (toxiproxy-python, ``requests``) called
  from a test cannot deadlock the loop that serves it.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aiohttp import web

from ..clock import Clock, LoopClock
from .api import make_app
from .collection import ProxyCollection
from .errors import ApiError, FaultError
from .events import EventLog, EventSink, FaultEvent


class ProxyServer:
    """A Toxiproxy-compatible server (default ``127.0.0.1:8474``; ``port=0`` picks a free one).

    ``seed`` seeds every random choice (toxicity, jitter, slicer, loss) so a
    run replays; without one a random seed is drawn and kept in :attr:`seed`.
    ``clock`` scales every toxic duration (a ``LoopClock(timescale=0.01)``
    makes a 1000 ms latency take 10 ms). ``on_event`` is called with every
    :class:`FaultEvent`, on the server's loop; :attr:`events` keeps them too.
    ``config`` is a populate list (or a path to one) applied at start, like
    Toxiproxy's ``-config``. ``fast_path=False`` keeps every byte in Python even where
    no toxic acts (the kernel ``splice`` path is on by default where Linux has it;
    ``SQUALL_PROXY_FAST_PATH=0`` turns it off too).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8474,
        *,
        seed: int | None = None,
        clock: Clock | None = None,
        on_event: EventSink | None = None,
        config: list[dict[str, Any]] | str | Path | None = None,
        fast_path: bool | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.seed = seed if seed is not None else int.from_bytes(os.urandom(4), "big")
        self.clock: Clock = clock or LoopClock()
        self.log = EventLog(on_event)
        self.collection = ProxyCollection(self.clock, self.log, self.seed, fast_path=fast_path)
        self.config = config
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def events(self) -> list[FaultEvent]:
        return list(self.log.events)

    async def start(self) -> ProxyServer:
        """Serve the API on the current loop; populate from ``config`` first."""
        if self.config is not None:
            await self.populate(self.config)
        runner = web.AppRunner(make_app(self.collection), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            await self.collection.clear()
            raise FaultError(f"cannot serve the API on {self.host}:{self.port}: {exc}") from exc
        self._runner = runner
        server = site._server  # aiohttp keeps the bound socket here
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Close every proxy and its connections, then the API."""
        await self.collection.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def populate(self, config: list[dict[str, Any]] | str | Path) -> None:
        if not isinstance(config, list):
            config = json.loads(Path(config).read_text())
        _, err = await self.collection.populate(config)
        if err is not None:
            raise err

    async def __aenter__(self) -> ProxyServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @classmethod
    @contextmanager
    def in_thread(
        cls,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
        **kwargs: Any,
    ) -> Iterator[ThreadedServer]:
        """Run a server on its own loop in a thread for the ``with`` block.

        ``loop_factory`` makes that loop (default asyncio's; ``uvloop.new_event_loop`` is
        what ``squall proxy`` runs on where uvloop is installed).
        """
        threaded = ThreadedServer(cls(host, port, **kwargs), loop_factory)
        threaded.start()
        try:
            yield threaded
        finally:
            threaded.stop()


class ThreadedServer:
    """A :class:`ProxyServer` on a private loop in a daemon thread; ``call`` runs coroutines."""

    def __init__(
        self,
        server: ProxyServer,
        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    ) -> None:
        self.server = server
        self.loop = (loop_factory or asyncio.new_event_loop)()
        self._thread = threading.Thread(target=self._run, name="squall-fault-proxy", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.server.start())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            self.loop.close()
            return
        self._ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self.call(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=30)

    def call(self, coro: Any, timeout: float = 60) -> Any:
        """Run ``coro`` on the server's loop and return its result (from another thread)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def seed(self) -> int:
        return self.server.seed

    @property
    def events(self) -> list[FaultEvent]:
        return self.server.events


__all__ = ["ApiError", "ProxyServer", "ThreadedServer"]
