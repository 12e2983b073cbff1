"""What ten data-quality rules cost on a real load (issue 9), against the same load with none.

Each variant is a whole `tables.load_table` of a generated orders table (default 5M rows,
shaped like the demo's orders) into a Hive table: write to a new folder, footers, metrics,
publish, and the rules:
  (a) no rules: the load with its default metrics only;
  (b) the eight rules computed with the write: two `not_null` (one with a threshold), two
      `range`, `accepted_values`, `pattern` (aggregates in the write's `observe`), `row_count`
      and `freshness` (from the footers);
  (c) all ten rules: (b) plus `unique` on the key and a `relationship` to a customers table
      (one query each on the written table after the write);
  (d) six in-write rules of which five fail, so each costs a LIMIT 5 query for its sample
      rows: violations on every row, on one row in eight, on one row in 97, and on the very
      last row only (the worst case: the query reads the whole table to find it).
Rounds rotate the order of the variants; medians are reported, with the Spark jobs of the
write (from the status tracker) to show that (b) adds none.

Usage: .venv/bin/python bench/quality_overhead.py [--rows 5000000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from pyspark.sql import SparkSession

sys.path.insert(0, str(Path(__file__).resolve().parent))
from metrics_overhead import DATA  # noqa: E402 - bench/ is no package
from metrics_overhead import generate as generate_orders

from etl_assets.core.settings import load_settings
from etl_assets.core.specs import DEFS_FILE, domain_document, load_project
from etl_assets.engine.load import load_table
from etl_assets.engine.session import build_session

IN_WRITE = """
      - {not_null: [order_id, customer_id]}
      - {not_null: [score], max_null_fraction: 0.02}
      - {range: {column: amount, min: 0, max: 1000}}
      - {range: {column: quantity, min: 1, max: 5}}
      - {accepted_values: {column: category_code,
                           values: [ELEC, BOOK, MUSC, HOME, TOYS, FOOD, BEAU, SPRT]}}
      - {pattern: {column: category_code, regex: '^[A-Z]{4}$'}}
      - {row_count: {min: 1}}
      - {freshness: {column: order_date, max_age: 36500d}}"""
FAILING = """
      - {{not_null: [order_id]}}
      - {{not_null: [score]}}
      - {{range: {{column: order_id, max: {last}}}}}
      - {{accepted_values: {{column: category_code,
                           values: [ELEC, BOOK, MUSC, HOME, TOYS, FOOD, BEAU]}}}}
      - {{pattern: {{column: category_code, regex: '^[A-Z]{{3}}$'}}}}
      - {{range: {{column: quantity, min: 1, max: 4}}}}"""
BY_QUERY = """
      - {unique: [order_id]}
      - {relationship: {column: customer_id, to: customers.customer_id}}"""

SPEC = """
database: bench_quality
sources:
  orders: {{format: parquet, path: {orders}}}
  customers: {{format: parquet, path: {customers}}}
tables:
  - name: no_rules
    inputs: [orders]
    sql: SELECT * FROM orders
  - name: eight_in_write
    inputs: [orders]
    sql: SELECT * FROM orders
    quality:{in_write}
  - name: ten_rules
    inputs: [orders]
    sql: SELECT * FROM orders
    quality:{in_write}{by_query}
  - name: failing
    inputs: [orders]
    sql: SELECT * FROM orders
    quality:{failing}
"""

VARIANTS = {"a no rules": "no_rules", "b 8 rules in the write": "eight_in_write",
            "c 10 rules (+unique, relationship)": "ten_rules",
            "d 6 rules, 5 failing (samples)": "failing"}


def generate(spark: SparkSession, rows: int) -> tuple[str, str]:
    """The orders (the metrics benchmark's table, shared on disk) and 50,000 customers."""
    orders = generate_orders(spark, rows)
    customers = DATA / "customers_50000"
    if not (customers / "_SUCCESS").exists():
        spark.range(50_000).selectExpr("CAST(id AS INT) AS customer_id").write.mode(
            "overwrite").parquet(str(customers))
    return orders, str(customers)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="etl_bench_quality_"))
    settings = load_settings({"ETL_ASSETS_HOME": str(scratch / "home"),
                              "SPARK_MASTER": "local[2]"})
    spark = build_session(settings)
    orders, customers = generate(spark, args.rows)
    folder = scratch / "pipelines"
    (folder / "bench").mkdir(parents=True)
    (folder / "bench" / DEFS_FILE).write_text(domain_document(SPEC.format(
        orders=orders, customers=customers, in_write=IN_WRITE, by_query=BY_QUERY,
        failing=FAILING.format(last=args.rows - 2))),
        encoding="utf-8")
    project = load_project(folder)
    tracker = spark.sparkContext.statusTracker()
    counter = iter(range(10**6))

    def run(table: str) -> tuple[float, int, int, int]:
        start = time.perf_counter()
        result = load_table(spark, project, project.tables[table], f"bench{next(counter):04d}")
        elapsed = time.perf_counter() - start
        failed = sum(not o.passed for o in result.quality)
        return (elapsed, len(tracker.getJobIdsForGroup(result.job_group)),
                len(tracker.getJobIdsForGroup(f"{result.job_group}:samples")), failed)

    run("no_rules")  # warm-up: JIT, file cache, metastore
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    jobs: dict[str, int] = {}
    sampling: dict[str, int] = {}
    failures: dict[str, int] = {}
    names = list(VARIANTS)
    for round_no in range(args.rounds):
        shift = round_no % len(names)
        for name in names[shift:] + names[:shift]:
            elapsed, jobs[name], sampling[name], failures[name] = run(VARIANTS[name])
            times[name].append(elapsed)
    out = sys.stdout
    out.write(f"rows={args.rows:,} rounds={args.rounds} master=local[2]\n")
    out.write(f"{'variant':36} {'median s':>9} {'min s':>7} {'max s':>7} {'ratio':>6} "
              f"{'write jobs':>10} {'sample jobs':>11} {'failed rules':>12}\n")
    base = statistics.median(times["a no rules"])
    for name, values in times.items():
        median = statistics.median(values)
        out.write(f"{name:36} {median:9.2f} {min(values):7.2f} {max(values):7.2f} "
                  f"{median / base:6.3f} {jobs[name]:10d} {sampling[name]:11d} "
                  f"{failures[name]:12d}\n")
    spark.stop()
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
