"""Column lineage and column descriptions as `dg dev` serves and shows them.

The tables are loaded the way users load them (`dg launch`). `enriched_categories`' columns
are traced back, through `category_totals`, to `clean_orders` and `categories` in the
materializations' `dagster/column_lineage`, read through the webserver's GraphQL API: the open
source UI fetches it but hides it from its metadata tables and draws no column graph (Dagster's
docs: viewing column lineage in the UI is a Dagster+ feature). What the open-source UI shows
instead is checked in headless Chromium: on `enriched_categories`' asset page (Overview tab,
Metadata section) the definition's `column_lineage` entry, a table of each column's trails
back to the sources (`total_amount`: category_totals.total_amount ← clean_orders.amount ←
raw_orders.amount); and on `clean_orders`' page the spec's column descriptions in the
column table.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from etl_assets_tests.helpers import (
    ARTIFACTS,
    BIN,
    ROOT,
    run_dagster_dev,
)

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


def test_column_lineage_shows_on_the_asset_page_and_the_column_table_shows_descriptions(
    browser: Browser, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    (home / "dagster").mkdir(parents=True)
    (home / "dagster" / "dagster.yaml").symlink_to(ROOT / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ETL_", "DAGSTER_"))}
    env |= {"ETL_ASSETS_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"),
            "VIRTUAL_ENV": str(BIN.parent)}
    done = subprocess.run([str(BIN / "dg"), "launch", "--assets",
                           "clean_orders,category_totals,enriched_categories"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    with run_dagster_dev(env, tmp_path / "dg_dev.log") as dev:
        # What the UI fetches for an asset's latest materialization: enriched_categories'
        # columns from category_totals and categories, category_totals' from clean_orders.
        lineage = {asset: _column_lineage(dev, asset)
                   for asset in ("enriched_categories", "category_totals")}
        assert lineage["enriched_categories"]["total_amount"] == {("category_totals",
                                                                   "total_amount")}
        assert lineage["enriched_categories"]["category_name"] == {("categories",
                                                                    "category_name")}
        assert lineage["category_totals"]["total_amount"] == {("clean_orders", "amount")}
        # The catalog's column table, in Chromium: the spec's column descriptions.
        page = browser.new_page(viewport={"width": 1600, "height": 1100})
        errors: list[str] = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.goto(f"{dev.url}/assets/clean_orders")
        try:
            page.get_by_role("button", name="Skip").click(timeout=10_000)  # sign-up dialog
        except Exception:  # noqa: BLE001 - shown once per browser profile only
            pass
        row = page.locator("tr", has_text="order_id").filter(
            has_text="Order number from the shop system, unique per order.").first
        row.wait_for(timeout=60_000)
        page.screenshot(path=str(ARTIFACTS / "clean_orders_columns.png"), full_page=True)
        assert "int" in row.inner_text()
        amount = page.locator("tr", has_text="Order amount in EUR, two decimals.").first
        assert "amount" in amount.inner_text()

        # enriched_categories' page, Overview tab, Metadata section: the row whose key is
        # `column_lineage` holds the definition's Markdown, rendered as a table.
        page.goto(f"{dev.url}/assets/enriched_categories")
        entry = page.locator("tr", has=page.get_by_text("column_lineage", exact=True))
        table = entry.locator(".dagster-markdown table")
        table.wait_for(timeout=60_000)
        table.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "enriched_categories_lineage.png"), full_page=True)
        assert table.locator("th").all_inner_texts() == ["column", "derives from"]
        rows = {}
        for row in table.locator("tbody tr").all():
            column, derives = row.locator("td").all_inner_texts()
            rows.setdefault(column, []).append(derives)
        assert rows["total_amount"] == [
            "category_totals.total_amount ← clean_orders.amount ← raw_orders.amount"]
        assert rows["category_name"] == ["categories.category_name"]
        assert rows["order_count"] == ["category_totals.order_count"]  # count(*)
        assert set(rows) == set(lineage["enriched_categories"])  # the columns with lineage
        assert not errors, errors


LINEAGE = """query Lineage($key: AssetKeyInput!) {
  assetOrError(assetKey: $key) { ... on Asset { assetMaterializations(limit: 1) {
    metadataEntries { label ... on TableColumnLineageMetadataEntry {
      lineage { columnName columnDeps { assetKey { path } columnName } } } } } } } }"""


def _column_lineage(dev, asset: str) -> dict[str, set[tuple[str, str]]]:
    """Column -> {(upstream asset, column)} of the asset's latest materialization, from the
    webserver's GraphQL API (the data of the UI's asset page)."""
    data = dev.gql(LINEAGE, key={"path": [asset]})
    (materialization,) = data["assetOrError"]["assetMaterializations"]
    (entry,) = [e for e in materialization["metadataEntries"]
                if e["label"] == "dagster/column_lineage"]
    return {c["columnName"]: {(d["assetKey"]["path"][-1], d["columnName"])
                              for d in c["columnDeps"]} for c in entry["lineage"]}
