"""Pipeline health: the log tables (`etl_log.*`) aggregated into the panels of one report.

Every number is aggregated in Spark SQL over the period's `log_date` partitions of `run_log`
and `check_log`; only the small aggregates reach Python (a few rows per day, status, domain
and table, and capped lists: the newest failures, the open flags, the newest loads of some
tables), so the report costs the same with a hundred log rows as with millions of them.

The page itself is drawn by `etl_assets.health_page`; this module also builds the Dagster
asset `etl_health_report` that writes it under `$ETL_ASSETS_HOME/reports/health.html`.
"""

# No `from __future__ import annotations`: Dagster reads the asset's config annotation at
# definition time and cannot resolve it from a string.
import logging
import math
import uuid
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_pyspark import LazyPySparkResource
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession

from etl_assets.hive_log import (
    CHECK_FEEDBACK, CHECK_LOG, FAILED, RETRY, RUN_LOG, SUCCESS, HiveLog)
from etl_assets.settings import Settings
from etl_assets.specs import Project
from etl_assets.sql_quoting import date_literal, table_name
from etl_assets.tables import EtlLogResource

logger = logging.getLogger(__name__)

HEALTH_REPORT_ASSET = "etl_health_report"
REPORT_FILE = Path("reports") / "health.html"
DEFAULT_DAYS = 30
MAX_FAILURES = 20
MAX_FLAGS = 50
MAX_DURATION_TABLES = 20
MAX_SPARKLINE_TABLES = 24
MAX_SPARKLINE_POINTS = 60
MAX_ERROR_CHARS = 500
NO_DOMAIN = "(no domain)"

# Metadata of the asset's materializations: plain numbers, so the UI plots them over time.
TABLES_LOADED = "health/tables_loaded"
ROWS_LOADED = "health/rows_loaded"
RUNS = "health/runs"
FAILED_RUNS = "health/failed_runs"
OPEN_FLAGS = "health/open_flags"
PAGE = "health/page"
SUMMARY = "health/summary"


@dataclass(frozen=True)
class HealthReport:
    """The aggregated panels of one report; `asdict` of it is the page's embedded data.

    Days are ISO dates (`YYYY-MM-DD`), times ISO timestamps in UTC. Lists are sorted the way
    the page shows them.
    """

    log_db: str
    days: int
    start: str
    end: str
    generated_at: str
    log_has_runs: bool
    totals: dict[str, int]
    status: list[dict[str, Any]] = field(default_factory=list)
    status_by_domain: list[dict[str, Any]] = field(default_factory=list)
    daily: list[dict[str, Any]] = field(default_factory=list)
    durations: list[dict[str, Any]] = field(default_factory=list)
    slowest: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    flags: list[dict[str, Any]] = field(default_factory=list)
    sparklines: list[dict[str, Any]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """No run in the period."""
        return not self.totals["runs"]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (what the page embeds as `#report-data`)."""
        return asdict(self)


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


def _totals(rows: list[dict[str, Any]]) -> dict[str, int]:
    by_status = {r["status"]: r for r in rows if r["grouped_by"] == "status"}
    overall = next((r for r in rows if r["grouped_by"] == "all"), None)
    success = by_status.get(SUCCESS, {})
    return {
        "runs": int(overall["runs"]) if overall else 0,
        "success": int(success.get("runs") or 0),
        "failed": int(by_status.get(FAILED, {}).get("runs") or 0),
        "retry": int(by_status.get(RETRY, {}).get("runs") or 0),
        "tables_seen": int(overall["tables"]) if overall else 0,
        "tables_loaded": int(success.get("tables") or 0),
        "rows_loaded": int(success.get("rows_loaded") or 0),
        "open_flags": 0,
    }


def build_report(
    spark: SparkSession, log_db: str, days: int = DEFAULT_DAYS, as_of: date | None = None
) -> HealthReport:
    """Aggregate the last `days` days of the log tables into a report.

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
    log.ensure_tables()
    end = as_of or datetime.now(timezone.utc).date()
    start = end - timedelta(days=days - 1)
    period = f"log_date BETWEEN {date_literal(start)} AND {date_literal(end)}"
    # The period's rows are read once (many small files: one per append and day) and kept in
    # Spark's memory for the queries below, each of which would otherwise scan them again.
    suffix = uuid.uuid4().hex[:12]
    runs, checks = f"_health_runs_{suffix}", f"_health_checks_{suffix}"
    cached = [
        _cache(spark, runs, f"""
            SELECT run_id, asset, partition_key, domain, status, finished_at, duration_s,
                   row_count, attempt, log_date,
                   CASE WHEN status = '{FAILED}'
                        THEN substring(error_message, 1, {MAX_ERROR_CHARS}) END AS error
            FROM {table_name(log.table(RUN_LOG))} WHERE {period}"""),
        _cache(spark, checks, f"SELECT * FROM {table_name(log.table(CHECK_LOG))} WHERE {period}"),
    ]
    try:
        return _build(spark, log, days, start, end, runs, checks)
    finally:
        for name, frame in cached:
            spark.catalog.dropTempView(name)
            frame.unpersist()


def _cache(spark: SparkSession, name: str, sql: str) -> tuple[str, DataFrame]:
    frame = spark.sql(sql).persist(StorageLevel.MEMORY_AND_DISK)
    frame.createOrReplaceTempView(name)
    return name, frame


def _build(
    spark: SparkSession, log: HiveLog, days: int, start: date, end: date, runs: str,
    checks: str,
) -> HealthReport:
    log_db = log.database

    # One scan for the totals, the status mix, status by domain and runs/rows per day.
    grouped = _rows(spark, f"""
        SELECT CASE WHEN grouping(status) = 1 THEN 'all' WHEN grouping(domain) = 0 THEN 'domain'
                    WHEN grouping(log_date) = 0 THEN 'day' ELSE 'status' END AS grouped_by,
               coalesce(domain, '{NO_DOMAIN}') AS domain, log_date AS day, status,
               count(*) AS runs, count(DISTINCT asset) AS tables,
               sum(CASE WHEN status = '{SUCCESS}' THEN row_count END) AS rows_loaded
        FROM {runs}
        GROUP BY GROUPING SETS ((status), (domain, status), (log_date, status), ())
    """)
    totals = _totals(grouped)
    if not totals["runs"]:
        run_log = table_name(log.table(RUN_LOG))
        has_runs = spark.sql(f"SELECT 1 FROM {run_log} LIMIT 1").first() is not None
        return HealthReport(
            log_db=log_db, days=days, start=start.isoformat(), end=end.isoformat(),
            generated_at=_plain(datetime.now(timezone.utc)), log_has_runs=has_runs,
            totals=totals)

    status = sorted(({"status": r["status"], "runs": r["runs"]} for r in grouped
                     if r["grouped_by"] == "status"), key=lambda r: (-r["runs"], r["status"]))
    by_domain = sorted(({"domain": r["domain"], "status": r["status"], "runs": r["runs"]}
                        for r in grouped if r["grouped_by"] == "domain"),
                       key=lambda r: (r["domain"], r["status"]))
    daily = sorted(({"day": r["day"], "status": r["status"], "runs": r["runs"],
                     "rows_loaded": int(r["rows_loaded"] or 0)}
                    for r in grouped if r["grouped_by"] == "day"),
                   key=lambda r: (r["day"], r["status"]))

    # Successful loads' duration per table and day, for the slowest tables on average.
    durations = _rows(spark, f"""
        WITH ok AS (SELECT asset, log_date, duration_s FROM {runs} WHERE status = '{SUCCESS}'),
        slowest AS (
          SELECT asset, avg(duration_s) AS mean_s, max(duration_s) AS max_s, count(*) AS loads,
                 row_number() OVER (ORDER BY avg(duration_s) DESC, asset) AS rank
          FROM ok GROUP BY asset)
        SELECT ok.asset, s.rank, s.mean_s, s.max_s, s.loads, ok.log_date AS day,
               avg(ok.duration_s) AS duration_s, count(*) AS day_loads
        FROM ok JOIN slowest s ON ok.asset = s.asset AND s.rank <= {MAX_DURATION_TABLES}
        GROUP BY ok.asset, s.rank, s.mean_s, s.max_s, s.loads, ok.log_date
        ORDER BY s.rank, day
    """)
    slowest = {r["asset"]: {"asset": r["asset"], "mean_s": r["mean_s"], "max_s": r["max_s"],
                            "loads": r["loads"]} for r in durations}

    failures = _rows(spark, f"""
        SELECT finished_at, asset, partition_key, coalesce(domain, '{NO_DOMAIN}') AS domain,
               run_id, attempt, duration_s, error
        FROM {runs} WHERE status = '{FAILED}'
        ORDER BY finished_at DESC, asset LIMIT {MAX_FAILURES}
    """)

    # Open flags: checks whose latest evaluation in the period failed (anomaly and quality),
    # unless someone accepted the flagged load (`etl-assets accept`): then it is no incident.
    feedback = table_name(log.table(CHECK_FEEDBACK))
    flags = _rows(spark, f"""
        SELECT checked_at, asset, partition_key, check_name, metric, severity, status, value,
               baseline, lower, upper, description, target_run_id, count(*) OVER () AS open_total
        FROM (
          SELECT c.* FROM (
            SELECT *, row_number() OVER (PARTITION BY asset, check_name
                                         ORDER BY checked_at DESC, run_id DESC) AS latest
            FROM {checks}) c
          LEFT ANTI JOIN (SELECT DISTINCT asset, target_run_id FROM {feedback}
                          WHERE action = 'accept') a
            ON c.asset = a.asset AND c.target_run_id = a.target_run_id)
        WHERE latest = 1 AND NOT passed
        ORDER BY CASE WHEN severity = 'ERROR' THEN 0 ELSE 1 END, checked_at DESC, asset,
                 check_name
        LIMIT {MAX_FLAGS}
    """)
    totals["open_flags"] = int(flags[0]["open_total"]) if flags else 0
    for flag in flags:
        del flag["open_total"]

    return HealthReport(
        log_db=log_db, days=days, start=start.isoformat(), end=end.isoformat(),
        generated_at=_plain(datetime.now(timezone.utc)), log_has_runs=True, totals=totals,
        status=status, status_by_domain=by_domain, daily=daily,
        durations=[{k: r[k] for k in ("asset", "day", "duration_s", "day_loads")}
                   for r in durations],
        slowest=list(slowest.values()), failures=failures, flags=flags,
        sparklines=_sparklines(spark, runs, checks))


def _sparklines(spark: SparkSession, runs: str, checks: str) -> list[dict[str, Any]]:
    """row_count of each table's newest successful loads; a point is flagged when a check
    that judged that load (same run and partition) failed."""
    points = _rows(spark, f"""
        WITH loads AS (
          SELECT asset, run_id, partition_key, finished_at, row_count,
                 row_number() OVER (PARTITION BY asset, coalesce(partition_key, run_id)
                                    ORDER BY finished_at DESC) AS latest_of_key
          FROM {runs} WHERE status = '{SUCCESS}' AND row_count IS NOT NULL),
        flagged AS (
          SELECT asset, target_run_id, partition_key,
                 concat_ws(', ', sort_array(collect_set(check_name))) AS checks
          FROM {checks} WHERE NOT passed GROUP BY asset, target_run_id, partition_key),
        marked AS (
          SELECT l.asset, l.partition_key, l.finished_at, l.row_count, f.checks,
                 row_number() OVER (PARTITION BY l.asset
                                    ORDER BY l.finished_at DESC, l.partition_key DESC) AS recent
          FROM loads l LEFT JOIN flagged f ON f.asset = l.asset AND f.target_run_id = l.run_id
               AND f.partition_key <=> l.partition_key
          WHERE l.latest_of_key = 1),
        picked AS (
          SELECT asset, row_number() OVER (
                   ORDER BY max(CASE WHEN checks IS NULL THEN 0 ELSE 1 END) DESC, asset) AS pick
          FROM marked WHERE recent <= {MAX_SPARKLINE_POINTS} GROUP BY asset)
        SELECT m.asset, p.pick, coalesce(m.partition_key, CAST(m.finished_at AS STRING)) AS x,
               m.partition_key, m.finished_at, m.row_count, m.checks
        FROM marked m JOIN picked p ON m.asset = p.asset
        WHERE m.recent <= {MAX_SPARKLINE_POINTS} AND p.pick <= {MAX_SPARKLINE_TABLES}
    """)
    tables: dict[str, dict[str, Any]] = {}
    for point in sorted(points, key=lambda p: (p["pick"], p["x"])):
        table = tables.setdefault(point["asset"], {"asset": point["asset"], "points": []})
        table["points"].append({"x": point["x"], "row_count": point["row_count"],
                                "flagged": point["checks"]})
    return list(tables.values())


def summary_markdown(report: HealthReport, page: Path | None = None) -> str:
    """A few lines of markdown for the Dagster UI: totals, failures, open flags, the page."""
    t = report.totals
    lines = [f"**Pipeline health, {report.start} to {report.end}** (`{report.log_db}`)", ""]
    if report.empty:
        lines.append("No runs yet." if not report.log_has_runs
                     else f"No runs in the last {report.days} days.")
    else:
        lines += [
            f"- {t['tables_loaded']:,} tables loaded, {t['rows_loaded']:,} rows",
            f"- {t['runs']:,} runs: {t['success']:,} succeeded, {t['failed']:,} failed, "
            f"{t['retry']:,} retried",
            f"- {t['open_flags']:,} open anomaly/quality flags",
        ]
        if report.failures:
            lines += ["", "| last failures | when | error |", "|---|---|---|"]
            for failure in report.failures[:5]:
                error = (failure["error"] or "").splitlines()[0][:120].replace("|", "/")
                lines.append(f"| {failure['asset']} | {failure['finished_at']} | {error} |")
        if report.flags:
            lines += ["", "| open flag | severity | why |", "|---|---|---|"]
            for flag in report.flags[:5]:
                why = (flag["description"] or "").replace("|", "/")[:160]
                lines.append(f"| {flag['asset']}.{flag['check_name']} | {flag['severity']} "
                             f"| {why} |")
    if page is not None:
        lines += ["", f"Page: `{page}`"]
    return "\n".join(lines)


def write_report(
    spark: SparkSession, log_db: str, out: Path, days: int = DEFAULT_DAYS,
    as_of: date | None = None,
) -> HealthReport:
    """Build the report and write its self-contained HTML page to `out` (folders created)."""
    from etl_assets.health_page import render_page

    report = build_report(spark, log_db, days=days, as_of=as_of)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(render_page(report), encoding="utf-8")
    tmp.replace(out)  # a browser never sees half a page
    logger.info("health report: %s (%d bytes)", out, out.stat().st_size)
    return report


def report_path(settings: Settings) -> Path:
    """Where the asset and `etl-assets report` write the page: `<home>/reports/health.html`."""
    return settings.home / REPORT_FILE


class HealthReportConfig(dg.Config):
    """Run config of `etl_health_report`."""

    days: int = DEFAULT_DAYS


def build_health_report_asset(project: Project, settings: Settings) -> dg.AssetsDefinition:
    """The report as an asset, downstream of every table (it summarizes their loads).

    Depending on the tables orders it after the loads of the same run; it reads only
    `etl_log.*`, never the tables. Each check step writes its `check_log` rows before it
    ends, so the page shows the checks of the same run.
    """
    page = report_path(settings)

    @dg.asset(
        name=HEALTH_REPORT_ASSET,
        deps=[dg.AssetKey(name) for name in project.tables],
        group_name="etl_health",
        kinds={"spark", "html"},
        description=(f"Pipeline-health page over the log tables ({page}): runs, rows, "
                     "failures, durations, open anomaly and quality flags."),
    )
    def _report(
        context: dg.AssetExecutionContext,
        config: HealthReportConfig,
        spark: LazyPySparkResource,
        etl_log: EtlLogResource,
    ) -> dg.MaterializeResult:
        session = spark.spark_session
        report = write_report(session, etl_log.database, page, days=config.days)
        context.log.info(f"wrote {page} ({page.stat().st_size:,} bytes)")
        t = report.totals
        return dg.MaterializeResult(metadata={
            SUMMARY: dg.MetadataValue.md(summary_markdown(report, page)),
            PAGE: dg.MetadataValue.path(str(page)),
            TABLES_LOADED: dg.MetadataValue.int(int(t["tables_loaded"])),
            ROWS_LOADED: dg.MetadataValue.int(int(t["rows_loaded"])),
            RUNS: dg.MetadataValue.int(int(t["runs"])),
            FAILED_RUNS: dg.MetadataValue.int(int(t["failed"])),
            OPEN_FLAGS: dg.MetadataValue.int(int(t["open_flags"])),
        })

    return _report
