"""The HTML report in a real browser: Debian's Chromium, headless, driven by playwright.

Two real runs against the reference client (a passing one through the proxy, with
2 s of latency, and a failing one: ``reference --no-resubscribe`` on a scenario that
checks the resubscription), their pages screenshotted, and the rendered boxes measured:
no label's text leaves its box, the diagram fits the page, the failing step is red,
and the page fetches nothing from anywhere. Without Chromium the test skips, except
in CI (``CI=true``), where it fails. ``SQUALL_SCREENSHOTS=DIR`` keeps the screenshots.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from squall.conformance import report
from squall.conformance.loader import load_file
from squall.conformance.run import run_many

from .helpers import SCENARIOS

pytestmark = pytest.mark.timeout(240)

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSING = ("reference", "network.latency", SCENARIOS / "network" / "latency.yaml")
FAILING = (
    "reference --no-resubscribe",
    "common.recovery_expired",
    SCENARIOS / "common" / "recovery_expired.yaml",
)

#: Every label's text box against its rect, in the SVG's own units (so scaling cannot hide it).
MEASURE = """() => Array.from(document.querySelectorAll('#diagram g.label')).map(g => {
  const r = g.querySelector('rect.box').getBBox(), t = g.querySelector('text').getBBox();
  return {text: g.querySelector('text').textContent, classes: g.getAttribute('class'),
          out: Math.max(r.x - t.x, t.x + t.width - (r.x + r.width),
                        r.y - t.y, t.y + t.height - (r.y + r.height))};
})"""


def chromium_or_skip() -> None:
    if CHROMIUM.exists():
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{CHROMIUM} is missing: CI must install Debian's chromium (apt)")
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chromium_or_skip()
    out = tmp_path_factory.mktemp("report")

    async def both() -> list[Any]:
        runs = [run_many([load_file(path)], [client]) for client, _, path in (PASSING, FAILING)]
        return [r for batch in await asyncio.gather(*runs) for r in batch]

    results = asyncio.run(both())
    for r in results:
        report.write_transcript(r, out / "transcripts")
    verdicts = {(r.client, r.scenario): r.verdict.value for r in results}
    assert verdicts == {(PASSING[0], PASSING[1]): "OK", (FAILING[0], FAILING[1]): "FAILED"}
    report.write_html([r.to_json() for r in results], out)
    return out


def shots_dir(tmp: Path) -> Path:
    keep = os.environ.get("SQUALL_SCREENSHOTS")
    target = Path(keep) if keep else tmp / "screenshots"
    target.mkdir(parents=True, exist_ok=True)
    return target


@pytest.fixture(scope="module")
def browser(site: Path) -> Iterator[Any]:
    """One headless Chromium for the module (a launch costs seconds)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def render(
    browser: Any, site: Path, client: str, sid: str, width: int
) -> tuple[list[dict[str, Any]], Any]:
    """Open a run's page at ``width`` px; returns its label measures and facts."""
    page_file = site / f"{report.slug(client)}__{report.slug(sid)}.html"
    fetched: list[str] = []
    page = browser.new_page(viewport={"width": width, "height": 900})
    try:
        page.on("request", lambda req: fetched.append(req.url))
        page.goto(page_file.as_uri())
        labels = page.evaluate(MEASURE)
        facts = page.evaluate(
            """() => {
              const svg = document.querySelector('#diagram svg').getBoundingClientRect();
              const bad = document.querySelector('#diagram g.label.step.failed rect.box');
              return {svgRight: svg.right, pageWidth: document.documentElement.clientWidth,
                      failedFill: bad ? getComputedStyle(bad).fill : null,
                      bands: document.querySelectorAll('#diagram .failed-band').length,
                      failedRows: document.querySelectorAll('tr.failed-step').length,
                      steps: document.querySelectorAll('table.steps tbody tr').length,
                      copy: !!document.querySelector('button[data-copy]')};
            }"""
        )
        shot = shots_dir(site) / f"{report.slug(sid)}-{width}.png"
        page.screenshot(path=str(shot), full_page=True)
        facts["shot"] = shot
        facts["fetched"] = fetched
    finally:
        page.close()
    return labels, facts


@pytest.mark.parametrize("width", [1280, 800])
def test_a_passing_page_has_every_label_inside_its_box(
    browser: Any, site: Path, width: int
) -> None:
    """The passing run: all steps listed, every label fits, nothing is red, nothing fetched."""
    labels, facts = render(browser, site, PASSING[0], PASSING[1], width)
    assert len(labels) > 20
    overflowing = [(lb["text"][:60], round(lb["out"], 1)) for lb in labels if lb["out"] > 0.5]
    assert overflowing == []
    assert any("notification" in lb["text"] and "(+2." in lb["text"] for lb in labels)
    assert facts["svgRight"] <= facts["pageWidth"]  # fitted to the page, not clipped
    assert facts["failedFill"] is None and facts["bands"] == 0 and facts["failedRows"] == 0
    assert facts["steps"] == 10 and facts["copy"]
    assert all(url.startswith(("file:", "data:")) for url in facts["fetched"]), facts["fetched"]
    assert facts["shot"].stat().st_size > 10_000


def test_a_failing_page_marks_the_failing_step_in_red(browser: Any, site: Path) -> None:
    """The failing run: the failing step is a red box on a red band, its row red too."""
    labels, facts = render(browser, site, FAILING[0], FAILING[1], 1280)
    overflowing = [(lb["text"][:60], round(lb["out"], 1)) for lb in labels if lb["out"] > 0.5]
    assert overflowing == []
    failed = [lb for lb in labels if "failed" in lb["classes"].split()]
    assert len(failed) == 1
    assert failed[0]["text"].startswith("FAILED step 8 · expect.server · line 16: expected")
    assert facts["failedFill"] == "rgb(192, 57, 43)"
    assert facts["bands"] == 1 and facts["failedRows"] == 1
    assert any(lb["text"].startswith("... ") and "ping" in lb["text"] for lb in labels)
    assert all(url.startswith(("file:", "data:")) for url in facts["fetched"]), facts["fetched"]
