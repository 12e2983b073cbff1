"""The names of the metrics every load records (a public API: the UI plots them, `metric_log`
stores them, the checks read them back), and their text form for the log.

Pure: imports neither Spark nor Dagster.
"""

from __future__ import annotations

import json
import math
from datetime import date, datetime
from decimal import Decimal
from typing import Any

# The rows a load wrote: the metric's name here, in `metric_log` and in the checks. In Dagster's
# metadata it is the table's rows, as Dagster defines the key; a load that writes part of its
# table gives its own rows under one of the two keys below (`metadata.with_table_rows`).
ROW_COUNT = "dagster/row_count"
# A partitioned asset's load: the rows of one partition, Dagster's key for them.
PARTITION_ROW_COUNT = "dagster/partition_row_count"
# An unpartitioned asset's load that writes part of its table (append, insert_overwrite).
ROWS_WRITTEN = "rows_written"
TABLE_NAME = "dagster/table_name"
COLUMN_SCHEMA = "dagster/column_schema"
COLUMN_LINEAGE = "dagster/column_lineage"
# The definition's column lineage traced back to where each column starts, as a Markdown table:
# the open-source UI hides `dagster/column_lineage` (only Dagster+ draws it) and shows this.
COLUMN_LINEAGE_TEXT = "column_lineage"
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
CATEGORY_HASH = "category_hash/"
WATERMARK = "watermark"
ROWS_REJECTED = "rows_rejected"
# A wide table's metadata: the per-column metrics in one table-valued entry, headline numbers
# as plottable keys (see `metric_metadata`).
COLUMN_METRICS = "column_metrics"
COLUMNS = "columns"
COLUMNS_WITH_NULLS = "columns_with_nulls"
COLUMNS_WITH_NAN = "columns_with_nan"
NULL_COUNT_TOTAL = "null_count_total"
NAN_COUNT_TOTAL = "nan_count_total"
WIDE_TABLE_COLUMNS = 50  # more columns than this: per-column metrics go to COLUMN_METRICS
WIDE_TABLE_SUMS = 10  # sums a wide table still shows as plottable keys (its first columns)
# Field of a `column_metrics` row -> the metric name prefix it stands for.
PER_COLUMN = {"sum": SUM, "null_count": NULL_COUNT, "nan_count": NAN_COUNT, "min": MIN,
               "max": MAX}
ROWS_SKIPPED = "rows_skipped"  # incremental input rows the watermark filter dropped: the two below
ROWS_SKIPPED_LATE = "rows_skipped_late"  # watermark at or below the last one (less lookback)
ROWS_SKIPPED_NULL = "rows_skipped_null_watermark"  # watermark column null


def to_log_values(value: Any) -> tuple[float | None, str | None]:
    """A metric value as `(value, value_text)` for `metric_log`.

    Numbers fill `value` (a double); decimals also keep their exact text; NaN and ±infinity
    (an overflowing double sum) are only text ("NaN", "inf", "-inf"), as are dates,
    timestamps, lists and other values.
    """
    if value is None:
        return None, None
    if isinstance(value, bool):
        return float(value), None
    if isinstance(value, (int, float)):
        number = float(value)
        return (number, None) if math.isfinite(number) else (None, str(number).replace(
            "nan", "NaN"))
    if isinstance(value, Decimal):
        return float(value), str(value)
    if isinstance(value, (date, datetime)):
        return None, value.isoformat()
    if isinstance(value, (list, dict)):
        return None, json.dumps(value, ensure_ascii=False)
    return None, str(value)
