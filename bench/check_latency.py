"""Check cost against history length (issue: 1,000 past materializations ~ as fast as 10).

Seeds a real Dagster instance (SQLite, in a temporary folder) with N runless materializations
of one asset (row count and five column sums, like a table of the demo), plus failed check
evaluations for some of them, then times the evaluation of all of the table's checks (reading
history from the event log and judging it) for N = 10 and N = 1,000. No Spark: the Hive write
of check_log is the same for both and is not what grows with history.

Usage: .venv/bin/python bench/check_latency.py [--sizes 10 100 1000] [--repeat 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg

from etl_assets.core.specs import DEFS_FILE, domain_document, load_project
from etl_assets.orchestration.checks import (
    ROW_COUNT_CHECK,
    SCHEMA_CHECK,
    SUMS_CHECK,
    evaluate_table,
)

SPEC = """
database: bench
sources: {src: {format: parquet, path: /nowhere}}
tables:
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        spec = Path(folder) / "bench" / DEFS_FILE
        spec.parent.mkdir()
        spec.write_text(domain_document(SPEC + "".join(
            f"  - {{name: t{n}, inputs: [src], sql: SELECT * FROM src}}\n" for n in args.sizes)))
        project = load_project(Path(folder))
        (Path(folder) / "dagster").mkdir()
        with dg.DagsterInstance.local_temp(str(Path(folder) / "dagster")) as instance:
            results = {}
            for size in args.sizes:
                key = dg.AssetKey(f"t{size}")
                started = time.perf_counter()
                for i in range(size):
                    instance.report_runless_asset_event(dg.AssetMaterialization(key, metadata={
                        "dagster/row_count": 1000 + i % 7,
                        **{f"sum/c{c}": float(5000 + c + i % 11) for c in range(5)},
                    }))
                seeded = time.perf_counter() - started
                table = project.tables[f"t{size}"]
                selected = {ROW_COUNT_CHECK, SUMS_CHECK, SCHEMA_CHECK}
                times = []
                for _ in range(args.repeat):
                    started = time.perf_counter()
                    latest, outcomes = evaluate_table(instance, table, selected)
                    times.append(time.perf_counter() - started)
                    assert latest is not None and len(outcomes) == 3
                results[size] = (statistics.median(times), seeded)
    out = sys.stdout
    out.write(f"{'past materializations':>22} {'check eval ms (median)':>24} {'seeding s':>10}\n")
    for size, (median, seeded) in results.items():
        out.write(f"{size:>22,} {median * 1000:>24.1f} {seeded:>10.1f}\n")
    sizes = sorted(results)
    for small in sizes[:-1]:
        large = sizes[-1]
        out.write(f"ratio {large:,} / {small:,} = {results[large][0] / results[small][0]:.2f}\n")
    out.write("(a check reads at most 2 x window + 6 = 66 past materializations: history beyond"
              " that costs nothing)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
