"""Sensors, schedules, alerts and retries against real parts.

Sensors are evaluated with `build_sensor_context` on a real instance; alerts go to a real
SMTP server (aiosmtpd) and a real HTTP server on 127.0.0.1; the alert job and the flaky
asset run on the shared Spark session.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
from aiosmtpd.controller import Controller
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from etl_assets.core.settings import load_alert_settings, load_settings
from etl_assets.core.specs import SpecError, load_project
from etl_assets.definitions import build_resources
from etl_assets.orchestration.alerts import Alert, deliver
from etl_assets.orchestration.domains import build_assets
from etl_assets.orchestration.schedules import build_schedules
from etl_assets.orchestration.sensors import (
    alerts_job,
    build_check_failure_sensor,
    build_source_sensor,
)
from etl_assets_tests.helpers import materialize_project, write_spec

SPEC = """
database: t_sense
schedule: {{cron: "30 5 * * *", timezone: UTC}}
sources:
  landing: {{format: csv, path: "{landing}/*.csv", options: {{header: true}}, sensor: true}}
tables:
  - name: landed
    inputs: [landing]
    sql: SELECT * FROM landing
  - name: landed_daily
    inputs: [landed]
    partitions: {{type: daily, start: 2026-03-01, column: d}}
    sql: SELECT DATE'2026-03-01' AS d, count(*) AS n FROM landed
"""


@pytest.fixture()
def project(tmp_path: Path):
    (tmp_path / "landing").mkdir()
    write_spec(tmp_path / "spec", SPEC.format(landing=tmp_path / "landing"))
    return load_project(tmp_path / "spec")


def _tick(sensor: dg.SensorDefinition, instance: dg.DagsterInstance, cursor: str | None,
          project=None):
    definitions = None
    if project is not None:
        definitions = dg.Definitions(assets=build_assets(project), sensors=[sensor],
                                     resources=build_resources(load_settings()))
    context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=definitions)
    return sensor.evaluate_tick(context)


def test_new_file_triggers_exactly_one_run_and_the_cursor_survives_restarts(
    project, tmp_path: Path, instance
) -> None:
    sensor = build_source_sensor(project, project.sources["landing"])
    first = _tick(sensor, instance, None, project)
    assert not first.run_requests and "no new files" in first.skip_message

    (tmp_path / "landing" / "orders_1.csv").write_text("id\n1\n")
    second = _tick(sensor, instance, first.cursor, project)
    (request,) = second.run_requests
    assert "orders_1.csv" in request.run_key
    assert request.asset_selection == [dg.AssetKey("landed")]  # partitioned table left out

    # The same file never twice, also after a restart (a new context from the stored cursor).
    again = _tick(sensor, instance, second.cursor, project)
    assert not again.run_requests
    restarted = _tick(build_source_sensor(project, project.sources["landing"]), instance,
                      second.cursor, project)
    assert not restarted.run_requests

    (tmp_path / "landing" / "orders_2.csv").write_text("id\n2\n")
    third = _tick(sensor, instance, second.cursor, project)
    (request,) = third.run_requests
    assert "orders_2.csv" in request.run_key and "orders_1.csv" not in request.run_key


def _resolved_schedules(project) -> dict[str, dg.ScheduleDefinition]:
    """The project's schedules as Dagster resolves them (a partitioned job takes its asset's
    partitions there)."""
    defs = dg.Definitions(assets=build_assets(project), schedules=build_schedules(project),
                          resources=build_resources(load_settings()))
    return {s.name: defs.resolve_schedule_def(s.name) for s in build_schedules(project)}


def test_schedules_target_the_closed_partition_and_start_stopped(project) -> None:
    schedules = _resolved_schedules(project)
    assert set(schedules) == {"domain_schedule", "landed_daily_schedule"}
    assert all(s.default_status == dg.DefaultScheduleStatus.STOPPED for s in schedules.values())
    assert schedules["domain_schedule"].cron_schedule == "30 5 * * *"
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 3, 6, 5, 30, tzinfo=timezone.utc))
    (request,) = schedules["landed_daily_schedule"].evaluate_tick(context).run_requests
    assert request.partition_key == "2026-03-05"


ZONED = """
database: t_zoned
sources:
  src: {{format: csv, path: "{source}", options: {{header: true}}}}
tables:
  - name: seoul_daily
    inputs: [src]
    partitions: {{type: daily, start: 2026-03-01, column: d{partitions_zone}}}
    schedule: {{cron: "0 6 * * *"{schedule_zone}}}
    sql: SELECT DATE'2026-03-01' AS d, count(*) AS n FROM src
"""


def test_a_partitioned_schedule_fires_in_its_partitions_time_zone(tmp_path: Path) -> None:
    write_spec(tmp_path / "spec", ZONED.format(
        source=tmp_path / "src.csv", partitions_zone=", timezone: Asia/Seoul", schedule_zone=""))
    schedule = _resolved_schedules(load_project(tmp_path / "spec"))["seoul_daily_schedule"]
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 6 * * *", "Asia/Seoul")
    # 06:00 in Seoul is 21:00 UTC the day before; the tick loads Seoul's closed day.
    tick = datetime(2026, 3, 6, 6, 0, tzinfo=ZoneInfo("Asia/Seoul"))
    context = dg.build_schedule_context(scheduled_execution_time=tick)
    (request,) = schedule.evaluate_tick(context).run_requests
    assert request.partition_key == "2026-03-05"


def test_a_schedule_zone_other_than_the_partitions_is_refused_at_load(tmp_path: Path) -> None:
    path = write_spec(tmp_path / "spec", ZONED.format(
        source=tmp_path / "src.csv", partitions_zone="", schedule_zone=", timezone: Asia/Seoul"))
    with pytest.raises(SpecError) as raised:
        build_schedules(load_project(tmp_path / "spec"))
    message = str(raised.value)
    assert f"{path}: table 'seoul_daily': field 'schedule.timezone'" in message, message
    assert "'Asia/Seoul' differs from partitions.timezone 'UTC'" in message, message


class _Hook(BaseHTTPRequestHandler):
    received: list[dict] = []
    slack: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        length = int(self.headers["Content-Length"])
        body = json.loads(self.rfile.read(length))
        if self.path.endswith("chat.postMessage"):  # the Slack API, as slack_sdk calls it
            _Hook.slack.append({"auth": self.headers["Authorization"], **body})
            payload = b'{"ok": true, "channel": "C1", "ts": "1.0"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        _Hook.received.append(body)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        return


class _Mailbox:
    delivered: list[bytes] = []  # the latest mailbox's messages

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        _Mailbox.delivered = self.messages

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        self.messages.append(envelope.content)
        return "250 OK"


WEBHOOK_TOKEN = "T0KEN-5ecret"


@pytest.fixture()
def receivers(monkeypatch: pytest.MonkeyPatch):
    """A real HTTP server and a real SMTP server on 127.0.0.1, wired in through the env."""
    _Hook.received, _Hook.slack = [], []
    http = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    mailbox = _Mailbox()
    with socket.socket() as probe:  # a free port: aiosmtpd checks readiness by connecting
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    smtp = Controller(mailbox, hostname="127.0.0.1", port=port)
    smtp.start()
    with socket.socket() as closed:  # a port nobody listens on: that webhook fails
        closed.bind(("127.0.0.1", 0))
        closed_port = closed.getsockname()[1]
    # Tokens in the path and the query, as Slack's, Teams' and PagerDuty relays' URLs carry them.
    hook = f"http://127.0.0.1:{http.server_port}/hook/{WEBHOOK_TOKEN}?key=q{WEBHOOK_TOKEN}"
    down = f"http://localhost:{closed_port}/down/{WEBHOOK_TOKEN}"
    monkeypatch.setenv("ETL_ASSETS_ALERT_WEBHOOK_URLS", f"{hook},{down}")
    monkeypatch.setenv("ETL_ASSETS_ALERT_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("ETL_ASSETS_ALERT_SMTP_PORT", str(port))
    monkeypatch.setenv("ETL_ASSETS_ALERT_SMTP_TO", "oncall@example.com")
    monkeypatch.setenv("ETL_ASSETS_SLACK_TOKEN", "xoxb-test-token")
    monkeypatch.setenv("ETL_ASSETS_SLACK_CHANNEL", "#data-alerts")
    monkeypatch.setenv("ETL_ASSETS_SLACK_API_URL", f"http://127.0.0.1:{http.server_port}/api/")
    yield _Hook.received, mailbox.messages
    http.shutdown()
    smtp.stop()


class _Silent:
    """A TCP server on 127.0.0.1 that accepts every connection and never answers.

    When a client gives up and closes its connection, `released` gets `snapshot()`, taken
    then (what the other receivers had got by the time this one was abandoned), and
    `gave_up` is set.
    """

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)  # accept() wakes up to notice `close`
        self.port = self.server.getsockname()[1]
        self.snapshot = lambda: None
        self.released: list = []
        self.gave_up = threading.Event()
        self._open = True
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while self._open:
            try:
                connection, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:  # closed by `close`
                return
            threading.Thread(target=self._hold, args=(connection,), daemon=True).start()

    def _hold(self, connection: socket.socket) -> None:
        with connection:
            while connection.recv(65536):  # take what the client sends, answer nothing
                pass
        self.released.append(self.snapshot())
        self.gave_up.set()

    def close(self) -> None:
        self._open = False
        self.server.close()


@pytest.fixture()
def silent():
    server = _Silent()
    yield server
    server.close()


ALERT_TIMEOUT_S = 3


def _received() -> tuple[int, int, int]:
    """Messages the working receivers got so far: (webhook, e-mail, Slack)."""
    return len(_Hook.received), len(_Mailbox.delivered), len(_Hook.slack)


def test_a_webhook_that_never_answers_holds_the_tick_for_its_timeout_only(
    project, instance, receivers, silent, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    hook = os.environ["ETL_ASSETS_ALERT_WEBHOOK_URLS"].split(",")[0]
    monkeypatch.setenv("ETL_ASSETS_ALERT_WEBHOOK_URLS",
                       f"http://localhost:{silent.port}/hang/{WEBHOOK_TOKEN},{hook}")
    monkeypatch.setenv("ETL_ASSETS_ALERT_TIMEOUT_S", str(ALERT_TIMEOUT_S))
    silent.snapshot = _received
    for asset in ("landed", "landed_daily"):  # two alerts in one tick
        instance.report_runless_asset_event(dg.AssetCheckEvaluation(
            asset_key=dg.AssetKey(asset), check_name="row_count_anomaly", passed=False,
            severity=dg.AssetCheckSeverity.ERROR, description=f"row_count of {asset} fell"))
    sensor = build_check_failure_sensor(project)
    started = time.monotonic()
    with caplog.at_level("INFO"):
        tick = _tick(sensor, instance, None)
    elapsed = time.monotonic() - started

    # The bound under test: the silent receiver costs one timeout per tick, not one per alert.
    assert elapsed < 5 * ALERT_TIMEOUT_S, elapsed
    # The other channels were not kept waiting: both alerts had reached each of them when the
    # silent webhook's connection was given up.
    assert _received() == (2, 2, 2)
    assert silent.gave_up.wait(ALERT_TIMEOUT_S)  # the server sees the close a moment later
    assert silent.released == [(2, 2, 2)]
    (request,) = tick.run_requests
    alerts = [json.loads(a) for a in request.run_config["ops"]["record_alerts"]["config"]["alerts"]]
    assert [a["channels"] for a in alerts] == [["log", "webhook:127.0.0.1", "email", "slack"]] * 2
    assert [a["failures"] for a in alerts] == [
        [f"webhook:localhost: no answer within {ALERT_TIMEOUT_S} s"],
        [f"webhook:localhost: not sent: the channel's {ALERT_TIMEOUT_S} s were used up"]]
    assert f"alert webhook:localhost failed: no answer within {ALERT_TIMEOUT_S} s" in caplog.text
    assert WEBHOOK_TOKEN not in caplog.text + json.dumps(request.run_config)


def test_an_smtp_server_that_never_answers_delays_no_other_channel(
    receivers, silent, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("ETL_ASSETS_ALERT_SMTP_PORT", str(silent.port))
    monkeypatch.setenv("ETL_ASSETS_ALERT_TIMEOUT_S", str(ALERT_TIMEOUT_S))
    silent.snapshot = _received
    alert = Alert(kind="run_failure", severity="ERROR", title="run 1 failed", message="boom")
    started = time.monotonic()
    with caplog.at_level("INFO"):
        (delivery,) = deliver([alert], load_alert_settings())
    assert time.monotonic() - started < 5 * ALERT_TIMEOUT_S
    assert silent.gave_up.wait(ALERT_TIMEOUT_S)
    assert silent.released == [(1, 0, 1)]  # webhook and Slack had it before SMTP gave up
    assert delivery.channels == ["log", "webhook:127.0.0.1", "slack"]
    refused, timed_out = delivery.failures  # in the channels' order
    assert refused.startswith("webhook:localhost: URLError: ") and "refused" in refused
    assert timed_out == f"email: no answer within {ALERT_TIMEOUT_S} s"
    assert f"alert email failed: no answer within {ALERT_TIMEOUT_S} s" in caplog.text


def test_an_alert_log_from_before_failures_were_recorded_gains_the_column(
    spark: SparkSession
) -> None:
    from etl_assets.orchestration.alerts import ALERT_SCHEMA, Delivery, record_alerts

    spark.sql("CREATE DATABASE IF NOT EXISTS t_old_alerts")
    columns = ", ".join(f"`{f.name}` {f.dataType.simpleString()}"
                        for f in ALERT_SCHEMA if f.name != "failures")
    spark.sql(f"CREATE TABLE t_old_alerts.alert_log ({columns}) USING parquet "
              "PARTITIONED BY (log_date)")
    alert = Alert(kind="run_failure", severity="ERROR", title="run 1 failed", message="boom")
    record_alerts(spark, "t_old_alerts", [
        (alert, Delivery(["log", "slack"], ["email: no answer within 3 s"]))])
    (row,) = spark.table("t_old_alerts.alert_log").collect()
    assert (row.channels, row.failures) == ("log,slack", "email: no answer within 3 s")


def test_an_alert_timeout_that_is_not_a_number_of_seconds_is_refused() -> None:
    with pytest.raises(ValueError, match="ETL_ASSETS_ALERT_TIMEOUT_S='soon' must be a positive"):
        load_alert_settings({"ETL_ASSETS_ALERT_TIMEOUT_S": "soon"})
    assert load_alert_settings({"ETL_ASSETS_ALERT_TIMEOUT_S": "1.5"}).timeout_s == 1.5
    assert load_alert_settings({}).timeout_s == 10


def test_failed_check_alerts_once_to_webhook_and_email_and_alert_log(
    spark: SparkSession, settings, project, instance, receivers, caplog: pytest.LogCaptureFixture
) -> None:
    hooks, mails = receivers
    sensor = build_check_failure_sensor(project)
    assert "no new failed" in _tick(sensor, instance, None).skip_message
    instance.report_runless_asset_event(dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey("landed"), check_name="row_count_anomaly", passed=False,
        severity=dg.AssetCheckSeverity.ERROR, description="row_count 12 is 99% below ..."))
    with caplog.at_level("INFO"):
        tick = _tick(sensor, instance, None)
    (request,) = tick.run_requests
    assert len(hooks) == 1 and hooks[0]["severity"] == "ERROR"
    assert "row_count 12 is 99% below" in hooks[0]["text"]
    assert "/assets/landed?view=checks" in hooks[0]["url"]
    assert len(mails) == 1 and b"row_count_anomaly" in mails[0]
    assert b"[etl_assets ERROR]" in mails[0]
    (slack,) = _Hook.slack
    assert slack["channel"] == "#data-alerts" and "row_count_anomaly" in slack["text"]
    assert slack["auth"] == "Bearer xoxb-test-token"
    assert not _tick(sensor, instance, tick.cursor).run_requests  # once per failure
    assert len(hooks) == 1

    # The failed webhook is logged by its host, and no token reaches a log, the alert job's
    # run config or alert_log: channels are named by kind and host only.
    assert "alert webhook:localhost failed" in caplog.text
    assert WEBHOOK_TOKEN not in caplog.text
    assert WEBHOOK_TOKEN not in json.dumps(request.run_config)
    result = alerts_job.execute_in_process(
        run_config=request.run_config, resources=build_resources(settings), instance=instance)
    assert result.success
    (row,) = spark.sql(f"SELECT * FROM {settings.log_db}.alert_log "
                       f"WHERE alert_id = '{hooks[0]['alert_id']}'").collect()
    assert row.kind == "check_failure" and row.asset == "landed"
    assert row.channels.split(",") == ["log", "webhook:127.0.0.1", "email", "slack"]
    assert row.failures.startswith("webhook:localhost: URLError: ")  # connection refused


def test_a_scheduled_run_that_died_before_its_load_gets_its_failed_rows(
    spark: SparkSession, settings, project, instance, receivers
) -> None:
    from etl_assets.orchestration.sensors import run_failure_alerts

    # The domain schedule's job, as the daemon launches it: a run with no asset selection,
    # which dies (its process killed, say) before any step starts.
    defs = dg.Definitions(assets=build_assets(project), schedules=build_schedules(project),
                          resources=build_resources(settings))
    job = defs.resolve_job_def("domain_job")
    run = instance.create_run_for_job(job, tags={"dagster/schedule_name": "domain_schedule"})
    assert run.asset_selection is None
    failure = instance.report_run_failed(run, "run worker exited before the load started")
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_alerts", dagster_instance=instance,
        dagster_run=instance.get_run_by_id(run.run_id), dagster_event=failure,
    ).for_run_failure()
    request = run_failure_alerts(context)
    config = request.run_config["ops"]["record_alerts"]["config"]
    assert config["failed_assets"] == ["landed"]  # the schedule's one unpartitioned table

    assert alerts_job.execute_in_process(run_config=request.run_config,
                                         resources=build_resources(settings),
                                         instance=instance).success
    rows = spark.table(f"{settings.log_db}.run_log").where(F.col("run_id") == run.run_id)
    assert [(r.asset, r.status) for r in rows.collect()] == [("landed", "FAILED")]


FLAKY = """
database: t_flaky
sources:
  src: {{format: csv, path: "{source}", options: {{header: true}}}}
tables:
  - name: flaky
    inputs: [src]
    retries: {{max: 2, delay_s: 3}}
    sql: SELECT * FROM src
"""


def test_flaky_asset_succeeds_on_its_second_attempt_with_attempt_rows(
    spark: SparkSession, settings, tmp_path: Path, instance
) -> None:
    source = tmp_path / "late" / "data.csv"
    write_spec(tmp_path / "spec", FLAKY.format(source=source))
    project = load_project(tmp_path / "spec")

    def land_after_first_failure() -> None:
        deadline = time.time() + 120
        while time.time() < deadline:
            rows = spark.sql(f"SELECT count(*) AS n FROM {settings.log_db}.run_log "
                             "WHERE asset = 'flaky' AND status = 'RETRY'").first().n
            if rows:
                source.parent.mkdir(parents=True, exist_ok=True)
                source.write_text("id\n1\n2\n")
                return
            time.sleep(0.2)

    spark.sql(f"CREATE DATABASE IF NOT EXISTS {settings.log_db}")
    from etl_assets.engine.hive_log import HiveLog

    HiveLog(spark, settings.log_db).ensure_tables()
    lander = threading.Thread(target=land_after_first_failure, daemon=True)
    lander.start()
    result = materialize_project(project, settings, instance, selection=["flaky"])
    lander.join(timeout=5)
    assert result.success
    rows = spark.sql(f"SELECT status, attempt, error_message FROM {settings.log_db}.run_log "
                     f"WHERE run_id = '{result.run_id}' ORDER BY attempt").collect()
    assert [(r.status, r.attempt) for r in rows] == [("RETRY", 1), ("SUCCESS", 2)]
    assert rows[0].error_message and rows[1].error_message is None
    assert spark.table("t_flaky.flaky").count() == 2
    assert os.path.exists(source)


def test_run_failure_sensor_alerts_and_the_alert_job_fills_missing_failed_rows(
    spark: SparkSession, settings, tmp_path: Path, instance, receivers
) -> None:
    from etl_assets.orchestration.sensors import run_failure_alerts

    hooks, _ = receivers
    write_spec(tmp_path / "spec", FLAKY.format(source=tmp_path / "never" / "there.csv")
               .replace("retries: {max: 2, delay_s: 3}", "retries: {max: 0}"))
    failed = materialize_project(load_project(tmp_path / "spec"), settings, instance,
                                 selection=["flaky"], raise_on_error=False)
    assert not failed.success
    run = instance.get_run_by_id(failed.run_id)
    failure = [e for e in instance.all_logs(failed.run_id)
               if e.dagster_event and e.dagster_event.event_type_value == "PIPELINE_FAILURE"][0]
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_alerts", dagster_instance=instance, dagster_run=run,
        dagster_event=failure.dagster_event).for_run_failure()
    request = run_failure_alerts(context)
    assert isinstance(request, dg.RunRequest)
    assert len(hooks) == 1 and hooks[0]["kind"] == "run_failure"
    assert hooks[0]["url"].endswith(f"/runs/{failed.run_id}")

    # The failed run already has the FAILED row its asset wrote: the alert job adds none.
    assert alerts_job.execute_in_process(
        run_config=request.run_config, resources=build_resources(settings),
        instance=instance).success
    # A run that died before its asset could log: the alert job writes the FAILED row.
    config = request.run_config["ops"]["record_alerts"]["config"]
    config = {**config, "failed_run_id": "dead-run", "failed_assets": ["flaky"]}
    result = alerts_job.execute_in_process(
        run_config={"ops": {"record_alerts": {"config": config}}},
        resources=build_resources(settings), instance=instance)
    assert result.success
    row = spark.sql(f"SELECT status, error_message FROM {settings.log_db}.run_log "
                    "WHERE run_id = 'dead-run'").first()
    assert row.status == "FAILED" and row.error_message
    rows = spark.sql(f"SELECT count(*) AS n FROM {settings.log_db}.run_log "
                     f"WHERE run_id = '{failed.run_id}'").first().n
    assert rows == 1
    # A run id typed into the launchpad is data, not SQL: quoted as SQL text it would match
    # every row (so 'flaky' would look logged and no FAILED row would be written).
    injected = "dead' OR '1'='1"
    config = {**config, "failed_run_id": injected}
    assert alerts_job.execute_in_process(
        run_config={"ops": {"record_alerts": {"config": config}}},
        resources=build_resources(settings), instance=instance).success
    logged = spark.table(f"{settings.log_db}.run_log").where(F.col("run_id") == injected)
    assert [(r.asset, r.status) for r in logged.collect()] == [("flaky", "FAILED")]
