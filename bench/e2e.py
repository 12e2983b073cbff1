"""End to end: the project against a hand-written PySpark job, on data shaped like the demo.

For each size (order rows; `--sizes 1M,10M,50M`, default 1M), on generated Parquet sources
(orders, categories, customers; written once under bench/data and reused), each variant runs
as its own process, from process start to exit, on the embedded profile (local Spark, Derby,
one fresh home per size):

  (a) hand-written: read the sources, run the same five SQL steps, write the same Hive tables
      (`saveAsTable`), nothing else;
  (b) seed style: (a) plus, per table, a separate count + sums pass over the written table and
      row-by-row `INSERT INTO` log rows (one per table, one per metric);
  (c) `dg launch` of the same five tables as project specs: all metrics,
      `etl_log` rows and the default checks.

Reported per variant, medians over `--rounds` (this machine's wall times vary by a third
between rounds of the same command): wall time, CPU seconds of the whole process tree
(less sensitive than wall time to a busy machine), peak RSS of the driver JVM and of the
variant's own Python process, the Dagster process for (c) (psutil, sampled every 0.2 s), the
driver's peak live heap (heap in use after a collection, from the JVM's GC log), SparkContext
starts and Spark jobs (from Spark's event logs, one file per SparkContext). Then the ratios
c/a and b/a per size, and time ratios between sizes (linearity).

The profile (medians, seconds; --rounds as above) says where each variant's time goes, from
Spark's event log (application start, each job's submission and completion, its job group)
and, for (c), Dagster's event log of the run (run start and end, each step's start and end):
  before Spark: process start to the SparkContext's start (imports; for (c) also Dagster's
    start-up and the definitions' loading, up to the run's start, then the step's set-up);
  load jobs: Spark jobs of the loads themselves (job group `etl_assets:<table>`, with their
    samples and quality queries); for (a) and (b) every job;
  other jobs: every other Spark job of (c) (footers are no job; log writes, metastore
    look-ups, the checks' history reads);
  between jobs: the rest of the time between the SparkContext's start and the last job's
    end (planning, metastore calls, Python);
  after: the last job's end to process exit (for (c): the checks' and run's end events,
    Spark's stop);
  check steps: for (c), the summed wall time of the steps that only run checks (none since
    issue 23: every check is judged in its table's own step).

Usage: .venv/bin/python bench/e2e.py [--sizes 1M,10M,50M] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from etl_assets.core.specs import DEFS_FILE, domain_document

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
BIN = Path(sys.executable).parent
CUSTOMERS = 200_000

# name -> (inputs, SQL): the demo's flow, orders -> clean -> aggregates -> joins -> outputs.
TABLES: dict[str, tuple[list[str], str]] = {
    "clean_orders": (["orders"], """
        SELECT order_id, customer_id, category_code, amount, quantity, order_date
        FROM orders WHERE status = 'active'"""),
    "category_totals": (["clean_orders"], """
        SELECT category_code, COUNT(*) AS order_count, SUM(amount) AS total_amount,
               SUM(quantity) AS total_quantity
        FROM clean_orders GROUP BY category_code"""),
    "customer_stats": (["clean_orders"], """
        SELECT customer_id, COUNT(*) AS order_count, SUM(amount) AS total_amount,
               AVG(amount) AS avg_amount, MIN(order_date) AS first_order_date,
               MAX(order_date) AS last_order_date
        FROM clean_orders WHERE customer_id IS NOT NULL GROUP BY customer_id"""),
    "enriched_categories": (["category_totals", "categories"], """
        SELECT t.category_code, c.category_name, c.category_group, t.order_count,
               t.total_amount, t.total_quantity
        FROM category_totals t LEFT JOIN categories c ON t.category_code = c.category_code"""),
    "final_output": (["customer_stats", "customers"], """
        SELECT s.customer_id, c.city, s.order_count, s.total_amount, s.avg_amount,
               s.first_order_date, s.last_order_date
        FROM customer_stats s JOIN customers c ON s.customer_id = c.customer_id"""),
}
SOURCES = ("orders", "categories", "customers")


def parse_size(text: str) -> int:
    text = text.strip().upper()
    scale = {"K": 1_000, "M": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("KM")) * scale)


def data_dir(rows: int) -> Path:
    return DATA / f"e2e_{rows}"


# --- (generate) --------------------------------------------------------------------------------

def generate(rows: int) -> None:
    """Write the sources once (Parquet); later runs reuse them."""
    from pyspark.sql import SparkSession

    target = data_dir(rows)
    if all((target / s / "_SUCCESS").exists() for s in SOURCES):
        return
    spark = (SparkSession.builder.master("local[*]").config("spark.ui.enabled", "false")
             .config("spark.sql.shuffle.partitions", "4").getOrCreate())
    spark.range(rows).selectExpr(
        "CAST(id AS BIGINT) AS order_id",
        f"CASE WHEN id % 101 = 0 THEN NULL ELSE CAST(id * 7 % {CUSTOMERS} AS INT) END "
        "AS customer_id",
        "element_at(array('ELEC','BOOK','MUSC','HOME','TOYS','FOOD','BEAU','SPRT'), "
        "CAST(id % 8 AS INT) + 1) AS category_code",
        "CASE WHEN id % 10 < 9 THEN 'active' ELSE 'inactive' END AS status",
        "CAST((id * 7919 % 100000) / 100.0 AS DECIMAL(12,2)) AS amount",
        "CAST(id % 5 + 1 AS INT) AS quantity",
        "date_add(DATE'2026-01-01', CAST(id % 90 AS INT)) AS order_date",
    ).write.mode("overwrite").parquet(str(target / "orders"))
    spark.createDataFrame(
        [(c, f"Category {c}", "HARD" if i % 2 else "SOFT") for i, c in enumerate(
            ("ELEC", "BOOK", "MUSC", "HOME", "TOYS", "FOOD", "BEAU", "SPRT"))],
        "category_code STRING, category_name STRING, category_group STRING",
    ).coalesce(1).write.mode("overwrite").parquet(str(target / "categories"))
    spark.range(CUSTOMERS).selectExpr(
        "CAST(id AS INT) AS customer_id", "concat('customer ', id) AS name",
        "element_at(array('Seoul','Busan','Incheon','Daegu'), CAST(id % 4 AS INT) + 1) AS city",
    ).coalesce(2).write.mode("overwrite").parquet(str(target / "customers"))
    spark.stop()


# --- (a) and (b): the hand-written job --------------------------------------------------------

def handwritten(rows: int, seed_style: bool) -> None:
    """What a team writes by hand: the SQL steps and saveAsTable; (b) adds the seed logger."""
    from etl_assets.core.settings import load_settings
    from etl_assets.engine.session import build_session

    spark = build_session(load_settings(os.environ))  # the same Spark settings as the project
    db = "bench_b" if seed_style else "bench_a"
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {db}")
    for source in SOURCES:
        spark.read.parquet(str(data_dir(rows) / source)).createOrReplaceTempView(source)
    if seed_style:
        spark.sql(f"CREATE TABLE IF NOT EXISTS {db}.run_log (table_name STRING, status STRING, "
                  "row_count BIGINT, logged_at TIMESTAMP) USING parquet")
        spark.sql(f"CREATE TABLE IF NOT EXISTS {db}.metric_log (table_name STRING, "
                  "metric STRING, value DOUBLE, logged_at TIMESTAMP) USING parquet")
    for name, (_, sql) in TABLES.items():
        if name == "enriched_categories":
            sql = sql.replace("SELECT", "SELECT /*+ BROADCAST(c) */", 1)
        spark.sql(sql).write.mode("overwrite").format("parquet").saveAsTable(f"{db}.{name}")
        spark.table(f"{db}.{name}").createOrReplaceTempView(name)
        if seed_style:  # the logger.py of the seed: a second pass, then one INSERT per value
            table = spark.table(f"{db}.{name}")
            numeric = [f.name for f in table.schema
                       if f.dataType.typeName() in ("integer", "long", "decimal", "double")]
            sums = table.selectExpr("count(*) AS n",
                                    *[f"sum(`{c}`) AS `{c}`" for c in numeric]).first()
            spark.sql(f"INSERT INTO {db}.run_log VALUES ('{name}', 'SUCCESS', {sums['n']}, "
                      "current_timestamp())")
            for column in numeric:
                value = sums[column]
                spark.sql(f"INSERT INTO {db}.metric_log VALUES ('{name}', 'sum/{column}', "
                          f"{'NULL' if value is None else float(value)}, current_timestamp())")
    spark.stop()


# --- (c): the project's specs ------------------------------------------------------------------

def write_spec(folder: Path, rows: int) -> None:
    lines = ["domain: bench", "database: bench_c", "sources:"]
    for source in SOURCES:
        lines += [f"  {source}:", "    format: parquet", f"    path: {data_dir(rows) / source}"]
    lines.append("tables:")
    for name, (inputs, sql) in TABLES.items():
        lines += [f"  - name: {name}", f"    inputs: [{', '.join(inputs)}]"]
        if name == "enriched_categories":
            lines.append("    broadcast: [categories]")
        lines.append("    sql: |")
        lines += [f"      {line.strip()}" for line in sql.strip().splitlines()]
    spec = folder / "bench" / DEFS_FILE
    spec.parent.mkdir(parents=True, exist_ok=True)
    spec.write_text(domain_document("\n".join(lines) + "\n"), encoding="utf-8")


# --- measuring a process -----------------------------------------------------------------------

def spark_profile(logs: list[Path], started_epoch: float, ended_epoch: float
                  ) -> dict[str, float]:
    """Where a process's time went, from its Spark event logs (see the module docstring)."""
    app_start = None
    jobs: dict[int, list] = {}  # job id -> [submitted ms, completed ms, group]
    for f in logs:
        for line in f.read_text(errors="replace").splitlines():
            if '"Event":"SparkListenerApplicationStart"' in line:
                stamp = json.loads(line)["Timestamp"]
                app_start = stamp if app_start is None else min(app_start, stamp)
            elif '"Event":"SparkListenerJobStart"' in line:
                event = json.loads(line)
                group = (event.get("Properties") or {}).get("spark.jobGroup.id") or ""
                jobs[event["Job ID"]] = [event["Submission Time"], None, group]
            elif '"Event":"SparkListenerJobEnd"' in line:
                event = json.loads(line)
                if event["Job ID"] in jobs:
                    jobs[event["Job ID"]][1] = event["Completion Time"]
    done = [j for j in jobs.values() if j[1] is not None]
    if app_start is None or not done:
        return {}
    load = sum(end - start for start, end, group in done if group.startswith("etl_assets:"))
    other = sum(end - start for start, end, group in done
                if not group.startswith("etl_assets:"))
    last = max(end for _, end, _ in done)
    return {"before_spark_s": app_start / 1000 - started_epoch,
            "load_jobs_s": load / 1000, "other_jobs_s": other / 1000,
            "between_jobs_s": (last - app_start - load - other) / 1000,
            "after_s": ended_epoch - last / 1000}


def dagster_profile(dagster_home: Path, started_epoch: float) -> dict[str, float]:
    """For (c): Dagster's start-up and the checks' steps, from the newest run's event log."""
    from dagster import DagsterEventType, DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    instance = DagsterInstance.from_ref(InstanceRef.from_dir(str(dagster_home)))
    try:
        (run,) = instance.get_runs(limit=1)
        records = instance.all_logs(run.run_id)
        run_start = next(r.timestamp for r in records if r.dagster_event is not None
                         and r.dagster_event.event_type == DagsterEventType.RUN_START)
        steps: dict[str, list[float]] = {}
        for r in records:
            event = r.dagster_event
            if event is None or r.step_key is None:
                continue
            if event.event_type == DagsterEventType.STEP_START:
                steps[r.step_key] = [r.timestamp, r.timestamp]
            elif event.event_type in (DagsterEventType.STEP_SUCCESS,
                                      DagsterEventType.STEP_FAILURE) and r.step_key in steps:
                steps[r.step_key][1] = r.timestamp
        checks = sum(end - start for key, (start, end) in steps.items() if key not in TABLES)
        return {"dagster_start_s": run_start - started_epoch, "check_steps_s": checks}
    finally:
        instance.dispose()


def measure(cmd: list[str], env: dict[str, str], events: Path) -> dict[str, float]:
    """Run a command to completion; wall time, peak RSS by kind, Spark starts and jobs, and
    where the time went (`spark_profile`)."""
    shutil.rmtree(events, ignore_errors=True)
    events.mkdir(parents=True)
    env = {**env, "PYSPARK_SUBMIT_ARGS": (
        f"--conf spark.eventLog.enabled=true --conf spark.eventLog.dir=file://{events} "
        "--conf spark.eventLog.compress=false --conf spark.eventLog.rolling.enabled=false "
        "pyspark-shell"),
        # Every JVM's GC log (%p: one file per process): the heap still in use after each
        # collection, which is what the driver holds on to, unlike RSS, which grows with the
        # heap the JVM has committed up to spark.driver.memory whatever the job keeps.
        "JAVA_TOOL_OPTIONS": f"-Xlog:gc:file={events}/.gc_%p.log"}
    peak = {"jvm": 0, "python": 0}
    cpu: dict[int, float] = {}  # pid -> user + system seconds, last seen
    started = time.perf_counter()
    started_epoch = time.time()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(proc.stdout), daemon=True)
    reader.start()
    root = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            peak["python"] = max(peak["python"], root.memory_info().rss)
            children = root.children(recursive=True)
        except psutil.NoSuchProcess:
            break
        for process in [root, *children]:  # the driver JVM (local mode: executors inside it)
            try:
                times = process.cpu_times()
                cpu[process.pid] = times.user + times.system
                if process.name() == "java":
                    peak["jvm"] = max(peak["jvm"], process.memory_info().rss)
            except psutil.NoSuchProcess:
                pass
        time.sleep(0.2)
    elapsed = time.perf_counter() - started
    ended_epoch = time.time()
    reader.join()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{''.join(output)[-4000:]}")
    logs = [f for f in events.rglob("*") if f.is_file() and not f.name.startswith(".")]
    jobs = sum(line.count('"Event":"SparkListenerJobStart"')
               for f in logs for line in f.read_text(errors="replace").splitlines())
    return {"s": elapsed, "cpu_s": sum(cpu.values()), "jvm_mb": peak["jvm"] / 2**20,
            "python_mb": peak["python"] / 2**20,
            "live_heap_mb": live_heap_mb(events), "spark_starts": len(logs), "jobs": jobs,
            "started_epoch": started_epoch,
            **spark_profile(logs, started_epoch, ended_epoch)}


GC_PAUSE = re.compile(r"Pause .* (\d+)M->(\d+)M\(\d+M\)")


def live_heap_mb(events: Path) -> float:
    """Peak heap in use right after a collection, over every JVM's GC log (unified logging)."""
    after = [int(m.group(2)) for f in events.glob(".gc_*.log")
             for m in GC_PAUSE.finditer(f.read_text(errors="replace"))]
    return float(max(after, default=0))


def run_size(rows: int, rounds: int, scratch: Path) -> dict[str, dict[str, float]]:
    home = scratch / f"home_{rows}"
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True, exist_ok=True)
    link = dagster_home / "dagster.yaml"
    if not link.exists():
        link.symlink_to(ROOT / "dagster.yaml")
    pipelines = scratch / f"pipelines_{rows}"
    write_spec(pipelines, rows)
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("ETL_", "SPARK_", "DAGSTER_"))}
    env.update({"ETL_ASSETS_HOME": str(home), "DAGSTER_HOME": str(dagster_home),
                "ETL_ASSETS_DEFS": str(pipelines), "VIRTUAL_ENV": str(BIN.parent)})
    commands = {
        "a": [sys.executable, __file__, "--job", "a", "--rows", str(rows)],
        "b": [sys.executable, __file__, "--job", "b", "--rows", str(rows)],
        # The five tables (and their checks) only: not the health report asset, which (a)
        # and (b) have no counterpart for.
        "c": [str(BIN / "dg"), "launch", "--target-path", str(ROOT),
              "--assets", ",".join(TABLES)],
    }
    rounds_seen: dict[str, list[dict[str, float]]] = {v: [] for v in commands}
    for round_ in range(rounds):
        for variant, cmd in commands.items():
            result = measure(cmd, env, scratch / "events")
            if variant == "c":
                result.update(dagster_profile(dagster_home, result["started_epoch"]))
            print(f"  {rows:>11,} rows  round {round_ + 1}  ({variant}) {result['s']:7.1f} s  "
                  f"CPU {result['cpu_s']:6.1f} s  "
                  f"JVM {result['jvm_mb']:6.0f} MB (live heap {result['live_heap_mb']:4.0f})  "
                  f"Python {result['python_mb']:5.0f} MB  "
                  f"Spark starts {result['spark_starts']}  jobs {result['jobs']}", flush=True)
            rounds_seen[variant].append(result)
    return {variant: {key: statistics.median(r[key] for r in results) for key in results[0]}
            for variant, results in rounds_seen.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1M", help="order rows, comma-separated (1M,10M,50M)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--job", choices=["a", "b"], help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--generate", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job:
        handwritten(args.rows, seed_style=args.job == "b")
        return 0
    if args.generate:
        generate(args.generate)
        return 0

    sizes = [parse_size(s) for s in args.sizes.split(",")]
    scratch = Path(tempfile.mkdtemp(prefix="etl_bench_e2e_"))
    results = {}
    try:
        for rows in sizes:
            subprocess.run([sys.executable, __file__, "--generate", str(rows)], check=True,
                           cwd=ROOT, capture_output=True)
            results[rows] = run_size(rows, args.rounds, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    print(f"\nmedians of {args.rounds} rounds; a = hand-written, b = seed style, c = etl_assets\n")
    print("| order rows | a (s) | b (s) | c (s) | c/a | b/a | CPU c/a | driver RSS a/c (MB) "
          "| live heap a/c (MB) | Dagster process (MB) | Spark starts c | jobs a/b/c |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for rows, r in results.items():
        print(f"| {rows:,} | {r['a']['s']:.1f} | {r['b']['s']:.1f} | {r['c']['s']:.1f} "
              f"| {r['c']['s'] / r['a']['s']:.2f} | {r['b']['s'] / r['a']['s']:.2f} "
              f"| {r['c']['cpu_s'] / r['a']['cpu_s']:.2f} "
              f"| {r['a']['jvm_mb']:.0f} / {r['c']['jvm_mb']:.0f} "
              f"| {r['a']['live_heap_mb']:.0f} / {r['c']['live_heap_mb']:.0f} "
              f"| {r['c']['python_mb']:.0f} "
              f"| {r['c']['spark_starts']:.0f} "
              f"| {r['a']['jobs']:.0f} / {r['b']['jobs']:.0f} / {r['c']['jobs']:.0f} |")
    ordered = sorted(results)
    for small, large in zip(ordered, ordered[1:]):
        ratio = {v: results[large][v]["s"] / results[small][v]["s"] for v in "abc"}
        memory = {k: results[large]["c"][k] / max(results[small]["c"][k], 1)
                  for k in ("jvm_mb", "live_heap_mb", "python_mb")}
        print(f"{large:,} / {small:,} rows ({large / small:.0f}x): time a {ratio['a']:.2f}x, "
              f"b {ratio['b']:.2f}x, c {ratio['c']:.2f}x; (c) driver RSS "
              f"{memory['jvm_mb']:.2f}x, live heap {memory['live_heap_mb']:.2f}x, "
              f"Dagster process {memory['python_mb']:.2f}x")
    print("\nwhere the time goes (s, medians; see the module docstring)\n")
    keys = ["before_spark_s", "dagster_start_s", "load_jobs_s", "other_jobs_s",
            "between_jobs_s", "after_s", "check_steps_s"]
    print("| order rows | variant | total | " + " | ".join(k[:-2].replace("_", " ")
                                                        for k in keys) + " |")
    print("|---|---|---|" + "---|" * len(keys))
    for rows, r in results.items():
        for variant in "ac":
            cells = " | ".join(f"{r[variant][k]:.1f}" if k in r[variant] else "-" for k in keys)
            print(f"| {rows:,} | {variant} | {r[variant]['s']:.1f} | {cells} |")
    print(json.dumps({str(k): v for k, v in results.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
