"""Metrics captured during the write (their names: `etl_assets.core.metric_names`).

Every metric arrives with the write itself: from the Parquet footers the writer produces, and
from aggregates attached with `DataFrame.observe` to the DataFrame being written (see
`MetricPlan`). No count, no second scan of the inputs, no collect. Bytes on disk come from the
filesystem, rows read from the write job's input metrics.

The observed aggregates are the cheapest forms that are exact in the common case (a plain sum
of a float column, a long sum of a decimal's unscaled values); when one cannot answer (the
float sum is NaN, the long sum overflowed) the exact form is computed by one vectorized
aggregate over the columns concerned of the files just written (`MetricPlan.collect`).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from etl_assets.core.metric_names import (
    CATEGORIES,
    CATEGORIES_CAPPED,
    CATEGORY_COUNT,
    CATEGORY_HASH,
    MAX,
    MIN,
    NAN_COUNT,
    NULL_COUNT,
    ROW_COUNT,
    SUM,
    WATERMARK,
)
from etl_assets.core.specs import MetricsSpec
from etl_assets.core.sql_quoting import identifier
from etl_assets.engine import storage as S

_NUMERIC = (T.ByteType, T.ShortType, T.IntegerType, T.LongType, T.FloatType, T.DoubleType,
            T.DecimalType)
_FLOATING = (T.FloatType, T.DoubleType)
_DECIMAL_SUM_DIGITS = 10  # Spark's sum of decimal(p, s) is decimal(min(38, p + 10), s)
_DECIMAL_MAX_PRECISION = 38
_LONG_DIGITS = 18  # a decimal of at most 18 digits has a long unscaled value
_TEMPORAL = (T.DateType, T.TimestampType, T.TimestampNTZType)
_ATOMIC = (T.AtomicType,)


class MetricsConfigError(ValueError):
    """A metrics option names a column the table does not have, or one of the wrong type."""


@dataclass(frozen=True)
class MetricPlan:
    """How each metric of a table is captured during its write.

    Two sources, neither of them a scan:

    - the Parquet footers the writer has just written hold, per file and column, the row
      count, the null count and min/max: row count, null counts and date/timestamp ranges of
      the stored columns are read from there (metadata only, a few KB per file);
    - aggregates attached with `DataFrame.observe` to the DataFrame being written, for what
      footers lack: sums, NaN counts, category sets, and null counts and ranges of partition
      columns (which live in folder names, not in the files) and of nested columns.

    Observed aggregates are evaluated row by row inside the write's tasks (Spark's
    `CollectMetricsExec`, outside whole-stage code generation); each costs a few percent of a
    bare write, which is why nothing the footers already know is observed, and why stored
    float and decimal columns are observed in their cheapest exact-in-practice form:

    - a float column: its plain sum only. Not NaN means no NaN (the NaN count is 0, the sum is
      the NaN-free sum). NaN (a NaN, or +inf and -inf) means looking again (`floating`).
    - a decimal of at most 18 digits: the `try_sum` of its unscaled longs, scaled back
      exactly. Null while the footers count non-null values means the long sum overflowed
      (beyond about 9.2e18 units of the last digit): looking again with the decimal sum
      (`unscaled`).

    Looking again is one vectorized aggregate over just those columns of the files just
    written (never the inputs), only for the columns that need it.
    """

    schema: T.StructType
    exprs: list[Column]
    names: dict[str, str]
    capped: dict[str, int]
    footer_columns: tuple[str, ...]
    floating: dict[str, bool]
    """Stored float column -> whether it is summed (observed as `raw_sum/<column>`)."""
    unscaled: dict[str, int]
    """Stored decimal column summed as unscaled longs -> its scale."""

    def attach(self, frame: DataFrame) -> tuple[DataFrame, Observation | None]:
        """The frame to write, with the observed aggregates attached (if any are needed)."""
        if not self.exprs:
            return frame, None
        observation = Observation(f"etl_assets_{uuid.uuid4().hex[:8]}")
        return frame.observe(observation, *self.exprs), observation

    def observed(self, observation: Observation | None) -> dict[str, Any]:
        """Every observed value by name, the extra aggregates' too (waits for the write)."""
        values = observation.get if observation is not None else {}
        return {name: values.get(alias) for alias, name in self.names.items()}

    def collect(
        self,
        spark: SparkSession,
        observation: Observation | None,
        location: str,
        footer: "S.FooterStats | None" = None,
        observed: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """All metrics of a finished write, in a stable order (row count, then per column).

        Call only after the write succeeded: `Observation.get` waits for the write's job.
        `footer`: the written files' footer statistics if already read (else read here).
        `observed`: `observed(observation)` if already read. Extra aggregates are left out.
        """
        footer = footer or S.read_footers(spark, location, self.footer_columns)
        found: dict[str, Any] = {ROW_COUNT: footer.rows}
        found.update(observed if observed is not None else self.observed(observation))
        self._resolve_cheap_forms(spark, location, footer, found)
        for column in self.footer_columns:
            found[NULL_COUNT + column] = footer.nulls[column]
            if column in footer.minimum:
                found[MIN + column] = footer.minimum[column]
                found[MAX + column] = footer.maximum[column]
        for name in [n for n in found if n.startswith(_NON_NULL)]:
            found[NULL_COUNT + name[len(_NON_NULL):]] = footer.rows - found.pop(name)
        metrics: dict[str, Any] = {ROW_COUNT: footer.rows}
        for field in self.schema.fields:
            for prefix in (NULL_COUNT, NAN_COUNT, SUM, MIN, MAX):
                if prefix + field.name in found:
                    metrics[prefix + field.name] = found[prefix + field.name]
        for column, cap in self.capped.items():
            values = sorted(str(v) for v in (found[CATEGORIES + column] or []))
            metrics[CATEGORIES + column] = values[:cap]
            metrics[CATEGORY_COUNT + column] = found[CATEGORY_COUNT + column]
            metrics[CATEGORIES_CAPPED + column] = len(values) > cap
            digest = found.get(CATEGORY_HASH + column)
            # Text, not a number: a hash is compared, never plotted. Unsigned hex, 16 digits.
            metrics[CATEGORY_HASH + column] = None if digest is None else (
                f"{int(digest) & _UINT64:016x}")
        if WATERMARK in found:
            metrics[WATERMARK] = found[WATERMARK]
        return metrics

    def _resolve_cheap_forms(self, spark: SparkSession, location: str,
                             footer: "S.FooterStats", found: dict[str, Any]) -> None:
        """Turn the cheap observed forms into the metrics (in place), looking again at the
        written files, in one aggregate, for the columns whose cheap form cannot answer."""
        again: list[tuple[str, Column]] = []
        for column, summed in self.floating.items():
            raw = found.pop(_RAW_SUM + column, None)
            if raw is None or not math.isnan(raw):  # None: no non-null value
                found[NAN_COUNT + column] = 0
                if summed:
                    found[SUM + column] = raw
                continue
            col = F.col(identifier(column))
            again.append((NAN_COUNT + column, F.count_if(F.isnan(col))))
            if summed:
                again.append((SUM + column, F.sum(F.nanvl(col, F.lit(0.0)))))
        for column, scale in self.unscaled.items():
            raw = found.pop(_UNSCALED_SUM + column, None)
            if raw is not None:
                found[SUM + column] = Decimal(raw).scaleb(-scale)
            elif footer.nulls[column] >= footer.rows:
                found[SUM + column] = None  # no value to sum
            else:  # the long sum overflowed: the decimal sum cannot (10 more digits)
                again.append((SUM + column, F.sum(F.col(identifier(column)))))
        if again:
            found.update(_aggregate_written(spark, location, self.schema, again))

    def footer_metrics(self, footer: "S.FooterStats") -> dict[str, Any]:
        """Row count, null counts and date ranges from footer statistics (of one partition).

        Only footer metrics: observed aggregates cover the whole write, not each partition.
        """
        metrics: dict[str, Any] = {ROW_COUNT: footer.rows}
        for column in self.footer_columns:
            metrics[NULL_COUNT + column] = footer.nulls[column]
            if column in footer.minimum:
                metrics[MIN + column] = footer.minimum[column]
                metrics[MAX + column] = footer.maximum[column]
        return metrics


_NON_NULL = "non_null/"
_RAW_SUM = "raw_sum/"
_UNSCALED_SUM = "unscaled_sum/"
_UINT64 = (1 << 64) - 1


def _aggregate_written(spark: SparkSession, location: str, schema: T.StructType,
                       aggregates: list[tuple[str, Column]]) -> dict[str, Any]:
    """`(name, aggregate)` pairs over the Parquet files just written under `location`, in one
    job: the vectorized reader decodes only the columns the aggregates name."""
    names = [name for name, _ in aggregates]
    frame = spark.read.schema(schema).option("basePath", location).parquet(location)
    row = frame.agg(*[agg.alias(f"a{i}") for i, (_, agg) in enumerate(aggregates)]).first()
    return dict(zip(names, row, strict=True))


def plan_metrics(
    schema: T.StructType,
    options: MetricsSpec,
    partition_by: Sequence[str] = (),
    watermark_column: str | None = None,
    keep: Column | None = None,
    extra: Sequence[tuple[str, Column]] = (),
) -> MetricPlan:
    """Plan the metrics of a table with this schema (see `MetricPlan` for where each comes from).

    Per column: null count; for numeric columns a sum (`try_sum` for integers and for decimals
    wider than decimal(28, s), so an overflow gives a null sum, never a failed load; NaN
    excluded from sums of floating columns and counted apart, and a float sum beyond the
    double range is infinite); min/max for date and timestamp columns; for declared
    categorical columns the sorted set of distinct values (capped at `category_cap`), its
    exact size and an order-independent hash of the whole set (`category_hash/`, 16 hex
    digits).

    `keep`: when given, the observed metrics cover only the rows where it is true (the rows
    loaded when others are quarantined). `extra`: more `(name, aggregate)` pairs to observe in
    the same pass (data-quality rules); `MetricPlan.observed` returns them.

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

    footer_columns = []
    floating: dict[str, bool] = {}
    unscaled: dict[str, int] = {}
    for field in schema.fields:
        col = F.col(identifier(field.name))
        if keep is not None:  # aggregates skip nulls: a dropped row counts nowhere
            col = F.when(keep, col)
        in_footer = field.name not in partition_by and isinstance(field.dataType, _ATOMIC)
        if in_footer:
            footer_columns.append(field.name)
        else:
            add(_NON_NULL + field.name, F.count(col))
            if isinstance(field.dataType, _TEMPORAL):
                add(MIN + field.name, F.min(col))
                add(MAX + field.name, F.max(col))
        if isinstance(field.dataType, _FLOATING) and in_footer:
            # One plain sum answers both metrics unless it is NaN (`MetricPlan`).
            add(_RAW_SUM + field.name, F.sum(col))
            floating[field.name] = field.name in summed
        elif isinstance(field.dataType, _FLOATING):
            add(NAN_COUNT + field.name, F.count_if(F.isnan(col)))
            if field.name in summed:
                add(SUM + field.name, F.sum(F.nanvl(col, F.lit(0.0))))
        elif (isinstance(field.dataType, T.DecimalType) and field.name in summed and in_footer
              and field.dataType.precision <= _LONG_DIGITS
              and (units := S.unscaled_value(col)) is not None):
            # Longs instead of Spark's decimal arithmetic (a BigDecimal per row once the sum
            # is wider than 18 digits); exact, scaled back in `MetricPlan.collect`.
            add(_UNSCALED_SUM + field.name, F.try_sum(units))
            unscaled[field.name] = field.dataType.scale
        elif isinstance(field.dataType, T.DecimalType) and field.name in summed:
            # A sum carries 10 more digits than its column, capped at Spark's 38: up to
            # decimal(28, s) no overflow short of 10^10 rows, and plain sum is measurably
            # cheaper per row than try_sum. Wider columns get try_sum: an overflowing sum
            # (e.g. of decimal(38,18) beyond 10^20) is null instead of failing the load when
            # the observed row is read (NUMERIC_VALUE_OUT_OF_RANGE under ANSI mode).
            widened = field.dataType.precision + _DECIMAL_SUM_DIGITS <= _DECIMAL_MAX_PRECISION
            add(SUM + field.name, F.sum(col) if widened else F.try_sum(col))
        elif field.name in summed:
            # An integer sum can overflow a long; try_sum gives null instead of failing the
            # write under ANSI mode.
            add(SUM + field.name, F.try_sum(col))
    if watermark_column is not None:
        if watermark_column not in fields:
            raise MetricsConfigError(
                f"incremental.column '{watermark_column}' is not in the table's columns "
                f"{list(fields)}: keep it in the sql's output to track the watermark"
            )
        mark = F.col(identifier(watermark_column))
        add(WATERMARK, F.max(mark if keep is None else F.when(keep, mark)).cast("string"))
    capped = {}
    for column in options.categorical:
        value = F.col(identifier(column)).cast("string")
        values = F.collect_set(value if keep is None else F.when(keep, value))
        add(CATEGORIES + column, F.slice(F.array_sort(values), 1, options.category_cap + 1))
        add(CATEGORY_COUNT + column, F.size(values))
        # XOR of each distinct value's 64-bit hash: order-independent and exact for a set, so
        # it covers the values beyond the cap (a replaced value changes it). Folded over the
        # set already collected for the list: no second aggregate over the rows.
        add(CATEGORY_HASH + column, F.aggregate(
            values, F.lit(0).cast("long"), lambda digest, v: digest.bitwiseXOR(F.xxhash64(v))))
        capped[column] = options.category_cap
    for name, expr in extra:
        add(name, expr)
    return MetricPlan(schema, exprs, names, capped, tuple(footer_columns), floating, unscaled)


