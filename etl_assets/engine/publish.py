"""Stage 8 of a load, publish: make the staged folder the table (or its partitions) in one
metastore call, then delete the folders it replaced.

Until this stage readers see the previous load; a failure before it leaves the table as it
was (the staged folder is discarded), a failure in the switch itself leaves either the old or
the new folder in place (one metastore call), never a mix.
"""

from __future__ import annotations

from pyspark.sql import SparkSession

from etl_assets.core.load_request import LoadRequest
from etl_assets.engine import writes as W
from etl_assets.engine.staging import Measured, Target


def publish(
    spark: SparkSession,
    target: Target,
    request: LoadRequest,
    measured: Measured,
    hold: frozenset[str] = frozenset(),
) -> None:
    """Switch the table to the staged load, per its write mode, and clean up after it.

    `hold`: partitions of a partitioned load that are held back (`etl_assets.engine.held`):
    they are neither switched nor emptied, and their staged folders stay.

    `append` adds the folder's files to the table; a time-partitioned table (or
    `insert_overwrite`) replaces the written partitions and empties the run's partitions that
    received no rows (a rerun replaces them); every other mode points the table at the new
    folder. The folders no longer used are deleted afterwards, and `cache: true` caches the
    new table.
    """
    table = target.table
    old = _switch(spark, target, request, measured, hold)
    W.delete_unused(spark, old, target.loads_root)
    if table.spec.cache:
        spark.catalog.cacheTable(table.qualified_name)


def _switch(
    spark: SparkSession, target: Target, request: LoadRequest, measured: Measured,
    hold: frozenset[str],
) -> list[str]:
    """Make the written folder the table's new contents; returns our folders now unused."""
    table, schema = target.table, measured.schema
    written = [p for p in measured.written if p.key not in hold]
    qualified = table.qualified_name
    columns = table.spec.hive_partition_columns
    if target.mode == "append":
        W.append_files(spark, qualified, schema, columns, target.location, target.loads_root)
        return []
    if table.spec.partitions or target.mode == "insert_overwrite":
        W.ensure_partitioned_table(spark, qualified, schema, columns, target.loads_root)
        drop = []
        if table.spec.partitions:
            # Partitions of the run that received no rows are emptied: a rerun replaces them.
            written_keys = {p.key for p in written}
            column = table.spec.partitions.column
            drop = [W.WrittenPartition(((column, key),), "").spec
                    for key in request.partition_keys
                    if key not in written_keys and key not in hold]
        return W.replace_partitions(spark, qualified, written, drop, target.loads_root)
    return W.replace_table(spark, qualified, schema, columns, target.location, target.loads_root)
