"""Accept, re-baseline and backtest, on a real Dagster instance (SQLite, temporary folder).

History is seeded as runless materializations and past check evaluations, as a loader or an
earlier run records them; decisions are recorded by the real `etl_feedback` job (its Hive
mirror written through the test process's Spark session) and read back by the real checks.
"""


import tempfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.asset_checks.asset_check_evaluation import (  # no public export
    AssetCheckEvaluationTargetMaterializationData,
)
from pyspark.sql import SparkSession

from etl_assets.core import metric_names as M
from etl_assets.core.outcomes import CheckedLoad, CheckOutcome
from etl_assets.core.records import RunRecord
from etl_assets.core.specs import Table, load_project
from etl_assets.definitions import build_resources
from etl_assets.engine.health import build_report
from etl_assets.engine.hive_log import HiveLog
from etl_assets.orchestration import checks as C
from etl_assets.orchestration.backtest import BacktestError, backtest
from etl_assets.orchestration.feedback import FEEDBACK_JOB, feedback_job
from etl_assets.tools.cli import main as cli_main
from etl_assets_tests.helpers import write_spec

KEY = dg.AssetKey("orders")


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Table:
    folder = tmp_path_factory.mktemp("feedback")
    write_spec(folder, """
database: t_feedback
sources: {src: {format: parquet, path: /nowhere}}
tables:
  - {name: orders, inputs: [src], sql: SELECT * FROM src}
""")
    return load_project(folder).tables["orders"]


@pytest.fixture()
def instance() -> Iterator[dg.DagsterInstance]:
    with tempfile.TemporaryDirectory() as folder:
        with dg.DagsterInstance.local_temp(folder) as instance:
            yield instance


class Rows(dg.Config):
    rows: int


@dg.asset(name="orders")
def orders(config: Rows) -> dg.MaterializeResult:
    """Stands in for the table's load: the checks read only what a load records."""
    return dg.MaterializeResult(metadata={M.ROW_COUNT: config.rows})


def _load(instance: dg.DagsterInstance, rows: int) -> dg.EventLogRecord:
    """One load of `orders` in a run of its own (feedback names a load by its run)."""
    dg.materialize([orders], instance=instance,
                   run_config={"ops": {"orders": {"config": {"rows": rows}}}})
    return instance.fetch_materializations(KEY, limit=1).records[0]


def _flag(instance: dg.DagsterInstance, record: dg.EventLogRecord) -> None:
    """A failed `row_count_anomaly` evaluation targeting that load, as the check records it."""
    instance.report_runless_asset_event(dg.AssetCheckEvaluation(
        asset_key=KEY, check_name=C.ROW_COUNT_CHECK, passed=False,
        severity=dg.AssetCheckSeverity.WARN, description="flagged",
        target_materialization_data=AssetCheckEvaluationTargetMaterializationData(
            storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp)))


def _decide(spark: SparkSession, settings, instance, action: str, run_id: str,
            note: str = "") -> dg.ExecuteInProcessResult:
    config = {"table": "orders", "run_id": run_id, "action": action, "note": note, "by": "ana"}
    defs = dg.Definitions(jobs=[feedback_job], resources=build_resources(settings))
    return defs.resolve_job_def(FEEDBACK_JOB).execute_in_process(
        run_config={"ops": {"record_feedback": {"config": config}}}, instance=instance,
        raise_on_error=False)


def _row_count(instance: dg.DagsterInstance, table: Table) -> CheckOutcome:
    _latest, (outcome,) = C.evaluate_table(instance, table, {C.ROW_COUNT_CHECK})
    return outcome


def test_an_accepted_load_rejoins_the_baseline_and_the_verdict_says_so(
    spark: SparkSession, settings, table: Table, instance: dg.DagsterInstance
) -> None:
    for rows in (1000, 1010, 990, 1005, 995, 1002):
        _load(instance, rows)
    promotion = _load(instance, 1900)
    _flag(instance, promotion)
    for rows in (1001, 998):
        _load(instance, rows)

    before = _row_count(instance, table)
    assert before.passed and "1 flagged run excluded" in before.description

    # The load and its flag as the step logs them: an open flag on the health page until
    # someone accepts the load.
    now = datetime.now(timezone.utc)
    log = HiveLog(spark, settings.log_db)
    log.write_load(RunRecord(run_id=promotion.run_id, asset="orders", domain="t_feedback",
                             table_name="t_feedback.orders", status="SUCCESS", started_at=now,
                             finished_at=now, code_version="1", row_count=1900))
    log.write_checks([(
        CheckedLoad(run_id="checks-run", asset="orders", checked_at=now,
                    target_run_id=promotion.run_id),
        CheckOutcome(check=C.ROW_COUNT_CHECK, metric="row_count", passed=False, severity="WARN",
                     status="anomaly", description="row_count 1,900 ..."))])
    open_before = build_report(spark, settings.log_db).totals["open_flags"]

    result = _decide(spark, settings, instance, "accept", promotion.run_id,
                     "expected: the promotion doubled orders")
    assert result.success
    assert build_report(spark, settings.log_db).totals["open_flags"] == open_before - 1
    after = _row_count(instance, table)
    assert "flagged run excluded" not in after.description
    assert "1 accepted load in the baseline" in after.description
    # The decision is in Hive for SQL readers, and on the asset as an observation.
    rows = spark.sql(f"SELECT * FROM {settings.log_db}.check_feedback "
                     f"WHERE target_run_id = '{promotion.run_id}'").collect()
    assert [(r.action, r.decided_by, r.note) for r in rows] == [
        ("accept", "ana", "expected: the promotion doubled orders")]
    (observation,) = instance.fetch_observations(KEY, limit=5).records
    assert observation.asset_observation.metadata["etl/feedback"].value == "accept"


def test_rebaseline_judges_later_loads_from_the_chosen_load_on(
    spark: SparkSession, settings, table: Table, instance: dg.DagsterInstance
) -> None:
    for rows in (1000, 1010, 990, 1005, 995, 1002, 1001):
        _load(instance, rows)
    moved = _load(instance, 2000)
    _load(instance, 2010)
    assert not _row_count(instance, table).passed  # 2,010 against the old level of 1,000

    assert _decide(spark, settings, instance, "rebaseline", moved.run_id,
                   "the source system changed").success
    verdict = _row_count(instance, table)
    assert verdict.passed and verdict.status == "insufficient_history"
    assert "1 of 5 points" in verdict.description
    assert "re-baselined by ana (the source system changed)" in verdict.description
    assert "baseline from " in verdict.description


def test_feedback_on_an_unknown_run_fails_with_the_reason(
    spark: SparkSession, settings, instance: dg.DagsterInstance
) -> None:
    _load(instance, 1000)
    result = _decide(spark, settings, instance, "accept", "no-such-run")
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "no run 'no-such-run'" in failure.step_failure_data.error.message


def test_backtest_replays_the_history_with_overridden_settings(
    table: Table, instance: dg.DagsterInstance, capsys: pytest.CaptureFixture
) -> None:
    for rows in (1000, 1010, 990, 1005, 995, 1002, 400, 1001, 1300):
        _load(instance, rows)
    default = backtest(instance, table)
    assert [item.verdict.status for item in default][:5] == ["insufficient_history"] * 5
    assert [not item.verdict.passed for item in default][5:] == [False, True, False, True]
    wide = backtest(instance, table, overrides={"rule": "relative_change", "max_change": "0.7"})
    assert [not item.verdict.passed for item in wide][5:] == [False, False, False, False]
    with pytest.raises(BacktestError, match="window"):
        backtest(instance, table, overrides={"window": "zero"})
    with pytest.raises(BacktestError, match="unknown metric"):
        backtest(instance, table, metric="rows")


@pytest.fixture()
def cli_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """What `etl-assets` reads: a defs folder with `orders`, and a Dagster home."""
    write_spec(tmp_path / "pipelines", """
database: t_feedback
sources: {src: {format: parquet, path: /nowhere}}
tables:
  - {name: orders, inputs: [src], sql: SELECT * FROM src}
""")
    monkeypatch.setenv("ETL_ASSETS_DEFS", str(tmp_path / "pipelines"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    (tmp_path / "dagster").mkdir()


def test_backtest_cli_prints_each_load_and_the_total(
    settings, cli_home: None, capsys: pytest.CaptureFixture
) -> None:
    with dg.DagsterInstance.get() as instance:
        for rows in (1000, 1010, 990, 1005, 995, 1002, 400):
            _load(instance, rows)
    assert cli_main(["backtest", "orders", "--set", "window=10"]) == 0
    out = capsys.readouterr().out
    assert "FLAGGED: row_count 400 is 60% below" in out
    assert "1 of 7 loads would have been flagged (row_count, window=10)" in out
    with pytest.raises(SystemExit):
        cli_main(["backtest", "orders", "--set", "rule"])
    assert "--set takes NAME=VALUE" in capsys.readouterr().err


def test_accept_from_the_command_line_records_the_decision(
    spark: SparkSession, settings, cli_home: None, capsys: pytest.CaptureFixture
) -> None:
    with dg.DagsterInstance.get() as instance:
        load = _load(instance, 1000)
    assert cli_main(["accept", "orders", "--run", "latest", "--note", "known"]) == 0
    assert f"orders: accepted the load of run {load.run_id}" in capsys.readouterr().out
    with dg.DagsterInstance.get() as instance:
        (observation,) = instance.fetch_observations(KEY, limit=5).records
        meta = observation.asset_observation.metadata
        assert meta["etl/target_run_id"].value == load.run_id
        assert meta["etl/note"].value == "known"
    assert cli_main(["rebaseline", "orders", "--run", "nope"]) == 1
    assert "no run 'nope'" in capsys.readouterr().err
