"""Anomaly, schema and category checks, judged from the Dagster instance's history.

The first tests run the check logic on hand-built points (no Spark, no Dagster run). The rest
materialize small tables for real, with a history seeded through runless materializations
(what an external loader or a backfill reports), and read the results the way a user does:
check evaluations in Dagster and rows in `etl_log.check_log`.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import types as T

from etl_assets.core import metric_names as M
from etl_assets.core.specs import load_project
from etl_assets.orchestration import checks as C
from etl_assets.orchestration import metadata as MD
from etl_assets_tests.helpers import execute_checks_only, materialize_project, write_spec

HISTORY = [1000, 1012, 990, 1005, 998, 1010, 1003]


def _point(i: int, rows: float, **extra) -> C.Point:
    return C.Point(storage_id=i, run_id=f"r{i}", timestamp=1_760_000_000 + i * 86400,
                   partition=None, metadata={M.ROW_COUNT: rows, **extra})


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> object:
    folder = tmp_path_factory.mktemp("pure")
    write_spec(folder, """
database: t_pure
sources: {src: {format: parquet, path: /nowhere}}
tables:
  - name: orders
    inputs: [src]
    sql: SELECT * FROM src
    metrics: {categorical: [code]}
    checks:
      columns: {ignored: {enabled: false}}
""")
    return load_project(folder).tables["orders"]


def test_row_count_drop_fails_with_numbers_a_human_can_judge(table) -> None:
    history = [_point(i, v) for i, v in enumerate(HISTORY)]
    outcome = C.row_count_outcome(table, _point(99, 412), history, set())
    assert not outcome.passed and outcome.status == "anomaly"
    assert outcome.value == 412 and outcome.baseline == pytest.approx(1003)
    assert outcome.lower > 412 and outcome.upper > outcome.lower
    assert "412" in outcome.description and "below" in outcome.description
    assert outcome.metadata["points_used"] == len(HISTORY)
    assert outcome.metadata["pct_change"] == pytest.approx((412 - 1003) / 1003 * 100, abs=0.5)


def test_row_count_normal_passes_and_cold_start_says_so(table) -> None:
    history = [_point(i, v) for i, v in enumerate(HISTORY)]
    assert C.row_count_outcome(table, _point(99, 1001), history, set()).passed
    cold = C.row_count_outcome(table, _point(99, 5), history[:2], set())
    assert cold.passed and cold.status == "insufficient_history"
    assert "2 of 5" in cold.description


def test_flagged_past_point_stays_out_of_the_baseline(table) -> None:
    values = HISTORY[:3] + [10, 12] + HISTORY[3:]  # a two-day incident, flagged back then
    history = [_point(i, v) for i, v in enumerate(values)]
    outcome = C.row_count_outcome(table, _point(99, 1000), history, {3, 4})
    assert outcome.passed and outcome.baseline == pytest.approx(1003)


def test_sums_check_lists_every_column_and_names_the_flagged(table) -> None:
    history = [_point(i, v, **{"sum/amount": v * 2.5, "sum/ignored": 1.0, "sum/qty": 50.0})
               for i, v in enumerate(HISTORY)]
    latest = _point(99, 1000, **{"sum/amount": 100.0, "sum/ignored": 900.0, "sum/qty": 51.0})
    outcome = C.sums_outcome(table, latest, history, {})
    assert not outcome.passed and outcome.metric == "sum/amount"
    assert outcome.metadata[C.FLAGGED_METRICS] == ["sum/amount"]
    assert outcome.metadata["columns_checked"] == 2  # 'ignored' is turned off in the spec
    assert "sum/amount" in outcome.description and "qty" not in outcome.description


def test_unmeasured_sums_on_a_first_load_are_not_anomalies(table) -> None:
    # A double column holding +inf and -inf sums to NaN; an empty load's sums are null.
    latest = _point(0, 3, **{"sum/amount": float("nan"), "sum/qty": None})
    outcome = C.sums_outcome(table, latest, [], {})
    assert outcome.passed and outcome.status == "not_measured", outcome.description
    assert "not measured" in outcome.description
    # Beside a measured column, the description still counts it.
    mixed = _point(0, 3, **{"sum/amount": float("nan"), "sum/qty": 51.0})
    history = [_point(i, v, **{"sum/amount": float("nan"), "sum/qty": 50.0})
               for i, v in enumerate(HISTORY, start=1)]
    outcome = C.sums_outcome(table, mixed, history, {})
    assert outcome.passed and outcome.status == "ok"
    assert outcome.description == "all 2 column sums within their bands (1 not measured)"
    # Once a sum was measured, losing it is an anomaly.
    measured = [_point(i, v, **{"sum/amount": v * 2.5}) for i, v in enumerate(HISTORY, start=1)]
    outcome = C.sums_outcome(table, _point(99, 1000, **{"sum/amount": None}), measured, {})
    assert not outcome.passed and "sum/amount value is missing/NaN" in outcome.description


def test_schema_and_category_changes(table) -> None:
    before = dg.TableSchema(columns=[dg.TableColumn("id", "bigint"), dg.TableColumn("v", "int")])
    after = dg.TableSchema(columns=[dg.TableColumn("id", "bigint"), dg.TableColumn("v", "string"),
                                    dg.TableColumn("w", "double")])
    previous = _point(1, 10, **{M.COLUMN_SCHEMA: before, "categories/code": ["A", "B"]})
    latest = _point(2, 10, **{M.COLUMN_SCHEMA: after, "categories/code": ["B", "C"]})
    schema = C.schema_outcome(table, latest, [previous])
    assert not schema.passed and schema.metadata["added"] == {"w": "double"}
    assert schema.metadata["retyped"] == {"v": ["int", "string"]}
    assert C.schema_outcome(table, latest, [_point(1, 10, **{M.COLUMN_SCHEMA: after})]).passed
    # A newer point without the metadata (a runless event) does not hide the older one.
    category = C.category_outcome(table, latest, [previous, _point(3, 10)])
    assert not category.passed
    assert category.metadata["columns"]["code"] == {"new": ["C"], "vanished": ["A"]}
    assert "C" in category.description and "A" in category.description
    assert C.category_outcome(table, latest, []).status == "insufficient_history"


def _categories(values: list[str], count: int, digest: str, capped: bool = True) -> dict:
    return {M.CATEGORIES + "code": values, M.CATEGORY_COUNT + "code": count,
            M.CATEGORY_HASH + "code": digest, M.CATEGORIES_CAPPED + "code": capped}


def test_a_capped_category_set_is_judged_by_its_hash(table) -> None:
    listed = [f"c{i:04d}" for i in range(100)]
    previous = _point(1, 10, **_categories(listed, 50_000, "00000000000000aa"))
    replaced = _point(2, 10, **_categories(listed, 50_000, "00000000000000bb"))
    outcome = C.category_outcome(table, replaced, [previous])
    assert not outcome.passed and outcome.status == "changed"
    assert outcome.description == "code: capped: 50,000 values, set changed"
    assert outcome.metadata["columns"]["code"]["set_changed"] is True
    same = _point(3, 10, **_categories(listed, 50_000, "00000000000000aa"))
    outcome = C.category_outcome(table, same, [previous])
    assert outcome.passed and outcome.description == "code: capped: 50,000 values, set unchanged"


def test_wide_metadata_round_trips_to_the_per_column_metrics_the_checks_read() -> None:
    def schema(width: int) -> T.StructType:
        return T.StructType([T.StructField("name", T.StringType())] + [
            T.StructField(f"n{i}", T.DecimalType(38, 2)) for i in range(width - 1)])

    def metrics(width: int) -> dict:
        values = {M.ROW_COUNT: 7, M.NULL_COUNT + "name": 1, M.CATEGORIES + "name": ["a"]}
        for i in range(width - 1):
            values[M.NULL_COUNT + f"n{i}"] = 0
            values[M.SUM + f"n{i}"] = None if i == 0 else Decimal(i) / 4  # n0 overflowed
        return values

    narrow = MD.metric_metadata(metrics(M.WIDE_TABLE_COLUMNS), schema(M.WIDE_TABLE_COLUMNS))
    assert M.COLUMN_METRICS not in narrow and M.SUM + "n48" in narrow
    wide_metrics = metrics(M.WIDE_TABLE_COLUMNS + 1)
    wide = MD.metric_metadata(wide_metrics, schema(M.WIDE_TABLE_COLUMNS + 1))
    assert len([k for k in wide if k.startswith(M.SUM)]) == M.WIDE_TABLE_SUMS
    assert not any(k.startswith(M.NULL_COUNT) for k in wide)
    assert wide[M.COLUMNS_WITH_NULLS].value == 1 and wide[M.NULL_COUNT_TOTAL].value == 1
    assert wide[M.CATEGORIES + "name"].value == ["a"]  # declared metrics keep their keys
    expanded = MD.expand_column_metrics({k: v.value for k, v in wide.items()})
    for name, value in wide_metrics.items():
        if name.startswith((M.SUM, M.NULL_COUNT)):
            assert expanded[name] == (None if value is None else float(value)), name
    assert M.SUM + "name" not in expanded  # a column that is not summed stays unsummed


@pytest.mark.parametrize("partition, partial, key", [
    (True, False, M.PARTITION_ROW_COUNT),  # a partition's load: the partition's rows
    (False, True, M.ROWS_WRITTEN),  # an append to an unpartitioned asset's table
    (False, False, None),  # a load that writes the whole table: its rows are the table's
])
def test_row_count_is_the_tables_and_the_checks_still_judge_the_loads_rows(
    partition: bool, partial: bool, key: str | None
) -> None:
    load = {M.ROW_COUNT: dg.MetadataValue.int(30), M.SUM + "amount": dg.MetadataValue.float(2.5)}
    recorded = MD.with_table_rows(load, 130 if key else None, partition=partition,
                                  partial=partial)
    if key is None:
        assert recorded == load
    else:
        assert recorded[M.ROW_COUNT].value == 130 and recorded[key].value == 30
        # Unknown table rows: no row count rather than the load's under the table's key.
        unknown = MD.with_table_rows(load, None, partition=partition, partial=partial)
        assert M.ROW_COUNT not in unknown and unknown[key].value == 30
    judged = MD.load_metrics({k: v.value for k, v in recorded.items()})
    assert judged[M.ROW_COUNT] == 30 and judged[M.SUM + "amount"] == 2.5
    # Materializations recorded before the table's rows were reported hold the load's.
    assert MD.load_metrics({M.ROW_COUNT: 30})[M.ROW_COUNT] == 30


def test_history_read_is_bounded_by_the_window(table) -> None:
    assert C.history_limit(table) == 2 * 30 + 5 + 1


# --- Dagster runs on real Spark ------------------------------------------------------------

SPEC = """
database: {db}
sources:
  src: {{format: parquet, path: {source}}}
tables:
  - name: loads
    inputs: [src]
    sql: SELECT id, v, code FROM src
    metrics: {{categorical: [code]}}
    checks:
      row_count: {{severity: ERROR, blocking: true}}
  - name: downstream
    inputs: [loads]
    sql: SELECT code, count(*) AS n FROM loads GROUP BY code
"""


def _project(spark: SparkSession, tmp_path: Path, db: str, rows: int, codes: str = "ABC"):
    source = tmp_path / f"src_{rows}_{codes}"
    if not source.exists():  # the same rows again: write them once per test
        spark.range(rows).selectExpr(
            "id", "CAST(id % 10 AS INT) AS v",
            f"substr('{codes}', CAST(id % {len(codes)} AS INT) + 1, 1) AS code",
        ).write.parquet(str(source))
    folder = tmp_path / f"spec_{rows}_{codes}"
    write_spec(folder, SPEC.format(db=db, source=source))
    return load_project(folder)


def _seed(instance: dg.DagsterInstance, values: list[int]) -> None:
    for value in values:
        instance.report_runless_asset_event(dg.AssetMaterialization(
            "loads", metadata={M.ROW_COUNT: value, "sum/v": float(value * 4.5)}))


def _evaluations(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()
            if e.asset_key == dg.AssetKey("loads")}


def test_a_failed_check_log_write_fails_the_check_step(
    spark: SparkSession, settings, tmp_path: Path, instance
) -> None:
    # A log database whose check_log cannot take the rows (not partitioned by log_date).
    broken = dataclasses.replace(settings, log_db="t_broken_log")
    spark.sql("CREATE DATABASE IF NOT EXISTS t_broken_log")
    spark.sql("CREATE TABLE IF NOT EXISTS t_broken_log.check_log (x INT) USING parquet")
    project = _project(spark, tmp_path, "t_chk_broken", 100)
    result = materialize_project(project, broken, instance, selection=["loads"],
                                 raise_on_error=False)
    failures = {e.step_key: e for e in result.all_events if e.is_step_failure}
    # The checks are judged inside the load's own step, which writes their check_log rows
    # there: that step fails.
    assert set(failures) == {"loads"}, failures
    error = failures["loads"].step_failure_data.error.to_string()
    assert "LogWriteError" in error and "to t_broken_log.check_log failed" in error, error
    assert "table is not partitioned" in error  # Spark's own words follow
    assert not result.success


def test_a_verdict_that_cannot_be_reached_is_an_error_and_the_load_stands(
    spark: SparkSession, settings, tmp_path: Path, instance, monkeypatch
) -> None:
    from etl_assets.orchestration import assets

    def unreadable(*args, **kwargs):
        raise RuntimeError("event log unreadable")

    # Only the judging after the publish fails (the blocking audit before it still works).
    monkeypatch.setattr(assets, "judge_unrecorded", unreadable)
    result = materialize_project(_project(spark, tmp_path, "t_chk_unjudged", 100), settings,
                                 instance, selection=["loads"])
    assert result.success and len(result.get_asset_materialization_events()) == 1
    evaluations = _evaluations(result)
    assert evaluations[C.ROW_COUNT_CHECK].passed  # the audit's own verdict
    sums = evaluations[C.SUMS_CHECK]
    assert not sums.passed and sums.severity == dg.AssetCheckSeverity.WARN
    assert sums.metadata[C.STATUS].value == "error"
    assert "event log unreadable" in sums.description
    assert spark.table("t_chk_unjudged.loads").count() == 100
    logged = spark.sql(f"SELECT status FROM {settings.log_db}.check_log WHERE run_id = "
                       f"'{result.run_id}' AND check_name = '{C.SUMS_CHECK}'").collect()
    assert [r.status for r in logged] == ["error"]


def test_cold_start_then_drop_fails_blocks_downstream_and_is_logged(
    spark: SparkSession, settings, tmp_path: Path, instance
) -> None:
    first = materialize_project(_project(spark, tmp_path, "t_chk", 1000), settings, instance)
    cold = _evaluations(first)
    assert set(cold) == {C.ROW_COUNT_CHECK, C.SUMS_CHECK, C.NULLS_CHECK, C.SCHEMA_CHECK,
                         C.CATEGORY_CHECK}
    assert all(e.passed for e in cold.values())
    assert cold[C.ROW_COUNT_CHECK].metadata[C.STATUS].value == "insufficient_history"
    assert "insufficient history" in cold[C.ROW_COUNT_CHECK].description

    _seed(instance, HISTORY)
    normal = materialize_project(_project(spark, tmp_path, "t_chk", 1000), settings, instance)
    assert normal.success and _evaluations(normal)[C.ROW_COUNT_CHECK].passed

    shrunk = materialize_project(_project(spark, tmp_path, "t_chk", 300), settings, instance,
                                 raise_on_error=False)
    evaluation = _evaluations(shrunk)[C.ROW_COUNT_CHECK]
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert evaluation.metadata["value"].value == 300
    assert evaluation.metadata["baseline"].value == pytest.approx(1000, rel=0.02)
    assert evaluation.metadata["lower"].value > 300
    assert "below" in evaluation.description and "load held back" in evaluation.description
    # The blocking ERROR check judged the staged load: held back, nothing downstream ran.
    assert shrunk.get_asset_materialization_events() == []
    assert not shrunk.success
    assert spark.table("t_chk.loads").count() == 1000

    rows = spark.sql(
        f"SELECT * FROM {settings.log_db}.check_log WHERE run_id = '{shrunk.run_id}'"
    ).collect()
    by_check = {r.check_name: r for r in rows}
    assert set(by_check) == set(_evaluations(shrunk))
    logged = by_check[C.ROW_COUNT_CHECK]
    assert logged.passed is False and logged.severity == "ERROR" and logged.status == "anomaly"
    assert logged.value == 300 and logged.baseline == pytest.approx(evaluation.metadata[
        "baseline"].value)
    assert logged.description == evaluation.description
    assert logged.target_run_id == shrunk.run_id

    # The day after the incident: back to normal; the held drop never entered the history.
    after = materialize_project(_project(spark, tmp_path, "t_chk", 1000), settings, instance)
    assert after.success and _evaluations(after)[C.ROW_COUNT_CHECK].passed


def test_checks_alone_judge_a_runless_materialization_and_category_change(
    spark: SparkSession, settings, tmp_path: Path, instance
) -> None:
    project = _project(spark, tmp_path, "t_chk2", 1000)
    materialize_project(project, settings, instance)
    _seed(instance, HISTORY + [12])  # an external load reported 12 rows
    result = execute_checks_only(project, settings, instance, "loads")
    evaluations = _evaluations(result)
    assert {e.asset_key for e in result.get_asset_materialization_events()} == set()
    row_count = evaluations[C.ROW_COUNT_CHECK]
    assert not row_count.passed and row_count.metadata["value"].value == 12
    latest = instance.fetch_materializations(dg.AssetKey("loads"), limit=1).records[0]
    assert row_count.target_materialization_data.storage_id == latest.storage_id

    changed = materialize_project(_project(spark, tmp_path, "t_chk2", 1000, codes="ABD"),
                                  settings, instance, selection=["loads"])
    category = _evaluations(changed)[C.CATEGORY_CHECK]
    assert not category.passed and category.severity == dg.AssetCheckSeverity.WARN
    assert "D" in category.description and "C" in category.description
    assert changed.success  # a failed WARN check does not fail the run
    # Judged in the load's own step (no step of checks), on the materialization it recorded,
    # against the ones before it.
    assert {e.step_key for e in changed.all_events if e.is_step_start} == {"loads"}
    newest = instance.fetch_materializations(dg.AssetKey("loads"), limit=1).records[0]
    assert newest.run_id == changed.run_id
    assert category.target_materialization_data.storage_id == newest.storage_id
    # sum/v (4,500) judged against the seeded 4,455-4,554; only sum/id has no history
    sums = _evaluations(changed)[C.SUMS_CHECK]
    assert sums.passed and "(1 with insufficient history)" in sums.description, sums.description


CODES_SPEC = """
database: t_chk_capped
sources:
  src: {{format: parquet, path: {source}}}
tables:
  - name: codes
    inputs: [src]
    sql: SELECT id, code FROM src
    metrics: {{categorical: [code], category_cap: 10}}
"""


def test_a_value_replaced_beyond_the_category_cap_is_a_change(
    spark: SparkSession, settings, tmp_path: Path, instance
) -> None:
    # 5,000 distinct codes, 10 listed: replacing the last code (beyond the cap in sort order)
    # by a new one keeps the list and the count; the set's hash, observed in the write, moves.
    def load(last: str) -> dg.AssetCheckEvaluation:
        source = tmp_path / f"src_{last}"
        if not source.exists():  # the same rows again: write them once
            spark.range(5000).selectExpr(
                "id", f"IF(id = 4999, '{last}', format_string('v%04d', id)) AS code"
            ).write.parquet(str(source))
        folder = write_spec(tmp_path / f"spec_{last}", CODES_SPEC.format(source=source)).parent
        result = materialize_project(load_project(folder), settings, instance)
        (event,) = result.asset_materializations_for_node("codes")
        assert event.metadata[M.CATEGORY_COUNT + "code"].value == 5000
        assert event.metadata[M.CATEGORIES_CAPPED + "code"].value is True
        return next(e for e in result.get_asset_check_evaluations()
                    if e.check_name == C.CATEGORY_CHECK)

    assert load("v4999").passed  # the first load: nothing to compare with
    same = load("v4999")
    assert same.passed and same.description == "code: capped: 5,000 values, set unchanged"
    replaced = load("v5000")
    assert not replaced.passed
    assert replaced.description == "code: capped: 5,000 values, set changed"


def test_null_fraction_jump_is_flagged_even_when_the_row_count_is_normal(table) -> None:
    # amount was ~0.1% null for weeks; today 40% of the rows have no amount.
    history = [_point(i, v, **{"null_count/amount": round(v * 0.001), "null_count/id": 0})
               for i, v in enumerate(HISTORY)]
    latest = _point(99, 1000, **{"null_count/amount": 400, "null_count/id": 0})
    assert C.row_count_outcome(table, latest, history, set()).passed
    outcome = C.null_fraction_outcome(table, latest, history, {})
    assert not outcome.passed and outcome.status == "anomaly"
    assert outcome.metadata[C.FLAGGED_METRICS] == ["null_fraction/amount"]
    assert "null_fraction/amount 0.4 is" in outcome.description
    assert outcome.metadata["columns_checked"] == 2
    normal = _point(99, 1000, **{"null_count/amount": 1, "null_count/id": 0})
    assert C.null_fraction_outcome(table, normal, history, {}).passed


def test_null_fraction_of_an_empty_load_is_not_measured(table) -> None:
    history = [_point(i, v, **{"null_count/amount": 0}) for i, v in enumerate(HISTORY)]
    outcome = C.null_fraction_outcome(table, _point(99, 0, **{"null_count/amount": 0}),
                                      history, {})
    assert outcome.passed and outcome.status == "not_measured"
