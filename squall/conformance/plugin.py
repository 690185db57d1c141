"""The pytest plugin (entry point ``pytest11: squall``): scenarios as test items, and fixtures.

Collection: a ``squall-suite.yaml`` file (``scenarios: [../scenarios]``) makes
every scenario under those paths one test item named by its id, so
``pytest conformance/ -k drain`` and ``--scenarios 'drain.*'`` select as
expected; a scenario file passed by path (``pytest scenarios/drain/deferred.yaml``)
is collected too, with or without the schema modeline. ``--scenario-dir DIR``
runs the scenarios under DIR instead of the suite file's (your own files, with the
suite's clients and ``known:`` table). When nothing is selected, the plugin says
why. ``--client`` picks the client under test, ``--timescale`` overrides every
scenario's.

Before a client's scenarios are collected its driver is started once: one that does
not start is one ERROR item (``driver[CLIENT]``) with its whole stderr, not a
failure per scenario.

FAILED fails the test and prints the step, the expectation, what was observed,
the rule and the slice of the transcript that matters (the first line, which
``-ra`` shows, is the headline: step, expected, observed, rule); ERROR (not the
client's fault) is reported as a pytest error; UNIMPLEMENTED is a skip;
NON-STRICT and INFORMATIONAL pass, with a note in the report. With
allure-pytest active, each scenario step is an Allure step and the transcript
and a sequence diagram are attached. ``--squall-json`` / ``--squall-html`` write
the verdict matrix (also under pytest-xdist: results travel in
``user_properties``). Everything reported (failure text, skip reasons, notes,
attachments, the matrix) is scrubbed with the run's secrets (squall.secrets).

Fixtures for your own tests: ``squall_timescale``, ``squall_simulator``,
``squall_proxy``, ``squall_client`` (a driver process factory) and
``squall_run_scenario``. Heavy modules load lazily: this plugin is active in
every pytest run of an environment where squall is installed.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest

if TYPE_CHECKING:
    from .loader import Loaded
    from .verdicts import Result

SUITE_FILE = "squall-suite.yaml"
MODELINE = "scenario.schema.json"
RESULT_KEY = "squall_result"
ERROR_KEY = "squall_error"  # a user property: this report is an ERROR, not the client's fault
KNOWN_VERDICTS = ("FAILED", "FLAKY", "ERROR")

__all__ = [
    "ScenarioItem",
    "pytest_addoption",
    "pytest_collect_file",
    "pytest_configure",
    "pytest_report_collectionfinish",
    "pytest_report_teststatus",
    "pytest_runtest_logreport",
    "pytest_runtest_makereport",
    "pytest_sessionfinish",
    "pytest_terminal_summary",
    "squall_client",
    "squall_proxy",
    "squall_run_scenario",
    "squall_simulator",
    "squall_timescale",
]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("squall", "squall conformance scenarios")
    group.addoption(
        "--scenarios",
        action="append",
        default=[],
        metavar="GLOB",
        help="run only scenarios whose id matches (repeatable, comma-separated): 'drain.*'",
    )
    group.addoption(
        "--scenario-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="run the scenario files under DIR (repeatable; files too) instead of the "
        "suite file's scenarios:",
    )
    group.addoption(
        "--client",
        action="append",
        default=[],
        metavar="SPEC",
        help="client under test (repeatable): a name (reference, reference-mixer, "
        "reference-ringcentral, mixer-sdk, ringcentral-sdk, or 'all'), 'reference' with flags, "
        "or a driver command line (docs/driver.md). Default: the suite file's clients, "
        "else reference",
    )
    group.addoption(
        "--timescale",
        type=float,
        default=None,
        help="override every scenario's timescale (real seconds per protocol second)",
    )
    group.addoption(
        "--herd-size",
        type=int,
        default=None,
        metavar="N",
        help="clients in every crowd of a herd scenario (sets $SQUALL_HERD_SIZE; "
        "tests/crowd runs 1,000 by default, 10,000 is the large run: docs/herd.md)",
    )
    group.addoption("--squall-json", metavar="PATH", help="write the verdict matrix as JSON")
    group.addoption("--squall-html", metavar="DIR", help="write the static HTML report")


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_RESULTS] = []
    config.stash[_WHY_NONE] = []
    config.stash[_STARTED] = {}
    config.addinivalue_line("markers", "squall_scenario: a YAML conformance scenario")
    herd = config.getoption("herd_size", None)
    if herd is not None:  # read by the crowd steps, in this process and in any it starts
        import os

        from .steps_crowd import SIZE_ENV

        os.environ[SIZE_ENV] = str(herd)


_RESULTS = pytest.StashKey[list[dict[str, Any]]]()
_WHY_NONE = pytest.StashKey[list[str]]()  # why a collector selected no scenario
_STARTED = pytest.StashKey[dict[str, str | None]]()  # client -> why its driver did not start


def _globs(config: pytest.Config) -> list[str]:
    return [
        g.strip()
        for raw in config.getoption("scenarios") or []
        for g in raw.split(",")
        if g.strip()
    ]


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.name == SUITE_FILE:
        return SuiteFile.from_parent(parent, path=file_path)
    if file_path.suffix in (".yaml", ".yml"):
        if parent.session.isinitpath(file_path):  # named on the command line: a scenario
            return ScenarioFile.from_parent(parent, path=file_path)
        try:
            with file_path.open(encoding="utf-8") as fh:
                head = fh.readline()
        except OSError:
            return None
        if "yaml-language-server" in head and MODELINE in head:
            return ScenarioFile.from_parent(parent, path=file_path)
    return None


def pytest_report_collectionfinish(
    config: pytest.Config, start_path: Path, items: list[pytest.Item]
) -> list[str]:
    """When no scenario was selected, why (shown after "collected N items")."""
    if any(isinstance(i, ScenarioItem) for i in items):
        return []
    why_none = config.stash.get(_WHY_NONE, None) or []
    return [f"squall: {why}" for why in dict.fromkeys(why_none)]


@pytest.hookimpl(tryfirst=True)
def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config) -> Any:
    """An ERROR verdict (or a driver that did not start) is a pytest error, not a failure."""
    if (
        report.when == "call"
        and report.failed
        and any(key == ERROR_KEY for key, _ in report.user_properties)
    ):
        return "error", "E", "ERROR"
    return None


class ScenarioInvalid(pytest.Item):
    """Stands for a scenario file that does not validate: fails with every problem (an
    error when a step pack that did not load may be why: nobody can fix the file)."""

    def __init__(self, *, problems: list[Any], **kw: Any) -> None:
        super().__init__(**kw)
        self.problems = problems

    def runtest(self) -> None:
        raise InvalidScenario(self.problems)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, InvalidScenario):
            return "invalid scenario file:\n" + "\n".join(f"  {p}" for p in excinfo.value.problems)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"invalid: {self.name}"


class InvalidScenario(Exception):
    def __init__(self, problems: list[Any]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


def _clients(config: pytest.Config, suite: list[str] | None = None) -> list[str]:
    """``--client`` values, else the suite file's ``clients:``, else the reference client."""
    from .clients import expand

    given = config.getoption("client") or suite or ["reference"]
    return expand(given)


def first_client(config: pytest.Config) -> str:
    """The client fixtures use: the first ``--client`` (the reference client by default)."""
    return _clients(config)[0]


@dataclass(frozen=True)
class Known:
    """A verdict a client is known to get, with why: ``FAILED`` (always), ``FLAKY`` (a race
    that fails some runs) or ``ERROR`` (it cannot be judged here, say a driver that needs
    what this machine lacks)."""

    verdict: str
    why: str


def _known(data: dict[str, Any], path: Path) -> dict[tuple[str, str], Known]:
    """The suite file's ``known:`` table, client -> scenario id -> {verdict, why}."""
    out: dict[tuple[str, str], Known] = {}
    for client, rows in (data.get("known") or {}).items():
        for scenario, row in (rows or {}).items():
            verdict = str((row or {}).get("verdict", "")).upper()
            if verdict not in KNOWN_VERDICTS or not (row or {}).get("why"):
                raise pytest.UsageError(
                    f"{path}: known.{client}.{scenario} needs verdict "
                    f"{', '.join(KNOWN_VERDICTS[:-1])} or {KNOWN_VERDICTS[-1]} and a why"
                )
            out[(str(client), str(scenario))] = Known(verdict, str(row["why"]))
    return out


class _ScenarioCollector(pytest.File):
    suite_clients: list[str] | None = None
    known: dict[tuple[str, str], Known] = {}

    def _items(self, paths: list[Path]) -> Iterator[pytest.Item]:
        from .clients import profile
        from .loader import load_all, select

        loaded, problems = load_all(paths)
        by_file: dict[str, list[Any]] = {}
        for p in problems:
            by_file.setdefault(p.path, []).append(p)
        for path, found in by_file.items():
            yield ScenarioInvalid.from_parent(
                self, name=f"invalid:{Path(path).name}", problems=found
            )
        clients = _clients(self.config, self.suite_clients)
        globs = _globs(self.config)
        selected = select(loaded, globs or None)
        if not selected:
            self.config.stash[_WHY_NONE].append(_why_none(paths, loaded, globs))
        # A behaviour the client's dialect does not have is no test for it.
        runs = [
            (item, client)
            for item in selected
            for client in clients
            if profile(client).dialect in item.scenario.dialects
        ]
        broken = self._preflight(list(dict.fromkeys(c for _, c in runs)))
        for client, report in broken.items():
            unstarted = [item for item, c in runs if c == client]
            yield DriverNotStarted.from_parent(
                self, name=f"driver[{client}]", client=client, report=report, runs=unstarted
            )
        for item, client in runs:
            if client in broken:
                continue
            name = item.scenario.id if len(clients) == 1 else f"{item.scenario.id}[{client}]"
            known = self.known.get((client, item.scenario.id))
            yield ScenarioItem.from_parent(self, name=name, loaded=item, client=client, known=known)

    def _preflight(self, clients: list[str]) -> dict[str, str]:
        """Start each client's driver once (once per session): client -> why it did not."""
        import asyncio

        from .clients import preflight_all

        if self.config.option.collectonly or not clients:
            return {}
        started = self.config.stash[_STARTED]
        todo = [c for c in clients if c not in started]
        if todo:
            timescale = self.config.getoption("timescale") or 0.01
            broken = asyncio.run(preflight_all(todo, timescale=timescale))
            started.update({c: broken.get(c) for c in todo})
        return {c: why for c in clients if (why := started.get(c)) is not None}


def _why_none(paths: list[Path], loaded: list[Loaded], globs: list[str]) -> str:
    """Why a collector selected no scenario, and how to select one."""
    where = ", ".join(str(p) for p in paths) or "(no paths)"
    if not loaded:
        return f"no valid scenario file under {where}"
    ids = sorted(item.scenario.id for item in loaded)
    shown = ", ".join(ids[:8]) + (f", ... ({len(ids)} in all)" if len(ids) > 8 else "")
    return (
        f"--scenarios {' '.join(repr(g) for g in globs)} matched none of the {len(ids)} "
        f"scenario id(s) under {where} ({shown}); globs match ids, not file names. For "
        "scenario files elsewhere, add --scenario-dir DIR or pass the file's path"
    )


class SuiteFile(_ScenarioCollector):
    """``squall-suite.yaml``: ``scenarios:`` lists files or directories, relative to it;
    ``--scenario-dir`` replaces them (relative to where pytest was started)."""

    def collect(self) -> Iterator[pytest.Item]:
        from ruamel.yaml import YAML

        data = YAML(typ="safe").load(self.path.read_text(encoding="utf-8")) or {}
        paths = [(self.path.parent / p).resolve() for p in data.get("scenarios", [])]
        given = self.config.getoption("scenario_dir")
        if given:
            here = self.config.invocation_params.dir
            paths = [(here / p).resolve() for p in given]
            missing = [str(p) for p in paths if not p.exists()]
            if missing:
                raise pytest.UsageError(f"--scenario-dir: no such file or directory: {missing}")
        self.suite_clients = [str(c) for c in data.get("clients") or []] or None
        self.known = _known(data, self.path)
        yield from self._items(paths)


class ScenarioFile(_ScenarioCollector):
    def collect(self) -> Iterator[pytest.Item]:
        yield from self._items([self.path])


class DriverNotStarted(pytest.Item):
    """A client whose driver did not start: one ERROR with its whole stderr, standing for
    every scenario of that client (none of them ran)."""

    def __init__(self, *, client: str, report: str, runs: list[Loaded], **kw: Any) -> None:
        super().__init__(**kw)
        self.client = client
        self.report = report
        self.runs = runs

    def runtest(self) -> None:
        raise DriverDidNotStart(self.report)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, DriverDidNotStart):
            first, _, rest = self.report.partition("\n")
            first += f" ({len(self.runs)} scenario(s) of {self.client} not run)"
            return FailureRepr(first, rest.rstrip())
        return super().repr_failure(excinfo)

    def results(self) -> list[dict[str, Any]]:
        """The ERROR result of each scenario that did not run, for the matrix."""
        from .run import not_started

        return [not_started(item, self.client, self.report).to_json() for item in self.runs]

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"driver of {self.client}"


class DriverDidNotStart(Exception):
    pass


@dataclass(frozen=True)
class _Crash:
    message: str


class FailureRepr:
    """A scenario's failure as pytest shows it: the whole text in the report, and its one-line
    headline (step, expected, observed, rule) as the crash message, which is what ``-ra``
    prints after the test id and JUnit puts in the failure's ``message``. (Under xdist the
    report travels as text and ``-ra`` shows its first line: the headline too.)"""

    def __init__(self, headline: str, text: str) -> None:
        self.reprcrash = _Crash(headline)
        self.text = f"{headline}\n{text}" if headline else text

    def toterminal(self, tw: Any) -> None:
        for line in self.text.splitlines():
            tw.line(line)

    def __str__(self) -> str:
        return self.text


class ScenarioFailed(AssertionError):
    def __init__(self, result: Result, *, note: str = "") -> None:
        # The message is what Allure and `-ra` headline: expected, observed, the rule.
        super().__init__(note or result.headline() or result.scenario)
        self.result = result
        self.note = note


class ScenarioItem(pytest.Item):
    """One scenario, run against ``--client``. Its location is the scenario's line in YAML."""

    def __init__(
        self, *, loaded: Loaded, client: str = "reference", known: Known | None = None, **kw: Any
    ) -> None:
        super().__init__(**kw)
        self.loaded = loaded
        self.client = client
        self.known = known
        self.result: Result | None = None
        self.add_marker("squall_scenario")
        for tag in loaded.scenario.tags:
            self.config.addinivalue_line("markers", f"{tag}: squall scenario tag")
            self.add_marker(tag)
        self.path = loaded.path

    def runtest(self) -> None:
        from .runner import run_sync
        from .verdicts import Verdict

        config = self.config
        result = run_sync(
            self.loaded,
            client=self.client,
            timescale=config.getoption("timescale"),
        )
        self.result = result
        html_dir, json_path = config.getoption("squall_html"), config.getoption("squall_json")
        if html_dir or json_path:
            from .report import write_transcript

            base = Path(html_dir) if html_dir else Path(json_path).parent
            write_transcript(result, base / "transcripts")
        _allure(result, self.loaded)
        known = self.known
        if result.verdict is Verdict.ERROR:
            if known is not None and known.verdict == "ERROR":
                pytest.xfail(f"known ERROR for {self.client}: {known.why}")
            raise ScenarioFailed(result)  # reported as a pytest error (pytest_report_teststatus)
        if result.verdict is Verdict.FAILED:
            if known is not None and known.verdict != "ERROR":
                # reported as it is, and CI stays green on what is known
                pytest.xfail(f"known {known.verdict} for {self.client}: {known.why}")
            raise ScenarioFailed(result)
        if known is not None and known.verdict in ("FAILED", "ERROR"):
            raise ScenarioFailed(
                result,
                note=f"{self.client} is listed as known FAILED ({known.why}) but got "
                f"{result.verdict.value}: remove it from the suite file's known: table",
            )
        if result.verdict is Verdict.UNIMPLEMENTED:
            reason = result.failure.observed if result.failure else "not implemented"
            clean = result.secrets.scrub_text if result.secrets is not None else str
            pytest.skip(clean(f"UNIMPLEMENTED: {reason}"))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, ScenarioFailed):
            from .report import failure_text

            if excinfo.value.note:
                return excinfo.value.note
            result = excinfo.value.result
            return FailureRepr(result.headline(), failure_text(result))
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.loaded.path, self.loaded.line - 1, f"scenario {self.name}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if isinstance(item, DriverNotStarted) and call.when == "call":
        report.user_properties.append((ERROR_KEY, True))
        for res_json in item.results():
            report.user_properties.append((RESULT_KEY, json.dumps(res_json, default=str)))
    if (
        isinstance(item, ScenarioInvalid)
        and call.when == "call"
        and any(getattr(p, "broken_pack", None) for p in item.problems)
    ):
        report.user_properties.append((ERROR_KEY, True))  # the pack's fault, not the file's
    if isinstance(item, ScenarioItem) and call.when == "call" and item.result is not None:
        res = item.result
        report.user_properties.append((RESULT_KEY, json.dumps(res.to_json(), default=str)))
        if res.verdict.value == "ERROR" and report.failed:
            report.user_properties.append((ERROR_KEY, True))
        if res.verdict.value in ("NON-STRICT", "INFORMATIONAL"):
            text = f"{res.verdict.value}: {'; '.join(res.notes)}"
            clean = res.secrets.scrub_text if res.secrets is not None else str
            report.sections.append(("squall verdict", clean(text)))
    return report


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Gather results on the controller (with xdist, the workers' reports arrive here)."""
    if report.when != "call":
        return
    for key, value in report.user_properties:
        if key == RESULT_KEY:
            # cast: pytest_runtest_makereport above files a json.dumps string under this key
            # (xdist carries user properties across as they are)
            _CONTROLLER_RESULTS.append(json.loads(cast("str", value)))


_CONTROLLER_RESULTS: list[dict[str, Any]] = []


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    if hasattr(config, "workerinput"):
        return  # xdist worker: the controller writes the reports
    results = list(_CONTROLLER_RESULTS)
    if not results:
        return
    from .report import write_html, write_json

    if config.getoption("squall_json"):
        write_json(results, config.getoption("squall_json"))
    if config.getoption("squall_html"):
        write_html(results, config.getoption("squall_html"))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if hasattr(config, "workerinput") or not _CONTROLLER_RESULTS:
        return
    counts: dict[str, int] = {}
    wall = proto = 0.0
    for r in _CONTROLLER_RESULTS:
        counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
        wall += r["wall"]
        proto += r["protocol_time"]
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    terminalreporter.write_sep("-", "squall conformance")
    terminalreporter.write_line(
        f"{len(_CONTROLLER_RESULTS)} scenarios: {summary}; "
        f"{proto:.0f} protocol s in {wall:.1f} real s of scenario time"
    )


def _allure(result: Result, loaded: Loaded) -> None:
    """Replay the run as Allure steps with attachments, when allure-pytest is recording.

    Each step ends with the status it had: passed, failed (the expectation and the
    observation, and a trace at the step's line in the YAML file), broken (an ERROR, not
    the client's fault) or skipped (never ran, or UNIMPLEMENTED). Tags come from the
    item's markers (allure-pytest reads them), so none are added here.
    """
    try:
        import allure
        from allure_commons import plugin_manager
    except ImportError:
        return
    if not plugin_manager.list_name_plugin():
        return
    from squall.secrets import KEYS_ONLY

    from .report import sequence_svg, step_title, transcript_jsonl

    clean = result.secrets or KEYS_ONLY
    sc = loaded.scenario
    allure.dynamic.title(clean.scrub_text(f"{sc.id}: {sc.title}"))
    allure.dynamic.description(clean.scrub_text(sc.description or sc.title))
    allure.dynamic.parameter("client", result.client)
    allure.dynamic.label("verdict", result.verdict.value)
    for ref in dict.fromkeys(sc.spec):
        allure.dynamic.label("spec", ref)
    attached: dict[Any, list[dict[str, Any]]] = {}  # step index -> its attachment records
    for rec in result.transcript:
        if rec.get("kind") == "attachment":
            attached.setdefault(rec.get("step"), []).append(rec)
    for step in result.steps:
        message = clean.scrub_text(step.message)
        exc = _allure_outcome(step.status.value, message)
        context = allure.step(step_title(step, clean))
        context.__enter__()
        if step.status.value in ("missed", "late") and message:
            allure.attach(message, step.status.value, allure.attachment_type.TEXT)
        for rec in attached.pop(step.index, []):
            _allure_attach(allure, rec, clean)
        # Ended by hand, not by raising: a raise would put this file first in the trace.
        trace = (
            _yaml_trace(str(loaded.path), step.line, step.name, exc)
            if exc is not None and step.status.value in ("failed", "error")
            else None
        )
        context.__exit__(type(exc) if exc else None, exc, trace)
    # JSON lines are not one JSON document: Allure's JSON viewer would reject them, its
    # text viewer shows them; the file keeps its .jsonl name.
    for rec in (r for recs in attached.values() for r in recs):  # a step's that did not run
        _allure_attach(allure, rec, clean)
    allure.attach(transcript_jsonl(result), "transcript.jsonl", "text/plain", "jsonl")
    allure.attach(sequence_svg(result), "sequence.svg", allure.attachment_type.SVG)


def _allure_attach(allure: Any, rec: dict[str, Any], clean: Any) -> None:
    """An ``attachment`` record (a herd's reconnect histogram, docs/herd.md) as an Allure
    attachment: an SVG as one (AttachmentType.SVG), anything else as text."""
    kind = (
        allure.attachment_type.SVG
        if rec.get("mime") == "image/svg+xml"
        else allure.attachment_type.TEXT
    )
    name = clean.scrub_text(str(rec.get("name") or "attachment"))
    allure.attach(clean.scrub_text(str(rec.get("content") or "")), name, kind)


def _allure_outcome(status: str, message: str) -> BaseException | None:
    """The exception that gives an Allure step its status (None: passed)."""
    if status == "failed":
        return AssertionError(message)
    if status == "error":
        return RuntimeError(message)  # broken: not the client's fault
    if status == "unimplemented":
        return pytest.skip.Exception(message or "the client does not implement this")
    if status == "skipped":
        return pytest.skip.Exception("not run: an earlier step ended the scenario")
    return None


def _yaml_trace(path: str, line: int, name: str, exc: BaseException) -> Any:
    """A traceback of one frame, at ``path:line`` in a function named after the step: what
    Allure shows as the step's trace (with the YAML line's text, read by linecache)."""
    code = compile("\n" * max(0, line - 1) + "raise __squall_step__", path, "exec")
    try:
        exec(code.replace(co_name=name), {"__squall_step__": exc})
    except BaseException as raised:  # the exception given, now with the YAML frame
        tb = raised.__traceback__
        return tb.tb_next if tb is not None else None
    return None


# --- fixtures for users' own tests ---------------------------------------------------------------


@pytest.fixture
def squall_timescale(request: pytest.FixtureRequest) -> float:
    """``--timescale`` or 0.01: protocol seconds run 100x faster."""
    value = request.config.getoption("timescale")
    return float(value) if value else 0.01


@pytest.fixture
def squall_run_scenario(request: pytest.FixtureRequest) -> Callable[..., Result]:
    """``squall_run_scenario(path_or_yaml, client=...)`` -> :class:`~.verdicts.Result` (sync)."""
    from .loader import load_file, parse
    from .runner import run_sync

    def run(source: str | Path, *, client: str | None = None, **kw: Any) -> Result:
        text = str(source)
        loaded = parse(text) if "\n" in text else load_file(source)
        return run_sync(loaded, client=client or first_client(request.config), **kw)

    return run


try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - fixtures need pytest-asyncio
    pytest_asyncio = None  # type: ignore[assignment]

if pytest_asyncio is not None:

    @pytest_asyncio.fixture
    async def squall_simulator(squall_timescale: float) -> AsyncIterator[Any]:
        """A started :class:`~squall.simulator.Simulator` on 127.0.0.1, a free port."""
        from squall.clock import LoopClock
        from squall.simulator import Simulator

        sim = Simulator(clock=LoopClock(squall_timescale))
        await sim.start()
        try:
            yield sim
        finally:
            await sim.stop()

    @pytest_asyncio.fixture
    async def squall_proxy(squall_timescale: float) -> AsyncIterator[Any]:
        """A started :class:`~squall.faults.ProxyServer` (HTTP API on a free port)."""
        from squall.clock import LoopClock
        from squall.faults import ProxyServer

        srv = ProxyServer(port=0, clock=LoopClock(squall_timescale), seed=0)
        await srv.start()
        try:
            yield srv
        finally:
            await srv.stop()

    @pytest_asyncio.fixture
    async def squall_client(
        request: pytest.FixtureRequest, squall_timescale: float
    ) -> AsyncIterator[Callable[..., Any]]:
        """Factory: ``drv = await squall_client()`` a started client under test (``--client``).

        ``drv.send(cmd, args)`` returns ``(id, future_of_reply)``; events go to ``drv.lines``.
        """
        from .clients import DriverProcess, command_line

        started: list[DriverProcess] = []

        async def make(spec: str | None = None) -> DriverProcess:
            argv = command_line(
                spec or first_client(request.config), timescale=squall_timescale, seed=0
            )
            lines: list[dict[str, Any]] = []
            drv = DriverProcess(argv, lines.append)
            drv.lines = lines  # type: ignore[attr-defined]
            started.append(drv)
            await drv.start()
            return drv

        try:
            yield make
        finally:
            for drv in started:
                await drv.stop()
