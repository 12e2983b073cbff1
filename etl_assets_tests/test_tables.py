"""Table assets end to end on real Spark, Hive (Derby) and a real Dagster instance.

The demo is materialized once per test run (the `demo_run` fixture); these tests check that
what the materialization says about each table agrees with independent queries of the table,
and that the Hive log tables hold exactly what the issue asks for.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pytest
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from etl_assets.core import metric_names as M
from etl_assets.core.specs import Project
from etl_assets.engine.frames import build_frame
from etl_assets.engine.inputs import register_inputs
from etl_assets.engine.staging import LOADS_SUFFIX
from etl_assets_tests.helpers import materialize_project

NUMERIC = ("tinyint", "smallint", "int", "bigint", "float", "double", "decimal")


def _unpartitioned(project: Project) -> list:
    """The demo tables `demo_run` materializes (partitioned ones are tested elsewhere)."""
    return [t for t in project.tables.values() if not t.spec.partitions]


def _metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    events = result.asset_materializations_for_node(asset)
    assert len(events) == 1
    return events[0].metadata


def _value(metadata: dict, key: str):
    return metadata[key].value


def test_every_demo_table_exists_with_standard_metadata(
    spark: SparkSession, demo_project: Project, demo_run
) -> None:
    for table in _unpartitioned(demo_project):
        assert spark.catalog.tableExists(table.qualified_name)
        metadata = _metadata(demo_run, table.name)
        assert _value(metadata, M.TABLE_NAME) == table.qualified_name
        schema = _value(metadata, M.COLUMN_SCHEMA)
        frame = spark.table(table.qualified_name)
        assert [c.name for c in schema.columns] == frame.columns
        assert [c.type for c in schema.columns] == [f.dataType.simpleString() for f in frame.schema]
        assert _value(metadata, M.BYTES) > 0
        assert _value(metadata, M.DURATION_S) > 0
        assert M.CODE_VERSION not in metadata  # Dagster tags the code version instead
        event = demo_run.asset_materializations_for_node(table.name)[0]
        assert event.tags["dagster/code_version"] == table.code_version
        assert Path(_value(metadata, M.URI).removeprefix("file:")).is_dir()


def test_column_descriptions_reach_the_column_schema(demo_project: Project, demo_run) -> None:
    described = demo_project.tables["clean_orders"].spec.columns
    assert described  # the demo describes some of its columns
    schema = _value(_metadata(demo_run, "clean_orders"), M.COLUMN_SCHEMA)
    got = {c.name: c.description for c in schema.columns}
    assert {name: got[name] for name in described} == described
    assert got["order_date"] is None  # an undescribed column has none


def test_row_counts_and_sums_match_independent_queries(
    spark: SparkSession, demo_project: Project, demo_run
) -> None:
    for table in _unpartitioned(demo_project):
        metadata = _metadata(demo_run, table.name)
        frame = spark.table(table.qualified_name)
        assert _value(metadata, M.ROW_COUNT) == frame.count()
        summed = table.spec.metrics.sum
        for field in frame.schema:
            name = field.name
            expected_nulls = frame.where(frame[f"`{name}`"].isNull()).count()
            assert _value(metadata, M.NULL_COUNT + name) == expected_nulls, name
            is_numeric = field.dataType.simpleString().startswith(NUMERIC)
            if is_numeric and (summed is None or name in summed):
                expected = spark.sql(
                    f"SELECT sum(`{name}`) AS s FROM {table.qualified_name}"
                ).first().s
                got = _value(metadata, M.SUM + name)
                assert got == pytest.approx(float(expected)), (table.name, name)
            elif not is_numeric or name not in (summed or []):
                assert M.SUM + name not in metadata


def test_decimal_sums_are_exact_in_metric_log(spark: SparkSession, settings, demo_run) -> None:
    run_id = demo_run.run_id
    logged = spark.sql(
        f"SELECT value_text FROM {settings.log_db}.metric_log "
        f"WHERE run_id = '{run_id}' AND asset = 'clean_orders' AND metric = 'sum/amount'"
    ).first()
    expected = spark.sql("SELECT sum(amount) AS s FROM etl_demo.clean_orders").first().s
    assert isinstance(expected, Decimal)
    assert Decimal(logged.value_text) == expected
    assert logged.value_text == str(expected)


def test_metric_log_has_one_row_per_metric_per_materialization(
    spark: SparkSession, settings, demo_project: Project, demo_run
) -> None:
    run_id = demo_run.run_id
    rows = spark.sql(
        f"SELECT asset, metric, count(*) AS n FROM {settings.log_db}.metric_log "
        f"WHERE run_id = '{run_id}' GROUP BY asset, metric"
    ).collect()
    assert rows and all(r.n == 1 for r in rows)
    for table in _unpartitioned(demo_project):
        metadata = _metadata(demo_run, table.name)
        expected = {k for k in metadata if k not in (
            M.TABLE_NAME, M.COLUMN_SCHEMA, M.COLUMN_LINEAGE, M.URI)}
        logged = {r.metric for r in rows if r.asset == table.name}
        assert logged == expected, table.name
        row_count = [r for r in rows if r.asset == table.name and r.metric == M.ROW_COUNT]
        assert len(row_count) == 1


def test_run_log_success_rows(spark: SparkSession, settings, demo_project, demo_run) -> None:
    rows = spark.sql(
        f"SELECT * FROM {settings.log_db}.run_log WHERE run_id = '{demo_run.run_id}'"
    ).collect()
    assert sorted(r.asset for r in rows) == sorted(t.name for t in _unpartitioned(demo_project))
    for row in rows:
        table = demo_project.tables[row.asset]
        assert row.status == "SUCCESS"
        assert row.domain == "sales"
        assert row.code_version == table.code_version
        assert row.row_count == spark.table(table.qualified_name).count()
        assert row.bytes > 0 and row.duration_s > 0 and row.error_message is None
        assert row.finished_at >= row.started_at
        assert row.log_date == row.finished_at.date()


def test_rows_in_counts_rows_read_from_the_source(demo_run, demo_project) -> None:
    source = Path(demo_project.sources["raw_orders"].resolved_path)
    data_lines = len(source.read_text(encoding="utf-8").splitlines()) - 1
    assert _value(_metadata(demo_run, "clean_orders"), M.ROWS_IN) == data_lines


def test_categorical_and_unicode_and_date_metrics(spark: SparkSession, demo_run) -> None:
    orders = _metadata(demo_run, "clean_orders")
    codes = sorted(
        r.category_code for r in spark.sql(
            "SELECT DISTINCT category_code FROM etl_demo.clean_orders "
            "WHERE category_code IS NOT NULL").collect()
    )
    assert _value(orders, M.CATEGORIES + "category_code") == codes
    assert _value(orders, M.CATEGORY_COUNT + "category_code") == len(codes)
    assert _value(orders, M.CATEGORIES_CAPPED + "category_code") is False
    bounds = spark.sql(
        "SELECT min(order_date) AS lo, max(order_date) AS hi FROM etl_demo.clean_orders"
    ).first()
    assert _value(orders, M.MIN + "order_date") == bounds.lo.isoformat()
    assert _value(orders, M.MAX + "order_date") == bounds.hi.isoformat()
    stamps = spark.sql(
        "SELECT min(updated_at) AS lo, max(updated_at) AS hi FROM etl_demo.clean_orders"
    ).first()
    # Session time zone is UTC, so Spark's naive datetimes are UTC wall-clock times.
    assert _value(orders, M.MIN + "updated_at").startswith(stamps.lo.isoformat())
    assert _value(orders, M.MAX + "updated_at").startswith(stamps.hi.isoformat())
    enriched = _metadata(demo_run, "enriched_categories")
    nulls = spark.sql(
        "SELECT count_if(`사용일자` IS NULL) AS n FROM etl_demo.enriched_categories"
    ).first().n
    assert _value(enriched, M.NULL_COUNT + "사용일자") == nulls
    assert M.MIN + "사용일자" in enriched


def test_hints_broadcast_repartition_coalesce_cache(
    spark: SparkSession, demo_project: Project, demo_run
) -> None:
    table = demo_project.tables["enriched_categories"]
    previous = spark.conf.get("spark.sql.autoBroadcastJoinThreshold")
    spark.conf.set("spark.sql.autoBroadcastJoinThreshold", "-1")
    try:
        register_inputs(spark, demo_project, table)
        plan = build_frame(spark, table)._jdf.queryExecution().executedPlan().toString()
    finally:
        spark.conf.set("spark.sql.autoBroadcastJoinThreshold", previous)
    assert "BroadcastHashJoin" in plan or "BroadcastNestedLoopJoin" in plan

    def data_files(name: str) -> list[Path]:
        uri = _value(_metadata(demo_run, name), M.URI).removeprefix("file:")
        return list(Path(uri).glob("part-*.parquet"))

    assert len(data_files("clean_orders")) == 4
    assert len(data_files("final_output")) == 1
    assert spark.catalog.isCached("etl_demo.clean_orders")


def test_rematerialize_is_idempotent_and_keeps_one_load_folder(
    spark: SparkSession, settings, demo_project: Project, demo_run, demo_instance
) -> None:
    before = spark.table("etl_demo.category_totals").collect()
    result = materialize_project(
        demo_project, settings, demo_instance, selection=["category_totals"]
    )
    assert result.success
    after = spark.table("etl_demo.category_totals")
    assertDataFrameEqual(after, before)
    uri = Path(_value(_metadata(result, "category_totals"), M.URI).removeprefix("file:"))
    assert [p.name for p in uri.parent.iterdir()] == [uri.name]
    assert uri.parent.name == "category_totals" + LOADS_SUFFIX


def test_cli_status_and_sql(spark: SparkSession, demo_project, demo_run, capsys) -> None:
    from etl_assets.tools.cli import main

    assert main(["status"], spark=spark) == 0
    out = capsys.readouterr().out
    for name in [t.name for t in _unpartitioned(demo_project)]:
        line = next(line for line in out.splitlines() if line.startswith(name + " "))
        assert "SUCCESS" in line
    assert main(["status", "--json"], spark=spark) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {r["asset"] for r in records} >= set(demo_project.tables)  # shared log db
    assert {r["status"] for r in records if r["asset"] == "daily_sales"} == {"NEVER RUN"}
    assert main(["sql", "SELECT category_code, order_count FROM etl_demo.category_totals "
                 "ORDER BY category_code", "--json"], spark=spark) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    expected = spark.sql("SELECT sum(order_count) AS n FROM etl_demo.category_totals").first().n
    assert sum(r["order_count"] for r in rows) == expected
    assert main(["sql", "SELECT * FROM no_such_table"], spark=spark) == 1
    assert "no_such_table" in capsys.readouterr().err.lower()


def test_log_appends_from_concurrent_writers_all_land(spark: SparkSession) -> None:
    """Writers appending to one log table at once each keep their rows.

    With `insertInto`, every job staged its files in the table folder's shared `_temporary`,
    and one writer's commit deleted another's files (seen on the cluster profile).
    """
    from concurrent.futures import ThreadPoolExecutor
    from datetime import datetime, timedelta, timezone

    from etl_assets.core.records import RunRecord
    from etl_assets.engine.hive_log import RUN_LOG, HiveLog

    log = HiveLog(spark, "etl_log_concurrent")
    start = datetime(2026, 2, 1, tzinfo=timezone.utc)

    def write(writer: int) -> None:
        for i in range(4):
            finished = start + timedelta(days=i % 2)  # two partitions, new and existing
            log.write_load(RunRecord(
                run_id=f"w{writer}-{i}", asset="a", domain="d", table_name="d.a",
                status="SUCCESS", started_at=finished, finished_at=finished, code_version="1"))

    with ThreadPoolExecutor(max_workers=3) as pool:
        list(pool.map(write, range(3)))
    rows = spark.sql(f"SELECT run_id, log_date FROM {log.table(RUN_LOG)}").collect()
    assert sorted(r.run_id for r in rows) == sorted(f"w{w}-{i}" for w in range(3) for i in range(4))
    assert {str(r.log_date) for r in rows} == {"2026-02-01", "2026-02-02"}
    spark.sql("DROP DATABASE etl_log_concurrent CASCADE")
