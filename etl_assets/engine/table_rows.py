"""The rows a table holds after a load: Dagster's `dagster/row_count` is the table's, and a load
that writes part of a table (some partitions, appended files) measures only its own rows.

The rows of each partition are kept with the partition in the metastore: two parameters,
the count (`ROWS_PARAMETER`) and the folder it counts (`FOLDER_PARAMETER`). A partition this
load wrote is counted from its footers already (`staging.measure`); every other one is
trusted only while it still points at the folder its count was taken from, so a partition
re-pointed, added or recovered by anyone else is counted again from its own footers (and
stored, so only once). The total then costs one metastore listing per load, however many
partitions the table has, plus one metastore call to store the new counts. No data is read.

An unpartitioned table rewritten by its load holds exactly the load's rows; an appended one
is counted from the footers of its folder (one footer per file: the cost grows with the
files appended over time, not with rows).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from pyspark.sql import SparkSession

from etl_assets.engine import storage as S

ROWS_PARAMETER = "etl_assets.row_count"
FOLDER_PARAMETER = "etl_assets.row_count_folder"


def partitioned_rows(
    spark: SparkSession,
    qualified: str,
    counted: Mapping[str, int],
    recount: Collection[str] = (),
) -> int:
    """The partitioned table's rows, from the counts kept with its partitions.

    Args:
        qualified: The table (`db.name`).
        counted: Folder -> rows of partitions just pointed at a folder this load wrote (from
            its footers). Folders are matched as the metastore spells them; one spelt
            differently is counted again from its footers, which is slower, never wrong.
        recount: Folders whose files changed in place (an append renames files into them):
            their stored count is stale, so they are counted from their footers.

    Returns:
        The sum over every partition the table has now; 0 for a table without partitions.
    """
    total = 0
    updates = []
    for record in S.partition_records(spark, qualified):
        folder = record.location
        rows = counted.get(folder, counted.get(folder.rstrip("/")))
        if rows is None and folder not in recount:
            rows = _stored(record)
        if rows is None:
            rows = S.read_footers(spark, folder, []).rows
        stored = {ROWS_PARAMETER: str(rows), FOLDER_PARAMETER: folder}
        if any(record.parameters.get(k) != v for k, v in stored.items()):
            updates.append((record, stored))
        total += rows
    S.set_partition_parameters(spark, qualified, updates)
    return total


def _stored(record: S.PartitionRecord) -> int | None:
    """The partition's kept count, if it was taken from the folder the partition has now."""
    if record.parameters.get(FOLDER_PARAMETER) != record.location:
        return None
    raw = record.parameters.get(ROWS_PARAMETER, "")
    return int(raw) if raw.isdigit() else None


def folder_rows(spark: SparkSession, location: str) -> int:
    """Rows in the Parquet files under a folder, from their footers."""
    return S.read_footers(spark, location, []).rows
