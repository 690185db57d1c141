"""One proxy: a listener, its live connections, and the two toxic chains they run.

Theory of operation (Toxiproxy's ``proxy.go`` / ``link.go`` on asyncio):

- Each accepted client gets an upstream dial; failure closes the client.
- A connection has two :class:`Link` s, ``upstream`` (client -> server) and
  ``downstream`` (server -> client). A link is ``[stage, stage, ...] -> out ->
  writer``; with no stages a chunk is written straight to the destination from
  ``data_received``.
- The fast path: a link with no stage, nothing queued and nothing in its
  destination's write buffer hands its direction to a :class:`~.splice.Splicer`
  (kernel ``splice``, no bytes in Python) and pauses its source transport. Adding a
  toxic stops the splicer first and feeds the bytes left in its pipe into the new
  stage, then resumes the transport; removing the last one switches back once the
  pipeline has drained, so no byte is lost, doubled or reordered either way. EOF
  goes back to the transport (it reads the EOF itself, as before); errors are
  handed to the transports as their own read or write errors would have been.
- EOF on a source runs down the chain; the writer then closes the destination
  entirely (Toxiproxy does not keep half-closed connections).
- Back-pressure: a source stops reading while its destination's transport is
  over its high-water mark or its link holds more than ``MAX_QUEUED`` chunks.
- Adding a toxic appends a stage to every live link of that direction;
  updating restarts the stage (same per-link state); removing interrupts it,
  flushes what it held and what was queued for it, and splices it out.
- Changes to one link's chain are serialized by the link's lock: an update
  and a removal of the same stage never interleave their interrupt, flush and
  restart (two interleaved restarts would leave two pipes on one stub). A
  stage's task is bound to the stub it was started with, so a stale pipe can
  never touch a newer stub's held chunks.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import random
import socket
import struct
from typing import TYPE_CHECKING, Any, cast

from .addresses import AddressError, format_hostport, resolve, split_address
from .errors import ApiError
from .events import FaultEvent
from .splice import PipePool, Splicer
from .splice import available as splice_available
from .toxics import Channel, Chunk, Stub, Toxic, passthrough

if TYPE_CHECKING:
    from ..clock import Clock
    from .events import EventLog

DIRECTIONS = ("upstream", "downstream")
UPSTREAM, DOWNSTREAM = 0, 1
MAX_QUEUED = 32
DEFAULT_LISTEN_HOST = "127.0.0.1"  # for a missing or empty listen (Toxiproxy: every interface)


def parse_direction(stream: str) -> int | None:
    try:
        return DIRECTIONS.index(stream.lower())
    except ValueError:
        return None


def _num(value: float) -> float | int:
    """Go prints float32 ``1`` as ``1`` and ``1e38`` as ``1e+38``; keep JSON byte-compatible."""
    return int(value) if float(value).is_integer() and abs(value) < 1e21 else value


@dataclasses.dataclass
class ToxicSpec:
    """A configured toxic (Go's ``ToxicWrapper``)."""

    name: str
    type: str
    stream: str
    toxicity: float
    direction: int
    toxic: Toxic

    def to_json(self) -> dict[str, Any]:
        return {
            "attributes": dict(self.toxic.attributes),
            "name": self.name,
            "type": self.type,
            "stream": self.stream,
            "toxicity": _num(self.toxicity),
        }


class Stage:
    """One toxic running on one link: input channel, output, task, per-link state."""

    def __init__(self, link: Link, spec: ToxicSpec, output: Channel, fresh: bool) -> None:
        self.link = link
        self.spec = spec
        self.input: Channel = Channel(link.on_get, link.loop)
        self.output = output
        self.fresh = fresh
        self.state = spec.toxic.new_state()
        self.stub = Stub(self)
        self.task: asyncio.Task[None] | None = None
        self.active = False

    def start(self) -> None:
        self.active = self.link.rng.random() < self.spec.toxicity
        if self.spec.toxicity < 1:
            self.link.event("toxicity", toxic=self.spec.name, active=self.active)
        stub = self.stub = Stub(self)
        self.task = self.link.loop.create_task(self._run(stub))

    async def _run(self, stub: Stub) -> None:
        toxic = self.spec.toxic
        if self.active and (self.fresh or not toxic.fresh_only):
            try:
                await toxic.pipe(stub)
            except (asyncio.CancelledError, GeneratorExit):
                raise
            except Exception as exc:  # a broken toxic must not wedge the connection
                stub.event("toxic.error", error=repr(exc))
                stub.close()
        else:
            await passthrough(stub)

    async def interrupt(self) -> bool:
        """Stop the running pipe and flush what it held; False if it had closed the stream.

        Idempotent: interrupting a stopped stage only flushes (nothing, the second time).
        Callers hold the link's lock, so no restart can slip in between.
        """
        task = self.task
        if task is not None:
            task.cancel()  # a no-op on a finished task
            await asyncio.wait([task])
        if self.stub.closed:
            return False
        while self.stub.held:
            self.output.put(self.stub.held.popleft())
        return True


class Link:
    """One direction of a connection: source endpoint -> stages -> out -> destination."""

    def __init__(self, conn: Connection, direction: int, source: Endpoint, dest: Endpoint) -> None:
        self.conn = conn
        self.connection = conn
        self.direction = direction
        self.source = source
        self.dest = dest
        proxy = conn.proxy
        self.proxy = proxy
        self.loop = conn.loop
        self.clock: Clock = proxy.link_clock  # read per chunk: bound to the loop (clock.py)
        self.rng = random.Random(f"{proxy.seed}:{proxy.name}:{conn.id}:{DIRECTIONS[direction]}")
        self.out = Channel(self.on_get, self.loop)
        self.stages: list[Stage] = []
        self.reading_paused = False
        self.writer: asyncio.Task[None] | None = None
        self.eof = False
        self.lock = asyncio.Lock()  # one chain change at a time (update, remove)
        self.closed = False  # the connection is gone: no stage may start again
        # The fast path (splice): running, allowed, and the state of a switch back to it.
        self.splicer: Splicer | None = None
        self.fast_ok = proxy.fast_path
        self.source_ended = False  # the splicer met EOF: the transport reads it next
        self.armed: tuple[int, int] | None = None  # dest limits saved while awaiting a drain

    def event(self, action: str, **detail: Any) -> None:
        toxic = detail.pop("toxic", None)
        detail["stream"] = DIRECTIONS[self.direction]
        self.conn.proxy.emit(action, connection=self.conn.id, toxic=toxic, **detail)

    # -- chain --------------------------------------------------------------------------------
    def start(self, specs: list[ToxicSpec]) -> None:
        output = self.out
        stages = []
        for spec in reversed(specs):
            stage = Stage(self, spec, output, fresh=True)
            stages.append(stage)
            output = stage.input
        self.stages = stages[::-1]
        for stage in self.stages:
            stage.start()
        self.writer = self.loop.create_task(self._write())

    @property
    def head(self) -> Channel:
        return self.stages[0].input if self.stages else self.out

    def add(self, spec: ToxicSpec) -> None:
        if self.closed:
            return
        stage = Stage(self, spec, self.out, fresh=False)
        if self.stages:
            self.stages[-1].output = stage.input
        self.stages.append(stage)
        stage.start()
        if self.splicer is not None:
            self.leave_fast()  # the bytes in the pipe go into the new stage, then the socket's

    def _find(self, spec: ToxicSpec) -> int | None:
        for i, stage in enumerate(self.stages):
            if stage.spec is spec:
                return i
        return None

    async def update(self, spec: ToxicSpec) -> None:
        async with self.lock:
            i = self._find(spec)
            if i is None or self.closed:
                return
            stage = self.stages[i]
            if await stage.interrupt() and not self.closed:
                stage.start()

    async def remove(self, spec: ToxicSpec) -> None:
        async with self.lock:
            await self._remove(spec)
            if not self.stages:
                self.maybe_fast()

    async def _remove(self, spec: ToxicSpec) -> None:
        i = self._find(spec)
        if i is None:
            return
        stage = self.stages[i]
        if not await stage.interrupt() or self.closed:
            return
        spec.toxic.cleanup(stage.stub)
        if stage.stub.closed:
            return
        for chunk in spec.toxic.drain(stage.state):
            stage.output.put(chunk)
        # Everything still queued for the removed stage goes on, in order.
        while stage.input.items:
            stage.output.put(stage.input.items.popleft())
        i = self._find(spec)
        if i is None:
            return
        if i > 0:
            self.stages[i - 1].output = stage.output
        del self.stages[i]

    # -- data ---------------------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        if self.splicer is not None:  # not expected (its transport is paused): keep order anyway
            self.leave_fast(resume=False)
        if not self.stages and not self.out.items:
            transport = self.dest.transport
            if transport is not None and not self.dest.lost:
                transport.write(data)
            if self.dest.paused:
                self._pause()
            return
        self.head.put(Chunk(data, self.clock.now()))
        if len(self.head.items) + len(self.out.items) > MAX_QUEUED:
            self._pause()

    def feed_eof(self) -> None:
        if not self.eof:
            self.eof = True
            self.head.put(None)

    def queued(self) -> int:
        return len(self.out.items) + sum(len(s.input.items) for s in self.stages)

    def _pause(self) -> None:
        if not self.reading_paused and self.source.transport is not None:
            self.reading_paused = True
            self.source.transport.pause_reading()

    def on_get(self) -> None:
        if self.reading_paused:
            self.maybe_resume()

    def maybe_resume(self) -> None:
        if (
            self.reading_paused
            and self.splicer is None
            and not self.dest.paused
            and self.queued() <= MAX_QUEUED // 2
        ):
            self.reading_paused = False
            if self.source.transport is not None and not self.source.lost:
                self.source.transport.resume_reading()

    def resume_source(self) -> None:
        """Read the source again, unless the splicer reads it or back-pressure holds it."""
        source = self.source
        idle = self.splicer is None and not self.reading_paused
        if idle and source.transport is not None and not source.lost:
            source.transport.resume_reading()

    def on_dest_drained(self) -> None:
        """The destination's write buffer fell to its low-water mark (0 while ``armed``)."""
        if self.armed is not None:
            self._disarm()
            self.maybe_fast()
        self.maybe_resume()

    async def _write(self) -> None:
        dest = self.dest
        while True:
            chunk = await self.out.get()
            if chunk is None:
                self.conn.close_endpoint(dest)
                return
            if dest.lost or dest.transport is None:
                continue
            dest.transport.write(chunk.data)
            if dest.paused:
                await dest.wait_drained()
            if not self.stages and not self.out.items:
                self.maybe_fast()

    # -- the fast path ------------------------------------------------------------------------
    def maybe_fast(self) -> None:
        """Hand this direction to a splicer if nothing is in flight in Python for it.

        Nothing may be queued in the pipeline nor buffered in the destination transport,
        or the splicer's bytes would overtake them; a non-empty buffer is awaited by
        setting its limits to 0 (``resume_writing`` then fires when it is empty).
        """
        if (
            self.splicer is not None
            or not self.fast_ok
            or self.stages
            or self.out.items
            or self.eof
            or self.closed
            or self.source_ended
        ):
            return
        src, dst = self.source, self.dest
        st, dt = src.transport, dst.transport
        if src.lost or dst.lost or st is None or dt is None or st.is_closing() or dt.is_closing():
            return
        if dt.get_write_buffer_size():
            if self.armed is None:
                self.armed = dt.get_write_buffer_limits()
                dt.set_write_buffer_limits(high=0, low=0)
            return
        try:
            src_fd = src.hold_fd()
        except OSError:  # out of descriptors: this link stays in Python
            self.fast_ok = False
            return
        try:
            dst_fd = dst.hold_fd()
        except OSError:
            src.release_fd()
            self.fast_ok = False
            return
        splicer = Splicer(self, self.loop, self.proxy.pipes, src_fd, dst_fd)
        try:
            splicer.start()
        except (NotImplementedError, OSError, RuntimeError):  # a loop without add_reader
            src.release_fd()
            dst.release_fd()
            self.fast_ok = self.proxy.fast_path = False
            return
        self.splicer = splicer
        self.reading_paused = False  # the splicer reads now; the pipeline's count is empty
        st.pause_reading()

    def _disarm(self) -> None:
        armed, self.armed = self.armed, None
        transport = self.dest.transport
        if armed is not None and transport is not None and not transport.is_closing():
            low, high = armed
            transport.set_write_buffer_limits(high=high, low=low)

    def leave_fast(self, *, resume: bool = True, keep: bool = True) -> None:
        """Stop splicing: the pipe's bytes enter the pipeline first (``keep``), then, if
        ``resume``, the source transport reads again (later bytes queue behind them)."""
        splicer, self.splicer = self.splicer, None
        if splicer is None:
            return
        pending = splicer.stop()
        self.source.release_fd()
        self.dest.release_fd()
        if pending and keep:
            self.proxy.handed_back += len(pending)
            self.feed(pending)
        if resume:
            self.resume_source()

    # What the splicer reports (splice.SpliceOwner).
    def spliced(self, n: int) -> None:
        self.proxy.spliced += n

    def splice_eof(self) -> None:
        # The transport reads the EOF itself, so EOF takes exactly the path it took before.
        self.source_ended = True
        self.leave_fast()

    def splice_source_failed(self, exc: OSError) -> None:
        # What the transport does with a read error: close at once, connection_lost follows.
        self.source_ended = True
        self.leave_fast(resume=False)
        if self.source.transport is not None:
            self.source.transport.abort()

    def splice_dest_failed(self, exc: OSError) -> None:
        # What the transport does with a write error; its unsent bytes are lost as these are.
        self.leave_fast(keep=False)
        if self.dest.transport is not None:
            self.dest.transport.abort()

    def splice_unavailable(self, exc: OSError) -> None:
        self.fast_ok = False  # out of descriptors or pipe quota: this link stays in Python
        self.leave_fast()

    def cancel(self) -> None:
        self.closed = True
        self.leave_fast(resume=False, keep=False)
        for stage in self.stages:
            if stage.task is not None:
                stage.task.cancel()
        if self.writer is not None:
            self.writer.cancel()


class Endpoint(asyncio.Protocol):
    """One socket of a proxied connection: the source of one link, the destination of the other."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.link_in: Link | None = None
        self.link_out: Link | None = None
        self.conn: Connection | None = None
        self.paused = False
        self.lost = False
        self._drained: asyncio.Future[None] | None = None
        self._early: list[bytes] = []
        self._early_eof = False
        self.on_made: Any = None
        self._dup: int | None = None  # a duplicate descriptor for the splicers (see splice.py)
        self._dup_users = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not an isinstance check: uvloop's transports do not subclass asyncio.Transport.
        self.transport = cast("asyncio.Transport", transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):  # Go sets TCP_NODELAY by default
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.on_made is not None:
            self.on_made(self)

    def data_received(self, data: bytes) -> None:
        if self.link_in is not None:
            self.link_in.feed(data)
        else:
            self._early.append(data)
            if self.transport is not None:
                # uvloop ignores the pause made in connection_made: make it now, so at most
                # one read waits here for the upstream dial.
                self.transport.pause_reading()

    def eof_received(self) -> bool:
        if self.link_in is not None:
            self.link_in.feed_eof()
        else:
            self._early_eof = True
        return True  # keep writing the other direction until its own EOF

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.stop_splicing()
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        if self.link_in is not None:
            self.link_in.feed_eof()
        if self.conn is not None:
            self.conn.endpoint_lost(self)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        if self.link_out is not None:
            self.link_out.on_dest_drained()

    async def wait_drained(self) -> None:
        if self.paused and not self.lost:
            assert self.conn is not None
            self._drained = self.conn.loop.create_future()
            await self._drained

    def attach(self, conn: Connection, link_in: Link, link_out: Link) -> None:
        self.conn, self.link_in, self.link_out = conn, link_in, link_out
        for data in self._early:
            link_in.feed(data)
        self._early.clear()
        if self._early_eof or self.lost:
            link_in.feed_eof()

    # -- the descriptor the splicers watch ------------------------------------------------------
    def hold_fd(self) -> int:
        """A duplicate of the socket's descriptor, shared by this endpoint's splicers.

        The transport keeps the original (a loop refuses readers on a transport's
        descriptor). The duplicate keeps the socket open, so it is closed before the
        transport closes (:meth:`stop_splicing`): the FIN or RST then goes out on time.
        """
        if self._dup is None:
            assert self.transport is not None
            self._dup = os.dup(self.transport.get_extra_info("socket").fileno())
        self._dup_users += 1
        return self._dup

    def release_fd(self) -> None:
        if self._dup_users > 0:
            self._dup_users -= 1
        if self._dup_users == 0 and self._dup is not None:
            fd, self._dup = self._dup, None
            os.close(fd)

    def stop_splicing(self) -> None:
        """Stop every splicer using this socket, before its transport closes it."""
        # Bytes read from this socket still reach the other one, and it is read no more.
        if self.link_in is not None:
            self.link_in.leave_fast(resume=False)
        # Bytes meant for this socket cannot reach it; its source is read on and the bytes
        # dropped, as the pipeline does (unread bytes would turn the source's close into an RST).
        if self.link_out is not None:
            self.link_out.leave_fast(keep=False)


class Connection:
    """A client socket, its upstream socket, and the two links between them."""

    def __init__(self, proxy: Proxy, conn_id: int, client: Endpoint, upstream: Endpoint) -> None:
        self.proxy = proxy
        assert proxy.loop is not None  # connections exist only while the listener runs
        self.loop: asyncio.AbstractEventLoop = proxy.loop
        self.id = conn_id
        self.client = client
        self.upstream = upstream
        self.linger0 = False
        self.links = (
            Link(self, UPSTREAM, client, upstream),
            Link(self, DOWNSTREAM, upstream, client),
        )
        self.done = False

    def start(self) -> None:
        up, down = self.links
        for link in self.links:
            if any(s.type == "reset_peer" for s in self.proxy.chains[link.direction]):
                self.set_linger0()  # Go: set when a reset_peer is in the chain at link start
        up.start(list(self.proxy.chains[UPSTREAM]))
        down.start(list(self.proxy.chains[DOWNSTREAM]))
        self.client.attach(self, up, down)
        self.upstream.attach(self, down, up)
        for link in self.links:
            link.maybe_fast()

    def set_linger0(self) -> None:
        """SO_LINGER 0: closing then sends a TCP RST instead of a FIN."""
        self.linger0 = True
        for ep in (self.client, self.upstream):
            sock = ep.transport.get_extra_info("socket") if ep.transport else None
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def close_endpoint(self, ep: Endpoint) -> None:
        if ep.transport is None or ep.lost:
            return
        ep.stop_splicing()
        if self.linger0:
            ep.transport.abort()
        else:
            ep.transport.close()

    def abort(self) -> None:
        for ep in (self.client, self.upstream):
            ep.stop_splicing()
        for ep in (self.client, self.upstream):
            if ep.transport is not None:
                ep.transport.abort()

    def endpoint_lost(self, ep: Endpoint) -> None:
        if self.client.lost and self.upstream.lost and not self.done:
            self.done = True
            for link in self.links:
                link.cancel()
            self.proxy.connections.discard(self)
            self.proxy.emit("disconnect", connection=self.id)


class Proxy:
    """A named listener forwarding to ``upstream`` through two toxic chains."""

    def __init__(
        self,
        name: str,
        listen: str,
        upstream: str,
        *,
        clock: Clock,
        log: EventLog,
        seed: int | None,
        server_seed: int,
        fast_path: bool | None = None,
    ) -> None:
        self.name = name
        self.listen = listen
        self.upstream = upstream
        self.enabled = False
        self.seed_option = seed
        self.seed = seed if seed is not None else server_seed
        self.clock = clock
        self.log = log
        self.chains: tuple[list[ToxicSpec], list[ToxicSpec]] = ([], [])
        self.connections: set[Connection] = set()
        self.server: asyncio.AbstractServer | None = None
        self.accepted = 0
        self.toxics_lock = asyncio.Lock()  # Go's ToxicCollection mutex: one toxic change at a time
        # The fast path (docs/faults.md "Fast path"): None means wherever it can run.
        self.fast_path = splice_available() and fast_path is not False
        self.pipes = PipePool()
        self.spliced = 0  # bytes the fast path has moved, for tests and the benchmark
        self.handed_back = 0  # bytes a stopped splicer's pipe gave to the pipeline
        self.loop: asyncio.AbstractEventLoop | None = None
        self.link_clock: Clock = clock

    def emit(self, action: str, **kw: Any) -> None:
        detail = {k: v for k, v in kw.items() if k not in ("connection", "toxic")}
        self.log.emit(
            FaultEvent(
                time=self.link_clock.now(),
                proxy=self.name,
                action=action,
                connection=kw.get("connection"),
                toxic=kw.get("toxic"),
                detail=detail,
            )
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "Logger": {},  # Go marshals the proxy's exported *zerolog.Logger as an empty object
            "toxics": [t.to_json() for t in self.toxics()],
        }
        if self.seed_option is not None:
            out["seed"] = self.seed_option
        return out

    def toxics(self) -> list[ToxicSpec]:
        return [*self.chains[UPSTREAM], *self.chains[DOWNSTREAM]]

    def find(self, name: str) -> ToxicSpec | None:
        for spec in self.toxics():
            if spec.name == name:
                return spec
        return None

    # -- listener -----------------------------------------------------------------------------
    async def start(self) -> None:
        if self.enabled:
            return
        sock = await _listen(self.listen)
        loop = self.loop = asyncio.get_running_loop()
        bind = getattr(self.clock, "bind", None)  # LoopClock.bind; other clocks as they are
        self.link_clock = bind(loop) if bind is not None else self.clock
        if self.pipes.closed:
            self.pipes = PipePool()
        self.server = await loop.create_server(self._endpoint, sock=sock, backlog=4096)
        bound_host, bound_port = sock.getsockname()[:2]
        self.listen = format_hostport(bound_host, bound_port)
        self.enabled = True
        self.emit("proxy.start", listen=self.listen)

    async def stop(self) -> None:
        if not self.enabled:
            return
        self.enabled = False
        if self.server is not None:
            self.server.close()
            self.server = None
        for conn in list(self.connections):
            conn.abort()
        self.pipes.close()
        self.emit("proxy.stop")

    def _endpoint(self) -> Endpoint:
        ep = Endpoint()
        ep.on_made = self._accepted
        return ep

    def _accepted(self, client: Endpoint) -> None:
        assert client.transport is not None
        client.transport.pause_reading()
        self.accepted += 1
        conn_id = self.accepted
        rng = random.Random(f"{self.seed}:{self.name}:{conn_id}:accept")
        for spec in self.toxics():
            toxic = spec.toxic
            if toxic.connection_level and rng.random() < spec.toxicity and toxic.claim():  # type: ignore[attr-defined]
                if spec.type == "reset_first":
                    sock = client.transport.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    client.transport.abort()
                else:
                    client.transport.close()
                self.emit(spec.type, connection=conn_id, toxic=spec.name)
                return
        assert self.loop is not None
        self.loop.create_task(self._dial(client, conn_id))

    async def _dial(self, client: Endpoint, conn_id: int) -> None:
        """Dial the upstream for one accepted client; any failure closes the client at once."""
        assert client.transport is not None
        upstream = Endpoint()
        try:
            host, port = split_address(self.upstream)
            host = host or "127.0.0.1"  # Go dials this machine for an empty host
            assert self.loop is not None
            await self.loop.create_connection(lambda: upstream, host, port)
        except (OSError, ValueError) as exc:  # AddressError is a ValueError, with Go's words
            client.transport.close()
            error = f"dial tcp: {exc}" if isinstance(exc, AddressError) else str(exc)
            self.emit("upstream.refused", connection=conn_id, error=error)
            return
        conn = Connection(self, conn_id, client, upstream)
        if not self.enabled:
            conn.abort()
            return
        self.connections.add(conn)
        self.emit("connect", connection=conn_id)
        conn.start()
        for ep in (client, upstream):
            if ep.lost:
                conn.endpoint_lost(ep)
        for link in conn.links:  # the client was paused until now, the upstream maybe too
            link.resume_source()

    # -- toxics on live links -----------------------------------------------------------------
    def links(self, direction: int) -> list[Link]:
        return [c.links[direction] for c in self.connections]

    def add_toxic(self, spec: ToxicSpec) -> None:
        self.chains[spec.direction].append(spec)
        for link in self.links(spec.direction):
            link.add(spec)

    async def update_toxic(self, spec: ToxicSpec) -> None:
        await asyncio.gather(*(link.update(spec) for link in self.links(spec.direction)))

    async def remove_toxic(self, spec: ToxicSpec) -> None:
        self.chains[spec.direction].remove(spec)
        await asyncio.gather(*(link.remove(spec) for link in self.links(spec.direction)))

    async def reset_toxics(self) -> None:
        for spec in self.toxics():
            await self.remove_toxic(spec)


async def _listen(listen: str) -> socket.socket:
    """Bind like Go's ``net.Listen("tcp", listen)``, with Go's error words.

    An empty host (``":0"``) means every interface, as in Go; a missing or empty
    ``listen`` binds :data:`DEFAULT_LISTEN_HOST` on a free port (docs/faults.md).
    """
    try:
        host, port = split_address(listen) if listen else (DEFAULT_LISTEN_HOST, 0)
    except AddressError as exc:
        raise ApiError(f"listen tcp: {exc}", 500) from None
    if host in ("", "::"):
        shown = f"[::]:{port}" if host else f":{port}"
        try:
            sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        except OSError:  # no IPv6 here: IPv4's wildcard instead
            family, sockaddr = socket.AF_INET, ("0.0.0.0", port)
        else:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            return _bind(sock, ("::", port), shown)
    else:
        try:
            family, sockaddr = await resolve(host, port)
        except AddressError as exc:
            raise ApiError(f"listen tcp: {exc}", 500) from None
        shown = format_hostport(sockaddr[0], port)
    return _bind(socket.socket(family, socket.SOCK_STREAM), sockaddr, shown)


def _bind(sock: socket.socket, sockaddr: Any, shown: str) -> socket.socket:
    """Bind ``sock``; a failure names the resolved address, as Go's ``listen tcp`` error does."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
    except OSError as exc:
        sock.close()
        detail = (exc.strerror or str(exc)).lower()
        raise ApiError(f"listen tcp {shown}: bind: {detail}", 500) from None
    except (OverflowError, ValueError) as exc:  # not expected after split_address; be safe
        sock.close()
        raise ApiError(f"listen tcp {shown}: {exc}", 500) from None
    sock.setblocking(False)
    return sock
