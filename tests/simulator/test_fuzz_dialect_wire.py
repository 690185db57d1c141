"""Fuzzing each dialect through the real server: frames over real websockets to a Simulator.

Per dialect (reference, mixer, ringcentral) one Simulator listens on loopback with one
bystander session, subscribed, connected like a real client. Each example opens a fresh
connection (authenticated or not), sends one to three frames and, unless the last one
leaves a fragmented message open or is one that closes the connection, a *probe* the
dialect must answer (a ping, Mixer's
``optOutEvents``, a RingCentral ``Heartbeat``), then reads until the probe's answer or a
close, within ``DEADLINE``. Frames (tests/protocol/dialect_frames.py): text shaped like
the dialect's packets with wrong shapes, huge numbers, deep nesting and lone surrogates,
mutated or random text, text frames that are not UTF-8, binary frames, fragmented
messages (with a ping between fragments, left unfinished, or a stray continuation),
and a frame over the size limit.

Properties, per example:

- the exchange ends (probe answered or connection closed) within ``DEADLINE``: no hang;
- a close is one the dialect documents for bad input (1002, 1003, 1007, 1008, 1009) with
  a reason; never 1011 (a simulator bug) and never a connection cut without a close;
- every frame the server sent is UTF-8 and decodes with the dialect's ``decode_server``;
- one frame whose class is known gets its documented answer (docs/protocol.md §9,
  docs/dialects/mixer.md and ringcentral.md, "Bad input"): binary -> 1003 (RingCentral:
  an ``Error`` 400 first), not UTF-8 -> 1007, too big -> 1009, a stray continuation ->
  1002, an unfinished message -> 1008 after ``FRAGMENT_TIMEOUT``, text that is not JSON
  -> 1007 (reference), a ``UNOTJSON`` reply and the session lives (Mixer), an ``Error``
  400 ``WSG-400`` and 1007 (RingCentral);
- the server logged nothing at ERROR and recorded no ``internal_error``.

After each round (and at the end of the CI pass) the bystander is still connected, has
seen nothing, and receives a publication.

``pytest`` runs a bounded, derandomized pass (``CI_EXAMPLES`` per dialect, a few seconds
in all). ``SQUALL_FUZZ_LONG=1`` runs ``SQUALL_FUZZ_EXAMPLES`` (default 100,000) random
examples per dialect in rounds of ``ROUND``, stopping after ``SQUALL_FUZZ_SECONDS`` per
dialect if set; between rounds protocol time jumps past the recovery window, so the
detached sessions of the round expire and memory stays flat::

    SQUALL_FUZZ_LONG=1 SQUALL_FUZZ_SECONDS=300 .venv/bin/python -m pytest -p no:cacheprovider \\
        tests/simulator/test_fuzz_dialect_wire.py -s
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidState
from websockets.frames import Frame, Opcode

from squall.clock import ManualClock
from squall.protocol import codec, mixer
from squall.protocol import genesys as gx
from squall.protocol import ringcentral as rc
from squall.protocol.errors import ProtocolError
from squall.simulator import Simulator
from squall.simulator.core import Config
from squall.simulator.sio import wire as wire_sio

from ..protocol.dialect_frames import (
    eio3_bodies,
    eio4_bodies,
    strict_json,
    texts,
    utf8,
)

#: the dialects on the Simulator's own WebSocket endpoint (rtccafe is Engine.IO: see below)
WS_DIALECTS = ("reference", "mixer", "ringcentral", "genesys")

LONG = os.environ.get("SQUALL_FUZZ_LONG", "") not in ("", "0")
CI_EXAMPLES = 60
EXAMPLES = int(os.environ.get("SQUALL_FUZZ_EXAMPLES", "100000")) if LONG else CI_EXAMPLES
SECONDS = float(os.environ.get("SQUALL_FUZZ_SECONDS", "0") or 0)
ROUND = 2_000

DEADLINE = 10.0  # real seconds an exchange may take: generous, reached only when broken
FRAGMENT_TIMEOUT = 0.25  # real seconds: an unfinished message is closed this soon
MAX_SIZE = 1 << 16  # bytes per message: small, so the too-big case is cheap
TOPIC = "bystander-news"
PROBE_BASE = 987_000_000  # probe ids: far from what the strategies draw
#: close codes bad input may earn (docs/protocol.md §9, docs/dialects/*.md "Bad input")
BAD_INPUT_CLOSES = {1002, 1003, 1007, 1008, 1009}

pytestmark = pytest.mark.timeout(0 if LONG else 120)


# -- what is sent -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Send:
    """One WebSocket frame as the client writes it, valid framing or not."""

    opcode: Opcode
    data: bytes
    fin: bool = True

    def __repr__(self) -> str:
        return f"Send({self.opcode.name}, {self.data[:120]!r}{'' if self.fin else ', fin=False'})"


@dataclass(frozen=True)
class Case:
    """One example: a connection (authenticated or not), its frames, and what class the
    single frame of a one-frame case is (None: no documented answer to predict)."""

    authenticated: bool
    frames: tuple[Send, ...]
    kind: str | None = None
    leaves_open: bool = False


@st.composite
def messages(draw: st.DrawFn, dialect: str) -> tuple[list[Send], str | None, bool]:
    """The frames of one message, the class of it, and whether it is left unfinished."""
    choice = draw(st.integers(0, 39))
    if choice <= 23:
        text = draw(texts(dialect))
        data = utf8(text)
        if len(data) > MAX_SIZE:  # websockets refuses it before any codec reads it
            return [Send(Opcode.TEXT, data)], "too_big", False
        if not _is_utf8(data):
            return [Send(Opcode.TEXT, data)], "not_utf8", False
        return [Send(Opcode.TEXT, data)], None if _readable(dialect, text) else "not_json", False
    if choice <= 27:
        data = draw(st.one_of(st.binary(max_size=64), texts(dialect).map(utf8)))
        return [Send(Opcode.BINARY, data)], "binary", False
    if choice <= 35:  # a message in fragments, maybe with a ping between them
        opcode = draw(st.sampled_from([Opcode.TEXT, Opcode.TEXT, Opcode.TEXT, Opcode.BINARY]))
        data = utf8(draw(texts(dialect)))
        cuts = sorted(draw(st.lists(st.integers(0, len(data)), min_size=1, max_size=4)))
        parts = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        sends = [Send(opcode if i == 0 else Opcode.CONT, p, fin=False) for i, p in enumerate(parts)]
        unfinished = draw(st.integers(0, 15)) == 0
        if not unfinished:
            last = sends[-1]
            sends[-1] = Send(last.opcode, last.data, fin=True)
        if draw(st.booleans()):  # a control frame between fragments (or after the message)
            sends.insert(draw(st.integers(1, len(sends))), Send(Opcode.PING, b"between"))
        if len(data) > MAX_SIZE:
            return sends, "too_big", unfinished
        if unfinished:
            return sends, "unfinished", True
        if opcode is Opcode.BINARY:
            return sends, "binary", False
        if not _is_utf8(data):
            return sends, "not_utf8", False
        return sends, None if _readable(dialect, data.decode()) else "not_json", False
    if choice <= 37:
        return [Send(Opcode.CONT, draw(st.binary(max_size=16)))], "stray_continuation", False
    return [Send(Opcode.TEXT, b'"' + b"x" * MAX_SIZE + b'"')], "too_big", False


def _readable(dialect: str, text: str) -> bool:
    """JSON for the JSON dialects; one element that parses, for genesys ("not_json" is then
    the class of a message the codec refuses: its stream error and close)."""
    if dialect != "genesys":
        return strict_json(text)
    try:
        gx.parse(text, max_size=MAX_SIZE)
    except ProtocolError:
        return False
    return True


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@st.composite
def cases(draw: st.DrawFn, dialect: str) -> Case:
    # RingCentral has no unauthenticated state: a socket without its token is refused at once.
    authenticated = dialect == "ringcentral" or draw(st.integers(0, 3)) > 0
    count = draw(st.integers(1, 3))
    frames: list[Send] = []
    kind = None
    drawn = 0
    for _ in range(count):
        sends, kind, leaves_open = draw(messages(dialect))
        frames += sends
        drawn += 1
        if leaves_open:
            break
    return Case(authenticated, tuple(frames), kind if drawn == 1 else None, leaves_open)


# -- each dialect's client side -----------------------------------------------------------------


@dataclass
class Outcome:
    frames: list[str | bytes] = field(default_factory=list)
    rcvd: Any = None  # the server's close frame, if any
    sent: Any = None  # the client's close frame, if any
    closed: bool = False


class Wire:
    """What the fuzzer needs to know of one dialect's client side."""

    name: str

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    async def setup(self) -> None:
        """Anything needed before the first connection (RingCentral: access tokens)."""

    async def open(self, user: str, *, authenticate: bool) -> ClientConnection:
        raise NotImplementedError

    def probe(self, n: int) -> str:
        raise NotImplementedError

    def answers_probe(self, frame: Any, n: int) -> bool:
        raise NotImplementedError

    def decode(self, text: str) -> Any:
        raise NotImplementedError

    async def subscribe(self, ws: ClientConnection) -> None:
        """Subscribe the bystander to ``TOPIC``."""

    def is_publication(self, frame: Any, marker: str) -> bool:
        raise NotImplementedError

    def check_not_json(self, out: Outcome, where: str) -> None:
        raise NotImplementedError

    def check_refused_frame(self, out: Outcome, code: int, where: str) -> None:
        """A frame the dialect refuses with a close of its own (binary: 1003)."""
        assert out.rcvd is not None and out.rcvd.code == code, where

    def ends_normally(self, case: Case) -> bool:
        """True if the case may end in a 1000 close (a client's own end of stream)."""
        return False


async def _recv_json(ws: ClientConnection) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), DEADLINE))


def _connect(url: str) -> Any:
    # no keepalive pings: their payload would come from the global `random`
    return connect(url, compression=None, proxy=None, max_size=None, ping_interval=None)


class ReferenceWire(Wire):
    name = "reference"

    async def open(self, user: str, *, authenticate: bool) -> ClientConnection:
        if not authenticate:
            return await _connect(self.sim.url)
        ws = await _connect(f"{self.sim.url}?token={user}")
        assert (await _recv_json(ws))["type"] == "authenticated"
        return ws

    def probe(self, n: int) -> str:
        return json.dumps({"type": "ping", "id": f"probe-{n}"})

    def answers_probe(self, frame: Any, n: int) -> bool:
        return frame.get("type") == "pong" and frame.get("id") == f"probe-{n}"

    def decode(self, text: str) -> Any:
        codec.decode_server(text)
        return json.loads(text)

    async def subscribe(self, ws: ClientConnection) -> None:
        await ws.send(json.dumps({"type": "subscribe", "id": 1, "topics": [TOPIC]}))
        assert (await _recv_json(ws))["type"] == "subscribed"

    def is_publication(self, frame: Any, marker: str) -> bool:
        return frame.get("type") == "notification" and frame.get("payload") == marker

    def check_not_json(self, out: Outcome, where: str) -> None:
        assert out.rcvd is not None and out.rcvd.code == 1007, where


class MixerWire(Wire):
    name = "mixer"

    async def open(self, user: str, *, authenticate: bool) -> ClientConnection:
        ws = await _connect(self.sim.url + "chat?version=1.0&Client-ID=fuzz")
        welcome = await _recv_json(ws)
        assert welcome["event"] == "WelcomeEvent", welcome
        if authenticate:
            await ws.send(
                json.dumps({"type": "method", "method": "auth", "arguments": [1, 2, user], "id": 0})
            )
            reply = await _recv_json(ws)
            assert reply["id"] == 0 and reply["data"]["authenticated"] is True, reply
        return ws

    def probe(self, n: int) -> str:
        packet = {"type": "method", "method": "optOutEvents", "arguments": [], "id": PROBE_BASE + n}
        return json.dumps(packet)

    def answers_probe(self, frame: Any, n: int) -> bool:
        return frame.get("type") == "reply" and frame.get("id") == PROBE_BASE + n

    def decode(self, text: str) -> Any:
        mixer.decode_server(text)
        return json.loads(text)

    def is_publication(self, frame: Any, marker: str) -> bool:
        return frame == {"type": "event", "event": TOPIC, "data": marker}

    def check_not_json(self, out: Outcome, where: str) -> None:
        assert not out.closed, f"{where}: closed, not answered"
        unotjson = {"type": "reply", "error": "UNOTJSON", "id": None, "data": None}
        assert out.frames and json.loads(out.frames[0]) == unotjson, where


class RingCentralWire(Wire):
    name = "ringcentral"
    uri = ""
    wsats: dict[str, str]

    async def setup(self) -> None:
        self.wsats = {}
        async with aiohttp.ClientSession() as http:
            for user in ("fuzz", "bystander"):
                headers = {"Authorization": f"Bearer {user}"}
                url = f"{self.sim.http_url}/restapi/oauth/wstoken"
                async with http.post(url, headers=headers) as resp:
                    body = await resp.json()
                    assert resp.status == 200, body
                self.uri, self.wsats[user] = body["uri"], body["ws_access_token"]

    async def open(self, user: str, *, authenticate: bool) -> ClientConnection:
        ws = await _connect(f"{self.uri}?access_token={self.wsats[user]}")
        details = await _recv_json(ws)
        assert details[0]["type"] == "ConnectionDetails", details
        return ws

    def probe(self, n: int) -> str:
        return json.dumps([{"type": "Heartbeat", "messageId": f"probe-{n}"}])

    def answers_probe(self, frame: Any, n: int) -> bool:
        meta = frame[0]
        return meta.get("type") == "Heartbeat" and meta.get("messageId") == f"probe-{n}"

    def decode(self, text: str) -> Any:
        rc.decode_server(text)
        return json.loads(text)

    async def subscribe(self, ws: ClientConnection) -> None:
        meta = {
            "type": "ClientRequest",
            "messageId": "sub-1",
            "method": "POST",
            "path": "/restapi/v1.0/subscription",
            "headers": {},
        }
        body = {"eventFilters": [TOPIC], "deliveryMode": {"transportType": "WebSocket"}}
        await ws.send(json.dumps([meta, body]))
        answer = await _recv_json(ws)
        assert answer[0]["messageId"] == "sub-1" and answer[0]["status"] == 200, answer

    def is_publication(self, frame: Any, marker: str) -> bool:
        body = frame[1] if len(frame) > 1 else {}
        return frame[0].get("type") == "ServerNotification" and body.get("body") == marker

    def _error_first(self, out: Outcome, where: str) -> None:
        assert out.frames, f"{where}: no Error frame before the close"
        meta, body = json.loads(out.frames[0])
        assert (meta["type"], meta["status"], body["errorCode"]) == ("Error", 400, "WSG-400"), where

    def check_not_json(self, out: Outcome, where: str) -> None:
        self._error_first(out, where)
        assert out.rcvd is not None and out.rcvd.code == 1007, where

    def check_refused_frame(self, out: Outcome, code: int, where: str) -> None:
        self._error_first(out, where)
        super().check_refused_frame(out, code, where)


class GenesysWire(Wire):
    """XMPP over WebSocket on a notification channel (each message one element)."""

    name = "genesys"
    channels: dict[str, str]
    OPEN = f'<open xmlns="{gx.NS_FRAMING}" to="squall.test" version="1.0"/>'
    #: the conditions a refused message may earn (docs/dialects/genesys.md, "Bad input")
    REFUSALS = {"not-well-formed", "restricted-xml", "policy-violation", "unsupported-encoding"}

    async def setup(self) -> None:
        self.channels = {}
        async with aiohttp.ClientSession() as http:
            for user in ("fuzz", "bystander"):
                headers = {"Authorization": f"Bearer {user}"}
                url = f"{self.sim.http_url}/api/v2/notifications/channels"
                async with http.post(url, headers=headers) as resp:
                    body = await resp.json()
                    assert resp.status == 200, body
                self.channels[user] = body["id"]

    async def _expect(self, ws: ClientConnection, name: str) -> gx.Element:
        el = gx.parse(await asyncio.wait_for(ws.recv(), DEADLINE))
        assert el.name == name, f"expected <{name}>, got {el}"
        return el

    async def open(self, user: str, *, authenticate: bool) -> ClientConnection:
        url = f"{self.sim.url}stream/channels/{self.channels[user]}"
        ws = await connect(
            url,
            compression=None,
            proxy=None,
            max_size=None,
            ping_interval=None,
            subprotocols=["xmpp"],  # type: ignore[list-item]
        )
        await ws.send(self.OPEN)
        await self._expect(ws, "open")
        await self._expect(ws, "features")
        if not authenticate:
            return ws
        plain = base64.b64encode(f"\0{user}@squall.test\0authKey:{user}".encode()).decode()
        await ws.send(f'<auth xmlns="{gx.NS_SASL}" mechanism="PLAIN">{plain}</auth>')
        await self._expect(ws, "success")
        await ws.send(self.OPEN)
        await self._expect(ws, "open")
        await self._expect(ws, "features")
        await ws.send(
            f'<iq xmlns="jabber:client" type="set" id="bind"><bind xmlns="{gx.NS_BIND}"/></iq>'
        )
        assert (await self._expect(ws, "iq")).get("type") == "result"
        return ws

    def probe(self, n: int) -> str:
        ping = f'<ping xmlns="{gx.NS_PING}"/>'
        return f'<iq xmlns="jabber:client" type="get" id="probe-{n}">{ping}</iq>'

    def answers_probe(self, frame: Any, n: int) -> bool:
        return bool(
            frame.name == "iq" and frame.get("id") == f"probe-{n}" and frame.get("type") == "result"
        )

    def decode(self, text: str) -> Any:
        return gx.parse(text)

    async def subscribe(self, ws: ClientConnection) -> None:
        sub = f'<subscribe node="{TOPIC}" jid="bystander@squall.test"/>'
        await ws.send(
            f'<iq xmlns="jabber:client" type="set" id="sub-1">'
            f'<pubsub xmlns="{gx.NS_PUBSUB}">{sub}</pubsub></iq>'
        )
        answer = await self._expect(ws, "iq")
        assert answer.get("id") == "sub-1" and answer.get("type") == "result", answer

    def is_publication(self, frame: Any, marker: str) -> bool:
        if frame.name != "message":
            return False
        event = frame.child("event", gx.NS_PUBSUB_EVENT)
        items = event.child("items") if event is not None else None
        item = items.child("item") if items is not None else None
        body = item.child("json", gx.NS_JSON) if item is not None else None
        return body is not None and json.loads(body.text).get("eventBody") == marker

    def check_not_json(self, out: Outcome, where: str) -> None:
        """A message the codec refuses: a stream error naming why, ``<close/>``, a close."""
        elements = [gx.parse(t) for t in out.frames if isinstance(t, str)]
        errors = [e for e in elements if (e.ns, e.name) == (gx.NS_STREAM, "error")]
        assert errors, f"{where}: no stream error"
        conditions = {c.name for c in errors[-1].children if c.ns == gx.NS_STREAMS} - {"text"}
        assert conditions and conditions <= self.REFUSALS, f"{where}: {conditions}"
        assert elements[-1].name == "close", f"{where}: no <close/> last"
        assert out.rcvd is not None and out.rcvd.code in (1007, 1009), where

    def ends_normally(self, case: Case) -> bool:
        """A client ``<close/>`` or stream error: the server closes 1000 (RFC 6120 §4.4)."""
        sent = b"".join(f.data for f in case.frames)
        return b"close" in sent or b"error" in sent


WIRES: dict[str, type[Wire]] = {
    "reference": ReferenceWire,
    "mixer": MixerWire,
    "ringcentral": RingCentralWire,
    "genesys": GenesysWire,
}


# -- the target ----------------------------------------------------------------------------------


class _ErrorLog(logging.Handler):
    def __init__(self, sink: list[str]) -> None:
        super().__init__(logging.ERROR)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(f"{record.name}: {record.getMessage()} {record.exc_info or ''}")


class Target:
    """One dialect's Simulator on its own event loop, with a subscribed bystander."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        self.loop = asyncio.new_event_loop()
        self.clock = ManualClock()  # protocol time stands still unless a round moves it
        self.sim = Simulator(
            clock=self.clock,
            dialect=dialect,
            config=Config(max_message_size=MAX_SIZE),
            fragment_timeout=FRAGMENT_TIMEOUT,
            transcript_max_records=5000,
        )
        self.wire = WIRES[dialect](self.sim)
        self.errors: list[str] = []
        self._log = _ErrorLog(self.errors)
        self.examples = 0
        self.closes: dict[int | None, int] = {}
        self.probes = itertools.count()
        self.internal_errors = 0
        self.bystander: ClientConnection | None = None
        self.seen: list[Any] = []  # what the bystander received
        self.markers: list[str] = []  # what was published to it
        self._reader: asyncio.Task[None] | None = None

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(asyncio.wait_for(coro, DEADLINE * 3))

    def start(self) -> None:
        logging.getLogger().addHandler(self._log)
        self.loop.set_exception_handler(
            lambda loop, ctx: self.errors.append(
                f"loop: {ctx.get('message')} {ctx.get('exception')!r}"
            )
        )
        self.run(self._start())

    async def _start(self) -> None:
        await self.sim.start()
        self.sim.core.transcript.listen(self._watch)
        await self.wire.setup()
        self.bystander = await self.wire.open("bystander", authenticate=True)
        await self.wire.subscribe(self.bystander)
        self._reader = asyncio.create_task(self._read_bystander())

    def _watch(self, record: dict[str, Any]) -> None:
        if record["kind"] == "internal_error":
            self.internal_errors += 1
            self.errors.append(f"internal_error: {record}")

    async def _read_bystander(self) -> None:
        assert self.bystander is not None
        with contextlib.suppress(ConnectionClosed):
            async for text in self.bystander:
                self.seen.append(self.wire.decode(text) if isinstance(text, str) else text)

    def stop(self) -> None:
        async def _stop() -> None:
            if self.bystander is not None:
                await self.bystander.close()
            if self._reader is not None:
                await self._reader
            await self.sim.stop()

        try:
            self.run(_stop())
        finally:
            self.loop.close()
            logging.getLogger().removeHandler(self._log)

    # -- one example --

    def closes_on(self, kind: str | None) -> bool:
        """True if the one frame of this class is answered with a close: no probe then (a
        frame after it would be served anyway: see test_no_frame_is_served_after_a_close)."""
        if kind == "not_json":
            return self.dialect != "mixer"
        return kind in ("binary", "not_utf8", "too_big", "stray_continuation")

    async def exchange(self, case: Case) -> Outcome:
        ws = await self.wire.open("fuzz", authenticate=case.authenticated)
        n = next(self.probes)
        out = Outcome()
        try:
            try:
                for send in case.frames:
                    ws.protocol.send_frame(Frame(send.opcode, send.data, fin=send.fin))
                    ws.send_data()
                if not (case.leaves_open or self.closes_on(case.kind)):
                    await ws.send(self.wire.probe(n))
            except (ConnectionClosed, InvalidState):
                pass  # the server closed already: read what it said
            while True:
                try:
                    text = await asyncio.wait_for(ws.recv(), DEADLINE)
                except ConnectionClosed as exc:
                    out.rcvd, out.sent, out.closed = exc.rcvd, exc.sent, True
                    return out
                out.frames.append(text)
                assert isinstance(text, str), f"a binary frame from the server: {text[:100]!r}"
                if self.wire.answers_probe(self.wire.decode(text), n):
                    return out
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), DEADLINE)

    def check(self, case: Case) -> None:
        logged = len(self.errors)
        started = time.monotonic()
        out = self.run(self.exchange(case))
        took = time.monotonic() - started
        self.examples += 1
        where = f"{self.dialect}: {case!r} -> {out!r}"
        assert took < DEADLINE, f"{where}: took {took:.1f}s"
        for text in out.frames:
            try:
                self.wire.decode(text)  # type: ignore[arg-type]
            except (ProtocolError, ValueError) as exc:
                raise AssertionError(f"{where}: the server sent {text!r:.300}: {exc}") from None
        if out.closed:
            code = out.rcvd.code if out.rcvd is not None else None
            self.closes[code] = self.closes.get(code, 0) + 1
            assert out.rcvd is not None, f"{where}: cut without a close frame (sent {out.sent})"
            normal = code == 1000 and self.wire.ends_normally(case)
            assert code in BAD_INPUT_CLOSES or normal, f"{where}: closed {code} {out.rcvd.reason!r}"
            assert out.rcvd.reason.strip(), f"{where}: a close without a reason"
        else:
            self.closes[None] = self.closes.get(None, 0) + 1
        expected = {"binary": 1003, "not_utf8": 1007, "too_big": 1009, "stray_continuation": 1002}
        if case.kind in expected:
            if case.kind == "binary":
                self.wire.check_refused_frame(out, 1003, where)
            else:
                assert out.rcvd is not None and out.rcvd.code == expected[case.kind], where
        elif case.kind == "unfinished":
            assert out.rcvd is not None and out.rcvd.code == 1008, where
            assert "fragments not completed" in out.rcvd.reason, where
        elif case.kind == "not_json":
            self.wire.check_not_json(out, where)
        assert len(self.errors) == logged, f"{where}: {self.errors[logged:]}"

    def check_bystander(self) -> None:
        """Still connected, has seen nothing of the fuzzing, and a publication reaches it."""
        marker = f"after {self.examples} examples"
        self.markers.append(marker)

        async def _check() -> None:
            self.sim.publish(TOPIC, marker)
            deadline = time.monotonic() + DEADLINE
            while len(self.seen) < len(self.markers) and time.monotonic() < deadline:
                await asyncio.sleep(0.005)

        self.run(_check())
        assert len(self.seen) == len(self.markers), f"the bystander got {self.seen[-3:]}"
        for frame, sent in zip(self.seen, self.markers, strict=True):
            assert self.wire.is_publication(frame, sent), f"the bystander got {frame}"
        assert self._reader is not None and not self._reader.done(), "the bystander was closed"
        assert not self.errors, self.errors

    def next_round(self) -> None:
        """Let the round's detached sessions expire (and renew RingCentral's tokens)."""
        self.clock.advance(self.sim.core.config.recovery_window + 1)
        self.run(self.wire.setup())


@pytest.fixture(scope="module", params=WS_DIALECTS)
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    t = Target(request.param)
    t.start()
    try:
        yield t
    finally:
        t.stop()
        print(
            f"\nwire fuzz {t.dialect}: {t.examples} examples, "
            f"closes {sorted(t.closes.items(), key=str)}",
            file=sys.stderr,
        )


def run_round(target: Target, examples: int, *, deterministic: bool) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=deterministic,
        database=None,
        print_blob=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(cases(target.dialect))
    def fuzz(case: Case) -> None:
        target.check(case)

    fuzz()


def test_fuzz_a_dialect_over_the_wire(target: Target) -> None:
    if not LONG:
        run_round(target, EXAMPLES, deterministic=True)
        target.check_bystander()
        return
    started = time.monotonic()
    while target.examples < EXAMPLES and not (SECONDS and time.monotonic() - started > SECONDS):
        run_round(target, min(ROUND, EXAMPLES - target.examples), deterministic=False)
        target.check_bystander()
        target.next_round()
        print(
            f"wire fuzz {target.dialect}: {target.examples} examples in "
            f"{time.monotonic() - started:.0f}s, closes {sorted(target.closes.items(), key=str)}",
            file=sys.stderr,
            flush=True,
        )
    target.check_bystander()


# -- what the fuzzer found -------------------------------------------------------------------------


async def test_no_frame_is_served_after_a_close() -> None:
    """Found by the wire fuzzer: a frame before auth is closed 1008, but an ``auth`` frame in
    the same TCP segment is still served: the client is sent ``authenticated`` (and a
    recovery token) before the 1008 close, and a session exists. The 1008 rule is bypassed."""
    async with Simulator() as sim:
        async with _connect(sim.url) as ws:
            ws.protocol.send_text(b'{"type": "ping", "id": 1}')
            ws.protocol.send_text(b'{"type": "auth", "token": "mallory"}')
            ws.send_data()  # both frames in one write, as a fast client sends them
            got = []
            with contextlib.suppress(ConnectionClosed):
                while True:
                    got.append(json.loads(await asyncio.wait_for(ws.recv(), DEADLINE)))
            assert ws.close_code == 1008
        assert got == [], f"served after the close: {got}"
        assert sim.core.sessions == {}


@pytest.mark.parametrize(
    ("dialect", "text"),
    [
        ("mixer", '{"type": "method", "method": "auth", "arguments": [1e400], "id": 1}'),
        ("ringcentral", '[{"type": "Heartbeat", "messageId": "\\ud800"}]'),
        (
            "ringcentral",
            '[{"type": "Heartbeat", "messageId": "m1"}, ' + "[" * 5000 + "]" * 5000 + "]",
        ),
    ],
)
def test_json_no_peer_can_be_answered_with_gets_the_documented_answer(
    dialect: str, text: str
) -> None:
    """Found by the fuzzers: the dialect read these, then failed writing what it answers or
    records (Mixer re-encodes ``auth`` for the transcript; RingCentral echoes ``messageId``;
    RingCentral's decoder overflowed the stack): 1011 and a traceback. Now the answer is the
    one for a frame that is not JSON: Mixer's ``UNOTJSON`` reply, RingCentral's WSG-400 + 1007."""
    target = Target(dialect)
    target.start()
    try:
        out = target.run(
            target.exchange(Case(True, (Send(Opcode.TEXT, text.encode()),), "not_json"))
        )
        target.wire.check_not_json(out, f"{text[:80]} -> {out}")
        assert not target.errors, target.errors
        target.check_bystander()
    finally:
        target.stop()


# -- rtccafe: Socket.IO over Engine.IO, on its own transport -----------------------------------
#
# No WebSocket close codes to predict here: Engine.IO ends a connection with its own close
# packet. Each example is one of: Engine.IO v4 over a WebSocket (``/socket.io/?EIO=4&
# transport=websocket``: text messages, mostly ``4`` + a Socket.IO packet, raw Engine.IO
# packets, binary attachments), then a probe (``40/rtc-cafe,`` twice, for a binary packet
# left waiting and a namespace left, and a ``request-sid``) answered with ``sid``; or one
# long-polling POST body, v4 or v3, answered 200 or a 400 that says what was wrong.
# Properties: the exchange ends within DEADLINE; every packet the server sent is an
# Engine.IO packet whose Socket.IO packet reads with strict JSON; nothing logged at ERROR,
# no internal_error; after each round the bystander (python-socketio's AsyncClient, in
# the namespace) still answers ``request-sid`` and has been sent nothing else.

NS = "/rtc-cafe"
SIO_PROBE = (f"0{NS},", f"0{NS},", f'2{NS},["request-sid",{{}}]')  # Socket.IO packets


@dataclass(frozen=True)
class SioCase:
    how: str  # "ws", "poll4", "poll3"
    frames: tuple[str | bytes, ...] = ()
    content_type: str = ""


@st.composite
def sio_cases(draw: st.DrawFn) -> SioCase:
    how = draw(st.sampled_from(["ws", "ws", "ws", "poll4", "poll3"]))
    if how == "poll4":
        return SioCase(how, (draw(eio4_bodies()),))
    if how == "poll3":
        body, content_type = draw(eio3_bodies())
        return SioCase(how, (body,), content_type)
    message = st.one_of(
        texts("rtccafe").map(lambda t: "4" + t),
        texts("rtccafe").map(lambda t: "4" + t),
        st.sampled_from(["", "x", "0", "2", "3", "2probe", "5", "6", "4", "7"]),
        st.binary(max_size=24),
    )
    return SioCase(how, tuple(draw(st.lists(message, min_size=1, max_size=3))))


class SioTarget:
    """An rtccafe Simulator on its own loop, with a python-socketio bystander in the room."""

    def __init__(self) -> None:
        import socketio  # type: ignore[import-untyped]

        self.loop = asyncio.new_event_loop()
        self.sim = Simulator(
            clock=ManualClock(), dialect="rtccafe", config=Config(max_message_size=MAX_SIZE)
        )
        self.errors: list[str] = []
        self._log = _ErrorLog(self.errors)
        self.examples = 0
        self.outcomes: dict[str, int] = {}
        self.bystander = socketio.AsyncClient(reconnection=False)
        self.seen: list[tuple[str, Any]] = []
        self.bystander.on("*", self._heard, namespace=NS)

    async def _heard(self, event: str, *args: Any) -> None:
        self.seen.append((event, args))

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(asyncio.wait_for(coro, DEADLINE * 3))

    def start(self) -> None:
        logging.getLogger().addHandler(self._log)
        self.loop.set_exception_handler(
            lambda loop, ctx: self.errors.append(
                f"loop: {ctx.get('message')} {ctx.get('exception')!r}"
            )
        )

        async def _start() -> None:
            await self.sim.start()
            self.sim.core.transcript.listen(self._watch)
            await self.bystander.connect(
                self.sim.url, namespaces=[NS], transports=["websocket"], wait_timeout=DEADLINE
            )
            await self.bystander.emit("join", {"room": "lobby", "id": "bystander"}, namespace=NS)

        self.run(_start())

    def _watch(self, record: dict[str, Any]) -> None:
        if record["kind"] == "internal_error":
            self.errors.append(f"internal_error: {record}")

    def stop(self) -> None:
        async def _stop() -> None:
            await self.bystander.disconnect()
            await self.sim.stop()

        try:
            self.run(_stop())
        finally:
            self.loop.close()
            logging.getLogger().removeHandler(self._log)

    @staticmethod
    def check_packet(packet: str | bytes, where: str) -> None:
        """One Engine.IO packet from the server: a message's Socket.IO packet must read back."""
        if isinstance(packet, bytes):
            return  # an attachment
        assert packet and packet[0] in "0123456", f"{where}: server sent {packet[:100]!r}"
        if packet[0] == "4" and packet[1:]:
            try:
                wire_sio._ClientPacket(encoded_packet=packet[1:])
            except ValueError as exc:
                raise AssertionError(f"{where}: server sent {packet[:200]!r}: {exc}") from None

    async def _ws(self, case: SioCase, where: str) -> str:
        url = self.sim.url.replace("http", "ws", 1) + "socket.io/?EIO=4&transport=websocket"
        async with _connect(url) as ws:
            opening = await asyncio.wait_for(ws.recv(), DEADLINE)
            assert isinstance(opening, str) and opening[0] == "0", opening
            await ws.send(f"40{NS},")
            try:
                for frame in (*case.frames, *(f"4{p}" for p in SIO_PROBE)):
                    if isinstance(frame, str):  # raw bytes: a lone surrogate is not UTF-8
                        ws.protocol.send_text(utf8(frame))
                    else:
                        ws.protocol.send_binary(frame)
                    ws.send_data()
                while True:
                    packet = await asyncio.wait_for(ws.recv(), DEADLINE)
                    self.check_packet(packet, where)
                    if isinstance(packet, str) and packet.startswith(f'42{NS},["sid",'):
                        return "answered"
                    if packet == "2":
                        await ws.send("3")
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd is not None else None
                return f"closed {code}"

    async def _poll(self, case: SioCase, where: str) -> str:
        version = "3" if case.how == "poll3" else "4"
        base = f"{self.sim.url}socket.io/?EIO={version}&transport=polling"
        timeout = aiohttp.ClientTimeout(DEADLINE)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            async with http.get(base) as r:
                assert r.status == 200, await r.text()
                body = await r.text()
            handshake = json.loads(body[body.index("{") : body.rindex("}") + 1])
            url = f"{base}&sid={handshake['sid']}"
            headers = {"Content-Type": case.content_type} if case.content_type else {}
            async with http.post(url, data=case.frames[0], headers=headers) as r:
                text = await r.text()
                assert r.status in (200, 400), f"{where}: {r.status} {text[:200]!r}"
                if r.status == 400:
                    assert text.strip(), f"{where}: a 400 without a reason"
                    return "refused"
            async with http.post(url, data=b"1" if version == "4" else b"1:1") as r:
                assert r.status in (200, 400), f"{where}: close: {r.status}"
            return "ok"

    def check(self, case: SioCase) -> None:
        logged = len(self.errors)
        where = f"rtccafe: {case!r:.600}"
        started = time.monotonic()
        outcome = self.run(self._ws(case, where) if case.how == "ws" else self._poll(case, where))
        assert time.monotonic() - started < DEADLINE, f"{where}: took too long"
        self.examples += 1
        key = f"{case.how}:{outcome}"
        self.outcomes[key] = self.outcomes.get(key, 0) + 1
        assert len(self.errors) == logged, f"{where}: {self.errors[logged:]}"

    def check_bystander(self) -> None:
        """Still connected, sent nothing by the fuzzing, and ``request-sid`` is answered."""

        async def _check() -> None:
            before = len(self.seen)
            await self.bystander.emit("request-sid", {}, namespace=NS)
            deadline = time.monotonic() + DEADLINE
            while len(self.seen) == before and time.monotonic() < deadline:
                await asyncio.sleep(0.005)

        assert self.bystander.connected, "the bystander was disconnected"
        self.run(_check())
        events = [event for event, _ in self.seen]
        assert events and set(events) == {"sid"}, f"the bystander heard {self.seen[-3:]}"
        assert not self.errors, self.errors


@pytest.fixture(scope="module")
def sio_target() -> Iterator[SioTarget]:
    t = SioTarget()
    t.start()
    try:
        yield t
    finally:
        t.stop()
        print(
            f"\nwire fuzz rtccafe: {t.examples} examples, {sorted(t.outcomes.items())}",
            file=sys.stderr,
        )


def run_sio_round(target: SioTarget, examples: int, *, deterministic: bool) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=deterministic,
        database=None,
        print_blob=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(sio_cases())
    def fuzz(case: SioCase) -> None:
        target.check(case)

    fuzz()


def test_fuzz_rtccafe_over_engine_io(sio_target: SioTarget) -> None:
    if not LONG:
        run_sio_round(sio_target, CI_EXAMPLES, deterministic=True)
        sio_target.check_bystander()
        return
    started = time.monotonic()
    while sio_target.examples < EXAMPLES and not (SECONDS and time.monotonic() - started > SECONDS):
        run_sio_round(sio_target, min(ROUND, EXAMPLES - sio_target.examples), deterministic=False)
        sio_target.check_bystander()
        print(
            f"wire fuzz rtccafe: {sio_target.examples} examples in "
            f"{time.monotonic() - started:.0f}s, {sorted(sio_target.outcomes.items())}",
            file=sys.stderr,
            flush=True,
        )
    sio_target.check_bystander()


@pytest.mark.parametrize(
    "case",
    [
        SioCase("ws", ('42/rtc-cafe,["join",' + "[" * 5000 + "]" * 5000 + "]",)),
        SioCase("ws", ('451-/rtc-cafe,["offer",{"_placeholder":true,"num":7}]', b"\x01")),
        SioCase("ws", ('4²/rtc-cafe,["join",{}]',)),
        SioCase("poll3", (b"1:b",), "text/plain;charset=UTF-8"),
        SioCase("poll3", ("²:4".encode(),), "text/plain;charset=UTF-8"),
        SioCase("ws", ("",)),
        SioCase("ws", ("4true", "4[1]", "4 1", "4null", '4{"a":1}')),
        SioCase("poll4", (b"0",)),
        SioCase("poll4", (b"2",)),
        SioCase("poll4", (b"4" + b'2/rtc-cafe,["request-sid",{}]' + b"\x1e6",)),
    ],
)
def test_rtccafe_input_that_crashed_the_decoders_is_answered(case: SioCase) -> None:
    """Found by the fuzzers (tests/protocol/test_fuzz_dialects.py has the decoder side): a
    RecursionError, an IndexError and a ValueError from the Socket.IO and Engine.IO v3
    decoders, inside the server. Now the packet is answered ``error`` on that session (the
    probe after it is served) and a v3 body is a 400 that says what was wrong. Over the
    WebSocket, an empty message made python-engineio raise in its reader (aiohttp logged
    the traceback at ERROR): now a 1007 close. A message python-engineio reads as JSON
    (``4true``) reached the decoder as a bool: an AttributeError, now an ``error`` answer.
    A v4 POST holding an OPEN, PING or NOOP packet (which no client posts) hung until
    the client gave up: now a 400."""
    target = SioTarget()
    target.start()
    try:
        target.check(case)
        expected = {"ws": "ws:answered", "poll3": "poll3:refused", "poll4": "poll4:refused"}[
            case.how
        ]
        if case.frames == ("",):  # python-engineio raised in its reader: a traceback at ERROR
            expected = "ws:closed 1007"
        assert target.outcomes == {expected: 1}, target.outcomes
        if expected == "ws:answered":
            bad = [r for r in target.sim.core.transcript.since(0) if r.get("op") == "bad_input"]
            assert bad, "no bad_input record"
        target.check_bystander()
    finally:
        target.stop()
