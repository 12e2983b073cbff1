"""Write, audit, publish: a table's blocking checks judge its staged load before the switch.

The blocking checks are an ERROR anomaly or change check with `blocking: true`, and the
blocking ERROR quality rules. Their verdicts on a staged load come from the same code as the
checks after a load (`checks.judge_point`, the same history reading and the same
`etl_assets.core.anomaly` rules), on a point built from the staged metrics. A table without
blocking checks gets no audit and pays nothing.

A failed blocking check holds the load back (`etl_assets.engine.held`): the table is not
switched; for a run over several partitions only the failing partitions are held.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any

import dagster as dg
from pyspark.sql import types as T

from etl_assets.core import metric_names as M
from etl_assets.core.outcomes import CheckOutcome
from etl_assets.core.specs import Table
from etl_assets.engine.load import Audit, Auditor, Candidate
from etl_assets.engine.quality import table_rules
from etl_assets.orchestration import metadata as MD
from etl_assets.orchestration.checks import (
    HELD_RUN,
    Point,
    check_specs,
    judge_point,
    recorded_points,
    shared_reads,
)

STAGED = sys.maxsize
"""The storage id of a staged point: after every recorded materialization."""


def audited_check_specs(table: Table) -> list[dg.AssetCheckSpec]:
    """The table's blocking anomaly and change checks: they run inside the load, on the
    staged load, and are declared on the table's asset."""
    return [spec for spec in check_specs(table) if spec.blocking]


def blocking_rules(table: Table) -> set[str]:
    """Names of the table's blocking quality rules (ERROR with `blocking: true`)."""
    return {rule.name for rule in table_rules(table) if rule.spec.blocking}


def staged_point(candidate: Candidate, partition: str | None,
                 metrics: Mapping[str, Any], schema: T.StructType) -> Point:
    """The staged load as the checks see a recorded one: its would-be metadata values."""
    metadata = {k: v.value for k, v in MD.metric_metadata(metrics, schema).items()}
    metadata[M.COLUMN_SCHEMA] = MD.column_schema(schema)
    return Point(storage_id=STAGED, run_id=candidate.request.run_id, timestamp=time.time(),
                 partition=partition, metadata=MD.expand_column_metrics(metadata))


def build_auditor(instance: dg.DagsterInstance, table: Table,
                  selected: set[str] | None = None) -> Auditor | None:
    """The audit of a table's loads, or None when it has no blocking check (selected)."""
    checks = {spec.name for spec in audited_check_specs(table)}
    if selected is not None:
        checks &= selected
    rules = blocking_rules(table)
    if not checks and not rules:
        return None

    def audit(candidate: Candidate) -> Audit:
        reasons: list[str] = []
        held: set[str] = set()
        failed_rules = [o for o in candidate.quality if o.check in rules and not o.passed]
        for outcome in failed_rules:
            reasons.append(f"{outcome.check}: {outcome.description}")
        outcomes: list[CheckOutcome] = []
        if checks:
            outcomes, held = judge_unrecorded(instance, table, checks, candidate)
            reasons += [f"{o.check}: {o.description}" for o in outcomes if not o.passed]
        hold = bool(failed_rules) or any(not o.passed for o in outcomes)
        # A failing blocking rule judged the whole load: all of it is held.
        partitions = frozenset() if failed_rules else frozenset(held)
        return Audit(outcomes=outcomes, hold=hold, partitions=partitions,
                     reasons=tuple(reasons))

    return audit


def judge_unrecorded(
    instance: dg.DagsterInstance, table: Table, checks: set[str], candidate: Candidate,
) -> tuple[list[CheckOutcome], set[str]]:
    """The checks' verdicts on a load whose materialization is not recorded yet (staged, or
    published in this step), and the partitions that failed.

    Judged against the recorded history, as `checks.evaluate_table` judges a recorded load.
    A run over several partitions is judged partition by partition: one outcome per check.
    """
    keys = list(candidate.request.partition_keys)
    if len(keys) > 1:
        return _audit_partitions(instance, table, checks, candidate, keys)
    point = staged_point(candidate, keys[0] if keys else None, candidate.metrics,
                         candidate.schema)
    history = [] if table.spec.partitions else recorded_points(instance, table)
    return judge_point(instance, table, checks, point, history), set()


def _audit_partitions(
    instance: dg.DagsterInstance, table: Table, checks: set[str], candidate: Candidate,
    keys: list[str],
) -> tuple[list[CheckOutcome], set[str]]:
    """Each partition of a multi-partition run judged alone (its footer metrics); one outcome
    per check, failed when any partition failed, naming those."""
    per_check: dict[str, list[tuple[str, CheckOutcome]]] = {}
    shared = shared_reads(instance, table, checks, keys)
    for key in keys:
        metrics = candidate.per_partition.get(key, {M.ROW_COUNT: 0})
        point = staged_point(candidate, key, metrics, candidate.schema)
        for outcome in judge_point(instance, table, checks, point, [], shared):
            per_check.setdefault(outcome.check, []).append((key, outcome))
    held: set[str] = set()
    outcomes = []
    for results in per_check.values():
        failed = [(key, o) for key, o in results if not o.passed]
        held |= {key for key, _ in failed}
        last_key, chosen = (failed or results)[-1]
        description = chosen.description
        if failed:
            description = "; ".join(f"{key}: {o.description}" for key, o in failed)
        else:
            description = f"{len(results)} partitions passed; {last_key}: {description}"
        outcomes.append(CheckOutcome(
            check=chosen.check, metric=chosen.metric, passed=not failed,
            severity=chosen.severity, status=chosen.status, description=description,
            value=chosen.value, baseline=chosen.baseline, lower=chosen.lower,
            upper=chosen.upper,
            metadata={**chosen.metadata, "partitions_failed": sorted(k for k, _ in failed)}))
    return outcomes, held


def mark_held(outcomes: list[CheckOutcome], run_id: str, message: str) -> None:
    """Tag a held load's audit results (the checks' history skips them: the load they
    failed was never published) and say in the failed ones what to do next."""
    for outcome in outcomes:
        outcome.metadata[HELD_RUN] = run_id
        if not outcome.passed:
            outcome.description += f"; {message}"
