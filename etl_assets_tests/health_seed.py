"""A log with known runs, failures and flags, for the health report's tests and screenshot.

Written through `HiveLog` exactly as loads and checks write it. The expected numbers are
computed here in Python from the same records, independently of the report's Spark SQL.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

from pyspark.sql import SparkSession

from etl_assets.core.outcomes import CheckedLoad, CheckOutcome
from etl_assets.core.records import FAILED, RETRY, SUCCESS, RunRecord
from etl_assets.engine.hive_log import HiveLog

LOG_DB = "etl_log_health"  # the seeded log's own database in the test metastore
DAYS = 14  # days of history in the period
OLD_DAY = 40  # one failure this many days back: outside a 30-day report
TABLES = {  # asset -> (domain, base rows, base seconds)
    "clean_orders": ("sales", 4_000, 12.0),
    "daily_sales": ("sales", 90, 6.0),
    "customers_dim": ("sales", 1_200, 4.0),
    "ledger": ("finance", 25_000, 48.0),
    "invoices": ("finance", 8_000, 20.0),
}
ROW_CHECK = "row_count_anomaly"
QUALITY_CHECK = "email_not_null"


@dataclass(frozen=True)
class Seed:
    """What was written and what the report must say about the period."""

    as_of: date
    runs: list[RunRecord]
    checks: list[tuple[CheckedLoad, CheckOutcome]]

    def in_period(self, days: int) -> list[RunRecord]:
        first = self.as_of - timedelta(days=days - 1)
        return [r for r in self.runs if first <= r.finished_at.date() <= self.as_of]


def _at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=timezone.utc)


def build_seed(as_of: date) -> Seed:
    """Daily loads of five tables over `DAYS` days, with failures, retries and flags.

    - `invoices` lost 75% of its rows on the last day: its row-count check failed (open);
    - `ledger` was flagged 3 days ago and passed since (closed, still marked on its line);
    - `customers_dim` failed its quality check (ERROR) on the last day (open);
    - `ledger` failed twice (one retry that then succeeded, one final failure);
    - one failure `OLD_DAY` days ago, outside the period.
    """
    runs: list[RunRecord] = []
    checks: list[tuple[CheckedLoad, CheckOutcome]] = []
    for offset in range(DAYS - 1, -1, -1):
        day = as_of - timedelta(days=offset)
        for i, (asset, (domain, rows, seconds)) in enumerate(TABLES.items()):
            run_id = f"run-{day.isoformat()}-{asset}"
            count = rows + 10 * (DAYS - offset) + i
            if asset == "invoices" and offset == 0:
                count = rows // 4
            duration = seconds + (offset % 3)
            started = _at(day, 6, 5 * i)
            partition = day.isoformat() if asset == "daily_sales" else None
            if asset == "ledger" and offset == 5:  # a failed attempt, retried and loaded
                runs.append(RunRecord(
                    run_id=run_id, asset=asset, domain=domain, table_name=f"fin.{asset}",
                    status=RETRY, started_at=started, finished_at=started + timedelta(seconds=3),
                    code_version="1", error_message="Connection reset by peer", attempt=1))
                started += timedelta(seconds=30)
            runs.append(RunRecord(
                run_id=run_id, asset=asset, domain=domain, table_name=f"db.{asset}",
                status=SUCCESS, started_at=started,
                finished_at=started + timedelta(seconds=duration), code_version="1",
                partition_key=partition, rows_in=count, row_count=count, bytes=count * 40,
                attempt=2 if asset == "ledger" and offset == 5 else 1))
            flagged = (asset == "invoices" and offset == 0) or (asset == "ledger" and offset == 3)
            checks.append((CheckedLoad(
                run_id=run_id, asset=asset, checked_at=started + timedelta(seconds=duration + 1),
                partition_key=partition, target_run_id=run_id), CheckOutcome(
                check=ROW_CHECK, metric="row_count",
                passed=not flagged, severity="WARN", status="anomaly" if flagged else "ok",
                description=(f"row_count {count:,} is 75% below baseline {rows:,} (limit 50%)"
                             if flagged else "row_count within 50% of its baseline"),
                value=float(count), baseline=float(rows), lower=rows * 0.5, upper=rows * 1.5)))
        if offset in (0, 1):
            passed = offset == 1
            run_id = f"run-{day.isoformat()}-customers_dim"
            checks.append((CheckedLoad(
                run_id=run_id, asset="customers_dim", checked_at=_at(day, 7),
                target_run_id=run_id), CheckOutcome(
                check=QUALITY_CHECK, metric="null_ratio/email", passed=passed,
                severity="ERROR", status="ok" if passed else "failed",
                description="email: 0.0% nulls (max 1%)" if passed
                else "email: 12.5% nulls (max 1%)",
                value=0.0 if passed else 0.125, upper=0.01)))
    for day, error in ((as_of - timedelta(days=2), "AnalysisException: [TABLE_OR_VIEW_NOT_FOUND]"
                        " The table or view `fin`.`gl_raw` cannot be found.\nline 2"),
                       (as_of - timedelta(days=OLD_DAY), "old failure")):
        started = _at(day, 9)
        runs.append(RunRecord(
            run_id=f"run-{day.isoformat()}-ledger-failed", asset="ledger", domain="finance",
            table_name="fin.ledger", status=FAILED, started_at=started,
            finished_at=started + timedelta(seconds=7), code_version="1", error_message=error))
    return Seed(as_of=as_of, runs=runs, checks=checks)


def write_seed(spark: SparkSession, log_db: str, seed: Seed) -> None:
    """Write the seed's runs and checks into `log_db` (tables created on first use)."""
    log = HiveLog(spark, log_db)
    log.write_loads([(r, {}) for r in seed.runs])
    log.write_checks(seed.checks)


def expected_totals(seed: Seed, days: int) -> dict[str, int]:
    """The report's totals for the period, computed from the records themselves."""
    runs = seed.in_period(days)
    status = Counter(r.status for r in runs)
    latest: dict[tuple[str, str], CheckOutcome] = {}
    first = seed.as_of - timedelta(days=days - 1)
    for load, outcome in sorted(seed.checks, key=lambda c: c[0].checked_at):
        if first <= load.checked_at.date() <= seed.as_of:
            latest[(load.asset, outcome.check)] = outcome
    return {
        "runs": len(runs),
        "success": status[SUCCESS],
        "failed": status[FAILED],
        "retry": status[RETRY],
        "tables_seen": len({r.asset for r in runs}),
        "tables_loaded": len({r.asset for r in runs if r.status == SUCCESS}),
        "rows_loaded": sum(r.row_count or 0 for r in runs if r.status == SUCCESS),
        "open_flags": sum(not c.passed for c in latest.values()),
    }


def page_data(page: Path) -> dict:
    """The JSON a health page embeds for its panels (`#report-data`)."""
    match = re.search(r'<script type="application/json" id="report-data">(.*?)</script>',
                      page.read_text(encoding="utf-8"), re.S)
    assert match, f"{page} has no #report-data"
    return json.loads(match.group(1))
