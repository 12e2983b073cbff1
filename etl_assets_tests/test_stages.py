"""The load's stages one at a time, on real Spark and Hive (`etl_assets.engine`).

`load_table` runs resolve inputs -> build the frame -> stage -> sample -> quarantine ->
measure -> judge -> publish -> query rules; each stage here is called alone and its output
checked against what the table and the folders hold, so a later stage (an audit before the
publish) can be put between two of them.
"""

from __future__ import annotations

import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

from pyspark.sql import SparkSession

from etl_assets.core import metric_names as M
from etl_assets.core.held import MANIFEST
from etl_assets.core.load_request import LoadRequest
from etl_assets.core.specs import Project, load_project
from etl_assets.engine import quality as Q
from etl_assets.engine import storage as S
from etl_assets.engine.frames import build_frame, combine_with_existing
from etl_assets.engine.inputs import resolve_inputs, skipped_rows
from etl_assets.engine.judging import judge, query_rules
from etl_assets.engine.load import load_table
from etl_assets.engine.load_log import Attempt, failure_rows, success_rows
from etl_assets.engine.publish import publish, remove_orphans
from etl_assets.engine.staging import (
    discard,
    job_group,
    measure,
    plan_target,
    quarantine,
    sample_failures,
    stage,
)
from etl_assets_tests.helpers import write_spec


def _project(tmp_path: Path, spark: SparkSession, rows: int, tables: str) -> Project:
    """A project whose source `src` holds `rows` rows of (id, amount, code); codes cycle
    A, B, C, with code C on every third row."""
    source = tmp_path / f"src_{rows}"
    spark.range(rows).selectExpr(
        "CAST(id AS INT) id", "CAST(id * 2 AS BIGINT) amount",
        "element_at(array('A', 'B', 'C'), CAST(id % 3 AS INT) + 1) code",
    ).write.mode("overwrite").parquet(str(source))
    folder = tmp_path / f"spec_{rows}"
    write_spec(folder, f"database: t_stages\nsources: {{src: {{format: parquet, path: {source}}}}}\n"
               f"tables:\n{textwrap.indent(textwrap.dedent(tables), '  ')}")
    return load_project(folder)


PLAIN = """
- name: plain
  inputs: [src]
  sql: SELECT * FROM src
  quality:
    - {accepted_values: {column: code, values: [A, B]}, severity: WARN}
    - {unique: [id]}
"""


def _staged(spark: SparkSession, project: Project, name: str, run_id: str):
    table = project.tables[name]
    request = LoadRequest(run_id=run_id)
    target = plan_target(spark, table, request)
    inputs = resolve_inputs(spark, project, table, request)
    frame = combine_with_existing(spark, table, build_frame(spark, table, request, inputs.frames),
                                  target.mode, request)
    return table, request, target, inputs, stage(spark, target, frame)


def test_a_staged_load_is_invisible_until_published(spark: SparkSession, tmp_path: Path) -> None:
    old = _project(tmp_path, spark, 30, PLAIN)
    load_table(spark, old, old.tables["plain"], "run-old")
    previous = spark.table("t_stages.plain").inputFiles()

    project = _project(tmp_path, spark, 12, PLAIN)
    table, request, target, inputs, staged = _staged(spark, project, "plain", "run-new")
    # Staged: the folder is written and observed, the table still shows the old load.
    assert S.exists(spark, target.location) and not staged.quarantining
    assert spark.table("t_stages.plain").count() == 30
    assert staged.observed[f"{Q.OBSERVED_PREFIX}accepted_values_code/violations"] == 4

    tracker = spark.sparkContext.statusTracker()
    samples = sample_failures(spark, staged)  # the failed rule's offending rows, one query
    assert len(tracker.getJobIdsForGroup(f"{target.job_group}:samples")) >= 1
    assert [s["code"] for s in samples["accepted_values_code"]] == ["C"] * 4
    with job_group(spark, "t_stages:measure", "measure and judge"):
        measured = measure(spark, staged, request, skipped_rows(inputs.skipped), None)
        outcomes = judge(staged, measured, samples, None)
    assert tracker.getJobIdsForGroup("t_stages:measure") == []  # footers and observations only
    assert measured.metrics[M.ROW_COUNT] == 12 and measured.metrics[M.SUM + "amount"] == 132
    assert measured.metrics[M.NULL_COUNT + "code"] == 0
    verdict = {o.check: o for o in outcomes}["accepted_values_code"]
    assert not verdict.passed and verdict.value == 4 and verdict.metric == "quality/accepted_values"
    assert spark.table("t_stages.plain").count() == 30  # still nothing published

    publish(spark, target, request, measured)
    assert spark.table("t_stages.plain").count() == 12
    assert not any(S.exists(spark, f) for f in previous)  # the replaced folder is gone
    unique = query_rules(spark, project, staged, request, measured)
    assert [(o.check, o.passed) for o in unique] == [("unique_id", True)]


def test_discard_leaves_the_table_and_no_folder(spark: SparkSession, tmp_path: Path) -> None:
    old = _project(tmp_path, spark, 9, PLAIN.replace("plain", "kept"))
    load_table(spark, old, old.tables["kept"], "run-kept")
    project = _project(tmp_path, spark, 3, PLAIN.replace("plain", "kept"))
    _, _, target, _, staged = _staged(spark, project, "kept", "run-gone")
    discard(spark, staged)
    assert not S.exists(spark, target.location)
    assert spark.table("t_stages.kept").count() == 9


def test_quarantine_divides_the_staged_write(spark: SparkSession, tmp_path: Path) -> None:
    project = _project(tmp_path, spark, 9, """
- name: split
  inputs: [src]
  sql: SELECT * FROM src
  quality:
    - {accepted_values: {column: code, values: [A, B]}, on_fail: quarantine}
""")
    _, request, target, inputs, staged = _staged(spark, project, "split", "run-split")
    assert staged.quarantining and staged.path.startswith(target.rejected_root)
    rejected = quarantine(spark, staged)
    assert rejected == 3
    measured = measure(spark, staged, request, skipped_rows(inputs.skipped), rejected)
    assert measured.metrics[M.ROW_COUNT] == 6 and measured.metrics[M.ROWS_REJECTED] == 3
    outcome = judge(staged, measured, {}, rejected)[0]
    assert outcome.metadata[Q.ROWS_QUARANTINED] == 3 and outcome.metadata[Q.ROWS_JUDGED] == 9
    assert not spark.catalog.tableExists("t_stages.split")  # not published yet
    assert spark.table("t_stages.split__rejected").count() == 3  # no rejected row is lost
    publish(spark, target, request, measured)
    assert spark.table("t_stages.split").where("code = 'C'").count() == 0


def test_the_log_rows_of_a_load_and_of_a_failure(spark: SparkSession, tmp_path: Path) -> None:
    project = _project(tmp_path, spark, 5, PLAIN.replace("plain", "logged"))
    table = project.tables["logged"]
    result = load_table(spark, project, table, "run-log")
    attempt = Attempt(run_id="run-log", table=table, started_at=datetime.now(timezone.utc))
    [(row, metrics)] = success_rows(attempt, LoadRequest(run_id="run-log"), result,
                                    datetime.now(timezone.utc))
    assert (row.status, row.row_count, row.asset, row.code_version) == (
        "SUCCESS", 5, "logged", table.code_version)
    assert metrics[M.ROW_COUNT] == 5 and metrics[M.BYTES] == result.bytes
    request = LoadRequest(run_id="run-log", partition_keys=("2026-01-01", "2026-01-02"))
    failed = failure_rows(attempt, request, ValueError("boom"), datetime.now(timezone.utc),
                          retries_left=True)
    assert [(r.status, r.partition_key, r.error_message) for r, _ in failed] == [
        ("RETRY", "2026-01-01", "ValueError: boom"), ("RETRY", "2026-01-02", "ValueError: boom")]


DAILY = """
- name: daily_orphans
  inputs: [src]
  partitions: {type: daily, start: 2026-03-01, column: day}
  sql: |
    SELECT id, amount, code, date_add(DATE'2026-03-01', CAST(id % 2 AS INT)) AS day FROM src
    WHERE date_add(DATE'2026-03-01', CAST(id % 2 AS INT)) >= '{partition_start}'
      AND date_add(DATE'2026-03-01', CAST(id % 2 AS INT)) < '{partition_end}'
"""


def _day(key: str, run_id: str) -> LoadRequest:
    end = (datetime.fromisoformat(key) + timedelta(days=1)).date().isoformat()
    return LoadRequest(run_id=run_id, partition_keys=(key,), window=(key, end))


def test_folders_of_loads_that_died_before_publishing_are_removed_later(
    spark: SparkSession, tmp_path: Path
) -> None:
    # Two days loaded by two runs: each partition lives in its own run's load folder.
    project = _project(tmp_path, spark, 10, DAILY)
    table = project.tables["daily_orphans"]
    load_table(spark, project, table, _day("2026-03-01", "run-day1"))
    load_table(spark, project, table, _day("2026-03-02", "run-day2"))
    live = sorted(S.partition_locations(spark, table.qualified_name).values())
    assert len(live) == 2
    # A load that died between its write and its publish, a day ago; one dying now; a held
    # load as old; a folder this project did not name.
    target = plan_target(spark, table, _day("2026-03-01", "run-x"))
    root = target.loads_root
    _, _, dying, _, _ = _staged(spark, project, "daily_orphans", "run-dying")
    dead = f"{root}/load_20000101T000000_dead0000_abcdef"
    S.rename(spark, _staged(spark, project, "daily_orphans", "run-dead")[2].location, dead)
    held = f"{root}/load_20000101T000001_held0000_abcdef"
    S.mkdirs(spark, held)
    S.write_text(spark, f"{held}/{MANIFEST}", "{}")
    foreign = f"{root}/load_notes"
    S.mkdirs(spark, foreign)

    load_table(spark, project, table, _day("2026-03-01", "run-day1-again"))  # its publish tidies
    assert not S.exists(spark, dead)
    assert S.exists(spark, dying.location) and S.exists(spark, held) and S.exists(spark, foreign)
    assert spark.table(table.qualified_name).count() == 10

    # A week later, nothing in use is touched: both live partitions' folders stay, even the
    # old one whose run loaded only 2026-03-02; the unpublished load is an orphan by then.
    later = datetime.now(timezone.utc) + timedelta(days=7)
    live = sorted(S.partition_locations(spark, table.qualified_name).values())
    removed = remove_orphans(spark, plan_target(spark, table, _day("2026-03-01", "run-y")),
                             now=later)
    assert removed == [dying.location.rstrip("/")]
    assert all(S.exists(spark, folder) for folder in live)
    assert S.exists(spark, held) and S.exists(spark, foreign)
    assert spark.table(table.qualified_name).count() == 10
    assert S.exists(spark, dying.location) is False
