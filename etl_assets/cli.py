"""`etl-assets`: look at the log tables and query the project's metastore.

    etl-assets status            latest load of every table
    etl-assets sql "SELECT ..."  any Spark SQL query, as a table or JSON lines (--json)
    etl-assets report [--days 30] [--out FILE]   the pipeline-health page (etl_assets.health)
    etl-assets cluster up|down|status   the cluster profile's servers (etl_assets.cluster)

Uses the same settings as the assets (ETL_ASSETS_HOME, SPARK_MASTER, ...), so nobody needs to
know the Derby settings to look at their own tables.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from pyspark.sql import DataFrame, SparkSession

from etl_assets.health import DEFAULT_DAYS, report_path, write_report
from etl_assets.hive_log import RUN_LOG, HiveLog
from etl_assets.settings import Settings, load_settings
from etl_assets.spark import build_session
from etl_assets.specs import load_project
from etl_assets.sql_quoting import table_name

STATUS_COLUMNS = [
    "asset", "table_name", "status", "finished_at", "duration_s", "rows_in", "row_count",
    "bytes", "run_id", "error_message",
]


def status_frame(spark: SparkSession, settings: Settings) -> DataFrame:
    """Latest `run_log` row per asset, plus the spec'd tables that never ran."""
    log = HiveLog(spark, settings.log_db)
    log.ensure_tables()
    latest = spark.sql(
        f"""
        SELECT * FROM (
          SELECT *, row_number() OVER (PARTITION BY asset ORDER BY finished_at DESC) AS rn
          FROM {table_name(log.table(RUN_LOG))}
        ) WHERE rn = 1
        """
    )
    project = load_project(
        settings.pipelines_dir, rename_database=settings.environment.database
    )
    specs = spark.createDataFrame(
        [(t.name, t.qualified_name) for t in project.tables.values()],
        "asset string, spec_table string",
    )
    joined = specs.join(latest, "asset", "full_outer").selectExpr(
        "asset",
        "coalesce(table_name, spec_table) AS table_name",
        "coalesce(status, 'NEVER RUN') AS status",
        *[c for c in STATUS_COLUMNS if c not in ("asset", "table_name", "status")],
    )
    return joined.orderBy("asset")


def _plain(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def print_frame(frame: DataFrame, out: TextIO, as_json: bool, limit: int) -> int:
    """Print up to `limit` rows; returns the number printed. Small results only (a CLI)."""
    rows = frame.limit(limit).collect()
    columns = frame.columns
    if as_json:
        for row in rows:
            record = {c: _plain(v) for c, v in zip(columns, row, strict=True)}
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
        return len(rows)
    cells = [[("" if v is None else str(_plain(v))).replace("\n", " ")[:80] for v in row]
             for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    out.write("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip() + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for row in cells:
        out.write("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() + "\n")
    out.write(f"({len(rows)} row{'s' if len(rows) != 1 else ''})\n")
    return len(rows)


def main(argv: Sequence[str] | None = None, spark: SparkSession | None = None) -> int:
    """Entry point of the `etl-assets` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["cluster"]:
        from etl_assets.cluster import main as cluster_main

        return cluster_main(argv[1:])
    parser = argparse.ArgumentParser(prog="etl-assets", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    status = sub.add_parser("status", help="latest load of every table")
    status.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    sub.add_parser("cluster", help="start/stop the cluster profile's servers: up|down|status")
    sql = sub.add_parser("sql", help="run a Spark SQL query against the project's metastore")
    sql.add_argument("query")
    sql.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    sql.add_argument("--limit", type=int, default=1000, help="rows to print (default 1000)")
    report = sub.add_parser("report", help="write the pipeline-health page (one HTML file)")
    report.add_argument("--days", type=int, default=DEFAULT_DAYS,
                        help=f"days of log to cover, ending today (default {DEFAULT_DAYS})")
    report.add_argument("--out", type=Path, default=None,
                        help="page to write (default $ETL_ASSETS_HOME/reports/health.html)")
    args = parser.parse_args(argv)
    if args.command == "report" and args.days < 1:
        parser.error("--days must be at least 1")

    settings = load_settings()
    spark = spark or build_session(settings)
    try:
        if args.command == "status":
            print_frame(status_frame(spark, settings), sys.stdout, args.json, 10_000)
        elif args.command == "report":
            out = (args.out or report_path(settings)).resolve()
            result = write_report(spark, settings.log_db, out, days=args.days)
            t = result.totals
            sys.stdout.write(
                f"wrote {out} ({out.stat().st_size:,} bytes): {result.start} to {result.end}, "
                f"{t['tables_loaded']:,} tables loaded, {t['rows_loaded']:,} rows, "
                f"{t['runs']:,} runs ({t['failed']:,} failed), "
                f"{t['open_flags']:,} open flags\n")
        else:
            print_frame(spark.sql(args.query), sys.stdout, args.json, args.limit)
    except Exception as err:  # noqa: BLE001 - a CLI reports, it does not trace
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        sys.stderr.write(f"etl-assets {args.command}: {first}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
