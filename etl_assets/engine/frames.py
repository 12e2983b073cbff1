"""Stage 2 of a load, build the frame: the new rows from the SQL or the Python function, kept to
the run's window, with the rows a `merge` or `delete_insert` keeps from the table.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from etl_assets.core import python_tables as PT
from etl_assets.core.load_request import LoadError, LoadRequest
from etl_assets.core.specs import Table, render_template
from etl_assets.core.sql_quoting import identifier
from etl_assets.engine import writes as W


def call_function(
    spark: SparkSession, table: Table, inputs: dict[str, DataFrame], request: LoadRequest
) -> DataFrame:
    """A Python table's new rows: its function called with the session, its inputs and the
    load window, bound by name.

    Raises:
        LoadError: The function returned something other than a DataFrame. What it raises
            itself propagates unchanged, as Spark's errors do for a YAML table's SQL.
    """
    assert table.function is not None
    function = table.function
    frame = function(**PT.call_arguments(function, spark, inputs, request.load_window()))
    if not isinstance(frame, DataFrame):
        raise LoadError(f"{table.where}: returned {type(frame).__name__}, not a DataFrame "
                        "(return the table's new rows as a pyspark.sql.DataFrame)")
    return frame


def build_frame(
    spark: SparkSession,
    table: Table,
    request: LoadRequest | None = None,
    inputs: dict[str, DataFrame] | None = None,
) -> DataFrame:
    """The new rows: the SQL with its placeholders filled (input views must be registered),
    or a Python table's function called with `inputs` (`read_inputs`); then the hints applied.

    For a time-partitioned table the rows are kept to the run's partition window.
    """
    spec = table.spec
    request = request or LoadRequest(run_id="adhoc")
    if table.function is not None:
        frame = call_function(spark, table, inputs or {}, request)
    else:
        frame = spark.sql(render_template(spec.sql, request.template_values()))
    missing = [c for c in spec.hive_partition_columns if c not in frame.columns]
    if missing:
        field_name = "partitions.column" if spec.partitions else "partition_by"
        made_by = "the function" if table.function is not None else "the sql"
        raise LoadError(
            f"{table.where}: field '{field_name}': columns {missing} are not produced by "
            f"{made_by} (columns: {frame.columns})"
        )
    frame = in_window(frame, table, request)
    if spec.repartition:
        frame = frame.repartition(spec.repartition)
    elif spec.coalesce:
        frame = frame.coalesce(spec.coalesce)
    return frame


def effective_mode(table: Table, request: LoadRequest) -> str:
    """The write mode of this load: a full refresh replaces what would be added to."""
    mode = table.spec.write_mode
    if request.full_refresh and mode in ("append", "merge", "delete_insert"):
        return "insert_overwrite" if table.spec.partitions else "overwrite"
    return mode


def combine_with_existing(
    spark: SparkSession, table: Table, new: DataFrame, mode: str, request: LoadRequest
) -> DataFrame:
    """For `delete_insert` and `merge`: the kept existing rows plus the new ones.

    `delete_insert` keeps the rows not matching `target_condition`; `merge` keeps the rows
    whose key is not among the new rows' keys (an upsert). Both rewrite the table (or, for a
    time-partitioned table, the run's partitions): the cost is that of reading and writing
    what is rewritten, which is what makes the change atomic on plain Hive tables.

    Raises:
        LoadError: The new rows retype or lack a column of the table (added columns are
            fine: the kept rows get nulls); a full refresh changes the schema.
    """
    if mode not in ("delete_insert", "merge") or not spark.catalog.tableExists(
        table.qualified_name
    ):
        return new
    current = spark.table(table.qualified_name)
    try:
        # Before the union, which would cast the new rows to the old types without a word.
        W.require_same_columns(table.qualified_name, current.schema, new.schema,
                               f"write_mode {mode} keeps rows of the table")
    except W.SchemaChangeError as err:
        rows = "the function's rows" if table.function is not None else "field 'sql'"
        raise LoadError(f"{table.where}: {rows}: {err}") from err
    existing = in_window(current, table, request)
    spec = table.spec
    if mode == "delete_insert":
        condition = F.expr(render_template(spec.target_condition or "", request.template_values()))
        kept = existing.where(~F.coalesce(condition, F.lit(False)))
    else:
        keys = [identifier(k) for k in spec.merge_keys]
        missing = [k for k in spec.merge_keys if k not in new.columns]
        if missing:
            raise LoadError(
                f"{table.where}: field 'merge_keys': {missing} not in the new rows' columns "
                f"{new.columns}"
            )
        kept = existing.join(new.select(*keys).distinct(), spec.merge_keys, "left_anti")
        # A join on names puts the keys first: keep the table's own column order.
        kept = kept.select(*[identifier(c) for c in existing.columns])
    return kept.unionByName(new, allowMissingColumns=True)


def in_window(frame: DataFrame, table: Table, request: LoadRequest) -> DataFrame:
    """The rows of a time-partitioned table's frame in the run's `[start, end)` window (all
    rows otherwise)."""
    spec = table.spec
    if not (spec.partitions and request.window):
        return frame
    column = F.col(identifier(spec.partitions.column))
    kind = frame.schema[spec.partitions.column].dataType
    start, end = request.window
    return frame.where((column >= F.lit(start).cast(kind)) & (column < F.lit(end).cast(kind)))
