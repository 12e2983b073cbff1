"""Metrics captured during the write, and their names (a public API: the UI plots them).

The metrics are aggregate expressions attached with `DataFrame.observe` to the DataFrame being
written, so they arrive with the write's own Spark job: no count, no second scan, no collect.
Bytes on disk come from the filesystem, rows read from the write job's input metrics.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import dagster as dg
from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from etl_assets.specs import MetricsSpec

ROW_COUNT = "dagster/row_count"
TABLE_NAME = "dagster/table_name"
COLUMN_SCHEMA = "dagster/column_schema"
URI = "dagster/uri"
ROWS_IN = "rows_in"
BYTES = "bytes"
DURATION_S = "duration_s"
CODE_VERSION = "code_version"
SUM = "sum/"
NULL_COUNT = "null_count/"
NAN_COUNT = "nan_count/"
MIN = "min/"
MAX = "max/"
CATEGORIES = "categories/"
CATEGORY_COUNT = "category_count/"
CATEGORIES_CAPPED = "categories_capped/"

_NUMERIC = (T.ByteType, T.ShortType, T.IntegerType, T.LongType, T.FloatType, T.DoubleType,
            T.DecimalType)
_FLOATING = (T.FloatType, T.DoubleType)
_TEMPORAL = (T.DateType, T.TimestampType, T.TimestampNTZType)


class MetricsConfigError(ValueError):
    """A metrics option names a column the table does not have, or one of the wrong type."""


@dataclass(frozen=True)
class MetricPlan:
    """Aggregate expressions to observe, and the metric name of each alias."""

    exprs: list[Column]
    names: dict[str, str]
    capped: dict[str, int]

    def read(self, observed: Mapping[str, Any]) -> dict[str, Any]:
        """Turn the observed row (alias -> value) into metric name -> Python value."""
        metrics: dict[str, Any] = {}
        for alias, name in self.names.items():
            value = observed.get(alias)
            if name.startswith(CATEGORIES):
                column = name[len(CATEGORIES):]
                values = sorted(str(v) for v in (value or []))
                cap = self.capped[column]
                metrics[name] = values[:cap]
                metrics[CATEGORIES_CAPPED + column] = len(values) > cap
            else:
                metrics[name] = value
        return metrics


def plan_metrics(schema: T.StructType, options: MetricsSpec) -> MetricPlan:
    """Build the observed aggregates for a table with this schema.

    Per column: null count; for numeric columns a sum (NaN excluded and counted apart for
    floating columns; `try_sum`, so an overflow gives null instead of failing the write);
    min/max for date and timestamp columns; for declared categorical columns the sorted set of
    distinct values (capped at `category_cap`) and its exact size.

    Raises:
        MetricsConfigError: A `sum` or `categorical` column is missing or a `sum` column is not
            numeric.
    """
    fields = {f.name: f for f in schema.fields}
    for column in [*(options.sum or []), *options.categorical]:
        if column not in fields:
            raise MetricsConfigError(
                f"metrics: column '{column}' is not in the table's columns {list(fields)}"
            )
    if options.sum is not None:
        for column in options.sum:
            if not isinstance(fields[column].dataType, _NUMERIC):
                raise MetricsConfigError(
                    f"metrics.sum: column '{column}' is {fields[column].dataType.simpleString()},"
                    " not numeric"
                )
        summed = set(options.sum)
    else:
        summed = {f.name for f in schema.fields if isinstance(f.dataType, _NUMERIC)}

    exprs: list[Column] = []
    names: dict[str, str] = {}

    def add(name: str, expr: Column) -> None:
        alias = f"m{len(exprs)}"
        exprs.append(expr.alias(alias))
        names[alias] = name

    add(ROW_COUNT, F.count(F.lit(1)))
    for field in schema.fields:
        col = F.col(f"`{field.name}`")
        add(NULL_COUNT + field.name, F.count_if(col.isNull()))
        if isinstance(field.dataType, _FLOATING):
            add(NAN_COUNT + field.name, F.count_if(F.isnan(col)))
            if field.name in summed:
                add(SUM + field.name, F.try_sum(F.when(~F.isnan(col), col)))
        elif field.name in summed:
            add(SUM + field.name, F.try_sum(col))
        if isinstance(field.dataType, _TEMPORAL):
            add(MIN + field.name, F.min(col))
            add(MAX + field.name, F.max(col))
    capped = {}
    for column in options.categorical:
        values = F.collect_set(F.col(f"`{column}`").cast("string"))
        add(CATEGORIES + column, F.slice(F.array_sort(values), 1, options.category_cap + 1))
        add(CATEGORY_COUNT + column, F.size(values))
        capped[column] = options.category_cap
    return MetricPlan(exprs=exprs, names=names, capped=capped)


def column_schema(schema: T.StructType) -> dg.TableSchema:
    """The written table's schema in Dagster's `dagster/column_schema` form."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=f.name,
                type=f.dataType.simpleString(),
                constraints=dg.TableColumnConstraints(nullable=f.nullable),
            )
            for f in schema.fields
        ]
    )


def to_metadata(value: Any) -> dg.MetadataValue:
    """A metric value as Dagster metadata: plain numbers where possible, so the UI plots them.

    Decimals become floats here (exact text goes to `metric_log.value_text`); dates become
    ISO text; lists JSON; missing values (`None`, e.g. the sum of an all-null column) null.
    """
    if value is None:
        return dg.MetadataValue.null()
    if isinstance(value, bool):
        return dg.MetadataValue.bool(value)
    if isinstance(value, int):
        return dg.MetadataValue.int(value)
    if isinstance(value, (float, Decimal)):
        number = float(value)
        return dg.MetadataValue.null() if math.isnan(number) else dg.MetadataValue.float(number)
    if isinstance(value, (date, datetime)):
        return dg.MetadataValue.text(value.isoformat())
    if isinstance(value, (list, dict)):
        return dg.MetadataValue.json(value)
    return dg.MetadataValue.text(str(value))


def to_log_values(value: Any) -> tuple[float | None, str | None]:
    """A metric value as `(value, value_text)` for `metric_log`.

    Numbers fill `value` (a double); decimals also keep their exact text; dates, timestamps,
    lists and other values go to `value_text` only.
    """
    if value is None:
        return None, None
    if isinstance(value, bool):
        return float(value), None
    if isinstance(value, (int, float)):
        number = float(value)
        return (None, "NaN") if math.isnan(number) else (number, None)
    if isinstance(value, Decimal):
        return float(value), str(value)
    if isinstance(value, (date, datetime)):
        return None, value.isoformat()
    if isinstance(value, (list, dict)):
        return None, json.dumps(value, ensure_ascii=False)
    return None, str(value)


def rows_read(spark: SparkSession, job_group: str) -> int | None:
    """Records read from sources by the jobs of a job group, from Spark's status store.

    Costs no scan: Spark counts input records as it reads. Returns None when the status store
    has no record of the jobs (e.g. it was pruned). Cached inputs read from memory are not
    counted by Spark.
    """
    tracker = spark.sparkContext.statusTracker()
    store = spark.sparkContext._jsc.sc().statusStore()  # noqa: SLF001 - no public accessor
    total = 0
    seen = False
    for job_id in tracker.getJobIdsForGroup(job_group):
        info = tracker.getJobInfo(job_id)
        for stage_id in info.stageIds if info else []:
            try:
                total += store.lastStageAttempt(stage_id).inputRecords()
                seen = True
            except Exception:  # noqa: BLE001 - a skipped stage has no attempt
                continue
    return total if seen else None


def path_bytes(spark: SparkSession, path: str) -> int:
    """Bytes on disk under a path, from the Hadoop filesystem (local, HDFS, S3...)."""
    jvm = spark.sparkContext._jvm  # noqa: SLF001
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    fs = hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())  # noqa: SLF001
    return int(fs.getContentSummary(hpath).getLength())
