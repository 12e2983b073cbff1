"""Stages 3 to 6 of a load: where it goes (`plan_target`), the write of a new folder with the
observed aggregates (`stage`), samples of offending rows (`sample_failures`), the quarantine
split (`quarantine`) and the measurement of what was written (`measure`).

Nothing here touches the table: a staged folder is invisible to readers until
`etl_assets.engine.publish` switches the table to it, and `discard` deletes it when a stage
fails.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import types as T

from etl_assets.core import metric_names as M
from etl_assets.core.load_request import LoadError, LoadRequest
from etl_assets.core.specs import Table
from etl_assets.core.sql_quoting import identifier
from etl_assets.engine import metrics as MP
from etl_assets.engine import quality as Q
from etl_assets.engine import storage as S
from etl_assets.engine import writes as W
from etl_assets.engine.frames import effective_mode
from etl_assets.engine.inputs import later_watermark

LOADS_SUFFIX = "__loads"


@dataclass(frozen=True)
class Target:
    """Where one load of a table is staged, and how it will be published.

    Attributes:
        table: The table.
        mode: The write mode of this load (`frames.effective_mode`).
        location: The new load folder, `<db>/<table>__loads/load_<utc stamp>_<run>_<random>`.
        loads_root: The folder of the table's load folders.
        rejected_root: The folder of `<table>__rejected`'s load folders (quarantine).
        job_group: The Spark job group of the load's jobs (`<group>:samples`, `:quality`).
    """

    table: Table
    mode: str
    location: str
    loads_root: str
    rejected_root: str
    job_group: str


def database_folder(spark: SparkSession, table: Table) -> str:
    """The folder of the table's database (created if missing), without a trailing slash."""
    if not spark.catalog.databaseExists(table.database):
        spark.sql(f"CREATE DATABASE IF NOT EXISTS {identifier(table.database)}")
    return spark.catalog.getDatabase(table.database).locationUri.rstrip("/")


def loads_root(spark: SparkSession, table: Table) -> str:
    """The folder of the table's load folders, `<database folder>/<table>__loads`."""
    return f"{database_folder(spark, table)}/{table.spec.name}{LOADS_SUFFIX}"


def plan_target(spark: SparkSession, table: Table, request: LoadRequest) -> Target:
    """The load's folders (its database created if missing); nothing is written yet."""
    db_location = database_folder(spark, table)
    name = table.spec.name
    loads_root = f"{db_location}/{name}{LOADS_SUFFIX}"
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    return Target(
        table=table,
        mode=effective_mode(table, request),
        location=f"{loads_root}/load_{stamp}_{request.run_id[:8]}_{uuid.uuid4().hex[:6]}",
        loads_root=loads_root,
        rejected_root=f"{db_location}/{name}{Q.REJECTED_SUFFIX}{LOADS_SUFFIX}",
        job_group=f"etl_assets:{name}:{uuid.uuid4().hex[:8]}",
    )


@contextmanager
def job_group(spark: SparkSession, group: str, description: str) -> Iterator[None]:
    """Run the block's Spark jobs in a job group (the UI groups them; `rows_read` sums them)."""
    context = spark.sparkContext
    context.setJobGroup(group, description)
    try:
        yield
    finally:
        context.setLocalProperty("spark.jobGroup.id", None)
        context.setLocalProperty("spark.job.description", None)


@dataclass(frozen=True)
class Staged:
    """A written, unpublished load and what its write observed.

    Attributes:
        target: Where it goes.
        path: The folder written: the target's location, or with a quarantine the folder split
            by `_rejected_by` that `quarantine` divides.
        schema: The schema written (with `_rejected_by` when quarantining).
        plan: The metrics observed in the write and read from the footers.
        rules: The quality rules, resolved against `schema`.
        observation: The write's `Observation`.
        observed: Its values (aggregates and the rules' offending-row counts).
    """

    target: Target
    path: str
    schema: T.StructType
    plan: MP.MetricPlan
    rules: Q.QualityPlan
    observation: Observation
    observed: dict[str, Any]

    @property
    def quarantining(self) -> bool:
        """Whether the write split off rows that broke a quarantining rule."""
        return self.path != self.target.location


def stage(spark: SparkSession, target: Target, frame: DataFrame) -> Staged:
    """Write the new rows to a new folder, their metrics and rule counts observed in the same
    job (`DataFrame.observe`: no second scan).

    With a quarantining rule the write is split by a partition column naming the broken rules
    (`_rejected_by`): one write for both the good and the rejected rows.

    Raises:
        LoadError: A metric or rule does not fit the rows' schema. Nothing is left behind
            when the write fails.
    """
    table = target.table
    spec = table.spec
    partition_columns = spec.hive_partition_columns
    watermark_column = spec.incremental.column if spec.incremental else None
    try:
        rules = Q.plan_quality(table, frame.schema)
        plan = MP.plan_metrics(frame.schema, spec.metrics, partition_columns, watermark_column,
                               keep=rules.keep_condition(), extra=rules.exprs)
    except MP.MetricsConfigError as err:
        raise LoadError(f"{table.file}: table '{table.name}': {err}") from err
    except Q.QualityConfigError as err:
        raise LoadError(str(err)) from err
    path, write_columns = target.location, partition_columns
    rejected_by = rules.rejected_by()
    if rejected_by is not None:
        frame = frame.withColumn(Q.REJECTED_BY, rejected_by)
        path = f"{target.rejected_root}/{target.location.rsplit('/', 1)[1]}"
        write_columns = [Q.REJECTED_BY, *partition_columns]
    schema = frame.schema
    observed, observation = plan.attach(frame)
    writer = observed.write.format("parquet").mode("errorifexists")
    if write_columns:
        writer = writer.partitionBy(*write_columns)
    staged = Staged(target, path, schema, plan, rules, observation, {})
    try:
        with job_group(spark, target.job_group, f"etl_assets load {table.qualified_name}"):
            writer.save(path)
        staged.observed.update(plan.observed(observation))
    except BaseException:
        discard(spark, staged)
        raise
    return staged


def discard(spark: SparkSession, staged: Staged) -> None:
    """Delete what the load wrote (its folder, and the quarantine split's)."""
    S.delete_path(spark, staged.target.location)
    if staged.quarantining:
        S.delete_path(spark, staged.path)


def sample_failures(spark: SparkSession, staged: Staged) -> dict[str, Any]:
    """Sample rows of the row-level rules that failed, from the files just written (before a
    quarantine moves them), in the job group `<group>:samples`.

    Nothing runs unless a rule counted offending rows; the rows they are judged against are
    then read from the files' footers (no Spark job), and only a rule over its allowance costs
    a query (`Q.sample_offenders`).
    """
    rules, observed = staged.rules, staged.observed
    if not any(rules.violations(observed, r) for r in rules.rules if r.name in rules.conditions):
        return {}
    failed = rules.failed_row_rules(observed, S.read_footers(spark, staged.path, []).rows)
    if not failed:
        return {}
    written = spark.read.schema(staged.schema).option("basePath", staged.path).parquet(
        staged.path)
    with job_group(spark, f"{staged.target.job_group}:samples", "etl_assets quality samples"):
        return Q.sample_offenders(rules, written, failed)


def quarantine(spark: SparkSession, staged: Staged) -> int | None:
    """Move the good rows' folder of a quarantining write to the target location; add the
    rest to `<table>__rejected` (created on first use, partitioned by the rule names).

    Returns the number of rejected rows (from the files' footers), None when no rule
    quarantines. The rejected rows are added before the table is published: a failure here
    fails the load and leaves the table as it was, so no row is ever lost.
    """
    if not staged.quarantining:
        return None
    target, table = staged.target, staged.target.table
    good = f"{staged.path}/{Q.REJECTED_BY}={W.HIVE_NULL}"
    S.mkdirs(spark, target.location.rstrip("/").rsplit("/", 1)[0])
    if S.exists(spark, good):
        S.rename(spark, good, target.location)
    else:
        S.mkdirs(spark, target.location)  # every row was rejected: the load is empty
    rejected = S.read_footers(spark, staged.path, []).rows
    columns = [Q.REJECTED_BY, *table.spec.hive_partition_columns]
    qualified = f"{table.qualified_name}{Q.REJECTED_SUFFIX}"
    ordered = W.ordered_schema(staged.schema, columns)
    W.ensure_partitioned_table(spark, qualified, ordered, columns, target.rejected_root)
    if rejected:
        W.append_files(spark, qualified, ordered, columns, staged.path, target.rejected_root)
    else:
        S.delete_path(spark, staged.path)
    return rejected


@dataclass(frozen=True)
class Measured:
    """What the staged load holds, measured from the write's observation and its footers.

    Attributes:
        schema: The table's schema as published (partition columns last).
        metrics: Metric name -> value for the whole load (`etl_assets.core.metric_names`).
        written: The Hive partitions written (empty for an unpartitioned table).
        per_partition: Partition key -> that partition's footer metrics.
    """

    schema: T.StructType
    metrics: dict[str, Any]
    written: list[W.WrittenPartition]
    per_partition: dict[str, dict[str, Any]]


def measure(
    spark: SparkSession,
    staged: Staged,
    request: LoadRequest,
    skipped: dict[str, int],
    rejected_rows: int | None,
) -> Measured:
    """The load's metrics: the observed aggregates plus what the footers give (row and null
    counts, min/max), per written partition and in total; no data is read.

    Args:
        staged: The staged load (after `quarantine`: the target location holds the good rows).
        request: The run (its watermark, which stays when nothing new arrived).
        skipped: The watermark filter's skipped-row counts (`inputs.skipped_rows`).
        rejected_rows: Rows quarantined (`quarantine`), None without a quarantine.
    """
    target, plan = staged.target, staged.plan
    spec = target.table.spec
    partition_columns = spec.hive_partition_columns
    location = target.location
    schema = W.ordered_schema(plan.schema, partition_columns)
    written = W.written_partitions(spark, location, partition_columns) if partition_columns else []
    footers = {p.key: S.read_footers(spark, p.path, plan.footer_columns) for p in written}
    total = S.merge_footers(list(footers.values()), plan.footer_columns) if written else None
    metrics = plan.collect(spark, staged.observation, location, total, staged.observed)
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
    per_partition = {key: plan.footer_metrics(stats) for key, stats in footers.items()}
    return Measured(schema, metrics, written, per_partition)
