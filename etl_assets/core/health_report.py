"""The health report's data: what the page and the UI summary show, summed without Spark.

Pure: imports neither Spark nor Dagster.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from etl_assets.core.records import FAILED, RETRY, SUCCESS
from etl_assets.core.settings import Settings

REPORT_FILE = Path("reports") / "health.html"


DEFAULT_DAYS = 30


NO_DOMAIN = "(no domain)"


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


def report_path(settings: Settings) -> Path:
    """Where the asset and `etl-assets report` write the page: `<home>/reports/health.html`."""
    return settings.home / REPORT_FILE


MAX_DURATION_TABLES = 20
