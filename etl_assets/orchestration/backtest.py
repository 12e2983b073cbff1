"""Replay a table's recorded history through a check rule: would it have flagged those loads?

`etl-assets backtest orders_clean --set rule=mad --set window=60` judges every recorded load
of the table against the loads before it, exactly as the check would have (same history
source: the metadata of past materializations in the Dagster instance, same feedback, loads
it flags left out of later baselines), with the table's configured rule plus the overrides.
No table is scanned and no Spark session is started.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import dagster as dg
from pydantic import ValidationError

from etl_assets.core import metric_names as M
from etl_assets.core.anomaly import Verdict
from etl_assets.core.specs import AnomalyCheckSpec, Table
from etl_assets.orchestration.checks import (
    Point,
    _points,
    anomaly_config,
    apply_rebaseline,
    history_limit,
    judge_metric,
)
from etl_assets.orchestration.feedback import read_decisions

DEFAULT_LOADS = 1000
"""Loads replayed unless `--last` says otherwise (the newest ones)."""


class BacktestError(ValueError):
    """An unknown metric or an invalid override, said in one sentence."""


@dataclass(frozen=True)
class Replayed:
    """One past load and the verdict the rule would have given it."""

    point: Point
    verdict: Verdict

    @property
    def label(self) -> str:
        """The partition, or the load's UTC date and time."""
        if self.point.partition:
            return self.point.partition
        when = datetime.fromtimestamp(self.point.timestamp, tz=timezone.utc)
        return when.strftime("%Y-%m-%d %H:%M")


def metric_key(metric: str) -> str:
    """The metadata key of a metric name: ``row_count`` or ``sum/<column>``."""
    if metric in ("row_count", M.ROW_COUNT):
        return M.ROW_COUNT
    if metric.startswith(M.SUM):
        return metric
    raise BacktestError(f"unknown metric {metric!r}: use row_count or sum/<column>")


def rule_spec(table: Table, key: str, overrides: dict[str, str]) -> AnomalyCheckSpec:
    """The table's check spec for the metric, with `--set name=value` overrides validated."""
    checks = table.spec.checks
    if key == M.ROW_COUNT:
        base = checks.row_count.merged(checks.defaults)
    else:
        sums = checks.sums.merged(checks.defaults)
        base = checks.columns.get(key[len(M.SUM):], AnomalyCheckSpec()).merged(sums)
    fields = base.model_dump(exclude_none=True)
    fields.update(overrides)
    try:
        return AnomalyCheckSpec.model_validate(fields)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors())
        raise BacktestError(f"invalid --set for table {table.name!r}: {problems}") from None


def backtest(
    instance: dg.DagsterInstance,
    table: Table,
    metric: str = "row_count",
    overrides: dict[str, str] | None = None,
    loads: int = DEFAULT_LOADS,
) -> list[Replayed]:
    """Judge each of the table's newest `loads` recorded loads against the ones before it.

    Partitioned tables are replayed in partition order (the newest materialization of each
    partition); others in the order they were recorded. Cost: one read of `loads`
    materializations, then O(window) work per load.
    """
    key = metric_key(metric)
    config = anomaly_config(rule_spec(table, key, overrides or {}))
    asset_key = dg.AssetKey(table.name)
    records = instance.fetch_materializations(asset_key, limit=loads).records
    points = list(reversed(_points(records)))
    if table.spec.partitions is not None:
        newest: dict[str, Point] = {}
        for point in points:
            newest[point.partition or ""] = point  # oldest first: the last one wins
        points = [newest[k] for k in sorted(newest)]
    decisions = read_decisions(instance, asset_key)
    accepted = set(decisions.accepted)
    depth = history_limit(table)
    flagged: set[int] = set()
    replayed = []
    for index, point in enumerate(points):
        history, _ = apply_rebaseline(points[max(0, index - depth):index], point, decisions)
        verdict = judge_metric(key, point, history, config, flagged - accepted)
        if not verdict.passed:
            flagged.add(point.storage_id)
        replayed.append(Replayed(point, verdict))
    return replayed
