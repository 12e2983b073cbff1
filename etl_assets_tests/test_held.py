"""Write, audit, publish: a blocking check holds a bad load back before readers see it.

Real Spark, Hive and Dagster: a table with `checks.row_count: {severity: ERROR, blocking:
true}` is loaded normally, then from a shrunk source; the run fails with the held-load
message while the table still returns the previous rows, and the `etl_publish` /
`etl_discard` jobs (what `etl-assets publish|discard` runs) publish or delete the held load.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pytest
from pyspark.sql import SparkSession

from etl_assets.core.held import HeldLoad
from etl_assets.core.settings import load_alert_settings
from etl_assets.core.specs import Project, load_project
from etl_assets.definitions import build_resources
from etl_assets.engine import storage as S
from etl_assets.engine.held import expire_held, held_loads
from etl_assets.orchestration import checks as C
from etl_assets.orchestration.domains import build_assets
from etl_assets.orchestration.held_loads import (
    DISCARD_JOB,
    PUBLISH_JOB,
    build_held_load_jobs,
)
from etl_assets.orchestration.sensors import failed_check_alerts
from etl_assets.tools.cli import main as cli_main
from etl_assets_tests.helpers import clean_env, materialize_project, write_spec

SPEC = """
database: {db}
sources:
  src: {{format: parquet, path: {source}}}
tables:
  - name: orders
    inputs: [src]
    sql: SELECT * FROM src
    checks:
      defaults: {{min_history: 2}}
      row_count: {{severity: ERROR, blocking: true}}
  - name: totals
    inputs: [orders]
    sql: SELECT count(*) AS orders, sum(amount) AS amount FROM orders
"""


def test_the_manifest_keeps_every_metric_type() -> None:
    """Decimals, dates, timestamps, NaN and infinities survive the manifest (no Spark)."""
    metrics = {"dagster/row_count": 3, "sum/amount": Decimal("12345678901234567890.12"),
               "min/day": date(2026, 1, 1), "max/at": datetime(2026, 1, 2, 3, 4, 5),
               "sum/ratio": float("nan"), "sum/big": float("inf"), "categories/c": ["a", "b"],
               "sum/none": None}
    held = HeldLoad(table="t", qualified_name="d.t", run_id="r", location="file:/x/load_1",
                    loads_root="file:/x", mode="overwrite", partition_keys=("2026-01-01",),
                    held_partitions=(), window=("2026-01-01", "2026-01-02"), watermark=None,
                    full_refresh=False, run_date="2026-01-02", schema_json="{}",
                    metrics=metrics, per_partition={"2026-01-01": {"dagster/row_count": 3}},
                    rows_in=None, bytes=10, duration_s=1.5, reasons=("row_count ...",),
                    held_at="2026-01-02T00:00:00+00:00", base={"": ""})
    back = HeldLoad.from_json(held.to_json())
    assert back.metrics["sum/amount"] == Decimal("12345678901234567890.12")
    assert back.metrics["min/day"] == date(2026, 1, 1)
    assert back.metrics["max/at"] == datetime(2026, 1, 2, 3, 4, 5)
    assert back.metrics["sum/ratio"] != back.metrics["sum/ratio"]  # NaN
    assert back.metrics["sum/big"] == float("inf") and back.metrics["sum/none"] is None
    assert back == HeldLoad(**{**held.__dict__, "metrics": back.metrics})
    assert back.expired(7, datetime(2026, 1, 9, 1, tzinfo=timezone.utc))
    assert not back.expired(7, datetime(2026, 1, 8, 23, tzinfo=timezone.utc))


def _source(spark: SparkSession, path: Path, rows: int) -> None:
    spark.range(rows).selectExpr("CAST(id AS INT) id", "CAST(id % 7 AS BIGINT) amount").write.mode(
        "overwrite").parquet(str(path))


def _project(tmp_path: Path, db: str) -> Project:
    write_spec(tmp_path / "spec", SPEC.format(db=db, source=tmp_path / "src"))
    return load_project(tmp_path / "spec")


def _run_job(project: Project, settings, instance, job: str, run_id: str,
             note: str = "") -> dg.ExecuteInProcessResult:
    op = "publish_held_load" if job == PUBLISH_JOB else "discard_held_load"
    defs = dg.Definitions(jobs=build_held_load_jobs(project), resources=build_resources(settings))
    config = {"table": "orders", "run_id": run_id, "note": note, "by": "ana"}
    return defs.resolve_job_def(job).execute_in_process(
        run_config={"ops": {op: {"config": config}}}, instance=instance, raise_on_error=False)


def _failure(result: dg.ExecuteInProcessResult) -> str:
    failure = next(e for e in result.all_events if e.is_step_failure)
    return failure.step_failure_data.user_failure_data.description


def _run_log(spark: SparkSession, settings, run_id: str) -> list:
    return spark.sql(f"SELECT status, partition_key, row_count, error_message FROM "
                     f"{settings.log_db}.run_log WHERE run_id = '{run_id}' AND asset = 'orders' "
                     "ORDER BY finished_at, partition_key").collect()


def _held_run(spark, settings, tmp_path: Path, instance, db: str) -> tuple[Project, str]:
    """Two normal loads of 1,000 rows, then one of 250: held back. Returns the held run."""
    project = _project(tmp_path, db)
    _source(spark, tmp_path / "src", 1000)
    for _ in range(2):
        assert materialize_project(project, settings, instance).success
    _source(spark, tmp_path / "src", 250)
    result = materialize_project(project, settings, instance, raise_on_error=False)
    assert not result.success
    return project, result.run_id


def test_a_held_load_keeps_readers_on_the_previous_load_until_published(
    spark: SparkSession, settings, tmp_path: Path, instance
) -> None:
    project, run_id = _held_run(spark, settings, tmp_path, instance, "t_held")
    runs = instance.get_run_by_id(run_id)
    assert runs is not None
    # Readers still see the previous load; the downstream table was not rebuilt.
    assert spark.table("t_held.orders").count() == 1000
    assert spark.table("t_held.totals").first().orders == 1000
    events = instance.all_logs(run_id)
    failure = next(e for e in events if e.dagster_event and e.dagster_event.is_step_failure)
    message = failure.dagster_event.step_failure_data.user_failure_data.description
    assert message.startswith("orders: load held back, row_count_anomaly: row_count 250 is 75%")
    assert "the table still holds the load of run" in message and "staged at" in message
    assert f"etl-assets publish orders --run {run_id}" in message
    assert f"etl-assets discard orders --run {run_id}" in message
    totals = {e.dagster_event.event_type_value for e in events
              if e.dagster_event and e.step_key == "totals"}
    assert "STEP_START" not in totals  # the downstream step never ran
    # The failed check is in the catalog, the load's run_log row says HELD (not FAILED).
    record = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(dg.AssetKey("orders"), C.ROW_COUNT_CHECK), limit=1)[0]
    assert record.run_id == run_id and record.evaluation.passed is False
    assert record.evaluation.metadata[C.HELD_RUN].value == run_id
    [(alert, _, _)] = list(failed_check_alerts(
        instance, [dg.AssetCheckKey(dg.AssetKey("orders"), C.ROW_COUNT_CHECK)], {},
        load_alert_settings()))
    assert "load held back" in alert.message and f"--run {run_id}" in alert.message
    assert "etl-assets publish orders" in alert.message
    assert "etl-assets discard orders" in alert.message
    logged = _run_log(spark, settings, run_id)
    assert len(logged) == 1, logged
    [held_row] = logged
    assert held_row.status == "HELD" and held_row.row_count == 250
    assert "etl-assets publish orders" in held_row.error_message
    [held] = held_loads(spark, project.tables["orders"])
    assert held.run_id == run_id and held.whole and S.exists(spark, held.location)

    published = _run_job(project, settings, instance, PUBLISH_JOB, run_id[:8], "known dip")
    assert published.success
    assert spark.table("t_held.orders").count() == 250
    assert held_loads(spark, project.tables["orders"]) == []
    rows = _run_log(spark, settings, run_id)
    assert [r.status for r in rows] == ["HELD", "SUCCESS"]
    assert rows[1].row_count == 250 and rows[1].error_message.startswith("published by ana")
    newest = instance.fetch_materializations(dg.AssetKey("orders"), limit=1).records[0]
    assert newest.run_id == published.run_id
    assert newest.asset_materialization.metadata["dagster/row_count"].value == 250

    # The next normal load is judged with the published load in its history (not left out).
    _source(spark, tmp_path / "src", 1000)
    later = materialize_project(project, settings, instance)
    [evaluation] = [e for e in later.get_asset_check_evaluations()
                    if e.check_name == C.ROW_COUNT_CHECK and e.asset_key.path == ["orders"]]
    assert evaluation.passed and evaluation.metadata["points_used"].value == 3
    assert "flagged" not in evaluation.description
    assert spark.table("t_held.totals").first().orders == 1000


def test_the_cli_lists_and_publishes_held_loads(
    spark: SparkSession, settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    monkeypatch.setenv("ETL_ASSETS_DEFS", str(tmp_path / "spec"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    (tmp_path / "dagster").mkdir()
    with dg.DagsterInstance.get() as instance:
        _, run_id = _held_run(spark, settings, tmp_path, instance, "t_held_cli")
    capsys.readouterr()
    assert cli_main(["status"], spark=spark) == 0
    out = capsys.readouterr().out
    assert "1 held load (removed after 7 days):" in out
    assert f"- orders: run {run_id}" in out and "250 rows: row_count_anomaly" in out
    assert cli_main(["discard", "orders", "--run", "nope"]) == 1
    assert "orders: no held load of run 'nope'" in capsys.readouterr().err
    assert cli_main(["publish", "orders", "--run", run_id[:8], "--by", "ana"]) == 0
    assert f"orders: published the held load of run {run_id[:8]}" in capsys.readouterr().out
    assert spark.table("t_held_cli.orders").count() == 250


def test_a_discarded_load_is_deleted_and_logged(
    spark: SparkSession, settings, tmp_path: Path, instance
) -> None:
    project, run_id = _held_run(spark, settings, tmp_path, instance, "t_discard")
    [held] = held_loads(spark, project.tables["orders"])
    result = _run_job(project, settings, instance, DISCARD_JOB, run_id, "bad extract")
    assert result.success
    assert not S.exists(spark, held.location) and held_loads(spark, project.tables["orders"]) == []
    assert spark.table("t_discard.orders").count() == 1000
    statuses = [(r.status, r.error_message) for r in _run_log(spark, settings, run_id)]
    assert statuses[-1] == ("DISCARDED", "discarded by ana: bad extract")
    again = _run_job(project, settings, instance, PUBLISH_JOB, run_id)
    assert not again.success and "no held load of run" in _failure(again)


def test_publishing_over_a_newer_load_is_refused(
    spark: SparkSession, settings, tmp_path: Path, instance
) -> None:
    project, run_id = _held_run(spark, settings, tmp_path, instance, "t_newer")
    _source(spark, tmp_path / "src", 1003)
    assert materialize_project(project, settings, instance).success
    result = _run_job(project, settings, instance, PUBLISH_JOB, run_id)
    assert not result.success
    assert "refusing to publish the held load" in _failure(result)
    assert "was loaded again after it was held" in _failure(result)
    assert spark.table("t_newer.orders").count() == 1003  # the newer load stays
    assert len(held_loads(spark, project.tables["orders"])) == 1  # still there to discard


def test_retention_removes_old_held_loads_only(
    spark: SparkSession, settings, tmp_path: Path, instance
) -> None:
    project, run_id = _held_run(spark, settings, tmp_path, instance, "t_retention")
    table = project.tables["orders"]
    [held] = held_loads(spark, table)
    held_at = datetime.fromisoformat(held.held_at)
    assert expire_held(spark, table, 7, now=held_at + timedelta(days=6, hours=23)) == []
    assert S.exists(spark, held.location)
    assert [h.run_id for h in expire_held(spark, table, 7, now=held_at + timedelta(days=7,
                                                                                  hours=1))] == [
        run_id]
    assert not S.exists(spark, held.location)
    assert spark.table("t_retention.orders").count() == 1000


DAILY = """
database: t_held_daily
sources:
  src: {{format: parquet, path: {source}}}
tables:
  - name: orders
    inputs: [src]
    partitions: {{type: daily, start: 2026-01-01, column: day}}
    sql: SELECT * FROM src WHERE day >= '{{partition_start}}' AND day < '{{partition_end}}'
    checks:
      defaults: {{min_history: 2}}
      row_count: {{severity: ERROR, blocking: true}}
"""


def _backfill(project, settings, instance, start: str, end: str) -> dg.ExecuteInProcessResult:
    defs = dg.Definitions(
        assets=build_assets(project),
        resources=build_resources(settings),
        jobs=[dg.define_asset_job("backfill", selection=["orders"])])
    return defs.resolve_job_def("backfill").execute_in_process(
        instance=instance, raise_on_error=False,
        tags={"dagster/asset_partition_range_start": start,
              "dagster/asset_partition_range_end": end})


def test_only_the_failing_partition_is_held(
    spark: SparkSession, settings, tmp_path: Path, instance
) -> None:
    # 100 rows a day for eight days, except 2026-01-08 with 20.
    spark.sql("""
        SELECT CAST(id AS INT) id, date_add(DATE'2026-01-01', CAST(id DIV 100 AS INT)) day
        FROM range(800) WHERE id < 710 OR id >= 790
    """).write.mode("overwrite").parquet(str(tmp_path / "src"))
    write_spec(tmp_path / "spec", DAILY.format(source=tmp_path / "src"))
    project = load_project(tmp_path / "spec")
    assert _backfill(project, settings, instance, "2026-01-01", "2026-01-06").success
    result = _backfill(project, settings, instance, "2026-01-07", "2026-01-08")
    assert not result.success
    rows = {r.day.isoformat(): r["count"] for r in
            spark.table("t_held_daily.orders").groupBy("day").count().collect()}
    assert rows == {f"2026-01-0{d}": 100 for d in range(1, 8)}  # the 8th is held back
    logged = [(r.partition_key, r.status) for r in _run_log(spark, settings, result.run_id)]
    assert sorted(logged) == [("2026-01-07", "SUCCESS"), ("2026-01-08", "HELD")]
    [held] = held_loads(spark, project.tables["orders"])
    assert held.held_partitions == ("2026-01-08",)
    assert "2026-01-08: row_count 20 is 80% below" in _failure(result)
    # The published partition is materialized; the held one is not.
    materialized = {r.partition_key for r in instance.fetch_materializations(
        dg.AssetKey("orders"), limit=20).records if r.run_id == result.run_id}
    assert materialized == {"2026-01-07"}

    assert _run_job(project, settings, instance, PUBLISH_JOB, result.run_id).success
    assert spark.table("t_held_daily.orders").where("day = '2026-01-08'").count() == 20
    assert spark.table("t_held_daily.orders").count() == 720


CRASH = """
import os, sys
from etl_assets.core.settings import load_settings
from etl_assets.core.specs import load_project
from etl_assets.engine.load import load_table
from etl_assets.engine.session import build_session

spark = build_session(load_settings())
project = load_project(sys.argv[1])
table = project.tables["orders"]
spark.range(int(sys.argv[2])).selectExpr("CAST(id AS INT) id", "CAST(id % 7 AS BIGINT) amount"
    ).write.mode("overwrite").parquet(sys.argv[3])

def crash(candidate):
    os._exit(3)  # dies between staging and publishing, as a killed process would

if spark.catalog.tableExists(table.qualified_name):
    print("before", spark.table(table.qualified_name).count())
audit = crash if sys.argv[4] == "crash" else None
result = load_table(spark, project, table, sys.argv[5], audit=audit)
print("loaded", result.row_count, spark.table(table.qualified_name).count())
"""


@pytest.mark.e2e
def test_a_crash_between_staging_and_publishing_changes_nothing(tmp_path: Path) -> None:
    """A process that dies after the write and before the switch: readers keep the previous
    load, and the next run loads normally (two processes on their own embedded home)."""
    write_spec(tmp_path / "spec", SPEC.format(db="t_crash", source=tmp_path / "src"))
    env = clean_env(ETL_ASSETS_HOME=str(tmp_path / "home"))
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parent.parent),
                                         env.get("PYTHONPATH", "")])

    def run(rows: int, mode: str, run_id: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", textwrap.dedent(CRASH), str(tmp_path / "spec"), str(rows),
             str(tmp_path / "src"), mode, run_id], env=env, capture_output=True, text=True,
            timeout=600)

    first = run(40, "normal", "run-first")
    assert first.returncode == 0 and "loaded 40 40" in first.stdout, first.stderr[-2000:]
    crashed = run(12, "crash", "run-crash")
    assert crashed.returncode == 3 and "loaded" not in crashed.stdout
    after = run(25, "normal", "run-after")
    assert after.returncode == 0 and "loaded 25 25" in after.stdout, after.stderr[-2000:]
    assert "before 40" in after.stdout  # the crash left the previous load in place
    # The crashed load's folder is an orphan readers never saw; the rerun published its own.
    loads = sorted(p.name for p in (tmp_path / "home" / "warehouse" / "t_crash.db"
                                    / "orders__loads").iterdir())
    assert len([n for n in loads if "_run-afte_" in n]) == 1
