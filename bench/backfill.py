"""A 30-day backfill of the demo's daily_sales: one single-run backfill vs one run per day.

Both are real `dg launch` processes against a fresh embedded home, exactly as
a user runs them: one process with `--partition-range` (BackfillPolicy.single_run: Spark starts
once, one Spark job writes all days), then one process per day with `--partition`.

Usage: .venv/bin/python bench/backfill.py [--days 30] [--separate N]
  --separate N  time N one-day runs and extrapolate to --days (each costs a Spark start-up);
                default: all of them.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DG = Path(sys.executable).parent / "dg"


def materialize(env: dict[str, str], *args: str) -> float:
    started = time.perf_counter()
    subprocess.run([str(DG), "launch", *args], cwd=ROOT,
                   env={**env, "VIRTUAL_ENV": str(DG.parent.parent)}, check=True,
                   capture_output=True)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--separate", type=int, default=None)
    args = parser.parse_args()
    days = [date(2026, 1, 1) + timedelta(days=i) for i in range(args.days)]
    separate = args.separate or args.days
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder) / "home"
        (home / "dagster").mkdir(parents=True)
        (home / "dagster" / "dagster.yaml").symlink_to(ROOT / "dagster.yaml")
        env = {**os.environ, "ETL_ASSETS_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
        materialize(env, "--assets", "clean_orders")  # the upstream table, not timed
        one_run = materialize(env, "--assets", "daily_sales", "--partition-range",
                              f"{days[0]}...{days[-1]}")
        per_day = [materialize(env, "--assets", "daily_sales", "--partition", str(day))
                   for day in days[:separate]]
    total = sum(per_day) / len(per_day) * args.days
    out = sys.stdout
    out.write(f"{args.days}-day backfill of daily_sales (embedded profile, 2 cores)\n")
    out.write(f"  one single-run backfill : {one_run:7.1f} s\n")
    label = "measured" if separate == args.days else f"{separate} measured, extrapolated"
    out.write(f"  {args.days} one-day runs       : {total:7.1f} s  ({label}; "
              f"{sum(per_day) / len(per_day):.1f} s per run)\n")
    out.write(f"  ratio                   : {total / one_run:7.1f} x\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
