"""A run's transcript as a sequence: who sent what to whom, when it left and when it arrived.

:func:`build` turns transcript records into :class:`Item` s on lanes (each client,
the proxy, the server). A frame is one arrow from the moment its sender wrote it
to the moment its receiver read it: the server's ``frame`` record gives the
server's side, the client's ``sent`` / ``packet`` events give the client's. The
client stamps its events with its own clock (``ct``, protocol seconds since the
driver started); ``t`` is when the runner read the line, later by the pipe's
delay, so the client's clock is put on the run's by the smallest ``t - ct`` seen:
the least-delayed line. Frames are paired by their text (then by their type),
first come first served; a frame nobody read is drawn *lost* (a cross), one the
client read that the server never wrote came from the proxy (a duplicate).

Pings and pongs are noise: runs of them fold into one counted row unless asked
for. The failing step is marked; :mod:`.report_svg` draws the items,
:mod:`.report_mermaid` writes them as Mermaid text.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Mapping
from collections.abc import Sequence as Records
from dataclasses import dataclass, field
from typing import Any

#: Frames (by wire type or core op) and events that keep a connection alive and say nothing.
NOISE_FRAMES = frozenset({"ping", "pong", "heartbeat"})
#: Client events the arrows already show (``sent``, ``packet``) or that repeat another event.
HIDDEN_EVENTS = frozenset({"sent", "packet", "status"})
#: Records shown elsewhere on the page (the steps list) or that repeat a server record.
HIDDEN_KINDS = frozenset({"scenario", "end", "server_op", "publish"})
#: Proxy bookkeeping, not a fault.
HIDDEN_FAULTS = frozenset({"proxy.start", "proxy.stop"})
#: A run of at least this many noise rows folds into one counter row.
FOLD_AT = 3
#: How far (protocol seconds) a clock estimate may put a send after its receipt.
SLACK = 0.5

PROXY = "proxy"
SERVER = "server"


@dataclass
class Item:
    """One row of the sequence: an arrow, a note on a lane, a step, or folded noise.

    ``t`` is the row's time (an arrow's send), ``t_end`` an arrow's receipt; ``lane`` and
    ``to`` are lane names (equal for a note; the whole width for a step or a fold).
    """

    kind: str  # "arrow" | "note" | "step" | "fold"
    t: float
    lane: str
    to: str
    label: str
    detail: str = ""  # the whole record, for hover and the transcript list
    n: int | None = None  # the record's number, to link the transcript list
    t_end: float | None = None
    style: str = ""  # "frame" | "event" | "command" | "server" | "fault" | "error"
    lost: bool = False  # an arrow whose frame was never read: drawn part of the way, crossed
    reach: float = 1.0  # how far a lost arrow gets (the proxy lane's crossing when it has one)
    via: str | None = None  # the lane the arrow crosses on its way (the proxy)
    noise: bool = False
    failed: bool = False  # the failing step, or a row inside it
    step: int | None = None  # the step this row belongs to
    count: int = 0  # rows folded into this one

    @property
    def latency(self) -> float | None:
        if self.t_end is None:
            return None
        return max(0.0, self.t_end - self.t)


@dataclass
class Sequence:
    lanes: list[str]
    items: list[Item] = field(default_factory=list)
    failed_step: int | None = None  # the failing step's index (-1: setup)
    failure: str = ""  # "expected ...; observed ..." for the failing step

    def folded(self) -> list[Item]:
        """The items with runs of noise folded into counter rows."""
        return fold(self.items)


def _json(value: Any) -> str:
    return json.dumps(value, default=str, separators=(", ", ": "), ensure_ascii=False)


def _client_lanes(records: Iterable[Mapping[str, Any]]) -> list[str]:
    out: list[str] = []
    for rec in records:
        src = str(rec.get("src", ""))
        if src.startswith("client:") and src[7:] not in out:
            out.append(src[7:])
    return out


def _offsets(records: Records[Mapping[str, Any]]) -> dict[str, float]:
    """Client name -> what to add to its ``ct`` to get run time: min(t - ct) over its lines."""
    out: dict[str, float] = {}
    for rec in records:
        ct = rec.get("ct")
        src = str(rec.get("src", ""))
        if isinstance(ct, int | float) and src.startswith("client:"):
            off = float(rec.get("t", 0.0)) - float(ct)
            name = src[7:]
            out[name] = min(off, out.get(name, off))
    return out


def is_noise_frame(rec: Mapping[str, Any]) -> bool:
    kinds = {str(rec.get("type") or "").lower(), str(rec.get("op") or "").lower()}
    data = rec.get("data")
    if isinstance(data, Mapping):
        kinds.add(str(data.get("type") or "").lower())
    return bool(kinds & NOISE_FRAMES)


def frame_label(kind: str | None, text: str) -> str:
    """A frame's label: its type, then its text (JSON spaced out, so that it wraps at commas)."""
    with contextlib.suppress(ValueError):
        text = _json(json.loads(text))
    return f"{kind} {text}" if kind else text


@dataclass
class _Half:
    """One side of a frame seen by a client (a ``sent`` or ``packet`` event)."""

    rec: Mapping[str, Any]
    client: str
    t: float
    text: str
    kind: str | None
    used: bool = False
    ct: float | None = None  # the client's own clock, when it gave one


def build(
    records: Records[Mapping[str, Any]], *, failure: Mapping[str, Any] | None = None
) -> Sequence:
    """The sequence of one run: its transcript records and its failure (index.json shapes)."""
    clients = _client_lanes(records) or ["client"]
    has_proxy = any(r.get("src") == PROXY for r in records)
    lanes = [*clients, *([PROXY] if has_proxy else []), SERVER]
    offsets = _refine(records, _offsets(records))
    proxied = _proxied_clients(records)

    def client_t(rec: Mapping[str, Any], name: str) -> float:
        ct = rec.get("ct")
        if isinstance(ct, int | float) and name in offsets:
            return float(ct) + offsets[name]
        return float(rec.get("t", 0.0))

    sent, read = _halves(records, offsets)
    conn_client = _conn_clients(records)
    reads_reported = {h.client for h in read}
    items: list[Item] = []
    step_of = _step_index(records)

    for rec in records:
        kind, src = rec.get("kind"), str(rec.get("src", ""))
        n = rec.get("n")
        t = float(rec.get("t", 0.0))
        if kind == "frame" and src == SERVER:
            items.append(
                _frame_item(
                    rec,
                    t,
                    sent,
                    read,
                    conn_client,
                    clients,
                    reads_reported,
                    proxied,
                )
            )
        elif kind == "end" and src == "runner":
            items.append(Item("step", t, lanes[0], lanes[-1], "end of the scenario: teardown", n=n))
        elif kind == "step" and src == "runner":
            index = int(rec.get("index", 0))
            items.append(
                Item(
                    "step",
                    t,
                    lanes[0],
                    lanes[-1],
                    f"step {index + 1} · {rec.get('name')} · line {rec.get('line')}",
                    n=n,
                    step=index,
                    style="step",
                )
            )
        elif src.startswith("client:"):
            item = _client_item(rec, src[7:], client_t(rec, src[7:]))
            if item is not None:
                items.append(item)
        elif src == PROXY and kind == "fault" and rec.get("action") not in HIDDEN_FAULTS:
            detail = rec.get("detail") or {}
            extra = f" {_json(detail)}" if detail else ""
            conn = f" conn {rec.get('conn')}" if rec.get("conn") is not None else ""
            toxic = f" {rec.get('toxic')}" if rec.get("toxic") else ""
            items.append(
                Item(
                    "note",
                    t,
                    PROXY,
                    PROXY,
                    f"{rec.get('action')}{toxic}{conn}{extra}",
                    detail=_json(dict(rec)),
                    n=n,
                    style="fault",
                )
            )
        elif src == SERVER and kind not in HIDDEN_KINDS and kind != "frame":
            fields = {k: v for k, v in rec.items() if k not in ("n", "t", "src", "kind")}
            items.append(
                Item(
                    "note",
                    t,
                    SERVER,
                    SERVER,
                    f"{kind} {_json(fields)}" if fields else str(kind),
                    detail=_json(dict(rec)),
                    n=n,
                    style="server",
                )
            )
        elif kind == "truncated":
            items.append(
                Item(
                    "note",
                    t,
                    lanes[-1],
                    lanes[-1],
                    f"{rec.get('dropped')} older records dropped",
                    n=n,
                    style="server",
                )
            )
    # What the clients wrote that the server never read, and read that it never wrote.
    for half in sent:
        if not half.used:
            items.append(_orphan(half, to=SERVER, lost=True, proxy=half.client in proxied))
    for half in read:
        if not half.used:
            items.append(_orphan(half, to=half.client, lost=False, proxy=has_proxy))
    items.sort(key=lambda i: (i.t, i.n if i.n is not None else 0))
    for item in items:
        if item.kind != "step":
            item.step = step_of(item.t)
    seq = Sequence(lanes, items)
    if failure:
        seq.failed_step = int(failure.get("step", -1))
        seq.failure = f"expected {failure.get('expected')}; observed {failure.get('observed')}"
        for item in items:
            item.failed = item.step is not None and item.step == seq.failed_step
        if not any(i.kind == "step" and i.failed for i in items):
            first = items[0].t if items else 0.0
            items.insert(
                0,
                Item(
                    "step",
                    first,
                    lanes[0],
                    lanes[-1],
                    f"{failure.get('name', 'setup')} · line {failure.get('line')}",
                    step=seq.failed_step,
                    style="step",
                    failed=True,
                ),
            )
    return seq


def _halves(
    records: Records[Mapping[str, Any]], offsets: Mapping[str, float]
) -> tuple[list[_Half], list[_Half]]:
    """The frames each client reports writing (``sent``) and reading (``packet``)."""
    sent: list[_Half] = []
    read: list[_Half] = []
    for rec in records:
        src = str(rec.get("src", ""))
        data = rec.get("data")
        if (
            rec.get("kind") != "event"
            or not src.startswith("client:")
            or rec.get("event") not in ("sent", "packet")
            or not isinstance(data, Mapping)
        ):
            continue
        name, ct = src[7:], rec.get("ct")
        has_ct = isinstance(ct, int | float) and name in offsets
        t = float(ct) + offsets[name] if has_ct else float(rec.get("t", 0.0))  # type: ignore[arg-type]
        kind = data.get("type")
        half = _Half(
            rec, name, t, str(data.get("text", "")), str(kind) if kind is not None else None
        )
        half.ct = float(ct) if has_ct else None  # type: ignore[arg-type]
        (sent if rec.get("event") == "sent" else read).append(half)
    return sent, read


def _refine(records: Records[Mapping[str, Any]], offsets: dict[str, float]) -> dict[str, float]:
    """Each client's clock offset, narrowed by causality: a frame arrives after it leaves.

    The pipe gives an upper bound (a line is read after it is written), and so does every
    frame the client wrote (the server read it later); every frame the client read gives a
    lower bound. The offset is the middle of what is left (both clocks tick in real time,
    so at a timescale of 0.01 a real millisecond of jitter is 0.1 protocol seconds).
    """
    sent, read = _halves(records, offsets)
    conn_client = _conn_clients(records)
    low: dict[str, float] = {}
    high = dict(offsets)
    for rec in records:
        if rec.get("kind") != "frame" or rec.get("src") != SERVER:
            continue
        t = float(rec.get("t", 0.0))
        half = _match(rec, t, sent, read, conn_client)
        if half is None or half.ct is None:
            continue
        bound = t - half.ct
        if rec.get("dir") == "in":
            high[half.client] = min(high.get(half.client, bound), bound)
        else:
            low[half.client] = max(low.get(half.client, bound), bound)
    return {
        name: (low[name] + high[name]) / 2 if name in low else high[name]
        for name in set(high) | set(low)
        if name in high
    }


def _match(
    rec: Mapping[str, Any],
    t: float,
    sent: list[_Half],
    read: list[_Half],
    conn_client: dict[str, str],
) -> _Half | None:
    """The client's side of one server frame (and which client it is, learned on the way)."""
    text = str(rec.get("text", ""))
    kind = rec.get("type") or rec.get("op")
    kind = str(kind) if kind is not None else None
    if rec.get("dropped"):  # the server never wrote it to the socket: nobody can read it
        return None
    conn = str(rec.get("conn"))
    known = conn_client.get(conn)
    inbound = rec.get("dir") == "in"
    halves = sent if inbound else read
    half = _pair(halves, text, kind, t, known, after=not inbound)
    if half is None and known is None:
        half = _pair(halves, text, kind, t, None, after=not inbound)
        if half is not None:
            conn_client[conn] = half.client
    return half


def _step_index(records: Records[Mapping[str, Any]]) -> Any:
    """A function: run time -> the index of the step running then (None before the first)."""
    starts: list[tuple[float, int | None]] = [
        (float(r.get("t", 0.0)), int(r.get("index", 0)) if r.get("kind") == "step" else None)
        for r in records
        if r.get("kind") in ("step", "end") and r.get("src") == "runner"
    ]

    def step_at(t: float) -> int | None:
        found = None
        for start, index in starts:
            if start <= t + 1e-9:
                found = index
            else:
                break
        return found

    return step_at


def _proxied_clients(records: Records[Mapping[str, Any]]) -> set[str]:
    """Clients whose ``connected`` URL is the proxy's listen address."""
    listens = {
        str((r.get("detail") or {}).get("listen"))
        for r in records
        if r.get("src") == PROXY and r.get("action") == "proxy.start"
    }
    out = set()
    for rec in records:
        src = str(rec.get("src", ""))
        data = rec.get("data")
        if src.startswith("client:") and rec.get("kind") == "event" and isinstance(data, Mapping):
            url = str(data.get("url") or "")
            if any(listen and listen in url for listen in listens):
                out.add(src[7:])
    return out


def _conn_clients(records: Records[Mapping[str, Any]]) -> dict[str, str]:
    """Server connection id -> client, from the ``sid`` a client reports on ``connected``."""
    out: dict[str, str] = {}
    for rec in records:
        src = str(rec.get("src", ""))
        data = rec.get("data")
        if (
            rec.get("event") == "connected"
            and src.startswith("client:")
            and isinstance(data, Mapping)
        ):
            sid = data.get("sid")
            if sid:
                out[str(sid)] = src[7:]
    return out


def _pair(
    halves: list[_Half], text: str, kind: str | None, t: float, client: str | None, *, after: bool
) -> _Half | None:
    """The first unused half with this text (else this type) on the right side of ``t``."""

    def ok(h: _Half) -> bool:
        if h.used or (client is not None and h.client != client):
            return False
        return h.t >= t - SLACK if after else h.t <= t + SLACK

    rules: tuple[Callable[[_Half], bool], ...] = (
        lambda h: h.text == text,
        lambda h: kind is not None and h.kind == kind,
    )
    for same in rules:
        for h in halves:
            if ok(h) and same(h):
                h.used = True
                return h
    return None


def _frame_item(
    rec: Mapping[str, Any],
    t: float,
    sent: list[_Half],
    read: list[_Half],
    conn_client: dict[str, str],
    clients: list[str],
    reads_reported: set[str],
    proxied: set[str],
) -> Item:
    text = str(rec.get("text", ""))
    kind = rec.get("type") or rec.get("op")
    kind = str(kind) if kind is not None else None
    inbound = rec.get("dir") == "in"
    half = _match(rec, t, sent, read, conn_client)
    who = half.client if half else conn_client.get(str(rec.get("conn"))) or clients[0]
    item = Item(
        "arrow",
        t,
        SERVER,
        who,
        frame_label(kind, text),
        detail=_json(dict(rec)),
        n=rec.get("n"),
        style="frame",
        noise=is_noise_frame(rec),
        via=PROXY if who in proxied else None,
    )
    if inbound:
        item.lane, item.to = who, SERVER
        item.t, item.t_end = (half.t, t) if half else (t, t)
    elif half is not None:
        item.t_end = half.t
    elif rec.get("dropped") or who in reads_reported:
        # Written, never read: the connection closed under it, or the network ate it.
        item.lost = True
        item.t_end = t
        if rec.get("dropped"):  # it never left the server
            item.label += f"  (not sent: {rec['dropped']})"
            item.reach, item.via = 0.2, None
        else:
            item.label += "  (never read)"
            item.reach = 0.5
    else:
        item.t_end = t  # this client does not report what it reads: drawn flat
    return item


def _orphan(half: _Half, *, to: str, lost: bool, proxy: bool = False) -> Item:
    rec = half.rec
    label = frame_label(half.kind, half.text)
    if lost:
        return Item(
            "arrow",
            half.t,
            half.client,
            to,
            label + "  (never reached the server)",
            detail=_json(dict(rec)),
            n=rec.get("n"),
            t_end=half.t,
            style="frame",
            lost=True,
            reach=0.5,
            via=PROXY if proxy else None,
            noise=is_noise_frame(rec),
        )
    return Item(
        "arrow",
        half.t,
        PROXY if proxy else SERVER,
        half.client,
        label + ("  (the server never sent it: from the proxy)" if proxy else "  (unpaired)"),
        detail=_json(dict(rec)),
        n=rec.get("n"),
        t_end=half.t,
        style="frame",
        noise=is_noise_frame(rec),
    )


def _client_item(rec: Mapping[str, Any], name: str, t: float) -> Item | None:
    kind = rec.get("kind")
    if kind == "event":
        if rec.get("event") in HIDDEN_EVENTS:
            return None
        data = rec.get("data")
        label = f"{rec.get('event')} {_json(data)}" if data not in (None, {}) else str(rec["event"])
        return Item(
            "note", t, name, name, label, detail=_json(dict(rec)), n=rec.get("n"), style="event"
        )
    if kind == "command":
        args = rec.get("args")
        label = f"command {rec.get('cmd')} {_json(args)}" if args else f"command {rec.get('cmd')}"
        return Item(
            "note", t, name, name, label, detail=_json(dict(rec)), n=rec.get("n"), style="command"
        )
    if kind == "reply" and not rec.get("ok"):
        label = f"reply: error {rec.get('type')}: {rec.get('error')}"
        return Item(
            "note", t, name, name, label, detail=_json(dict(rec)), n=rec.get("n"), style="error"
        )
    return None


def fold(items: list[Item], at: int = FOLD_AT) -> list[Item]:
    """Runs of ``at`` or more noise rows become one counter row (what, how many, when)."""
    out: list[Item] = []
    run: list[Item] = []

    def flush() -> None:
        if len(run) >= at:  # ASCII only in labels: every glyph is one monospace cell
            kinds: dict[str, int] = {}
            for it in run:
                word = it.label.split(" ", 1)[0]
                kinds[word] = kinds.get(word, 0) + 1
            what = ", ".join(f"{v} {k}" for k, v in kinds.items())
            first, last = run[0], run[-1]
            out.append(
                Item(
                    "fold",
                    first.t,
                    first.lane,
                    first.to,
                    f"... {what} folded ({first.t:.2f} s to {last.t_end or last.t:.2f} s)",
                    detail="\n".join(it.label for it in run),
                    n=first.n,
                    style="fold",
                    noise=True,
                    failed=any(it.failed for it in run),
                    step=first.step,
                    count=len(run),
                )
            )
        else:
            out.extend(run)
        run.clear()

    for item in items:
        if item.noise:
            run.append(item)
        else:
            flush()
            out.append(item)
    flush()
    return out
