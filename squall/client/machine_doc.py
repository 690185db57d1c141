"""docs/client.md's "State machine" section, rendered from the client's tables.

The tables live in :mod:`squall.client.states` (the public status) and
:mod:`squall.client.phases` (the socket's phase, drains, timers); this module
only draws them, between two markers, so the page cannot drift from the code
(tests/client/test_phases.py compares). Rewrite the section with::

    python -m squall.client.machine_doc --write
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from . import phases, states

BEGIN = "<!-- BEGIN state machine: generated from the tables, do not edit by hand -->"
END = "<!-- END state machine -->"
PAGE = Path(__file__).resolve().parents[2] / "docs" / "client.md"


def doc_section() -> str:
    """Everything between the markers in docs/client.md, from the tables."""
    return "\n".join(
        [
            BEGIN,
            "",
            "### Status",
            "",
            "What the application sees (`TRANSITIONS` in states.py). A move the table does",
            "not declare is a misuse by the application (`connect()` while connected) and",
            "raises `IllegalTransition` naming the status and the event.",
            "",
            "```mermaid",
            states.diagram(),
            "```",
            "",
            "### Socket phase",
            "",
            "Where the current socket is (`PHASES`). The status is `connected` exactly when",
            "the phase is `ready`, and `closing` exactly when it is `closing`.",
            "",
            "```mermaid",
            phases.phase_diagram(),
            "```",
            "",
            "### Drain",
            "",
            "A server's reconnect request, §6 (`DRAINS`). Each state but `none` runs one",
            "timer (`DRAIN_TIMERS`); entering a state cancels the others' timers.",
            "",
            "```mermaid",
            phases.drain_diagram(),
            "```",
            "",
            "### Timers",
            "",
            "Every timer the core sets (`TIMERS`). `disconnect()` and giving up cancel all",
            "of them.",
            "",
            phases.timer_table(),
            "",
            END,
        ]
    )


def updated(page: str) -> str:
    """``page`` with the text between the markers replaced by :func:`doc_section`."""
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(page):
        raise ValueError(f"docs/client.md has no {BEGIN!r} ... {END!r} markers")
    return pattern.sub(lambda _: doc_section(), page, count=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m squall.client.machine_doc",
        description="Print the client's state-machine section of docs/client.md.",
    )
    parser.add_argument(
        "--write", action="store_true", help=f"rewrite it between the markers in {PAGE}"
    )
    args = parser.parse_args(argv)
    if not args.write:
        print(doc_section())
        return 0
    PAGE.write_text(updated(PAGE.read_text(encoding="utf-8")), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
