"""An append-only history of one soak run, and the checker that judges it (Jepsen style).

Every observation is an :class:`Entry`: a *process* (``client``, ``control``, ``server``,
``nemesis``, ``proxy``) did ``f`` to ``key``, of *type* ``invoke`` (asked), ``ok`` (happened),
``fail`` (definitely did not happen) or ``info`` (indeterminate, or an observation). The
runner (:mod:`squall.chaos.soak`) only appends; the checker is pure functions of the entries,
so a history written by hand (tests/chaos/test_checker.py) is judged exactly like a real one.

The vocabulary:

=========  ======  =========  ===============================================================
process    type    f          value
=========  ======  =========  ===============================================================
client     invoke  call       ``method``
client     ok      call       ``result`` or ``error`` (a server error code: an answer too)
client     fail    call       ``error``: rejected and never sent (spooled, then closed)
client     info    call       ``error``: rejected after sending (timeout, interrupted)
client     info    sent       ``id``: the client wrote the call's frame (its ``sent`` event)
server     info    recv       ``conn``: the server read the call's frame on that connection
control    invoke  publish
control    ok      publish    ``owed``: ``[[session, seq], ...]`` the server assigned
control    fail    publish    ``error``: no server was running
client     ok      notify     ``session``, ``seq``: delivered to the topic's handler
client     info    gap        ``session``, ``expected``, ``seq``: the client reported a jump
client     info    recovery   ``recovered``, ``reason``, ``lost``, ``previous``, ``session``
server     info    close      ``conn``, ``code``: a connection ended on the server
client     info    error      ``kind``, ``message``: an error event of the client
proxy      info    error      a ``toxic.error`` or ``api.error`` fault event
control    info    end        ``session``: the quiet period is over; later answers are late
=========  ======  =========  ===============================================================

Sessions are named ``S1``, ``S2``... by the runner (never by their recovery tokens, which are
credentials); other entries (``connected``, nemesis steps) give the excerpts context.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

TYPES = ("invoke", "ok", "fail", "info")

#: What the scripted server answers to each method (``("result", value)``, ``("error",
#: code)``, or None: no answer ever). The runner installs rules that do exactly this.
ANSWERS: dict[str, str | None] = {"echo": "result", "slow": "result", "boom": "error", "void": None}
BOOM = "boom"

#: Close codes that mean a peer read a broken stream: without ``ws_corrupt`` in the plan,
#: the proxy (or a framing bug) garbled bytes.
BROKEN_STREAM_CODES = frozenset({1002, 1007})


def expected_answer(method: str, key: int) -> tuple[str, Any] | None:
    """The one right answer to call ``key`` of ``method``, or None if the server never answers."""
    kind = ANSWERS.get(method)
    if kind == "result":
        return ("result", {"k": key})
    if kind == "error":
        return ("error", BOOM)
    return None


@dataclass(frozen=True)
class Entry:
    index: int
    time: float
    process: str
    type: str
    f: str
    key: int | None = None
    value: Any = None

    def render(self) -> str:
        key = "" if self.key is None else str(self.key)
        value = "" if self.value is None else json.dumps(self.value, default=str, sort_keys=True)
        return (
            f"{self.index:5d} {self.time:9.3f} {self.process:8s} {self.type:6s} {self.f:10s}"
            f" {key:>4s} {value}".rstrip()
        )


class History:
    """Entries in the order they were observed; only :meth:`append` changes it."""

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed
        self._entries: list[Entry] = []

    def append(
        self,
        process: str,
        type: str,
        f: str,
        key: int | None = None,
        value: Any = None,
        *,
        time: float = 0.0,
    ) -> Entry:
        if type not in TYPES:
            raise ValueError(f"entry type must be one of {', '.join(TYPES)}, got {type!r}")
        entry = Entry(len(self._entries), round(time, 6), process, type, f, key, value)
        self._entries.append(entry)
        return entry

    @property
    def entries(self) -> tuple[Entry, ...]:
        return tuple(self._entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(tuple(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def render(self, entries: Iterable[Entry] | None = None) -> str:
        return "\n".join(e.render() for e in (self._entries if entries is None else entries))


# --- the checker ----------------------------------------------------------------------------

CONTEXT_FS = frozenset(
    {"connected", "disconnected", "gap", "duplicate", "close", "restart", "heal"}
)
#: Entries every excerpt shows, wherever they are: they say which session is which.
ALWAYS_FS = frozenset({"recovery", "end"})


@dataclass(frozen=True)
class Violation:
    """One broken rule: ``rule`` for ``key`` (a call's or a notification's), with the evidence."""

    rule: str
    key: int | None
    message: str
    excerpt: tuple[Entry, ...] = ()

    def render(self, seed: int | None) -> str:
        what = "" if self.key is None else f" (op {self.key})"
        head = f"seed {seed}: {self.rule}{what}: {self.message}"
        replay = f"\n  replay: python -m squall.chaos --seed {seed}" if seed is not None else ""
        lines = "\n".join("    " + e.render() for e in self.excerpt)
        return f"{head}{replay}\n  history excerpt:\n{lines}" if lines else head + replay


def excerpt(entries: Sequence[Entry], key: int | None, *, limit: int = 40) -> tuple[Entry, ...]:
    """The entries about ``key``, with the faults and connection changes around them."""
    if key is None:
        return tuple(entries[-limit:])
    own = [e for e in entries if e.key == key]
    if not own:
        return ()
    start, end = own[0].time - 1.0, own[-1].time + 1.0
    around = [
        e
        for e in entries
        if e.key == key
        or e.f in ALWAYS_FS
        or (start <= e.time <= end and (e.process == "nemesis" or e.f in CONTEXT_FS))
    ]
    if len(around) > limit:  # keep every entry about the key, trim the context
        keep = {e.index for e in own}
        context = [e for e in around if e.index not in keep]
        allowed = max(0, limit - len(own))
        keep.update(e.index for e in context[:allowed])
        around = [e for e in around if e.index in keep]
    return tuple(around)


def check(history: History | Sequence[Entry]) -> list[Violation]:
    """Every rule over the whole history; an empty list means the run was correct."""
    entries = history.entries if isinstance(history, History) else tuple(history)
    found = [
        *check_calls(entries),
        *check_call_order(entries),
        *check_notifications(entries),
        *check_integrity(entries),
    ]
    return [
        Violation(v.rule, v.key, v.message, v.excerpt or excerpt(entries, v.key)) for v in found
    ]


def _end_index(entries: Sequence[Entry]) -> int:
    for e in entries:
        if e.process == "control" and e.f == "end":
            return e.index
    return len(entries) and entries[-1].index + 1


def check_calls(entries: Sequence[Entry]) -> list[Violation]:
    """Every call answered once or reported failed, never both, never twice, never silent;
    the answer is the call's own; a failed (never sent) call was never executed."""
    end = _end_index(entries)
    invoked: dict[int, Entry] = {}
    completions: dict[int, list[Entry]] = defaultdict(list)
    sent: set[int] = set()
    received: set[int] = set()
    out: list[Violation] = []
    for e in entries:
        if e.key is None:
            continue
        if e.process == "client" and e.f == "call":
            if e.type == "invoke":
                invoked[e.key] = e
            elif e.index < end:
                completions[e.key].append(e)
        elif e.process == "client" and e.f == "sent":
            sent.add(e.key)
        elif e.process == "server" and e.f == "recv":
            received.add(e.key)
    for key, done in completions.items():
        if key not in invoked or done[0].index < invoked[key].index:
            out.append(Violation("call-unasked", key, "a completion for a call never invoked"))
    for key, call in invoked.items():
        done = completions.get(key, [])
        if not done:
            out.append(Violation("call-silent", key, "neither answered nor reported failed"))
            continue
        if len(done) > 1:
            kinds = [e.type for e in done]
            rule = "call-answered-and-failed" if len(set(kinds)) > 1 else "call-answered-twice"
            out.append(Violation(rule, key, f"{len(done)} completions: {', '.join(kinds)}"))
        first = done[0]
        method = (call.value or {}).get("method", "")
        if first.type == "ok":
            want = expected_answer(method, key)
            got = _answer(first.value)
            if want is None or got != want:
                out.append(
                    Violation(
                        "call-wrong-answer",
                        key,
                        f"{method} answered {got!r}, expected {want!r}"
                        + (" (the server never answers it)" if want is None else ""),
                    )
                )
            elif key not in received:
                out.append(
                    Violation("call-phantom-answer", key, "answered, but the server never read it")
                )
        elif first.type == "fail" and (key in sent or key in received):
            where = "the server read it" if key in received else "the client sent it"
            out.append(Violation("call-failed-but-sent", key, f"reported never sent, but {where}"))
    return out


def _answer(value: Any) -> tuple[str, Any] | None:
    if isinstance(value, dict) and "error" in value:
        return ("error", value["error"])
    if isinstance(value, dict) and "result" in value:
        return ("result", value["result"])
    return None


def check_call_order(entries: Sequence[Entry]) -> list[Violation]:
    """Calls leave the client once each, in the order they were made (spooled FIFO), and each
    connection delivers them to the server in that order."""
    out: list[Violation] = []
    order = {e.key: e.index for e in entries if e.f == "call" and e.type == "invoke"}
    last_sent: Entry | None = None
    seen: set[int] = set()
    by_conn: dict[str, Entry] = {}
    for e in entries:
        if e.key is None:
            continue
        if e.process == "client" and e.f == "sent":
            if e.key in seen:
                out.append(Violation("call-sent-twice", e.key, "the client sent it again"))
            seen.add(e.key)
            if last_sent is not None and order.get(e.key, 0) < order.get(last_sent.key, 0):
                out.append(
                    Violation(
                        "call-sent-out-of-order",
                        e.key,
                        f"sent after call {last_sent.key}, which was made later",
                    )
                )
            last_sent = e
        elif e.process == "server" and e.f == "recv":
            conn = str((e.value or {}).get("conn"))
            before = by_conn.get(conn)
            if before is not None and order.get(e.key, 0) < order.get(before.key, 0):
                out.append(
                    Violation(
                        "call-received-out-of-order",
                        e.key,
                        f"the server read it on {conn} after call {before.key}, made later",
                    )
                )
            by_conn[conn] = e
    return out


def check_notifications(entries: Sequence[Entry]) -> list[Violation]:
    """Every notification the server owed is delivered once, or its loss was reported: by a
    gap the client announced, or by a failed recovery of the session it belonged to."""
    out: list[Violation] = []
    owed: dict[int, list[tuple[str, int]]] = {}
    delivered: dict[int, list[Entry]] = defaultdict(list)
    top_seq: dict[str, int] = defaultdict(int)
    gaps: dict[str, list[tuple[int, int]]] = defaultdict(list)
    ended: dict[str, Entry] = {}
    final_session: str | None = None
    for e in entries:
        v = e.value if isinstance(e.value, dict) else {}
        if e.process == "control" and e.f == "publish" and e.type == "ok" and e.key is not None:
            owed[e.key] = [(str(s), int(q)) for s, q in v.get("owed", [])]
        elif e.process == "client" and e.f == "notify" and e.key is not None:
            delivered[e.key].append(e)
            session = str(v.get("session"))
            top_seq[session] = max(top_seq[session], int(v.get("seq", 0)))
        elif e.process == "client" and e.f == "gap":
            gaps[str(v.get("session"))].append((int(v["expected"]), int(v["seq"]) - 1))
        elif e.process == "client" and e.f == "recovery" and not v.get("recovered"):
            if v.get("reason") in ("expired", "unknown") and v.get("previous") is not None:
                ended.setdefault(str(v["previous"]), e)
        elif e.process == "control" and e.f == "end":
            final_session = v.get("session")
    for key, got in delivered.items():
        if len(got) > 1:
            out.append(Violation("notify-duplicate", key, f"delivered {len(got)} times"))
        first = got[0].value or {}
        where = (str(first.get("session")), int(first.get("seq", 0)))
        if where not in owed.get(key, []):
            out.append(
                Violation(
                    "notify-phantom",
                    key,
                    f"delivered as {where[0]} seq {where[1]}, but the server owed it as"
                    f" {owed.get(key) or 'nothing (not published to a subscriber)'}",
                )
            )
    for key, places in owed.items():
        if key in delivered or not places:
            continue
        reasons: list[str] = []
        for session, seq in places:
            if any(lo <= seq <= hi for lo, hi in gaps.get(session, ())):
                reasons = []
                break
            if seq > top_seq.get(session, 0) and session in ended and session != final_session:
                reasons = []
                break
            if seq < top_seq.get(session, 0):
                reasons.append(f"{session} seq {seq}: later seqs arrived and no gap was reported")
            elif session == final_session:
                reasons.append(f"{session} seq {seq}: the session lives on and never got it")
            else:
                reasons.append(
                    f"{session} seq {seq}: the session ended without a failed recovery saying so"
                )
        if reasons:
            rule = "notify-silent-gap" if "later seqs" in reasons[0] else "notify-silent-loss"
            out.append(
                Violation(rule, key, "never delivered, never reported: " + "; ".join(reasons))
            )
    return out


def check_integrity(entries: Sequence[Entry]) -> list[Violation]:
    """No peer read a broken WebSocket stream and the proxy reported no failure of its own."""
    out: list[Violation] = []
    for e in entries:
        v = e.value if isinstance(e.value, dict) else {}
        if e.process == "server" and e.f == "close" and v.get("code") in BROKEN_STREAM_CODES:
            out.append(
                Violation(
                    "stream-broken",
                    None,
                    f"connection {v.get('conn')} closed with {v.get('code')}: a peer read a"
                    " broken WebSocket stream",
                    (e,),
                )
            )
        elif e.process == "client" and e.f == "error" and v.get("kind") == "bad_frame":
            out.append(Violation("stream-broken", None, f"the client read a bad frame: {v}", (e,)))
        elif e.process == "proxy" and e.f == "error":
            out.append(Violation("proxy-error", None, f"the fault proxy failed: {v}", (e,)))
        elif e.process == "nemesis" and e.type == "fail":
            out.append(Violation("proxy-error", None, f"a fault step failed: {v}", (e,)))
    return out
