"""A herd's reconnect-rate histogram in the reports: inline in the HTML, attached in Allure.

One small herd scenario (a crowd of 6, a drop storm) runs for real twice, as users run it:
``squall run --html`` (the static report) and ``pytest --alluredir`` (allure-pytest's own
result files). Both must carry the SVG that ``expect.crowd`` recorded, beside its step.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from squall.conformance.report_html import attachment_html
from squall.conformance.steps_crowd import SIZE_ENV

from .helpers import allure_results, pytest_with_allure

pytestmark = pytest.mark.timeout(180)

HERD = """\
id: demo.herd
title: a small herd loses its sessions at once and comes back
tags: [herd]
timescale: 0.5
clients: {observer: {token: observer}}
steps:
  - crowd.start: {name: herd, size: 6, policy: genesys-v19}
  - crowd.drop: herd
  - expect.crowd: {crowd: herd, back_within: 30s, recovered_at_least: 1.0}
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop(SIZE_ENV, None)  # the crowd of 6 above, whatever this run's herd size
    return env


def _project(root: Path) -> Path:
    (root / "scenarios" / "demo").mkdir(parents=True)
    path = root / "scenarios" / "demo" / "herd.yaml"
    path.write_text(HERD, encoding="utf-8")
    (root / "conformance").mkdir()
    (root / "conformance" / "squall-suite.yaml").write_text("scenarios: [../scenarios]\n")
    return path


@pytest.fixture(scope="module")
def html_page(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("herd-html")
    path = _project(root)
    squall = Path(sys.executable).with_name("squall")
    proc = subprocess.run(
        [str(squall), "run", str(path), "--html", str(root / "out"), "-q"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=170,
        env=_env(),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (page,) = [p for p in (root / "out").glob("*.html") if p.name != "index.html"]
    return page.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def allure_result(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    root = tmp_path_factory.mktemp("herd-allure")
    _project(root)
    proc = pytest_with_allure(root, env=_env())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (result,) = allure_results(root / "out")
    return result, root / "out"


def test_the_html_report_draws_the_histogram_inline_under_its_step(html_page: str) -> None:
    steps = html_page[html_page.index('<table class="steps">') : html_page.index("</table>")]
    expect_row = steps.index("<code>expect.crowd</code>")
    figure = steps.index('<figure class="attachment" data-name="herd-step3-reconnects.svg">')
    assert figure > expect_row  # the row after the step that drew it
    svg = steps[figure : steps.index("</figure>", figure)]
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="herd-histogram"' in svg
    assert "6 reconnecting" in svg and "reconnect attempts per 100 ms" in svg
    assert svg.count('fill="#4677b8"') >= 1  # at least one bar of attempts


def test_allure_attaches_the_histogram_to_its_step(
    allure_result: tuple[dict[str, Any], Path],
) -> None:
    result, out = allure_result
    assert result["status"] == "passed"
    (step,) = [s for s in result["steps"] if "expect.crowd" in s["name"]]
    (attachment,) = [a for a in step.get("attachments", []) if a["type"] == "image/svg+xml"]
    assert attachment["name"] == "herd-step3-reconnects.svg"
    assert attachment["source"].endswith(".svg")
    svg = (out / attachment["source"]).read_text(encoding="utf-8")
    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg" class="herd-histogram"')
    assert "6 reconnecting" in svg


def test_an_svg_that_could_run_anything_is_shown_as_an_image() -> None:
    evil = (
        '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script>'
        '<rect onclick="alert(2)"/></svg>'
    )
    html = attachment_html({"name": "x.svg", "mime": "image/svg+xml", "content": evil})
    assert "<script" not in html and "onclick" not in html
    assert '<img alt="x.svg" src="data:image/svg+xml;base64,' in html
    plain = '<svg xmlns="http://www.w3.org/2000/svg"><rect width="1" height="1"/></svg>'
    inline = attachment_html({"name": "ok.svg", "mime": "image/svg+xml", "content": plain})
    assert plain in inline
