"""Stage 1 of a load, resolve the inputs: each input as a DataFrame, the incremental one past the
watermark (with a count of the rows it skips, observed in the same read).
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from etl_assets.core import metric_names as M
from etl_assets.core.load_request import LoadError, LoadRequest
from etl_assets.core.specs import Project, Source, Table
from etl_assets.core.sql_quoting import identifier
from etl_assets.engine import storage as S

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Inputs:
    """A table's inputs by name, as its rows are built from them.

    Attributes:
        frames: Input name -> DataFrame (the incremental one past the watermark, broadcast
            hints applied).
        skipped: The observation counting the rows the watermark filter drops (None when
            nothing is filtered or counting is off); `skipped_rows` reads it after the write.
    """

    frames: dict[str, DataFrame]
    skipped: Observation | None


def resolve_inputs(
    spark: SparkSession, project: Project, table: Table, request: LoadRequest
) -> Inputs:
    """The inputs of one load; for a SQL table also registered as the views its SQL reads
    (`register_inputs`), a Python table gets them as arguments."""
    frames, skipped = read_inputs(spark, project, table, request)
    if table.function is None:
        for name, frame in frames.items():
            frame.createOrReplaceTempView(name)
    return Inputs(frames, skipped)


def read_source(spark: SparkSession, source: Source) -> DataFrame:
    """Read a declared source: files with their format, options and schema, or a Hive table."""
    spec = source.spec
    if spec.format == "table":
        return spark.table(spec.table)
    reader = spark.read.format(spec.format).options(**{k: str(v) for k, v in spec.options.items()})
    if spec.schema_ddl:
        reader = reader.schema(spec.schema_ddl)
    return reader.load(source.resolved_path)


def read_input(spark: SparkSession, project: Project, name: str) -> DataFrame:
    """An input of a table: another table of the project (from Hive) or a source."""
    if name in project.tables:
        return spark.table(project.tables[name].qualified_name)
    return read_source(spark, project.sources[name])


def read_inputs(
    spark: SparkSession, project: Project, table: Table, request: LoadRequest | None = None
) -> tuple[dict[str, DataFrame], Observation | None]:
    """Each input as the table's rows are built from it (broadcast hints applied), by name.

    The incremental input is filtered to rows past the watermark (`filter_past_watermark`);
    the observation counting the rows it drops is returned too (None when nothing is filtered
    or counting is off).
    """
    incremental = table.spec.incremental
    skipped = None
    frames = {}
    for name in table.spec.inputs:
        frame = read_input(spark, project, name)
        if incremental and name == table.incremental_input and request and request.watermark:
            if not request.full_refresh:
                frame, skipped = filter_past_watermark(frame, table, request.watermark)
        if name in table.spec.broadcast:
            frame = F.broadcast(frame)
        frames[name] = frame
    return frames, skipped


def register_inputs(
    spark: SparkSession, project: Project, table: Table, request: LoadRequest | None = None
) -> Observation | None:
    """Register each input of `read_inputs` as a temp view named as in the SQL.

    Returns the observation counting the rows the watermark filter drops (or None). The views
    are replaced by the next table's, never dropped: dropping a view over a cached table
    uncaches the table too (Spark uncaches every plan equal to the view's), which would defeat
    `cache: true`. The spec loader already rejects SQL reading anything but its inputs.
    """
    frames, skipped = read_inputs(spark, project, table, request)
    for name, frame in frames.items():
        frame.createOrReplaceTempView(name)
    return skipped


def filter_past_watermark(
    frame: DataFrame, table: Table, watermark: str
) -> tuple[DataFrame, Observation | None]:
    """The incremental input's rows past the watermark (less `lookback`), and a count of the
    others observed in the same read.

    The count (`rows_skipped_late`: at or below the bound, `rows_skipped_null_watermark`:
    null) is attached with `DataFrame.observe` before the filter, so it comes with the load's
    own scan: no second read. The price: the filter no longer prunes files or partitions by
    the watermark, which `incremental.count_skipped: false` restores.

    Args:
        frame: The incremental input as read.
        table: The table (its `incremental` spec, and names for errors).
        watermark: The last successful load's watermark, as text (cast to the column's type).

    Raises:
        LoadError: The watermark column is missing from the input, or `lookback` does not fit
            its type.
    """
    incremental = table.spec.incremental
    assert incremental is not None
    where = f"{table.file}: table '{table.name}'"
    if incremental.column not in frame.schema.fieldNames():
        raise LoadError(
            f"{where}: field 'incremental.column': '{incremental.column}' is not a column of "
            f"the input '{table.incremental_input}' (columns: {frame.columns})")
    data_type = frame.schema[incremental.column].dataType
    column = F.col(identifier(incremental.column))
    bound = _below_by_lookback(F.lit(watermark).cast(data_type), data_type,
                               incremental.lookback_value, where)
    observation = None
    if incremental.count_skipped:
        observation = Observation(f"etl_assets_skipped_{uuid.uuid4().hex[:8]}")
        frame = frame.observe(observation,
                              F.count_if(column <= bound).alias(M.ROWS_SKIPPED_LATE),
                              F.count_if(column.isNull()).alias(M.ROWS_SKIPPED_NULL))
    return frame.where(column > bound), observation


def _below_by_lookback(mark: Column, data_type: T.DataType, lookback: int | timedelta | None,
                       where: str) -> Column:
    """The watermark less the lookback, in the column's type (the watermark without one)."""
    if lookback is None:
        return mark
    field_name = f"{where}: field 'incremental.lookback'"
    kind = data_type.simpleString()
    if isinstance(data_type, (T.TimestampType, T.TimestampNTZType, T.DateType)):
        if not isinstance(lookback, timedelta):
            raise LoadError(f"{field_name}: the watermark column is {kind}: give a duration "
                            f"like '2 days' or '6 hours', not {lookback!r}")
        if isinstance(data_type, T.DateType):
            if lookback % timedelta(days=1):
                raise LoadError(f"{field_name}: the watermark column is a date: give whole "
                                f"days, not {lookback}")
            return F.date_sub(mark, lookback.days)
        seconds = Decimal(str(lookback.total_seconds()))
        return mark - F.make_dt_interval(secs=F.lit(seconds))
    if isinstance(data_type, T.NumericType):
        if isinstance(lookback, timedelta):
            raise LoadError(f"{field_name}: the watermark column is {kind}: give a number in "
                            f"its units, not a duration ({lookback})")
        return mark - F.lit(lookback)
    raise LoadError(f"{field_name}: the watermark column is {kind}: lookback needs a date, "
                    "timestamp or numeric watermark")


def later_watermark(spark: SparkSession, data_type: T.DataType, one: str, other: str) -> str:
    """The later of two watermarks, compared in the column's type (text would put 9 after 10).

    Computed from a one-row local relation: no data is read.
    """
    values = spark.createDataFrame([(one, other)], "a string, b string")
    return values.select(F.greatest(F.col("a").cast(data_type), F.col("b").cast(data_type))
                         .cast("string")).first()[0]


def skipped_rows(observation: Observation | None, wait_s: float = 10.0) -> dict[str, int]:
    """`rows_skipped` and its two parts, once the load's write has finished; {} if unknown.

    `Observation.get` waits for ever when the observed input was never executed; the write
    reads the input in its own job, whose observations complete together, so a short bounded
    wait suffices and an input the plan never read gives {} instead of a hung load.
    """
    if observation is None:
        return {}
    deadline = time.monotonic() + wait_s
    while not S.observation_done(observation):
        if time.monotonic() >= deadline:
            logger.warning("the watermark filter's skipped-row count never arrived (the "
                           "write did not read the incremental input?); rows_skipped unknown")
            return {}
        time.sleep(0.01)
    counts = observation.get
    late = int(counts.get(M.ROWS_SKIPPED_LATE) or 0)
    nulls = int(counts.get(M.ROWS_SKIPPED_NULL) or 0)
    return {M.ROWS_SKIPPED: late + nulls, M.ROWS_SKIPPED_LATE: late, M.ROWS_SKIPPED_NULL: nulls}
