"""Failed loads lose nothing, and bad data is measured rather than crashed on.

Each test writes its own small spec folder and source files, loads them with the real
loader, and materializes through Dagster on the shared Spark session.
"""

from __future__ import annotations

import math
from pathlib import Path

import dagster as dg
import pytest
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from etl_assets.core import metric_names as M
from etl_assets.core.specs import load_project
from etl_assets.engine.staging import LOADS_SUFFIX
from etl_assets_tests.helpers import materialize_project, write_spec


def _spec(db: str, table_sql: str, source_path: Path, extra: str = "") -> str:
    sql = "\n".join("      " + line for line in table_sql.strip().splitlines())
    return f"""
database: {db}
sources:
  src:
    format: parquet
    path: {source_path}
tables:
  - name: fragile
    inputs: [src]
    repartition: 4
{extra}    sql: |
{sql}
"""


def _metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    (event,) = result.asset_materializations_for_node(asset)
    return {k: v.value for k, v in event.metadata.items()}


def test_failure_while_writing_keeps_previous_table_and_logs_failed(
    spark: SparkSession, settings, tmp_path: Path, instance
) -> None:
    source = tmp_path / "src"
    spark.range(0, 2000, numPartitions=4).selectExpr("id", "id % 7 AS k").write.parquet(
        str(source)
    )
    good = write_spec(tmp_path / "v1", _spec("t_fail", "SELECT id, k, id * 2 AS v FROM src",
                                               source))
    result = materialize_project(load_project(good.parent), settings, instance)
    assert result.success
    before = spark.table("t_fail.fragile").collect()
    assert len(before) == 2000

    # Fails inside the write's tasks, after other rows were already written.
    bad_sql = "SELECT id, k, CASE WHEN id = 1900 THEN raise_error('boom at row 1900') " \
              "ELSE id * 2 END AS v FROM src"
    bad = write_spec(tmp_path / "v2", _spec("t_fail", bad_sql, source))
    failed = materialize_project(load_project(bad.parent), settings, instance,
                                 raise_on_error=False)
    assert not failed.success
    failure = failed.failure_data_for_node("fragile")
    assert "boom at row 1900" in str(failure.error)

    assertDataFrameEqual(spark.table("t_fail.fragile"), before)
    row = spark.sql(
        f"SELECT * FROM {settings.log_db}.run_log WHERE run_id = '{failed.run_id}'"
    ).first()
    assert row.status == "FAILED" and row.asset == "fragile"
    assert "boom at row 1900" in row.error_message
    assert row.row_count is None
    # The half-written folder was removed; only the good load's folder remains.
    loads = Path(_metadata(result, "fragile")[M.URI].removeprefix("file:")).parent
    assert loads.name == "fragile" + LOADS_SUFFIX
    assert len(list(loads.iterdir())) == 1

    # An analysis error (unknown column) is logged the same way and also loses nothing.
    worse = write_spec(tmp_path / "v3", _spec("t_fail", "SELECT id, nope FROM src", source))
    failed = materialize_project(load_project(worse.parent), settings, instance,
                                 raise_on_error=False)
    assert not failed.success
    row = spark.sql(
        f"SELECT * FROM {settings.log_db}.run_log WHERE run_id = '{failed.run_id}'"
    ).first()
    assert row.status == "FAILED" and "nope" in row.error_message
    assertDataFrameEqual(spark.table("t_fail.fragile"), before)


def test_schema_drift_switches_the_table_and_drops_the_old_folder(
    spark: SparkSession, settings, tmp_path: Path, instance
) -> None:
    source = tmp_path / "src"
    spark.range(0, 100).selectExpr("id", "id % 3 AS k").write.parquet(str(source))
    first = write_spec(tmp_path / "v1", _spec("t_drift", "SELECT id, k FROM src", source))
    one = materialize_project(load_project(first.parent), settings, instance)
    old_folder = Path(_metadata(one, "fragile")[M.URI].removeprefix("file:"))
    drift_sql = "SELECT id, CAST(k AS STRING) AS k, id / 2 AS half FROM src"
    second = write_spec(tmp_path / "v2", _spec("t_drift", drift_sql, source))
    two = materialize_project(load_project(second.parent), settings, instance)
    table = spark.table("t_drift.fragile")
    assert [(f.name, f.dataType.simpleString()) for f in table.schema] == [
        ("id", "bigint"), ("k", "string"), ("half", "double")]
    assert table.count() == 100
    assert not old_folder.exists()
    meta = _metadata(two, "fragile")
    assert [c.name for c in meta[M.COLUMN_SCHEMA].columns] == ["id", "k", "half"]
    assert meta[M.SUM + "half"] == pytest.approx(sum(i / 2 for i in range(100)))
    assert M.SUM + "k" not in meta


def test_bad_data_nulls_nan_decimal_unicode_and_empty(
    spark: SparkSession, settings, tmp_path: Path, instance
) -> None:
    source = tmp_path / "src"
    spark.sql(
        """
        SELECT * FROM VALUES
          (1, CAST(1.5 AS DOUBLE), CAST(10.25 AS DECIMAL(18,2)), DATE'2026-01-03', '가'),
          (2, CAST('NaN' AS DOUBLE), CAST(0.10 AS DECIMAL(18,2)), NULL, '나'),
          (3, NULL, NULL, DATE'2026-02-01', NULL),
          (4, CAST(2.0 AS DOUBLE), CAST(99999999999999.99 AS DECIMAL(18,2)),
           DATE'2026-01-01', '가')
        AS t(id, score, amount, `사용일자`, `분류`)
        """
    ).write.parquet(str(source))
    extra = "    metrics: {categorical: [분류]}\n"
    spec = write_spec(tmp_path / "v1", _spec("t_bad", "SELECT * FROM src", source, extra))
    result = materialize_project(load_project(spec.parent), settings, instance)
    meta = _metadata(result, "fragile")
    assert meta[M.ROW_COUNT] == 4
    assert meta[M.NAN_COUNT + "score"] == 1
    assert meta[M.NULL_COUNT + "score"] == 1
    assert meta[M.SUM + "score"] == pytest.approx(3.5)
    assert meta[M.NULL_COUNT + "amount"] == 1
    assert meta[M.NULL_COUNT + "사용일자"] == 1
    assert meta[M.MIN + "사용일자"] == "2026-01-01"
    assert meta[M.MAX + "사용일자"] == "2026-02-01"
    assert meta[M.CATEGORIES + "분류"] == ["가", "나"]
    assert meta[M.CATEGORY_COUNT + "분류"] == 2
    exact = spark.sql(
        f"SELECT value_text FROM {settings.log_db}.metric_log "
        f"WHERE run_id = '{result.run_id}' AND metric = 'sum/amount'"
    ).first().value_text
    assert exact == "100000000000010.34"

    empty = write_spec(tmp_path / "v2", _spec("t_bad", "SELECT * FROM src WHERE id < 0",
                                                source, extra))
    result = materialize_project(load_project(empty.parent), settings, instance)
    meta = _metadata(result, "fragile")
    assert meta[M.ROW_COUNT] == 0
    assert meta[M.SUM + "score"] is None and meta[M.SUM + "amount"] is None
    assert meta[M.CATEGORIES + "분류"] == []
    assert spark.table("t_bad.fragile").count() == 0
    logged = spark.sql(
        f"SELECT metric, value, value_text FROM {settings.log_db}.metric_log "
        f"WHERE run_id = '{result.run_id}'"
    ).collect()
    by_metric = {r.metric: r for r in logged}
    assert by_metric[M.ROW_COUNT].value == 0
    assert by_metric[M.SUM + "score"].value is None
    assert not any(r.value is not None and math.isnan(r.value) for r in logged)


def test_metrics_option_naming_a_missing_column_fails_clearly(
    spark: SparkSession, settings, tmp_path: Path, instance
) -> None:
    source = tmp_path / "src"
    spark.range(5).write.parquet(str(source))
    extra = "    metrics: {sum: [idd]}\n"
    spec = write_spec(tmp_path / "v1", _spec("t_opt", "SELECT id FROM src", source, extra))
    result = materialize_project(load_project(spec.parent), settings, instance,
                                 raise_on_error=False)
    assert not result.success
    message = str(result.failure_data_for_node("fragile").error)
    assert "domain/defs.yaml" in message and "fragile" in message and "'idd'" in message


def test_partition_by_writes_hive_partitions_and_reruns_replace_them(
    spark: SparkSession, settings, tmp_path: Path, instance
) -> None:
    source = tmp_path / "src"
    spark.range(0, 300).selectExpr("id", "CAST(id % 3 AS INT) AS k").write.parquet(str(source))
    extra = "    partition_by: [k]\n"
    spec = write_spec(tmp_path / "v1", _spec("t_part", "SELECT id, k FROM src", source, extra))
    project = load_project(spec.parent)
    for _ in range(2):
        result = materialize_project(project, settings, instance)
        assert result.success
    meta = _metadata(result, "fragile")
    assert meta[M.ROW_COUNT] == 300 and meta[M.NULL_COUNT + "k"] == 0
    assert meta[M.SUM + "k"] == sum(i % 3 for i in range(300))
    partitions = sorted(r[0] for r in spark.sql("SHOW PARTITIONS t_part.fragile").collect())
    assert partitions == ["k=0", "k=1", "k=2"]
    assert spark.table("t_part.fragile").count() == 300
    assert spark.table("t_part.fragile").columns == ["id", "k"]


def test_overflowing_sums_are_not_measured_and_the_load_succeeds(
    spark: SparkSession, settings, tmp_path: Path, instance
) -> None:
    # decimal(38,18) holds < 10^20: three values of 9 * 10^19 sum beyond the type; the longs
    # sum beyond 2^63, the doubles beyond 1.8 * 10^308. Each value fits, so the rows are fine:
    # only the sums overflow.
    assert spark.conf.get("spark.sql.ansi.enabled") == "true"  # Spark 4's default: no nulls
    source = tmp_path / "src"
    spark.sql(
        """
        SELECT CAST(id AS INT) AS id,
               CAST('90000000000000000000.5' AS DECIMAL(38,18)) AS big_amount,
               CAST(9000000000000000000 AS BIGINT) AS big_count,
               CAST(1.25 AS DECIMAL(18,2)) AS small_amount,
               CAST(1e308 AS DOUBLE) AS big_ratio
        FROM range(3)
        """
    ).write.parquet(str(source))
    spec = write_spec(tmp_path / "v1", _spec("t_overflow", "SELECT * FROM src", source))
    result = materialize_project(load_project(spec.parent), settings, instance)
    assert result.success
    meta = _metadata(result, "fragile")
    assert meta[M.ROW_COUNT] == 3
    for column in ("big_amount", "big_count", "big_ratio"):
        assert meta[M.SUM + column] is None, column
    assert meta[M.SUM + "small_amount"] == pytest.approx(3.75)
    assert meta[M.SUM + "id"] == 3
    assert spark.table("t_overflow.fragile").count() == 3
    logged = {r.metric: r for r in spark.sql(
        f"SELECT metric, value, value_text FROM {settings.log_db}.metric_log "
        f"WHERE run_id = '{result.run_id}' AND metric LIKE 'sum/%'").collect()}
    assert logged[M.SUM + "big_amount"].value is None
    assert logged[M.SUM + "big_amount"].value_text is None
    assert logged[M.SUM + "big_count"].value is None
    assert (logged[M.SUM + "big_ratio"].value, logged[M.SUM + "big_ratio"].value_text) == (
        None, "inf")
    sums = next(e for e in result.get_asset_check_evaluations()
                if e.check_name == "sums_anomaly")
    assert sums.passed and "not measured" in sums.description



def test_a_narrow_decimal_sum_beyond_the_long_range_stays_exact(
    spark: SparkSession, settings, tmp_path: Path, instance
) -> None:
    # decimal(18,0) is observed as a long sum of its unscaled values; ten values near 10^18
    # sum beyond 2^63, so the load looks again at the written files with the decimal sum.
    # A float column with +inf and -inf (a NaN sum without a NaN) is looked at again too.
    source = tmp_path / "src"
    spark.sql(
        """
        SELECT CAST(999999999999999999 AS DECIMAL(18,0)) AS units,
               CAST(0.05 AS DECIMAL(4,2)) AS small,
               CASE id WHEN 0 THEN CAST('Infinity' AS DOUBLE)
                       WHEN 1 THEN CAST('-Infinity' AS DOUBLE) ELSE 1.0 END AS ratio
        FROM range(10)
        """
    ).write.parquet(str(source))
    spec = write_spec(tmp_path / "v1", _spec("t_units", "SELECT * FROM src", source))
    result = materialize_project(load_project(spec.parent), settings, instance)
    meta = _metadata(result, "fragile")
    assert meta[M.NAN_COUNT + "ratio"] == 0 and meta[M.SUM + "ratio"] is None
    logged = {r.metric: r.value_text for r in spark.sql(
        f"SELECT metric, value_text FROM {settings.log_db}.metric_log "
        f"WHERE run_id = '{result.run_id}' AND metric LIKE 'sum/%'").collect()}
    assert logged[M.SUM + "units"] == "9999999999999999990"
    assert logged[M.SUM + "small"] == "0.50"


def test_a_wide_table_keeps_its_metadata_bounded_and_its_checks_whole(
    spark: SparkSession, settings, tmp_path: Path, instance
) -> None:
    # 301 columns: id, then ints (c000, c002, ...) and doubles with one NaN (c001, c003, ...);
    # `scale` multiplies c250, a column far beyond the sums kept as top-level keys.
    def load(scale: int) -> dg.ExecuteInProcessResult:
        source = tmp_path / f"src_{scale}"
        spark.range(20).selectExpr("id", *[
            f"CAST(id * {i * (scale if i == 250 else 1)} AS INT) AS c{i:03d}" if i % 2 == 0
            else f"IF(id = 0, CAST('NaN' AS DOUBLE), id * {i} + 0.5) AS c{i:03d}"
            for i in range(300)
        ]).write.parquet(str(source))
        spec = write_spec(tmp_path / f"v{scale}", _spec("t_wide", "SELECT * FROM src", source))
        return materialize_project(load_project(spec.parent), settings, instance)

    result = load(1)
    (event,) = result.asset_materializations_for_node("fragile")
    assert len(event.metadata) < 40, sorted(event.metadata)
    plotted = [k for k, v in event.metadata.items()
               if isinstance(v, (dg.IntMetadataValue, dg.FloatMetadataValue))]
    assert len(plotted) < 25, plotted
    meta = _metadata(result, "fragile")
    assert meta[M.ROW_COUNT] == 20 and meta[M.COLUMNS] == 301
    assert meta[M.COLUMNS_WITH_NAN] == 150 and meta[M.NAN_COUNT_TOTAL] == 150
    assert meta[M.COLUMNS_WITH_NULLS] == 0 and meta[M.NULL_COUNT_TOTAL] == 0
    assert len([k for k in meta if k.startswith(M.SUM)]) == M.WIDE_TABLE_SUMS
    rows = {r.data["column"]: r.data for r in meta[M.COLUMN_METRICS].records}
    assert len(rows) == 301
    assert rows["c250"]["sum"] == 250 * sum(range(20)) and rows["c250"]["null_count"] == 0
    assert rows["c001"]["nan_count"] == 1 and rows["id"]["summed"] and "min" not in rows["id"]
    logged = spark.sql(
        f"SELECT metric FROM {settings.log_db}.metric_log WHERE run_id = '{result.run_id}'"
    ).collect()
    names = {r.metric for r in logged}
    assert {M.SUM + "c250", M.NULL_COUNT + "c250", M.NAN_COUNT + "c299"} <= names
    assert len([n for n in names if n.startswith(M.NULL_COUNT)]) == 301
    assert len([n for n in names if n.startswith(M.SUM)]) == 301

    # The checks read every column's sum back from the table entry: five earlier loads like
    # this one, then c250 ten times larger is flagged by name.
    for _ in range(5):
        instance.report_runless_asset_event(
            dg.AssetMaterialization("fragile", metadata=dict(event.metadata)))
    flagged = load(10)
    sums = next(e for e in flagged.get_asset_check_evaluations()
                if e.check_name == "sums_anomaly")
    assert sums.metadata["columns_checked"].value == 301
    assert not sums.passed and sums.metadata["flagged_metrics"].value == [M.SUM + "c250"]
