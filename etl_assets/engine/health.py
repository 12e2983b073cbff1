"""Pipeline health: the log tables (`etl_log.*`) aggregated into the panels of one report.

Every number is aggregated in Spark SQL over the period's `log_date` partitions of `run_log`
and `check_log`; only the small aggregates reach Python (a few rows per day, status, domain
and table, and capped lists: the newest failures, the open flags, the newest loads of some
tables), so the report costs the same with a hundred log rows as with millions of them.

The page itself is drawn by `etl_assets.core.health_page`; this module also builds the Dagster
asset `etl_health_report` that writes it under `$ETL_ASSETS_HOME/reports/health.html`.
"""

# No `from __future__ import annotations`: Dagster reads the asset's config annotation at
# definition time and cannot resolve it from a string.
import logging
import math
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_pyspark import LazyPySparkResource
from pyspark.sql import SparkSession

from etl_assets.engine.hive_log import (
    CHECK_FEEDBACK, CHECK_LOG, FAILED, RETRY, RUN_LOG, SUCCESS, HiveLog)
from etl_assets.core.settings import Settings
from etl_assets.core.specs import Project
from etl_assets.core.sql_quoting import date_literal, table_name
from etl_assets.engine.load import EtlLogResource

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
    log.ensure_tables()
    end = as_of or datetime.now(timezone.utc).date()
    start = end - timedelta(days=days - 1)
    period = f"log_date BETWEEN {date_literal(start)} AND {date_literal(end)}"
    runs = f"(SELECT * FROM {table_name(log.table(RUN_LOG))} WHERE {period})"
    checks = f"(SELECT * FROM {table_name(log.table(CHECK_LOG))} WHERE {period})"
    return _build(spark, log, days, start, end, runs, checks)


def _build(
    spark: SparkSession, log: HiveLog, days: int, start: date, end: date, runs: str,
    checks: str,
) -> HealthReport:
    log_db = log.database

    # One scan of run_log, grouped as finely as any panel needs (table, domain, day, status):
    # at most tables x days x statuses rows, whatever the number of loads. The totals, the
    # status mix, status by domain, runs per day and the slowest tables are sums over them.
    groups = _rows(spark, f"""
        SELECT asset, domain, log_date AS day, status, count(*) AS runs,
               sum(row_count) AS row_count, sum(duration_s) AS duration_sum,
               count(duration_s) AS timed, max(duration_s) AS duration_max
        FROM {runs} GROUP BY asset, domain, log_date, status
    """)
    panels = run_panels(groups)
    totals = panels.pop("totals")
    if not totals["runs"]:
        run_log = table_name(log.table(RUN_LOG))
        has_runs = spark.sql(f"SELECT 1 FROM {run_log} LIMIT 1").first() is not None
        return HealthReport(
            log_db=log_db, days=days, start=start.isoformat(), end=end.isoformat(),
            generated_at=_plain(datetime.now(timezone.utc)), log_has_runs=has_runs,
            totals=totals)

    # Sorted and cut by Spark's top-k (no shuffle): only MAX_FAILURES rows leave it.
    failures = _rows(spark, f"""
        SELECT finished_at, asset, partition_key, coalesce(domain, '{NO_DOMAIN}') AS domain,
               run_id, attempt, duration_s,
               substring(error_message, 1, {MAX_ERROR_CHARS}) AS error
        FROM {runs} WHERE status = '{FAILED}'
        ORDER BY finished_at DESC, asset LIMIT {MAX_FAILURES}
    """)
    flags, totals["open_flags"] = _open_flags(spark, log, checks)
    return HealthReport(
        log_db=log_db, days=days, start=start.isoformat(), end=end.isoformat(),
        generated_at=_plain(datetime.now(timezone.utc)), log_has_runs=True, totals=totals,
        failures=failures, flags=flags, sparklines=_sparklines(spark, runs, checks), **panels)


def run_panels(groups: list[dict[str, Any]]) -> dict[str, Any]:
    """The totals, status, status-by-domain, daily, durations and slowest panels.

    Args:
        groups: `run_log` rows of the period grouped by (`asset`, `domain`, `day`, `status`),
            each with `runs` (rows), `row_count` (sum), `duration_sum` (seconds), `timed`
            (rows with a duration) and `duration_max` (seconds); sums are None when no row of
            the group has the value.

    Returns:
        The `HealthReport` fields of the same names (`totals` with `open_flags` 0). Tables are
        distinct non-null `asset`s; rows loaded, durations and the slowest tables count
        successful loads only. Mean durations are per load that has one (None when none has);
        the slowest are the `MAX_DURATION_TABLES` with the highest mean (None last, then by
        name), `durations` their per-day means in that order, then by day.
    """
    runs_by: dict[str | None, int] = {}
    tables_by: dict[str | None, set[str]] = {}
    by_domain: dict[tuple[str, str], int] = {}
    daily: dict[tuple[str, str], dict[str, Any]] = {}
    # Successful loads per table, and per table and day: [loads, timed, seconds, max seconds].
    table_time: dict[str, list[Any]] = {}
    day_time: dict[tuple[str, str], list[Any]] = {}
    rows_loaded = 0
    for g in groups:
        status, asset, success = g["status"], g["asset"], g["status"] == SUCCESS
        runs_by[status] = runs_by.get(status, 0) + g["runs"]
        if asset is not None:
            tables_by.setdefault(status, set()).add(asset)
        key = (g["domain"] if g["domain"] is not None else NO_DOMAIN, status)
        by_domain[key] = by_domain.get(key, 0) + g["runs"]
        day = daily.setdefault((g["day"], status), {"day": g["day"], "status": status,
                                                      "runs": 0, "rows_loaded": 0})
        day["runs"] += g["runs"]
        if not success:
            continue
        day["rows_loaded"] += int(g["row_count"] or 0)
        rows_loaded += int(g["row_count"] or 0)
        if asset is None:
            continue
        for acc in (table_time.setdefault(asset, [0, 0, 0.0, None]),
                    day_time.setdefault((asset, g["day"]), [0, 0, 0.0, None])):
            acc[0] += g["runs"]
            if g["timed"]:
                acc[1] += g["timed"]
                acc[2] += g["duration_sum"]
                acc[3] = g["duration_max"] if acc[3] is None else max(acc[3], g["duration_max"])

    def mean(acc: list[Any]) -> float | None:
        return acc[2] / acc[1] if acc[1] else None

    slowest = sorted(({"asset": asset, "mean_s": mean(acc), "max_s": acc[3], "loads": acc[0]}
                      for asset, acc in table_time.items()),
                     key=lambda s: (s["mean_s"] is None, -(s["mean_s"] or 0.0), s["asset"]))
    slowest = slowest[:MAX_DURATION_TABLES]
    rank = {s["asset"]: i for i, s in enumerate(slowest)}
    durations = sorted(({"asset": asset, "day": day, "duration_s": mean(acc),
                         "day_loads": acc[0]}
                        for (asset, day), acc in day_time.items() if asset in rank),
                       key=lambda d: (rank[d["asset"]], d["day"]))
    everyone = set().union(*tables_by.values()) if tables_by else set()
    totals = {
        "runs": sum(runs_by.values()),
        "success": runs_by.get(SUCCESS, 0),
        "failed": runs_by.get(FAILED, 0),
        "retry": runs_by.get(RETRY, 0),
        "tables_seen": len(everyone),
        "tables_loaded": len(tables_by.get(SUCCESS, ())),
        "rows_loaded": rows_loaded,
        "open_flags": 0,
    }
    return {
        "totals": totals,
        "status": sorted(({"status": s, "runs": n} for s, n in runs_by.items()),
                         key=lambda r: (-r["runs"], r["status"] or "")),
        "status_by_domain": [{"domain": d, "status": s, "runs": n}
                             for (d, s), n in sorted(by_domain.items(),
                                                     key=lambda i: (i[0][0], i[0][1] or ""))],
        "daily": sorted(daily.values(), key=lambda r: (r["day"] or "", r["status"] or "")),
        "durations": durations,
        "slowest": slowest,
    }


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
    from etl_assets.core.health_page import render_page

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
