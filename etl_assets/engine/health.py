"""Pipeline health: the log tables (`etl_log.*`) aggregated into the panels of one report.

Every number is aggregated in Spark SQL over the period's `log_date` partitions of `run_log`
and `check_log`; only the small aggregates reach Python (a few rows per day, status, domain
and table, and capped lists: the newest failures, the open flags, the newest loads of some
tables), so the report costs the same with a hundred log rows as with millions of them.

The page itself is drawn by `etl_assets.core.health_page`; the Dagster asset
`etl_health_report` (`etl_assets.orchestration.health_asset`) writes it under
`$ETL_ASSETS_HOME/reports/health.html`.
"""

from __future__ import annotations

import logging
import math
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

from etl_assets.core.health_page import render_page
from etl_assets.core.health_report import DEFAULT_DAYS, NO_DOMAIN, HealthReport, run_panels
from etl_assets.core.records import FAILED, SUCCESS
from etl_assets.core.sql_quoting import date_literal, table_name
from etl_assets.engine.hive_log import CHECK_FEEDBACK, CHECK_LOG, RUN_LOG, HiveLog

logger = logging.getLogger(__name__)

MAX_FAILURES = 20
MAX_FLAGS = 50
MAX_SPARKLINE_TABLES = 24
MAX_SPARKLINE_POINTS = 60
MAX_ERROR_CHARS = 500


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value.isoformat(timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    if hasattr(value, "is_finite"):  # Decimal
        value = float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN
    return value


def _rows(spark: SparkSession, sql: str) -> list[dict[str, Any]]:
    return [{k: _plain(v) for k, v in row.asDict().items()} for row in spark.sql(sql).collect()]


def build_report(
    spark: SparkSession, log_db: str, days: int = DEFAULT_DAYS, as_of: date | None = None
) -> HealthReport:
    """Aggregate the last `days` days of the log tables into a report.

    Four queries (runs grouped by table, day, domain and status; the newest failures; the open
    flags; the sparklines), none with a window over the whole period: each Spark query costs
    a fixed second or so on a small machine whatever the rows, so the fewer the better, and
    a window without `PARTITION BY` moves every row to one task (Spark warns "No Partition
    Defined"). What is cheaper in Python over the grouped rows (totals, ranks, the slowest
    tables) is done there.

    Args:
        spark: A session on the metastore that holds the log tables.
        log_db: Database of the log tables (`Settings.log_db`); created if missing, like the
            tables themselves, so a fresh installation shows an empty report.
        days: Days in the period, ending with `as_of` (inclusive), by `log_date` (UTC).
        as_of: Last day of the period; default: today in UTC.

    Returns:
        The panels' data. Capped lists: the `MAX_FAILURES` newest failures, the `MAX_FLAGS`
        open flags (ERROR first), the `MAX_DURATION_TABLES` slowest tables and
        `MAX_SPARKLINE_POINTS` newest loads of `MAX_SPARKLINE_TABLES` tables (flagged first).
    """
    if days < 1:
        raise ValueError(f"days={days}: the report needs a period of at least one day")
    log = HiveLog(spark, log_db)
    end = as_of or datetime.now(timezone.utc).date()
    start = end - timedelta(days=days - 1)
    period = f"log_date BETWEEN {date_literal(start)} AND {date_literal(end)}"
    runs = f"(SELECT * FROM {table_name(log.table(RUN_LOG))} WHERE {period})"
    checks = f"(SELECT * FROM {table_name(log.table(CHECK_LOG))} WHERE {period})"
    # Asked first (seven metastore calls, milliseconds once its client is up, which the
    # queries need anyway), so that a fresh installation (no log tables yet) or one from an
    # older version (a column the queries read is missing) gets its tables made as this
    # version has them, instead of queries failing on them, which Spark logs as errors.
    if not log.is_current((RUN_LOG, CHECK_LOG, CHECK_FEEDBACK)):
        log.ensure_tables()
    return _build(spark, log, days, start, end, runs, checks)


def _build(
    spark: SparkSession, log: HiveLog, days: int, start: date, end: date, runs: str,
    checks: str,
) -> HealthReport:
    log_db = log.database
    # The four queries are independent: they run side by side. In a fresh process, as the
    # demo's report step is, each pays a second or two of class loading and code generation
    # on its first run, mostly on one thread, so two cores finish them in well under their sum
    # (py4j gives each thread its own connection; Spark runs concurrent jobs of one session).
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="health") as pool:
        grouped = pool.submit(_rows, spark, f"""
            SELECT asset, domain, log_date AS day, status, count(*) AS runs,
                   sum(row_count) AS row_count, sum(duration_s) AS duration_sum,
                   count(duration_s) AS timed, max(duration_s) AS duration_max
            FROM {runs} GROUP BY asset, domain, log_date, status
        """)
        # Sorted and cut by Spark's top-k (no shuffle): only MAX_FAILURES rows leave it.
        failed = pool.submit(_rows, spark, f"""
            SELECT finished_at, asset, partition_key, coalesce(domain, '{NO_DOMAIN}') AS domain,
                   run_id, attempt, duration_s,
                   substring(error_message, 1, {MAX_ERROR_CHARS}) AS error
            FROM {runs} WHERE status = '{FAILED}'
            ORDER BY finished_at DESC, asset LIMIT {MAX_FAILURES}
        """)
        open_flags = pool.submit(_open_flags, spark, log, checks)
        lines = pool.submit(_sparklines, spark, runs, checks)
        # One scan of run_log, grouped as finely as any panel needs (table, domain, day,
        # status): at most tables x days x statuses rows, whatever the number of loads. The
        # totals, the status mix, status by domain, runs per day and the slowest tables are
        # sums over them.
        panels = run_panels(grouped.result())
        totals = panels.pop("totals")
        if not totals["runs"]:
            run_log = table_name(log.table(RUN_LOG))
            has_runs = spark.sql(f"SELECT 1 FROM {run_log} LIMIT 1").first() is not None
            return HealthReport(
                log_db=log_db, days=days, start=start.isoformat(), end=end.isoformat(),
                generated_at=_plain(datetime.now(timezone.utc)), log_has_runs=has_runs,
                totals=totals)
        flags, totals["open_flags"] = open_flags.result()
        return HealthReport(
            log_db=log_db, days=days, start=start.isoformat(), end=end.isoformat(),
            generated_at=_plain(datetime.now(timezone.utc)), log_has_runs=True, totals=totals,
            failures=failed.result(), flags=flags, sparklines=lines.result(), **panels)


def _open_flags(spark: SparkSession, log: HiveLog, checks: str) -> tuple[list[dict], int]:
    """Checks whose latest evaluation in the period failed (anomaly and quality), unless
    someone accepted the flagged load (`etl-assets accept`): then it is no incident.

    Returns the `MAX_FLAGS` first (ERROR first, then newest) and how many are open: both from
    one global aggregate (a count and a bounded `min_by`), not a window over all flags.
    """
    feedback = table_name(log.table(CHECK_FEEDBACK))
    columns = ("checked_at", "asset", "partition_key", "check_name", "metric", "severity",
               "status", "value", "baseline", "lower", "upper", "description", "target_run_id")
    # min_by's order: ERROR first, newest first (a missing time last), then asset and check.
    (row,) = spark.sql(f"""
        WITH latest AS (
          SELECT * FROM (
            SELECT *, row_number() OVER (PARTITION BY asset, check_name
                                         ORDER BY checked_at DESC, run_id DESC) AS latest
            FROM {checks})
          WHERE latest = 1 AND NOT passed)
        SELECT count(*) AS open_total,
               min_by(struct({", ".join(columns)}),
                      struct(CASE WHEN severity = 'ERROR' THEN 0 ELSE 1 END,
                             coalesce(-unix_micros(checked_at), {2**63 - 1}),
                             asset, check_name),
                      {MAX_FLAGS}) AS flags
        FROM latest c
        LEFT ANTI JOIN (SELECT DISTINCT asset, target_run_id FROM {feedback}
                        WHERE action = 'accept') a
          ON c.asset = a.asset AND c.target_run_id = a.target_run_id
    """).collect()
    flags = [{k: _plain(v) for k, v in flag.asDict().items()} for flag in row["flags"] or ()]
    return flags, int(row["open_total"])


def _sparklines(spark: SparkSession, runs: str, checks: str) -> list[dict[str, Any]]:
    """row_count of each table's newest successful loads; a point is flagged when a check
    that judged that load (same run and partition) failed.

    One point per partition key (unpartitioned: per run), its latest load; each table's
    `MAX_SPARKLINE_POINTS` newest points come from a bounded `max_by` per table, and Spark's
    top-k picks the `MAX_SPARKLINE_TABLES` tables (flagged first, then by name). Loads
    finished at the same second are told apart by run id, so the same log always gives the
    same points.
    """
    lines = spark.sql(f"""
        WITH loads AS (
          SELECT asset, max_by(struct(run_id, partition_key, finished_at, row_count),
                               struct(finished_at, run_id)) AS l
          FROM {runs}
          WHERE status = '{SUCCESS}' AND row_count IS NOT NULL AND asset IS NOT NULL
          GROUP BY asset, coalesce(partition_key, run_id)),
        flagged AS (
          SELECT asset, target_run_id, partition_key,
                 concat_ws(', ', sort_array(collect_set(check_name))) AS checks
          FROM {checks} WHERE NOT passed GROUP BY asset, target_run_id, partition_key),
        lines AS (
          SELECT l.asset,
                 max_by(struct(coalesce(l.l.partition_key, CAST(l.l.finished_at AS STRING)) AS x,
                               l.l.row_count AS row_count, f.checks AS flagged),
                        struct(l.l.finished_at, l.l.partition_key, l.l.run_id),
                        {MAX_SPARKLINE_POINTS}) AS points
          FROM loads l LEFT JOIN flagged f ON f.asset = l.asset AND f.target_run_id = l.l.run_id
               AND f.partition_key <=> l.l.partition_key
          GROUP BY l.asset)
        SELECT asset, points FROM lines
        ORDER BY exists(points, p -> p.flagged IS NOT NULL) DESC, asset
        LIMIT {MAX_SPARKLINE_TABLES}
    """).collect()
    return [{"asset": line["asset"],
             # max_by lists the newest first; points with the same x keep the load order.
             "points": sorted(({k: _plain(v) for k, v in p.asDict().items()}
                               for p in reversed(line["points"])), key=lambda p: p["x"])}
            for line in lines]


def write_report(
    spark: SparkSession, log_db: str, out: Path, days: int = DEFAULT_DAYS,
    as_of: date | None = None,
) -> HealthReport:
    """Build the report and write its self-contained HTML page to `out` (folders created)."""
    report = build_report(spark, log_db, days=days, as_of=as_of)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(render_page(report), encoding="utf-8")
    tmp.replace(out)  # a browser never sees half a page
    logger.info("health report: %s (%d bytes)", out, out.stat().st_size)
    return report


