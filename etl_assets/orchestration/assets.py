"""Each Hive table of the specs as a Dagster asset: the engine's load, reported the Dagster way
(materialization metadata, check results, partitions, retries, freshness, pools).
"""

# No `from __future__ import annotations`: Dagster reads the annotations of asset functions
# (context, config, resources) at definition time and cannot resolve them from strings.
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import dagster as dg
from dagster_pyspark import LazyPySparkResource
from pyspark.sql import SparkSession

from etl_assets.core import metric_names as M
from etl_assets.core.load_request import LoadRequest
from etl_assets.core.outcomes import CheckedLoad
from etl_assets.core.specs import Project, Source, Table, parse_duration
from etl_assets.engine.hive_log import HiveLog
from etl_assets.engine.load import LoadResult, load_table
from etl_assets.engine.load_log import Attempt, failure_rows, success_rows
from etl_assets.orchestration import metadata as MD
from etl_assets.orchestration import quality_checks as QC
from etl_assets.orchestration.resources import EtlLogResource


def result_metadata(table: Table, result: LoadResult) -> dict[str, Any]:
    """`MaterializeResult` metadata: Dagster's standard keys plus the metrics.

    Every metric has its own key, except on a table wider than `metrics.WIDE_TABLE_COLUMNS`,
    whose per-column metrics share one table-valued entry (`metrics.metric_metadata`).
    """
    metadata: dict[str, Any] = {
        M.TABLE_NAME: dg.MetadataValue.text(result.table_name),
        M.URI: dg.MetadataValue.path(result.location),
        M.COLUMN_SCHEMA: MD.column_schema(result.schema),
        M.BYTES: dg.MetadataValue.int(result.bytes),
        M.DURATION_S: dg.MetadataValue.float(round(result.duration_s, 3)),
        M.CODE_VERSION: dg.MetadataValue.text(table.code_version),
    }
    if result.rows_in is not None:
        metadata[M.ROWS_IN] = dg.MetadataValue.int(result.rows_in)
    metadata.update(MD.metric_metadata(result.metrics, result.schema))  # bounded when wide
    return metadata


FULL_REFRESH_TAG = "etl_assets/full_refresh"


def partitions_definition(table: Table) -> dg.TimeWindowPartitionsDefinition | None:
    """The Dagster partitions of a time-partitioned table."""
    spec = table.spec.partitions
    if spec is None:
        return None
    kind = dg.DailyPartitionsDefinition if spec.type == "daily" else dg.MonthlyPartitionsDefinition
    return kind(start_date=spec.start.isoformat(), end_offset=spec.end_offset,
                timezone=spec.timezone)


def retry_policy(table: Table) -> dg.RetryPolicy | None:
    """Dagster's `RetryPolicy` from the spec's `retries`."""
    retries = table.spec.retries
    if retries is None or retries.max == 0:
        return None
    backoff = {"linear": dg.Backoff.LINEAR, "exponential": dg.Backoff.EXPONENTIAL}
    return dg.RetryPolicy(
        max_retries=retries.max,
        delay=retries.delay_s or None,
        backoff=backoff.get(retries.backoff or ""),
        jitter=dg.Jitter.PLUS_MINUS if retries.jitter else None,
    )


def freshness_policy(table: Table) -> dg.FreshnessPolicy | None:
    """Dagster's freshness policy from the spec: the UI shows when the table is stale."""
    freshness = table.spec.freshness
    if freshness is None:
        return None
    warn = parse_duration(freshness.warn_after) if freshness.warn_after else None
    return dg.FreshnessPolicy.time_window(fail_window=parse_duration(freshness.max_age),
                                          warn_window=warn)


def _deps(project: Project, table: Table) -> list[dg.AssetDep]:
    deps = []
    windows = table.spec.partitions.input_windows if table.spec.partitions else {}
    for name in table.spec.inputs:
        upstream = project.tables.get(name)
        if name in windows and upstream is not None and upstream.spec.partitions:
            mapping = dg.TimeWindowPartitionMapping(start_offset=-(windows[name] - 1))
            deps.append(dg.AssetDep(name, partition_mapping=mapping))
        else:
            deps.append(dg.AssetDep(name))
    # A relationship or sql rule reads another table after the load: it runs after that table.
    for name in table.rule_reads:
        if name in project.tables and name not in table.spec.inputs:
            deps.append(dg.AssetDep(name))
    return deps


def table_pool(table: Table) -> str:
    """The Dagster concurrency pool of a table's writes: its qualified Hive name."""
    return f"table:{table.qualified_name}"


def build_table_asset(project: Project, table: Table) -> dg.AssetsDefinition:
    """One Hive table as a Dagster asset; its inputs become its upstream dependencies.

    Time-partitioned tables load a range of partitions in one run and one Spark job
    (`BackfillPolicy.single_run()`): a 30-day backfill pays Spark's start-up once.
    """
    spec = table.spec
    partitions_def = partitions_definition(table)
    key = dg.AssetKey(spec.name)
    asset_spec = dg.AssetSpec(
        key=key,
        deps=_deps(project, table),
        description=spec.description or f"Hive table {table.qualified_name}",
        group_name=spec.group or table.domain,
        owners=list(spec.owners) or None,
        tags=dict(spec.tags) or None,
        kinds={"spark", "hive", *(("python",) if table.function is not None else ())},
        code_version=table.code_version,
        metadata={M.TABLE_NAME: table.qualified_name, "spec_file": str(table.file),
                  "write_mode": spec.write_mode},
        freshness_policy=freshness_policy(table),
        automation_condition=dg.AutomationCondition.eager() if spec.auto_materialize else None,
    )

    # A multi-asset of one table, so that its checks can be selected without it (the UI's
    # "Execute checks", `AssetSelection.checks_for_assets`): the anomaly checks then judge the
    # latest load, while the quality rules, measured only during a load, report nothing.
    @dg.multi_asset(
        name=spec.name,
        specs=[asset_spec],
        check_specs=QC.quality_check_specs(table) or None,
        can_subset=True,
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run() if partitions_def else None,
        retry_policy=retry_policy(table),
        # One writer per table: runs that materialize the same table wait for each other's
        # step (the instance's `concurrency: pools` limit), other tables run alongside.
        pool=table_pool(table),
    )
    def _table(
        context: dg.AssetExecutionContext, spark: LazyPySparkResource, etl_log: EtlLogResource
    ) -> Iterator[dg.MaterializeResult]:
        if key not in context.selected_asset_keys:
            context.log.info(f"{spec.name} is not materialized in this run: its quality rules "
                             "are measured while it loads, so they report nothing")
            return
        yield materialize_table(context, spark.spark_session, etl_log, project, table)

    return _table


def _request(context: dg.AssetExecutionContext, table: Table, hive_log: HiveLog) -> LoadRequest:
    full_refresh = context.run.tags.get(FULL_REFRESH_TAG, "").lower() in ("1", "true", "yes")
    keys: tuple[str, ...] = ()
    window = None
    if context.has_partition_key or context.has_partition_key_range:
        keys = tuple(context.partition_keys)
        time_window = context.partition_time_window
        window = (time_window.start.date().isoformat(), time_window.end.date().isoformat())
    watermark = None
    if table.spec.incremental and not full_refresh:
        watermark = hive_log.last_watermark(table.name)
    return LoadRequest(run_id=context.run.run_id, partition_keys=keys, window=window,
                       watermark=watermark, full_refresh=full_refresh)


def materialize_table(
    context: dg.AssetExecutionContext,
    spark: SparkSession,
    etl_log: "EtlLogResource",
    project: Project,
    table: Table,
) -> dg.MaterializeResult:
    """Load the table and log the outcome to Hive; on failure log FAILED and re-raise.

    The table's data-quality rules come back as check results with the materialization (their
    aggregates exist only during the write) and are queued for `check_log`.

    A run over several partitions writes one `run_log` row and one set of `metric_log` rows
    per partition, and gives each partition its own metadata (row count, null counts and
    ranges from that partition's files).
    """
    log_database = etl_log.database
    hive_log = HiveLog(spark, log_database)
    attempt = Attempt(run_id=context.run.run_id, table=table,
                      started_at=datetime.now(timezone.utc), attempt=context.retry_number + 1)
    retries = table.spec.retries.max if table.spec.retries else 0
    request = None
    try:
        request = _request(context, table, hive_log)
        result = load_table(spark, project, table, request)
    except Exception as err:
        failed = failure_rows(attempt, request, err, datetime.now(timezone.utc),
                              retries_left=attempt.attempt <= retries)
        try:
            hive_log.write_loads(failed)
        except Exception as log_err:  # noqa: BLE001 - the load's own error matters more
            context.log.error(
                f"could not write the FAILED row to {log_database}.run_log: {log_err}")
        raise
    shared = result_metadata(table, result)
    if len(request.partition_keys) > 1:
        for key in request.partition_keys:
            values = result.partitions.get(key, {M.ROW_COUNT: 0})
            context.add_asset_metadata(MD.metric_metadata(values, result.schema),
                                       partition_key=key)
        # Observed aggregates (sums, category sets) cover the whole range, not a partition.
        shared = {k: v for k, v in shared.items() if k in _SHARED_KEYS}
    hive_log.write_loads(success_rows(attempt, request, result, datetime.now(timezone.utc)))
    _warn_skipped(context, table, request, result.metrics)
    context.log.info(
        f"{table.qualified_name}: {result.row_count:,} rows ({result.write_mode}), "
        f"{result.bytes:,} bytes in {result.duration_s:.1f}s"
    )
    return dg.MaterializeResult(asset_key=dg.AssetKey(table.name), metadata=shared,
                                check_results=_quality_results(context, etl_log, spark, table,
                                                               request, result))


def _warn_skipped(context: dg.AssetExecutionContext, table: Table, request: LoadRequest,
                  metrics: dict[str, Any]) -> None:
    """A WARN line when the watermark filter dropped rows: they are in no table."""
    skipped = metrics.get(M.ROWS_SKIPPED)
    incremental = table.spec.incremental
    if not skipped or incremental is None:
        return
    bound = f"the watermark {request.watermark}"
    if incremental.lookback is not None:
        bound += f" less the lookback {incremental.lookback}"
    hint = ("" if incremental.lookback is not None or not metrics[M.ROWS_SKIPPED_LATE] else
            "; to load rows that arrive late, set incremental.lookback (with write_mode merge)")
    context.log.warning(
        f"{table.qualified_name}: the watermark filter skipped {skipped:,} rows of "
        f"'{table.incremental_input}' (not loaded): {metrics[M.ROWS_SKIPPED_LATE]:,} with "
        f"{incremental.column} at or below {bound}, {metrics[M.ROWS_SKIPPED_NULL]:,} with "
        f"{incremental.column} null{hint}")


def _quality_results(
    context: dg.AssetExecutionContext,
    etl_log: "EtlLogResource",
    spark: SparkSession,
    table: Table,
    request: LoadRequest,
    result: LoadResult,
) -> list[dg.AssetCheckResult]:
    """The selected rules' check results; every rule's verdict written to `check_log`."""
    key = dg.AssetKey(table.name)
    selected = {k.name for k in context.selected_asset_check_keys if k.asset_key == key}
    outcomes = [o for o in result.quality if o.check in selected]
    keys = request.partition_keys
    partition = keys[0] if len(keys) == 1 else (f"{keys[0]}...{keys[-1]}" if keys else None)
    load = CheckedLoad(run_id=request.run_id, asset=table.name,
                       checked_at=datetime.now(timezone.utc), partition_key=partition,
                       target_run_id=request.run_id)
    etl_log.write_checks(spark, [(load, outcome) for outcome in outcomes])
    for outcome in outcomes:
        log = context.log.info if outcome.passed else context.log.warning
        log(f"{outcome.check}: {'passed' if outcome.passed else 'FAILED'}: "
            f"{outcome.description}")
    return [MD.to_check_result(key, o) for o in outcomes]


_SHARED_KEYS = {M.TABLE_NAME, M.URI, M.COLUMN_SCHEMA, M.BYTES, M.DURATION_S, M.CODE_VERSION,
                M.ROWS_IN}


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
