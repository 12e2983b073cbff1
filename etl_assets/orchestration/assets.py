"""Each Hive table of the specs as a Dagster asset: the engine's load, reported the Dagster way
(materialization metadata, check results, partitions, retries, freshness, pools).
"""

# No `from __future__ import annotations`: Dagster reads the annotations of asset functions
# (context, config, resources) at definition time and cannot resolve them from strings.
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_pyspark import LazyPySparkResource
from pyspark.sql import SparkSession
from pyspark.sql import types as T

from etl_assets.core import metric_names as M
from etl_assets.core.held import DEFAULT_RETENTION_DAYS
from etl_assets.core.lineage import Lineage, project_lineage, trace_lineage
from etl_assets.core.load_request import LoadRequest
from etl_assets.core.outcomes import CheckedLoad, CheckOutcome
from etl_assets.core.specs import Project, Source, Table
from etl_assets.engine.held import expire_held
from etl_assets.engine.hive_log import HiveLog
from etl_assets.engine.load import Candidate, LoadResult, load_table
from etl_assets.engine.load_log import Attempt, failure_rows, success_rows
from etl_assets.orchestration import metadata as MD
from etl_assets.orchestration import quality_checks as QC
from etl_assets.orchestration.audit import (
    blocking_rules,
    build_auditor,
    judge_unrecorded,
    mark_held,
)
from etl_assets.orchestration.checks import STATUS, check_specs, evaluate_table
from etl_assets.orchestration.policies import (
    freshness_policy,
    partitions_definition,
    retry_policy,
    table_pool,
)
from etl_assets.orchestration.resources import EtlLogResource


def result_metadata(table: Table, result: LoadResult, shared_only: bool = False
                    ) -> dict[str, Any]:
    """`MaterializeResult` metadata: Dagster's standard keys plus the metrics.

    Every metric has its own key, except on a table wider than `metrics.WIDE_TABLE_COLUMNS`,
    whose per-column metrics share one table-valued entry (`metrics.metric_metadata`).
    `dagster/column_lineage` is there when some column's lineage is known.
    `shared_only`: only the keys a multi-partition run gives every partition.
    """
    metadata = load_metadata(table, result.location, result.schema, result.bytes,
                             result.duration_s, result.rows_in, result.metrics)
    if result.lineage:
        metadata[M.COLUMN_LINEAGE] = MD.column_lineage(result.lineage)
    if shared_only:
        return {k: v for k, v in metadata.items() if k in _SHARED_KEYS}
    return metadata


def load_metadata(table: Table, location: str, schema: T.StructType, size: int,
                  duration_s: float, rows_in: int | None, metrics: dict[str, Any]
                  ) -> dict[str, Any]:
    """A load's materialization metadata (a load just made, or a held one published)."""
    metadata: dict[str, Any] = {
        M.TABLE_NAME: dg.MetadataValue.text(table.qualified_name),
        M.URI: dg.MetadataValue.path(location),
        M.COLUMN_SCHEMA: MD.column_schema(schema, table.spec.columns),
        M.BYTES: dg.MetadataValue.int(size),
        M.DURATION_S: dg.MetadataValue.float(round(duration_s, 3)),
    }  # the code version is Dagster's own tag on every materialization (and in run_log)
    if rows_in is not None:
        metadata[M.ROWS_IN] = dg.MetadataValue.int(rows_in)
    metadata.update(MD.metric_metadata(metrics, schema))  # bounded when wide
    return metadata


FULL_REFRESH_TAG = "etl_assets/full_refresh"


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


def _spec_metadata(table: Table, lineages: dict[str, Lineage]) -> dict[str, Any]:
    """The asset definition's own metadata; with the column lineage the SQL (or the function's
    declaration) gives without knowing the inputs' columns (loads refine it with them): as
    `dagster/column_lineage` for Dagster+ and API readers, and traced back through the
    upstream tables (`lineages`: the static lineage of the table and its upstream tables) as
    the Markdown `column_lineage`, which the open-source UI shows."""
    spec = table.spec
    metadata: dict[str, Any] = {M.TABLE_NAME: table.qualified_name, "spec_file": str(table.file),
                                "write_mode": spec.write_mode}
    static = lineages.get(table.name)
    if static:
        metadata[M.COLUMN_LINEAGE] = MD.column_lineage(static)
        metadata[M.COLUMN_LINEAGE_TEXT] = MD.lineage_markdown(trace_lineage(lineages,
                                                                            table.name))
    metadata.update(_code_reference(table.file, table.line))
    return metadata


def build_table_asset(project: Project, table: Table,
                      held_retention_days: float = DEFAULT_RETENTION_DAYS,
                      lineages: dict[str, Lineage] | None = None) -> dg.AssetsDefinition:
    """One Hive table as a Dagster asset; its inputs become its upstream dependencies.

    `held_retention_days`: how long a load its blocking checks held back waits to be
    published or discarded before the table's next load removes it. `lineages`: the static
    lineage of (at least) the table and its upstream tables (`lineage.project_lineage`),
    when the caller has it for several tables; read from the project otherwise.

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
        metadata=_spec_metadata(
            table, lineages if lineages is not None else project_lineage(project, [table.name])),
        freshness_policy=freshness_policy(table),
        automation_condition=dg.AutomationCondition.eager() if spec.auto_materialize else None,
    )

    # A multi-asset of one table, so that its checks can be selected without it (the UI's
    # "Execute checks", `AssetSelection.checks_for_assets`): the anomaly checks then judge the
    # latest load, while the quality rules, measured only during a load, report nothing.
    # Every check is declared here and judged in the load's own step: blocking anomaly checks
    # audit the staged load before the switch, the others judge it once it is published. A
    # step per table's checks cost each run its own step events and start-up (bench/e2e.py).
    anomaly = {s.name for s in check_specs(table)}
    @dg.multi_asset(
        name=spec.name,
        specs=[asset_spec],
        check_specs=[*QC.quality_check_specs(table), *check_specs(table)] or None,
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
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult | dg.AssetMaterialization]:
        if key not in context.selected_asset_keys:
            context.log.info(f"{spec.name} is not materialized in this run: its quality rules "
                             "are measured while it loads, so they report nothing")
            selected = {k.name for k in context.selected_asset_check_keys} & anomaly
            if selected:  # the anomaly checks judge the latest load
                yield from latest_load_checks(context, spark.spark_session, etl_log, table,
                                              selected)
            return
        yield from materialize_table(context, spark.spark_session, etl_log, project, table,
                                     held_retention_days)

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
    held_retention_days: float = DEFAULT_RETENTION_DAYS,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult | dg.AssetMaterialization]:
    """Load the table and log the outcome to Hive; on failure log FAILED and re-raise.

    The table's data-quality rules come back as check results with the materialization (their
    aggregates exist only during the write) and are queued for `check_log`. A table with
    blocking checks is audited before the switch (`audit.build_auditor`); a held load fails
    the step with what to do next (`_held`).

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
        selected = {k.name for k in context.selected_asset_check_keys}
        auditor = build_auditor(context.instance, table, selected)
        if auditor is not None:  # only an audited table can have held loads to expire
            for expired in expire_held(spark, table, held_retention_days):
                context.log.warning(f"{table.name}: removed the held load of run "
                                    f"{expired.run_id} (held since {expired.held_at}, longer "
                                    f"than the retention of {held_retention_days:g} days)")
        result = load_table(spark, project, table, request, audit=auditor)
    except Exception as err:
        failed = failure_rows(attempt, request, err, datetime.now(timezone.utc),
                              retries_left=attempt.attempt <= retries)
        try:
            hive_log.write_loads(failed)
        except Exception as log_err:  # noqa: BLE001 - the load's own error matters more
            context.log.error(
                f"could not write the FAILED row to {log_database}.run_log: {log_err}")
        raise
    if result.held is not None:
        yield from _held(context, etl_log, spark, hive_log, attempt, table, request, result)
        return
    shared = result_metadata(table, result)
    partitioned = bool(request.partition_keys)
    if len(request.partition_keys) > 1:
        for key in request.partition_keys:
            values = result.partitions.get(key, {M.ROW_COUNT: 0})
            context.add_asset_metadata(MD.with_table_rows(
                MD.metric_metadata(values, result.schema), result.table_rows, partition=True),
                partition_key=key)
        # Observed aggregates (sums, category sets) cover the whole range, not a partition.
        shared = {k: v for k, v in shared.items() if k in _SHARED_KEYS}
    else:
        shared = MD.with_table_rows(shared, result.table_rows, partition=partitioned,
                                    partial=MD.writes_part(result.write_mode))
    hive_log.write_loads(success_rows(attempt, request, result, datetime.now(timezone.utc)))
    _warn_skipped(context, table, request, result.metrics)
    context.log.info(
        f"{table.qualified_name}: {result.row_count:,} rows ({result.write_mode}), "
        f"{result.bytes:,} bytes in {result.duration_s:.1f}s"
    )
    judged = _judge_published(context, table, request, result)
    yield dg.MaterializeResult(asset_key=dg.AssetKey(table.name), metadata=shared,
                               check_results=_check_results(context, etl_log, spark, table,
                                                            request, result, judged))


def _held(
    context: dg.AssetExecutionContext,
    etl_log: EtlLogResource,
    spark: SparkSession,
    hive_log: HiveLog,
    attempt: Attempt,
    table: Table,
    request: LoadRequest,
    result: LoadResult,
) -> Iterator[dg.AssetCheckResult | dg.AssetMaterialization]:
    """A load its audit held back: the published partitions (if any) as materializations, the
    failed checks as results, `HELD` rows in `run_log`, then a step failure that says what
    to do (downstream tables are skipped)."""
    held = result.held
    assert held is not None
    previous = context.instance.fetch_materializations(dg.AssetKey(table.name), limit=1).records
    still = (f"the table still holds the load of run {previous[0].run_id}" if previous
             else "the table has no published load yet")
    if not held.whole:
        still = f"partitions {', '.join(held.held_partitions)} held, the others published"
    where = f"{still}; staged at {held.location}; {held.commands()}"
    message = f"{table.name}: load held back, {'; '.join(held.reasons)}; {where}"
    # The failed blocking checks say what happened to the load (and so do their alerts).
    blocking = blocking_rules(table)
    mark_held([*result.audit, *(o for o in result.quality if o.check in blocking)],
              request.run_id, f"load held back: {where}")
    hive_log.write_loads(success_rows(attempt, request, result, datetime.now(timezone.utc)))
    if not held.whole:
        for key in request.partition_keys:
            if key not in held.held_partitions:
                values = result.partitions.get(key, {M.ROW_COUNT: 0})
                yield dg.AssetMaterialization(
                    asset_key=dg.AssetKey(table.name), partition=key,
                    metadata={**result_metadata(table, result, shared_only=True),
                              **MD.with_table_rows(MD.metric_metadata(values, result.schema),
                                                   result.table_rows, partition=True)})
    yield from _check_results(context, etl_log, spark, table, request, result)
    context.log.error(message)
    raise dg.Failure(description=message, allow_retries=False, metadata={
        "held_run_id": request.run_id, "staged_at": dg.MetadataValue.path(held.location),
        "held_partitions": list(held.held_partitions)})


def _judge_published(
    context: dg.AssetExecutionContext, table: Table, request: LoadRequest, result: LoadResult,
) -> list[CheckOutcome]:
    """The selected non-blocking anomaly checks' verdicts on the load this step published.

    Its materialization is recorded with them, so they judge the load's own metrics against
    the recorded history, as `evaluate_table` judges a recorded load (a run over several
    partitions: each partition). A verdict that cannot be reached (the instance's history
    unreadable) is a failed check with status `error`; the published load stands.
    """
    key = dg.AssetKey(table.name)
    names = {spec.name for spec in check_specs(table) if not spec.blocking}
    selected = names & {k.name for k in context.selected_asset_check_keys if k.asset_key == key}
    if not selected:
        return []
    candidate = Candidate(table, request, result.schema, result.metrics, result.partitions,
                          result.quality)
    try:
        outcomes, _ = judge_unrecorded(context.instance, table, selected, candidate)
    except Exception as err:  # noqa: BLE001 - the load is published; say why it is not judged
        context.log.error(f"{table.name}: could not judge the load: {err!r}")
        return [CheckOutcome(check=name, metric="", passed=False, severity="WARN",
                             status="error", description=f"could not judge this load: {err!r}",
                             metadata={STATUS: "error"})
                for name in sorted(selected)]
    return outcomes


def latest_load_checks(
    context: dg.AssetExecutionContext,
    spark: SparkSession,
    etl_log: EtlLogResource,
    table: Table,
    selected: set[str],
) -> Iterator[dg.AssetCheckResult]:
    """The anomaly checks run without a load: they judge the latest recorded load."""
    key = dg.AssetKey(table.name)
    latest, outcomes = evaluate_table(context.instance, table, selected)
    if latest is None:
        for name in sorted(selected):
            yield dg.AssetCheckResult(
                asset_key=key, check_name=name, passed=False, severity=dg.AssetCheckSeverity.WARN,
                description=f"{table.name} has no recorded materialization to check yet",
                metadata={STATUS: "no_materialization"})
        return
    load = CheckedLoad(run_id=context.run.run_id, asset=table.name,
                       checked_at=datetime.now(timezone.utc), partition_key=latest.partition,
                       target_run_id=latest.run_id)
    etl_log.write_checks(spark, [(load, outcome) for outcome in outcomes])
    MD.log_failed_checks(context, outcomes)
    for outcome in outcomes:
        yield MD.to_check_result(key, outcome)


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


def _check_results(
    context: dg.AssetExecutionContext,
    etl_log: "EtlLogResource",
    spark: SparkSession,
    table: Table,
    request: LoadRequest,
    result: LoadResult,
    judged: Sequence[CheckOutcome] = (),
) -> list[dg.AssetCheckResult]:
    """The selected rules', audited and `judged` checks' results; the verdicts written to
    `check_log` in one batch."""
    key = dg.AssetKey(table.name)
    selected = {k.name for k in context.selected_asset_check_keys if k.asset_key == key}
    outcomes = [o for o in [*result.quality, *result.audit, *judged] if o.check in selected]
    keys = request.partition_keys
    partition = keys[0] if len(keys) == 1 else (f"{keys[0]}...{keys[-1]}" if keys else None)
    load = CheckedLoad(run_id=request.run_id, asset=table.name,
                       checked_at=datetime.now(timezone.utc), partition_key=partition,
                       target_run_id=request.run_id)
    etl_log.write_checks(spark, [(load, outcome) for outcome in outcomes])
    MD.log_failed_checks(context, outcomes)
    return [MD.to_check_result(key, o) for o in outcomes]


_SHARED_KEYS = {M.TABLE_NAME, M.URI, M.COLUMN_SCHEMA, M.COLUMN_LINEAGE, M.BYTES, M.DURATION_S,
                M.ROWS_IN}


def build_source_asset(source: Source) -> dg.AssetSpec:
    """A declared source as an external asset, so lineage starts at the files."""
    where = source.resolved_path or source.spec.table
    return dg.AssetSpec(
        key=dg.AssetKey(source.name),
        description=source.spec.description or f"{source.spec.format} source {where}",
        group_name=source.domain,
        kinds={source.spec.format},
        metadata={M.URI if source.resolved_path else M.TABLE_NAME: str(where),
                  **_code_reference(source.file, source.line)},
    )


def _code_reference(file: Path, line: int | None) -> dict[str, Any]:
    """`dagster/code_references` to a spec's own entry (Dagster adds the component's line
    after it); none when the line is unknown."""
    if line is None:
        return {}
    return {"dagster/code_references": dg.CodeReferencesMetadataValue(code_references=[
        dg.LocalFileCodeReference(file_path=str(file), line_number=line)])}
