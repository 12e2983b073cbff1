"""Dagster metadata from a load's metrics (plain values the UI plots, a table entry for wide
tables, Dagster's schema form) and a check's outcome as an `AssetCheckResult`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import dagster as dg
from pyspark.sql import types as T

from etl_assets.core import metric_names as M
from etl_assets.core.lineage import TracedColumn, Trail
from etl_assets.core.metric_names import (
    COLUMN_METRICS,
    COLUMNS,
    COLUMNS_WITH_NAN,
    COLUMNS_WITH_NULLS,
    NAN_COUNT,
    NAN_COUNT_TOTAL,
    NULL_COUNT,
    NULL_COUNT_TOTAL,
    PER_COLUMN,
    SUM,
    WIDE_TABLE_COLUMNS,
    WIDE_TABLE_SUMS,
)
from etl_assets.core.outcomes import CheckOutcome


def column_schema(schema: T.StructType,
                  descriptions: Mapping[str, str] | None = None) -> dg.TableSchema:
    """The written table's schema in Dagster's `dagster/column_schema` form, with the spec's
    column descriptions (`columns:`) where given."""
    descriptions = descriptions or {}
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=f.name,
                type=f.dataType.simpleString(),
                description=descriptions.get(f.name),
                constraints=dg.TableColumnConstraints(nullable=f.nullable),
            )
            for f in schema.fields
        ]
    )


def with_table_rows(metadata: Mapping[str, Any], table_rows: int | None, *, partition: bool,
                    partial: bool = False) -> dict[str, Any]:
    """A load's metadata with Dagster's row counts, as Dagster defines them.

    `metadata["dagster/row_count"]` holds the load's rows (the metric). A load that writes
    the whole table leaves it so. A partition's load (`partition`) moves its rows to
    `dagster/partition_row_count`, and one that writes part of an unpartitioned asset's
    table (`partial`: append, insert_overwrite) to `rows_written`; `dagster/row_count` then
    becomes the table's rows (`table_rows`), or is left out when they are unknown.
    `load_metrics` turns it back for the checks.
    """
    out = dict(metadata)
    if not (partition or partial):
        return out
    rows = out.pop(M.ROW_COUNT, None)
    if rows is not None:
        out[M.PARTITION_ROW_COUNT if partition else M.ROWS_WRITTEN] = rows
    if table_rows is not None:
        out[M.ROW_COUNT] = dg.MetadataValue.int(int(table_rows))
    return out


def writes_part(write_mode: str) -> bool:
    """Whether a load in this mode writes part of an unpartitioned asset's table."""
    return write_mode in ("append", "insert_overwrite")


def column_lineage(lineage: Mapping[str, Sequence[tuple[str, str]]]) -> dg.TableColumnLineage:
    """A load's lineage (`LoadResult.lineage`) in Dagster's `dagster/column_lineage` form.

    Each input name is its asset's key: a table's, or a source's (sources are external
    assets named as in the specs).
    """
    return dg.TableColumnLineage(deps_by_column={
        column: [dg.TableColumnDep(asset_key=dg.AssetKey(source), column_name=name)
                 for source, name in deps]
        for column, deps in lineage.items()
    })


def lineage_markdown(traced: Mapping[str, TracedColumn]) -> dg.MetadataValue:
    """Traced lineage (`lineage.trace_lineage`) as a Markdown table the open-source UI shows,
    `| column | derives from |`, one row per trail: `category_totals.total_amount ←
    clean_orders.amount ← raw_orders.amount`, read from the table's input back to where the
    column starts. A trail cut at a cycle or at the depth cap ends with `← …`; trails beyond
    the cap are one more row, `… N more`."""
    rows = ["| column | derives from |", "|---|---|"]
    for column, found in traced.items():
        name = _md(column)
        rows += [f"| {name} | {_trail(trail)} |" for trail in found.trails]
        if found.more:
            rows.append(f"| {name} | … {found.more:,} more |")
    return dg.MetadataValue.md("\n".join(rows))


def _trail(trail: Trail) -> str:
    text = " ← ".join(f"{_md(source)}.{_md(column)}" for source, column in trail.steps)
    if trail.end == "cycle":
        return text + " ← … (cycle)"
    return text + " ← …" if trail.end == "depth" else text


def _md(text: str) -> str:
    """A name as literal Markdown text: what Markdown or a table cell would read as syntax
    (`|`, `*`, backquotes, brackets, `<`, `&`, a backslash) escaped, and `_` where it could
    start or end emphasis (not inside a word: `total_amount` stays as it reads)."""
    out = []
    for i, c in enumerate(text):
        inner = 0 < i < len(text) - 1 and text[i - 1].isalnum() and text[i + 1].isalnum()
        out.append("\\" + c if c in _MD_SPECIAL or (c == "_" and not inner) else c)
    return "".join(out)


_MD_SPECIAL = frozenset("\\`*[]<>|~&")


def to_metadata(value: Any) -> dg.MetadataValue:
    """A metric value as Dagster metadata: plain numbers where possible, so the UI plots them.

    Decimals become floats here (exact text goes to `metric_log.value_text`); dates become
    ISO text; lists JSON; values that measure nothing null: `None` (the sum of an all-null
    column, or an overflowing integer or decimal sum), NaN and ±infinity (a double sum beyond
    the double range, or of +inf and -inf), so the UI's plots never hold a non-number.
    """
    if value is None:
        return dg.MetadataValue.null()
    if isinstance(value, bool):
        return dg.MetadataValue.bool(value)
    if isinstance(value, int):
        return dg.MetadataValue.int(value)
    if isinstance(value, (float, Decimal)):
        number = float(value)
        return dg.MetadataValue.float(number) if math.isfinite(number) else (
            dg.MetadataValue.null())
    if isinstance(value, (date, datetime)):
        return dg.MetadataValue.text(value.isoformat())
    if isinstance(value, (list, dict)):
        return dg.MetadataValue.json(value)
    return dg.MetadataValue.text(str(value))


def metric_metadata(metrics: Mapping[str, Any], schema: T.StructType) -> dict[str, Any]:
    """A load's (or a partition's) metrics as Dagster metadata, bounded for wide tables.

    Up to `WIDE_TABLE_COLUMNS` columns, every metric is its own key (`sum/<column>`, ...),
    which the UI plots over time. A wider table would give two or more keys and plots per
    column (a 301-column table: 610 entries and 300 plots per load), so its per-column metrics
    (sum, null and NaN counts, min, max) go into one table-valued entry, `column_metrics`, one
    row per column (about 130 bytes each as stored), and only headline numbers stay plottable
    keys: `columns`, `columns_with_nulls`, `null_count_total`, `columns_with_nan`,
    `nan_count_total` and the sums of the first `WIDE_TABLE_SUMS` summed columns. Every other
    metric (row count, category sets, watermark, rejected rows...) keeps its key. `metric_log`
    gets every metric either way; the checks read the table back with
    `expand_column_metrics`.

    Args:
        metrics: Metric name -> value, as `MetricPlan.collect` or `footer_metrics` give them.
        schema: The written table's schema (its width decides; its order orders the rows).

    Returns:
        Metadata key -> `MetadataValue`.
    """
    if len(schema.fields) <= WIDE_TABLE_COLUMNS:
        return {name: to_metadata(value) for name, value in metrics.items()}
    per_column = {prefix + f.name for f in schema.fields for prefix in PER_COLUMN.values()}
    metadata = {name: to_metadata(value) for name, value in metrics.items()
                if name not in per_column}
    # Dagster wants the same fields in every row: only the kinds some column has (no min/max
    # without a date column), absent ones null; types are in `dagster/column_schema`.
    kinds = [k for k, prefix in PER_COLUMN.items()
             if any(prefix + f.name in metrics for f in schema.fields)]
    records, sums = [], []
    null_columns = nan_columns = nulls = nans = 0
    for f in schema.fields:
        record: dict[str, Any] = {"column": f.name}
        if "sum" in kinds:  # tells a sum not measured (null) from a column not summed
            record["summed"] = SUM + f.name in metrics
        for kind in kinds:
            record[kind] = _record_value(metrics.get(PER_COLUMN[kind] + f.name))
        null_count, nan_count = metrics.get(NULL_COUNT + f.name), metrics.get(NAN_COUNT + f.name)
        if null_count is not None:
            nulls += int(null_count)
            null_columns += int(null_count) > 0
        if nan_count is not None:
            nans += int(nan_count)
            nan_columns += int(nan_count) > 0
        if SUM + f.name in metrics:
            sums.append(SUM + f.name)
        records.append(dg.TableRecord(record))
    metadata[COLUMNS] = dg.MetadataValue.int(len(schema.fields))
    metadata[COLUMNS_WITH_NULLS] = dg.MetadataValue.int(null_columns)
    metadata[NULL_COUNT_TOTAL] = dg.MetadataValue.int(nulls)
    metadata[COLUMNS_WITH_NAN] = dg.MetadataValue.int(nan_columns)
    metadata[NAN_COUNT_TOTAL] = dg.MetadataValue.int(nans)
    for name in sums[:WIDE_TABLE_SUMS]:
        metadata[name] = to_metadata(metrics[name])
    fields = {"column", *kinds, *(["summed"] if "sum" in kinds else [])}
    metadata[COLUMN_METRICS] = dg.MetadataValue.table(records, dg.TableSchema(
        columns=[c for c in _COLUMN_METRICS_COLUMNS if c.name in fields]))
    return metadata


_COLUMN_METRICS_COLUMNS = [
    dg.TableColumn("column", "string"),
    dg.TableColumn("summed", "bool", description="whether the load sums this column"),
    dg.TableColumn("sum", "float", description="null when not measured (overflow, all null)"),
    dg.TableColumn("null_count", "int"),
    dg.TableColumn("nan_count", "int"),
    dg.TableColumn("min", "string"),
    dg.TableColumn("max", "string"),
]


def _record_value(value: Any) -> str | int | float | bool | None:
    """A metric as a `TableRecord` value (numbers plain, decimals float, dates ISO text)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, (float, Decimal)):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return str(value)


def load_metrics(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """A recorded materialization's values as the load's metrics, which the checks judge: a
    wide table's `column_metrics` spread out (`expand_column_metrics`), and
    `dagster/row_count` the load's own rows again (`with_table_rows` undone; materializations
    recorded before it already hold them there)."""
    values = expand_column_metrics(metadata)
    for key in (M.PARTITION_ROW_COUNT, M.ROWS_WRITTEN):
        if values.get(key) is not None:
            values[M.ROW_COUNT] = values[key]
            break
    return values


def expand_column_metrics(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """A materialization's metadata values with a wide table's `column_metrics` spread out.

    The inverse of `metric_metadata` for readers (the checks): each row of the table entry
    becomes `sum/<column>`, `null_count/<column>`, ... again. Top-level keys win; metadata
    without the entry comes back unchanged.

    Args:
        metadata: Key -> plain value (`MetadataValue.value`), the table entry as recorded.
    """
    table = metadata.get(COLUMN_METRICS)
    records = getattr(table, "records", None)
    if not records:
        return dict(metadata)
    expanded = dict(metadata)
    for record in records:
        data = record.data
        for field_name, prefix in PER_COLUMN.items():
            value = data.get(field_name)
            if value is not None or (field_name == "sum" and data.get("summed")):
                expanded.setdefault(prefix + str(data["column"]), value)
    return expanded


def to_check_result(key: dg.AssetKey, outcome: CheckOutcome) -> dg.AssetCheckResult:
    """A check's outcome (anomaly check or quality rule) as Dagster's check result; its
    metadata as plain values (`to_metadata`: NaN and infinities null, lists JSON)."""
    metadata = {name: value if isinstance(value, dg.MetadataValue) else to_metadata(value)
                for name, value in outcome.metadata.items()}
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=outcome.check,
        passed=outcome.passed,
        severity=dg.AssetCheckSeverity(outcome.severity),
        description=outcome.description,
        metadata=metadata,
    )


def log_failed_checks(context: Any, outcomes: Sequence[CheckOutcome]) -> None:
    """A warning in the run's log per failed check; passed checks log nothing.

    Each check's result is already an `ASSET_CHECK_EVALUATION` event whose message says it
    passed or not, with its description. A second line per check repeated it, and on
    Dagster's SQLite storage every log line is one more committed event (about 10 ms each,
    some 60 per `make demo` run); a failure keeps its line for its WARNING level.
    """
    for outcome in outcomes:
        if not outcome.passed:
            context.log.warning(f"{outcome.check}: FAILED: {outcome.description}")
