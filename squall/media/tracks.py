"""Synthetic media tracks whose frames say who they are, and the decoder for them.

Video: :class:`IndexedVideoTrack` paints each frame's index into its luma plane
as a grid of 8 x 4 large blocks, one bit each (light = 1, dark = 0): 24 bits of
index and 8 bits of check. Blocks of 40 x 60 pixels survive VP8 at the low
bitrates aiortc starts with; :func:`decode_index` samples the middle of each
block, so ringing at the edges does not matter, and the check byte turns a
damaged frame into ``None`` rather than a wrong index. The index is carried in
the pixels, not only in the pts, because the pts is rewritten on the way
(RTP timestamps start at a random origin and the receiver rebuilds pts from
them): only the pixels prove *which* frame arrived, so loss, reordering and
frozen frames can be told apart. Dark blocks are luma 40, not 16, so no frame is
ever "black" by testrtc's rule (mean luma < 20).

Audio: :class:`ToneAudioTrack` is a 440 Hz sine, 20 ms frames at 48 kHz mono,
so a receiver can tell sound (RMS well above zero after Opus) from silence.

Both pace their frames on an injected :class:`~squall.clock.Clock`, real time by
default: aiortc's encoders, RTP timestamps and jitter buffers run on the wall clock,
so a track sent over a peer connection keeps it. A compressed clock makes a track
read directly (a probe, a test) deliver a minute of frames in a fraction of a second.
"""

from __future__ import annotations

import fractions
import math
import struct

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame, VideoFrame

from ..clock import Clock, LoopClock

__all__ = [
    "IndexedVideoTrack",
    "ToneAudioTrack",
    "audio_rms",
    "decode_index",
    "encode_bits",
    "indexed_frame",
    "is_black",
    "luma_plane",
    "mean_luma",
]

WIDTH, HEIGHT = 320, 240
COLS, ROWS = 8, 4
BLOCK_W, BLOCK_H = WIDTH // COLS, HEIGHT // ROWS
LIGHT, DARK = 220, 40
THRESHOLD = (LIGHT + DARK) // 2
INDEX_BITS = 24
VIDEO_CLOCK = 90000
AUDIO_RATE = 48000
AUDIO_PTIME = 0.020
BLACK_LUMA = 20  # testrtc VideoFrameChecker: a frame whose mean luma is below this is black

_CHROMA = bytes([128]) * ((WIDTH // 2) * (HEIGHT // 2))


def _check(index: int) -> int:
    return ((index ^ (index >> 8) ^ (index >> 16)) & 0xFF) ^ 0xA5


def encode_bits(index: int) -> int:
    """The 32 bits painted for frame ``index`` (24 bits of index, 8 of check)."""
    index &= (1 << INDEX_BITS) - 1
    return index | (_check(index) << INDEX_BITS)


def luma_plane(index: int) -> bytes:
    """The Y plane (WIDTH x HEIGHT, no padding) of frame ``index``."""
    bits = encode_bits(index)
    light, dark = bytes([LIGHT]) * BLOCK_W, bytes([DARK]) * BLOCK_W
    rows = []
    for r in range(ROWS):
        line = b"".join(light if bits >> (r * COLS + c) & 1 else dark for c in range(COLS))
        rows.append(line * BLOCK_H)
    return b"".join(rows)


def indexed_frame(index: int) -> VideoFrame:
    """A yuv420p frame carrying ``index`` (pts and time base left to the caller)."""
    frame = VideoFrame(WIDTH, HEIGHT, "yuv420p")
    frame.planes[0].update(luma_plane(index))
    frame.planes[1].update(_CHROMA)
    frame.planes[2].update(_CHROMA)
    return frame


def _sample(frame: VideoFrame) -> tuple[bytes, int]:
    plane = frame.planes[0]
    return bytes(plane), plane.line_size


def decode_index(frame: VideoFrame) -> int | None:
    """The index painted by :func:`indexed_frame`, or ``None`` if it cannot be read back."""
    if frame.width != WIDTH or frame.height != HEIGHT:
        frame = frame.reformat(width=WIDTH, height=HEIGHT, format="yuv420p")
    elif frame.format.name != "yuv420p":
        frame = frame.reformat(format="yuv420p")
    data, stride = _sample(frame)
    bits = 0
    for i in range(ROWS * COLS):
        r, c = divmod(i, COLS)
        cy, cx = r * BLOCK_H + BLOCK_H // 2, c * BLOCK_W + BLOCK_W // 2
        total = 0
        for dy in (-BLOCK_H // 4, 0, BLOCK_H // 4):
            start = (cy + dy) * stride + cx - BLOCK_W // 4
            total += sum(data[start : start + BLOCK_W // 2])
        if total / (3 * (BLOCK_W // 2)) > THRESHOLD:
            bits |= 1 << i
    index = bits & ((1 << INDEX_BITS) - 1)
    return index if bits >> INDEX_BITS == _check(index) else None


def mean_luma(frame: VideoFrame) -> float:
    """Mean luma over a sparse grid of the frame (every 8th pixel of every 8th line)."""
    if frame.format.name != "yuv420p":
        frame = frame.reformat(format="yuv420p")
    data, stride = _sample(frame)
    values = [
        data[y * stride + x] for y in range(0, frame.height, 8) for x in range(0, frame.width, 8)
    ]
    return sum(values) / len(values)


def is_black(frame: VideoFrame) -> bool:
    return mean_luma(frame) < BLACK_LUMA


class _PacedTrack(MediaStreamTrack):
    """Paces frames on its clock (the wall clock by default, like aiortc's own synthetic
    tracks): frame N is not returned before N frame periods after the first."""

    _start: float | None = None

    def __init__(self, clock: Clock | None = None) -> None:
        super().__init__()
        self.clock: Clock = clock or LoopClock()

    async def _pace(self, ticks: int, rate: int) -> None:
        """Wait until ``ticks`` at ``rate`` per second after the first frame."""
        now = self.clock.now()
        if self._start is None:
            self._start = now
        # sleep(0) when behind: a reader slower than the pace must still let the loop run
        await self.clock.sleep(max(0.0, self._start + ticks / rate - now))


class IndexedVideoTrack(_PacedTrack):
    """Video at ``fps`` whose frame N shows N in its pixels, with pts N * (90000 / fps)."""

    kind = "video"

    def __init__(self, fps: int = 30, *, clock: Clock | None = None) -> None:
        super().__init__(clock)
        self.fps = fps
        self.sent = 0
        self._time_base = fractions.Fraction(1, VIDEO_CLOCK)

    async def recv(self) -> VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        index = self.sent
        ticks = index * (VIDEO_CLOCK // self.fps)
        await self._pace(ticks, VIDEO_CLOCK)
        frame = indexed_frame(index)
        frame.pts = ticks
        frame.time_base = self._time_base
        self.sent += 1
        return frame


class ToneAudioTrack(_PacedTrack):
    """A ``frequency`` Hz sine, 20 ms mono s16 frames at 48 kHz."""

    kind = "audio"

    def __init__(
        self, frequency: float = 440.0, amplitude: float = 0.3, *, clock: Clock | None = None
    ) -> None:
        super().__init__(clock)
        self.sent = 0
        samples = int(AUDIO_RATE * AUDIO_PTIME)
        self._samples = samples
        self._time_base = fractions.Fraction(1, AUDIO_RATE)
        # 440 Hz is a whole number of periods in 20 ms... almost: keep phase continuous.
        self._frequency = frequency
        self._amplitude = int(32767 * amplitude)

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        start = self.sent * self._samples
        await self._pace(start, AUDIO_RATE)
        step = 2 * math.pi * self._frequency / AUDIO_RATE
        pcm = struct.pack(
            f"<{self._samples}h",
            *(int(self._amplitude * math.sin(step * (start + i))) for i in range(self._samples)),
        )
        frame = AudioFrame(format="s16", layout="mono", samples=self._samples)
        frame.planes[0].update(pcm)
        frame.sample_rate = AUDIO_RATE
        frame.pts = start
        frame.time_base = self._time_base
        self.sent += 1
        return frame


def audio_rms(frame: AudioFrame) -> float:
    """Root mean square of a frame's samples, 0..1 (s16 or fltp, any layout)."""
    if frame.format.name != "s16":
        frame = frame.reformat(format="s16") if hasattr(frame, "reformat") else frame
    data = bytes(frame.planes[0])
    count = len(data) // 2
    if count == 0:
        return 0.0
    values = struct.unpack(f"<{count}h", data[: count * 2])
    return math.sqrt(sum(v * v for v in values) / count) / 32768
