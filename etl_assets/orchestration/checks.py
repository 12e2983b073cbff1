"""Asset checks: each materialization's metrics judged against its own history.

History comes from the Dagster instance (the metadata of past materializations), never from
rescanning the table. Each table gets, with no YAML:

- `row_count_anomaly`: `dagster/row_count` against its history (`anomaly.evaluate`);
- `sums_anomaly`: every `sum/<column>` against its history, one verdict per column in one
  check (the summed columns are known only once the SQL has run, so one check per table lists
  them all; the description names the flagged ones);
- `null_fraction_anomaly`: each column's `null_count/<column>` ÷ row count against its
  history, one verdict per column in one check, like `sums_anomaly`;
- `schema_change`: columns added, removed or retyped since the previous materialization;
- `category_change`: new or vanished values of the declared categorical columns;
- `rows_skipped_jump` (incremental tables): a jump in the rows the watermark filter dropped
  (`anomaly.judge_skipped_rows`).

The checks judge the latest materialization, however it was recorded (by a run of the asset in
the same run, an earlier run, or a runless `AssetMaterialization` with the same metadata), so
a user can tune a threshold and re-judge yesterday's load by executing the checks alone.
Past points that were flagged are left out of the baseline (read from the check's own
execution history), so yesterday's incident does not poison today's verdict.
"""

import dataclasses
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

import dagster as dg
from dagster import AssetCheckEvaluation
from dagster._core.storage.asset_check_execution_record import (  # no public export
    AssetCheckExecutionRecordStatus,
)

from etl_assets.core import metric_names as M
from etl_assets.core.anomaly import (
    AnomalyConfig,
    CategorySet,
    Verdict,
    compare_category_sets,
    compare_schemas,
    evaluate,
    judge_skipped_rows,
)
from etl_assets.core.outcomes import CheckOutcome
from etl_assets.core.specs import AnomalyCheckSpec, ChangeCheckSpec, Table
from etl_assets.orchestration import metadata as MD
from etl_assets.orchestration.feedback import Decisions, read_decisions
from etl_assets.orchestration.policies import partitions_definition

ROW_COUNT_CHECK = "row_count_anomaly"
SUMS_CHECK = "sums_anomaly"
SCHEMA_CHECK = "schema_change"
CATEGORY_CHECK = "category_change"
SKIPPED_CHECK = "rows_skipped_jump"
NULLS_CHECK = "null_fraction_anomaly"
NULL_FRACTION = "null_fraction/"
"""Metric name prefix of a column's null fraction (null_count ÷ row count, 0–1)."""
NULL_FRACTION_BASE = {"abs_floor": 0.01, "zero_is_anomaly": False}
"""A fraction's floor is one percentage point (not 10), and zero nulls is good news."""
FLAGGED_METRICS = "flagged_metrics"
HELD_RUN = "etl/held_run_id"
"""On a check result of a held load's audit: the run whose staged load was held back."""
STATUS = "status"


@dataclass(frozen=True)
class Point:
    """One past or current materialization: its event-log id and its metadata values."""

    storage_id: int
    run_id: str
    timestamp: float
    partition: str | None
    metadata: Mapping[str, Any]

    @property
    def day(self) -> date:
        """The partition's date for a time partition, else the day it was recorded (UTC)."""
        if self.partition:
            try:
                return date.fromisoformat(self.partition[:10])
            except ValueError:
                pass
        return datetime.fromtimestamp(self.timestamp, tz=timezone.utc).date()

    def number(self, key: str) -> float | None:
        """A numeric metadata value, or None when absent, null or not a number."""
        value = self.metadata.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return float(value)


def anomaly_config(spec: AnomalyCheckSpec) -> AnomalyConfig:
    """The pure rule's config from a (merged) spec: unset fields keep the rule's defaults."""
    fields = spec.model_dump(exclude_none=True)
    for key in ("enabled", "severity", "blocking"):
        fields.pop(key, None)
    return AnomalyConfig(**fields)


def history_limit(table: Table) -> int:
    """How many past materializations the checks read: O(window), never the whole history.

    The rule needs `window + level_shift_runs` usable points; twice the window leaves room for
    flagged or missing points that the baseline skips.
    """
    checks = table.spec.checks
    sums = checks.sums.merged(checks.defaults)
    specs = [checks.row_count.merged(checks.defaults), sums]
    specs += [column.merged(sums) for column in checks.columns.values()]
    specs.append(null_fraction_spec(table))
    configs = [anomaly_config(spec) for spec in specs]
    return max([2 * c.window + c.level_shift_runs for c in configs]
               + [checks.rows_skipped.window]) + 1


def _verdict_outcome(check: str, verdict: Verdict, severity: str) -> CheckOutcome:
    metadata = {
        STATUS: verdict.status,
        "rule": verdict.rule,
        "value": verdict.value,
        "baseline": verdict.baseline,
        "lower": verdict.lower,
        "upper": verdict.upper,
        "window": verdict.window,
        "points_used": verdict.points_used,
        "pct_change": verdict.pct_change,
    }
    return CheckOutcome(
        check=check,
        metric="",
        passed=verdict.passed,
        severity=severity,
        status=verdict.status,
        description=verdict.reason,
        value=verdict.value,
        baseline=verdict.baseline,
        lower=verdict.lower,
        upper=verdict.upper,
        metadata=metadata,
    )


def judge_metric(
    metric: str,
    latest: Point,
    history: Sequence[Point],
    config: AnomalyConfig,
    flagged: set[int],
) -> Verdict:
    """One metric of the latest point against the history (oldest first)."""
    values, flags = [], []
    for point in history:
        values.append(point.number(metric))
        flags.append(point.storage_id in flagged)
    value = latest.number(metric)
    return evaluate(
        [math.nan if v is None else v for v in values],
        math.nan if value is None else value,
        config,
        metric="row_count" if metric == M.ROW_COUNT else metric,
        history_flags=flags,
        history_dates=[p.day for p in history],
        value_date=latest.day,
    )


def row_count_outcome(
    table: Table, latest: Point, history: Sequence[Point], flagged: set[int]
) -> CheckOutcome:
    """The `row_count_anomaly` verdict."""
    checks = table.spec.checks
    spec = checks.row_count.merged(checks.defaults)
    verdict = judge_metric(M.ROW_COUNT, latest, history, anomaly_config(spec), flagged)
    outcome = _verdict_outcome(ROW_COUNT_CHECK, verdict, spec.severity or "WARN")
    outcome.metric = M.ROW_COUNT
    return outcome


def sums_outcome(
    table: Table, latest: Point, history: Sequence[Point], flagged: Mapping[str, set[int]]
) -> CheckOutcome:
    """The `sums_anomaly` verdict: every `sum/<column>` of the latest point, one check."""
    checks = table.spec.checks
    base = checks.sums.merged(checks.defaults)
    verdicts: dict[str, tuple[Verdict, str]] = {}
    for key in sorted(k for k in latest.metadata if k.startswith(M.SUM)):
        column = key[len(M.SUM):]
        spec = checks.columns.get(column, AnomalyCheckSpec()).merged(base)
        if spec.enabled is False:
            continue
        verdict = judge_metric(key, latest, history, anomaly_config(spec), flagged.get(key, set()))
        verdicts[key] = (verdict, spec.severity or "WARN")
    return _columns_outcome(SUMS_CHECK, M.SUM, verdicts, base.severity or "WARN", "column sums")


def null_fraction_spec(table: Table) -> AnomalyCheckSpec:
    """The `null_fraction_anomaly` spec: `checks.nulls` over the table defaults, except that
    a fraction (0–1) gets its own floor and zero-handling unless `nulls` sets them."""
    checks = table.spec.checks
    base = AnomalyCheckSpec(**(checks.defaults.model_dump(exclude_none=True) | NULL_FRACTION_BASE))
    return checks.nulls.merged(base)


def null_fraction_outcome(
    table: Table, latest: Point, history: Sequence[Point], flagged: Mapping[str, set[int]]
) -> CheckOutcome:
    """The `null_fraction_anomaly` verdict: each column's ``null_count / row count``.

    A load without rows has no fraction ("not measured"). One check lists every column.
    """
    spec = null_fraction_spec(table)
    config = anomaly_config(spec)
    verdicts: dict[str, tuple[Verdict, str]] = {}
    empty = not latest.number(M.ROW_COUNT)
    for key in sorted(k for k in latest.metadata if k.startswith(M.NULL_COUNT)):
        column = key[len(M.NULL_COUNT):]
        metric = NULL_FRACTION + column
        if empty:  # no rows, no fraction: the row count check judges an empty load
            verdicts[metric] = (Verdict(
                passed=True, value=math.nan, baseline=None, lower=None, upper=None,
                rule="not_measured", reason=f"{metric} not measured: the load has no rows",
                status="not_measured", window=config.window, points_used=0, pct_change=None,
            ), spec.severity or "WARN")
            continue
        verdict = judge_metric(metric, _with_fraction(latest, key, metric),
                               [_with_fraction(p, key, metric) for p in history], config,
                               flagged.get(metric, set()))
        verdicts[metric] = (verdict, spec.severity or "WARN")
    return _columns_outcome(NULLS_CHECK, NULL_FRACTION, verdicts, spec.severity or "WARN",
                            "column null fractions")


def _with_fraction(point: Point, null_key: str, metric: str) -> Point:
    """The point with `metric` = its null count ÷ its row count (None without rows)."""
    nulls, rows = point.number(null_key), point.number(M.ROW_COUNT)
    fraction = nulls / rows if nulls is not None and rows else None
    return dataclasses.replace(point, metadata={metric: fraction, M.ROW_COUNT: rows})


def _columns_outcome(
    check: str,
    prefix: str,
    verdicts: Mapping[str, tuple[Verdict, str]],
    severity: str,
    what: str,
) -> CheckOutcome:
    """One outcome for a check that judges one metric per column (sums, null fractions)."""
    failed = {k: v for k, v in verdicts.items() if not v[0].passed}
    if failed:
        severity = "ERROR" if any(s == "ERROR" for _, s in failed.values()) else "WARN"
        first_key = next(iter(failed))
        description = "; ".join(v.reason for v, _ in failed.values())
        status = "anomaly"
    else:
        first_key = next(iter(verdicts), None)
        # Passing verdicts that judged nothing: too little history, or a value not measured.
        quiet = {k: v for k, (v, _) in verdicts.items()
                 if v.status in ("insufficient_history", "not_measured")}
        if not verdicts:
            description, status = f"no {what} in the latest materialization", "ok"
        elif len(quiet) == len(verdicts):
            first = next(iter(quiet.values()))
            description, status = first.reason, first.status
        else:
            description = f"all {len(verdicts)} {what} within their bands"
            counts = Counter(v.status for v in quiet.values())
            notes = []
            if counts["insufficient_history"]:
                notes.append(f"{counts['insufficient_history']} with insufficient history")
            if counts["not_measured"]:
                notes.append(f"{counts['not_measured']} not measured")
            if notes:
                description += f" ({', '.join(notes)})"
            status = "ok"
    top = verdicts[first_key][0] if first_key else None
    rows = [
        f"| {k[len(prefix):]} | {_num(v.value)} | {_num(v.baseline)} | {_num(v.lower)} | "
        f"{_num(v.upper)} | {v.status} | {v.reason.replace('|', '/')} |"
        for k, (v, _) in verdicts.items()
    ]
    table_md = "| column | value | baseline | lower | upper | status | reason |\n" + (
        "|---|---|---|---|---|---|---|\n" + "\n".join(rows)
    )
    return CheckOutcome(
        check=check,
        metric=first_key or "",
        passed=not failed,
        severity=severity,
        status=status,
        description=description,
        value=top.value if top else None,
        baseline=top.baseline if top else None,
        lower=top.lower if top else None,
        upper=top.upper if top else None,
        metadata={
            STATUS: status,
            FLAGGED_METRICS: sorted(failed),
            "columns_checked": len(verdicts),
            "verdicts": dg.MetadataValue.md(table_md),
        },
    )


def skipped_outcome(table: Table, latest: Point, history: Sequence[Point]) -> CheckOutcome:
    """The `rows_skipped_jump` verdict: the latest `rows_skipped` against the recent highest."""
    spec = table.spec.checks.rows_skipped
    verdict = judge_skipped_rows([p.number(M.ROWS_SKIPPED) for p in history],
                                 latest.number(M.ROWS_SKIPPED),
                                 max_increase=spec.max_increase, window=spec.window)
    outcome = _verdict_outcome(SKIPPED_CHECK, verdict, spec.severity)
    outcome.metric = M.ROWS_SKIPPED
    late, nulls = latest.number(M.ROWS_SKIPPED_LATE), latest.number(M.ROWS_SKIPPED_NULL)
    if late is not None and nulls is not None:
        outcome.description += (f" ({late:,.0f} at or below the watermark, {nulls:,.0f} with "
                                "a null watermark)")
        outcome.metadata.update({M.ROWS_SKIPPED_LATE: late, M.ROWS_SKIPPED_NULL: nulls})
    return outcome


def _num(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:,.4g}" if abs(value) < 1e15 else f"{value:.4e}"


def _schema_of(schema: dg.TableSchema | None) -> dict[str, str] | None:
    if schema is None:
        return None
    return {c.name: c.type for c in schema.columns}


def schema_outcome(table: Table, latest: Point, previous: Sequence[Point]) -> CheckOutcome:
    """The `schema_change` verdict: the latest schema against the newest earlier one."""
    spec = table.spec.checks.schema_change
    current = _schema_of(latest.metadata.get(M.COLUMN_SCHEMA))
    before = _schema_of(_last_with(previous, M.COLUMN_SCHEMA))
    if current is None or before is None:
        which = "latest" if current is None else "previous"
        return CheckOutcome(SCHEMA_CHECK, M.COLUMN_SCHEMA, True, spec.severity, "insufficient_history",
                       f"no {which} column schema to compare with", metadata={
                           STATUS: "insufficient_history"})
    diff = compare_schemas(before, current)
    status = "changed" if diff.changed else "ok"
    return CheckOutcome(
        check=SCHEMA_CHECK,
        metric=M.COLUMN_SCHEMA,
        passed=not diff.changed,
        severity=spec.severity,
        status=status,
        description=diff.describe(),
        value=float(len(current)),
        baseline=float(len(before)),
        metadata={
            STATUS: status,
            "added": dict(diff.added),
            "removed": dict(diff.removed),
            "retyped": {k: list(v) for k, v in diff.retyped.items()},
        },
    )


def _last_with(history: Sequence[Point], key: str) -> Any:
    """The newest value of a metadata key in the history (runless events may lack it)."""
    for point in reversed(history):
        if point.metadata.get(key) is not None:
            return point.metadata[key]
    return None


def _category_set(metadata: Mapping[str, Any], column: str) -> CategorySet:
    """A load's recorded distinct values of a column (loads from before the hash lack it)."""
    count = metadata.get(M.CATEGORY_COUNT + column)
    digest = metadata.get(M.CATEGORY_HASH + column)
    return CategorySet(
        values=tuple(str(v) for v in metadata.get(M.CATEGORIES + column) or []),
        count=int(count) if isinstance(count, (int, float)) else None,
        digest=digest if isinstance(digest, str) else None,
        capped=bool(metadata.get(M.CATEGORIES_CAPPED + column)),
    )


def category_outcome(table: Table, latest: Point, previous: Sequence[Point]) -> CheckOutcome:
    """The `category_change` verdict over every declared categorical column.

    Each column's latest values are compared with the newest earlier materialization that
    recorded them; capped lists by the hash of the full set (`compare_category_sets`), so a
    value replaced beyond the cap is seen, and an unchanged capped set says so with its size.
    """
    spec = table.spec.checks.category_change
    columns = table.spec.metrics.categorical
    if not any(M.CATEGORIES + c in p.metadata for p in previous for c in columns):
        return CheckOutcome(CATEGORY_CHECK, "categories", True, spec.severity, "insufficient_history",
                       "first materialization: no previous category values to compare with",
                       metadata={STATUS: "insufficient_history"})
    changes, capped_notes, complete, details = [], [], [], {}
    for column in columns:
        key = M.CATEGORIES + column
        earlier = next((p for p in reversed(previous) if p.metadata.get(key) is not None), None)
        if latest.metadata.get(key) is None or earlier is None:
            continue
        diff = compare_category_sets(_category_set(earlier.metadata, column),
                                     _category_set(latest.metadata, column))
        details[column] = {"new": list(diff.new), "vanished": list(diff.vanished)}
        if diff.capped_count is not None:
            details[column].update(distinct=diff.capped_count, set_changed=diff.set_changed)
        if diff.changed:
            changes.append(f"{column}: {diff.describe()}")
        elif diff.capped_count is not None:
            capped_notes.append(f"{column}: {diff.describe()}")
        else:
            complete.append(column)
    status = "changed" if changes else "ok"
    if changes:
        description = "; ".join(changes)
    else:
        parts = capped_notes + (
            [f"no new or vanished values in {', '.join(complete)}"] if complete else [])
        description = "; ".join(parts) or "no column recorded category values to compare"
    return CheckOutcome(CATEGORY_CHECK, "categories", not changes, spec.severity, status,
                   description, metadata={STATUS: status, "columns": details})


def _points(records: Sequence[Any]) -> list[Point]:
    points = []
    for record in records:
        materialization = record.asset_materialization
        if materialization is None:
            continue
        points.append(Point(
            storage_id=record.storage_id,
            run_id=record.run_id,
            timestamp=record.timestamp,
            partition=record.partition_key,
            # The load's own metrics again: a wide table's entry spread out, its own rows.
            metadata=MD.load_metrics(
                {k: v.value for k, v in materialization.metadata.items()}),
        ))
    return points


def _flags(
    instance: dg.DagsterInstance, key: dg.AssetCheckKey, limit: int
) -> tuple[set[int], dict[str, set[int]]]:
    """Storage ids of past materializations this check flagged (and per metric for sums)."""
    flagged: set[int] = set()
    per_metric: dict[str, set[int]] = {}
    history = instance.event_log_storage.get_asset_check_execution_history(
        key, limit=limit, status={AssetCheckExecutionRecordStatus.FAILED}
    )
    for record in history:
        evaluation = record.evaluation
        if not isinstance(evaluation, AssetCheckEvaluation) or evaluation.passed:
            continue
        if evaluation.target_materialization_data is None or HELD_RUN in evaluation.metadata:
            continue  # a held load's audit: the load it failed was never published
        storage_id = evaluation.target_materialization_data.storage_id
        flagged.add(storage_id)
        metrics = evaluation.metadata.get(FLAGGED_METRICS)
        for metric in (metrics.value if metrics is not None else []) or []:
            per_metric.setdefault(metric, set()).add(storage_id)
    return flagged, per_metric


@dataclass(frozen=True)
class SharedReads:
    """What the judging of every partition of one run reads alike, read once for the run.

    A 90-day backfill judged partition by partition asked the event log the same feedback
    and past-flag questions, and one materialization query per partition, 90 times over.

    Attributes:
        decisions: The table's feedback (`read_decisions`).
        flags: Check name -> its past flags (`_flags`).
        newest: Partition -> its newest recorded materialization, for every partition from
            `history_limit` before the run's first to its last.
    """

    decisions: Decisions
    flags: Mapping[str, tuple[set[int], dict[str, set[int]]]]
    newest: Mapping[str, Point]
    keys: Sequence[str] = ()
    """The partitions definition's keys, in order (listed once: a daily definition builds
    its list of days on every call)."""


def shared_reads(instance: dg.DagsterInstance, table: Table, checks: set[str],
                 partition_keys: Sequence[str]) -> SharedReads:
    """Read once what judging each of `partition_keys` (a run's partitions) needs."""
    key = dg.AssetKey(table.name)
    limit = history_limit(table)
    flags = {name: _flags(instance, dg.AssetCheckKey(key, name), limit)
             for name in (ROW_COUNT_CHECK, SUMS_CHECK, NULLS_CHECK) if name in checks}
    partitions = partitions_definition(table)
    newest: dict[str, Point] = {}
    keys: list[str] = []
    if partitions is not None and partition_keys:
        keys = partitions.get_partition_keys()
        known = [keys.index(k) for k in partition_keys if k in keys]
        if known:
            window = keys[max(0, min(known) - limit):max(known)]
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=key, asset_partitions=window),
                limit=4 * max(len(window), 1)).records if window else []
            for point in _points(records):  # newest first: keep the first seen per partition
                newest.setdefault(point.partition or "", point)
    return SharedReads(decisions=read_decisions(instance, key), flags=flags, newest=newest,
                       keys=keys)


def _earlier_partitions(shared: SharedReads, partition: str, limit: int) -> list[Point]:
    """The newest materialization of each of the `limit` partitions before `partition`.

    History in partition order: a backfilled day is judged against the days before it, never
    against later data, whatever order the loads ran in.
    """
    keys = shared.keys
    if partition not in keys:
        return []
    at = keys.index(partition)
    return [shared.newest[k] for k in keys[max(0, at - limit):at] if k in shared.newest]


def evaluate_table(
    instance: dg.DagsterInstance, table: Table, selected: set[str]
) -> tuple[Point | None, list[CheckOutcome]]:
    """Judge the latest materialization of a table with the selected checks."""
    key = dg.AssetKey(table.name)
    records = instance.fetch_materializations(key, limit=history_limit(table) + 1).records
    points = _points(records)
    if not points:
        return None, []
    latest, history = points[0], list(reversed(points[1:]))
    return latest, judge_point(instance, table, selected, latest, history)


def judge_point(
    instance: dg.DagsterInstance,
    table: Table,
    selected: set[str],
    latest: Point,
    history: list[Point],
    shared: SharedReads | None = None,
) -> list[CheckOutcome]:
    """The selected checks' verdicts on `latest` against `history` (oldest first).

    `shared`: what a run over several partitions read once for all of them (`shared_reads`
    for the same `selected`); read here for this point alone when not given.

    The one path of every anomaly verdict: the checks after a load (`evaluate_table`) and the
    audit of a staged load before it is published (`etl_assets.orchestration.audit`), which
    passes a point that is not recorded yet. A time-partitioned load is judged against the
    partitions before its own instead of the materializations before it; past flags (less
    accepted loads) are left out of the baseline, and a re-baseline cuts the history.
    """
    limit = history_limit(table)
    partitions = partitions_definition(table)
    if shared is None:
        shared = shared_reads(instance, table, selected,
                              [latest.partition] if latest.partition else [])
    if partitions is not None and latest.partition:
        history = _earlier_partitions(shared, latest.partition, limit)
    decisions = shared.decisions
    history, baseline_note = apply_rebaseline(history, latest, decisions)
    accepted = set(decisions.accepted)
    outcomes = []
    if ROW_COUNT_CHECK in selected:
        flagged, _ = shared.flags[ROW_COUNT_CHECK]
        outcomes.append(row_count_outcome(table, latest, history, flagged - accepted))
    if SUMS_CHECK in selected:
        _, per_metric = shared.flags[SUMS_CHECK]
        per_metric = {metric: ids - accepted for metric, ids in per_metric.items()}
        outcomes.append(sums_outcome(table, latest, history, per_metric))
    for outcome in outcomes:
        _note_decisions(outcome, latest, history, decisions, baseline_note)
    if NULLS_CHECK in selected:
        _, per_metric = shared.flags[NULLS_CHECK]
        per_metric = {metric: ids - accepted for metric, ids in per_metric.items()}
        outcomes.append(null_fraction_outcome(table, latest, history, per_metric))
    if SCHEMA_CHECK in selected:
        outcomes.append(schema_outcome(table, latest, history))
    if CATEGORY_CHECK in selected:
        outcomes.append(category_outcome(table, latest, history))
    if SKIPPED_CHECK in selected:
        outcomes.append(skipped_outcome(table, latest, history))
    return outcomes


def recorded_points(instance: dg.DagsterInstance, table: Table) -> list[Point]:
    """The table's newest recorded materializations (a check's history), oldest first."""
    records = instance.fetch_materializations(dg.AssetKey(table.name),
                                              limit=history_limit(table)).records
    return list(reversed(_points(records)))


def apply_rebaseline(
    history: list[Point], latest: Point, decisions: Decisions
) -> tuple[list[Point], str | None]:
    """The history from the newest re-baselined load on (that load included), and a note.

    A time-partitioned table is cut by partition (the re-baselined partition and later ones),
    others by event-log order. A re-baseline of the latest load itself leaves no history:
    the next loads are judged against it.
    """
    decision = decisions.rebaseline
    if decision is None:
        return history, None
    if decision.partition and latest.partition:
        if latest.partition < decision.partition:
            return history, None  # judged before the re-baseline (a backfill, a backtest)
    elif latest.storage_id < decision.target_storage_id:
        return history, None
    if latest.storage_id == decision.target_storage_id or (
            decision.partition and latest.partition == decision.partition):
        kept: list[Point] = []
    elif decision.partition and latest.partition:
        kept = [p for p in history if (p.partition or "") >= decision.partition]
    else:
        kept = [p for p in history if p.storage_id >= decision.target_storage_id]
    start = next((p for p in [*kept, latest] if p.storage_id == decision.target_storage_id
                  or (decision.partition and p.partition == decision.partition)), None)
    when = (start.partition or start.day.isoformat()) if start else decision.target_run_id[:8]
    return kept, f"baseline from {when}, {decision.describe()}"


def _note_decisions(
    outcome: CheckOutcome,
    latest: Point,
    history: Sequence[Point],
    decisions: Decisions,
    baseline_note: str | None,
) -> None:
    """Say in the verdict what feedback shaped it (re-baseline, accepted loads in its window)."""
    notes = []
    if baseline_note:
        notes.append(baseline_note)
    mine = decisions.accepted.get(latest.storage_id)
    if mine is not None:
        notes.append(f"this load was {mine.describe()}")
    in_window = sum(1 for p in history if p.storage_id in decisions.accepted)
    if in_window:
        notes.append(f"{in_window} accepted load{'s' if in_window > 1 else ''} in the baseline")
    if notes:
        outcome.description += "; " + "; ".join(notes)
        outcome.metadata["feedback"] = "; ".join(notes)


def check_specs(table: Table) -> list[dg.AssetCheckSpec]:
    """The checks a table has, from its spec (all on by default)."""
    checks = table.spec.checks
    key = dg.AssetKey(table.name)
    specs = []
    anomaly = [(ROW_COUNT_CHECK, checks.row_count.merged(checks.defaults),
                "dagster/row_count against its history"),
               (SUMS_CHECK, checks.sums.merged(checks.defaults),
                "each sum/<column> against its history"),
               (NULLS_CHECK, null_fraction_spec(table),
                "each column's null fraction (null_count / row count) against its history")]
    for name, merged, what in anomaly:
        if merged.enabled is not False:
            specs.append(dg.AssetCheckSpec(name, asset=key, description=what,
                                           blocking=bool(merged.blocking)))
    changes: list[tuple[str, ChangeCheckSpec, str]] = [
        (SCHEMA_CHECK, checks.schema_change, "columns added, removed or retyped")]
    if table.spec.metrics.categorical:
        changes.append((CATEGORY_CHECK, checks.category_change,
                        "new or vanished values of " + ", ".join(table.spec.metrics.categorical)))
    incremental = table.spec.incremental
    if incremental is not None and incremental.count_skipped:
        changes.append((SKIPPED_CHECK, checks.rows_skipped,
                        "a jump in the rows the watermark filter skipped (rows_skipped)"))
    for name, spec, what in changes:
        if spec.enabled:
            specs.append(dg.AssetCheckSpec(name, asset=key, description=what,
                                           blocking=spec.blocking))
    return specs
