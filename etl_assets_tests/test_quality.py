"""Data-quality rules (`quality:`), from the spec to the asset checks and `check_log`.

The first tests need no Spark: malformed rules fail at load with file, table, rule and field
named, and the verdict arithmetic is exact. The rest load small crafted tables for real (nulls,
NaN, decimals, timestamps with offsets, a Korean column name, an empty table) and read the
results as a user does: check evaluations in Dagster, rows of `<table>`, `<table>__rejected`
and `etl_log.check_log`, and the Spark jobs the load ran.
"""

from __future__ import annotations

import logging
import textwrap
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual

from etl_assets.core.load_request import LoadError
from etl_assets.core.specs import QualityRuleSpec, SpecError, load_project
from etl_assets.engine import quality as Q
from etl_assets.engine.load import load_table
from etl_assets.orchestration import quality_checks as QC
from etl_assets_tests.helpers import execute_checks_only, materialize_project, write_spec

# --- spec validation, no Spark ----------------------------------------------------------------

BASE = """
database: t_q
sources:
  src: {{format: parquet, path: /nowhere, schema: "id INT, code STRING"}}
tables:
  - name: orders
    inputs: [src]
    sql: SELECT id, code, amount FROM src
    quality:
{rules}
"""

MALFORMED = [
    ("- {not_nul: [id]}", ["rule #1: field 'not_nul'", "unknown field", "did you mean 'not_null'"]),
    ("- {not_null: [id], unique: [id]}", ["rule #1", "exactly one of", "got not_null, unique"]),
    ("- {not_null: [id], severity: WARN, blocking: true}",
     ["rule #1 'not_null'", "blocking needs severity: ERROR"]),
    ("- {not_null: [id]}\n- {unique: [id], on_fail: quarantine}",
     ["rule #2 'unique'", "quarantine applies to row-level rules"]),
    ("- {range: {column: amount, min: 5, max: 1}}",
     ["rule #1 'range'", "field 'range'", "min 5 is above max 1"]),
    ("- {range: {column: amount}}", ["field 'range'", "range needs min, max or both"]),
    ("- {pattern: {column: code, regex: '[a-'}}", ["field 'pattern.regex'", "does not compile"]),
    ("- {freshness: {column: id, max_age: 26 hours}}",
     ["field 'freshness.max_age'", "must look like 90s"]),
    ("- {relationship: {column: code, to: codes}}",
     ["field 'relationship.to'", "<table>.<column>"]),
    ("- {range: {column: amount, min: 0}, max_null_fraction: 0.1}",
     ["max_null_fraction applies to not_null"]),
    ("- {not_null: [id], max_null_fraction: 1.5}",
     ["field 'max_null_fraction'", "less than or equal to 1"]),
    ("- {sql: 'SELECT * FROM orders WHERE id < 0'}", ["sql must read the table as {table}"]),
    ("- {not_null: [idd]}",
     ["quality rule #1 'not_null_idd'", "field 'not_null'", "column 'idd' is not in"]),
    ("- {accepted_values: {column: status, values: [a]}}",
     ["rule #1 'accepted_values_status'", "field 'accepted_values.column'", "'status'"]),
    ("- {relationship: {column: code, to: nothing.code}}",
     ["field 'relationship.to'", "'nothing' names no table or source"]),
    ("- {relationship: {column: code, to: src.kode}}",
     ["field 'relationship.to'", "column 'kode' is not in src's columns"]),
    ("- {not_null: [id]}\n- {not_null: [id], severity: ERROR}",
     ["rule #2 'not_null_id'", "also rule #1's"]),
    ("- {not_null: [id], name: row_count_anomaly}", ["is the name of an anomaly check"]),
    ("- {not_null: [id], name: 'bad name'}", ["field 'name'", "letters, digits and _"]),
    ("- {sql: 'SELECT * FROM {table} JOIN other USING (id)'}",
     ["field 'sql'", "reads 'other', which names no table or source"]),
]


@pytest.mark.parametrize(("rules", "words"), MALFORMED, ids=[m[0][:40] for m in MALFORMED])
def test_malformed_rule_fails_at_load_naming_file_table_rule_and_field(
    tmp_path: Path, rules: str, words: list[str]
) -> None:
    path = write_spec(tmp_path, BASE.format(rules=textwrap.indent(rules, "      ")))
    with pytest.raises(SpecError) as caught:
        load_project(tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{path}:") and "table 'orders'" in message, message
    for word in words:
        assert word in message, f"{word!r} not in: {message}"


def test_rules_load_with_default_names_severity_and_thresholds(tmp_path: Path) -> None:
    rules = """- {not_null: [id, code], max_null_fraction: 0.05}
- {unique: [id, code], severity: ERROR, blocking: true}
- {range: {column: amount, min: 0}, on_fail: quarantine, max_invalid_fraction: 0.01}
- {sql: 'SELECT * FROM {table} WHERE amount > 1000'}
- {row_count: {min: 1}, name: not_empty}
"""
    write_spec(tmp_path, BASE.format(rules=textwrap.indent(rules, "      ")))
    table = load_project(tmp_path).tables["orders"]
    found = Q.table_rules(table)
    assert [r.name for r in found] == ["not_null_id_code", "unique_id_code", "range_amount",
                                       "sql_4", "not_empty"]
    assert [r.spec.severity for r in found] == ["WARN", "ERROR", "WARN", "WARN", "WARN"]
    assert [r.computed for r in found] == [Q.IN_WRITE, Q.BY_QUERY, Q.IN_WRITE, Q.BY_QUERY,
                                           Q.FROM_LOAD]
    assert found[0].spec.allowed_fraction == 0.05 and found[1].spec.allowed_fraction == 0
    specs = {s.name: s for s in QC.quality_check_specs(table)}
    assert specs["unique_id_code"].blocking and not specs["not_null_id_code"].blocking
    assert specs["range_amount"].metadata[Q.RULE] == 'range: {"column": "amount", "min": 0}'


def test_unicode_column_gets_a_stable_valid_check_name() -> None:
    rule = QualityRuleSpec.model_validate({"not_null": ["사용일자"]})
    name = rule.check_name(1)
    assert name.startswith("not_null_c") and name.isascii() and len(name) == len("not_null_c") + 6
    assert QualityRuleSpec.model_validate({"not_null": ["사용일자"]}).check_name(3) == name


def _rule(**spec) -> Q.Rule:
    parsed = QualityRuleSpec.model_validate(spec)
    return Q.Rule(parsed, parsed.check_name(1), 1)


def test_counts_fractions_and_thresholds_are_exact() -> None:
    strict = _rule(not_null=["id"])
    assert Q.judge_count(strict, 0, 1000).passed
    failed = Q.judge_count(strict, 3, 1000, {"id": "id"})
    assert not failed.passed and failed.metadata[Q.VIOLATION_FRACTION] == 0.003 and failed.status == "failed"
    assert failed.description.startswith("3 of 1,000 rows (0.30%): null (or NaN) in id")
    tolerant = _rule(not_null=["id"], max_null_fraction=0.003)
    assert Q.judge_count(tolerant, 3, 1000).passed
    assert not Q.judge_count(tolerant, 4, 1000).passed
    empty = Q.judge_count(_rule(range={"column": "a", "min": 0}), 0, 0)
    assert empty.passed and empty.metadata[Q.VIOLATION_FRACTION] == 0.0


def test_samples_are_capped_in_count_and_size() -> None:
    rows = [{"id": i, "note": "x" * 500, "score": float("nan")} for i in range(9)]
    samples = Q.sample_rows(rows)
    assert len(samples) == Q.SAMPLE_SIZE
    assert len(samples[0]["note"]) == Q.SAMPLE_VALUE_CHARS and samples[0]["score"] is None


def test_freshness_compares_instants_across_time_zones() -> None:
    rule = _rule(freshness={"column": "ts", "max_age": "26h"})
    now = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
    seoul = timezone(timedelta(hours=9))
    # 2026-03-02 09:00 in Seoul is 00:00 UTC: 12 h old.
    fresh = Q._freshness(rule, "ts", datetime(2026, 3, 2, 9, 0, tzinfo=seoul), T.TimestampType(),
                         now)
    assert fresh.passed and fresh.metadata["age_h"] == 12.0
    stale = Q._freshness(rule, "ts", datetime(2026, 3, 1, 9, 0, tzinfo=seoul), T.TimestampType(),
                         now)
    assert not stale.passed and stale.metadata["age_h"] == 36.0
    assert Q._freshness(rule, "d", date(2026, 3, 2), T.DateType(), now).metadata["age_h"] == 12.0
    empty = Q._freshness(rule, "ts", None, T.TimestampType(), now)
    assert not empty.passed and empty.status == "no_data"


# --- real loads on Spark, Hive and Dagster ---------------------------------------------------

ROWS = """
SELECT * FROM VALUES
  (1,    'A',  CAST(10.00 AS DECIMAL(12,2)),  CAST(1.0 AS DOUBLE), '2026-03-01T09:00:00+09:00', '가'),
  (2,    'B',  CAST(20.50 AS DECIMAL(12,2)),  CAST('NaN' AS DOUBLE), '2026-03-01T00:00:00Z',   '나'),
  (3,    NULL, CAST(99.99 AS DECIMAL(12,2)),  CAST(2.0 AS DOUBLE), '2026-02-28T23:59:59Z',     NULL),
  (4,    'Z',  CAST(-1.00 AS DECIMAL(12,2)),  CAST(NULL AS DOUBLE), '2026-03-01T12:00:00Z',    '다'),
  (5,    'A',  CAST(100.01 AS DECIMAL(12,2)), CAST(3.0 AS DOUBLE), '2099-01-01T00:00:00Z',     '라'),
  (6,    'b',  CAST(NULL AS DECIMAL(12,2)),   CAST(4.0 AS DOUBLE), '2026-03-01T12:00:00Z',     '마'),
  (6,    'A',  CAST(5.00 AS DECIMAL(12,2)),   CAST(5.0 AS DOUBLE), '2026-03-01T12:00:00Z',     'x1'),
  (NULL, 'A',  CAST(1.00 AS DECIMAL(12,2)),   CAST(6.0 AS DOUBLE), '2026-03-01T12:00:00Z',     'x2')
AS t(id, code, amount, score, ts_text, `이름`)
"""

RULES_SPEC = """
database: {db}
sources:
  src: {{format: parquet, path: {source}}}
  codes: {{format: parquet, path: {codes}}}
tables:
  - name: judged
    inputs: [src]
    sql: SELECT * FROM src
    quality:
      - {{not_null: [id]}}
      - {{not_null: [score]}}
      - {{not_null: [code], max_null_fraction: 0.2}}
      - {{accepted_values: {{column: code, values: [A, B]}}}}
      - {{range: {{column: amount, min: 0, max: 100}}}}
      - {{range: {{column: score, min: 0}}, name: score_positive}}
      - {{pattern: {{column: 이름, regex: '^[가-힣]$'}}, name: korean_name}}
      - {{range: {{column: ts, min: '2026-03-01T09:00:00+09:00'}}}}
      - {{row_count: {{min: 1, max: 5}}}}
      - {{freshness: {{column: ts, max_age: 1h}}}}
      - {{unique: [id]}}
      - {{unique: [id, code]}}
      - {{relationship: {{column: code, to: codes.code}}}}
      - {{sql: "SELECT * FROM {{table}} WHERE amount > 50 AND code = 'A'", name: big_a}}
"""

EXPECTED = {  # check name: (passed, violations, rows judged)
    "not_null_id": (False, 1, 8),
    "not_null_score": (False, 2, 8),  # a null and a NaN
    "not_null_code": (True, 1, 8),  # 1/8 <= 0.2
    "accepted_values_code": (False, 2, 8),  # 'Z' and 'b'; the null passes
    "range_amount": (False, 2, 8),  # -1.00 and 100.01; 99.99 and the null pass
    "score_positive": (False, 1, 8),  # NaN
    "korean_name": (False, 2, 8),  # 'x1', 'x2'
    "range_ts": (False, 1, 8),  # 23:59:59Z is one second before 09:00+09:00
    "row_count": (False, 1, 8),
    "freshness_ts": (True, 0, 1),  # newest is in 2099
    "unique_id": (False, 2, 7),  # id 6 twice; the null id is not judged
    "unique_id_code": (True, 0, 6),  # keys with a null part are not judged
    "relationship_code": (False, 1, 7),  # 'b' is not in codes; the null is not judged
    "big_a": (False, 1, 8),
}


def _source(spark: SparkSession, tmp_path: Path) -> tuple[Path, Path]:
    source, codes = tmp_path / "src", tmp_path / "codes"
    spark.sql(ROWS).selectExpr("id", "code", "amount", "score", "CAST(ts_text AS TIMESTAMP) AS ts",
                               "`이름`").write.mode("overwrite").parquet(str(source))
    spark.createDataFrame([("A",), ("B",), ("Z",)], "code STRING").write.mode(
        "overwrite").parquet(str(codes))
    return source, codes


def _project(tmp_path: Path, db: str, source: Path, tables: str, folder: str = "spec"):
    """A project reading the parquet `source` as `src`, with the given `tables:` entries."""
    write_spec(tmp_path / folder, f"database: {db}\n"
               f"sources: {{src: {{format: parquet, path: {source}}}}}\n"
               f"tables:\n{textwrap.indent(textwrap.dedent(tables), '  ')}")
    return load_project(tmp_path / folder)


def _evaluations(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    """The quality rules' evaluations of an asset (the anomaly checks have no `computed`)."""
    return {e.check_name: e for e in result.get_asset_check_evaluations()
            if e.asset_key == dg.AssetKey(asset) and Q.COMPUTED in e.metadata}


@pytest.fixture(scope="module")
def source(spark: SparkSession, tmp_path_factory) -> tuple[Path, Path]:
    """The crafted rows and the codes they reference, written once: the tests only read them."""
    return _source(spark, tmp_path_factory.mktemp("source"))


@pytest.fixture(scope="module")
def rules_instance_and_run(settings, source: tuple[Path, Path], tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("rules")
    source, codes = source
    write_spec(tmp_path / "spec", RULES_SPEC.format(db="t_quality", source=source, codes=codes))
    project = load_project(tmp_path / "spec")
    (tmp_path / "dagster").mkdir()
    with dg.DagsterInstance.local_temp(str(tmp_path / "dagster")) as instance:
        result = materialize_project(project, settings, instance)
        yield instance, result


@pytest.fixture(scope="module")
def rules_run(rules_instance_and_run):
    return rules_instance_and_run[1]


def test_the_run_log_warns_once_per_failed_check_and_says_nothing_of_passed_ones(
    rules_instance_and_run,
) -> None:
    instance, result = rules_instance_and_run
    records = instance.all_logs(result.run_id)
    lines = [r.user_message for r in records if r.dagster_event is None]
    evaluations = result.get_asset_check_evaluations()
    failed = {e.check_name for e in evaluations if not e.passed}
    passed = {e.check_name for e in evaluations if e.passed}
    assert failed and passed
    warned = [r.user_message.split(":")[0] for r in records
              if r.dagster_event is None and r.level == logging.WARNING
              and ": FAILED: " in r.user_message]
    assert sorted(warned) == sorted(e.check_name for e in evaluations if not e.passed)
    assert not [line for line in lines if any(line.startswith(f"{name}: ") for name in passed)]
    # Dagster's own event still says each result, with its description.
    messages = [r.user_message for r in records if r.dagster_event is not None
                and r.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert len(messages) == len(evaluations)
    assert any("passed." in m for m in messages) and any("did not pass." in m for m in messages)


def test_every_rule_kind_gives_exact_counts(rules_run) -> None:
    evaluations = _evaluations(rules_run, "judged")
    assert set(evaluations) == set(EXPECTED)
    for name, (passed, violations, rows) in EXPECTED.items():
        evaluation = evaluations[name]
        metadata = {k: v.value for k, v in evaluation.metadata.items()}
        assert evaluation.passed is passed, (name, evaluation.description)
        assert metadata[Q.VIOLATIONS] == violations, (name, evaluation.description)
        assert metadata[Q.ROWS_JUDGED] == rows, name
        assert evaluation.severity == dg.AssetCheckSeverity.WARN
    assert rules_run.success  # failed WARN rules do not fail the run


def test_results_say_where_the_numbers_come_from_and_show_offending_rows(rules_run) -> None:
    evaluations = _evaluations(rules_run, "judged")
    meta = {name: {k: v.value for k, v in e.metadata.items()} for name, e in evaluations.items()}
    assert meta["range_amount"][Q.COMPUTED] == Q.IN_WRITE
    assert meta["unique_id"][Q.COMPUTED] == Q.BY_QUERY
    assert meta["freshness_ts"][Q.COMPUTED] == Q.FROM_LOAD
    assert meta["range_amount"][Q.RULE] == 'range: {"column": "amount", "min": 0, "max": 100}'
    assert meta["range_amount"][Q.VIOLATION_FRACTION] == 0.25
    amounts = sorted(float(r["amount"]) for r in meta["range_amount"][Q.SAMPLE_ROWS])
    assert amounts == [-1.0, 100.01]
    assert sorted(r["이름"] for r in meta["korean_name"][Q.SAMPLE_ROWS]) == ["x1", "x2"]
    assert meta["unique_id"][Q.SAMPLE_ROWS] == [{"id": 6, "rows": 2}]
    assert meta["unique_id"]["duplicate_keys"] == 1
    assert [r["code"] for r in meta["relationship_code"][Q.SAMPLE_ROWS]] == ["b"]
    assert [r["id"] for r in meta["big_a"][Q.SAMPLE_ROWS]] == [5]
    assert evaluations["row_count"].description == "row_count 8 outside [1, 5]"


def test_one_check_log_row_per_rule(spark: SparkSession, settings, rules_run) -> None:
    rows = spark.sql(f"SELECT * FROM {settings.log_db}.check_log "
                     f"WHERE run_id = '{rules_run.run_id}' AND asset = 'judged'").collect()
    by_check = {r.check_name: r for r in rows}
    quality = {k: v for k, v in by_check.items() if v.metric.startswith(Q.OBSERVED_PREFIX)}
    assert set(quality) == set(EXPECTED) and len(rows) == len(by_check)
    logged = quality["not_null_code"]
    assert logged.passed and logged.value == 1 and logged.upper == 1  # floor(0.2 * 8)
    assert logged.metric == "quality/not_null" and logged.severity == "WARN"
    assert quality["range_amount"].status == "failed" and not quality["range_amount"].passed
    assert quality["range_amount"].target_run_id == rules_run.run_id


def test_runtime_unknown_column_fails_the_load_and_keeps_the_table(
    spark: SparkSession, settings, source, tmp_path: Path, instance
) -> None:
    source, _ = source
    table = """
        - name: kept
          inputs: [src]
          sql: SELECT * FROM src
        """
    ok = _project(tmp_path, "t_q_bad", source, table, "ok")
    assert materialize_project(ok, settings, instance).success
    bad = _project(tmp_path, "t_q_bad", source, table + """  quality:
            - {range: {column: amuont, min: 0}}
        """, "bad")
    with pytest.raises(LoadError) as caught:
        load_table(spark, bad, bad.tables["kept"], "run-bad")
    message = str(caught.value)
    for words in ("domain/defs.yaml", "table 'kept'", "quality rule #1 'range_amuont'",
                  "field 'range.column'", "column 'amuont' is not in"):
        assert words in message, message
    assert spark.table("t_q_bad.kept").count() == 8


QUARANTINE = """
    - name: orders
      inputs: [src]
      sql: SELECT id, code, amount, score, ts, `이름` AS name FROM src
      metrics: {categorical: [code]}
      quality:
        - {not_null: [id], on_fail: quarantine}
        - {range: {column: amount, min: 0, max: 100}, on_fail: quarantine}
        - {accepted_values: {column: code, values: [A, B]}}
    """


def test_quarantine_keeps_every_row_exactly_once(
    spark: SparkSession, settings, source, tmp_path: Path, instance
) -> None:
    source, _ = source
    project = _project(tmp_path, "t_quar", source, QUARANTINE)
    result = materialize_project(project, settings, instance)
    loaded = spark.table("t_quar.orders")
    rejected = spark.table("t_quar.orders__rejected")
    everything = spark.read.parquet(str(source)).withColumnRenamed("이름", "name")
    assert loaded.count() == 5 and rejected.count() == 3
    assertDataFrameEqual(loaded.unionByName(rejected.drop(Q.REJECTED_BY)), everything)
    reasons = {r.id: r[Q.REJECTED_BY] for r in rejected.collect()}
    assert reasons == {None: "not_null_id", 4: "range_amount", 5: "range_amount"}
    materialization = result.asset_materializations_for_node("orders")[0].metadata
    assert materialization["dagster/row_count"].value == 5
    assert materialization["rows_rejected"].value == 3
    # Metrics describe the loaded rows only: the quarantined amounts are not in the sum.
    assert materialization["sum/amount"].value == pytest.approx(10 + 20.5 + 99.99 + 5)
    assert materialization["categories/code"].value == ["A", "B", "b"]
    evaluation = _evaluations(result, "orders")["range_amount"]
    assert not evaluation.passed
    assert evaluation.metadata[Q.ROWS_QUARANTINED].value == 2
    assert evaluation.metadata[Q.ROWS_LOADED].value == 5
    # A rerun replaces the table and adds its rejected rows: still nothing lost or doubled.
    materialize_project(project, settings, instance)
    assert spark.table("t_quar.orders").count() == 5
    assert spark.table("t_quar.orders__rejected").count() == 6


def test_rules_in_the_observe_add_no_spark_job(
    spark: SparkSession, source, tmp_path: Path
) -> None:
    source, _ = source
    project = _project(tmp_path, "t_jobs", source, """
        - name: bare
          inputs: [src]
          sql: SELECT * FROM src
        - name: ruled
          inputs: [src]
          sql: SELECT * FROM src
          quality:
            - {not_null: [id, code]}
            - {accepted_values: {column: code, values: [A, B]}}
            - {range: {column: amount, min: 0, max: 100}}
            - {pattern: {column: 이름, regex: '^[가-힣]$'}}
            - {row_count: {min: 1}}
            - {freshness: {column: ts, max_age: 1h}}
        - name: clean
          inputs: [src]
          sql: SELECT * FROM src WHERE id IS NOT NULL
          quality:
            - {not_null: [id]}
            - {range: {column: amount, max: 100}, max_invalid_fraction: 0.5}
        """)
    tracker = spark.sparkContext.statusTracker()
    jobs, sampling = {}, {}
    for name in ("bare", "ruled", "clean"):
        result = load_table(spark, project, project.tables[name], f"run-{name}")
        jobs[name] = len(tracker.getJobIdsForGroup(result.job_group))
        sampling[name] = len(tracker.getJobIdsForGroup(f"{result.job_group}:samples"))
        if name == "ruled":
            assert [o.value for o in result.quality] == [2, 2, 2, 2, 0, 0]
            failed = [o for o in result.quality if not o.passed and o.value]
            # The failed rules' sample rows come from LIMIT queries in their own job group.
            assert [len(o.metadata[Q.SAMPLE_ROWS]) for o in failed] == [2, 2, 2, 2]
            assert {o.metadata[Q.SAMPLES_FROM] for o in failed} == {Q.SAMPLED}
        if name == "clean":
            assert all(o.passed and Q.SAMPLE_ROWS not in o.metadata for o in result.quality)
    assert jobs["ruled"] == jobs["clean"] == jobs["bare"] >= 1
    # Passing rules cost no query at all; failing ones a capped one each.
    assert sampling["bare"] == sampling["clean"] == 0 < sampling["ruled"]


def test_empty_table_passes_row_rules_and_fails_freshness(
    spark: SparkSession, settings, source, tmp_path: Path, instance
) -> None:
    source, _ = source
    project = _project(tmp_path, "t_empty", source, """
        - name: empty
          inputs: [src]
          sql: SELECT * FROM src WHERE id > 1000
          quality:
            - {not_null: [id], on_fail: quarantine}
            - {unique: [id]}
            - {freshness: {column: ts, max_age: 26h}}
            - {row_count: {min: 1}}
        """)
    result = materialize_project(project, settings, instance)
    evaluations = _evaluations(result, "empty")
    assert evaluations["not_null_id"].passed and evaluations["unique_id"].passed
    assert evaluations["not_null_id"].metadata[Q.ROWS_JUDGED].value == 0
    assert not evaluations["freshness_ts"].passed
    assert evaluations["freshness_ts"].metadata[Q.STATUS].value == "no_data"
    assert not evaluations["row_count"].passed
    assert spark.table("t_empty.empty").count() == 0


def test_blocking_error_rule_holds_the_load_back_and_skips_downstream(
    spark: SparkSession, settings, source, tmp_path: Path, instance
) -> None:
    source, _ = source
    project = _project(tmp_path, "t_block", source, """
        - name: gate
          inputs: [src]
          sql: SELECT * FROM src
          quality:
            - {unique: [id], severity: ERROR, blocking: true}
        - name: after_gate
          inputs: [gate]
          sql: SELECT count(*) AS n FROM gate
        """)
    result = materialize_project(project, settings, instance, raise_on_error=False)
    evaluation = _evaluations(result, "gate")["unique_id"]
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert not result.success
    # The query rule judged the staged files before the switch: the first load is held back,
    # so readers have no table yet, and nothing downstream ran.
    assert result.get_asset_materialization_events() == []
    assert not spark.catalog.tableExists("t_block.gate")
    assert "; load held back: " in evaluation.description
    assert "etl-assets publish gate --run" in evaluation.description
    # The table's checks can still run alone: the anomaly checks judge the load, the rules
    # (measured only while loading) report nothing and keep their last result.
    alone = execute_checks_only(project, settings, instance, "gate")
    assert alone.success and not alone.get_asset_materialization_events()
    judged = {e.check_name for e in alone.get_asset_check_evaluations()}
    assert "row_count_anomaly" in judged and "unique_id" not in judged


def test_failed_rules_reach_the_alert_sensor_and_the_demo_declares_rules(demo_project) -> None:
    from etl_assets.orchestration.sensors import _check_keys

    keys = set(_check_keys(demo_project, None))
    assert dg.AssetCheckKey(dg.AssetKey("clean_orders"), "customer_known") in keys
    assert dg.AssetCheckKey(dg.AssetKey("report_data"), "positive_order_count") in keys
    demo = Q.table_rules(demo_project.tables["clean_orders"])
    known = next(r for r in demo if r.name == "customer_known")
    assert known.spec.severity == "WARN" and not known.spec.blocking


def _days(spark: SparkSession, tmp_path: Path) -> Path:
    """Two days of two rows each, one with a negative `qty` per day."""
    source = tmp_path / "days"
    spark.sql("SELECT * FROM VALUES (1, DATE'2026-03-01', 5), (2, DATE'2026-03-01', -1), "
              "(3, DATE'2026-03-02', 7), (4, DATE'2026-03-02', -2) AS t(id, day, qty)"
              ).write.parquet(str(source))
    return source


def test_quarantine_on_a_daily_partitioned_table(
    spark: SparkSession, settings, tmp_path: Path, instance
) -> None:
    source = _days(spark, tmp_path)
    project = _project(tmp_path, "t_quar_days", source, """
        - name: days
          inputs: [src]
          partitions: {type: daily, start: 2026-03-01, column: day}
          sql: SELECT * FROM src WHERE day >= '{partition_start}' AND day < '{partition_end}'
          quality:
            - {range: {column: qty, min: 0}, on_fail: quarantine}
        """)
    for day in ("2026-03-01", "2026-03-02"):
        result = materialize_project(project, settings, instance, partition_key=day)
        assert _evaluations(result, "days")["range_qty"].metadata[Q.ROWS_QUARANTINED].value == 1
    assert sorted(r.id for r in spark.table("t_quar_days.days").collect()) == [1, 3]
    rejected = [(r.id, r.day.isoformat(), r[Q.REJECTED_BY])
                for r in spark.table("t_quar_days.days__rejected").collect()]
    assert sorted(rejected) == [(2, "2026-03-01", "range_qty"), (4, "2026-03-02", "range_qty")]


def test_blocking_rule_on_a_daily_table_holds_back_only_its_failed_partition(
    spark: SparkSession, settings, tmp_path: Path, instance
) -> None:
    source = _days(spark, tmp_path)
    project = _project(tmp_path, "t_block_days", source, """
        - name: gate_days
          inputs: [src]
          partitions: {type: daily, start: 2026-03-01, column: day}
          sql: SELECT * FROM src WHERE day >= '{partition_start}' AND day < '{partition_end}'
          quality:
            - {range: {column: qty, min: -1}, severity: ERROR, blocking: true}
        - name: after_days
          inputs: [gate_days]
          partitions: {type: daily, start: 2026-03-01, column: day}
          sql: SELECT day, sum(qty) AS qty FROM gate_days
               WHERE day >= '{partition_start}' AND day < '{partition_end}' GROUP BY day
        """)
    passed = materialize_project(project, settings, instance, partition_key="2026-03-01")
    assert _evaluations(passed, "gate_days")["range_qty"].passed
    failed = materialize_project(project, settings, instance, partition_key="2026-03-02",
                                 raise_on_error=False)
    evaluation = _evaluations(failed, "gate_days")["range_qty"]
    assert not evaluation.passed and evaluation.metadata[Q.VIOLATIONS].value == 1
    # The sample comes from the partition's own files, partition column included.
    assert evaluation.metadata[Q.SAMPLE_ROWS].value == [
        {"qty": -2, "id": 4, "day": "2026-03-02"}]
    assert not failed.success and "; load held back: partitions" not in evaluation.description
    assert "; load held back: " in evaluation.description
    assert failed.get_asset_materialization_events() == []  # the failed day was held back
    # Downstream keeps the passing day only; the failed day is not in the table either.
    assert [(r.day.isoformat(), r.qty) for r in spark.table("t_block_days.after_days").collect()
            ] == [("2026-03-01", 4)]
    assert spark.table("t_block_days.gate_days").count() == 2
