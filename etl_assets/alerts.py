"""Alerts: one message, every configured channel, and always a row in `etl_log.alert_log`.

Channels are configured in one place, the environment (`settings.AlertSettings`); secrets
come only from there. With no channel configured an alert still reaches the Dagster log and
the `alert_log` Hive table, so the demo works offline.

- webhook: a JSON POST to each URL in `ETL_ASSETS_ALERT_WEBHOOK_URLS` (generic receivers,
  PagerDuty-style event endpoints, chat relays);
- e-mail: SMTP to `ETL_ASSETS_ALERT_SMTP_TO` through `ETL_ASSETS_ALERT_SMTP_HOST`;
- Slack: `ETL_ASSETS_SLACK_TOKEN` + `ETL_ASSETS_SLACK_CHANNEL`, through dagster-slack.
"""

from __future__ import annotations

import json
import logging
import smtplib
import urllib.request
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from email.message import EmailMessage
from urllib.parse import urlsplit

from pyspark.sql import SparkSession
from pyspark.sql import types as T

from etl_assets.hive_log import HiveLog
from etl_assets.settings import AlertSettings
from etl_assets.sql_quoting import column_definitions, table_name
from etl_assets.writes import append_records

logger = logging.getLogger(__name__)

ALERT_LOG = "alert_log"
ALERT_SCHEMA = T.StructType([
    T.StructField("alert_id", T.StringType()),
    T.StructField("kind", T.StringType()),
    T.StructField("severity", T.StringType()),
    T.StructField("asset", T.StringType()),
    T.StructField("run_id", T.StringType()),
    T.StructField("title", T.StringType()),
    T.StructField("message", T.StringType()),
    T.StructField("url", T.StringType()),
    T.StructField("channels", T.StringType()),
    T.StructField("sent_at", T.TimestampType()),
    T.StructField("log_date", T.DateType()),
])


@dataclass(frozen=True)
class Alert:
    """Something a person should look at: a failed run, a failed check."""

    kind: str
    severity: str
    title: str
    message: str
    asset: str | None = None
    run_id: str | None = None
    url: str | None = None
    alert_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def text(self) -> str:
        """The alert as plain text (e-mail body, chat message)."""
        lines = [f"[{self.severity}] {self.title}", self.message]
        if self.url:
            lines.append(self.url)
        return "\n".join(lines)


def webhook_channel(url: str) -> str:
    """How a webhook is named in logs and `alert_log`: `webhook:<host>`.

    Never the path or the query: receivers (Slack, Teams, PagerDuty relays) carry the token
    there, and `alert_log` is readable by anyone who can query the metastore.
    """
    return f"webhook:{urlsplit(url).hostname or 'unknown-host'}"


def _redacted(error: Exception, url: str) -> str:
    """An error's text with the webhook's URL (and so its token) replaced by its channel."""
    return str(error).replace(url, webhook_channel(url))


def send_webhook(alert: Alert, url: str, timeout_s: float = 10) -> None:
    """POST the alert as JSON (fields of `Alert`, plus `text`)."""
    body = json.dumps({**asdict(alert), "text": alert.text()}).encode()
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
        if response.status >= 300:
            raise OSError(f"{webhook_channel(url)} answered {response.status}")


def send_email(alert: Alert, settings: AlertSettings, timeout_s: float = 10) -> None:
    """Send the alert by SMTP to every configured recipient."""
    message = EmailMessage()
    message["Subject"] = f"[etl_assets {alert.severity}] {alert.title}"
    message["From"] = settings.smtp_from
    message["To"] = ", ".join(settings.smtp_to)
    message.set_content(alert.text())
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=timeout_s) as smtp:
        if settings.smtp_starttls:
            smtp.starttls()
        if settings.smtp_user:
            smtp.login(settings.smtp_user, settings.smtp_password or "")
        smtp.send_message(message)


def send_slack(alert: Alert, settings: AlertSettings) -> None:
    """Post the alert to the Slack channel with dagster-slack's client."""
    from dagster_slack import SlackResource

    client = SlackResource(token=settings.slack_token or "").get_client()
    if settings.slack_api_url:
        client.base_url = settings.slack_api_url.rstrip("/") + "/"
    client.chat_postMessage(channel=settings.slack_channel, text=alert.text())


def deliver(alert: Alert, settings: AlertSettings, spark: SparkSession | None) -> list[str]:
    """Send an alert to every configured channel; returns the channels that took it.

    A channel that fails is logged and skipped: one broken receiver never hides the alert
    from the others. The `alert_log` row lists the channels that took it.
    """
    delivered = ["log"]
    logger.warning("%s", alert.text())
    for url in settings.webhook_urls:
        try:
            send_webhook(alert, url)
            delivered.append(webhook_channel(url))
        except Exception as err:  # noqa: BLE001 - other channels must still get it
            logger.error("alert %s failed: %s", webhook_channel(url), _redacted(err, url))
    if settings.smtp_host and settings.smtp_to:
        try:
            send_email(alert, settings)
            delivered.append("email")
        except Exception as err:  # noqa: BLE001
            logger.error("alert e-mail via %s failed: %s", settings.smtp_host, err)
    if settings.slack_token and settings.slack_channel:
        try:
            send_slack(alert, settings)
            delivered.append("slack")
        except Exception as err:  # noqa: BLE001
            logger.error("alert to Slack %s failed: %s", settings.slack_channel, err)
    if spark is not None:
        record_alerts(spark, settings.log_db, [(alert, delivered)])
    return delivered


def record_alerts(spark: SparkSession, log_db: str, alerts: list[tuple[Alert, list[str]]]) -> None:
    """Append alerts to `<log_db>.alert_log` (created on first use) in one insert."""
    log = HiveLog(spark, log_db)
    log.ensure_tables()
    table = log.table(ALERT_LOG)
    if not spark.catalog.tableExists(table):
        columns = column_definitions([(f.name, f.dataType.simpleString()) for f in ALERT_SCHEMA])
        spark.sql(f"CREATE TABLE IF NOT EXISTS {table_name(table)} ({columns}) USING parquet "
                  "PARTITIONED BY (log_date)")
    now = datetime.now(timezone.utc)
    rows = [(a.alert_id, a.kind, a.severity, a.asset, a.run_id, a.title, a.message, a.url,
             ",".join(channels), now, now.date()) for a, channels in alerts]
    append_records(spark, table, ALERT_SCHEMA, rows, "log_date")
