"""The ``squall`` command: one subcommand per job, each implemented next to what it runs.

What users read is :data:`DESCRIPTION`, :data:`EPILOG` and each subcommand's module
docstring (reST markup stripped); every option's default is shown by :class:`Formatter`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
import textwrap

import squall

DESCRIPTION = """\
squall checks realtime WebSocket clients against the rules of their protocol: it
plays the server (a scriptable simulator), the network (a fault proxy) and the
test suite (YAML scenarios of drops, drains, auth failures and recoveries)."""

EPILOG = """\
Everything listens on 127.0.0.1 only, unless an option says otherwise. Ports:
serve's WebSocket endpoints and control API take any free port and print their
URLs (fix them with --port and --control-port); proxy's API is on 8474, as
Toxiproxy's is; demo and run start their own servers on free ports.

Exit status: 0 success, 1 a client FAILED a scenario (run) or a demo step
failed, 2 bad arguments or invalid scenario files, 130 interrupted, 141 the
reader of its output went away (| head); 'squall run --help' lists run's others.

Run 'squall COMMAND --help' for every option of a command. Documentation:
docs/scenarios.md (writing scenarios), docs/driver.md (putting your client
under test), docs/control-api.md (scripting the simulator over HTTP)."""

#: Exit status when stdout's reader went away (``| head``): what a shell reports for a
#: process that SIGPIPE ended (128 + 13).
EXIT_BROKEN_PIPE = 141

# subcommand -> (module, help). Each module has ``add_arguments(parser)`` and ``run(args) -> int``.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": (
        "squall.simulator.demo",
        "start a simulator and walk a raw WebSocket client through the protocol, printing "
        "each frame: a smoke test of the install",
    ),
    "serve": (
        "squall.simulator.serve",
        "run the simulator as a stand-in backend for your own tests until Ctrl-C; prints its "
        "WebSocket and control API URLs",
    ),
    "proxy": (
        "squall.faults.cli",
        "run the Toxiproxy-compatible fault proxy (API on 127.0.0.1:8474): latency, cuts, "
        "bandwidth limits between a client and its server",
    ),
    "run": (
        "squall.conformance.run",
        "run the conformance scenarios against one or more clients and report verdicts "
        "(console, JSON, HTML); no pytest needed",
    ),
    "validate": (
        "squall.conformance.validate",
        "check scenario files without running them (--schema: the JSON Schema for editors)",
    ),
    "report": (
        "squall.conformance.report_cli",
        "reports from a run's index.json: a scenario's sequence as Mermaid (--mermaid ID), "
        "several runs merged into one matrix (merge)",
    ),
}


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions keep their paragraphs; an option whose help names no default gets one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or default is None
            or default is False  # a flag (0 is a default worth showing: `in` would match it)
            or default == []
            or default == argparse.SUPPRESS
            or not (action.option_strings or action.nargs in ("?", "*"))
        ):
            return text
        shown = " ".join(map(str, default)) if isinstance(default, list | tuple) else default
        return f"{text} (default: {str(shown).replace('%', '%%')})"


def _plain(doc: str | None) -> str | None:
    """A module docstring for a terminal: reST roles and double backquotes removed."""
    if doc is None:
        return None
    doc = re.sub(r":\w+:`[~.]?([^`]+)`", r"\1", doc)
    return re.sub(r"(`{2,}) ?(.+?) ?\1", r"\2", doc, flags=re.S)  # ``x``; ```` ```y ````


def _client_help() -> str:
    """``squall run``'s epilog: the named clients, and the reference client's own flags
    (read from its driver's parser, so a new flag shows up here by itself)."""
    from squall.client.driver import build_parser as driver_parser
    from squall.conformance.clients import PROFILES

    def row(name: str, about: str) -> list[str]:
        return textwrap.wrap(
            about, 79, initial_indent=f"  {name:<24}", subsequent_indent=" " * 26
        ) or [f"  {name}"]

    lines = ["clients (--client NAME; none given, or 'all', is every one):"]
    for prof in PROFILES.values():
        lines += row(prof.name, prof.about)
    lines += [
        "",
        "reference client flags, added after its name as one argument",
        "(--client 'reference --no-resubscribe'; --timescale, --seed and --dialect are",
        "set by the scenario and the client's name):",
    ]
    set_by_runner = {word for prof in PROFILES.values() for word in prof.argv}
    for action in driver_parser()._actions:  # argparse keeps no public list
        flags = action.option_strings
        if not flags or "-h" in flags or set_by_runner.intersection(flags):
            continue
        value = "" if action.nargs == 0 else f" {action.metavar or action.dest.upper()}"
        lines += row(", ".join(flags) + value, action.help or "")
    return "\n".join(lines)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module is imported, so one subcommand cannot break another."""
    parser = argparse.ArgumentParser(
        prog="squall", description=DESCRIPTION, epilog=EPILOG, formatter_class=Formatter
    )
    parser.add_argument("--version", action="version", version=f"squall {squall.__version__}")
    sub = parser.add_subparsers(title="commands", dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, formatter_class=Formatter)
        if name == command:
            module = importlib.import_module(module_name)
            p.description = _plain(module.__doc__)
            module.add_arguments(p)
            p.set_defaults(_run=module.run)
            if name == "run":
                p.epilog = _client_help()
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else None)
    if not argv:
        parser.print_help(sys.stderr)
        return 2
    try:
        try:
            args = parser.parse_args(argv)  # --help and --version print, then SystemExit
            return int(args._run(args) or 0)
        finally:
            sys.stdout.flush()  # a reader that went away shows here, inside the try
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `squall validate --schema | head`: stop quietly, as a tool that SIGPIPE ended.
        # stdout goes to /dev/null so the interpreter's own flush at exit cannot complain
        # (the way the Python docs give, "Note on SIGPIPE"; SIG_DFL would end `serve` too
        # when a socket peer goes away).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
