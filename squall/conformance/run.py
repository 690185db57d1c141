"""``squall run [PATHS] [--client SPEC] [--json out.json] [--html out/]``: no pytest needed.

Every scenario under PATHS (default ``scenarios/``) runs against each
``--client`` (default ``reference``), with a progress bar; the verdict matrix
goes to ``--json`` (Autobahn ``index.json`` shape) and ``--html``, transcripts
next to them. ``-j N`` runs N scenarios at once, each with its own simulator,
proxy and client processes.

Before anything runs, each client's driver is started once (:func:`.clients.preflight`):
one that does not start is reported once, with its whole stderr, its scenarios are
ERROR without running, and the others still run. Each FAILED or ERROR run is printed
with its one-line headline (the step, expected, observed, the rule) and the
transcript around it.

Exit status: 0 when every run passed (OK, NON-STRICT, INFORMATIONAL, UNIMPLEMENTED);
1 when a client FAILED; 2 when a scenario file is invalid or nothing was selected
(each problem printed as ``file:line:column: what``; the valid scenarios still run);
3 when a run is ERROR (a driver that did not start, a scenario that cannot be carried
out, a squall bug): the more urgent of them, 2 before 3 before 1.

Secrets: one registry for the whole command, fed by every run's, scrubs all it
prints (failures, problems, log records) and the JSON and HTML reports.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from squall.secrets import Secrets

from .clients import expand, preflight_all, profile
from .loader import Loaded, load_all, select
from .runner import Run
from .verdicts import Blame, Failure, Result, Verdict

EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_ERROR = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", default=["scenarios"], help="files or directories")
    parser.add_argument(
        "--client",
        action="append",
        default=None,
        metavar="SPEC",
        help="client under test (repeatable): a name (reference, reference-mixer, "
        "reference-ringcentral, mixer-sdk, ringcentral-sdk), 'all', 'reference' with flags, "
        "or a driver command line",
    )
    parser.add_argument(
        "--scenarios",
        "-s",
        action="append",
        default=[],
        metavar="GLOB",
        help="only scenarios whose id matches GLOB, e.g. 'drain.*' (repeatable; default all)",
    )
    parser.add_argument("--timescale", type=float, default=None, help="override every scenario's")
    parser.add_argument("--json", metavar="PATH", help="write the verdict matrix as JSON")
    parser.add_argument("--html", metavar="DIR", help="write the static HTML report")
    parser.add_argument("-j", "--jobs", type=int, default=1, help="scenarios run at once")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


async def run_many(
    items: list[Loaded],
    clients: list[str],
    *,
    jobs: int = 1,
    timescale: float | None = None,
    on_result: Any = None,
    secrets: Secrets | None = None,
) -> list[Result]:
    """Every scenario against every client, ``jobs`` at a time, in a stable order.

    ``secrets`` receives every secret each run learns (each run keeps its own as well).
    """
    slots = max(1, jobs)
    sem = asyncio.Semaphore(slots)
    alone = asyncio.Lock()  # one exclusive run gathers every slot at a time: no deadlock
    # A scenario runs against the clients whose dialect has its behaviour.
    pairs = [
        (c, item)
        for c in expand(clients)
        for item in items
        if profile(c).dialect in item.scenario.dialects
    ]

    async def one(client: str, item: Loaded) -> Result:
        # A crowd's thousands of sockets share this loop: beside it, other scenarios' real
        # timings would be starved, so a scenario with crowd steps runs alone.
        exclusive = any(step.name.startswith("crowd.") for step in item.scenario.steps)
        held = 0
        try:
            if exclusive:
                async with alone:
                    for _ in range(slots):
                        await sem.acquire()
                        held += 1
            else:
                await sem.acquire()
                held = 1
            run = Run(item, client=client, timescale=timescale, secrets=secrets)
            result = await run.execute()
        finally:
            for _ in range(held):
                sem.release()
        if on_result is not None:
            on_result(result)
        return result

    return list(await asyncio.gather(*(one(c, i) for c, i in pairs)))


def run(args: argparse.Namespace) -> int:
    secrets = Secrets()
    with scrubbed_logging(secrets):
        return _run(args, secrets)


@contextlib.contextmanager
def scrubbed_logging(secrets: Secrets) -> Iterator[None]:
    """Every log record the process writes passes through ``secrets`` (a stderr handler
    for WARNING and above is added when logging has none)."""
    root = logging.getLogger()
    added = None
    if not root.handlers:
        added = logging.StreamHandler(sys.stderr)
        added.setLevel(logging.WARNING)
        added.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(added)
    handlers = list(root.handlers)
    scrub = secrets.log_filter()
    for handler in handlers:
        handler.addFilter(scrub)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(scrub)
        if added is not None:
            root.removeHandler(added)


def _run(args: argparse.Namespace, secrets: Secrets) -> int:
    from .report import failure_text, write_html, write_json, write_transcript

    loaded, problems = load_all(args.paths)
    for problem in problems:
        print(secrets.scrub_text(str(problem)), file=sys.stderr)
    if problems:
        files = len({str(p.path) for p in problems})
        print(
            f"{len(problems)} problem(s) in {files} file(s); "
            f"running the {len(loaded)} valid scenario(s)",
            file=sys.stderr,
        )
    globs = [g for raw in args.scenarios for g in raw.split(",") if g]
    items = select(loaded, globs or None)
    if not items:
        print(secrets.scrub_text(nothing_selected(args.paths, loaded, globs)), file=sys.stderr)
        return EXIT_INVALID
    clients = expand(args.client or ["reference"])
    out_dir = Path(args.html) if args.html else (Path(args.json).parent if args.json else None)
    start = time.perf_counter()
    broken = asyncio.run(preflight_all(clients, timescale=args.timescale or 0.01))
    for report in broken.values():
        print(secrets.scrub_text(report), file=sys.stderr)
    unstarted = [
        not_started(item, spec, broken[spec])
        for spec in broken
        for item in items
        if profile(spec).dialect in item.scenario.dialects
    ]
    if broken:
        print(
            f"{len(unstarted)} run(s) of {len(broken)} client(s) not started: ERROR",
            file=sys.stderr,
        )
    working = [c for c in clients if c not in broken]
    results = [
        *(
            _with_progress(items, working, args, out_dir, write_transcript, secrets)
            if working
            else []
        ),
        *unstarted,
    ]
    wall = time.perf_counter() - start
    failed = [r for r in results if r.verdict is Verdict.FAILED]
    errors = [r for r in results if r.verdict is Verdict.ERROR and r.failure is not None]
    for r in [*failed, *(e for e in errors if e.failure and e.failure.blame is not Blame.DRIVER)]:
        print(failure_text(r), file=sys.stderr)
    dicts = [r.to_json() for r in results]
    if args.json:
        write_json(dicts, args.json, secrets=secrets)
    if args.html:
        print(f"HTML report: {write_html(dicts, args.html, secrets=secrets)}")
    counts: dict[str, int] = {}
    for r in results:
        counts[r.verdict.value] = counts.get(r.verdict.value, 0) + 1
    proto = sum(r.protocol_time for r in results)
    print(
        f"{len(results)} runs: "
        + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
        + f"; {wall:.1f} s wall for {proto:.0f} s of protocol time"
        f" (x{proto / wall if wall else 0:.0f})"
    )
    if problems:
        return EXIT_INVALID
    if errors:
        return EXIT_ERROR
    return EXIT_FAILED if failed else 0


def nothing_selected(paths: list[str], loaded: list[Loaded], globs: list[str]) -> str:
    """Why no scenario was selected, and what would have been."""
    where = " ".join(str(p) for p in paths)
    if not loaded:
        return f"no scenario selected: no valid scenario file under {where}"
    ids = sorted(item.scenario.id for item in loaded)
    shown = ", ".join(ids[:12]) + (f", ... ({len(ids)} in all)" if len(ids) > 12 else "")
    return (
        f"no scenario selected: --scenarios {' '.join(repr(g) for g in globs)} matched none "
        f"of the {len(ids)} scenario id(s) under {where} (globs match ids, not file names): "
        f"{shown}"
    )


def not_started(item: Loaded, client: str, report: str) -> Result:
    """The ERROR result of a run that did not start: its client's driver could not."""
    sc = item.scenario
    first = report.splitlines()[0] if report else "the driver did not start"
    return Result(
        scenario=sc.id,
        title=sc.title,
        path=str(item.path),
        client=" ".join(client.split()),
        verdict=Verdict.ERROR,
        spec=list(sc.spec),
        timescale=sc.timescale,
        failure=Failure(
            step=-1,
            name="setup",
            line=item.line,
            expected="the client's driver starts",
            observed=first,
            blame=Blame.DRIVER,
        ),
        notes=[report],
    )


def _with_progress(
    items: list[Loaded],
    clients: list[str],
    args: argparse.Namespace,
    out_dir: Path | None,
    dump: Any,
    secrets: Secrets | None = None,
) -> list[Result]:
    total = len(items) * len(clients)

    def done(result: Result) -> None:
        if out_dir is not None:
            dump(result, out_dir / "transcripts")

    if args.quiet or not sys.stderr.isatty():

        def plain(result: Result) -> None:
            done(result)
            if not args.quiet:
                print(
                    f"{result.verdict.value:<14} {result.scenario} [{result.client}]",
                    file=sys.stderr,
                )

        return asyncio.run(
            run_many(
                items,
                clients,
                jobs=args.jobs,
                timescale=args.timescale,
                on_result=plain,
                secrets=secrets,
            )
        )
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]squall run"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
    ) as progress:
        task = progress.add_task("", total=total)

        def tick(result: Result) -> None:
            done(result)
            progress.update(
                task, advance=1, description=f"{result.verdict.value} {result.scenario}"
            )

        return asyncio.run(
            run_many(
                items,
                clients,
                jobs=args.jobs,
                timescale=args.timescale,
                on_result=tick,
                secrets=secrets,
            )
        )
