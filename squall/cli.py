"""The ``squall`` command: one subcommand per job, each implemented next to what it runs."""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module, help). Each module has ``add_arguments(parser)`` and ``run(args) -> int``.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("squall.simulator.demo", "start the simulator and run a smoke session against it"),
    "serve": ("squall.simulator.serve", "run the simulator as a stand-in backend"),
    "proxy": ("squall.faults.cli", "run the Toxiproxy-compatible fault proxy"),
    "run": ("squall.conformance.run", "run YAML scenarios against a client under test"),
    "validate": ("squall.conformance.validate", "check scenario files; nothing runs"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module is imported, so one subcommand cannot break another."""
    parser = argparse.ArgumentParser(prog="squall", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        if name == command:
            module = importlib.import_module(module_name)
            p.description = module.__doc__
            module.add_arguments(p)
            p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command if command in COMMANDS else None).parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
