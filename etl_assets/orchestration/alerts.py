"""Alerts: one message, every configured channel, and always a row in `etl_log.alert_log`.

Channels are configured in one place, the environment (`settings.AlertSettings`); secrets
come only from there. With no channel configured an alert still reaches the Dagster log and
the `alert_log` Hive table, so the demo works offline.

- webhook: a JSON POST to each URL in `ETL_ASSETS_ALERT_WEBHOOK_URLS` (generic receivers,
  PagerDuty-style event endpoints, chat relays);
- e-mail: SMTP to `ETL_ASSETS_ALERT_SMTP_TO` through `ETL_ASSETS_ALERT_SMTP_HOST`;
- Slack: `ETL_ASSETS_SLACK_TOKEN` + `ETL_ASSETS_SLACK_CHANNEL`, through dagster-slack.

Deliveries run in sensor ticks, so each channel gets `ETL_ASSETS_ALERT_TIMEOUT_S` for a tick's
alerts and the channels send at once: a receiver that never answers cannot stall the daemon
or hold back the other channels, and its failure is recorded in `alert_log.failures`.
"""

from __future__ import annotations

import json
import logging
import smtplib
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from email.message import EmailMessage
from functools import partial
from urllib.parse import urlsplit

from pyspark.sql import SparkSession
from pyspark.sql import types as T

from etl_assets.core.settings import AlertSettings
from etl_assets.core.sql_quoting import column_definitions, table_name
from etl_assets.engine.hive_log import HiveLog
from etl_assets.engine.writes import append_records

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
    # After sent_at: where `ALTER TABLE ADD COLUMNS` puts it in a table from before it existed.
    T.StructField("failures", T.StringType()),
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


def _redacted(text: str, url: str) -> str:
    """An error's text with the webhook's URL (and so its token) replaced by its channel."""
    return text.replace(url, webhook_channel(url))


def send_webhook(alert: Alert, url: str, timeout_s: float = 10) -> None:
    """POST the alert as JSON (fields of `Alert`, plus `text`).

    `timeout_s` bounds the connect and each wait for the receiver's bytes (not name lookup).
    """
    body = json.dumps({**asdict(alert), "text": alert.text()}).encode()
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
        if response.status >= 300:
            raise OSError(f"{webhook_channel(url)} answered {response.status}")


def send_email(alert: Alert, settings: AlertSettings, timeout_s: float = 10) -> None:
    """Send the alert by SMTP to every configured recipient.

    `timeout_s` bounds the connect and each wait for one of the server's replies.
    """
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


def send_slack(alert: Alert, settings: AlertSettings, timeout_s: float = 10) -> None:
    """Post the alert to the Slack channel with dagster-slack's client.

    `timeout_s` bounds each HTTP request (slack_sdk's default is 30 s).
    """
    from dagster_slack import SlackResource

    client = SlackResource(token=settings.slack_token or "").get_client()
    client.timeout = timeout_s
    if settings.slack_api_url:
        client.base_url = settings.slack_api_url.rstrip("/") + "/"
    client.chat_postMessage(channel=settings.slack_channel, text=alert.text())


@dataclass
class Delivery:
    """Where one alert went: the channels that took it, and why the others did not.

    `channels` starts with `log` (the Dagster log always gets it); `failures` holds
    `<channel>: <reason>` entries, e.g. `webhook:hooks.example.com: no answer within 10 s`.
    """

    channels: list[str]
    failures: list[str] = field(default_factory=list)


# A sender takes the alert and `timeout_s`, its time left, by keyword.
_Sender = Callable[..., None]
# How long `deliver` waits past the channels' budget for a sender whose socket just timed out,
# so that its own error is recorded rather than "no answer".
_JOIN_GRACE_S = 0.5


def _channels(settings: AlertSettings) -> list[tuple[str, _Sender, str | None]]:
    """The configured channels as (name, sender, webhook URL to redact from errors)."""
    channels: list[tuple[str, _Sender, str | None]] = [
        (webhook_channel(url), partial(send_webhook, url=url), url)
        for url in settings.webhook_urls]
    if settings.smtp_host and settings.smtp_to:
        channels.append(("email", partial(send_email, settings=settings), None))
    if settings.slack_token and settings.slack_channel:
        channels.append(("slack", partial(send_slack, settings=settings), None))
    return channels


def _timed_out(error: BaseException) -> bool:
    """Whether a socket timeout caused the error (smtplib and urllib wrap it in their own)."""
    seen: set[int] = set()
    stack: list[object] = [error]
    while stack:
        current = stack.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, TimeoutError):
            return True
        stack += [current.__cause__, current.__context__, getattr(current, "reason", None)]
    return False


def _send_all(send: _Sender, alerts: Sequence[Alert], deadline: float, budget_s: float,
              outcomes: list[str | None]) -> None:
    """Send the alerts in order through one channel until done or its deadline passes.

    Each slot of `outcomes` becomes `""` (delivered) or the reason it was not; a slot left
    `None` means the caller stopped waiting first. Each send gets the time left as its
    timeout, so the thread itself ends near the deadline.
    """
    for position, alert in enumerate(alerts):
        left = deadline - time.monotonic()
        if left <= 0:
            outcomes[position] = f"not sent: the channel's {budget_s:g} s were used up"
            continue
        try:
            send(alert, timeout_s=left)
            outcomes[position] = ""
        except Exception as err:  # noqa: BLE001 - recorded; other channels must still get it
            outcomes[position] = (f"no answer within {budget_s:g} s" if _timed_out(err)
                                  else f"{type(err).__name__}: {err}")


def deliver(alerts: Sequence[Alert], settings: AlertSettings) -> list[Delivery]:
    """Send alerts to every configured channel, all channels at once; one `Delivery` each.

    Each channel sends the alerts in order in its own thread and has
    `settings.timeout_s` seconds for all of them (connecting and every wait for the receiver
    included), so a receiver that accepts the connection and never answers costs that much
    once, delays no other channel, and `deliver` returns within `timeout_s` + 0.5 s whatever
    the receivers do. An alert a channel did not take is in its `Delivery.failures` and in the
    log, webhooks named by host only (`webhook_channel`). A sender still blocked past the
    deadline (in a name lookup, which no socket timeout covers) is left to finish on its own:
    its thread is a daemon, and it starts no other alert after the deadline.
    """
    for alert in alerts:
        logger.warning("%s", alert.text())
    if not alerts:
        return []
    start = time.monotonic()
    deadline = start + settings.timeout_s
    running = []
    for name, send, url in _channels(settings):
        outcomes: list[str | None] = [None] * len(alerts)
        thread = threading.Thread(
            target=_send_all, args=(send, alerts, deadline, settings.timeout_s, outcomes),
            name=f"etl_assets-alert-{name}", daemon=True)
        thread.start()
        running.append((name, url, thread, outcomes))
    deliveries = [Delivery(channels=["log"]) for _ in alerts]
    for name, url, thread, outcomes in running:
        thread.join(max(0.0, deadline + _JOIN_GRACE_S - time.monotonic()))
        for delivery, outcome in zip(deliveries, list(outcomes)):
            if outcome == "":
                delivery.channels.append(name)
                continue
            reason = outcome or f"no answer within {settings.timeout_s:g} s"
            reason = _redacted(reason, url) if url else reason
            delivery.failures.append(f"{name}: {reason[:500]}")
            logger.error("alert %s failed: %s", name, reason)
    return deliveries


def record_alerts(spark: SparkSession, log_db: str, alerts: list[tuple[Alert, Delivery]]) -> None:
    """Append alerts to `<log_db>.alert_log` (created on first use) in one insert.

    `channels` lists the channels that took an alert (comma-separated), `failures` those that
    did not, with the reason (`; `-separated); a table from before `failures` gains it.
    """
    log = HiveLog(spark, log_db)
    log.ensure_tables()
    table = log.table(ALERT_LOG)
    if not spark.catalog.tableExists(table):
        columns = column_definitions([(f.name, f.dataType.simpleString()) for f in ALERT_SCHEMA])
        spark.sql(f"CREATE TABLE IF NOT EXISTS {table_name(table)} ({columns}) USING parquet "
                  "PARTITIONED BY (log_date)")
    elif "failures" not in spark.table(table).columns:
        spark.sql(f"ALTER TABLE {table_name(table)} ADD COLUMNS (`failures` string)")
    now = datetime.now(timezone.utc)
    rows = [(a.alert_id, a.kind, a.severity, a.asset, a.run_id, a.title, a.message, a.url,
             ",".join(d.channels), now, "; ".join(d.failures) or None, now.date())
            for a, d in alerts]
    append_records(spark, table, ALERT_SCHEMA, rows, "log_date")
