"""What the health report costs: an empty log, then N log rows, all inside the report's period.

Fills `run_log` and `check_log` of a fresh embedded home with N rows each (synthetic loads of
50 assets spread over the last 30 days, 2% of them failed, 1% of the checks failed, written as
the project writes them, in batches as `bench/log_growth.py` does), then times
`health.write_report` (every Spark SQL aggregate plus rendering and writing the page) in one
Spark session (start-up excluded), median of `--repeat`. Prints the page size and how many
rows each panel received: the report pulls aggregates, never the log.

With --cold, each size's report is then also made in fresh processes, as `make demo`'s own
`dg launch` of `etl_health_report` makes it: a new JVM, where the first metastore call and the
first queries' code generation are paid again. Each process times its Spark session's start
and, after it, the report (`--repeat` processes per size and variant, median), in three
variants (`COLD_VARIANTS`): without the driver's class archive, with it, and with it and the
C1-only JIT and interpreted expressions that a run of the report alone gets
(`etl_assets.engine.session`).

Usage: .venv/bin/python bench/health_report.py [--sizes 100000] [--repeat 5] [--cold]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from datetime import time as clock
from pathlib import Path

from log_growth import timed  # bench/ is on sys.path when a script in it runs

from etl_assets.core.outcomes import CheckedLoad, CheckOutcome
from etl_assets.core.records import RunRecord
from etl_assets.core.settings import JVM_ARCHIVE_ENV, load_settings
from etl_assets.engine.health import write_report
from etl_assets.engine.hive_log import HiveLog
from etl_assets.engine.session import build_session

ASSETS = 50
# Fresh-process variants (--cold): the driver before issue 23's start-up work, with the class
# archive `make install` writes, and with the quick JIT too, as a run of the report alone has.
COLD_VARIANTS = {
    "no archive, tiered JIT": ["--no-archive"],
    "class archive, tiered JIT": [],
    "archive, C1, interpreted (query-only)": ["--query-only"],
}
DAYS = 30


def records(first: int, count: int, today: datetime) -> tuple[list, list]:
    """Loads `first`..`first + count - 1` and one check per load, spread over DAYS days."""
    runs, checks = [], []
    for i in range(first, first + count):
        asset = f"asset_{i % ASSETS}"
        finished = today - timedelta(days=i % DAYS, seconds=i % 3_600)
        failed = i % 50 == 7
        runs.append((RunRecord(
            run_id=f"run-{i}", asset=asset, domain=f"domain_{i % 5}", table_name=f"b.{asset}",
            status="FAILED" if failed else "SUCCESS",
            started_at=finished - timedelta(seconds=5 + i % ASSETS), finished_at=finished,
            code_version="1", row_count=None if failed else 1_000 + i % 997,
            error_message=f"error {i}" if failed else None), {}))
        checks.append((
            CheckedLoad(run_id=f"run-{i}", asset=asset, checked_at=finished,
                        target_run_id=f"run-{i}"),
            CheckOutcome(check="row_count_anomaly", metric="row_count", passed=i % 100 != 3,
                         severity="WARN", status="ok", description=f"check of run {i}",
                         value=float(i))))
    return runs, checks


def fill(log: HiveLog, rows: int, today: datetime) -> None:
    batch = 10_000
    for first in range(0, rows, batch):
        runs, checks = records(first, min(batch, rows - first), today)
        log.write_loads(runs)
        log.write_checks(checks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--cold", action="store_true",
                        help="also time each report in fresh processes (a cold JVM)")
    parser.add_argument("--home", help=argparse.SUPPRESS)
    parser.add_argument("--cold-one", help=argparse.SUPPRESS)
    parser.add_argument("--no-archive", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--query-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cold_one:
        return cold_report(Path(args.home), args.cold_one, not args.no_archive,
                           args.query_only)
    home = Path(args.home or tempfile.mkdtemp(prefix="etl_bench_health_"))
    if args.cold:
        # The seeding process must exit first: the embedded (Derby) metastore admits one.
        subprocess.run([sys.executable, __file__, "--home", str(home), "--repeat",
                        str(args.repeat), "--sizes", *map(str, args.sizes)], check=True)
        for size in [0, *args.sizes]:
            runs: dict[str, list[dict]] = {variant: [] for variant in COLD_VARIANTS}
            for round_ in range(args.repeat):  # variants rotate: none always goes first
                order = list(COLD_VARIANTS)[round_ % 3:] + list(COLD_VARIANTS)[:round_ % 3]
                for variant in order:
                    runs[variant].append(json.loads(subprocess.run(
                        [sys.executable, __file__, "--home", str(home), "--cold-one",
                         f"etl_log_{size}", *COLD_VARIANTS[variant]], check=True,
                        capture_output=True, text=True).stdout.strip().splitlines()[-1]))
            base = statistics.median(r["report_s"] for r in runs["no archive, tiered JIT"])
            for variant, measured in runs.items():
                report_s = statistics.median(r["report_s"] for r in measured)
                print(f"cold process, etl_log_{size}, {variant:<32}: Spark session "
                      f"{statistics.median(r['session_s'] for r in measured):.2f} s, then the "
                      f"report {report_s:.2f} s ({report_s / base:.2f}x; medians of "
                      f"{args.repeat}; each: "
                      + ", ".join(f"{r['report_s']:.1f}" for r in measured) + ")", flush=True)
        return 0
    settings = load_settings({"ETL_ASSETS_HOME": str(home)})
    spark = build_session(settings)
    today = datetime.combine(datetime.now(timezone.utc).date(), clock(23, 0), timezone.utc)
    for size in [0, *args.sizes]:
        database = f"etl_log_{size}"
        log = HiveLog(spark, database)
        log.ensure_tables()
        started = time.perf_counter()
        fill(log, size, today)
        seeded = time.perf_counter() - started
        out = home / f"health_{size}.html"
        report = write_report(spark, database, out)  # warm-up, and the page we measure
        seconds = timed(lambda: write_report(spark, database, out), args.repeat)  # noqa: B023
        counts = {name: len(getattr(report, name)) for name in (
            "status", "status_by_domain", "daily", "durations", "failures", "flags")}
        counts["sparkline points"] = sum(len(s["points"]) for s in report.sparklines)
        logged = spark.table(f"{database}.run_log").count()
        print(f"{logged:>9,} run_log rows (seeded in {seeded:5.1f} s): report {seconds:6.2f} s "
              f"(median of {args.repeat}), page {out.stat().st_size / 1e6:.2f} MB, "
              f"{report.totals['runs']:,} runs in the period, "
              f"{report.totals['open_flags']} open flags; rows per panel: "
              + ", ".join(f"{k} {v}" for k, v in counts.items()), flush=True)
    spark.stop()
    return 0


def cold_report(home: Path, database: str, archive: bool, query_only: bool) -> int:
    """One report in this fresh process: print the session's start and the report's time."""
    started = time.perf_counter()
    environ = {"ETL_ASSETS_HOME": str(home)} | ({} if archive else {JVM_ARCHIVE_ENV: "off"})
    spark = build_session(load_settings(environ), query_only=query_only)
    up = time.perf_counter()
    write_report(spark, database, home / f"cold_{database}.html")
    done = time.perf_counter()
    print(json.dumps({"session_s": up - started, "report_s": done - up}))
    spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
