"""`etl-assets`: look at the log tables and query the project's metastore.

    etl-assets status            latest load of every table
    etl-assets sql "SELECT ..."  any Spark SQL query, as a table or JSON lines (--json)
    etl-assets report [--days 30] [--out FILE]   the pipeline-health page (etl_assets.engine.health)
    etl-assets cluster up|down|status   the cluster profile's servers (etl_assets.tools.cluster)
    etl-assets accept TABLE --run ID [--note "..."]      a flagged load was expected
    etl-assets rebaseline TABLE --run ID [--note "..."]  judge later loads from this load on
    etl-assets backtest TABLE [--metric row_count] [--set rule=mad ...]   replay the history
    etl-assets publish TABLE --run ID [--note "..."]     publish a load its checks held back
    etl-assets discard TABLE --run ID [--note "..."]     delete a held load

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

from etl_assets.core.health_report import DEFAULT_DAYS, report_path
from etl_assets.core.settings import Settings, load_settings
from etl_assets.core.specs import load_project
from etl_assets.core.sql_quoting import table_name
from etl_assets.engine.health import write_report
from etl_assets.engine.hive_log import RUN_LOG, HiveLog
from etl_assets.engine.session import build_session
from etl_assets.orchestration.backtest import DEFAULT_LOADS

# Commands that read only the small log tables: their driver starts with a quick JIT.
QUERY_ONLY_COMMANDS = ("status", "report")

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
        settings.defs_dir, rename_database=settings.environment.database,
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
        from etl_assets.tools.cluster import main as cluster_main

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
    for action, what in (("accept", "a flagged load was expected: it joins the baseline"),
                         ("rebaseline", "judge the table's later loads from this load on")):
        decide = sub.add_parser(action, help=what)
        decide.add_argument("table")
        decide.add_argument("--run", required=True,
                            help="the run id of the load, or `latest` (the table's newest load)")
        decide.add_argument("--note", default="", help="why (shown in later verdicts)")
        decide.add_argument("--by", default="", help="who decides (default: $USER)")
    for action, what in (("publish", "publish a load that its blocking checks held back"),
                         ("discard", "delete a load that its blocking checks held back")):
        decide = sub.add_parser(action, help=what)
        decide.add_argument("table")
        decide.add_argument("--run", required=True, help="the run id of the held load")
        decide.add_argument("--note", default="", help="why (kept in etl_log.check_feedback)")
        decide.add_argument("--by", default="", help="who decides (default: $USER)")
    replay = sub.add_parser("backtest", help="replay a table's history through a check rule")
    replay.add_argument("table")
    replay.add_argument("--metric", default="row_count", help="row_count or sum/<column>")
    replay.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="override a check setting, e.g. --set rule=mad --set window=60")
    replay.add_argument("--last", type=int, default=DEFAULT_LOADS,
                        help=f"newest loads to replay (default {DEFAULT_LOADS})")
    args = parser.parse_args(argv)
    if args.command == "report" and args.days < 1:
        parser.error("--days must be at least 1")
    if args.command in ("accept", "rebaseline", "backtest", "publish", "discard"):
        return _dagster_command(args, parser)

    settings = load_settings()
    # `sql` may scan any table: it keeps the JIT a load needs.
    spark = spark or build_session(settings, query_only=args.command in QUERY_ONLY_COMMANDS)
    try:
        if args.command == "status":
            print_frame(status_frame(spark, settings), sys.stdout, args.json, 10_000)
            if not args.json:
                print_held(spark, settings, sys.stdout)
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


def _dagster_command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """accept / rebaseline / backtest: they work on the Dagster instance ($DAGSTER_HOME)."""
    import dagster as dg

    from etl_assets.orchestration.backtest import BacktestError, backtest
    from etl_assets.orchestration.feedback import FEEDBACK_JOB, FeedbackError

    settings = load_settings()
    project = load_project(settings.defs_dir, rename_database=settings.environment.database)
    if args.table not in project.tables:
        parser.error(f"unknown table {args.table!r}; tables: {', '.join(sorted(project.tables))}")
    overrides = {}
    for item in getattr(args, "set", []):
        name, sep, value = item.partition("=")
        if not sep or not name:
            parser.error(f"--set takes NAME=VALUE, got {item!r}")
        overrides[name.strip()] = value.strip()
    with dg.DagsterInstance.get() as instance:
        try:
            if args.command == "backtest":
                replayed = backtest(instance, project.tables[args.table], args.metric,
                                    overrides, args.last)
                return _print_backtest(replayed, args, sys.stdout)
            from etl_assets.definitions import build_definitions

            if args.command in ("publish", "discard"):
                return _held_command(args, build_definitions(settings), instance)
            if args.run == "latest":
                newest = instance.fetch_materializations(dg.AssetKey(args.table), limit=1).records
                if not newest:
                    raise FeedbackError(f"table {args.table!r} has no recorded load")
                args.run = newest[0].run_id
            config = {"table": args.table, "run_id": args.run, "action": args.command,
                      "note": args.note, "by": args.by}
            result = _run_op(build_definitions(settings), FEEDBACK_JOB, "record_feedback",
                             config, instance)
        except (BacktestError, FeedbackError) as err:
            sys.stderr.write(f"etl-assets {args.command}: {err}\n")
            return 1
        if not result.success:
            sys.stderr.write(f"etl-assets {args.command}: {_failure_message(result)}\n")
            return 1
        verb = "accepted" if args.command == "accept" else "re-baselined"
        sys.stdout.write(f"{args.table}: {verb} the load of run {args.run} "
                         f"(recorded by run {result.run_id})\n")
    return 0


def print_held(spark: SparkSession, settings: Settings, out: TextIO) -> None:
    """The held loads of every table (a folder listing per table with blocking checks)."""
    from etl_assets.core.metric_names import ROW_COUNT
    from etl_assets.engine.held import held_loads
    from etl_assets.orchestration.audit import audited_check_specs, blocking_rules

    project = load_project(settings.defs_dir, rename_database=settings.environment.database)
    held = [h for t in project.tables.values() if audited_check_specs(t) or blocking_rules(t)
            for h in held_loads(spark, t)]
    if not held:
        return
    out.write(f"\n{len(held)} held load{'s' if len(held) > 1 else ''} "
              f"(removed after {settings.held_retention_days:g} days):\n")
    for load in held:
        where = f" partitions {', '.join(load.held_partitions)}" if load.held_partitions else ""
        rows = load.metrics.get(ROW_COUNT)
        out.write(f"- {load.table}{where}: run {load.run_id}, held at {load.held_at[:19]}, "
                  f"{rows:,} rows: {'; '.join(load.reasons)}\n  {load.commands()}\n")


def _held_command(args: argparse.Namespace, definitions: Any, instance: Any) -> int:
    """publish / discard: the `etl_publish` / `etl_discard` job, in this process."""
    from etl_assets.orchestration.held_loads import DISCARD_JOB, PUBLISH_JOB

    publish = args.command == "publish"
    config = {"table": args.table, "run_id": args.run, "note": args.note, "by": args.by}
    result = _run_op(definitions, PUBLISH_JOB if publish else DISCARD_JOB,
                     "publish_held_load" if publish else "discard_held_load", config, instance)
    if not result.success:
        sys.stderr.write(f"etl-assets {args.command}: {_failure_message(result)}\n")
        return 1
    verb = "published" if args.command == "publish" else "discarded"
    sys.stdout.write(f"{args.table}: {verb} the held load of run {args.run} "
                     f"(recorded by run {result.run_id})\n")
    return 0


def _run_op(definitions: Any, job: str, op: str, config: dict[str, Any], instance: Any) -> Any:
    """Run a one-op job of the definitions in this process, on `instance`, with the op's
    config; the run's events go to the instance, the terminal gets warnings only."""
    return definitions.get_job_def(job).execute_in_process(
        run_config={"ops": {op: {"config": config}},
                    "loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        instance=instance, raise_on_error=False)


def _failure_message(result: Any) -> str:
    """Why an in-process run failed, in one line: the `dg.Failure` description an op gave, or
    the last line of the step's error."""
    failure = next((e for e in result.all_events if e.is_step_failure), None)
    if failure is None:
        return "the run failed"
    data = failure.step_failure_data
    if data.user_failure_data is not None and data.user_failure_data.description:
        return data.user_failure_data.description
    return data.error.message.strip().splitlines()[-1] if data.error else "the run failed"


def _print_backtest(replayed: list, args: argparse.Namespace, out: TextIO) -> int:
    """One line per replayed load, then how many the rule would have flagged."""
    out.write(f"{'load':<17} {'run':<8} {'value':>14} {'lower':>14} {'upper':>14}  verdict\n")
    for item in replayed:
        v = item.verdict
        cells = [_cell(x) for x in (v.value, v.lower, v.upper)]
        verdict = "FLAGGED" if not v.passed else v.status
        out.write(f"{item.label:<17} {item.point.run_id[:8]:<8} {cells[0]:>14} {cells[1]:>14} "
                  f"{cells[2]:>14}  {verdict}: {v.reason}\n")
    flagged = sum(not item.verdict.passed for item in replayed)
    settings = ", ".join(args.set) if args.set else "the table's configured settings"
    out.write(f"{flagged} of {len(replayed)} loads would have been flagged "
              f"({args.metric}, {settings})\n")
    return 0


def _cell(number: float | None) -> str:
    if number is None or number != number:
        return "-"
    return f"{number:,.0f}" if abs(number) >= 100 else f"{number:,.4g}"


if __name__ == "__main__":
    sys.exit(main())
