"""The kernel-side fast path: one direction of a connection forwarded with ``splice(2)``.

Why: a direction with no toxic needs no bytes in Python. ``splice`` moves them
from the source socket into a pipe and from the pipe into the destination
socket without copying them to user space, so a clean direction costs two
system calls per readable event and no Python objects per byte.

Theory of operation (:class:`Splicer`, driven by the event loop, never blocking it):

- It watches a *duplicate* of the source socket's descriptor with ``loop.add_reader``:
  the socket's transport owns the original (asyncio and uvloop refuse readers on a
  transport's descriptor) and has its reading paused while the splicer runs.
- Readable: splice up to the pipe's capacity from the socket into the pipe, then
  from the pipe into the destination. The pipe is bounded; while the destination
  answers ``EAGAIN`` the splicer stops reading and waits with ``loop.add_writer``,
  so a slow reader pushes back on its sender exactly as TCP would.
- A pipe is held only while it has bytes in it: an empty one goes back to a small
  per-proxy :class:`PipePool`, so idle connections hold no pipe at all.
- :meth:`Splicer.stop` hands back the bytes still in the pipe, in order, for the
  link to put into the toxic pipeline before anything read later.

EOF, errors and every policy decision belong to the link (``proxy.Link``); this
module only moves bytes and reports what happened.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import asyncio

PIPE_SIZE = 256 * 1024  # bytes a pipe may hold: the most one direction has read but not sent
POOL_SIZE = 8  # empty pipes kept for reuse per proxy
ROUNDS = 8  # splice rounds per readable event while the socket keeps filling the pipe
ENV_SWITCH = "SQUALL_PROXY_FAST_PATH"  # "0" turns the fast path off for every proxy


def available() -> bool:
    """True where the fast path can run: Linux ``os.splice`` and not switched off."""
    return (
        sys.platform.startswith("linux")
        and hasattr(os, "splice")
        and os.environ.get(ENV_SWITCH, "1") != "0"
    )


if hasattr(os, "splice"):
    _FLAGS = os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK
    _splice = os.splice
else:  # pragma: no cover - not Linux: available() is False and nothing here runs
    _FLAGS = 0

    def _splice(*_args: object, **_kw: object) -> int:
        raise OSError("os.splice is not available here")


class Pipe:
    """A non-blocking pipe, sized once; ``size`` is what the kernel granted."""

    __slots__ = ("r", "size", "w")

    def __init__(self) -> None:
        self.r, self.w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            self.size = fcntl.fcntl(self.w, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:  # over the user's pipe quota: the kernel's default size, whatever it is
            self.size = fcntl.fcntl(self.w, fcntl.F_GETPIPE_SZ)

    def close(self) -> None:
        for fd in (self.r, self.w):
            with contextlib.suppress(OSError):
                os.close(fd)


class PipePool:
    """Empty pipes for a proxy's splicers; a pipe goes back only when it holds nothing."""

    def __init__(self) -> None:
        self.free: list[Pipe] = []
        self.closed = False

    def take(self) -> Pipe:
        return self.free.pop() if self.free else Pipe()

    def give(self, pipe: Pipe) -> None:
        if self.closed or len(self.free) >= POOL_SIZE:
            pipe.close()
        else:
            self.free.append(pipe)

    def close(self) -> None:
        self.closed = True
        while self.free:
            self.free.pop().close()


class SpliceOwner(Protocol):
    """What a splicer reports to (``proxy.Link``)."""

    def spliced(self, n: int) -> None: ...

    def splice_eof(self) -> None: ...

    def splice_source_failed(self, exc: OSError) -> None: ...

    def splice_dest_failed(self, exc: OSError) -> None: ...

    def splice_unavailable(self, exc: OSError) -> None: ...


class Splicer:
    """Moves bytes ``src_fd`` -> pipe -> ``dst_fd`` from loop callbacks until stopped."""

    __slots__ = ("dst", "loop", "owner", "pending", "pipe", "pool", "src", "waiting")

    def __init__(
        self,
        owner: SpliceOwner,
        loop: asyncio.AbstractEventLoop,
        pool: PipePool,
        src_fd: int,
        dst_fd: int,
    ) -> None:
        self.owner = owner
        self.loop = loop
        self.pool = pool
        self.src = src_fd
        self.dst = dst_fd
        self.pipe: Pipe | None = None
        self.pending = 0  # bytes in the pipe, read from src and not yet written to dst
        self.waiting = False  # True: the destination is full, a writer is registered

    def start(self) -> None:
        """Begin reading (may raise NotImplementedError on a loop without ``add_reader``)."""
        self.loop.add_reader(self.src, self._readable)

    def _readable(self) -> None:
        for _ in range(ROUNDS):
            try:
                pipe = self.pool.take()  # the pipe is empty here: a full one stops the reader
            except OSError as exc:  # out of descriptors or pipe quota
                self.owner.splice_unavailable(exc)
                return
            try:
                n = _splice(self.src, pipe.w, pipe.size, flags=_FLAGS)
            except BlockingIOError:
                self.pool.give(pipe)
                return
            except OSError as exc:
                self.pool.give(pipe)
                self.owner.splice_source_failed(exc)
                return
            if n == 0:
                self.pool.give(pipe)
                self.owner.splice_eof()
                return
            self.pipe = pipe
            self.pending = n
            if not self._flush() or n < pipe.size:
                return  # destination full, or the socket had less than a pipe's worth

    def _writable(self) -> None:
        if self._flush():
            self.loop.remove_writer(self.dst)
            self.waiting = False
            self.loop.add_reader(self.src, self._readable)

    def _flush(self) -> bool:
        """Write the pipe out; False if the destination is full (the writer is armed) or failed."""
        pipe = self.pipe
        assert pipe is not None
        while self.pending:
            try:
                n = _splice(pipe.r, self.dst, self.pending, flags=_FLAGS)
            except BlockingIOError:
                if not self.waiting:
                    self.waiting = True
                    self.loop.remove_reader(self.src)
                    self.loop.add_writer(self.dst, self._writable)
                return False
            except OSError as exc:
                self.owner.splice_dest_failed(exc)
                return False
            self.pending -= n
            self.owner.spliced(n)
        self.pipe = None
        self.pool.give(pipe)
        return True

    def stop(self) -> bytes:
        """Unregister and return the bytes still in the pipe (read, never sent), in order."""
        if self.waiting:
            self.loop.remove_writer(self.dst)
            self.waiting = False
        else:
            self.loop.remove_reader(self.src)
        pipe, self.pipe = self.pipe, None
        if pipe is None:
            return b""
        out = bytearray()
        while self.pending:
            try:
                data = os.read(pipe.r, self.pending)
            except OSError:
                break  # cannot happen on a pipe we own; lose nothing silently below
            if not data:
                break
            out += data
            self.pending -= len(data)
        if self.pending:
            pipe.close()  # a pipe that would not give its bytes back is not reused
            self.pending = 0
        else:
            self.pool.give(pipe)
        return bytes(out)
