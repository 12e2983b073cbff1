"""One table's load: read the inputs, build the rows (SQL or function), write, measure, publish.

Overwriting a table in place is not atomic with Spark 4 and the Hive catalog (a job failing
mid-write leaves the table dropped or empty, see DESIGN.md), so every load writes to a new
folder and only then points the table at it, in one metastore call; the previous folder is
deleted afterwards. A failed load leaves the previous table readable and untouched.
"""


import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from etl_assets.core import metric_names as M
from etl_assets.core import python_tables as PT
from etl_assets.core.specs import Project, Source, Table, render_template
from etl_assets.core.sql_quoting import identifier
from etl_assets.engine import metrics as MP
from etl_assets.engine import quality as Q
from etl_assets.engine import storage as S
from etl_assets.engine import writes as W

logger = logging.getLogger(__name__)

LOADS_SUFFIX = "__loads"


class LoadError(RuntimeError):
    """A load failed for a reason the spec author can fix; the message names table and field."""


@dataclass(frozen=True)
class LoadRequest:
    """What one run asks of a table: its partitions, watermark and overrides.

    Args:
        run_id: The Dagster run (names the load folder and the Spark job group).
        partition_keys: The partitions of a partitioned table in this run (several for a
            single-run backfill).
        window: `[start, end)` ISO dates covered by those partitions.
        watermark: The incremental column's value at the last successful load.
        full_refresh: Reload everything: no watermark, and write modes that add to the table
            (`append`, `merge`, `delete_insert`) replace it instead.
        run_date: The run's date (UTC), for `{run_date}` in SQL and conditions.
    """

    run_id: str
    partition_keys: tuple[str, ...] = ()
    window: tuple[str, str] | None = None
    watermark: str | None = None
    full_refresh: bool = False
    run_date: str = field(default_factory=lambda: datetime.now(timezone.utc).date().isoformat())

    def template_values(self) -> dict[str, str]:
        """Values for the `{...}` placeholders of SQL and target conditions."""
        values = {"run_date": self.run_date}
        if self.window:
            values["partition_start"], values["partition_end"] = self.window
        if len(self.partition_keys) == 1:
            values["partition_key"] = self.partition_keys[0]
        if self.watermark is not None:
            values["watermark"] = self.watermark
        return values


@dataclass
class LoadResult:
    """What one successful load wrote and measured."""

    table_name: str
    location: str
    schema: T.StructType
    metrics: dict[str, Any]
    rows_in: int | None
    bytes: int
    duration_s: float
    write_mode: str = "overwrite"
    partitions: dict[str, dict[str, Any]] = field(default_factory=dict)
    quality: list[Q.RuleOutcome] = field(default_factory=list)
    job_group: str = ""

    @property
    def row_count(self) -> int:
        """Rows written."""
        return int(self.metrics[M.ROW_COUNT])

    @property
    def watermark(self) -> str | None:
        """The incremental column's highest value in the written rows, if tracked."""
        return self.metrics.get(M.WATERMARK)


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


@contextmanager
def _job_group(spark: SparkSession, group: str, description: str) -> Iterator[None]:
    context = spark.sparkContext
    context.setJobGroup(group, description)
    try:
        yield
    finally:
        context.setLocalProperty("spark.jobGroup.id", None)
        context.setLocalProperty("spark.job.description", None)


def load_window(request: LoadRequest) -> PT.LoadWindow:
    """The request as a Python table's function sees it (`window`)."""
    start, end = request.window or (None, None)
    return PT.LoadWindow(
        partition_start=date.fromisoformat(start) if start else None,
        partition_end=date.fromisoformat(end) if end else None,
        partition_keys=tuple(request.partition_keys),
        watermark=None if request.full_refresh else request.watermark,
        run_date=date.fromisoformat(request.run_date),
        full_refresh=request.full_refresh,
    )


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
    frame = function(**PT.call_arguments(function, spark, inputs, load_window(request)))
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


def load_table(
    spark: SparkSession,
    project: Project,
    table: Table,
    request: LoadRequest | str,
) -> LoadResult:
    """Run one table's SQL (or Python function) and write it, with its metrics captured in
    the write.

    Args:
        spark: The session with Hive support.
        project: All specs (to resolve inputs).
        table: The table to load.
        request: The run's partitions, watermark and overrides (or just a run id).

    Raises:
        LoadError: For a spec problem only visible at run time (a column the SQL does not
            produce); Spark's own exceptions otherwise. The previous table is left as it was.
    """
    if isinstance(request, str):
        request = LoadRequest(run_id=request)
    started = time.monotonic()
    spec = table.spec
    mode = effective_mode(table, request)
    partition_columns = spec.hive_partition_columns
    if not spark.catalog.databaseExists(table.database):
        spark.sql(f"CREATE DATABASE IF NOT EXISTS {identifier(table.database)}")
    db_location = spark.catalog.getDatabase(table.database).locationUri.rstrip("/")
    loads_root = f"{db_location}/{spec.name}{LOADS_SUFFIX}"
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    location = f"{loads_root}/load_{stamp}_{request.run_id[:8]}_{uuid.uuid4().hex[:6]}"
    group = f"etl_assets:{spec.name}:{uuid.uuid4().hex[:8]}"
    inputs, skip_observation = read_inputs(spark, project, table, request)
    if table.function is None:  # the SQL reads its inputs as views
        for name, input_frame in inputs.items():
            input_frame.createOrReplaceTempView(name)
    frame = combine_with_existing(spark, table, build_frame(spark, table, request, inputs),
                                  mode, request)
    watermark_column = spec.incremental.column if spec.incremental else None
    try:
        rules = Q.plan_quality(table, frame.schema)
        plan = MP.plan_metrics(frame.schema, spec.metrics, partition_columns, watermark_column,
                              keep=rules.keep_condition(), extra=rules.exprs)
    except MP.MetricsConfigError as err:
        raise LoadError(f"{table.file}: table '{table.name}': {err}") from err
    except Q.QualityConfigError as err:
        raise LoadError(str(err)) from err
    # Quarantine: one write, split by a partition column naming the broken rules; the good
    # rows' folder becomes the load, the others are added to <table>__rejected.
    rejected_by = rules.rejected_by()
    staged, write_columns = location, partition_columns
    if rejected_by is not None:
        frame = frame.withColumn(Q.REJECTED_BY, rejected_by)
        rejected_root = f"{db_location}/{spec.name}{Q.REJECTED_SUFFIX}{LOADS_SUFFIX}"
        staged = f"{rejected_root}/{location.rsplit('/', 1)[1]}"
        write_columns = [Q.REJECTED_BY, *partition_columns]
    observed, observation = plan.attach(frame)
    writer = observed.write.format("parquet").mode("errorifexists")
    if write_columns:
        writer = writer.partitionBy(*write_columns)
    try:
        with _job_group(spark, group, f"etl_assets load {table.qualified_name}"):
            writer.save(staged)
        values = plan.observed(observation)
        skipped = skipped_rows(skip_observation)
        samples = _sample_failures(spark, rules, values, staged, frame.schema, group)
        rejected_rows = None
        if rejected_by is not None:
            rejected_rows = _split_rejected(spark, table, frame.schema, staged, location,
                                            rejected_root)
    except BaseException:
        S.delete_path(spark, location)
        if staged != location:
            S.delete_path(spark, staged)
        raise
    schema = W.ordered_schema(plan.schema, partition_columns)
    written = W.written_partitions(spark, location, partition_columns) if partition_columns else []
    footers = {p.key: S.read_footers(spark, p.path, plan.footer_columns) for p in written}
    total = S.merge_footers(list(footers.values()), plan.footer_columns) if written else None
    metrics = plan.collect(spark, observation, location, total, values)
    if spec.incremental and metrics.get(M.WATERMARK) is None:
        metrics[M.WATERMARK] = request.watermark  # nothing new: the watermark stays
    elif spec.incremental and spec.incremental.lookback is not None and request.watermark:
        # Re-read rows lie below the watermark: with no new row it would move back, and the
        # next load would look back further still.
        column_type = plan.schema[spec.incremental.column].dataType
        metrics[M.WATERMARK] = later_watermark(spark, column_type, metrics[M.WATERMARK],
                                               request.watermark)
    metrics.update(skipped)
    if rejected_rows is not None:
        metrics[M.ROWS_REJECTED] = rejected_rows
    judged = metrics[M.ROW_COUNT] + (rejected_rows or 0)
    quarantined = {r.name: rules.violations(values, r) for r in rules.quarantine}
    outcomes = Q.judge_load(rules, values, metrics, judged,
                            quarantined=quarantined if rejected_by is not None else None,
                            samples=samples)
    per_partition = {key: plan.footer_metrics(stats) for key, stats in footers.items()}
    old = _publish(spark, table, mode, request, schema, location, loads_root, written)
    W.delete_unused(spark, old, loads_root)
    if spec.cache:
        spark.catalog.cacheTable(table.qualified_name)
    if any(r.computed == Q.BY_QUERY for r in rules.rules):
        with _job_group(spark, f"{group}:quality", f"etl_assets quality {table.qualified_name}"):
            outcomes += Q.run_query_rules(
                spark, rules, in_window(spark.table(table.qualified_name), table, request),
                lambda name: read_input(spark, project, name), metrics[M.ROW_COUNT])
    order = {r.name: i for i, r in enumerate(rules.rules)}
    return LoadResult(
        table_name=table.qualified_name,
        location=location,
        schema=schema,
        metrics=metrics,
        rows_in=S.rows_read(spark, group),
        bytes=S.path_bytes(spark, location),
        duration_s=time.monotonic() - started,
        write_mode=mode,
        partitions=per_partition,
        quality=sorted(outcomes, key=lambda o: order[o.rule.name]),
        job_group=group,
    )


def _sample_failures(
    spark: SparkSession,
    rules: Q.QualityPlan,
    observed: dict[str, Any],
    staged: str,
    schema: T.StructType,
    group: str,
) -> dict[str, Any]:
    """Sample rows of the row-level rules that failed, from the files just written to `staged`
    (before a quarantine moves them), in the job group `<group>:samples`.

    Nothing runs unless a rule counted offending rows; the rows they are judged against are
    then read from the files' footers (no Spark job), and only a rule over its allowance costs
    a query (`Q.sample_offenders`).
    """
    if not any(rules.violations(observed, r) for r in rules.rules if r.name in rules.conditions):
        return {}
    failed = rules.failed_row_rules(observed, S.read_footers(spark, staged, []).rows)
    if not failed:
        return {}
    written = spark.read.schema(schema).option("basePath", staged).parquet(staged)
    with _job_group(spark, f"{group}:samples", "etl_assets quality samples"):
        return Q.sample_offenders(rules, written, failed)


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


def _split_rejected(
    spark: SparkSession,
    table: Table,
    schema: T.StructType,
    staged: str,
    location: str,
    rejected_root: str,
) -> int:
    """Move the good rows' folder of a quarantining write to `location`; add the rest to
    `<table>__rejected` (created on first use, partitioned by the rule names). Returns the
    number of rejected rows (from the files' footers).

    The rejected rows are added before the table is published: a failure here fails the load
    and leaves the table as it was, so no row is ever lost.
    """
    good = f"{staged}/{Q.REJECTED_BY}={W.HIVE_NULL}"
    S.mkdirs(spark, location.rstrip("/").rsplit("/", 1)[0])
    if S.exists(spark, good):
        S.rename(spark, good, location)
    else:
        S.mkdirs(spark, location)  # every row was rejected: the load is empty
    rejected = S.read_footers(spark, staged, []).rows
    columns = [Q.REJECTED_BY, *table.spec.hive_partition_columns]
    qualified = f"{table.qualified_name}{Q.REJECTED_SUFFIX}"
    ordered = W.ordered_schema(schema, columns)
    W.ensure_partitioned_table(spark, qualified, ordered, columns, rejected_root)
    if rejected:
        W.append_files(spark, qualified, ordered, columns, staged, rejected_root)
    else:
        S.delete_path(spark, staged)
    return rejected


def _publish(
    spark: SparkSession,
    table: Table,
    mode: str,
    request: LoadRequest,
    schema: T.StructType,
    location: str,
    loads_root: str,
    written: list[W.WrittenPartition],
) -> list[str]:
    """Make the written folder the table's new contents; returns our folders now unused."""
    qualified = table.qualified_name
    columns = table.spec.hive_partition_columns
    if mode == "append":
        W.append_files(spark, qualified, schema, columns, location, loads_root)
        return []
    if table.spec.partitions or mode == "insert_overwrite":
        W.ensure_partitioned_table(spark, qualified, schema, columns, loads_root)
        drop = []
        if table.spec.partitions:
            # Partitions of the run that received no rows are emptied: a rerun replaces them.
            written_keys = {p.key for p in written}
            column = table.spec.partitions.column
            drop = [W.WrittenPartition(((column, key),), "").spec
                    for key in request.partition_keys if key not in written_keys]
        return W.replace_partitions(spark, qualified, written, drop, loads_root)
    return W.replace_table(spark, qualified, schema, columns, location, loads_root)


def logged_metrics(result: LoadResult) -> dict[str, Any]:
    """The metrics written to `metric_log`: everything numeric or textual about the load."""
    values = dict(result.metrics)
    values[M.BYTES] = result.bytes
    values[M.DURATION_S] = round(result.duration_s, 3)
    if result.rows_in is not None:
        values[M.ROWS_IN] = result.rows_in
    return values


