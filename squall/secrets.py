"""One redaction point: everything squall records or prints passes through :class:`Secrets`.

A registry holds the credentials a run knows (tokens, guest JWTs, the recovery
tokens the simulator issues, a dialect's access tokens, SASL payloads), learns
more as it sees them, and :meth:`Secrets.scrub` masks them with ``***``:

- **by key**: the value under a credential key (:data:`SECRET_KEYS`) in a dict,
  in JSON text (``"token": "..."``), in a Python repr (``'token': '...'``), in a
  URL query (``?token=...``, and ``wsc=`` too), and after ``Authorization:`` or
  ``Bearer``. Every such value is also *learned*: once seen under a key, it is
  masked wherever else it appears;
- **by value**: every known secret, anywhere in any string, at any depth (dict
  keys and values, lists, nested JSON text), in the forms it travels in: raw,
  JSON-escaped (once and twice), URL-encoded, HTML-escaped and base64 (standard
  and URL-safe, at any alignment: a SASL PLAIN ``\\0user\\0authKey:SECRET`` in base64
  is masked whole, as is any base64 run that carries a known secret, without the
  registry knowing the user).

What is not a secret, by decision:

- a value shorter than :data:`MIN_LENGTH` (4) characters. Masking every ``ab``
  of a transcript would destroy it, and so short a value protects nothing; the
  key-based masking still hides it where it is presented as a credential;
- a value that is (or is part of) a name the run shows openly, given with
  :meth:`Secrets.public`: a client's name, a user. Without a token map the
  simulator takes a token as its own user name (``token: alice``), so that token
  *is* the user name, and masking it would mask every ``alice`` in the transcript.

The module functions :func:`redact`, :func:`redact_text` and :func:`redact_url`
do the key-based masking alone, with no state (the simulator's dialects use
them on every auth frame).

Cost: with no known secret, a string that holds no credential key costs a few
substring checks (about a microsecond); the key patterns run only on text that
names a key. Known secrets are found by Aho-Corasick automata (pyahocorasick: one
pass over the text, whatever the number of secrets), rebuilt lazily after the set
changes, in levels that merge like a binary counter's digits, so a registry that
grows with every session (a long ``squall serve``, a herd of 10,000 clients) rebuilds
each form about log2(forms) times in all. A regex alternation did the same job
before and cost 4 ms a string at 1,000 secrets.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import re
import threading
import urllib.parse
from collections.abc import Iterable
from typing import Any

import ahocorasick

__all__ = [
    "KEYS_ONLY",
    "MIN_LENGTH",
    "REDACTED",
    "SECRET_KEYS",
    "ScrubFilter",
    "Secrets",
    "redact",
    "redact_text",
    "redact_url",
]

REDACTED = "***"
MIN_LENGTH = 4  # shorter values are never scrubbed by value (see the module docstring)
MIN_BASE64 = 6  # base64 fragments shorter than this are too likely to occur by chance

#: Keys whose value is a credential, wherever they appear (compared case-insensitively).
SECRET_KEYS = frozenset(
    {
        "token",
        "jwt",
        "recovery_token",
        "authorization",
        "access_token",
        "ws_access_token",
        "refresh_token",
        "password",
        "authkey",
        "accesskey",
        "jwt_secret",
    }
)
#: Query parameters that carry a credential: the keys, and RingCentral's ``wsc`` (a recovery
#: token; as a JSON key ``wsc`` holds ``{token, sequence}``, whose ``token`` is masked).
QUERY_KEYS = SECRET_KEYS | {"wsc"}


def _alternation(words: Iterable[str]) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=lambda w: (-len(w), w)))


_KEYS = _alternation(SECRET_KEYS)
_QKEYS = _alternation(QUERY_KEYS)

# Each pattern names the group that holds the value to mask; a match of none of them is a
# known secret's value form.
_KEY_PATTERNS = (
    # JSON text, and a Python repr; a string cut short (a frame that does not parse) runs to
    # the end of the text
    rf'"(?i:{_KEYS})"\s*:\s*"(?P<jv>(?:[^"\\]|\\.)*)(?:"|\\?\Z)',
    rf"'(?i:{_KEYS})'\s*:\s*'(?P<pv>(?:[^'\\]|\\.)*)(?:'|\\?\Z)",
    rf"(?:^|(?<=[?&;#]))(?i:{_QKEYS})=(?P<qv>[^&#\s\"'<>]*)",  # a URL query
    r"(?i:\bauthorization\b)[\"']?\s*[:=]\s*[\"']?(?:(?i:bearer|basic)\s+)?"
    r"(?P<av>[^\s\"',;&]+)",  # a header line
    r"\bBearer\s+(?P<bv>[A-Za-z0-9._~+/=-]{8,})",
)
_KEY_RX = re.compile("|".join(_KEY_PATTERNS))


def _keyed(low: str) -> bool:
    """Whether lower-cased text holds a word a key pattern starts from: checking this first is
    what keeps a string with nothing to mask at about a microsecond."""
    return (
        "token" in low
        or "jwt" in low
        or "wsc" in low
        or "auth" in low  # authorization, authkey
        or "password" in low
        or "accesskey" in low
        or "bearer" in low
    )


def base64_forms(raw: bytes) -> set[str]:
    """The base64 of ``raw`` as it shows inside any longer base64 payload: the characters only
    it decides at each of the three alignments it can have (in the standard alphabet; the
    patterns match the URL-safe one too, and a match is widened to its whole base64 run).
    A short value has no fragment long enough, and is looked for as a whole encoding only."""
    n = len(raw)
    out = set()
    for r in range(3):
        enc = base64.b64encode(b"\0" * r + raw).decode()
        start, end = -(-8 * r // 6), (8 * (r + n)) // 6
        out.add(enc[start:end])
    out = {f for f in out if len(f) >= MIN_BASE64}
    if not out:
        whole = base64.b64encode(raw).decode()
        out = {f for f in (whole, whole.rstrip("=")) if len(f) >= MIN_BASE64}
    return out


#: The standard base64 alphabet's two letters as the URL-safe one writes them.
_STD_TO_URLSAFE = str.maketrans("+/", "-_")

#: A form is a literal shape of a secret, or a base64 fragment of it (then ``True``: a match
#: is widened to its whole base64 run).
Form = tuple[str, bool]


def _forms_of(value: str) -> set[Form]:
    """``value``'s forms: its literal shapes and its base64 fragments, in both alphabets."""
    out = {(f, False) for f in forms(value)}
    for fragment in base64_forms(value.encode("utf-8")) - {value}:
        out |= {(fragment, True), (fragment.translate(_STD_TO_URLSAFE), True)}
    return out


def _automaton(bucket: Iterable[Form]) -> Any:
    """One Aho-Corasick automaton over ``bucket``; each word's value: (length, is base64)."""
    automaton = ahocorasick.Automaton()
    for form, b64 in bucket:
        known = automaton.get(form, None)
        automaton.add_word(form, (len(form), b64 or bool(known and known[1])))
    automaton.make_automaton()
    return automaton


def forms(value: str) -> set[str]:
    """The literal shapes ``value`` can take in recorded text (see the module docstring);
    its base64 is :func:`base64_forms`'."""
    once = json.dumps(value)[1:-1]
    out = {
        value,
        once,
        json.dumps(value, ensure_ascii=False)[1:-1],
        json.dumps(once)[1:-1],
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote_plus(value, safe=""),
        urllib.parse.quote(value),
        html.escape(value),
        html.escape(once),
    }
    return {f for f in out if len(f) >= MIN_LENGTH}


class Secrets:
    """The credentials one run (or one process) knows, and the one function that masks them.

    ``parent`` receives every secret added here too: ``squall run`` keeps one registry for
    its console and logs, fed by each scenario run's own.
    """

    def __init__(
        self,
        values: Iterable[str | None] = (),
        *,
        public: Iterable[str | None] = (),
        parent: Secrets | None = None,
        learn: bool = True,
    ) -> None:
        self.parent = parent
        self.learn = learn
        self.version = 0  # bumped on every change: readers that cache scrubbed text compare it
        #: bumped by changes that may concern text already recorded (a secret learned late, a
        #: public name): what a reader that scrubbed on record compares, to scrub again
        self.retro_version = 0
        self._lock = threading.RLock()
        self._values: set[str] = set()
        self._public: set[str] = set()
        self._forms: dict[str, set[Form]] = {}  # value -> its forms (see _forms_of)
        self._levels: list[tuple[set[Form], Any]] = []  # forms and their automaton, oldest first
        self._pending: set[Form] = set()  # forms of secrets added since the levels were built
        self._rebuild = False  # a secret was taken back: the levels start again
        self._all: list[Any] = []  # the levels' automata
        self._built = 0  # the version _all was built for
        self.public(*public)
        self.add(*values)

    # --- what is known ------------------------------------------------------------------------

    def add(self, *values: str | None, retro: bool = True) -> None:
        """Know these secrets (``None``, short values and public names are ignored).

        ``retro=False`` promises that none of them has been recorded yet (a credential the
        server registers before handing it out): text scrubbed on record need not be
        scrubbed again, which keeps a registry that learns one per session cheap to read.
        """
        fresh = []
        with self._lock:
            for value in values:
                if not isinstance(value, str) or value in self._values or not self._eligible(value):
                    continue
                self._values.add(value)
                self._forms[value] = _forms_of(value)
                self._pending |= self._forms[value]
                fresh.append(value)
            if fresh:
                self.version += 1
                self.retro_version += retro
        if fresh and self.parent is not None:
            self.parent.add(*fresh, retro=retro)

    def add_sasl_plain(self, user: str, password: str, authzid: str = "") -> None:
        """A SASL PLAIN exchange's secrets: the password, and the whole base64 payload."""
        self.add(password)
        payload = f"{authzid}\0{user}\0{password}".encode()
        self.add(base64.b64encode(payload).decode())

    def public(self, *names: str | None) -> None:
        """Names the run shows openly: never secrets here, whatever else says so."""
        with self._lock:
            new = {n for n in names if isinstance(n, str) and n and n not in self._public}
            if not new:
                return
            self._public |= new
            for value in [v for v in self._values if not self._eligible(v)]:
                self._values.discard(value)
                self._forms.pop(value, None)
                self._rebuild = True
            self.version += 1
            self.retro_version += 1

    def _eligible(self, value: str) -> bool:
        return (
            len(value) >= MIN_LENGTH
            and value != REDACTED
            and not any(value in name for name in self._public)
        )

    @property
    def values(self) -> frozenset[str]:
        """The secrets known (raw forms)."""
        with self._lock:
            return frozenset(self._values)

    def __contains__(self, value: object) -> bool:
        return value in self._values

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:  # never the values themselves
        return f"<Secrets: {len(self._values)} known, {len(self._public)} public names>"

    # --- masking ------------------------------------------------------------------------------

    def _patterns(self) -> list[Any]:
        """The automata of the value forms, in levels like a binary counter's digits.

        New forms become a level of their own; while the newest level is at least as large
        as the one before, the two merge into one automaton. Each form is rebuilt about
        log2(forms) times in all, and a search runs that many automata: a registry that
        grows by one secret per session never rebuilds everything for each new one.
        """
        if self._built == self.version:
            return self._all
        with self._lock:
            if self._rebuild:  # something was taken back: start again from what is known
                self._levels, self._rebuild = [], False
                self._pending = set().union(*self._forms.values())
            fresh, self._pending = self._pending, set()
            if fresh:
                self._levels.append((fresh, _automaton(fresh)))
            levels = self._levels
            while len(levels) > 1 and len(levels[-2][0]) <= len(levels[-1][0]):
                merged = levels[-2][0] | levels[-1][0]
                levels[-2:] = [(merged, _automaton(merged))]
            self._all = [automaton for _, automaton in levels]
            self._built = self.version
            return self._all

    def _value_spans(self, text: str, automata: list[Any]) -> list[tuple[int, int]]:
        """Where known secrets' forms occur in ``text`` (a base64 fragment widened to its run)."""
        spans: list[tuple[int, int]] = []
        for automaton in automata:
            for end, (length, b64) in automaton.iter(text):
                start = end + 1 - length
                spans.append(_widen(text, start, end + 1) if b64 else (start, end + 1))
        return spans

    def scrub_text(self, text: str) -> str:
        """``text`` with every secret masked (one search when there is nothing to mask)."""
        if len(text) < MIN_LENGTH:  # nothing to mask is this short
            return text
        automata = self._all if self._built == self.version else self._patterns()
        spans = self._value_spans(text, automata) if automata else []
        learned: list[str] = []
        if _keyed(text.lower()):
            for match in _KEY_RX.finditer(text):
                group = match.lastgroup  # the value group of the key pattern that matched
                if group is None:  # pragma: no cover - every key pattern names its group
                    continue
                start, end = match.span(group)
                if end > start and match.group(group) != REDACTED:
                    spans.append((start, end))
                    if self.learn:
                        learned.append(_unquote(group, match.group(group)))
        out = _mask(text, spans) if spans else text
        if learned:
            before = self.version
            self.add(*learned)
            if self.version != before:  # a value just learned may occur elsewhere in the text
                return self.scrub_text(out)
        return out

    def scrub(self, value: Any) -> Any:
        """A copy of ``value`` with every secret masked, at any depth (strings, dicts, lists)."""
        before = self.version
        out = self._scrub(value)
        if self.version != before:  # learned something on the way: earlier parts may hold it
            out = self._scrub(value)
        return out

    def _scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.scrub_text(value)
        if isinstance(value, dict):
            out: dict[Any, Any] = {}
            for k, v in value.items():
                if isinstance(k, str) and k.lower() in SECRET_KEYS and v is not None:
                    if self.learn and isinstance(v, str) and v != REDACTED:
                        self.add(v)
                    v = REDACTED
                else:
                    v = self._scrub(v)
                if isinstance(k, str) and (
                    self._all if self._built == self.version else self._patterns()
                ):  # by value only
                    k = self.scrub_text(k)
                    if k in out:  # two keys masked alike: keep both
                        k = f"{k}#{len(out)}"
                out[k] = v
            return out
        if isinstance(value, list):
            return [self._scrub(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self._scrub(v) for v in value)
        return value

    def log_filter(self) -> ScrubFilter:
        """A :class:`logging.Filter` that scrubs each record's message and traceback."""
        return ScrubFilter(self)


def _unquote(group: str, raw: str) -> str:
    if group == "jv":
        try:
            value = json.loads(f'"{raw}"')
        except ValueError:
            return raw
        return value if isinstance(value, str) else raw
    if group == "qv":
        return urllib.parse.unquote_plus(raw)
    return raw


_BASE64_CHAR = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_=")


def _widen(text: str, start: int, end: int) -> tuple[int, int]:
    """A base64 fragment's span grown to the whole base64 run around it (the payload)."""
    while start > 0 and text[start - 1] in _BASE64_CHAR:
        start -= 1
    while end < len(text) and text[end] in _BASE64_CHAR:
        end += 1
    return start, end


def _mask(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` with each span (merged where they overlap) replaced by :data:`REDACTED`."""
    spans.sort()
    parts: list[str] = []
    at = 0
    cut_start, cut_end = spans[0]
    for start, end in spans[1:]:
        if start <= cut_end:
            cut_end = max(cut_end, end)
            continue
        parts += [text[at:cut_start], REDACTED]
        at, (cut_start, cut_end) = cut_end, (start, end)
    parts += [text[at:cut_start], REDACTED, text[cut_end:]]
    return "".join(parts)


class ScrubFilter(logging.Filter):
    """Scrubs a log record in place; attach it to a handler so every record it writes is clean."""

    def __init__(self, secrets: Secrets) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self.secrets.scrub_text(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.secrets.scrub_text(record.exc_text)
        if record.stack_info:
            record.stack_info = self.secrets.scrub_text(record.stack_info)
        return True


# --- key-based masking alone, with no state: the simulator's dialects use these ----------------


class _KeysOnly(Secrets):
    """The registry that knows no value and learns none: shared, so it refuses to be fed."""

    def add(self, *values: str | None, retro: bool = True) -> None:
        if any(isinstance(v, str) for v in values):
            raise TypeError("KEYS_ONLY knows no secret: give the caller its own Secrets")

    def public(self, *names: str | None) -> None:
        if any(names):
            raise TypeError("KEYS_ONLY knows no secret: give the caller its own Secrets")


#: Key-based masking alone (for output that has no registry of its own).
KEYS_ONLY: Secrets = _KeysOnly(learn=False)


def redact(value: Any) -> Any:
    """A copy of ``value`` with every credential-keyed value masked, at any depth."""
    return KEYS_ONLY.scrub(value)


def redact_text(text: str) -> str:
    """Mask credential values in text that may not even parse (JSON, a repr, a URL, a header)."""
    return KEYS_ONLY.scrub_text(text)


def redact_url(url: str) -> str:
    """``/?token=abc&x=1`` -> ``/?token=***&x=1``."""
    return KEYS_ONLY.scrub_text(url)
