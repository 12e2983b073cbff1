"""Publishing a written folder as the table's new contents, per write mode, without data loss.

Every load first writes its rows to a new folder under `<database>/<table>__loads/`. Only
when that write has succeeded is the table (or each of its partitions) pointed at the new
folder, in metastore calls that readers see as one change each:

- whole table: `ALTER TABLE ... SET LOCATION` (or a drop + rename when the schema changed);
- partitions: `ALTER TABLE ... PARTITION (...) SET LOCATION` / `ADD PARTITION ... LOCATION`,
  one call per partition;
- append: the new files are renamed into the current folders (a file rename is atomic, so a
  reader sees each new file whole or not at all).

A failure before the switch leaves the table as it was; the new folder is deleted.
"""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from pyspark.errors import AnalysisException
from pyspark.sql import SparkSession
from pyspark.sql import types as T

from etl_assets.core.anomaly import compare_schemas
from etl_assets.core.sql_quoting import (
    column_definitions,
    identifier,
    partition_spec,
    string_literal,
    table_name,
)
from etl_assets.engine import storage as S

logger = logging.getLogger(__name__)

HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"


def ordered_schema(schema: T.StructType, partition_columns: list[str]) -> T.StructType:
    """The table's column order: partition columns last, as Spark lays out the files."""
    fields = [f for f in schema if f.name not in partition_columns]
    fields += [next(f for f in schema if f.name == p) for p in partition_columns]
    return T.StructType(fields)


def _ddl(schema: T.StructType) -> str:
    return column_definitions([(f.name, f.dataType.simpleString()) for f in schema])


def create_external(
    spark: SparkSession,
    qualified: str,
    schema: T.StructType,
    partition_columns: list[str],
    location: str,
    recover: bool = True,
) -> None:
    """Create an external Parquet table on a folder (partitions found in it if `recover`)."""
    partitioned = ""
    if partition_columns:
        partitioned = f" PARTITIONED BY ({', '.join(identifier(p) for p in partition_columns)})"
    spark.sql(
        f"CREATE TABLE {table_name(qualified)} ({_ddl(schema)}) USING parquet{partitioned} "
        f"LOCATION {string_literal(location)}"
    )
    if partition_columns and recover:
        spark.sql(f"ALTER TABLE {table_name(qualified)} RECOVER PARTITIONS")


def replace_table(
    spark: SparkSession,
    qualified: str,
    schema: T.StructType,
    partition_columns: list[str],
    location: str,
    loads_root: str,
) -> list[str]:
    """Make `location` the whole table; returns the folders of ours it no longer uses.

    Same columns and unpartitioned: one `ALTER TABLE ... SET LOCATION`, atomic for readers.
    New table: `CREATE TABLE ... LOCATION`. Changed schema or partitioned: a table is created
    on the new folder and swapped in by drop + rename (metadata only: the data is already
    written, so nothing can be lost, but the table is absent for the moment between the two).
    """
    if not spark.catalog.tableExists(qualified):
        create_external(spark, qualified, schema, partition_columns, location)
        return []
    meta = S.table_meta(spark, qualified)
    old = our_locations(spark, qualified, meta, loads_root)
    ours = meta.external and meta.location.startswith(loads_root)
    if ours and not partition_columns and meta.same_shape(schema, []):
        spark.sql(f"ALTER TABLE {table_name(qualified)} SET LOCATION {string_literal(location)}")
        spark.catalog.refreshTable(qualified)
        return old
    database, name = qualified.split(".", 1)
    swap = f"{database}.{name}__swap_{uuid.uuid4().hex[:8]}"
    create_external(spark, swap, schema, partition_columns, location)
    spark.sql(f"DROP TABLE {table_name(qualified)}")
    spark.sql(f"ALTER TABLE {table_name(swap)} RENAME TO {table_name(qualified)}")
    spark.catalog.refreshTable(qualified)
    return old


def our_locations(spark: SparkSession, qualified: str, meta: S.TableMeta,
                  loads_root: str) -> list[str]:
    """The folders under our loads root that the table or its partitions point at."""
    locations = [meta.location]
    if meta.partition_columns:
        locations += S.partition_locations(spark, qualified, meta.partition_columns).values()
    return [loc for loc in locations if loc.startswith(loads_root)]


@dataclass(frozen=True)
class WrittenPartition:
    """One partition folder of a freshly written load: `col=value` and its path."""

    values: tuple[tuple[str, str | None], ...]
    path: str

    @property
    def spec(self) -> str:
        """The partition spec for SQL: `col='value', ...` (NULL values use Hive's name)."""
        return partition_spec([(c, HIVE_NULL if v is None else v) for c, v in self.values])

    @property
    def key(self) -> str:
        """The partition's value(s), `/`-joined (the Dagster key of a time partition)."""
        return "/".join("" if v is None else v for _, v in self.values)


def written_partitions(
    spark: SparkSession, location: str, partition_columns: list[str]
) -> list[WrittenPartition]:
    """The partition folders Spark wrote under `location` (nested `col=value` folders)."""
    found: list[WrittenPartition] = []

    def walk(path: str, values: tuple[tuple[str, str | None], ...], depth: int) -> None:
        for entry in S.list_dir(spark, path):
            name = entry.name
            if not entry.is_dir or "=" not in name:
                continue
            escaped, raw = name.split("=", 1)
            column = unquote(escaped)  # Hive escapes quotes, `=`, `/` ... in column names too
            if column != partition_columns[depth]:
                continue
            value = None if raw == HIVE_NULL else unquote(raw)
            if depth + 1 == len(partition_columns):
                found.append(WrittenPartition(values + ((column, value),), entry.path))
            else:
                walk(entry.path, values + ((column, value),), depth + 1)

    walk(location, (), 0)
    return sorted(found, key=lambda p: p.key)


class SchemaChangeError(ValueError):
    """New rows retype or lack a column of the table they are added to; names the columns."""


def require_same_columns(
    qualified: str, current: T.StructType, new: T.StructType, why: str
) -> list[T.StructField]:
    """Refuse new rows that retype or lack a column of the table; return the added columns.

    Used by every write that keeps some of the table's rows (`append`, `merge`,
    `delete_insert`, partition writes): the kept rows have the table's schema, so a changed
    type would be cast silently (an int column turned string holding "12" came back as
    `bigint`; "abc" failed with a bare `CAST_INVALID_INPUT`) and a missing column would leave
    the kept rows with values the new ones lack. Added columns are fine: the kept rows read
    them as null. Types are compared by their SQL names (`simpleString`), so nullability,
    which Hive columns do not carry, never counts as a change; column order does not either.

    Args:
        qualified: The table, for the message.
        current: The table's schema.
        new: The new rows' schema.
        why: Why this write must keep the schema, for the message (e.g. "write_mode merge
            keeps the table's other rows").

    Raises:
        SchemaChangeError: Naming every retyped (`k bigint → string`) and missing column, and
            the way out: a full refresh.
    """
    diff = compare_schemas({f.name: f.dataType.simpleString() for f in current},
                           {f.name: f.dataType.simpleString() for f in new})
    problems = []
    if diff.retyped:
        problems.append("retyped " + ", ".join(
            f"{identifier(n)} {a} → {b}" for n, (a, b) in diff.retyped.items()))
    if diff.removed:
        problems.append("missing " + ", ".join(
            f"{identifier(n)} ({t})" for n, t in diff.removed.items()))
    if problems:
        raise SchemaChangeError(
            f"{qualified}: the new rows change the table's schema ({'; '.join(problems)}) and "
            f"{why}: reload the whole table with a full refresh (run with tag "
            "etl_assets/full_refresh=true) to change its schema"
        )
    return [f for f in new if f.name in diff.added]


def ensure_partitioned_table(
    spark: SparkSession,
    qualified: str,
    schema: T.StructType,
    partition_columns: list[str],
    loads_root: str,
) -> None:
    """Create the partitioned table (no partitions yet) or add columns it lacks.

    Raises:
        SchemaChangeError: The new data changes the type of a column or drops one: partitions
            of one table must share a schema; reload the whole table to change it.
    """
    if not spark.catalog.tableExists(qualified):
        create_external(spark, qualified, schema, partition_columns, loads_root, recover=False)
        return
    added = require_same_columns(qualified, spark.table(qualified).schema, schema,
                                 "partitions of one table share a schema")
    if added:
        spark.sql(f"ALTER TABLE {table_name(qualified)} ADD COLUMNS ({_ddl(T.StructType(added))})")


def replace_partitions(
    spark: SparkSession,
    qualified: str,
    partitions: list[WrittenPartition],
    drop: list[str],
    loads_root: str,
) -> list[str]:
    """Point each written partition at its new folder; drop the partitions listed in `drop`.

    One metastore call per partition: a reader sees each partition either old or new.
    Returns the partition folders of ours that are no longer used.
    """
    existing = S.partition_locations(spark, qualified)
    old: list[str] = []
    added = []
    for partition in partitions:
        if partition.spec in existing:
            location = existing[partition.spec]
            spark.sql(f"ALTER TABLE {table_name(qualified)} PARTITION ({partition.spec}) "
                      f"SET LOCATION {string_literal(partition.path)}")
            if location.startswith(loads_root) and location != partition.path:
                old.append(location)
        else:
            added.append(
                f"PARTITION ({partition.spec}) LOCATION {string_literal(partition.path)}")
    if added:  # new partitions in one metastore call: a backfill appears at once
        spark.sql(f"ALTER TABLE {table_name(qualified)} ADD " + " ".join(added))
    for spec in drop:
        if spec in existing:
            location = existing[spec]
            spark.sql(f"ALTER TABLE {table_name(qualified)} DROP IF EXISTS PARTITION ({spec})")
            if location.startswith(loads_root):
                old.append(location)
    spark.catalog.refreshTable(qualified)
    return old


def append_files(
    spark: SparkSession,
    qualified: str,
    schema: T.StructType,
    partition_columns: list[str],
    location: str,
    loads_root: str,
) -> list[str]:
    """Add the files written under `location` to the table (created if missing).

    Unpartitioned: each data file is renamed into the table's folder. Partitioned: new
    partitions are added on their new folders; files of existing partitions are renamed into
    those partitions' folders.

    Returns:
        The existing partition folders that received files (their row counts changed).
    """
    grown: list[str] = []
    if not spark.catalog.tableExists(qualified):
        create_external(spark, qualified, schema, partition_columns, location)
        return grown
    if partition_columns:
        ensure_partitioned_table(spark, qualified, schema, partition_columns, loads_root)
        existing = S.partition_locations(spark, qualified, partition_columns)
        for partition in written_partitions(spark, location, partition_columns):
            target = existing.get(partition.spec)
            if target is not None:
                S.move_files(spark, partition.path, target)
                grown.append(target)
            else:
                spark.sql(f"ALTER TABLE {table_name(qualified)} ADD PARTITION ({partition.spec}) "
                          f"LOCATION {string_literal(partition.path)}")
    else:
        meta = S.table_meta(spark, qualified)
        added = require_same_columns(qualified, meta.schema, schema,
                                     "appended rows join the table's rows")
        if added:  # older files lack them: Parquet reads them as null
            spark.sql(f"ALTER TABLE {table_name(qualified)} ADD COLUMNS "
                      f"({_ddl(T.StructType(added))})")
        S.move_files(spark, location, meta.location)
    spark.catalog.refreshTable(qualified)
    return grown


class LogWriteError(RuntimeError):
    """Rows could not be appended to a log table; the message names the table."""


def append_records(spark: SparkSession, qualified: str, schema: T.StructType,
                   rows: Sequence[Sequence[Any]], partition_column: str) -> None:
    """Append a few rows (log rows) to an existing table partitioned by one column.

    Raises:
        LogWriteError: The append failed (the table changed shape, its folder is not
            writable ...), naming the table and the number of rows, with Spark's error.
    """
    try:
        _append_records(spark, qualified, schema, rows, partition_column)
    except Exception as err:  # noqa: BLE001 - Spark's errors rarely name the table
        raise LogWriteError(f"appending {len(rows)} rows to {qualified} failed: {err}") from err


def _append_records(spark: SparkSession, qualified: str, schema: T.StructType,
                    rows: Sequence[Sequence[Any]], partition_column: str) -> None:
    """Append a few rows (log rows) to an existing table partitioned by one column.

    No Spark job: each partition's rows become one Parquet file written by pyarrow on the
    driver, copied through Hadoop's FileSystem (so HDFS or S3 warehouses work too) into the
    table's `_appends/` folder, then renamed into the partition folder under a unique name (one
    atomic rename, so readers see the whole file or none) and the partition registered when
    new. Safe beside other writers, unlike `insertInto`, whose jobs share one `_temporary`
    folder under the table: two runs logging at once made one job's commit delete the other's
    files. A Spark job per log append also cost about 0.5 s; this costs milliseconds.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyspark.sql.pandas.types import to_arrow_schema

    index = schema.fieldNames().index(partition_column)
    data_schema = T.StructType([f for f in schema if f.name != partition_column])
    arrow_schema = to_arrow_schema(data_schema, timezone="UTC")
    by_partition: dict[Any, list[Sequence[Any]]] = {}
    for row in rows:
        by_partition.setdefault(row[index], []).append(row)
    location = _cached_folder(spark, qualified, None).rstrip("/")
    added: list[tuple[str, str]] = []  # (spec, folder) of the partitions this append adds
    with tempfile.TemporaryDirectory(prefix="etl_assets_append_") as local:
        for value, part_rows in by_partition.items():
            columns = {
                field.name: [r[position] for r in part_rows]
                for position, field in enumerate(schema) if field.name != partition_column
            }
            local_file = os.path.join(local, f"part-{uuid.uuid4().hex}.parquet")
            pq.write_table(pa.table(columns, schema=arrow_schema), local_file)
            staged = f"{location}/_appends/{uuid.uuid4().hex}"
            S.copy_from_local(spark, local_file, f"{staged}/{os.path.basename(local_file)}")
            known = _cached_folder(spark, qualified, (partition_column, str(value)))
            folder = known or f"{location}/{partition_column}={value}"
            S.move_files(spark, staged, folder)
            S.delete_path(spark, staged)
            if not known:
                added.append((partition_spec([(partition_column, str(value))]), folder))
    if added:
        _add_partitions(spark, qualified, added)
    spark.catalog.refreshTable(qualified)


def _add_partitions(spark: SparkSession, qualified: str, added: list[tuple[str, str]]) -> None:
    """Register new partitions, given as (spec, folder), in one metastore call.

    One `ALTER TABLE ... ADD PARTITION` per partition cost a statement and a metastore round
    trip each, so an append spanning many days (a seeded or imported log) paid once per day.
    """
    clauses = " ".join(f"PARTITION ({spec}) LOCATION {string_literal(folder)}"
                       for spec, folder in added)
    try:
        spark.sql(f"ALTER TABLE {table_name(qualified)} ADD IF NOT EXISTS {clauses}")
    except AnalysisException:
        # Another writer may have added one of them meanwhile, and the batch is all or nothing:
        # add the missing ones one by one; a partition still missing after that is an error.
        for spec, folder in added:
            if _has_partition(spark, qualified, spec):
                continue
            try:
                spark.sql(f"ALTER TABLE {table_name(qualified)} ADD IF NOT EXISTS "
                          f"PARTITION ({spec}) "
                          f"LOCATION {string_literal(folder)}")
            except AnalysisException:
                if not _has_partition(spark, qualified, spec):
                    raise  # not the race with another writer adding the same partition


# (session, table, partition) -> folder, for tables that only ever gain partitions (the log
# tables): an append asks the metastore once per session, not on every load.
_FOLDERS: dict[tuple[int, str, tuple[str, str] | None], str] = {}


def _cached_folder(spark: SparkSession, qualified: str,
                   partition: tuple[str, str] | None) -> str | None:
    """The folder of a table (`partition` None) or of one partition (None if it is new)."""
    key = (id(spark), qualified, partition)
    if key not in _FOLDERS:
        if partition is None:
            _FOLDERS[key] = S.table_meta(spark, qualified).location
        else:
            found = S.partition_folder(spark, qualified, {partition[0]: partition[1]})
            if found is None:
                return None  # not cached: the append adds it, another writer may too
            _FOLDERS[key] = found
    return _FOLDERS[key]


def _has_partition(spark: SparkSession, qualified: str, spec: str) -> bool:
    return bool(spark.sql(f"SHOW PARTITIONS {table_name(qualified)} PARTITION ({spec})").take(1))


def delete_unused(spark: SparkSession, folders: list[str], loads_root: str) -> None:
    """Delete folders a table no longer points at, and load folders left with no data.

    Only folders inside one of our load folders (`<loads_root>/load_*`) are ever deleted.
    """
    parents = set()
    for folder in folders:
        if not folder.startswith(loads_root.rstrip("/") + "/load_"):
            logger.warning("not deleting %s: outside %s/load_*", folder, loads_root)
            continue
        S.delete_path(spark, folder)
        parents.add(folder.rstrip("/").rsplit("/", 1)[0])
    for parent in parents:
        if "load_" not in parent.rsplit("/", 1)[-1] or not S.exists(spark, parent):
            continue
        children = [entry.name for entry in S.list_dir(spark, parent)]
        if all(c.startswith(("_", ".")) for c in children):
            S.delete_path(spark, parent)
