"""Daily partitions, single-run backfills, every write mode and incremental loads, for real.

Each test writes a small source with Spark, a spec folder, and materializes through Dagster on
the shared session; what it asserts is read back from the Hive tables and the log tables.
"""

from __future__ import annotations

import logging
from pathlib import Path

import dagster as dg
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual

from etl_assets.core import metric_names as M
from etl_assets.core.specs import load_project
from etl_assets.definitions import build_resources
from etl_assets.engine import storage as S
from etl_assets.engine import table_rows as TR
from etl_assets.engine.inputs import later_watermark
from etl_assets.orchestration import checks as C
from etl_assets.orchestration.assets import FULL_REFRESH_TAG
from etl_assets.orchestration.domains import build_assets
from etl_assets_tests.helpers import materialize_project, write_spec


def _orders(spark: SparkSession, path: Path, rows: int = 1500, days: int = 15) -> None:
    spark.range(rows).selectExpr(
        "id AS order_id",
        "CAST(id % 50 AS INT) AS customer_id",
        f"date_add(DATE'2026-03-01', CAST(id % {days} AS INT)) AS order_date",
        "CAST(id % 7 AS DECIMAL(10,2)) AS amount",
        "timestamp_seconds(1772323200 + id * 60) AS updated_at",
    ).write.mode("overwrite").parquet(str(path))


DAILY = """
database: {db}
sources:
  src: {{format: parquet, path: {source}}}
tables:
  - name: daily
    inputs: [src]
    partitions: {{type: daily, start: 2026-03-01, column: order_date}}
    sql: |
      SELECT order_date, customer_id, count(*) AS orders, sum(amount) AS amount
      FROM src
      WHERE order_date >= '{{partition_start}}' AND order_date < '{{partition_end}}'
      GROUP BY order_date, customer_id
"""


def _backfill(project, settings, instance, start: str, end: str) -> dg.ExecuteInProcessResult:
    defs = dg.Definitions(
        assets=build_assets(project),
        resources=build_resources(settings),
        jobs=[dg.define_asset_job("backfill", selection=["daily"])],
    )
    return defs.resolve_job_def("backfill").execute_in_process(
        instance=instance,
        tags={"dagster/asset_partition_range_start": start,
              "dagster/asset_partition_range_end": end},
    )


def test_daily_partition_rerun_replaces_only_that_partition_and_backfill_is_one_run(
    spark: SparkSession, settings, tmp_path: Path, instance
) -> None:
    _orders(spark, tmp_path / "src")
    write_spec(tmp_path / "spec", DAILY.format(db="t_daily", source=tmp_path / "src"))
    project = load_project(tmp_path / "spec")

    backfill = _backfill(project, settings, instance, "2026-03-01", "2026-03-10")
    assert backfill.success
    events = backfill.get_asset_materialization_events()
    assert sorted(e.partition for e in events) == [f"2026-03-{d:02d}" for d in range(1, 11)]
    table = spark.table("t_daily.daily")
    per_day = {r.order_date.isoformat(): r.n for r in
               table.groupBy("order_date").count().withColumnRenamed("count", "n").collect()}
    assert len(per_day) == 10
    for event in events:  # Dagster's keys: the table's rows, and the partition's
        metadata = event.step_materialization_data.materialization.metadata
        assert metadata[M.ROW_COUNT].value == sum(per_day.values())
        assert metadata[M.PARTITION_ROW_COUNT].value == per_day[event.partition]
    logged = spark.sql(
        f"SELECT partition_key, row_count FROM {settings.log_db}.run_log "
        f"WHERE run_id = '{backfill.run_id}'").collect()
    assert {r.partition_key: r.row_count for r in logged} == per_day

    before = table.where("order_date <> DATE'2026-03-05'").collect()
    day = table.where("order_date = DATE'2026-03-05'").collect()
    for _ in range(2):
        rerun = materialize_project(project, settings, instance, partition_key="2026-03-05")
        assert rerun.success
    table = spark.table("t_daily.daily")
    assertDataFrameEqual(table.where("order_date = DATE'2026-03-05'"), day)
    assertDataFrameEqual(table.where("order_date <> DATE'2026-03-05'"), before)
    (event,) = rerun.get_asset_materialization_events()
    assert event.partition == "2026-03-05"
    metadata = event.step_materialization_data.materialization.metadata
    assert metadata["sum/amount"].value == pytest.approx(
        float(sum(r.amount for r in day)))
    assert metadata[M.PARTITION_ROW_COUNT].value == len(day)  # a one-partition run too
    assert metadata[M.ROW_COUNT].value == sum(per_day.values())
    # Judged against the earlier partitions (03-01..03-04) only, in partition order.
    (check,) = [e for e in rerun.get_asset_check_evaluations()
                if e.check_name == C.ROW_COUNT_CHECK]
    assert "4 of 5 points" in check.description  # 03-01..03-04, not the later days


def test_a_backfill_judges_each_partition_against_the_ones_before_it(
    spark: SparkSession, settings, tmp_path: Path, instance
) -> None:
    def source(short_day: str | None = None) -> None:  # 200 customers a day for 14 days
        frame = spark.range(200 * 14).selectExpr(
            "CAST(id % 200 AS INT) AS customer_id",
            "date_add(DATE'2026-03-01', CAST(id DIV 200 AS INT)) AS order_date",
            "CAST(id % 7 AS DECIMAL(10,2)) AS amount")
        if short_day:  # that day, only 20 of them
            frame = frame.where(f"order_date <> DATE'{short_day}' OR customer_id < 20")
        frame.write.mode("overwrite").parquet(str(tmp_path / "src"))

    source()
    write_spec(tmp_path / "spec", DAILY.format(db="t_daily_judged", source=tmp_path / "src"))
    project = load_project(tmp_path / "spec")
    assert _backfill(project, settings, instance, "2026-03-01", "2026-03-10").success
    source(short_day="2026-03-12")
    run = _backfill(project, settings, instance, "2026-03-11", "2026-03-13")
    # One verdict per check for the run, from each day judged alone against the recorded
    # days before it: only 03-12 (20 rows against 200) fails.
    (check,) = [e for e in run.get_asset_check_evaluations()
                if e.check_name == C.ROW_COUNT_CHECK]
    assert not check.passed
    assert check.metadata["partitions_failed"].value == ["2026-03-12"]
    assert check.description.startswith("2026-03-12: ") and "20" in check.description
    assert run.success  # a WARN check: the days are published
    assert spark.table("t_daily_judged.daily").where("order_date = DATE'2026-03-12'").count() == 20


def _modes_spec(db: str, source: Path, mode: str, extra: str = "", sql: str = "") -> str:
    sql = sql or "SELECT order_id, customer_id, order_date, amount FROM src"
    return f"""
database: {db}
sources:
  src: {{format: parquet, path: {source}}}
tables:
  - name: target
    inputs: [src]
    write_mode: {mode}
{extra}    sql: {sql}
"""


def _load(spark, settings, instance, tmp_path: Path, name: str, text: str, ok: bool = True):
    write_spec(tmp_path / name, text)
    result = materialize_project(load_project(tmp_path / name), settings, instance,
                                 raise_on_error=False)
    assert result.success is ok, result.failure_data_for_node("target") if ok else None
    return result


def _row_counts(result) -> tuple[int, int]:
    """`dagster/row_count` and `rows_written` of the run's one materialization."""
    (event,) = result.get_asset_materialization_events()
    metadata = event.step_materialization_data.materialization.metadata
    return metadata[M.ROW_COUNT].value, metadata[M.ROWS_WRITTEN].value


def test_delete_insert_replaces_exactly_the_matching_rows_and_failure_keeps_them(
    spark: SparkSession, settings, tmp_path: Path, instance
) -> None:
    _orders(spark, tmp_path / "src", rows=300, days=3)
    _load(spark, settings, instance, tmp_path, "v1",
          _modes_spec("t_di", tmp_path / "src", "overwrite"))
    before = spark.table("t_di.target")
    kept = before.where("order_date <> DATE'2026-03-02'").collect()
    # New rows for 2026-03-02 only, with amount 100: the old ones of that day must go.
    sql = ("SELECT order_id + 10000 AS order_id, customer_id, order_date, "
           "CAST(100 AS DECIMAL(10,2)) AS amount FROM src WHERE order_date = DATE'2026-03-02'")
    extra = "    target_condition: \"order_date = DATE'2026-03-02'\"\n"
    _load(spark, settings, instance, tmp_path, "v2",
          _modes_spec("t_di", tmp_path / "src", "delete_insert", extra, f'"{sql}"'))
    after = spark.table("t_di.target")
    assertDataFrameEqual(after.where("order_date <> DATE'2026-03-02'"), kept)
    replaced = after.where("order_date = DATE'2026-03-02'")
    assert replaced.count() == 100 and replaced.where("amount <> 100").count() == 0

    snapshot = after.collect()
    bad = sql.replace("CAST(100 AS DECIMAL(10,2))",
                      "CASE WHEN order_id = 4 THEN raise_error('boom') "
                      "ELSE CAST(1 AS DECIMAL(10,2)) END")
    failed = _load(spark, settings, instance, tmp_path, "v3",
                   _modes_spec("t_di", tmp_path / "src", "delete_insert", extra, f'"{bad}"'),
                   ok=False)
    assert "boom" in str(failed.failure_data_for_node("target").error)
    assertDataFrameEqual(spark.table("t_di.target"), snapshot)


def test_insert_overwrite_append_and_merge(
    spark: SparkSession, settings, tmp_path: Path, instance
) -> None:
    _orders(spark, tmp_path / "src", rows=300, days=3)
    part = "    partition_by: [order_date]\n"
    _load(spark, settings, instance, tmp_path, "io1",
          _modes_spec("t_io", tmp_path / "src", "insert_overwrite", part))
    one_day = ("\"SELECT order_id, customer_id, order_date, CAST(9 AS DECIMAL(10,2)) AS amount "
               "FROM src WHERE order_date = DATE'2026-03-03'\"")
    other_days = spark.table("t_io.target").where("order_date <> DATE'2026-03-03'").collect()
    io2 = _load(spark, settings, instance, tmp_path, "io2",
                _modes_spec("t_io", tmp_path / "src", "insert_overwrite", part, one_day))
    table = spark.table("t_io.target")
    assertDataFrameEqual(table.where("order_date <> DATE'2026-03-03'"), other_days)
    assert table.where("order_date = DATE'2026-03-03'").where("amount <> 9").count() == 0
    assert table.count() == 300
    # Dagster's `dagster/row_count` is the table's rows; the load's own are `rows_written`.
    day3 = table.where("order_date = DATE'2026-03-03'").count()
    assert _row_counts(io2) == (300, day3)
    # A partition someone else re-points is counted again from its own files, not trusted.
    elsewhere = str(tmp_path / "elsewhere")
    spark.table("t_io.target").where("order_date = DATE'2026-03-01'").limit(5).drop(
        "order_date").write.parquet(elsewhere)
    spark.sql("ALTER TABLE t_io.target PARTITION (order_date='2026-03-01') "
              f"SET LOCATION 'file://{elsewhere}'")
    spark.catalog.refreshTable("t_io.target")
    expected = spark.table("t_io.target").count()
    assert expected < 300
    again = _load(spark, settings, instance, tmp_path, "io2",
                  _modes_spec("t_io", tmp_path / "src", "insert_overwrite", part, one_day))
    assert _row_counts(again) == (expected, day3)
    # Each partition keeps its count for the folder it has now: the next load only lists them.
    records = S.partition_records(spark, "t_io.target")
    assert len(records) == 3
    assert all(r.parameters[TR.FOLDER_PARAMETER] == r.location for r in records)
    assert sum(int(r.parameters[TR.ROWS_PARAMETER]) for r in records) == expected
    failing = one_day.replace("CAST(9 AS DECIMAL(10,2))",
                              "CASE WHEN order_id = 2 THEN raise_error('io boom') ELSE 1 END")
    snapshot = table.collect()
    _load(spark, settings, instance, tmp_path, "io3",
          _modes_spec("t_io", tmp_path / "src", "insert_overwrite", part, failing), ok=False)
    assertDataFrameEqual(spark.table("t_io.target"), snapshot)

    for name in ("ap1", "ap2"):
        appended = _load(spark, settings, instance, tmp_path, name,
                         _modes_spec("t_ap", tmp_path / "src", "append"))
    assert spark.table("t_ap.target").count() == 600
    assert _row_counts(appended) == (600, 300)
    for name in ("pa1", "pa2"):  # appended into existing partitions' folders: counted again
        appended = _load(spark, settings, instance, tmp_path, name,
                         _modes_spec("t_pa", tmp_path / "src", "append", part))
    assert spark.table("t_pa.target").count() == 600
    assert _row_counts(appended) == (600, 300)

    merge = "    merge_keys: [order_id]\n"
    _load(spark, settings, instance, tmp_path, "mg1",
          _modes_spec("t_mg", tmp_path / "src", "merge", merge))
    upsert = ("\"SELECT order_id + 250 AS order_id, customer_id, order_date, "
              "CAST(5 AS DECIMAL(10,2)) AS amount FROM src WHERE order_id < 100\"")
    _load(spark, settings, instance, tmp_path, "mg2",
          _modes_spec("t_mg", tmp_path / "src", "merge", merge, upsert))
    merged = spark.table("t_mg.target")
    assert merged.count() == 350  # ids 0..299 plus 300..349 new; 250..299 updated
    assert merged.where("order_id >= 250 AND amount <> 5").count() == 0
    assert merged.where("order_id < 250 AND amount = 5 AND order_id % 7 <> 5").count() == 0


@pytest.mark.parametrize("mode, extra", [
    ("merge", "    merge_keys: [order_id]\n"),
    ("delete_insert", "    target_condition: \"order_date = DATE'2026-03-02'\"\n"),
])
def test_merge_and_delete_insert_refuse_a_retyped_or_missing_column_and_take_added_ones(
    spark: SparkSession, settings, tmp_path: Path, instance, mode: str, extra: str
) -> None:
    # Kept rows have the table's types: the union used to cast the new rows to them silently
    # (int turned string came back bigint) and fill a dropped column with nulls.
    db = f"t_sc_{mode}"
    _orders(spark, tmp_path / "src", rows=300, days=3)
    columns = "order_id, customer_id, order_date, amount"
    _load(spark, settings, instance, tmp_path, "v1",
          _modes_spec(db, tmp_path / "src", mode, extra, f"SELECT {columns} FROM src"))
    snapshot = spark.table(f"{db}.target").collect()
    changes = {
        "retyped": ("SELECT order_id, CAST(customer_id AS STRING) AS customer_id, order_date, "
                    "amount FROM src", "retyped `customer_id` int → string"),
        "missing": ("SELECT order_id, customer_id, order_date FROM src",
                    "missing `amount` (decimal(10,2))"),
    }
    for name, (sql, named) in changes.items():
        failed = _load(spark, settings, instance, tmp_path, name,
                       _modes_spec(db, tmp_path / "src", mode, extra, sql), ok=False)
        message = str(failed.failure_data_for_node("target").error)
        assert named in message and "full refresh" in message and "domain/defs.yaml" in message
        assert f"write_mode {mode}" in message
        assertDataFrameEqual(spark.table(f"{db}.target"), snapshot)
        row = spark.sql(f"SELECT status, error_message FROM {settings.log_db}.run_log "
                        f"WHERE run_id = '{failed.run_id}'").first()
        assert row.status == "FAILED" and named in row.error_message

    day = " WHERE order_date = DATE'2026-03-02'" if mode == "delete_insert" else ""
    _load(spark, settings, instance, tmp_path, "added",
          _modes_spec(db, tmp_path / "src", mode, extra,
                      f"SELECT {columns}, 'new' AS note FROM src{day}"))
    table = spark.table(f"{db}.target")
    assert table.columns == ["order_id", "customer_id", "order_date", "amount", "note"]
    assert table.count() == 300
    if mode == "delete_insert":  # kept rows (other days) read the added column as null
        assert table.where("note IS NULL").count() == 200

    write_spec(tmp_path / "refresh", _modes_spec(db, tmp_path / "src", mode, extra,
                                                 changes["retyped"][0]))
    refreshed = materialize_project(load_project(tmp_path / "refresh"), settings, instance,
                                    tags={FULL_REFRESH_TAG: "true"})
    assert refreshed.success
    assert dict(spark.table(f"{db}.target").dtypes)["customer_id"] == "string"


INCREMENTAL = """
database: t_inc
sources:
  src: {{format: parquet, path: {source}}}
tables:
  - name: target
    inputs: [src]
    write_mode: append
    incremental: {{column: updated_at}}
    sql: SELECT order_id, amount, updated_at{extra} FROM src
"""


def test_incremental_loads_only_new_rows_and_a_failure_keeps_the_watermark(
    spark: SparkSession, settings, tmp_path: Path, instance
) -> None:
    source = tmp_path / "src"
    _orders(spark, source, rows=100)
    first = _load(spark, settings, instance, tmp_path, "i1",
                  INCREMENTAL.format(source=source, extra=""))
    meta = first.asset_materializations_for_node("target")[0].metadata
    assert meta[M.ROW_COUNT].value == 100
    first_mark = meta[M.WATERMARK].value

    _orders(spark, source, rows=130)  # 30 new orders, later updated_at
    second = _load(spark, settings, instance, tmp_path, "i2",
                   INCREMENTAL.format(source=source, extra=""))
    # Only the 30 rows past the watermark were appended (a full read would double 100 rows).
    second_meta = second.asset_materializations_for_node("target")[0].metadata
    assert second_meta[M.ROWS_WRITTEN].value == 30
    assert second_meta[M.ROW_COUNT].value == 130  # Dagster's key: the table's rows
    assert spark.table("t_inc.target").count() == 130
    assert spark.table("t_inc.target").select("order_id").distinct().count() == 130
    mark = spark.sql(f"SELECT watermark FROM {settings.log_db}.run_log "
                     f"WHERE run_id = '{second.run_id}'").first()
    assert mark.watermark > first_mark
    # The count is kept with the table and the folder fingerprint it was taken at, so the
    # next append adds its rows to it instead of reading every appended file's footer.
    table = S.table_meta(spark, "t_inc.target")
    assert table.properties[TR.ROWS_PARAMETER] == "130"
    assert table.properties[TR.FINGERPRINT_PROPERTY] == S.folder_fingerprint(
        spark, table.location)
    # Someone else adds 5 rows to the folder: the fingerprint no longer matches, so the next
    # append counts the folder from its footers.
    spark.table("t_inc.target").limit(5).write.mode("append").parquet(table.location)

    _orders(spark, source, rows=150)
    bad = ", CASE WHEN order_id = 140 THEN raise_error('inc boom') ELSE 1 END AS flag"
    _load(spark, settings, instance, tmp_path, "i3",
          INCREMENTAL.format(source=source, extra=bad), ok=False)
    after_failure = spark.sql(
        f"SELECT watermark FROM {settings.log_db}.run_log WHERE asset = 'target' AND "
        "status = 'SUCCESS' ORDER BY finished_at DESC LIMIT 1").first().watermark
    assert after_failure == mark.watermark
    third = _load(spark, settings, instance, tmp_path, "i4",
                  INCREMENTAL.format(source=source, extra=""))
    spark.catalog.refreshTable("t_inc.target")
    assert spark.table("t_inc.target").count() == 155  # 130 + the 5 foreign + 20 appended
    third_meta = third.asset_materializations_for_node("target")[0].metadata
    assert (third_meta[M.ROWS_WRITTEN].value, third_meta[M.ROW_COUNT].value) == (20, 155)
    write_spec(tmp_path / "i5", INCREMENTAL.format(source=source, extra=""))
    full = materialize_project(load_project(tmp_path / "i5"), settings, instance,
                               tags={FULL_REFRESH_TAG: "true"})
    assert full.asset_materializations_for_node("target")[0].metadata[M.ROW_COUNT].value == 150
    assert third.success


SKIPPING = """
database: t_skip
sources:
  src: {{format: parquet, path: {source}}}
tables:
  - name: late_orders
    inputs: [src]
    write_mode: merge
    merge_keys: [order_id]
    incremental: {{column: updated_at{lookback}}}
    sql: SELECT order_id, amount, updated_at FROM src
"""


def _batch(spark: SparkSession, path: Path, new: range, late: range = range(0),
           nulls: range = range(0)) -> None:
    """A source holding one batch (as a landing folder would): new rows, one minute apart,
    late rows from the first minutes, rows without an updated_at."""
    def rows(ids: range, stamp: str):
        return spark.range(ids.start, ids.stop).selectExpr(
            "id AS order_id", "CAST(id % 7 AS DECIMAL(10,2)) AS amount", f"{stamp} AS updated_at")
    rows(new, "timestamp_seconds(1772323200 + id * 60)").unionByName(
        rows(late, "timestamp_seconds(1772323200 + (id - 190) * 60)")).unionByName(
        rows(nulls, "CAST(NULL AS TIMESTAMP)")).write.mode("overwrite").parquet(str(path))


def test_incremental_counts_late_and_null_watermark_rows_and_lookback_loads_late_ones(
    spark: SparkSession, settings, tmp_path: Path, instance
) -> None:
    # The table has a name of its own: the watermark is looked up by asset name in the log.
    source = tmp_path / "src"
    plain = SKIPPING.format(source=source, lookback="")

    def load(name: str, text: str = plain) -> tuple[dg.ExecuteInProcessResult, dict]:
        result = _load(spark, settings, instance, tmp_path, name, text)
        (event,) = result.asset_materializations_for_node("late_orders")
        return result, {k: v.value for k, v in event.metadata.items()}

    _batch(spark, source, range(0, 100))
    _, first = load("s1")
    assert M.ROWS_SKIPPED not in first  # no watermark yet: nothing was filtered
    _batch(spark, source, range(100, 130))
    _, second = load("s2")
    assert (second[M.ROWS_SKIPPED], second[M.ROW_COUNT]) == (0, 130)

    # 20 new rows, 5 late ones (updated_at long below the watermark), 3 without updated_at.
    _batch(spark, source, range(130, 150), late=range(200, 205), nulls=range(300, 303))
    third, meta = load("s3")
    assert (meta[M.ROWS_SKIPPED], meta[M.ROWS_SKIPPED_LATE], meta[M.ROWS_SKIPPED_NULL]) == (
        8, 5, 3)
    assert spark.table("t_skip.late_orders").count() == 150
    logged = {r.metric: r.value for r in spark.sql(
        f"SELECT metric, value FROM {settings.log_db}.metric_log "
        f"WHERE run_id = '{third.run_id}' AND metric LIKE 'rows_skipped%'").collect()}
    assert logged == {M.ROWS_SKIPPED: 8, M.ROWS_SKIPPED_LATE: 5, M.ROWS_SKIPPED_NULL: 3}
    warnings = [e.user_message for e in instance.all_logs(third.run_id)
                if e.level == logging.WARNING and "watermark filter skipped" in e.user_message]
    assert len(warnings) == 1 and "8 rows" in warnings[0] and "lookback" in warnings[0]
    (check,) = [e for e in third.get_asset_check_evaluations()
                if e.check_name == C.SKIPPED_CHECK]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert "skipped none" in check.description and "5 at or below" in check.description
    mark = spark.sql(f"SELECT watermark FROM {settings.log_db}.run_log "
                     f"WHERE run_id = '{third.run_id}'").first().watermark

    # The same batch again with a lookback: the late rows are loaded, the re-read ones merge
    # onto themselves, only the null-watermark rows are still skipped.
    fourth, meta = load("s4", SKIPPING.format(source=source, lookback=", lookback: 2 days"))
    assert (meta[M.ROWS_SKIPPED], meta[M.ROWS_SKIPPED_LATE], meta[M.ROWS_SKIPPED_NULL]) == (
        3, 0, 3)
    table = spark.table("t_skip.late_orders")
    assert table.count() == 155 and table.where("order_id BETWEEN 200 AND 204").count() == 5
    (check,) = [e for e in fourth.get_asset_check_evaluations()
                if e.check_name == C.SKIPPED_CHECK]
    assert check.passed, check.description
    assert spark.sql(f"SELECT watermark FROM {settings.log_db}.run_log "
                     f"WHERE run_id = '{fourth.run_id}'").first().watermark == mark
    # A re-read batch below the watermark never moves it back (compared as numbers, not text).
    assert later_watermark(spark, T.LongType(), "9", "10") == "10"
