"""The health report's numbers, from a log seeded with known runs, failures and flags.

The page embeds its data as JSON (`#report-data`); these tests read it back from the written
file and compare it with numbers computed from the seeded records in Python, so a wrong
Spark SQL aggregate (a period off by one day, a flag that is not the latest evaluation, a
retry counted as a load) fails here. The browser test (test_health_browser.py) checks that
the same page draws.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import types as T

from etl_assets.core import health_report as HR
from etl_assets.core.settings import Settings
from etl_assets.core.specs import Project
from etl_assets.engine.health import build_report, write_report
from etl_assets.engine.hive_log import CHECK_LOG, LOG_SCHEMAS, RUN_LOG
from etl_assets.orchestration import health_asset as HA
from etl_assets.orchestration.health_asset import build_health_report_asset
from etl_assets.orchestration.resources import EtlLogResource, build_spark_resource
from etl_assets.tools import cli
from etl_assets_tests.health_seed import (
    DAYS,
    LOG_DB,
    QUALITY_CHECK,
    ROW_CHECK,
    Seed,
    expected_totals,
    page_data,
)

EMPTY_DB = "etl_log_health_empty"


@contextmanager
def spark_log(spark: SparkSession) -> Iterator[object]:
    """What Spark's driver logs meanwhile (log4j 2's root logger), as a java StringWriter."""
    jvm = spark.sparkContext._jvm
    core = jvm.org.apache.logging.log4j.core
    writer = jvm.java.io.StringWriter()
    appender = core.appender.WriterAppender.createAppender(
        core.layout.PatternLayout.createDefaultLayout(), None, writer, "test_health", False, True)
    appender.start()
    context = jvm.org.apache.logging.log4j.LogManager.getContext(False)
    root = context.getConfiguration().getRootLogger()
    root.addAppender(appender, None, None)
    context.updateLoggers()
    try:
        yield writer
    finally:
        root.removeAppender("test_health")
        context.updateLoggers()
        appender.stop()


@pytest.fixture(scope="module")
def seeded_page(spark: SparkSession, seeded_log: Seed, tmp_path_factory) -> Path:
    """The seeded log's 30-day page, written once: the tests below only read it."""
    page = tmp_path_factory.mktemp("seeded_page") / "health.html"
    write_report(spark, LOG_DB, page, days=30, as_of=seeded_log.as_of)
    return page


def test_report_numbers_match_the_seeded_log(seeded_log: Seed, seeded_page: Path) -> None:
    data = page_data(seeded_page)
    runs = seeded_log.in_period(30)

    assert data["totals"] == expected_totals(seeded_log, 30)
    assert data["totals"]["open_flags"] == 2 and data["totals"]["failed"] == 1
    assert {r["status"]: r["runs"] for r in data["status"]} == {
        "SUCCESS": 5 * DAYS, "FAILED": 1, "RETRY": 1}
    by_domain = {(r["domain"], r["status"]): r["runs"] for r in data["status_by_domain"]}
    assert by_domain == {("sales", "SUCCESS"): 3 * DAYS, ("finance", "SUCCESS"): 2 * DAYS,
                         ("finance", "FAILED"): 1, ("finance", "RETRY"): 1}

    # Runs per day by status, and rows per day, against the records.
    expected_daily: dict[tuple[str, str], int] = {}
    for run in runs:
        key = (run.finished_at.date().isoformat(), run.status)
        expected_daily[key] = expected_daily.get(key, 0) + 1
    assert {(r["day"], r["status"]): r["runs"] for r in data["daily"]} == expected_daily
    last_day = seeded_log.as_of.isoformat()
    rows_last_day = sum(r.row_count for r in runs
                        if r.status == "SUCCESS" and r.finished_at.date() == seeded_log.as_of)
    (last,) = [r for r in data["daily"] if r["day"] == last_day and r["status"] == "SUCCESS"]
    assert last["rows_loaded"] == rows_last_day

    # The one failure in the period, with its error text; the 40-day-old one is left out.
    (failure,) = data["failures"]
    assert failure["asset"] == "ledger"
    assert failure["error"].startswith("AnalysisException: [TABLE_OR_VIEW_NOT_FOUND]")

    # Open flags: the latest evaluation failed. ERROR first; ledger's flag has closed since.
    flags = [(f["asset"], f["check_name"], f["severity"]) for f in data["flags"]]
    assert flags == [("customers_dim", QUALITY_CHECK, "ERROR"),
                     ("invoices", ROW_CHECK, "WARN")]
    assert data["flags"][1]["description"].startswith("row_count 2,000 is 75% below")

    # Slowest first: ledger (48-50 s) then invoices (20-22 s).
    assert [s["asset"] for s in data["slowest"]][:2] == ["ledger", "invoices"]
    assert {r["asset"] for r in data["durations"]} == {s["asset"] for s in data["slowest"]}

    # Sparklines: flagged tables first; one point per load, flagged points carry the check.
    lines = {s["asset"]: s["points"] for s in data["sparklines"]}
    assert [s["asset"] for s in data["sparklines"]][:3] == ["customers_dim", "invoices", "ledger"]
    assert all(len(points) == DAYS for points in lines.values())
    assert lines["invoices"][-1] == {"x": lines["invoices"][-1]["x"], "row_count": 2_000,
                                     "flagged": ROW_CHECK}
    assert lines["customers_dim"][-1]["flagged"] == QUALITY_CHECK
    flagged_ledger = [p for p in lines["ledger"] if p["flagged"]]
    assert len(flagged_ledger) == 1
    assert flagged_ledger[0]["x"].startswith((seeded_log.as_of - timedelta(days=3)).isoformat())
    assert lines["daily_sales"][-1]["x"] == last_day  # partitioned: the partition key


def test_no_query_moves_the_whole_period_to_one_task(
    spark: SparkSession, seeded_log: Seed
) -> None:
    # A window without PARTITION BY (count(*) OVER (), a global row_number) puts every row of
    # the period in one task; Spark says so with this warning when it plans one.
    with spark_log(spark) as control:  # the capture itself sees the warning
        spark.sql("SELECT count(*) OVER () FROM range(3)").collect()
    assert "No Partition Defined" in control.toString()
    with spark_log(spark) as logged:
        build_report(spark, LOG_DB, days=30, as_of=seeded_log.as_of)
    assert "No Partition Defined" not in logged.toString()


def test_period_counts_only_its_days(spark: SparkSession, seeded_log: Seed) -> None:
    one_day = build_report(spark, LOG_DB, days=1, as_of=seeded_log.as_of)
    assert one_day.totals == expected_totals(seeded_log, 1)
    assert one_day.totals["runs"] == 5
    assert {r["day"] for r in one_day.daily} == {seeded_log.as_of.isoformat()}
    wide = build_report(spark, LOG_DB, days=60, as_of=seeded_log.as_of)
    assert wide.totals["failed"] == 2  # the old failure is inside 60 days
    assert [f["error"] for f in wide.failures][-1] == "old failure"


def test_empty_log_says_no_runs_yet(spark: SparkSession, tmp_path: Path) -> None:
    page = tmp_path / "empty.html"
    report = write_report(spark, EMPTY_DB, page, days=30)
    assert report.empty and not report.log_has_runs
    text = page.read_text(encoding="utf-8")
    assert 'id="no-runs"' in text and "No runs yet" in text
    assert page_data(page)["totals"]["runs"] == 0


def test_a_log_of_an_older_version_is_upgraded_first(spark: SparkSession) -> None:
    # run_log as a version before `domain` made it, with one load today.
    database = "etl_log_health_old"
    spark.sql(f"DROP DATABASE IF EXISTS {database} CASCADE")
    spark.sql(f"CREATE DATABASE {database}")
    old = T.StructType([f for f in LOG_SCHEMAS[RUN_LOG] if f.name != "domain"])
    today = datetime.now(timezone.utc)
    row = {f.name: None for f in old} | {
        "run_id": "r1", "asset": "a", "status": "SUCCESS", "row_count": 5,
        "started_at": today, "finished_at": today, "log_date": today.date()}
    spark.createDataFrame([tuple(row[f.name] for f in old)], old).write.format(
        "parquet").partitionBy("log_date").saveAsTable(f"{database}.{RUN_LOG}")
    report = build_report(spark, database, days=3)
    assert report.totals["runs"] == 1 and report.totals["rows_loaded"] == 5
    assert "domain" in {f.name for f in spark.table(f"{database}.{RUN_LOG}").schema}
    assert spark.catalog.tableExists(f"{database}.{CHECK_LOG}")  # made as this version has it


def test_runs_only_before_the_period_say_so(spark: SparkSession, seeded_log: Seed) -> None:
    report = build_report(spark, LOG_DB, days=7, as_of=seeded_log.as_of + timedelta(days=100))
    assert report.empty and report.log_has_runs
    assert "No runs in the last 7 days" in HR.summary_markdown(report)


def test_page_is_self_contained(seeded_page: Path) -> None:
    text = seeded_page.read_text(encoding="utf-8")
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", text)
    assert "Plotly.newPlot" in text and text.count("<script") > 5


def test_etl_assets_report_command(
    spark: SparkSession, seeded_log: Seed, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("ETL_ASSETS_LOG_DB", LOG_DB)
    out = tmp_path / "cli.html"
    assert cli.main(["report", "--days", "30", "--out", str(out)], spark=spark) == 0
    printed = capsys.readouterr().out
    expected = expected_totals(seeded_log, 30)
    assert f"wrote {out}" in printed
    assert f"{expected['runs']:,} runs (1 failed), 2 open flags" in printed
    assert page_data(out)["log_db"] == LOG_DB
    with pytest.raises(SystemExit):
        cli.main(["report", "--days", "0"], spark=spark)


def test_health_report_asset_materializes_summary_and_path(
    spark: SparkSession, settings: Settings, demo_project: Project, seeded_log: Seed,
    instance: dg.DagsterInstance, tmp_path: Path,
) -> None:
    home = dataclasses.replace(settings, home=tmp_path / "home")
    asset = build_health_report_asset(demo_project, home)
    assert {k.path[-1] for k in asset.dependency_keys} == set(demo_project.tables)
    result = dg.materialize(
        [asset], instance=instance,
        resources={"spark": build_spark_resource(settings),
                   "etl_log": EtlLogResource(database=LOG_DB)})
    assert result.success
    (event,) = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    page = tmp_path / "home" / "reports" / "health.html"
    assert metadata[HA.PAGE].value == str(page) and page.exists()
    expected = expected_totals(seeded_log, 30)
    assert metadata[HA.RUNS].value == expected["runs"]
    assert metadata[HA.OPEN_FLAGS].value == 2
    summary = metadata[HA.SUMMARY].value
    assert f"{expected['rows_loaded']:,} rows" in summary
    assert "customers_dim.email_not_null" in summary and str(page) in summary
    assert page_data(page)["totals"] == expected


def test_as_of_defaults_to_today_utc(spark: SparkSession) -> None:
    report = build_report(spark, EMPTY_DB, days=3)
    today = datetime.now(timezone.utc).date()
    assert report.end == today.isoformat()
    assert date.fromisoformat(report.start) == today - timedelta(days=2)


def test_run_panels_sum_the_groups_without_spark() -> None:
    def group(asset, domain, day, status, runs, rows=None, seconds=None, timed=0, longest=None):
        return {"asset": asset, "domain": domain, "day": day, "status": status, "runs": runs,
                "row_count": rows, "duration_sum": seconds, "timed": timed,
                "duration_max": longest}

    panels = HR.run_panels([
        group("a", "d", "2026-01-01", "SUCCESS", 2, rows=10, seconds=6.0, timed=2, longest=4.0),
        group("a", "d", "2026-01-02", "SUCCESS", 1, rows=5, seconds=9.0, timed=1, longest=9.0),
        group("b", None, "2026-01-02", "SUCCESS", 1),  # no row count, no duration
        group("b", None, "2026-01-02", "FAILED", 1, seconds=1.0, timed=1, longest=1.0),
    ])
    assert panels["totals"] == {"runs": 5, "success": 4, "failed": 1, "retry": 0,
                                "tables_seen": 2, "tables_loaded": 2, "rows_loaded": 15,
                                "open_flags": 0}
    assert panels["status"] == [{"status": "SUCCESS", "runs": 4}, {"status": "FAILED", "runs": 1}]
    assert panels["status_by_domain"] == [
        {"domain": HR.NO_DOMAIN, "status": "FAILED", "runs": 1},
        {"domain": HR.NO_DOMAIN, "status": "SUCCESS", "runs": 1},
        {"domain": "d", "status": "SUCCESS", "runs": 3}]
    assert panels["daily"] == [
        {"day": "2026-01-01", "status": "SUCCESS", "runs": 2, "rows_loaded": 10},
        {"day": "2026-01-02", "status": "FAILED", "runs": 1, "rows_loaded": 0},
        {"day": "2026-01-02", "status": "SUCCESS", "runs": 2, "rows_loaded": 5}]
    # Mean over loads that have a duration (a failure's duration is not a load's); none: last.
    assert panels["slowest"] == [{"asset": "a", "mean_s": 5.0, "max_s": 9.0, "loads": 3},
                                 {"asset": "b", "mean_s": None, "max_s": None, "loads": 1}]
    assert [(d["asset"], d["day"], d["duration_s"]) for d in panels["durations"]] == [
        ("a", "2026-01-01", 3.0), ("a", "2026-01-02", 9.0), ("b", "2026-01-02", None)]
