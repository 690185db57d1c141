"""What a receiver saw: frames counted by reading the track, in order or not, frozen, black, silent.

aiortc's ``getStats()`` has no ``framesDecoded``/``framesReceived``, so the only way to
know frames flowed is to read them: a :class:`TrackProbe` consumes a received track in
a task and keeps a :class:`MediaReport`. For :class:`~squall.media.tracks.IndexedVideoTrack`
it decodes every frame's index, so order and loss are exact; for other video it still
counts frames, black ones (mean luma < 20) and frozen ones (same index twice).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame, AudioResampler, VideoFrame
from av.frame import Frame
from av.packet import Packet

from ..clock import Clock, LoopClock, wait_for
from .tracks import audio_rms, decode_index, is_black

__all__ = ["SILENCE_RMS", "MediaReport", "TrackProbe"]

SILENCE_RMS = 0.01


@dataclass(frozen=True)
class MediaReport:
    """A receiver's account of one track. ``in_order_share`` is 1.0 when every step was +1."""

    kind: str
    frames: int
    indexed: int = 0
    first_index: int | None = None
    last_index: int | None = None
    in_order: int = 0
    out_of_order: int = 0
    frozen: int = 0
    missing: int = 0
    black: int = 0
    silent: int = 0
    ended: bool = False

    @property
    def in_order_share(self) -> float:
        """Consecutive decoded frames whose index is exactly the previous + 1, over all steps."""
        steps = self.in_order + self.out_of_order + self.frozen
        return 1.0 if steps == 0 else self.in_order / steps

    def __post_init__(self) -> None:
        if self.kind not in ("audio", "video"):
            raise ValueError(f"kind must be 'audio' or 'video', got {self.kind!r}")
        if self.frames < 0 or self.indexed > self.frames:
            raise ValueError(f"inconsistent counts: frames={self.frames}, indexed={self.indexed}")


@dataclass
class _Tally:
    frames: int = 0
    indexed: int = 0
    first: int | None = None
    last: int | None = None
    in_order: int = 0
    out_of_order: int = 0
    frozen: int = 0
    missing: int = 0
    black: int = 0
    silent: int = 0
    indices: list[int] = field(default_factory=list)


class TrackProbe:
    """Reads ``track`` until stopped or ended; ``await frames_at_least(n)`` waits for n frames.

    Timeouts are in ``clock`` seconds: real by default, as frames over a peer connection
    arrive in real time; give it the clock of a compressed local track it reads.
    """

    def __init__(
        self, track: MediaStreamTrack, *, keep_indices: bool = False, clock: Clock | None = None
    ) -> None:
        self.track = track
        self.clock: Clock = clock or LoopClock()
        self.kind = track.kind
        self._tally = _Tally()
        self._keep = keep_indices
        self._ended = False
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._resampler: AudioResampler | None = None
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            while True:
                frame = await self.track.recv()
                self._count(frame)
        except MediaStreamError:
            pass
        finally:
            self._ended = True
            for _, fut in self._waiters:
                if not fut.done():
                    fut.set_exception(
                        MediaStreamError(
                            f"{self.kind} track ended after {self._tally.frames} frames"
                        )
                    )

    def _count(self, frame: Frame | Packet[Any]) -> None:
        """Tally one item of ``recv()``; only video and audio frames are inspected."""
        t = self._tally
        t.frames += 1
        if isinstance(frame, VideoFrame):
            if is_black(frame):
                t.black += 1
            index = decode_index(frame)
            if index is not None:
                t.indexed += 1
                if t.first is None:
                    t.first = index
                elif t.last is not None:
                    if index == t.last + 1:
                        t.in_order += 1
                    elif index == t.last:
                        t.frozen += 1
                    else:
                        t.out_of_order += 1
                        if index > t.last:
                            t.missing += index - t.last - 1
                t.last = index
                if self._keep:
                    t.indices.append(index)
        elif isinstance(frame, AudioFrame):
            if frame.format.name != "s16":
                if self._resampler is None:
                    self._resampler = AudioResampler(format="s16")
                frames = self._resampler.resample(frame)
                frame = frames[0] if frames else frame
            if audio_rms(frame) < SILENCE_RMS:
                t.silent += 1
        self._waiters = [(n, f) for n, f in self._waiters if not self._maybe_wake(n, f)]

    def _maybe_wake(self, n: int, fut: asyncio.Future[None]) -> bool:
        if fut.done():
            return True
        if self._tally.frames >= n:
            fut.set_result(None)
            return True
        return False

    @property
    def frames(self) -> int:
        return self._tally.frames

    @property
    def indices(self) -> list[int]:
        return list(self._tally.indices)

    async def frames_at_least(self, n: int, timeout: float = 10.0) -> MediaReport:
        """Wait (event-driven) until ``n`` frames in all have been read; returns the report then."""
        if self._tally.frames < n:
            if self._ended:
                raise MediaStreamError(f"{self.kind} track ended after {self._tally.frames} frames")
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append((n, fut))
            try:
                await wait_for(self.clock, fut, timeout)
            except TimeoutError:
                raise TimeoutError(
                    f"{self.kind} track: {self._tally.frames} of {n} frames within {timeout:g}s"
                ) from None
        return self.report()

    def reset(self) -> None:
        """Start a new measurement window (the task keeps reading)."""
        self._tally = _Tally()

    def report(self) -> MediaReport:
        t = self._tally
        return MediaReport(
            kind=self.kind,
            frames=t.frames,
            indexed=t.indexed,
            first_index=t.first,
            last_index=t.last,
            in_order=t.in_order,
            out_of_order=t.out_of_order,
            frozen=t.frozen,
            missing=t.missing,
            black=t.black,
            silent=t.silent,
            ended=self._ended,
        )

    async def stop(self) -> MediaReport:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, MediaStreamError):
            await self._task
        return self.report()
