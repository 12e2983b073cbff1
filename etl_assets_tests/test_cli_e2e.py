"""The user's path, as separate processes: `dg launch`, then `etl-assets`.

Runs on its own ETL_ASSETS_HOME (Derby admits one process per metastore, and the test run's
own Spark session holds the shared one), with DAGSTER_HOME set up the way the Makefile does,
so it also proves that all embedded state lands under ETL_ASSETS_HOME.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from etl_assets_tests.health_seed import page_data

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_materialize_all_from_the_cli_then_query_with_etl_assets(tmp_path: Path) -> None:
    home = tmp_path / "home"
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True)
    (dagster_home / "dagster.yaml").symlink_to(ROOT / "dagster.yaml")
    env = {**os.environ, "ETL_ASSETS_HOME": str(home), "DAGSTER_HOME": str(dagster_home),
           "VIRTUAL_ENV": str(BIN.parent)}
    env.pop("ETL_ASSETS_DEFS", None)

    # What `make demo` runs: every unpartitioned table (here with the health page, which runs
    # after them in the same run), then a single-run backfill of the daily tables.
    done = _run([str(BIN / "dg"), "launch", "--assets", "not tag:cadence=daily"], env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "RUN_SUCCESS" in done.stderr + done.stdout
    assert "superseded" not in (done.stderr + done.stdout).lower()
    # Loads in the run: the driver keeps the JIT they need (conftest gives every test JVM
    # C1 through JAVA_TOOL_OPTIONS; the run itself does not choose it).
    assert "Spark driver started: class archive" in done.stderr + done.stdout
    assert "a run that only queries the log" not in done.stderr + done.stdout
    page = home / "reports" / "health.html"
    totals = page_data(page)["totals"]
    assert totals["tables_loaded"] == 8 and totals["failed"] == 0  # all but the 3 daily ones
    done = _run([str(BIN / "dg"), "launch", "--assets", "tag:cadence=daily",
                 "--partition-range", "2026-01-01...2026-01-14"], env)
    assert done.returncode == 0, done.stderr[-3000:]
    # The report alone, as `make demo` and its hourly schedule run it: a quick-JIT driver, and
    # no query of a missing table (Spark would log it as an ERROR).
    done = _run([str(BIN / "dg"), "launch", "--assets", "etl_health_report"], env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert ("JIT C1 only, expressions interpreted (a run that only queries the log)"
            in done.stderr + done.stdout)
    assert "TABLE_OR_VIEW_NOT_FOUND" not in done.stderr + done.stdout
    assert page_data(page)["totals"]["tables_loaded"] == 11

    query = "SELECT count(*) AS n, sum(amount) AS s FROM etl_demo.clean_orders"
    done = _run([str(BIN / "etl-assets"), "sql", query, "--json"], env)
    assert done.returncode == 0, done.stderr[-3000:]
    (record,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert record["n"] > 0

    done = _run([str(BIN / "etl-assets"), "status"], env)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0].split()[:3] == ["asset", "table_name", "status"]
    # One line per table: a daily table shows its newest partition's load.
    assert sum(" SUCCESS " in line for line in lines) == 11

    # Everything embedded lives under ETL_ASSETS_HOME, nothing in the working directory.
    assert (home / "metastore_db").is_dir()
    assert (home / "warehouse" / "etl_demo.db").is_dir()
    assert (dagster_home / "storage").is_dir()
    assert not (ROOT / "metastore_db").exists() and not (ROOT / "derby.log").exists()

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        (event,) = instance.fetch_materializations(dg.AssetKey("clean_orders"), limit=1).records
        metadata = event.asset_materialization.metadata
        assert metadata["dagster/row_count"].value == record["n"]
        assert metadata["sum/amount"].value == float(record["s"])
        assert instance.get_settings("telemetry") == {"enabled": False}
        runs = set()
        for daily in ("daily_sales", "customer_rolling_spend", "spend_bands"):
            partitions = instance.get_materialized_partitions(dg.AssetKey(daily))
            assert partitions == {f"2026-01-{d:02d}" for d in range(1, 15)}, daily
            runs |= {r.run_id for r in instance.fetch_materializations(
                dg.AssetKey(daily), limit=100).records}
        assert len(runs) == 1  # the 14-day backfill of the three tables was one run
        (event,) = instance.fetch_materializations(
            dg.AssetKey("etl_health_report"), limit=1).records
        assert event.asset_materialization.metadata["health/page"].value == str(page)
