"""Stage 8 of a load, publish: make the staged folder the table (or its partitions) in one
metastore call, then delete the folders it replaced.

Until this stage readers see the previous load; a failure before it leaves the table as it
was (the staged folder is discarded), a failure in the switch itself leaves either the old or
the new folder in place (one metastore call), never a mix.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from pyspark.sql import SparkSession

from etl_assets.core import metric_names as M
from etl_assets.core.held import MANIFEST
from etl_assets.core.load_request import LoadRequest
from etl_assets.engine import storage as S
from etl_assets.engine import table_rows as TR
from etl_assets.engine import writes as W
from etl_assets.engine.staging import Measured, Target

logger = logging.getLogger(__name__)

# A load folder this old that nothing uses is an orphan. Younger ones may be another load of
# the same table still writing (pools allow one writer per table, but a run outside them, or
# with pools turned off, can overlap): no load takes a day between its write and its publish.
ORPHAN_AGE = timedelta(days=1)
_STAMP = "%Y%m%dT%H%M%S"  # `load_<stamp>_<run>_<random>` (`staging.plan_target`)


def publish(
    spark: SparkSession,
    target: Target,
    request: LoadRequest,
    measured: Measured,
    hold: frozenset[str] = frozenset(),
) -> int | None:
    """Switch the table to the staged load, per its write mode, and clean up after it.

    Returns the rows the table holds now (`table_rows`), or None when they could not be
    counted (logged; a published load never fails for it).

    `hold`: partitions of a partitioned load that are held back (`etl_assets.engine.held`):
    they are neither switched nor emptied, and their staged folders stay.

    `append` adds the folder's files to the table; a time-partitioned table (or
    `insert_overwrite`) replaces the written partitions and empties the run's partitions that
    received no rows (a rerun replaces them); every other mode points the table at the new
    folder. The folders no longer used are deleted afterwards, and `cache: true` caches the
    new table.
    """
    table = target.table
    before = _fingerprint_before_append(spark, target)
    old, grown = _switch(spark, target, request, measured, hold)
    W.delete_unused(spark, old, target.loads_root)
    try:
        rows: int | None = _table_rows(spark, target, measured, hold, grown, before)
    except Exception as err:  # noqa: BLE001 - counting must never fail a published load
        logger.warning("%s: could not count the table's rows: %s", table.qualified_name, err)
        rows = None
    try:
        remove_orphans(spark, target)
    except Exception as err:  # noqa: BLE001 - tidying up must never fail a published load
        logger.warning("%s: could not look for orphaned load folders: %s",
                       table.qualified_name, err)
    if table.spec.cache:
        spark.catalog.cacheTable(table.qualified_name)
    return rows


def _fingerprint_before_append(spark: SparkSession, target: Target) -> str | None:
    """The folder fingerprint an unpartitioned table has before files are appended to it
    (`table_rows.appended_rows`); None for other loads, a new table, or when unreadable."""
    qualified = target.table.qualified_name
    if target.mode != "append" or target.table.spec.hive_partition_columns:
        return None
    try:
        if not spark.catalog.tableExists(qualified):
            return None
        return S.folder_fingerprint(spark, S.table_meta(spark, qualified).location)
    except Exception as err:  # noqa: BLE001 - the count is then taken from the footers
        logger.warning("%s: could not summarize the table's folder: %s", qualified, err)
        return None


def _table_rows(spark: SparkSession, target: Target, measured: Measured,
                hold: frozenset[str], grown: list[str], before: str | None) -> int:
    """The table's rows after the switch (`etl_assets.engine.table_rows`)."""
    qualified = target.table.qualified_name
    if target.table.spec.hive_partition_columns:
        counted = {} if target.mode == "append" else {
            p.path: int(measured.per_partition[p.key][M.ROW_COUNT])
            for p in measured.written if p.key not in hold}
        return TR.partitioned_rows(spark, qualified, counted, recount=grown)
    if target.mode == "append":
        return TR.appended_rows(spark, qualified, before, int(measured.metrics[M.ROW_COUNT]))
    return int(measured.metrics[M.ROW_COUNT])  # the load wrote the whole table


def _switch(
    spark: SparkSession, target: Target, request: LoadRequest, measured: Measured,
    hold: frozenset[str],
) -> tuple[list[str], list[str]]:
    """Make the written folder the table's new contents; returns our folders now unused, and
    the table's folders that received files in place (an append)."""
    table, schema = target.table, measured.schema
    written = [p for p in measured.written if p.key not in hold]
    qualified = table.qualified_name
    columns = table.spec.hive_partition_columns
    if target.mode == "append":
        return [], W.append_files(spark, qualified, schema, columns, target.location,
                                  target.loads_root)
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
        return W.replace_partitions(spark, qualified, written, drop, target.loads_root), []
    return W.replace_table(spark, qualified, schema, columns, target.location,
                           target.loads_root), []


def remove_orphans(spark: SparkSession, target: Target, now: datetime | None = None) -> list[str]:
    """Delete the table's load folders that nothing uses; returns them.

    A load whose process died between its write and its publish (killed, out of memory, the
    machine restarted) leaves its staged folder behind, and no `discard` ever reaches it. A
    folder of `<loads_root>/load_*` is such an orphan when all of these hold:

    - its name's time stamp is older than `ORPHAN_AGE` (so it is no running load's);
    - it is not `target`'s own folder and holds no held-load manifest (a held load waits
      for `etl-assets publish` or `discard`, and expires on its own schedule);
    - neither the table nor any of its partitions points into it.

    Costs one listing of the loads folder per load; the table's partitions are listed (one
    metastore call) only when a folder passes the first two tests, which is rare.
    """
    now = now or datetime.now(timezone.utc)
    root = target.loads_root.rstrip("/")
    if not S.exists(spark, root):
        return []
    candidates = []
    for entry in S.list_dir(spark, root):
        if not entry.is_dir or not entry.name.startswith("load_"):
            continue
        try:
            stamp = datetime.strptime(entry.name[5:20], _STAMP).replace(tzinfo=timezone.utc)
        except ValueError:
            continue  # not a folder this project named: never touched
        folder = f"{root}/{entry.name}"
        if (now - stamp < ORPHAN_AGE or folder == target.location.rstrip("/")
                or S.exists(spark, f"{folder}/{MANIFEST}")):
            continue
        candidates.append(folder)
    if not candidates:
        return []
    qualified = target.table.qualified_name
    in_use: list[str] = []
    if spark.catalog.tableExists(qualified):
        in_use = W.our_locations(spark, qualified, S.table_meta(spark, qualified),
                                 target.loads_root)
    orphans = [f for f in candidates
               if not any(u.rstrip("/") == f or u.startswith(f + "/") for u in in_use)]
    for folder in orphans:
        logger.warning("%s: deleting the orphaned load folder %s (no table or partition uses "
                       "it; left by a load that did not finish)", qualified, folder)
        S.delete_path(spark, folder)
    return orphans
