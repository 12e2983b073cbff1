"""The health page as a person sees it: opened from disk in headless Chromium, offline.

Debian's chromium (installed with apt-get by `helpers.ensure_chromium` when missing, as the
cluster tests install PostgreSQL) is driven by Playwright's Python package with
`executable_path`; Playwright's own browser download does not work on these machines. Every
panel must hold drawn marks (SVG paths, heatmap images, indicator numbers) or table rows,
the console must stay free of errors, and the page must not ask the network for anything.
Screenshots land in `etl_assets_tests/artifacts/`; with `ETL_ASSETS_DOCS_SCREENSHOT=1` (`make
screenshot`) the seeded page's screenshot also replaces `docs/health_report.png`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page
from pyspark.sql import SparkSession

from etl_assets.core.health_page import PANELS, TABLE_PANELS
from etl_assets.engine.health import write_report
from etl_assets_tests.health_seed import DAYS, LOG_DB, Seed, page_data
from etl_assets_tests.helpers import ARTIFACTS, ROOT

pytestmark = pytest.mark.browser

DOCS_SCREENSHOT = ROOT / "docs" / "health_report.png"

# Drawn marks per panel: bar and line paths, pie slices, heatmap images, indicator numbers.
MARKS = ("g.trace path, g.slice path, g.hm image, g.indicatorlayer text.number")
PANEL_STATE = """() => Array.from(document.querySelectorAll('section.panel')).map(p => ({
  name: p.dataset.panel,
  svgs: p.querySelectorAll('svg.main-svg').length,
  marks: p.querySelectorAll('svg.main-svg').length
    ? Array.from(p.querySelectorAll('svg.main-svg'))
        .reduce((n, s) => n + s.querySelectorAll('%s').length, 0) : 0,
  rows: p.querySelectorAll('table tbody tr').length,
  empty: p.querySelectorAll('.empty').length,
}))""" % MARKS
DRAWN = """() => Array.from(document.querySelectorAll('.plotly-graph-div'))
  .every(d => d.querySelector('svg.main-svg') && d._fullLayout)"""


@dataclass
class Opened:
    """A page opened in the browser, with what it logged and requested."""

    page: Page
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def panels(self) -> dict[str, dict]:
        return {p["name"]: p for p in self.page.evaluate(PANEL_STATE)}


@pytest.fixture()
def open_page(browser: Browser) -> Iterator:
    """Open a local page, wait until every chart is drawn, record console errors and requests."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000},
                                  device_scale_factor=1)
    opened: list[Opened] = []

    def _open(path: Path) -> Opened:
        page = context.new_page()
        result = Opened(page)
        page.on("console", lambda m: result.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: result.errors.append(str(e)))
        page.on("request", lambda r: result.requests.append(r.url))
        page.goto(path.as_uri(), wait_until="load")
        page.wait_for_function(DRAWN, timeout=30_000)
        opened.append(result)
        return result

    yield _open
    context.close()


def _screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    return path


def test_every_panel_draws_in_chromium(
    spark: SparkSession, seeded_log: Seed, open_page, tmp_path: Path
) -> None:
    html = tmp_path / "health.html"
    write_report(spark, LOG_DB, html, days=DAYS, as_of=seeded_log.as_of)  # the seeded days
    data = page_data(html)
    opened = open_page(html)

    panels = opened.panels()
    assert list(panels) == list(PANELS)
    for name, state in panels.items():
        if name in TABLE_PANELS:
            assert state["rows"] == len(data[name]) > 0, (name, state)
        else:
            assert state["svgs"] >= 1 and state["marks"] > 0, (name, state)
    # One heatmap image, five sparklines with their flagged crosses, one bar per day/status.
    assert panels["sparklines"]["svgs"] >= 1
    flagged = opened.page.locator("#panel-sparklines g.trace.scatter path.point")
    assert flagged.count() >= 5 * DAYS
    assert opened.page.locator("#panel-daily-runs g.trace.bars g.point").count() == len(
        data["daily"])
    assert "TABLE_OR_VIEW_NOT_FOUND" in opened.page.inner_text("#panel-failures")
    assert "12.5% nulls" in opened.page.inner_text("#panel-flags")

    assert opened.errors == []
    assert [u for u in opened.requests if not u.startswith(("file:", "data:", "blob:"))] == []
    shot = _screenshot(opened.page, "health_report.png")
    if os.environ.get("ETL_ASSETS_DOCS_SCREENSHOT"):
        DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, DOCS_SCREENSHOT)


def test_empty_log_page_renders(spark: SparkSession, open_page, tmp_path: Path) -> None:
    html = tmp_path / "empty.html"
    write_report(spark, "etl_log_health_browser_empty", html, days=30)
    opened = open_page(html)
    assert "No runs yet" in opened.page.inner_text("#no-runs")
    panels = opened.panels()
    assert panels["totals"]["marks"] == 5  # the five numbers, all zero
    assert all(state["empty"] == 1 for name, state in panels.items() if name != "totals")
    assert opened.errors == []
    _screenshot(opened.page, "health_report_empty.png")
