"""Spec -> asset: read the inputs, run the SQL, write the Hive table, measure it in the write.

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
from datetime import datetime, timezone
from typing import Any

import dagster as dg
from dagster_pyspark import LazyPySparkResource
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from etl_assets import metrics as M
from etl_assets.hive_log import FAILED, SUCCESS, HiveLog, RunRecord
from etl_assets.specs import Project, Source, Table

logger = logging.getLogger(__name__)

LOADS_SUFFIX = "__loads"


class LoadError(RuntimeError):
    """A load failed for a reason the spec author can fix; the message names table and field."""


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
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def row_count(self) -> int:
        """Rows written."""
        return int(self.metrics[M.ROW_COUNT])


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


def register_inputs(spark: SparkSession, project: Project, table: Table) -> None:
    """Register each input as a temp view named as in the SQL (broadcast hints applied).

    The views are replaced by the next table's, never dropped: dropping a view over a cached
    table uncaches the table too (Spark uncaches every plan equal to the view's), which would
    defeat `cache: true`. The spec loader already rejects SQL reading anything but its inputs.
    """
    for name in table.spec.inputs:
        frame = read_input(spark, project, name)
        if name in table.spec.broadcast:
            frame = F.broadcast(frame)
        frame.createOrReplaceTempView(name)


@contextmanager
def _job_group(spark: SparkSession, group: str, description: str) -> Iterator[None]:
    context = spark.sparkContext
    context.setJobGroup(group, description)
    try:
        yield
    finally:
        context.setLocalProperty("spark.jobGroup.id", None)
        context.setLocalProperty("spark.job.description", None)


def _hadoop_fs(spark: SparkSession, path: str) -> tuple[Any, Any]:
    jvm = spark.sparkContext._jvm  # noqa: SLF001
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    return hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), hpath  # noqa: SLF001


def _delete_path(spark: SparkSession, path: str) -> None:
    fs, hpath = _hadoop_fs(spark, path)
    if fs.exists(hpath):
        fs.delete(hpath, True)


def _quote(name: str) -> str:
    return f"`{name}`"


def _table_info(spark: SparkSession, qualified: str) -> dict[str, str]:
    rows = spark.sql(f"DESCRIBE TABLE EXTENDED {qualified}").collect()
    return {r.col_name: r.data_type for r in rows if r.col_name in ("Location", "Type")}


def _ddl_columns(schema: T.StructType, partition_by: list[str]) -> tuple[str, T.StructType]:
    """Column list for CREATE TABLE, partition columns last (as Spark lays out the files)."""
    ordered = [f for f in schema if f.name not in partition_by]
    ordered += [next(f for f in schema if f.name == p) for p in partition_by]
    ddl = ", ".join(f"{_quote(f.name)} {f.dataType.simpleString()}" for f in ordered)
    return ddl, T.StructType(ordered)


def _create_external(
    spark: SparkSession, qualified: str, ddl: str, partition_by: list[str], location: str
) -> None:
    partitioned = ""
    if partition_by:
        partitioned = f" PARTITIONED BY ({', '.join(_quote(p) for p in partition_by)})"
    escaped = location.replace("'", "\\'")
    spark.sql(
        f"CREATE TABLE {qualified} ({ddl}) USING parquet{partitioned} LOCATION '{escaped}'"
    )
    if partition_by:
        spark.sql(f"ALTER TABLE {qualified} RECOVER PARTITIONS")


def _switch_table(
    spark: SparkSession, table: Table, schema: T.StructType, location: str, loads_root: str
) -> str | None:
    """Point the table at `location`; returns the previous location to delete, if ours.

    Same columns and unpartitioned: one `ALTER TABLE ... SET LOCATION`, atomic for readers.
    New table: `CREATE TABLE ... LOCATION`. Changed schema or partitioned: a table is created
    on the new folder and swapped in by drop + rename (metadata only; the data is already
    written, so nothing can be lost, but the table is absent for the moment between the two).
    """
    qualified = table.qualified_name
    partition_by = list(table.spec.partition_by)
    ddl, ordered = _ddl_columns(schema, partition_by)
    if not spark.catalog.tableExists(qualified):
        _create_external(spark, qualified, ddl, partition_by, location)
        return None
    info = _table_info(spark, qualified)
    previous = info.get("Location", "")
    ours = info.get("Type") == "EXTERNAL" and previous.startswith(loads_root)
    current = spark.table(qualified)
    existing_partitions = [
        c.name for c in spark.catalog.listColumns(qualified) if c.isPartition
    ]
    same_shape = (
        [(f.name, f.dataType) for f in current.schema] == [(f.name, f.dataType) for f in ordered]
        and existing_partitions == partition_by
    )
    if ours and same_shape and not partition_by:
        escaped = location.replace("'", "\\'")
        spark.sql(f"ALTER TABLE {qualified} SET LOCATION '{escaped}'")
        spark.catalog.refreshTable(qualified)
        return previous
    swap = f"{table.database}.{table.spec.name}__swap_{uuid.uuid4().hex[:8]}"
    _create_external(spark, swap, ddl, partition_by, location)
    spark.sql(f"DROP TABLE {qualified}")
    spark.sql(f"ALTER TABLE {swap} RENAME TO {qualified}")
    spark.catalog.refreshTable(qualified)
    return previous if ours else None


def build_frame(spark: SparkSession, table: Table) -> DataFrame:
    """The DataFrame to write: the SQL with its hints. Input views must be registered."""
    spec = table.spec
    frame = spark.sql(spec.sql)
    missing = [c for c in spec.partition_by if c not in frame.columns]
    if missing:
        raise LoadError(
            f"{table.file}: table '{table.name}': field 'partition_by': columns {missing} are "
            f"not produced by the sql (columns: {frame.columns})"
        )
    if spec.repartition:
        frame = frame.repartition(spec.repartition)
    elif spec.coalesce:
        frame = frame.coalesce(spec.coalesce)
    return frame


def load_table(spark: SparkSession, project: Project, table: Table, run_id: str) -> LoadResult:
    """Run one table's SQL and write it, with its metrics observed in the write.

    Args:
        spark: The session with Hive support.
        project: All specs (to resolve inputs).
        table: The table to load.
        run_id: Identifies the load in the folder name and the Spark job group.

    Raises:
        LoadError: For a spec problem only visible at run time (a column the SQL does not
            produce); Spark's own exceptions otherwise. The previous table is left as it was.
    """
    started = time.monotonic()
    spec = table.spec
    if not spark.catalog.databaseExists(table.database):
        spark.sql(f"CREATE DATABASE IF NOT EXISTS {_quote(table.database)}")
    db_location = spark.catalog.getDatabase(table.database).locationUri.rstrip("/")
    loads_root = f"{db_location}/{spec.name}{LOADS_SUFFIX}"
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    location = f"{loads_root}/load_{stamp}_{run_id[:8]}_{uuid.uuid4().hex[:6]}"
    group = f"etl_assets:{spec.name}:{uuid.uuid4().hex[:8]}"
    register_inputs(spark, project, table)
    frame = build_frame(spark, table)
    try:
        plan = M.plan_metrics(frame.schema, spec.metrics, spec.partition_by)
    except M.MetricsConfigError as err:
        raise LoadError(f"{table.file}: table '{table.name}': {err}") from err
    observed, observation = plan.attach(frame)
    writer = observed.write.format("parquet").mode("errorifexists")
    if spec.partition_by:
        writer = writer.partitionBy(*spec.partition_by)
    try:
        with _job_group(spark, group, f"etl_assets load {table.qualified_name}"):
            writer.save(location)
    except BaseException:
        _delete_path(spark, location)
        raise
    metrics = plan.collect(spark, observation, location)
    previous = _switch_table(spark, table, frame.schema, location, loads_root)
    if previous and previous.rstrip("/") != location.rstrip("/"):
        _delete_path(spark, previous)
    if spec.cache:
        spark.catalog.cacheTable(table.qualified_name)
    _, ordered = _ddl_columns(frame.schema, list(spec.partition_by))
    return LoadResult(
        table_name=table.qualified_name,
        location=location,
        schema=ordered,
        metrics=metrics,
        rows_in=M.rows_read(spark, group),
        bytes=M.path_bytes(spark, location),
        duration_s=time.monotonic() - started,
    )


def result_metadata(table: Table, result: LoadResult) -> dict[str, Any]:
    """`MaterializeResult` metadata: Dagster's standard keys plus every metric."""
    metadata: dict[str, Any] = {
        M.TABLE_NAME: dg.MetadataValue.text(result.table_name),
        M.URI: dg.MetadataValue.path(result.location),
        M.COLUMN_SCHEMA: M.column_schema(result.schema),
        M.BYTES: dg.MetadataValue.int(result.bytes),
        M.DURATION_S: dg.MetadataValue.float(round(result.duration_s, 3)),
        M.CODE_VERSION: dg.MetadataValue.text(table.code_version),
    }
    if result.rows_in is not None:
        metadata[M.ROWS_IN] = dg.MetadataValue.int(result.rows_in)
    for name, value in result.metrics.items():
        metadata[name] = M.to_metadata(value)
    return metadata


def logged_metrics(result: LoadResult) -> dict[str, Any]:
    """The metrics written to `metric_log`: everything numeric or textual about the load."""
    values = dict(result.metrics)
    values[M.BYTES] = result.bytes
    values[M.DURATION_S] = round(result.duration_s, 3)
    if result.rows_in is not None:
        values[M.ROWS_IN] = result.rows_in
    return values


class EtlLogResource(dg.ConfigurableResource):
    """Where the Hive log tables live (database `etl_log` unless configured)."""

    database: str = "etl_log"


def build_table_asset(project: Project, table: Table) -> dg.AssetsDefinition:
    """One Hive table as a Dagster asset; its inputs become its upstream dependencies."""
    spec = table.spec

    @dg.asset(
        key=dg.AssetKey(spec.name),
        deps=[dg.AssetKey(name) for name in spec.inputs],
        description=spec.description or f"Hive table {table.qualified_name}",
        group_name=spec.group or table.domain,
        owners=list(spec.owners) or None,
        tags=dict(spec.tags) or None,
        kinds={"spark", "hive"},
        code_version=table.code_version,
        metadata={M.TABLE_NAME: table.qualified_name, "spec_file": str(table.file)},
    )
    def _table(
        context: dg.AssetExecutionContext, spark: LazyPySparkResource, etl_log: EtlLogResource
    ) -> dg.MaterializeResult:
        return materialize_table(context, spark.spark_session, etl_log.database, project, table)

    return _table


def materialize_table(
    context: dg.AssetExecutionContext,
    spark: SparkSession,
    log_database: str,
    project: Project,
    table: Table,
) -> dg.MaterializeResult:
    """Load the table and log the outcome to Hive; on failure log FAILED and re-raise."""
    run_id = context.run.run_id
    started_at = datetime.now(timezone.utc)
    hive_log = HiveLog(spark, log_database)
    partition_key = context.partition_key if context.has_partition_key else None
    record = dict(
        run_id=run_id,
        asset=table.name,
        domain=table.domain,
        table_name=table.qualified_name,
        started_at=started_at,
        code_version=table.code_version,
        partition_key=partition_key,
    )
    try:
        result = load_table(spark, project, table, run_id)
    except Exception as err:
        failed = RunRecord(
            status=FAILED,
            finished_at=datetime.now(timezone.utc),
            error_message=f"{type(err).__name__}: {err}",
            **record,
        )
        try:
            hive_log.write_load(failed)
        except Exception as log_err:  # noqa: BLE001 - the load's own error matters more
            context.log.error(f"could not write the FAILED row to {log_database}.run_log: {log_err}")
        raise
    success = RunRecord(
        status=SUCCESS,
        finished_at=datetime.now(timezone.utc),
        rows_in=result.rows_in,
        row_count=result.row_count,
        bytes=result.bytes,
        **record,
    )
    hive_log.write_load(success, logged_metrics(result))
    context.log.info(
        f"{table.qualified_name}: {result.row_count:,} rows, {result.bytes:,} bytes "
        f"in {result.duration_s:.1f}s"
    )
    return dg.MaterializeResult(metadata=result_metadata(table, result))


def build_source_asset(source: Source) -> dg.AssetSpec:
    """A declared source as an external asset, so lineage starts at the files."""
    where = source.resolved_path or source.spec.table
    return dg.AssetSpec(
        key=dg.AssetKey(source.name),
        description=source.spec.description or f"{source.spec.format} source {where}",
        group_name=source.domain,
        kinds={source.spec.format},
        metadata={"path" if source.resolved_path else M.TABLE_NAME: str(where)},
    )
