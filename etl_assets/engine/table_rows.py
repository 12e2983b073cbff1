"""The rows a table holds after a load: Dagster's `dagster/row_count` is the table's, and a load
that writes part of a table (some partitions, appended files) measures only its own rows.

The rows of each partition are kept with the partition in the metastore: two parameters,
the count (`ROWS_PARAMETER`) and the folder it counts (`FOLDER_PARAMETER`). A partition this
load wrote is counted from its footers already (`staging.measure`); every other one is
trusted only while it still points at the folder its count was taken from, so a partition
re-pointed, added or recovered by anyone else is counted again from its own footers (and
stored, so only once). The total then costs one metastore listing per load, however many
partitions the table has, plus one metastore call to store the new counts. No data is read.

An unpartitioned table rewritten by its load holds exactly the load's rows. An appended one
keeps its count in two table properties, the count and the folder's fingerprint
(`<files>:<bytes>`, `storage.folder_fingerprint`) it was taken at: when the folder still
has that fingerprint just before the append, the new count is the kept one plus the rows
appended, at the cost of two folder summaries (no file opened); otherwise (the first
append, or files someone else added, removed or rewrote) the folder is counted from its
footers, one per file, and the count kept from then on.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from pyspark.sql import SparkSession

from etl_assets.engine import storage as S

ROWS_PARAMETER = "etl_assets.row_count"
FOLDER_PARAMETER = "etl_assets.row_count_folder"
FINGERPRINT_PROPERTY = "etl_assets.row_count_fingerprint"  # an appended table's; see above


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
            rows = folder_rows(spark, folder)
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


def appended_rows(spark: SparkSession, qualified: str, before: str | None,
                  rows_written: int) -> int:
    """An unpartitioned table's rows after an append of `rows_written` rows.

    `before`: the table folder's fingerprint just before the files were added (None when
    the table did not exist). The kept count is used only if it was taken at that
    fingerprint; the new count and fingerprint are kept for the next append.
    """
    meta = S.table_meta(spark, qualified)
    kept = meta.properties.get(ROWS_PARAMETER, "")
    if before is not None and kept.isdigit() and meta.properties.get(
            FINGERPRINT_PROPERTY) == before:
        rows = int(kept) + rows_written
    else:
        rows = folder_rows(spark, meta.location)
    S.set_table_properties(spark, qualified, {
        ROWS_PARAMETER: str(rows),
        FINGERPRINT_PROPERTY: S.folder_fingerprint(spark, meta.location)})
    return rows


def folder_rows(spark: SparkSession, location: str) -> int:
    """Rows in the Parquet files under a folder, from their footers."""
    return S.read_footers(spark, location, []).rows
