"""Sensors: source files arriving start loads; failed runs and failed checks raise alerts.

Sensors run in Dagster's daemon, outside any run. On the embedded profile Derby admits one
process, so a sensor never starts Spark: it sends alerts over the network channels itself and
hands anything that must be written to Hive (`alert_log` rows, the FAILED `run_log` row of a
run that died before its asset could write one) to the `etl_alerts` job, which the run queue
executes one at a time like every other run.
"""


import glob
import hashlib
import json
import os
from collections.abc import Iterator
from datetime import datetime, timezone

import dagster as dg
from dagster import AssetCheckEvaluation
from dagster._core.storage.asset_check_execution_record import (  # no public export
    AssetCheckExecutionRecordStatus,
)
from dagster_pyspark import LazyPySparkResource
from pyspark.sql import functions as F

from etl_assets.core.records import FAILED, RunRecord
from etl_assets.core.settings import AlertSettings, load_alert_settings
from etl_assets.core.specs import Project, Source
from etl_assets.engine.hive_log import HiveLog
from etl_assets.orchestration.alerts import Alert, Delivery, deliver, record_alerts
from etl_assets.orchestration.quality_checks import quality_check_specs
from etl_assets.orchestration.resources import EtlLogResource

ALERT_JOB = "etl_alerts"


class AlertBatch(dg.Config):
    """Alerts (as JSON) for `alert_log`, and a failed run that may lack its FAILED rows."""

    alerts: list[str] = []
    failed_run_id: str | None = None
    failed_assets: list[str] = []
    error: str | None = None


@dg.op(name="record_alerts")
def record_alerts_op(
    context: dg.OpExecutionContext,
    config: AlertBatch,
    spark: LazyPySparkResource,
    etl_log: EtlLogResource,
) -> None:
    """Write alerts to `alert_log`; add FAILED rows for assets of a failed run that have none."""
    session = spark.spark_session
    alerts = [_decode(text) for text in config.alerts]
    if alerts:
        record_alerts(session, etl_log.database, alerts)
    if config.failed_run_id and config.failed_assets:
        log = HiveLog(session, etl_log.database)
        log.ensure_tables()
        # The run id comes from run config, which anyone with the launchpad can write: a
        # column comparison, never SQL text.
        logged = {r.asset for r in session.table(log.table("run_log"))
                  .where(F.col("run_id") == config.failed_run_id)
                  .select("asset").distinct().collect()}
        now = datetime.now(timezone.utc)
        missing = [a for a in config.failed_assets if a not in logged]
        log.write_loads([(RunRecord(
            run_id=config.failed_run_id, asset=asset, domain="", table_name="", status=FAILED,
            started_at=now, finished_at=now, code_version="",
            error_message=config.error or "the run failed before the load started"), {})
            for asset in missing])
        context.log.info(f"FAILED rows written for {missing}")


def _decode(text: str) -> tuple[Alert, Delivery]:
    payload = json.loads(text)
    # `failures` is absent from runs requested before it existed (a re-executed run).
    return Alert(**payload["alert"]), Delivery(payload["channels"], payload.get("failures", []))


def _encode(alert: Alert, delivery: Delivery) -> str:
    return json.dumps({"alert": alert.__dict__, "channels": delivery.channels,
                       "failures": delivery.failures})


@dg.job(name=ALERT_JOB, description="Records alerts in etl_log.alert_log (sensors start it).")
def alerts_job() -> None:
    record_alerts_op()


def _alert_run(alerts: list[tuple[Alert, Delivery]], key: str, **extra) -> dg.RunRequest:
    config = {"alerts": [_encode(a, d) for a, d in alerts], **extra}
    return dg.RunRequest(run_key=key, job_name=ALERT_JOB,
                         run_config={"ops": {"record_alerts": {"config": config}}})


def _check_keys(project: Project, instance: dg.DagsterInstance) -> list[dg.AssetCheckKey]:
    from etl_assets.orchestration.checks import (
        check_specs,  # checks imports tables; keep imports one-way
    )

    return [spec.key for table in project.tables.values()
            for spec in [*check_specs(table), *quality_check_specs(table)]]


def failed_check_alerts(
    instance: dg.DagsterInstance,
    keys: list[dg.AssetCheckKey],
    cursor: dict[str, int],
    settings: AlertSettings,
) -> Iterator[tuple[Alert, int, str]]:
    """New failed evaluations since the cursor: (alert, record id, check key string)."""
    for key in keys:
        name = key.to_user_string()
        seen = cursor.get(name, 0)
        records = instance.event_log_storage.get_asset_check_execution_history(
            key, limit=20, status={AssetCheckExecutionRecordStatus.FAILED})
        for record in sorted(records, key=lambda r: r.id):
            evaluation = record.evaluation
            if record.id <= seen or not isinstance(evaluation, AssetCheckEvaluation):
                continue
            asset = key.asset_key.to_user_string()
            yield Alert(
                kind="check_failure",
                severity=evaluation.severity.value,
                title=f"check {key.name} failed on {asset}",
                message=evaluation.description or "",
                asset=asset,
                run_id=record.run_id,
                url=f"{settings.ui_url}/assets/{asset}?view=checks",
            ), record.id, name


def build_check_failure_sensor(project: Project) -> dg.SensorDefinition:
    """Alerts once per failed check evaluation (Dagster has no built-in sensor for this)."""

    @dg.sensor(name="failed_check_alerts", job=alerts_job, minimum_interval_seconds=30,
               default_status=dg.DefaultSensorStatus.RUNNING)
    def _sensor(context: dg.SensorEvaluationContext):
        cursor = json.loads(context.cursor) if context.cursor else {}
        settings = load_alert_settings()
        alerts = []
        for alert, record_id, name in failed_check_alerts(
            context.instance, _check_keys(project, context.instance), cursor, settings
        ):
            alerts.append(alert)
            cursor[name] = max(cursor.get(name, 0), record_id)
        context.update_cursor(json.dumps(cursor, sort_keys=True))
        if not alerts:
            return dg.SkipReason("no new failed check evaluations")
        # All of the tick's alerts in one delivery: the tick waits for a slow channel once.
        sent = list(zip(alerts, deliver(alerts, settings)))
        key = hashlib.sha256(json.dumps(cursor, sort_keys=True).encode()).hexdigest()[:16]
        return _alert_run(sent, f"checks-{key}")

    return _sensor


def planned_assets(instance: dg.DagsterInstance, run: dg.DagsterRun) -> set[dg.AssetKey]:
    """The assets a run was to materialize.

    A run launched with an asset selection (the UI, `dg launch`, sensors)
    carries it; a run of an asset job launched by a schedule carries none, and its execution
    plan, stored with the run before it starts, says which assets its steps produce.
    """
    if run.asset_selection:
        return set(run.asset_selection)
    if not run.execution_plan_snapshot_id:
        return set()
    plan = instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
    return set(plan.asset_selection)


@dg.run_failure_sensor(name="run_failure_alerts", request_job=alerts_job,
                       default_status=dg.DefaultSensorStatus.RUNNING)
def run_failure_alerts(context: dg.RunFailureSensorContext):
    """Alert on every failed run, and make sure `run_log` has its FAILED rows."""
    settings = load_alert_settings()
    run = context.dagster_run
    if run.job_name == ALERT_JOB:
        return dg.SkipReason("the alert job itself failed: not alerting about alerting")
    error = context.failure_event.message if context.failure_event else "run failed"
    alert = Alert(kind="run_failure", severity="ERROR", title=f"run {run.run_id[:8]} failed",
                  message=error, run_id=run.run_id, url=f"{settings.ui_url}/runs/{run.run_id}")
    (delivery,) = deliver([alert], settings)
    assets = sorted(k.to_user_string() for k in planned_assets(context.instance, run))
    return _alert_run([(alert, delivery)], f"run-{run.run_id}", failed_run_id=run.run_id,
                      failed_assets=assets, error=error[:4000])


def new_files(pattern: str, cursor: dict[str, float]) -> dict[str, float]:
    """Files matching the glob that are new or changed since the cursor (path -> mtime)."""
    found = {}
    for path in sorted(glob.glob(pattern)):
        if os.path.isfile(path):
            mtime = os.path.getmtime(path)
            if cursor.get(path) != mtime:
                found[path] = mtime
    return found


def build_source_sensor(project: Project, source: Source) -> dg.SensorDefinition:
    """A run of the source's downstream tables when new files land (once per file set)."""
    downstream = _downstream_tables(project, source.name)

    @dg.sensor(name=f"{source.name}_arrivals",
               minimum_interval_seconds=source.spec.sensor_interval_s,
               asset_selection=[dg.AssetKey(t) for t in downstream] or None,
               default_status=dg.DefaultSensorStatus.RUNNING,  # `sensor: true` asked for it
               description=f"New files in {source.resolved_path} load {', '.join(downstream)}")
    def _sensor(context: dg.SensorEvaluationContext):
        cursor = json.loads(context.cursor) if context.cursor else {}
        arrived = new_files(source.resolved_path or "", cursor)
        if not arrived:
            return dg.SkipReason(f"no new files in {source.resolved_path}")
        cursor.update(arrived)
        context.update_cursor(json.dumps(cursor, sort_keys=True))
        names = ", ".join(f"{os.path.basename(p)}@{int(m)}" for p, m in sorted(arrived.items()))
        return dg.RunRequest(run_key=f"{source.name}: {names}",
                             asset_selection=[dg.AssetKey(t) for t in downstream],
                             tags={"etl_assets/arrived": names[:200]})

    return _sensor


def _downstream_tables(project: Project, source: str) -> list[str]:
    """Unpartitioned tables reading the source, directly or through other tables."""
    found: list[str] = []
    frontier = {source}
    for name, table in project.tables.items():  # dependency order
        if frontier & set(table.spec.inputs):
            frontier.add(name)
            if not table.spec.partitions:
                found.append(name)
    return found


def build_sensors(project: Project) -> list[dg.SensorDefinition]:
    """Arrival sensors for sources with `sensor: true`, and the two alert sensors."""
    sensors = [build_source_sensor(project, s) for s in project.sources.values() if s.spec.sensor]
    return [*sensors, build_check_failure_sensor(project), run_failure_alerts]
