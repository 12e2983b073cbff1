"""What grows with the log tables: `etl-assets status`, the watermark look-up, one more append.

Fills `run_log`, `metric_log` and `check_log` of a fresh embedded home with N rows each
(synthetic loads of 50 assets over N/50 days, written as the project writes them), then times,
in one Spark session (start-up excluded), medians of `--repeat`:
  - `etl-assets status`'s query (latest run_log row per asset, joined with the specs),
  - `HiveLog.last_watermark` (what an incremental load asks before it reads),
  - appending one more load (its run_log row and 10 metric_log rows).
Then the ratio of the largest size to the smallest.

Usage: .venv/bin/python bench/log_growth.py [--sizes 100 10000 100000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from etl_assets.core.outcomes import CheckedLoad, CheckOutcome
from etl_assets.core.records import RunRecord
from etl_assets.core.settings import load_settings
from etl_assets.engine.hive_log import HiveLog
from etl_assets.engine.session import build_session
from etl_assets.tools.cli import status_frame

ASSETS = 50


def record(i: int, start: datetime) -> RunRecord:
    finished = start + timedelta(days=i // ASSETS, seconds=i % ASSETS)
    return RunRecord(run_id=f"run-{i}", asset=f"asset_{i % ASSETS}", domain="bench",
                     table_name=f"bench.asset_{i % ASSETS}", status="SUCCESS",
                     started_at=finished - timedelta(seconds=30), finished_at=finished,
                     code_version="1", rows_in=1000 + i, row_count=1000 + i, bytes=10_000,
                     watermark=finished.isoformat())


def fill(log: HiveLog, rows: int, start: datetime) -> None:
    """N rows in each of run_log, metric_log and check_log, in batches as a backfill writes."""
    batch = 5_000
    for first in range(0, rows, batch):
        count = min(batch, rows - first)
        log.write_loads([(record(i, start), {}) for i in range(first, first + count)])
        log._append("metric_log", [  # noqa: SLF001 - one metric per load keeps N rows
            {"run_id": f"run-{i}", "asset": f"asset_{i % ASSETS}", "metric": "row_count",
             "value": float(i), "recorded_at": start, "log_date": start.date()}
            for i in range(first, first + count)])
        log.write_checks([(
            CheckedLoad(run_id=f"run-{i}", asset=f"asset_{i % ASSETS}", checked_at=start),
            CheckOutcome(check="row_count_anomaly", metric="row_count", passed=True,
                         severity="WARN", status="OK", description=""))
            for i in range(first, first + count)])


def timed(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="etl_bench_logs_"))
    settings = load_settings({"ETL_ASSETS_HOME": str(home)})
    spark = build_session(settings)
    start = datetime(2020, 1, 1, tzinfo=timezone.utc)
    results = {}
    for size in args.sizes:
        database = f"etl_log_{size}"
        log = HiveLog(spark, database)
        fill(log, size, start)
        sized = load_settings({"ETL_ASSETS_HOME": str(home), "ETL_ASSETS_LOG_DB": database})
        extra = iter(range(size, size + 10**6))  # the newest loads
        results[size] = {
            "status": timed(lambda: status_frame(spark, sized).collect(), args.repeat),
            "watermark": timed(lambda: log.last_watermark("asset_7"), args.repeat),
            "append": timed(lambda: log.write_loads([(
                record(next(extra), start), {f"m{k}": float(k) for k in range(10)})]),
                args.repeat),
        }
        counts = [spark.table(f"{database}.{t}").count()
                  for t in ("run_log", "metric_log", "check_log")]
        print(f"{size:>9,} rows (run/metric/check {counts[0]}/{counts[1]}/{counts[2]}): "
              + "  ".join(f"{k} {v * 1000:7.1f} ms" for k, v in results[size].items()),
              flush=True)
    small, large = min(results), max(results)
    print(f"{large:,} / {small:,} rows: " + ", ".join(
        f"{k} {results[large][k] / results[small][k]:.2f}x" for k in results[small]))
    spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
