"""Fuzzing every dialect decoder, sans-I/O: any frame in, a value or the documented error out.

Per dialect, each input (dialect_frames.py: structured packets with wrong shapes, huge
numbers, deep nesting, lone surrogates, mutations, random text and bytes) goes to:

- the codec's ``decode_client`` and ``decode_server`` (squall.protocol.codec, .mixer,
  .ringcentral; Mixer's ``auth_arguments`` too, for an ``auth`` method): each returns one
  of its documented types or raises a :class:`~squall.protocol.errors.ProtocolError`
  whose sentence is not empty and whose close code is one the docs list. Anything else
  (a ValueError, a RecursionError, a KeyError) is a crash;
- the codec's ``encode`` of what was decoded: what a decoder accepts, the dialect can
  write back, as UTF-8 JSON by RFC 8259 (no NaN, no lone surrogate): a server answers and
  records the frames it reads, so a value it cannot encode is a crash waiting on the wire;
- the simulator dialect's ``WireSession.receive`` (squall/simulator/dialects/), before and
  after authentication: it returns an ``Inbound`` and never raises, and every frame it
  answers with itself is UTF-8.

Each call must return within ``TIME_BOUND`` seconds of CPU time (no hang, no quadratic
blow-up).

``pytest`` runs a bounded, derandomized pass (``CI_EXAMPLES`` inputs per dialect, about a
second each). The long run, ``SQUALL_FUZZ_EXAMPLES`` (default 100,000) fresh random inputs
per dialect, i.e. per decoder, in rounds of ``ROUND`` (a fresh hypothesis engine per round
keeps its memory flat), with a progress line per round on stderr::

    SQUALL_FUZZ_LONG=1 .venv/bin/python -m pytest tests/protocol/test_fuzz_dialects.py \\
        -p no:cacheprovider -q -s
"""

from __future__ import annotations

import json
import os
import random
import re
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from squall.clock import ManualClock
from squall.protocol import codec, jsontext, mixer
from squall.protocol import genesys as gx
from squall.protocol import messages as m
from squall.protocol import ringcentral as rc
from squall.protocol.errors import ProtocolError
from squall.simulator import events as ev
from squall.simulator import ops
from squall.simulator.core import SimulatorCore
from squall.simulator.dialects import (
    dialect_class,
    genesys_softphone,  # noqa: F401 (aiortc: imported once, not inside a timed call)
)
from squall.simulator.dialects.genesys import Channel
from squall.simulator.seam import Handshake, Inbound, WireSession
from squall.simulator.sio import engine, engine3, wire

from .dialect_frames import DIALECTS, inputs, strict_json, utf8

LONG = os.environ.get("SQUALL_FUZZ_LONG", "") not in ("", "0")
CI_EXAMPLES = 150  # drawn inputs per dialect; with their mutants, 1,500 inputs
EXAMPLES = int(os.environ.get("SQUALL_FUZZ_EXAMPLES", "100000")) if LONG else CI_EXAMPLES
SECONDS = float(os.environ.get("SQUALL_FUZZ_SECONDS", "0") or 0)
ROUND = 10_000
TIME_BOUND = 2.0  # CPU seconds per call: a hang, or a quadratic blow-up, is far beyond
MUTANTS = 9  # cheap variants checked per drawn input (see mutants())

#: close codes a codec error may carry (docs/protocol.md §9): none (answered), 1003, 1007
CLOSE_CODES = {None, 1003, 1007}

pytestmark = pytest.mark.timeout(0 if LONG else 120)


# -- the decoders, per dialect --------------------------------------------------------------------


def _reference(data: str | bytes) -> list[tuple[str, Callable[[], Any]]]:
    return [
        ("codec.decode_client", lambda: codec.decode_client(data)),
        ("codec.decode_server", lambda: codec.decode_server(data)),
    ]


def _mixer(data: str | bytes) -> list[tuple[str, Callable[[], Any]]]:
    return [
        ("mixer.decode_client", lambda: mixer.decode_client(data)),
        ("mixer.decode_server", lambda: mixer.decode_server(data)),
    ]


def _ringcentral(data: str | bytes) -> list[tuple[str, Callable[[], Any]]]:
    return [
        ("ringcentral.decode_client", lambda: rc.decode_client(data)),
        ("ringcentral.decode_server", lambda: rc.decode_server(data)),
    ]


def _genesys(data: str | bytes) -> list[tuple[str, Callable[[], Any]]]:
    calls: list[tuple[str, Callable[[], Any]]] = [("genesys.parse", lambda: gx.parse(data))]
    if isinstance(data, str):  # the text an element carries: RPC JSON, SASL, a pubsub node
        calls += [
            ("genesys.parse_rpc", lambda: gx.parse_rpc(data)),
            ("genesys.plain_credentials", lambda: gx.plain_credentials(data)),
            ("genesys.split_topics", lambda: gx.split_topics(data)),
        ]
    return calls


def _rtccafe(data: str | bytes) -> list[tuple[str, Callable[[], Any]]]:
    def feed() -> Any:
        decoder = wire.Decoder()
        if isinstance(data, bytes):  # an attachment: after a binary event that waits for one
            decoder.feed('51-/rtc-cafe,["offer",{"_placeholder":true,"num":0}]')
        return decoder.feed(data)

    raw = data if isinstance(data, bytes) else utf8(data)
    return [
        ("sio.Decoder.feed", feed),
        ("eio4.payload_problem", lambda: engine.payload_problem(raw)),
        ("eio3.decode_payload", lambda: engine3.decode_payload(raw, "text/plain")),
        ("eio3.decode_payload(binary)", lambda: engine3.decode_payload(raw, OCTETS)),
    ]


OCTETS = "application/octet-stream"
DECODERS = {
    "reference": _reference,
    "mixer": _mixer,
    "ringcentral": _ringcentral,
    "genesys": _genesys,
    "rtccafe": _rtccafe,
}
#: decoders whose documented refusal is a ValueError subclass, not a ProtocolError
VALUE_ERRORS: dict[str, type[Exception]] = {
    "genesys.parse_rpc": ValueError,
    "genesys.plain_credentials": ValueError,
    "genesys.split_topics": ValueError,
    "sio.Decoder.feed": wire.PacketError,
    "eio3.decode_payload": engine3.PayloadError,
    "eio3.decode_payload(binary)": engine3.PayloadError,
}

RETURNS: dict[str, tuple[type, ...]] = {
    "codec.decode_client": (m.Message,),
    "codec.decode_server": (m.Message,),
    "mixer.decode_client": (mixer.Method,),
    "mixer.decode_server": (mixer.Reply, mixer.Event),
    "ringcentral.decode_client": (rc.ClientRequest, rc.Heartbeat),
    "ringcentral.decode_server": (
        rc.ConnectionDetails,
        rc.ClientResponse,
        rc.ServerNotification,
        rc.WsgError,
        rc.Heartbeat,
    ),
    "genesys.parse": (gx.Element,),
    "genesys.parse_rpc": (tuple,),
    "genesys.plain_credentials": (tuple,),
    "genesys.split_topics": (list,),
    "sio.Decoder.feed": (wire.Packet, type(None)),
    "eio4.payload_problem": (str, type(None)),
    "eio3.decode_payload": (list,),
    "eio3.decode_payload(binary)": (list,),
}
#: what a dialect writes back of a decoded value, checked as the JSON dialects' encode is
NOT_ENCODED = {"genesys", "eio4", "eio3"}


def encode(value: Any) -> str:
    """The dialect codec's own text for a decoded value."""
    if isinstance(value, wire.Packet):  # the event relayed to a peer, as the server writes it
        data = value.data if isinstance(value.data, list) else [value.data]
        frames = wire.encode(value.kind, value.namespace, data, value.ack, type="x")
        return str(frames[0].data)
    if isinstance(value, m.Message):
        return codec.encode(value)
    if isinstance(value, mixer.Method | mixer.Reply | mixer.Event):
        return mixer.encode(value)
    return rc.encode(value)


@dataclass
class Wires:
    """One core per dialect and its wire sessions: a fresh one and an authenticated one."""

    dialect: str
    fresh: WireSession = field(init=False)
    authed: WireSession = field(init=False)

    def __post_init__(self) -> None:
        core = SimulatorCore(ManualClock())
        instance: Any = dialect_class(self.dialect)(core)
        event = ev.Authenticated("s1", "c2", "fuzz", False, "recovery-token-1", 30.0, 100, 180.0)
        if self.dialect == "genesys":  # a stream opened, and one bound (past SASL)
            instance.channels["ch1"] = Channel("ch1", "fuzz", 0.0)
            self.fresh = instance.open("c1", Handshake("/stream/channels/ch1", {}))[0]
            self.authed = instance.open("c2", Handshake("/stream/channels/ch1", {}))[0]
            opening = f'<open xmlns="{gx.NS_FRAMING}" to="squall.test" version="1.0"/>'
            self.fresh.receive(opening)
            self.authed.receive(opening)
            self.authed.encode(event)
            self.authed.receive(opening)
            bind = f'<iq xmlns="jabber:client" type="set" id="b"><bind xmlns="{gx.NS_BIND}"/></iq>'
            self.authed.receive(bind)
            assert self.authed.state == "bound"  # type: ignore[attr-defined]
            return
        self.fresh = instance.open("c1", Handshake("/", {}))[0]
        self.authed = instance.open("c2", Handshake("/?token=fuzz", {}))[0]
        if self.dialect == "rtccafe":  # its CONNECT reads the core's connection
            core.connect(_Sink("c1"), self.fresh)
            core.connect(_Sink("c2"), self.authed)
        self.authed.encode(event)  # RingCentral keeps its session state from here


class _Sink:
    """A core Link that keeps nothing: the pure fuzzer reads what ``receive`` returns."""

    def __init__(self, link_id: str) -> None:
        self.id = link_id

    def send(self, data: str | bytes) -> bool:
        return True

    def close(self, code: int, reason: str) -> None:
        pass

    def abort(self) -> None:
        pass


# -- the property --------------------------------------------------------------------------------


@dataclass
class Tally:
    inputs: int = 0
    drawn: int = 0  # by hypothesis; the other inputs are their mutants
    values: int = 0
    errors: int = 0
    slowest: float = 0.0


TALLIES = {d: Tally() for d in DIALECTS}


def timed(tally: Tally, where: str, call: Callable[[], Any]) -> Any:
    started = time.thread_time()  # CPU time: other processes on a shared machine do not count
    try:
        return call()
    finally:
        took = time.thread_time() - started
        tally.slowest = max(tally.slowest, took)
        assert took < TIME_BOUND, f"{where} took {took:.2f}s"


def check_encodable(where: str, text: str | bytes) -> None:
    assert isinstance(text, str), f"{where}: {type(text).__name__}, not text"
    text.encode("utf-8")  # a lone surrogate raises here, as it would in the server's send
    assert strict_json(text), f"{where}: not JSON by RFC 8259: {text[:200]!r}"


def check_answer(dialect: str, where: str, data: str | bytes) -> None:
    """A frame the wire session answers with is one its peer can read."""
    if dialect == "genesys":  # one well-formed XML element, UTF-8
        assert isinstance(data, str), where
        gx.parse(data)
    elif dialect == "rtccafe":  # a Socket.IO packet (or an attachment) with strict JSON
        if isinstance(data, str):
            data.encode("utf-8")
            wire._ClientPacket(encoded_packet=data)
    else:
        check_encodable(where, data)


def mutants(data: str | bytes, count: int = MUTANTS) -> list[str | bytes]:
    """``count`` cheap variants of one drawn input: cuts, splices, repeats, inserted or
    flipped characters (bytes for bytes). Drawing an input costs hypothesis milliseconds;
    these cost microseconds, and reach the same decoders with the same properties."""
    rng = random.Random(zlib.crc32(data if isinstance(data, bytes) else utf8(data)))
    pieces: Any = ['"', "\\", "{", "}", "[", "]", ",", ":", "\ud800", "é", "\x00", "1e400"]
    if isinstance(data, bytes):
        pieces = [b'"', b"\\", b"{", b"]", b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00"]
    out: list[str | bytes] = []
    for _ in range(count):
        n = len(data)
        a, b = sorted((rng.randint(0, n), rng.randint(0, n)))
        how = rng.randint(0, 4)
        if how == 0:
            out.append(data[:a])
        elif how == 1:
            out.append(data[:a] + rng.choice(pieces) + data[a:])
        elif how == 2:
            out.append(data[:a] + data[b:])
        elif how == 3:
            out.append(data[:b] + data[a:b] + data[b:])
        else:
            out.append(data[:a] + rng.choice(pieces) + data[a + 1 :])
    return out


def check_one(dialect: str, wires: Wires, drawn: str | bytes) -> None:
    TALLIES[dialect].drawn += 1
    for data in (drawn, *mutants(drawn)):
        check_input(dialect, wires, data)


def check_input(dialect: str, wires: Wires, data: str | bytes) -> None:
    tally = TALLIES[dialect]
    tally.inputs += 1
    for name, decode in DECODERS[dialect](data):
        where = f"{name}({data[:200]!r})"
        try:
            value = timed(tally, where, decode)
        except ProtocolError as exc:
            tally.errors += 1
            assert str(exc).strip(), f"{where}: an error without a sentence: {exc!r}"
            assert exc.close_code in CLOSE_CODES, f"{where}: close code {exc.close_code}"
            if isinstance(exc, gx.StreamError):
                assert exc.condition in gx.STREAM_CONDITIONS, f"{where}: {exc.condition}"
            continue
        except Exception as exc:
            if isinstance(exc, UnicodeError) or not isinstance(exc, VALUE_ERRORS.get(name, ())):
                raise
            tally.errors += 1
            assert str(exc).strip(), f"{where}: an error without a sentence: {exc!r}"
            continue
        tally.values += 1
        assert isinstance(value, RETURNS[name]), f"{where} returned {value!r}"
        if name.partition(".")[0] in NOT_ENCODED or value is None:
            continue
        text = timed(tally, where, lambda: encode(value))  # noqa: B023 (called at once)
        if isinstance(value, wire.Packet):
            check_answer(dialect, f"encode({value!r:.200})", text)
        else:
            check_encodable(f"encode({value!r:.200})", text)
        if isinstance(value, mixer.Method) and value.method == "auth":
            try:
                mixer.auth_arguments(value.arguments, value.id)
            except ProtocolError as exc:
                assert str(exc).strip(), f"auth_arguments({value.arguments!r:.200})"
    for session in (wires.fresh, wires.authed):
        where = f"{dialect} WireSession.receive({data[:200]!r})"
        inbound = timed(tally, where, lambda: session.receive(data))  # noqa: B023
        assert isinstance(inbound, Inbound), where
        for item in inbound.items:
            if isinstance(item, ops.BadInput):
                assert item.message.strip(), f"{where}: a BadInput without a sentence"
        for frame in inbound.frames:
            check_answer(dialect, f"{where} answered", frame.data)
        if inbound.shown is not None:
            assert isinstance(inbound.shown, str), where


def run_round(dialect: str, wires: Wires, examples: int, *, deterministic: bool) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=deterministic,
        database=None,
        print_blob=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(inputs(dialect))
    def fuzz(data: str | bytes) -> None:
        check_one(dialect, wires, data)

    fuzz()


@pytest.fixture(scope="module", params=DIALECTS)
def dialect(request: pytest.FixtureRequest) -> Iterator[str]:
    yield request.param
    t = TALLIES[request.param]
    print(
        f"\nfuzz {request.param}: {t.inputs} inputs ({t.drawn} drawn), {t.values} decoded, "
        f"{t.errors} refused, "
        f"slowest call {t.slowest * 1000:.1f} ms",
        file=sys.stderr,
    )


def test_fuzz_a_dialect_decoder(dialect: str) -> None:
    wires = Wires(dialect)
    if not LONG:
        run_round(dialect, wires, EXAMPLES, deterministic=True)
        return
    started = time.monotonic()
    tally = TALLIES[dialect]
    while tally.inputs < EXAMPLES and not (SECONDS and time.monotonic() - started > SECONDS):
        left = -(-(EXAMPLES - tally.inputs) // (MUTANTS + 1))
        run_round(dialect, wires, min(ROUND, left), deterministic=False)
        print(
            f"fuzz {dialect}: {tally.inputs} inputs ({tally.drawn} drawn) in "
            f"{time.monotonic() - started:.0f}s "
            f"({tally.values} decoded, {tally.errors} refused)",
            file=sys.stderr,
            flush=True,
        )


# -- regressions: what the fuzzers found ---------------------------------------------------------


@pytest.mark.parametrize("decode", [mixer.decode_client, rc.decode_client, rc.decode_server])
@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[" * 100_000 + "]" * 100_000, "nests deeper than 200 levels of arrays and objects"),
        ("[" * 201 + "]" * 201, "nests deeper than 200 levels of arrays and objects"),
        ('[{"type": "Heartbeat", "messageId": "\\ud800"}]', "lone surrogate (U+D800)"),
        ('{"type": "method", "method": "\\udfff", "arguments": [], "id": 1}', "(U+DFFF)"),
        ('[{"type": "Heartbeat", "messageId": 1e400}]', "number 1e400 is out of range"),
        ('[{"type": "Heartbeat", "messageId": NaN}]', "NaN is not JSON"),
    ],
)
def test_json_no_peer_can_be_answered_with_is_malformed(
    decode: Callable[[str], Any], text: str, problem: str
) -> None:
    """Found by the fuzzers: Python's json reads these (or overflows its stack on them), and
    the dialect then failed writing its answer (RingCentral echoes ``messageId``; Mixer
    re-encodes ``auth`` for the transcript): a 1011 instead of the documented answer."""
    with pytest.raises(ProtocolError) as err:
        decode(text)
    assert problem in str(err.value)
    assert err.value.close_code == 1007


def test_json_within_the_limits_still_decodes() -> None:
    assert jsontext.loads("[" * 200 + "]" * 200) is not None
    assert jsontext.loads('["\\ud83d\\ude00", "é", 1e308, -0]') == ["\U0001f600", "é", 1e308, 0]
    packet = mixer.decode_client('{"type":"method","method":"msg","arguments":["é\\u00e9"],"id":1}')
    assert packet.arguments == ["éé"]


@pytest.mark.parametrize(
    "text",
    [
        '{"answer_within": null, "": NaN}',
        '{"type": "call", "id": 1, "method": "m", "params": -Infinity}',
    ],
)
def test_nan_and_infinity_are_not_json_to_the_reference_codec(text: str) -> None:
    """Found by the wire fuzzer: pydantic-core reads NaN and Infinity, so the reference
    dialect answered ``invalid_message`` (or served the call) instead of closing 1007."""
    with pytest.raises(ProtocolError, match="is not JSON") as err:
        codec.decode_client(text)
    assert err.value.close_code == 1007
    assert codec.decode_client('{"type": "call", "id": 1, "method": "NaN", "params": "Infinity"}')


def test_a_lone_surrogate_in_a_deep_frame_is_malformed() -> None:
    """Found by the long fuzz run: text handed to the reference codec directly (not off a
    socket, where websockets refuses it) with a raw lone surrogate made pydantic refuse the
    string before it parsed the JSON; the codec's explanation then re-parsed it with
    ``json.loads``, which overflowed the stack on the nesting: a RecursionError."""
    text = '{"type":"join","id":' + '{"a":' * 3000 + '"\ud800"' + "}" * 3000 + ',"room":"r"}'
    with pytest.raises(ProtocolError, match="lone surrogate") as err:
        codec.decode_client(text)
    assert err.value.close_code == 1007


def test_a_server_status_out_of_range_is_an_invalid_frame() -> None:
    """Found by the fuzzer: ClientResponse's own check raised a bare ValueError from decode."""
    text = json.dumps([{"type": "ClientRequest", "messageId": "m1", "status": 999}])
    with pytest.raises(
        ProtocolError, match=r"status: expected an HTTP status \(100-599\), got 999"
    ):
        rc.decode_server(text)


def test_a_lone_surrogate_is_an_encoding_error_to_the_xmpp_codec() -> None:
    """Found by the fuzzer: expat encodes a str to UTF-8 itself, so text handed in directly
    with a raw lone surrogate raised a bare UnicodeEncodeError from ``genesys.parse``."""
    with pytest.raises(gx.StreamError, match=r"lone surrogate \(U\+D800\)") as err:
        gx.parse('<iq xmlns="jabber:client" type="get" id="\ud800"/>')
    assert err.value.condition == "unsupported-encoding"
    assert gx.parse('<iq xmlns="jabber:client" id="é"/>').get("id") == "é"


@pytest.mark.parametrize(
    ("frames", "problem"),
    [
        (['2/rtc-cafe,["join",' + "[" * 5000 + "]" * 5000 + "]"], "nests deeper than 200"),
        (['2/rtc-cafe,["offer",{"recipient":"c1","x":NaN}]'], "NaN is not JSON"),
        (['2/rtc-cafe,["offer",{"recipient":"c1","x":1e400}]'], "out of range"),
        (['2/rtc-cafe,["\\udfff",{}]'], "lone surrogate (U+DFFF)"),
        (['2/rtc-cafe,["\ud800",{}]'], "character 13 is a lone surrogate (U+D800)"),
        (['²/rtc-cafe,["join",{}]'], "unknown Socket.IO packet type '²'"),
        (['51-/rtc-cafe,["offer",{"_placeholder":true,"num":1}]'], "attachment index (0 to 0)"),
        (['51-/rtc-cafe,["offer",{"_placeholder":true,"num":"0"}]'], 'got "0"'),
        (['51-/rtc-cafe,[{"_placeholder":true,"num":0}]', b"\x01"], 'got ["<1 bytes>"]'),
    ],
)
def test_socket_io_packets_python_socketio_cannot_read_or_write_back(
    frames: list[str | bytes], problem: str
) -> None:
    """Found by the fuzzer: python-socketio's decoder overflowed the stack on deep nesting
    (RecursionError), indexed attachments with ``num`` as given (IndexError, TypeError),
    ``str.isdigit`` took "²" for a packet type (ValueError from ``int``), an event named by
    an attachment failed the decoder's own error message (TypeError), and NaN, 1e400 and
    lone surrogates were read, then relayed to a peer as text no JSON parser reads."""
    decoder = wire.Decoder()
    with pytest.raises(wire.PacketError) as err:
        for frame in frames:
            decoder.feed(frame)
    assert problem in str(err.value)


def test_socket_io_packets_within_the_limits_still_decode() -> None:
    decoder = wire.Decoder()
    assert decoder.feed('51-/rtc-cafe,["offer",{"_placeholder":true,"num":0}]') is None
    packet = decoder.feed(b"\x01\x02")
    assert packet == wire.Packet(2, "/rtc-cafe", ["offer", b"\x01\x02"])
    deep = '2/rtc-cafe,["join",' + "[" * 150 + "]" * 150 + ',"é\\ud83d\\ude00"]'
    assert wire.Decoder().feed(deep).args[1] == "é\U0001f600"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("body", "content_type", "problem"),
    [
        (b"1:b", "text/plain", "a 'b' packet needs a packet type"),
        (b"3:b9A", "text/plain", "a 'b' packet needs a packet type"),
        ("²:4".encode(), "text/plain", "expected '<length>:' at character 0"),
        (b"1" * 5000 + b":4", "text/plain", "expected '<length>:' at character 0"),
        (b"\x00\x01\xffb", OCTETS, "a 'b' packet needs a packet type"),
        (b"\x00" + bytes([9] * 5000) + b"\xff", OCTETS, "record at byte 0 is malformed"),
        (b"\x01\x02\xff\x07a", OCTETS, "packet type 7 (0 to 6)"),
    ],
)
def test_engine_io_3_bodies_that_crashed_the_payload_decoder(
    body: bytes, content_type: str, problem: str
) -> None:
    """Found by the fuzzer: IndexError (a bare ``b``), ValueError from ``int`` ("²" is a
    digit to ``str.isdigit``; 5,000 digits are over Python's limit), and an XHR2 record
    whose type byte was read as the packet type "65"."""
    with pytest.raises(engine3.PayloadError, match=re.escape(problem)):
        engine3.decode_payload(body, content_type)
    assert engine3.decode_payload(b"6:b4AQ==1:2", "text/plain") == [("4", b"\x01"), ("2", "")]
    assert engine3.decode_payload(b"\x01\x02\xff\x04a", OCTETS) == [("4", b"a")]
