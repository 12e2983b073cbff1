"""Writes the Spark driver's class archive (`etl_assets.engine.jvm_archive`) once.

`python -m etl_assets.engine.jvm_training` (run by `make install`): a training JVM runs a
small load, log write and health report, and dumps the classes it loaded when it exits. The
dump is written under a temporary name and renamed when the JVM has exited, so a reader
never maps half a file. Idempotent: an archive that exists is kept.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from etl_assets.core.settings import JVM_ARCHIVE_ENV as ARCHIVE_ENV
from etl_assets.core.settings import jvm_archive_folder, load_settings
from etl_assets.engine import session
from etl_assets.engine.jvm_archive import CLASS_PATH_KEYS, PREFIX, archive_path

# The dump lists each class it cannot archive (Spark's shaded ASM, lambdas, ...) as a warning.
_QUIET_DUMP = "-Xlog:cds=off -Xlog:cds+dynamic=off"


def _workload(spark: Any, home: Path) -> None:
    """What a load does, briefly: the classes of its write, metrics, log and report paths."""
    # Imported here: the engine's modules are only needed by the training process.
    from pyspark.sql import Observation
    from pyspark.sql import functions as F

    from etl_assets.core.outcomes import CheckedLoad, CheckOutcome
    from etl_assets.core.records import RunRecord
    from etl_assets.engine import storage
    from etl_assets.engine.health import write_report
    from etl_assets.engine.hive_log import HiveLog

    spark.sql("CREATE DATABASE IF NOT EXISTS jvm_training")
    rows = spark.range(0, 50_000).selectExpr(
        "id", "CAST(id % 7 AS INT) AS k", "CAST(id AS DECIMAL(18, 2)) AS amount",
        "CAST(id AS DECIMAL(38, 4)) AS wide", "CAST(id AS DOUBLE) / 3 AS ratio",
        "CAST(id AS STRING) AS name", "timestamp_micros(id) AS ts",
        "date_add(DATE'2026-01-01', CAST(id % 30 AS INT)) AS day")
    observation = Observation("training")
    observed = rows.observe(observation, F.count(F.lit(1)).alias("rows"),
                            F.try_sum("k").alias("k"), F.sum("ratio").alias("ratio"),
                            F.try_sum("wide").alias("wide"))
    observed.write.mode("overwrite").format("parquet").partitionBy("day").saveAsTable(
        "jvm_training.facts")
    observation.get  # noqa: B018 - waits for the metrics, as a load does
    location = storage.table_meta(spark, "jvm_training.facts").location
    storage.read_footers(spark, location, ["id", "amount", "ratio", "ts"])
    spark.sql("""
        SELECT f.k, count(*) AS n, sum(amount) AS amount, avg(ratio) AS ratio, max(ts) AS ts,
               row_number() OVER (PARTITION BY f.k % 2 ORDER BY count(*) DESC) AS rank
        FROM jvm_training.facts f JOIN (SELECT DISTINCT k FROM jvm_training.facts) d
          ON f.k = d.k
        WHERE day >= DATE'2026-01-10' GROUP BY f.k
    """).collect()
    log = HiveLog(spark, "jvm_training_log")
    log.ensure_tables()
    now = datetime.now(timezone.utc)
    log.write_loads([(RunRecord(
        run_id=f"run-{i}", asset="facts", domain="training", table_name="jvm_training.facts",
        status="SUCCESS", started_at=now - timedelta(seconds=60 - i), finished_at=now,
        code_version="1", row_count=50_000), {"sum/amount": 1.0}) for i in range(3)])
    log.write_checks([(CheckedLoad(run_id="run-2", asset="facts", checked_at=now,
                                   target_run_id="run-2"),
                       CheckOutcome(check="row_count_anomaly", metric="row_count",
                                    passed=True, severity="WARN", status="ok",
                                    description="training", value=50_000.0))])
    write_report(spark, "jvm_training_log", home / "report.html")


def train(folder: Path, conf: Mapping[str, Any] | None = None) -> Path:
    """Write this JVM's archive into `folder` unless it exists; returns its path.

    Runs `_workload` in a child process (the JVM dumps its classes only when it exits) on a
    temporary embedded home, with `conf`'s class-path settings, then renames the dump into
    place. Takes 45-50 s on 2 cores, once.

    Raises:
        RuntimeError: No `java` was found, or the training process failed (its output is in
            the message).
    """
    conf = dict(conf or {})
    path = archive_path(folder, conf)
    if path is None:
        raise RuntimeError("no java found (JAVA_HOME or PATH): Spark cannot start either")
    if path.is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="etl_jvm_training_") as home:
        dump = folder / f".{path.name}.{os.getpid()}.tmp"
        classpath = {k: conf[k] for k in CLASS_PATH_KEYS if conf.get(k)}
        done = subprocess.run(
            [sys.executable, "-m", "etl_assets.engine.jvm_training", "--workload", home,
             "--dump", str(dump), *(f"--conf={k}={v}" for k, v in classpath.items())],
            capture_output=True, text=True, env={**os.environ, ARCHIVE_ENV: "off"})
        try:
            if done.returncode != 0 or not dump.is_file() or dump.stat().st_size == 0:
                tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-20:])
                raise RuntimeError(f"training the JVM class archive failed:\n{tail}")
            os.replace(dump, path)
        finally:
            dump.unlink(missing_ok=True)
    runtime = path.name[len(PREFIX):].split("-")[0]
    for stale in folder.glob(f"{PREFIX}*.jsa"):  # archives of an older JVM or jar set
        if not stale.name.startswith(f"{PREFIX}{runtime}-"):
            stale.unlink(missing_ok=True)
    return path


def _run_workload(home: Path, dump: Path, extra: dict[str, str]) -> None:
    """The training process: a session that dumps its classes to `dump` when its JVM exits."""
    from pyspark import SparkContext

    settings = load_settings({"ETL_ASSETS_HOME": str(home), ARCHIVE_ENV: "off"})
    conf = {**session.spark_config(settings), **extra}
    conf["spark.driver.extraJavaOptions"] += f" -XX:ArchiveClassesAtExit={dump} {_QUIET_DUMP}"
    session.serve_ui_on_loopback(settings)
    spark = session.start_session(conf, embedded_metastore=settings.embedded_metastore)
    _workload(spark, home)
    spark.stop()
    gateway = SparkContext._gateway
    # The JVM exits when its stdin closes (PythonGatewayServer) and dumps the archive as it
    # exits: wait for that, so the caller sees a whole file.
    gateway.proc.stdin.close()
    gateway.proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the Spark driver's class archive once.")
    parser.add_argument("--folder", type=Path, default=None,
                        help=f"where (default: ${ARCHIVE_ENV}, else the environment's var/)")
    parser.add_argument("--workload", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--dump", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--conf", action="append", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.workload:
        _run_workload(args.workload, args.dump, dict(c.split("=", 1) for c in args.conf))
        return 0
    folder = args.folder or jvm_archive_folder()
    if folder is None:
        print(f"{ARCHIVE_ENV}=off: no JVM class archive")
        return 0
    # The class path of this environment's driver (the cluster profile adds a JDBC jar).

    conf = session.spark_config(load_settings())
    existing = archive_path(folder, conf)
    if existing is not None and existing.is_file():
        print(f"JVM class archive: {existing} (already written)")
        return 0
    started = time.perf_counter()
    try:
        path = train(folder, conf)
    except (RuntimeError, OSError) as err:
        # A speed-up only: drivers start without it, so installing goes on (and says why).
        print(f"JVM class archive not written, Spark drivers start without it: {err}",
              file=sys.stderr)
        return 0
    print(f"JVM class archive: {path} ({path.stat().st_size / 1e6:.0f} MB, written in "
          f"{time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
