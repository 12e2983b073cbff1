"""What counting an appended table's rows costs as its files pile up.

An unpartitioned `write_mode: append` table gains files with every load; Dagster's
`dagster/row_count` is the table's rows, so each load must know them. Two ways, timed side by
side in one Spark session (start-up excluded), medians of `--repeat`, over a folder of N
Parquet files (one per past load, as a daily append leaves them):
  - footers: `table_rows.folder_rows`, one footer read per file (what the first append, or
    one after someone else changed the folder, pays);
  - kept count: what every other append pays, the two folder summaries of
    `storage.folder_fingerprint` (before and after the append) and no file opened.

Usage: .venv/bin/python bench/append_count.py [--files 30 365 1000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from etl_assets.core.settings import load_settings
from etl_assets.engine import storage as S
from etl_assets.engine import table_rows as TR
from etl_assets.engine.session import build_session


def median_seconds(work, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, nargs="+", default=[30, 365, 1000])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="append_count_"))
    settings = load_settings({"ETL_ASSETS_HOME": str(home)})
    spark = build_session(settings)
    folder = home / "appended"
    written = 0
    for n in sorted(args.files):
        # One small file per past load (1,000 rows each), appended like a daily load.
        batch = spark.range((n - written) * 1000).selectExpr("id", "id * 2 AS amount")
        batch.repartition(n - written).write.mode("append").parquet(str(folder))
        written = n
        rows = TR.folder_rows(spark, str(folder))
        footers = median_seconds(lambda: TR.folder_rows(spark, str(folder)), args.repeat)
        kept = median_seconds(lambda: [S.folder_fingerprint(spark, str(folder))
                                       for _ in range(2)], args.repeat)
        print(f"{n:>6} files ({rows:,} rows): footers {footers * 1000:8.1f} ms, "
              f"kept count {kept * 1000:6.1f} ms ({footers / kept:5.1f}x)", flush=True)
    spark.stop()


if __name__ == "__main__":
    main()
