"""The Hive log tables (`etl_log.*`): DDL on first use and one batched append per table.

Anyone with access to the metastore can query them (`etl-assets sql`, the Thrift server, BI
tools). `run_log` holds one row per load attempt, `metric_log` one row per metric per load (long
format: a new metric needs no DDL change). Both are partitioned by `log_date`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import types as T

from etl_assets.core.metric_names import to_log_values
from etl_assets.core.outcomes import CheckedLoad, CheckOutcome
from etl_assets.core.records import FeedbackRecord, RunRecord
from etl_assets.core.sql_quoting import (
    column_definitions,
    date_literal,
    identifier,
    string_literal,
    table_name,
)
from etl_assets.engine.writes import append_records

logger = logging.getLogger(__name__)

RUN_LOG = "run_log"
METRIC_LOG = "metric_log"
CHECK_LOG = "check_log"
CHECK_FEEDBACK = "check_feedback"

LOG_SCHEMAS: dict[str, T.StructType] = {
    RUN_LOG: T.StructType([
        T.StructField("run_id", T.StringType()),
        T.StructField("asset", T.StringType()),
        T.StructField("partition_key", T.StringType()),
        T.StructField("domain", T.StringType()),
        T.StructField("table_name", T.StringType()),
        T.StructField("status", T.StringType()),
        T.StructField("started_at", T.TimestampType()),
        T.StructField("finished_at", T.TimestampType()),
        T.StructField("duration_s", T.DoubleType()),
        T.StructField("rows_in", T.LongType()),
        T.StructField("row_count", T.LongType()),
        T.StructField("bytes", T.LongType()),
        T.StructField("error_message", T.StringType()),
        T.StructField("code_version", T.StringType()),
        T.StructField("watermark", T.StringType()),
        T.StructField("attempt", T.IntegerType()),
        T.StructField("log_date", T.DateType()),
    ]),
    METRIC_LOG: T.StructType([
        T.StructField("run_id", T.StringType()),
        T.StructField("asset", T.StringType()),
        T.StructField("partition_key", T.StringType()),
        T.StructField("metric", T.StringType()),
        T.StructField("value", T.DoubleType()),
        T.StructField("value_text", T.StringType()),
        T.StructField("recorded_at", T.TimestampType()),
        T.StructField("log_date", T.DateType()),
    ]),
    CHECK_LOG: T.StructType([
        T.StructField("run_id", T.StringType()),
        T.StructField("asset", T.StringType()),
        T.StructField("partition_key", T.StringType()),
        T.StructField("check_name", T.StringType()),
        T.StructField("metric", T.StringType()),
        T.StructField("value", T.DoubleType()),
        T.StructField("baseline", T.DoubleType()),
        T.StructField("lower", T.DoubleType()),
        T.StructField("upper", T.DoubleType()),
        T.StructField("passed", T.BooleanType()),
        T.StructField("severity", T.StringType()),
        T.StructField("status", T.StringType()),
        T.StructField("description", T.StringType()),
        T.StructField("target_run_id", T.StringType()),
        T.StructField("checked_at", T.TimestampType()),
        T.StructField("log_date", T.DateType()),
    ]),
    CHECK_FEEDBACK: T.StructType([
        T.StructField("run_id", T.StringType()),
        T.StructField("asset", T.StringType()),
        T.StructField("partition_key", T.StringType()),
        T.StructField("action", T.StringType()),
        T.StructField("target_run_id", T.StringType()),
        T.StructField("note", T.StringType()),
        T.StructField("decided_by", T.StringType()),
        T.StructField("recorded_at", T.TimestampType()),
        T.StructField("log_date", T.DateType()),
    ]),
}

MAX_ERROR_CHARS = 8000
# Newest log_date partitions read per step of the watermark look-up; 0 = all the rest.
WATERMARK_PROBES = (1, 7, 30, 365, 0)


def _columns(fields: Iterable[T.StructField]) -> str:
    """A log table's columns as DDL."""
    return column_definitions([(f.name, f.dataType.simpleString()) for f in fields])


def _finite(value: float | None) -> float | None:
    if value is None or value != value or value in (float("inf"), float("-inf")):
        return None
    return float(value)


class HiveLog:
    """Appends to the log tables of one database, creating them on first use.

    Args:
        spark: The session (the same one that writes the tables).
        database: Log database name, `etl_log` by default.
    """

    _ready: set[tuple[int, str]] = set()

    def __init__(self, spark: SparkSession, database: str) -> None:
        self.spark = spark
        self.database = database

    def table(self, name: str) -> str:
        """Qualified name of a log table."""
        return f"{self.database}.{name}"

    def ensure_tables(self) -> None:
        """Create the database and tables if missing; add columns a newer version defines.

        Runs once per session and database.
        """
        key = (id(self.spark), self.database)
        if key in self._ready:
            return
        if not self.spark.catalog.databaseExists(self.database):
            self.spark.sql(f"CREATE DATABASE IF NOT EXISTS {identifier(self.database)}")
        for name, schema in LOG_SCHEMAS.items():
            qualified = self.table(name)
            missing = self._missing_columns(name)
            if missing is None:
                self.spark.sql(
                    f"CREATE TABLE IF NOT EXISTS {table_name(qualified)} ({_columns(schema)}) "
                    "USING parquet PARTITIONED BY (log_date)"
                )
            elif missing:
                self.spark.sql(f"ALTER TABLE {table_name(qualified)} "
                               f"ADD COLUMNS ({_columns(missing)})")
        self._ready.add(key)

    def is_current(self, names: Sequence[str] | None = None) -> bool:
        """Whether the database and these log tables (default: all) exist with every column
        of this version; reads the metastore only (two calls per table), creates nothing."""
        if not self.spark.catalog.databaseExists(self.database):
            return False
        return all(self._missing_columns(name) == [] for name in names or LOG_SCHEMAS)

    def _missing_columns(self, name: str) -> list[T.StructField] | None:
        """This version's columns the log table lacks; None when the table does not exist."""
        qualified = self.table(name)
        if not self.spark.catalog.tableExists(qualified):
            return None
        existing = {f.name for f in self.spark.table(qualified).schema}
        return [f for f in LOG_SCHEMAS[name] if f.name not in existing]

    def _append(self, name: str, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        self.ensure_tables()
        schema = LOG_SCHEMAS[name]
        append_records(self.spark, self.table(name), schema,
                       [tuple(row.get(f.name) for f in schema) for row in rows], "log_date")

    def write_load(self, record: RunRecord, metrics: Mapping[str, Any] | None = None) -> None:
        """Append one load: its `run_log` row and, if given, its metrics to `metric_log`."""
        self.write_loads([(record, metrics or {})])

    def write_loads(self, loads: Sequence[tuple[RunRecord, Mapping[str, Any]]]) -> None:
        """Append loads (one per partition of a run) with one insert per log table."""
        run_rows, metric_rows = [], []
        for record, metrics in loads:
            error = record.error_message
            if error and len(error) > MAX_ERROR_CHARS:
                error = error[: MAX_ERROR_CHARS - 20] + " ...[truncated]"
            row = {name: getattr(record, name) for name in record.__dataclass_fields__}
            row.update(error_message=error, duration_s=record.duration_s,
                       log_date=record.finished_at.date())
            run_rows.append(row)
            metric_rows.extend(self.metric_rows(record, metrics))
        self._append(RUN_LOG, run_rows)
        self._append(METRIC_LOG, metric_rows)

    def last_watermark(self, asset: str) -> str | None:
        """The watermark of the asset's last successful load, or None (first load).

        Reads the newest `log_date` partitions first (1, then 7, 30, 365, then the rest), and
        stops at the first batch holding a successful load: `log_date` is the date of
        `finished_at`, so that batch holds the newest one. A table loaded daily costs one small
        partition, however long the log has grown; the partition list comes from the metastore.
        """
        self.ensure_tables()
        dates = sorted(self.log_dates(RUN_LOG), reverse=True)
        start = 0
        for size in WATERMARK_PROBES:
            batch = dates[start:start + size] if size else dates[start:]
            start += len(batch)
            if not batch:
                break
            listed = ", ".join(date_literal(d) for d in batch)
            row = self.spark.sql(
                f"SELECT watermark FROM {table_name(self.table(RUN_LOG))} "
                f"WHERE log_date IN ({listed}) AND asset = {string_literal(asset)} "
                "AND status = 'SUCCESS' AND watermark IS NOT NULL "
                "ORDER BY finished_at DESC LIMIT 1"
            ).first()
            if row is not None:
                return row.watermark
        return None

    def log_dates(self, name: str) -> list[str]:
        """The `log_date` partitions of a log table (ISO dates), from the metastore alone."""
        rows = self.spark.sql(f"SHOW PARTITIONS {table_name(self.table(name))}").collect()
        return [row[0].split("=", 1)[1] for row in rows]

    def write_checks(self, checks: Sequence[tuple[CheckedLoad, CheckOutcome]]) -> None:
        """Append check evaluations (each with the load it judged) to `check_log` in one
        insert. NaN and infinite numbers are stored as null."""
        rows = []
        for load, outcome in checks:
            rows.append({
                "run_id": load.run_id, "asset": load.asset, "check_name": outcome.check,
                "metric": outcome.metric, "passed": outcome.passed,
                "severity": outcome.severity, "status": outcome.status,
                "description": outcome.description, "checked_at": load.checked_at,
                "partition_key": load.partition_key, "target_run_id": load.target_run_id,
                **{name: _finite(getattr(outcome, name))
                   for name in ("value", "baseline", "lower", "upper")},
                "log_date": load.checked_at.date(),
            })
        self._append(CHECK_LOG, rows)

    def write_feedback(self, records: Sequence[FeedbackRecord]) -> None:
        """Append feedback decisions to `check_feedback` in one insert."""
        rows = []
        for record in records:
            row = {name: getattr(record, name) for name in record.__dataclass_fields__}
            row["decided_by"] = row.pop("by")
            row["log_date"] = record.recorded_at.date()
            rows.append(row)
        self._append(CHECK_FEEDBACK, rows)

    @staticmethod
    def metric_rows(record: RunRecord, metrics: Mapping[str, Any]) -> Iterable[dict[str, Any]]:
        """One `metric_log` row per metric."""
        for metric, raw in metrics.items():
            value, text = to_log_values(raw)
            yield {
                "run_id": record.run_id,
                "asset": record.asset,
                "partition_key": record.partition_key,
                "metric": metric,
                "value": value,
                "value_text": text,
                "recorded_at": record.finished_at,
                "log_date": record.finished_at.date(),
            }
