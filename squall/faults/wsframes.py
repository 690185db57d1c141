"""Toxics that see WebSocket frames (squall-only; Toxiproxy #50 asks for protocol-aware toxics).

Theory of operation: a frame toxic keeps, per connection and direction, a
:class:`FrameState` that lets the HTTP upgrade pass untouched (request
upstream, ``101`` response downstream), then parses frames with websockets'
own sans-I/O parser (``Frame.parse`` driven by ``StreamReader``); client ->
server frames are masked, server -> client ones are not (RFC 6455 §5.3).

Rules:

1. Frames are forwarded as the exact bytes that arrived; only ``ws_corrupt``
   changes bytes (one payload byte, still under the sender's mask).
2. A frame is *selected* when its opcode matches ``opcode`` (default: data
   frames), its text matches the regex ``match`` (default: any), and it is
   the ``nth`` such frame or later (1-based, default 1); at most ``count``
   frames are selected (0: no limit). Counting is per connection and direction.
3. Anything that is not a WebSocket stream (no upgrade, non-101 answer, a
   frame the parser refuses) passes through untouched from that point on.
4. A frame toxic only acts on connections that start while it exists: a live
   connection's byte position cannot be trusted to be a frame boundary.
5. Compressed frames (permessage-deflate, RSV1) never match a ``match`` pattern.
6. TLS (``wss://`` through the proxy, which passes it end to end, as Toxiproxy does) cannot
   be seen into: a stream that opens with a TLS handshake record passes through untouched
   and a ``tls.opaque`` event says so once per connection and direction. Bytes are never
   held waiting for an HTTP head that will not come.
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Any, cast

from .errors import BAD_REQUEST_BODY
from .toxics import Chunk, Stub, Toxic, register

if TYPE_CHECKING:
    from websockets.extensions.base import Extension
    from websockets.frames import Frame

# websockets is imported when a frame toxic first parses (FrameState), not with this module:
# `squall proxy` then starts without it (about 1 MB of RSS). Opcodes are RFC 6455 §5.2's
# numbers; websockets' Opcode is an IntEnum, so its members compare and hash equal to them.
CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
UPSTREAM = 0
MAX_HANDSHAKE = 64 * 1024
MAX_COPIES = 1000  # ws_duplicate: more copies of a frame than this would only flood the peer
TLS_HANDSHAKE_RECORD = 0x16  # content type 22, then the major version 3 (RFC 8446 §5.1)
TLS_OPAQUE = (
    "{toxic} cannot see WebSocket frames inside TLS: this connection's bytes pass through "
    "unchanged (point the proxy at a plain ws:// listener to use frame toxics)"
)
DATA_OPCODES = {TEXT, BINARY, CONT}
OPCODE_NAMES = {
    "text": {TEXT},
    "binary": {BINARY},
    "continuation": {CONT},
    "close": {CLOSE},
    "ping": {PING},
    "pong": {PONG},
    "data": DATA_OPCODES,
    "control": {CLOSE, PING, PONG},
    "any": {CONT, TEXT, BINARY, CLOSE, PING, PONG},
}


class _ReservedBits:
    """A stand-in extension so the parser accepts RSV bits it cannot interpret."""

    name = "squall-reserved-bits"

    def decode(self, frame: Frame, *, max_size: int | None = None) -> Frame:
        return dataclasses.replace(frame, rsv1=False, rsv2=False, rsv3=False)


class FrameState:
    """Per-link parsing state: handshake bytes, the frame parser, counters, held frames."""

    def __init__(self, direction: int) -> None:
        from websockets.exceptions import ProtocolError, WebSocketException
        from websockets.frames import Frame
        from websockets.streams import StreamReader

        self.parse = Frame.parse
        self.refused = (ProtocolError, WebSocketException, EOFError)  # not a frame: pass through
        self.mask = direction == UPSTREAM
        self.phase = "handshake"  # then "frames", "passthrough" or "tls" (also a passthrough)
        self.tls_reported = False
        self.head = bytearray()
        self.reader = StreamReader()
        self.pending = bytearray()
        self.parser: Any = None
        self.index = 0  # frames that passed the opcode and match filters
        self.affected = 0
        self.held: list[list[Any]] = []  # [frames still to overtake, raw bytes]

    def feed(self, data: bytes) -> list[tuple[bytes, Frame | None]]:
        """Split bytes into (raw, frame) items; ``frame`` is None for non-frame bytes."""
        if self.phase in ("passthrough", "tls"):
            return [(data, None)] if data else []
        out: list[tuple[bytes, Frame | None]] = []
        if self.phase == "handshake":
            self.head += data
            expected = b"GET " if self.mask else b"HTTP/1.1 101"
            if self.head[:1] == bytes([TLS_HANDSHAKE_RECORD]):
                if len(self.head) < 2:
                    return out  # one byte so far: the next says whether it is TLS
                self.phase = "tls" if self.head[1] == 3 else "passthrough"
            elif not self.head.startswith(expected[: len(self.head)]):
                self.phase = "passthrough"  # not an upgrade: nothing to wait for
            if self.phase != "handshake":
                out.append((bytes(self.head), None))
                self.head.clear()
                return out
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                if len(self.head) > MAX_HANDSHAKE:
                    self.phase = "passthrough"
                    out.append((bytes(self.head), None))
                    self.head.clear()
                return out
            handshake, rest = bytes(self.head[: end + 4]), bytes(self.head[end + 4 :])
            self.head.clear()
            out.append((handshake, None))
            if not handshake.startswith(expected):
                self.phase = "passthrough"
                if rest:
                    out.append((rest, None))
                return out
            self.phase = "frames"
            data = rest
        if data:
            self.reader.feed_data(data)
            self.pending += data
        while self.pending:
            if self.parser is None:
                # cast: Frame.parse only calls each extension's ``decode(frame, max_size=)``,
                # which _ReservedBits has; it cannot subclass Extension without importing
                # websockets with this module (see the note under the imports).
                reserved = cast("Extension", _ReservedBits())
                self.parser = self.parse(
                    self.reader.read_exact, mask=self.mask, extensions=[reserved]
                )
            try:
                next(self.parser)
                break  # the parser wants more bytes
            except StopIteration as done:
                consumed = len(self.pending) - len(self.reader.buffer)
                out.append((bytes(self.pending[:consumed]), done.value))
                del self.pending[:consumed]
                self.parser = None
            except self.refused:
                self.phase = "passthrough"
                out.append((bytes(self.pending), None))
                self.pending.clear()
                break
        return out

    def drain(self) -> list[bytes]:
        """Everything owed, in order: held frames, then unparsed bytes."""
        out = [raw for _, raw in self.held]
        self.held.clear()
        for buf in (self.head, self.pending):
            if buf:
                out.append(bytes(buf))
                buf.clear()
        self.reader = type(self.reader)()
        self.parser = None
        return out


class FrameToxic(Toxic):
    """Common selection and the per-frame loop; subclasses say what to do with a selected frame."""

    fields = {"opcode": "string", "match": "string", "nth": "int64", "count": "int64"}
    squall_only = True
    fresh_only = True

    def __init__(self) -> None:
        super().__init__()
        self.pattern: re.Pattern[str] | None = None

    def validate(self, attributes: dict[str, Any]) -> None:
        if attributes["opcode"] and attributes["opcode"] not in OPCODE_NAMES:
            names = ", ".join(OPCODE_NAMES)
            raise BAD_REQUEST_BODY.joined(f"opcode must be one of {names}")
        try:
            self.pattern = re.compile(attributes["match"]) if attributes["match"] else None
        except re.error as exc:
            raise BAD_REQUEST_BODY.joined(f"invalid match pattern: {exc}") from None

    def new_state(self) -> Any:
        return None  # made per link in pipe(), which knows the direction

    def drain(self, state: Any) -> list[Chunk]:
        if state is None or not state:
            return []
        return [Chunk(raw, 0.0) for raw in state[0].drain()]

    def selected(self, st: FrameState, raw: bytes, frame: Frame) -> bool:
        opcodes = OPCODE_NAMES[self.attributes["opcode"] or "data"]
        if frame.opcode not in opcodes:
            return False
        if self.pattern is not None:
            if raw[0] & 0x40:  # RSV1: compressed payload
                return False
            # cast: frames here come from Frame.parse over a StreamReader, whose payload is
            # bytearray (or bytes once unmasked), never the memoryview BytesLike allows.
            payload = cast("bytes | bytearray", frame.data)
            if not self.pattern.search(payload.decode("utf-8", "replace")):
                return False
        st.index += 1
        if st.index < max(1, self.attributes["nth"]):
            return False
        if self.attributes["count"] > 0 and st.affected >= self.attributes["count"]:
            return False
        st.affected += 1
        return True

    async def pipe(self, stub: Stub) -> None:
        # Per-link state is a one-element list so it survives restarts on update.
        if stub.stage.state is None:
            stub.stage.state = [FrameState(stub.stage.link.direction)]
        st: FrameState = stub.state[0]
        while True:
            c = await stub.recv()
            if c is None:
                for raw in st.drain():
                    stub.send(Chunk(raw, stub.clock.now()))
                stub.close()
                return
            items = st.feed(c.data)
            if st.phase == "tls" and not st.tls_reported:
                st.tls_reported = True
                stub.event("tls.opaque", message=TLS_OPAQUE.format(toxic=self.type))
            stub.held.extend(Chunk(raw, c.ts) for raw, _ in items)
            for raw, frame in items:
                if frame is not None and frame.opcode == CLOSE:
                    self.release_all(stub, st, c.ts)
                if frame is not None and self.selected(st, raw, frame):
                    stub.event(
                        self.type,
                        frame=st.index,
                        opcode=frame.opcode.name.lower(),
                        length=len(frame.data),
                    )
                    await self.apply(stub, st, raw, frame, c.ts)
                else:
                    stub.held.popleft()
                    stub.send(Chunk(raw, c.ts))
                    if frame is not None:
                        self.passed(stub, st, c.ts)

    async def apply(self, stub: Stub, st: FrameState, raw: bytes, frame: Frame, ts: float) -> None:
        stub.held.popleft()
        stub.send(Chunk(raw, ts))

    def passed(self, stub: Stub, st: FrameState, ts: float) -> None:
        """Called after each frame forwarded unselected."""

    def release_all(self, stub: Stub, st: FrameState, ts: float) -> None:
        for _, raw in st.held:
            stub.send(Chunk(raw, ts))
        st.held.clear()


@register
class WsDrop(FrameToxic):
    """Drop the selected frames."""

    type = "ws_drop"
    struct = "WsDropToxic"

    async def apply(self, stub: Stub, st: FrameState, raw: bytes, frame: Frame, ts: float) -> None:
        stub.held.popleft()


@register
class WsDelay(FrameToxic):
    """Hold each selected frame ``delay`` ms; later frames wait behind it, as on TCP."""

    type = "ws_delay"
    struct = "WsDelayToxic"
    fields = {**FrameToxic.fields, "delay": "int64"}

    async def apply(self, stub: Stub, st: FrameState, raw: bytes, frame: Frame, ts: float) -> None:
        await stub.sleep(self.attributes["delay"] / 1000)
        stub.held.popleft()
        stub.send(Chunk(raw, ts))


@register
class WsDuplicate(FrameToxic):
    """Send each selected frame ``copies`` extra times (default 1)."""

    type = "ws_duplicate"
    struct = "WsDuplicateToxic"
    fields = {**FrameToxic.fields, "copies": "int64"}

    def validate(self, attributes: dict[str, Any]) -> None:
        super().validate(attributes)
        if attributes["copies"] > MAX_COPIES:
            raise BAD_REQUEST_BODY.joined(f"copies must be at most {MAX_COPIES}")

    async def apply(self, stub: Stub, st: FrameState, raw: bytes, frame: Frame, ts: float) -> None:
        stub.held.popleft()
        for _ in range(1 + max(1, self.attributes["copies"])):
            stub.send(Chunk(raw, ts))


@register
class WsReorder(FrameToxic):
    """Hold each selected frame until ``by`` later frames (default 1) have overtaken it.

    Held frames are released before a Close frame and at EOF, never lost.
    """

    type = "ws_reorder"
    struct = "WsReorderToxic"
    fields = {**FrameToxic.fields, "by": "int64"}

    async def apply(self, stub: Stub, st: FrameState, raw: bytes, frame: Frame, ts: float) -> None:
        stub.held.popleft()
        st.held.append([max(1, self.attributes["by"]), raw])

    def passed(self, stub: Stub, st: FrameState, ts: float) -> None:
        keep = []
        for entry in st.held:
            entry[0] -= 1
            if entry[0] <= 0:
                stub.send(Chunk(entry[1], ts))
            else:
                keep.append(entry)
        st.held = keep


@register
class WsCorrupt(FrameToxic):
    """Flip every bit of one payload byte (chosen with the seeded rng) of each selected frame.

    A corrupted text frame is usually invalid UTF-8, so a conforming peer
    closes with 1007; a binary frame arrives with one wrong byte.
    """

    type = "ws_corrupt"
    struct = "WsCorruptToxic"

    async def apply(self, stub: Stub, st: FrameState, raw: bytes, frame: Frame, ts: float) -> None:
        stub.held.popleft()
        if frame.data:
            start = len(raw) - len(frame.data)  # the payload is the frame's tail
            at = start + stub.rng.randrange(len(frame.data))
            raw = raw[:at] + bytes([raw[at] ^ 0xFF]) + raw[at + 1 :]
        stub.send(Chunk(raw, ts))
