"""Publish or discard a held load later: the `etl_publish` and `etl_discard` jobs.

A person runs them from the launchpad (typed config) or with `etl-assets publish|discard
<table> --run <id>`. Publishing switches the table to the held folder (refused when the table
was loaded again since), records a materialization of the asset with the held load's metadata
(so the checks' history and the UI see it as a load), a `SUCCESS` row in `run_log` under the
run that staged it and a `check_feedback` row saying who published it. Discarding deletes the
held folder and logs who did.
"""

# No `from __future__ import annotations`: Dagster reads the op's config annotation.
import getpass
import json
from collections.abc import Iterator
from datetime import datetime, timezone

import dagster as dg
from dagster_pyspark import LazyPySparkResource
from pydantic import Field
from pyspark.sql import types as T

from etl_assets.core import metric_names as M
from etl_assets.core.held import HeldLoad
from etl_assets.core.records import FeedbackRecord
from etl_assets.core.specs import Project, Table
from etl_assets.engine.held import HeldLoadError, discard_held, find_held, publish_held
from etl_assets.engine.hive_log import HiveLog
from etl_assets.engine.load_log import Attempt, discarded_rows, published_rows
from etl_assets.orchestration import metadata as MD
from etl_assets.orchestration.assets import load_metadata
from etl_assets.orchestration.resources import EtlLogResource

PUBLISH_JOB = "etl_publish"
DISCARD_JOB = "etl_discard"
CODE_VERSION_TAG = "dagster/code_version"
"""The tag Dagster puts on an asset step's materializations; a published held load keeps its."""
PUBLISHED_BY = "etl/published_by"
HELD_AT = "etl/held_at"


class HeldLoadConfig(dg.Config):
    """Which held load (the launchpad shows these fields)."""

    table: str = Field(description="The table (asset name), e.g. clean_orders.")
    run_id: str = Field(description="The run whose load was held back (a unique prefix will do).")
    note: str = Field(default="", description="Why, kept in etl_log.check_feedback.")
    by: str = Field(default="", description="Who decides (default: the user running the job).")


def _table(project: Project, name: str) -> Table:
    if name not in project.tables:
        raise dg.Failure(description=f"unknown table {name!r}; tables: "
                         f"{', '.join(sorted(project.tables))}", allow_retries=False)
    return project.tables[name]


def _feedback(context: dg.OpExecutionContext, held: HeldLoad, action: str,
              config: HeldLoadConfig, by: str, now: datetime) -> list[FeedbackRecord]:
    keys = list(held.held_partitions) or [None]
    return [FeedbackRecord(run_id=context.run.run_id, asset=held.table, partition_key=key,
                           action=action, target_run_id=held.run_id, note=config.note, by=by,
                           recorded_at=now) for key in keys]


def materializations(table: Table, held: HeldLoad, by: str,
                     table_rows: int | None = None) -> list[dg.AssetMaterialization]:
    """The published held load as materializations: one, or one per partition published.

    `table_rows`: the table's rows once published (`dagster/row_count`, `with_table_rows`).
    """
    schema = T.StructType.fromJson(json.loads(held.schema_json))
    whole = load_metadata(table, held.location, schema, held.bytes, held.duration_s,
                          held.rows_in, held.metrics)
    marks = {PUBLISHED_BY: dg.MetadataValue.text(by), HELD_AT: dg.MetadataValue.text(held.held_at)}
    keys = list(held.held_partitions or held.partition_keys)
    tags = {CODE_VERSION_TAG: held.code_version}  # the load's code, as an asset step tags it
    if len(keys) <= 1:
        whole = MD.with_table_rows(whole, table_rows, partition=bool(keys),
                                   partial=MD.writes_part(held.mode))
        return [dg.AssetMaterialization(asset_key=dg.AssetKey(table.name),
                                        partition=keys[0] if keys else None,
                                        metadata={**whole, **marks}, tags=tags)]
    shared = {k: v for k, v in whole.items() if k in (M.TABLE_NAME, M.URI, M.COLUMN_SCHEMA)}
    return [dg.AssetMaterialization(
        asset_key=dg.AssetKey(table.name), partition=key,
        metadata={**shared, **MD.with_table_rows(
            MD.metric_metadata(held.per_partition.get(key, {M.ROW_COUNT: 0}), schema),
            table_rows, partition=True), **marks}, tags=tags)
        for key in keys]


def build_held_load_jobs(project: Project) -> list[dg.JobDefinition]:
    """`etl_publish` and `etl_discard` for the project's tables."""

    @dg.op(name="publish_held_load", out={},
           description="Switch a table to a load its audit held back.")
    def publish_op(
        context: dg.OpExecutionContext,
        config: HeldLoadConfig,
        spark: LazyPySparkResource,
        etl_log: EtlLogResource,
    ) -> Iterator[dg.AssetMaterialization]:
        table = _table(project, config.table)
        session = spark.spark_session
        try:
            held = find_held(session, table, config.run_id)
            table_rows = publish_held(session, table, held)
        except HeldLoadError as err:
            raise dg.Failure(description=str(err), allow_retries=False) from None
        by = config.by or getpass.getuser()
        now = datetime.now(timezone.utc)
        attempt = Attempt(run_id=held.run_id, table=table, started_at=now)
        HiveLog(session, etl_log.database).write_loads(
            published_rows(attempt, held, now, by, config.note))
        etl_log.write_feedback(session, _feedback(context, held, "publish", config, by, now))
        context.log.info(f"{table.name}: published the held load of run {held.run_id} "
                         f"(held at {held.held_at}) by {by}")
        yield from materializations(table, held, by, table_rows)

    @dg.op(name="discard_held_load", out={}, description="Delete a load its audit held back.")
    def discard_op(
        context: dg.OpExecutionContext,
        config: HeldLoadConfig,
        spark: LazyPySparkResource,
        etl_log: EtlLogResource,
    ):  # noqa: ANN202 - Dagster reads `-> None` with out={} as a tuple of outputs
        table = _table(project, config.table)
        session = spark.spark_session
        try:
            held = find_held(session, table, config.run_id)
        except HeldLoadError as err:
            raise dg.Failure(description=str(err), allow_retries=False) from None
        discard_held(session, table, held)
        by = config.by or getpass.getuser()
        now = datetime.now(timezone.utc)
        HiveLog(session, etl_log.database).write_loads(
            discarded_rows(Attempt(held.run_id, table, now), held, now, by, config.note))
        etl_log.write_feedback(session, _feedback(context, held, "discard", config, by, now))
        context.log.info(f"{table.name}: discarded the held load of run {held.run_id} by {by}")

    @dg.job(name=PUBLISH_JOB, description=(
        "Publish a load that its blocking checks held back (same as `etl-assets publish`)."))
    def publish_job() -> None:
        publish_op()

    @dg.job(name=DISCARD_JOB, description=(
        "Discard a load that its blocking checks held back (same as `etl-assets discard`)."))
    def discard_job() -> None:
        discard_op()

    return [publish_job, discard_job]
