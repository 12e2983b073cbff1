"""What the observed metrics cost on top of a bare write (issue 23: target b/a <= 1.10).

Times, on a generated table (default 5M rows, shaped like the demo's orders):
  (a) a bare write of the table to Parquet,
  (b) the same write with all of the project's default metrics (row count, null count per
      column, sums, NaN counts, date ranges), exactly as a load captures them: the written
      Parquet footers plus `DataFrame.observe` aggregates in their cheap forms (a float's
      plain sum, a decimal's unscaled long sum: `engine/metrics.MetricPlan`); (b1) the same
      metrics observed in their exact forms (a NaN count and a NaN-free sum per float, a
      decimal sum: the default before issue 23); (b') (b) plus one categorical column's value
      set (opt-in); (b0) no sums (`metrics: {sum: []}`: footers + the floats' NaN test),
  (c) a bare write followed by a separate count + sums pass over the written data
      (what a hand-written `logger.py` does).
Two workloads: `copy` (read Parquet, write it: the worst case for any per-row cost) and
`transform` (a filter, a broadcast lookup join and derived columns, like a real load).
Rounds rotate the order of (a), (b), (c); medians are reported.

Usage: .venv/bin/python bench/metrics_overhead.py [--rows 5000000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from etl_assets.core.settings import load_settings
from etl_assets.core.specs import MetricsSpec
from etl_assets.engine.metrics import plan_metrics
from etl_assets.engine.session import build_session
from etl_assets.engine.storage import read_footers

DATA = Path(__file__).resolve().parent / "data"
CATEGORIES = ("ELEC", "BOOK", "MUSC", "HOME", "TOYS", "FOOD", "BEAU", "SPRT")


def generate(spark: SparkSession, rows: int) -> str:
    path = DATA / f"orders_v2_{rows}"
    if not (path / "_SUCCESS").exists():
        spark.range(rows).selectExpr(
            "id AS order_id",
            "CAST(id % 50000 AS INT) AS customer_id",
            "element_at(array('ELEC','BOOK','MUSC','HOME','TOYS','FOOD','BEAU','SPRT'), "
            "CAST(id % 8 AS INT) + 1) AS category_code",
            "CAST((id * 7919 % 100000) / 100.0 AS DECIMAL(12,2)) AS amount",
            "CAST(id % 5 + 1 AS INT) AS quantity",
            "date_add(DATE'2026-01-01', CAST(id % 90 AS INT)) AS order_date",
            "CASE WHEN id % 97 = 0 THEN NULL ELSE CAST(id % 1000 AS DOUBLE) / 10 END AS score",
        ).write.mode("overwrite").parquet(str(path))
    return str(path)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="etl_bench_"))
    settings = load_settings({"ETL_ASSETS_HOME": str(scratch / "home"),
                              "SPARK_MASTER": "local[2]"})
    spark = build_session(settings)
    source = generate(spark, args.rows)
    counter = iter(range(10**6))

    def target() -> str:
        return str(scratch / f"out_{next(counter)}")

    def copy_frame() -> DataFrame:
        return spark.read.parquet(source)

    def transform_frame() -> DataFrame:
        # Shaped like a load of clean_orders: a filter, a broadcast lookup join, derived columns.
        lookup = spark.createDataFrame(
            [(c, f"name {c}", i % 3) for i, c in enumerate(CATEGORIES)],
            "category_code string, category_name string, tier int",
        )
        orders = spark.read.parquet(source).where("quantity < 5")
        return orders.join(F.broadcast(lookup), "category_code").selectExpr(
            "*", "amount * quantity AS line_total", "year(order_date) AS order_year"
        )

    def variants_for(prepare):
        def bare() -> None:
            prepare().write.parquet(target())

        def with_metrics(options: MetricsSpec):
            def observed() -> None:
                frame = prepare()
                plan = plan_metrics(frame.schema, options)
                out = target()
                observed_frame, observation = plan.attach(frame)
                observed_frame.write.parquet(out)
                assert plan.collect(spark, observation, out)["dagster/row_count"] > 0

            return observed

        def exact_forms() -> None:
            # The previous default: every sum and NaN count observed in its exact form.
            frame = prepare()
            exprs = []
            for f in frame.schema.fields:
                kind = f.dataType.typeName()
                if kind in ("double", "float"):
                    exprs += [F.count_if(F.isnan(f.name)),
                              F.sum(F.nanvl(F.col(f.name), F.lit(0.0)))]
                elif kind == "decimal":
                    exprs.append(F.sum(f.name))
                elif kind in ("integer", "long", "short", "byte"):
                    exprs.append(F.try_sum(f.name))
            observation = Observation()
            out = target()
            frame.observe(observation, *[e.alias(f"e{i}") for i, e in enumerate(exprs)]
                          ).write.parquet(out)
            assert observation.get
            assert read_footers(spark, out, [f.name for f in frame.schema.fields]).rows > 0

        def separate_pass() -> None:
            frame = prepare()
            out = target()
            frame.write.parquet(out)
            written = spark.read.parquet(out)
            numeric = [f.name for f in written.schema
                       if f.dataType.typeName() in ("integer", "long", "double", "decimal")]
            row = written.agg(F.count(F.lit(1)), *[F.sum(c) for c in numeric]).first()
            assert row[0] > 0

        return {
            "a bare write": bare,
            "b all default metrics": with_metrics(MetricsSpec()),
            "b1 exact forms observed": exact_forms,
            "b' + a categorical set": with_metrics(MetricsSpec(categorical=["category_code"])),
            "b0 no sums (sum: [])": with_metrics(MetricsSpec(sum=[])),
            "c write + count/sums pass": separate_pass,
        }

    def measure(rounds: int, variants: dict) -> dict[str, list[float]]:
        variants["a bare write"]()  # warm-up: JIT, file cache
        times: dict[str, list[float]] = {name: [] for name in variants}
        names = list(variants)
        for round_no in range(rounds):
            shift = round_no % len(names)
            order = names[shift:] + names[:shift]
            for name in order:
                times[name].append(timed(variants[name]))
                for old in scratch.glob("out_*"):
                    shutil.rmtree(old, ignore_errors=True)
        return times

    results = []
    for workload, prepare in (("copy", copy_frame), ("transform", transform_frame)):
        results.append((workload, measure(args.rounds, variants_for(prepare))))
    out = sys.stdout
    out.write(f"rows={args.rows:,} rounds={args.rounds} master=local[2]\n")
    for workload, times in results:
        medians = {name: statistics.median(values) for name, values in times.items()}
        base = medians["a bare write"]
        out.write(f"\nworkload: {workload}\n")
        out.write(f"{'variant':28} {'median s':>9} {'min s':>7} {'max s':>7} {'ratio':>6}\n")
        for name, values in times.items():
            out.write(f"{name:28} {medians[name]:9.2f} {min(values):7.2f} {max(values):7.2f} "
                      f"{medians[name] / base:6.3f}\n")
        out.write(f"{workload}: b/a = {medians['b all default metrics'] / base:.3f}   "
                  f"b1/a = {medians['b1 exact forms observed'] / base:.3f}   "
                  f"b0/a = {medians['b0 no sums (sum: [])'] / base:.3f}   "
                  f"c/a = {medians['c write + count/sums pass'] / base:.3f}\n")
    spark.stop()
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
