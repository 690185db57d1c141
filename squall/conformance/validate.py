"""``squall validate PATH...``: check scenario files; nothing runs.

Every problem is printed as ``file:line:column: key: what was expected``; the
exit status is 0 when all files are valid, 2 when any is not (1 is left to
``squall run`` for a FAILED verdict). ``--schema`` prints the JSON Schema. A
third-party step pack that did not load is printed first, as a warning; a file that
uses one of its steps is invalid, with a problem naming the pack and its exception.
"""

from __future__ import annotations

import argparse
import json
import sys

from .loader import load_all
from .models import BROKEN_PACKS, scenario_json_schema


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", default=["scenarios"], help="files or directories")
    parser.add_argument(
        "--schema", action="store_true", help="print the scenario JSON Schema and exit"
    )


def run(args: argparse.Namespace) -> int:
    if args.schema:
        print(json.dumps(scenario_json_schema(), indent=2, sort_keys=True))
        return 0
    for broken in BROKEN_PACKS:  # its steps are unknown: say so even if no file uses one
        print(f"warning: {broken}; its steps are unknown", file=sys.stderr)
    loaded, problems = load_all(args.paths)
    for problem in problems:
        print(problem, file=sys.stderr)
    files = len({str(p.path) for p in problems})
    if problems:
        print(
            f"{len(problems)} problem(s) in {files} file(s); {len(loaded)} scenario(s) valid",
            file=sys.stderr,
        )
        return 2
    if not loaded:
        print(f"no scenario files under: {' '.join(args.paths)}", file=sys.stderr)
        return 2
    print(f"{len(loaded)} scenario(s) valid")
    return 0
