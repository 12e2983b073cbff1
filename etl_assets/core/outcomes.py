"""One type for what a check concluded about a load: `CheckOutcome`.

Both kinds of checks give one: the anomaly checks (a load's metrics against their history,
`etl_assets.orchestration.checks`) and the data-quality rules (the load's rows against a rule,
`etl_assets.engine.quality`). The same outcome becomes the Dagster `AssetCheckResult`, the
`check_log` row (with a `CheckedLoad` saying which load it judged) and what a backtest
replays. The anomaly rules' per-metric answer (`etl_assets.core.anomaly.Verdict`) is an input
to an outcome: one check such as `sums_anomaly` combines the verdicts of many metrics.

Pure: imports neither Spark nor Dagster.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

ERROR = "ERROR"
WARN = "WARN"


@dataclass
class CheckOutcome:
    """One check's verdict on one load.

    Attributes:
        check: The check's name (its `AssetCheckSpec`), e.g. `row_count_anomaly` or a rule's
            name such as `not_null_customer_id`.
        metric: What was measured: a metric name (`dagster/row_count`), `quality/<kind>` for a
            rule, or "" when the check spans several metrics.
        passed: False when the load is flagged.
        severity: "ERROR" or "WARN".
        status: "ok", "anomaly", "failed", "insufficient_history", "not_measured", "no_data",
            "error", ...
        description: One sentence a person can act on.
        value: The measured number (a rule: its offending rows), if one.
        baseline: What the value was compared with (an anomaly check's median), if any.
        lower, upper: The allowed band actually applied (a rule: `upper` is the offending rows
            allowed), None when unbounded.
        metadata: Plain values shown with the check result (numbers, text, lists).
    """

    check: str
    metric: str
    passed: bool
    severity: str
    status: str
    description: str
    value: float | None = None
    baseline: float | None = None
    lower: float | None = None
    upper: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckedLoad:
    """Which load a check judged, and when: the context of a `check_log` row.

    Attributes:
        run_id: The run that ran the check.
        asset: The table's asset name.
        checked_at: When (UTC).
        partition_key: The judged partition (a range `first...last` for a backfill), if any.
        target_run_id: The run whose load was judged (the same run for a quality rule).
    """

    run_id: str
    asset: str
    checked_at: datetime
    partition_key: str | None = None
    target_run_id: str | None = None
