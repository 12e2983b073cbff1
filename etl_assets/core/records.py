"""The rows of the log tables as plain values: run statuses, one load attempt, one decision.

Pure: imports neither Spark nor Dagster. `etl_assets.engine.hive_log` writes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

SUCCESS = "SUCCESS"


FAILED = "FAILED"


RETRY = "RETRY"  # a failed attempt that Dagster's RetryPolicy will try again
HELD = "HELD"  # the load worked, a blocking check held it back: published or discarded later
DISCARDED = "DISCARDED"  # a held load deleted by a person (or after its retention period)


@dataclass(frozen=True)
class RunRecord:
    """One load attempt of one asset, as written to `run_log`."""

    run_id: str
    asset: str
    domain: str
    table_name: str
    status: str
    started_at: datetime
    finished_at: datetime
    code_version: str
    partition_key: str | None = None
    rows_in: int | None = None
    row_count: int | None = None
    bytes: int | None = None
    error_message: str | None = None
    watermark: str | None = None
    attempt: int = 1

    @property
    def duration_s(self) -> float:
        """Seconds from start to finish."""
        return (self.finished_at - self.started_at).total_seconds()


@dataclass(frozen=True)
class FeedbackRecord:
    """One accept / re-baseline decision, as written to `check_feedback`."""

    run_id: str
    """The run of the `etl_feedback` job that recorded it."""
    asset: str
    action: str
    target_run_id: str
    note: str
    by: str
    recorded_at: datetime
    partition_key: str | None = None
