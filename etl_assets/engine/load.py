"""One table's load, in stages: read the inputs, build the rows (SQL or function), stage a new
folder, measure it, judge it, publish it (`load_table`).

Each stage is a function with a small typed input and output, in its own module: `inputs`,
`frames`, `staging` (target, write, samples, quarantine, measure), `judging`, `publish`.

Overwriting a table in place is not atomic with Spark 4 and the Hive catalog (a job failing
mid-write leaves the table dropped or empty, see DESIGN.md), so every load writes to a new
folder and only then points the table at it, in one metastore call; the previous folder is
deleted afterwards. A failed load leaves the previous table readable and untouched.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from etl_assets.core import metric_names as M
from etl_assets.core.held import HeldLoad
from etl_assets.core.lineage import Lineage, column_lineage, declared_lineage
from etl_assets.core.load_request import LoadRequest
from etl_assets.core.outcomes import CheckOutcome
from etl_assets.core.specs import Project, Table
from etl_assets.engine import storage as S
from etl_assets.engine.frames import build_frame, combine_with_existing
from etl_assets.engine.held import hold
from etl_assets.engine.inputs import resolve_inputs, skipped_rows
from etl_assets.engine.judging import blocking_query_rules, judge, query_rules
from etl_assets.engine.publish import publish
from etl_assets.engine.staging import (
    discard,
    measure,
    plan_target,
    quarantine,
    sample_failures,
    stage,
)


@dataclass(frozen=True)
class Candidate:
    """A staged, measured and judged load, not yet published: what an audit judges.

    Attributes:
        table: The table.
        request: The run's request.
        schema: The table's schema as it would be published.
        metrics: The whole load's metrics.
        per_partition: Partition key -> that partition's footer metrics.
        quality: The verdicts of the rules measured in the write.
    """

    table: Table
    request: LoadRequest
    schema: T.StructType
    metrics: dict[str, Any]
    per_partition: dict[str, dict[str, Any]]
    quality: list[CheckOutcome]


@dataclass(frozen=True)
class Audit:
    """An audit's answer: its check outcomes, and what it holds back.

    Attributes:
        outcomes: The audit's verdicts (reported as check results either way).
        hold: Whether anything is held back.
        partitions: The partitions held back; empty with `hold` means the whole load.
        reasons: The failed blocking checks' sentences.
    """

    outcomes: list[CheckOutcome]
    hold: bool = False
    partitions: frozenset[str] = frozenset()
    reasons: tuple[str, ...] = ()


Auditor = Callable[[Candidate], Audit]
"""Judges a staged load before it is published (write-audit-publish)."""


@dataclass
class LoadResult:
    """What one load wrote and measured (and, when its audit held it back, the held load).

    `lineage`: output column -> the (input name, input column) pairs it derives from
    (`etl_assets.core.lineage`); columns it could not resolve have no entry.
    `table_rows`: the rows the table holds after the load (`engine.table_rows`); None when the
    load was held back whole, or its rows could not be counted.
    """

    table_name: str
    location: str
    schema: T.StructType
    metrics: dict[str, Any]
    rows_in: int | None
    bytes: int
    duration_s: float
    write_mode: str = "overwrite"
    partitions: dict[str, dict[str, Any]] = field(default_factory=dict)
    quality: list[CheckOutcome] = field(default_factory=list)
    job_group: str = ""
    audit: list[CheckOutcome] = field(default_factory=list)
    held: HeldLoad | None = None
    lineage: Lineage = field(default_factory=dict)
    table_rows: int | None = None

    @property
    def row_count(self) -> int:
        """Rows written (by a partitioned or appending load, fewer than `table_rows`)."""
        return int(self.metrics[M.ROW_COUNT])

    @property
    def watermark(self) -> str | None:
        """The incremental column's highest value in the written rows, if tracked."""
        return self.metrics.get(M.WATERMARK)


def load_table(
    spark: SparkSession,
    project: Project,
    table: Table,
    request: LoadRequest | str,
    audit: Auditor | None = None,
) -> LoadResult:
    """Load one table through the stages both front ends (SQL and `@table` functions) share.

    resolve inputs -> build the frame -> stage (write a new folder, aggregates observed) ->
    sample offending rows -> quarantine -> measure (observations + footers) -> judge (the
    rules measured in the write) -> [audit] -> publish -> query rules. The log is written by
    the caller from the result (`load_log`).

    With an `audit` (a table with blocking checks), the staged load is judged before the
    switch; what it holds back is not published (`result.held`: readers keep the previous
    load) and waits for `etl_assets.engine.held.publish_held` or `discard_held`. Without one,
    nothing is added to the load.

    Args:
        spark: The session with Hive support.
        project: All specs (to resolve inputs).
        table: The table to load.
        request: The run's partitions, watermark and overrides (or just a run id).

    Raises:
        LoadError: For a spec problem only visible at run time (a column the SQL does not
            produce); Spark's own exceptions otherwise. The previous table is left as it was,
            and what the load wrote is deleted.
    """
    if isinstance(request, str):
        request = LoadRequest(run_id=request)
    started = time.monotonic()
    target = plan_target(spark, table, request)
    inputs = resolve_inputs(spark, project, table, request)
    frame = combine_with_existing(spark, table, build_frame(spark, table, request, inputs.frames),
                                  target.mode, request)
    staged = stage(spark, target, frame)
    rejected_rows = None
    try:
        skipped = skipped_rows(inputs.skipped)
        samples = sample_failures(spark, staged)
        rejected_rows = quarantine(spark, staged)
        measured = measure(spark, staged, request, skipped, rejected_rows)
    except BaseException:
        if rejected_rows is None:
            discard(spark, staged)
        else:  # the rejected rows already belong to <table>__rejected: keep them
            S.delete_path(spark, target.location)
        raise
    # Before the switch: nothing after it should be able to fail a published load.
    lineage = table_lineage(table, inputs.frames, measured.schema)
    outcomes = judge(staged, measured, samples, rejected_rows)
    early = audit is not None and blocking_query_rules(staged)
    if early:  # the audit needs their verdicts: judge the staged rows
        outcomes += query_rules(spark, project, staged, request, measured, before_publish=True)
    verdict = Audit([])
    if audit is not None:
        verdict = audit(Candidate(table, request, measured.schema, measured.metrics,
                                  measured.per_partition, outcomes))
    held = None
    table_rows = None
    if verdict.hold:
        partitions = verdict.partitions & set(request.partition_keys)
        if partitions == set(request.partition_keys):
            partitions = frozenset()  # every partition of the run: the whole load
        held = hold(spark, target, request, measured, list(verdict.reasons), partitions,
                    S.rows_read(spark, target.job_group), time.monotonic() - started)
    if held is None or not held.whole:
        table_rows = publish(spark, target, request, measured,
                             hold=held.held_partitions_set if held else frozenset())
        if not early:
            outcomes += query_rules(spark, project, staged, request, measured)
    order = {r.name: i for i, r in enumerate(staged.rules.rules)}
    return LoadResult(
        table_name=table.qualified_name,
        location=target.location,
        schema=measured.schema,
        metrics=measured.metrics,
        rows_in=S.rows_read(spark, target.job_group),
        bytes=S.path_bytes(spark, target.location),
        duration_s=time.monotonic() - started,
        write_mode=target.mode,
        partitions=measured.per_partition,
        quality=sorted(outcomes, key=lambda o: order[o.check]),
        job_group=target.job_group,
        audit=verdict.outcomes,
        held=held,
        lineage=lineage,
        table_rows=table_rows,
    )


def table_lineage(table: Table, frames: dict[str, DataFrame], schema: T.StructType) -> Lineage:
    """The written table's column lineage: read from a SQL table's SQL, or a Python table's
    declared `column_lineage`, matched to the input frames' and the written columns.

    Only the frames' schemas are read (no job runs); never raises (see `core.lineage`).
    """
    input_columns = {name: frame.columns for name, frame in frames.items()}
    output = schema.fieldNames()
    if table.function is not None:
        return declared_lineage(table.spec.column_lineage, input_columns, output)
    return column_lineage(table.spec.sql, table.spec.inputs, input_columns, output)
