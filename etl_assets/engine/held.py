"""Held loads on storage: hold a staged load back (its manifest written beside its files),
list, publish, discard and expire held loads.

A held folder is never referenced by the table, so readers keep the previous load. Publishing
re-checks that the table (or the held partitions) still points where it did when the load was
held, and refuses otherwise: publishing over a newer load would lose it.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

from pyspark.sql import SparkSession
from pyspark.sql import types as T

from etl_assets.core.held import MANIFEST, HeldLoad
from etl_assets.core.load_request import LoadRequest
from etl_assets.core.specs import Table
from etl_assets.engine import storage as S
from etl_assets.engine import writes as W
from etl_assets.engine.publish import publish
from etl_assets.engine.staging import Measured, Target, loads_root

logger = logging.getLogger(__name__)


class HeldLoadError(RuntimeError):
    """A held load that cannot be published or discarded, with the reason."""


def hold(
    spark: SparkSession,
    target: Target,
    request: LoadRequest,
    measured: Measured,
    reasons: list[str],
    partitions: frozenset[str] = frozenset(),
    rows_in: int | None = None,
    duration_s: float = 0.0,
) -> HeldLoad:
    """Hold the staged load back (all of it, or the given partitions): write its manifest and
    record what readers see now. Nothing of the table changes."""
    table = target.table
    keys = None
    if table.spec.partitions:
        keys = sorted(partitions) if partitions else list(request.partition_keys)
    base = _current(spark, table, keys)
    held = HeldLoad(
        table=table.name, qualified_name=table.qualified_name, run_id=request.run_id,
        location=target.location, loads_root=target.loads_root, mode=target.mode,
        partition_keys=tuple(request.partition_keys), held_partitions=tuple(sorted(partitions)),
        window=request.window, watermark=request.watermark, full_refresh=request.full_refresh,
        run_date=request.run_date, schema_json=measured.schema.json(),
        metrics=dict(measured.metrics),
        per_partition={k: v for k, v in measured.per_partition.items()
                       if not partitions or k in partitions},
        rows_in=rows_in, bytes=S.path_bytes(spark, target.location), duration_s=duration_s,
        reasons=tuple(reasons), held_at=datetime.now(timezone.utc).isoformat(),
        base=base, code_version=table.code_version,
    )
    S.write_text(spark, held.manifest_path, held.to_json())
    return held


def _current(spark: SparkSession, table: Table, keys: list[str] | None) -> dict[str, str]:
    """What readers see now: the table's folder (key ""), or for a partitioned table each of
    `keys`' partition folders; "" for a table or partition that does not exist."""
    qualified = table.qualified_name
    exists = spark.catalog.tableExists(qualified)
    if keys is None:
        return {"": S.table_meta(spark, qualified).location if exists else ""}
    assert table.spec.partitions is not None
    column = table.spec.partitions.column
    return {key: (S.partition_folder(spark, qualified, {column: key}) or "") if exists else ""
            for key in keys}


def held_loads(spark: SparkSession, table: Table) -> list[HeldLoad]:
    """The table's held loads, oldest first (one folder listing, one read per held load)."""
    root = loads_root(spark, table)
    if not S.exists(spark, root):
        return []
    found = []
    for entry in S.list_dir(spark, root):
        manifest = f"{root}/{entry.name}/{MANIFEST}"
        if entry.name.startswith("load_") and S.exists(spark, manifest):
            found.append(HeldLoad.from_json(S.read_text(spark, manifest)))
    return sorted(found, key=lambda h: h.held_at)


def find_held(spark: SparkSession, table: Table, run_id: str) -> HeldLoad:
    """The held load of `run_id` (a unique prefix of it is enough).

    Raises:
        HeldLoadError: No such held load (the message lists the held ones).
    """
    loads = held_loads(spark, table)
    matches = [h for h in loads if h.run_id == run_id or h.run_id.startswith(run_id)]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(h.run_id for h in loads) or "none"
    if not matches:
        raise HeldLoadError(f"{table.name}: no held load of run {run_id!r} (held loads: {known})")
    raise HeldLoadError(f"{table.name}: run {run_id!r} matches {len(matches)} held loads: "
                        f"{known}")


def publish_held(spark: SparkSession, table: Table, held: HeldLoad) -> int | None:
    """Switch the table to a held load (its held partitions), as its load would have.

    Returns the rows the table holds then (None when they could not be counted).

    Raises:
        HeldLoadError: The table (or a held partition) was loaded again since the load was
            held: publishing would replace that newer load. Nothing is changed then.
    """
    now = _current(spark, table, sorted(held.base) if table.spec.partitions else None)
    changed = {k: v for k, v in now.items() if held.base.get(k, "") != v}
    if changed:
        where = ", ".join(f"partition {k}" if k else "the table" for k in sorted(changed))
        raise HeldLoadError(
            f"{table.name}: refusing to publish the held load of run {held.run_id}: {where} "
            f"was loaded again after it was held ({held.held_at}); publishing it would replace "
            f"the newer load. Discard it with `etl-assets discard {table.name} --run "
            f"{held.run_id}`, or load the table again.")
    columns = table.spec.hive_partition_columns
    written = W.written_partitions(spark, held.location, columns) if columns else []
    if held.held_partitions:
        written = [p for p in written if p.key in held.held_partitions]
    target = Target(table=table, mode=held.mode, location=held.location,
                    loads_root=held.loads_root, rejected_root="",
                    job_group=f"etl_assets:{table.name}:publish")
    measured = Measured(schema=T.StructType.fromJson(json.loads(held.schema_json)),
                        metrics=dict(held.metrics), written=written,
                        per_partition=dict(held.per_partition))
    request = LoadRequest(run_id=held.run_id,
                          partition_keys=held.held_partitions or held.partition_keys,
                          window=held.window, watermark=held.watermark,
                          full_refresh=held.full_refresh, run_date=held.run_date)
    rows = publish(spark, target, request, measured)
    S.delete_path(spark, held.manifest_path)
    return rows


def discard_held(spark: SparkSession, table: Table, held: HeldLoad) -> None:
    """Delete a held load's files (the held partitions' folders only, when part of the run was
    published) and its manifest."""
    if held.whole:
        S.delete_path(spark, held.location)
        return
    columns = table.spec.hive_partition_columns
    for part in W.written_partitions(spark, held.location, columns):
        if part.key in held.held_partitions:
            S.delete_path(spark, part.path)
    S.delete_path(spark, held.manifest_path)


def expire_held(spark: SparkSession, table: Table, retention_days: float,
                now: datetime | None = None) -> list[HeldLoad]:
    """Discard the table's held loads held longer than `retention_days`; returns them."""
    expired = [h for h in held_loads(spark, table) if h.expired(retention_days, now)]
    for held in expired:
        logger.warning("%s: discarding the held load of run %s (held since %s, retention %s "
                       "days)", table.name, held.run_id, held.held_at, retention_days)
        discard_held(spark, table, held)
    return expired
