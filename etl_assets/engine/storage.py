"""Everything the engine does through the driver's JVM instead of Spark SQL, in one place.

Folders (exists, delete, create, rename, list, size, copy a local file in), the footers of
Parquet files just written, the metastore catalog's table and partition records, and the
input records Spark's status store counted. Each goes through the JVM's Hadoop FileSystem,
Parquet reader or catalog, which have no Python binding: the engine's other modules never
touch `_jvm`, `_jsc` or `_jsparkSession`, so running the engine where the driver has no JVM
(Spark Connect) means replacing this module alone.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from datetime import date, datetime, timedelta, timezone
from typing import Any
from urllib.parse import unquote, urlsplit

from pyspark import SparkContext
from pyspark.sql import Column, Observation, SparkSession
from pyspark.sql import types as T

from etl_assets.core.sql_quoting import partition_spec, string_literal, table_name

# --- folders ----------------------------------------------------------------------------------


def hadoop_fs(spark: SparkSession, path: str) -> tuple[Any, Any]:
    """The Hadoop filesystem of a path and the path as a Hadoop `Path`."""
    jvm = spark.sparkContext._jvm  # noqa: SLF001 - Hadoop's FileSystem has no Python binding
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    return hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), hpath  # noqa: SLF001


def folder_of(spark: SparkSession, uri: Any) -> str:
    """A metastore location (a `java.net.URI`) as a folder path `hadoop_fs` takes back.

    The metastore keeps locations URI-encoded (`k=O%2527Brien` for the folder Hive names
    `k=O%27Brien`), while `Path(String)` reads its argument unencoded: handing it the URI's
    text would name a folder that does not exist. `Path(URI).toString()` is the form that
    `list_dir` gives and `Path(String)` reads back.
    """
    return str(spark.sparkContext._jvm.org.apache.hadoop.fs.Path(uri).toString())  # noqa: SLF001


def folder_of_uri_text(text: str) -> str:
    """`folder_of` of a location given as the URI's text, without a call into the JVM.

    What Hadoop's `Path(URI).toString()` gives: the scheme, the authority and the path,
    percent-decoded (`file:/w/t/k=O%2527Brien` -> `file:/w/t/k=O%27Brien`); a query is
    dropped, as Hadoop drops it.
    """
    parts = urlsplit(text)
    folder = f"{parts.scheme}:" if parts.scheme else ""
    if parts.netloc:
        folder += "//" + unquote(parts.netloc)
    folder += unquote(parts.path)
    if parts.fragment:
        folder += "#" + unquote(parts.fragment)
    return folder


def delete_path(spark: SparkSession, path: str) -> None:
    """Delete a folder (recursively) if it exists."""
    fs, hpath = hadoop_fs(spark, path)
    if fs.exists(hpath):
        fs.delete(hpath, True)


def exists(spark: SparkSession, path: str) -> bool:
    """Whether a file or folder exists."""
    fs, hpath = hadoop_fs(spark, path)
    return bool(fs.exists(hpath))


def mkdirs(spark: SparkSession, path: str) -> None:
    """Create a folder and its parents (nothing if it exists)."""
    fs, hpath = hadoop_fs(spark, path)
    fs.mkdirs(hpath)


def rename(spark: SparkSession, source: str, target: str) -> None:
    """Rename a file or folder (atomic on HDFS and local disks); the target's parent must exist.

    Raises:
        OSError: The filesystem refused (the target exists, the source vanished, ...).
    """
    fs, src = hadoop_fs(spark, source)
    _, dst = hadoop_fs(spark, target)
    if not fs.rename(src, dst):
        raise OSError(f"could not move {source} to {target}")


@dataclass(frozen=True)
class Entry:
    """One child of a folder."""

    name: str
    path: str
    is_dir: bool


def list_dir(spark: SparkSession, path: str) -> list[Entry]:
    """The children of a folder (not recursive)."""
    fs, hpath = hadoop_fs(spark, path)
    return [Entry(s.getPath().getName(), s.getPath().toString(), bool(s.isDirectory()))
            for s in fs.listStatus(hpath)]


def copy_from_local(spark: SparkSession, local_file: str, target: str) -> None:
    """Move a local file to `target` on the table's filesystem (the local copy is deleted)."""
    fs, dst = hadoop_fs(spark, target)
    _, src = hadoop_fs(spark, f"file://{local_file}")
    fs.copyFromLocalFile(True, True, src, dst)


def write_text(spark: SparkSession, path: str, text: str) -> None:
    """Write a small UTF-8 file (a held load's manifest) to `path`, replacing it."""
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".json", delete=False) as tmp:
        tmp.write(text)
    copy_from_local(spark, tmp.name, path)


def read_text(spark: SparkSession, path: str) -> str:
    """The content of a small UTF-8 file on the table's filesystem."""
    fs, src = hadoop_fs(spark, path)
    with tempfile.TemporaryDirectory() as folder:
        local = os.path.join(folder, "copy")
        _, dst = hadoop_fs(spark, f"file://{local}")
        fs.copyToLocalFile(False, src, dst, True)  # raw local: no .crc file beside it
        with open(local, encoding="utf-8") as copy:
            return copy.read()


def move_files(spark: SparkSession, source: str, target: str) -> None:
    """Rename the data files of `source` into `target` (created if missing), each under a
    new unique name: a reader sees each file whole or not at all."""
    fs, src = hadoop_fs(spark, source)
    _, dst = hadoop_fs(spark, target)
    fs.mkdirs(dst)
    for status in fs.listStatus(src):
        name = status.getPath().getName()
        if status.isFile() and not name.startswith(("_", ".")):
            target_path = spark.sparkContext._jvm.org.apache.hadoop.fs.Path(  # noqa: SLF001
                dst, f"append-{uuid.uuid4().hex[:8]}-{name}")
            if not fs.rename(status.getPath(), target_path):
                raise OSError(f"could not move {status.getPath()} to {target_path}")


# --- Parquet footers -------------------------------------------------------------------------


@dataclass
class FooterStats:
    """Row count, null counts and min/max of date/timestamp columns, from Parquet footers."""

    rows: int = 0
    nulls: dict[str, int] = dc_field(default_factory=dict)
    minimum: dict[str, Any] = dc_field(default_factory=dict)
    maximum: dict[str, Any] = dc_field(default_factory=dict)


def merge_footers(parts: Sequence[FooterStats], columns: Sequence[str]) -> FooterStats:
    """The footer statistics of several folders (partitions) taken together."""
    total = FooterStats(nulls={c: 0 for c in columns})
    for part in parts:
        total.rows += part.rows
        for column in columns:
            total.nulls[column] += part.nulls.get(column, 0)
        for column, low in part.minimum.items():
            if column not in total.minimum or low < total.minimum[column]:
                total.minimum[column] = low
        for column, high in part.maximum.items():
            if column not in total.maximum or high > total.maximum[column]:
                total.maximum[column] = high
    return total


_EPOCH = date(1970, 1, 1)


def unscaled_value(col: Column) -> Column | None:
    """The unscaled long of a decimal of at most 18 digits (Catalyst's `UnscaledValue`, which
    Spark's own optimizer uses to sum narrow decimals as longs; no SQL function or Python API
    exposes it), or None without a classic JVM session (Spark Connect)."""
    context = SparkContext._active_spark_context  # noqa: SLF001
    if context is None:
        return None
    try:
        jvm = context._jvm  # noqa: SLF001
        utils = jvm.org.apache.spark.sql.classic.ExpressionUtils
        expression = jvm.org.apache.spark.sql.catalyst.expressions.UnscaledValue(
            utils.expression(col._jc))  # noqa: SLF001
        return Column(utils.column(expression))
    except Exception:  # noqa: BLE001 - any py4j failure: the caller sums the decimals
        return None


def _footer_layout(chunks: Any, wanted: set[str]) -> list[tuple[int, str, str | None]]:
    """(position, column, DATE/TIMESTAMP logical type or None) of each wanted top-level
    column among a row group's column chunks."""
    layout = []
    for index in range(chunks.size()):
        chunk = chunks.get(index)
        column = chunk.getPath().toDotString()
        if column not in wanted or len(chunk.getPath().toArray()) != 1:
            continue  # not asked for, or a field of a nested column
        logical = str(chunk.getPrimitiveType().getLogicalTypeAnnotation() or "")
        temporal = logical if logical.startswith(("DATE", "TIMESTAMP")) else None
        layout.append((index, column, temporal))
    return layout


def _footer_value(logical: str, raw: Any) -> Any:
    """A footer min/max of a DATE or TIMESTAMP column (its logical type's text) as a Python
    value."""
    if logical.startswith("DATE"):
        return _EPOCH + timedelta(days=int(raw))
    divisor = 1_000 if "MILLIS" in logical else 1_000_000 if "MICROS" in logical else 10**9
    stamp = datetime.fromtimestamp(int(raw) / divisor, tz=timezone.utc)
    return stamp if "true" in logical else stamp.replace(tzinfo=None)


def read_footers(spark: SparkSession, location: str, columns: Sequence[str]) -> FooterStats:
    """Aggregate the footers of every Parquet file under `location` (no data is read).

    Args:
        spark: The session (its JVM reads the footers through Hadoop, so any filesystem works).
        location: The folder just written.
        columns: Top-level columns stored in the files whose null counts are wanted.

    Returns:
        Total rows, null counts per column, and min/max of date/timestamp columns over all row
        groups (absent when a column has no non-null value). INT96 timestamps carry no
        min/max, so the session writes TIMESTAMP_MICROS.
    """
    jvm = spark.sparkContext._jvm  # noqa: SLF001 - Parquet's Java API has no Python binding
    conf = spark.sparkContext._jsc.hadoopConfiguration()  # noqa: SLF001
    root = jvm.org.apache.hadoop.fs.Path(location)
    files = root.getFileSystem(conf).listFiles(root, True)
    wanted = set(columns)
    stats = FooterStats(nulls={c: 0 for c in columns})
    while files.hasNext():
        path = files.next().getPath()
        name = path.getName()
        if name.startswith(("_", ".")):
            continue
        reader = jvm.org.apache.parquet.hadoop.ParquetFileReader.open(
            jvm.org.apache.parquet.hadoop.util.HadoopInputFile.fromPath(path, conf)
        )
        try:
            blocks = reader.getFooter().getBlocks()
        finally:
            reader.close()
        # Every py4j call is a round trip (~0.1 ms): the wanted columns' positions and logical
        # types are read once per file (its row groups share its schema), and per row group
        # only their statistics.
        layout: list[tuple[int, str, str | None]] | None = None
        for b in range(blocks.size()):
            block = blocks.get(b)
            stats.rows += block.getRowCount()
            chunks = block.getColumns()
            if layout is None:
                layout = _footer_layout(chunks, wanted)
            for index, column, logical in layout:
                chunk_stats = chunks.get(index).getStatistics()
                stats.nulls[column] += chunk_stats.getNumNulls()
                if logical is None or not chunk_stats.hasNonNullValue():
                    continue
                low = _footer_value(logical, chunk_stats.genericGetMin())
                high = _footer_value(logical, chunk_stats.genericGetMax())
                if column not in stats.minimum or low < stats.minimum[column]:
                    stats.minimum[column] = low
                if column not in stats.maximum or high > stats.maximum[column]:
                    stats.maximum[column] = high
    return stats


# --- the metastore catalog --------------------------------------------------------------------


@dataclass(frozen=True)
class TableMeta:
    """What the metastore holds about a table, read in one call.

    Attributes:
        location: The table's folder (as `folder_of` spells it).
        external: Whether the table is external (ours are: the data lives in load folders).
        schema: Data columns, then partition columns (as `spark.table(...).schema`).
        partition_columns: Partition column names, in order.
        properties: Its table properties (`TBLPROPERTIES`), Hive's and ours.
    """

    location: str
    external: bool
    schema: T.StructType
    partition_columns: list[str]
    properties: dict[str, str] = dc_field(default_factory=dict)

    def same_shape(self, schema: T.StructType, partition_columns: list[str]) -> bool:
        """Whether the table has exactly these columns, types and partition columns."""
        return [(f.name, f.dataType) for f in self.schema] == [
            (f.name, f.dataType) for f in schema
        ] and self.partition_columns == partition_columns


def table_meta(spark: SparkSession, qualified: str) -> TableMeta:
    """Location, type, schema and partition columns of a table in one metastore call.

    `DESCRIBE TABLE EXTENDED`, `listColumns` and `spark.table` each cost a metastore round
    trip (and `DESCRIBE` a query plan); publishing a load asked for all of them, twice.
    """
    state = spark._jsparkSession.sessionState()  # noqa: SLF001 - no Python binding
    meta = state.catalog().getTableMetadata(state.sqlParser().parseTableIdentifier(qualified))
    as_java = spark.sparkContext._jvm.scala.jdk.javaapi.CollectionConverters.asJava  # noqa: SLF001
    return TableMeta(
        location=folder_of(spark, meta.location()),
        external=meta.tableType().name() == "EXTERNAL",
        schema=T.StructType.fromJson(json.loads(meta.schema().json())),
        partition_columns=list(as_java(meta.partitionColumnNames())),
        properties=dict(as_java(meta.properties())),
    )


def partition_locations(spark: SparkSession, qualified: str,
                        columns: list[str] | None = None) -> dict[str, str]:
    """Every partition of the table (as a SQL spec) with its folder, in one metastore call.

    `columns`: the table's partition columns, when the caller knows them already.
    """
    columns = columns if columns is not None else _partition_columns(spark, qualified)
    return {partition_spec([(c, record.values[c]) for c in columns]): record.location
            for record in partition_records(spark, qualified)}


@dataclass(frozen=True)
class PartitionRecord:
    """One partition as the metastore holds it.

    Attributes:
        values: Partition column -> value (as stored: Hive lower-cases column names).
        location: Its folder (as `folder_of` spells it).
        parameters: Its parameters (Hive's own, like `totalSize`, and any set by
            `set_partition_parameters`).
    """

    values: dict[str, str]
    location: str
    parameters: dict[str, str]
    # The metastore's listing and this partition's place in it (its JVM record, for
    # `set_partition_parameters`).
    handle: Any = dc_field(repr=False, compare=False, default=None)


def partition_records(spark: SparkSession, qualified: str) -> list[PartitionRecord]:
    """Every partition of the table with its folder and parameters, in one metastore call.

    The listing comes back as one JSON text (Jackson, which Spark ships with its Scala
    module): reading each record's fields over py4j took about 50 round trips a partition,
    3.9 s for the demo's 90 daily partitions against 0.16 s (`make demo`, py-spy).
    """
    jvm = spark.sparkContext._jvm  # noqa: SLF001 - the catalog API has no Python binding
    catalog = spark._jsparkSession.sessionState().catalog().externalCatalog()  # noqa: SLF001
    database, name = qualified.split(".", 1)
    listing = catalog.listPartitions(database, name, jvm.scala.Option.empty())
    mapper = jvm.com.fasterxml.jackson.databind.ObjectMapper()
    mapper.registerModule(jvm.com.fasterxml.jackson.module.scala.DefaultScalaModule())
    return [
        PartitionRecord(values=record["spec"],
                        location=folder_of_uri_text(record["storage"]["locationUri"]),
                        parameters=record["parameters"], handle=(listing, index))
        for index, record in enumerate(json.loads(mapper.writeValueAsString(listing)))
    ]


def set_partition_parameters(
    spark: SparkSession, qualified: str,
    updates: Sequence[tuple[PartitionRecord, dict[str, str]]],
) -> None:
    """Add (or replace) parameters of partitions read by `partition_records`, in one metastore
    call; their folders and other parameters stay as they were."""
    if not updates:
        return
    jvm = spark.sparkContext._jvm  # noqa: SLF001 - the catalog API has no Python binding
    catalog = spark._jsparkSession.sessionState().catalog().externalCatalog()  # noqa: SLF001
    changed = []
    for record, parameters in updates:
        listing, index = record.handle
        p = listing.apply(index)
        merged = p.parameters()
        for key, value in parameters.items():
            merged = merged.updated(key, value)
        # Statistics that only restate Hive's file sizes stay out: given back, they would be
        # stored as Spark's own and outlive the next change of folder. Analyzed ones (with a
        # row count) are kept.
        stats = p.stats()
        if not (stats.isDefined() and stats.get().rowCount().isDefined()):
            stats = jvm.scala.Option.empty()
        changed.append(jvm.org.apache.spark.sql.catalyst.catalog.CatalogTablePartition(
            p.spec(), p.storage(), merged, p.createTime(), p.lastAccessTime(), stats))
    database, name = qualified.split(".", 1)
    catalog.alterPartitions(
        database, name, jvm.scala.jdk.javaapi.CollectionConverters.asScala(changed).toSeq())


def set_table_properties(spark: SparkSession, qualified: str,
                         properties: Mapping[str, str]) -> None:
    """Add (or replace) table properties, in one metastore call; the others stay."""
    if properties:
        pairs = ", ".join(f"{string_literal(k)} = {string_literal(v)}"
                          for k, v in properties.items())
        spark.sql(f"ALTER TABLE {table_name(qualified)} SET TBLPROPERTIES ({pairs})")


def _partition_columns(spark: SparkSession, qualified: str) -> list[str]:
    return [c.name for c in spark.catalog.listColumns(qualified) if c.isPartition]


def partition_folder(spark: SparkSession, qualified: str, spec: dict[str, str]) -> str | None:
    """A partition's folder, or None if the table has no such partition (one metastore call)."""
    jvm = spark.sparkContext._jvm  # noqa: SLF001 - the catalog API has no Python binding
    catalog = spark._jsparkSession.sessionState().catalog().externalCatalog()  # noqa: SLF001
    database, name = qualified.split(".", 1)
    found = catalog.getPartitionOption(database, name, jvm.PythonUtils.toScalaMap(spec))
    return folder_of(spark, found.get().location()) if found.isDefined() else None


# --- the Hadoop configuration ----------------------------------------------------------------


def driver_jvm_arguments(spark: SparkSession) -> list[str]:
    """The options the driver's JVM really started with, `JAVA_TOOL_OPTIONS` included."""
    bean = spark.sparkContext._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean()
    return [str(argument) for argument in bean.getInputArguments()]


def set_hadoop_option(context: SparkContext, key: str, value: str) -> None:
    """Set one option of the running context's Hadoop configuration (not a Spark setting:
    it appears in no `SparkConf`, command line or UI)."""
    context._jsc.hadoopConfiguration().set(key, value)  # noqa: SLF001 - no Python binding


# --- Spark's status store --------------------------------------------------------------------


def observation_done(observation: Observation) -> bool:
    """Whether an `Observation`'s metrics have arrived (`Observation.get` would not block)."""
    return bool(observation._jo.future().isCompleted())  # noqa: SLF001 - no Python binding


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


def folder_fingerprint(spark: SparkSession, path: str) -> str:
    """`<files>:<bytes>` under a folder, from one summary call (no file is opened): what a
    count taken of the folder is trusted by, since any file added, removed or rewritten to
    another size changes it."""
    fs, hpath = hadoop_fs(spark, path)
    summary = fs.getContentSummary(hpath)
    return f"{int(summary.getFileCount())}:{int(summary.getLength())}"


def path_bytes(spark: SparkSession, path: str) -> int:
    """Bytes on disk under a path, from the Hadoop filesystem (local, HDFS, S3...)."""
    jvm = spark.sparkContext._jvm  # noqa: SLF001
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    fs = hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())  # noqa: SLF001
    return int(fs.getContentSummary(hpath).getLength())
