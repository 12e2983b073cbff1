"""The last stage of a load, log: its `run_log` rows and `metric_log` values, for a load that
worked (one row per partition of a multi-partition run) and for one that failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from etl_assets.core import metric_names as M
from etl_assets.core.load_request import LoadRequest
from etl_assets.core.records import DISCARDED, FAILED, HELD, RETRY, SUCCESS, RunRecord
from etl_assets.core.specs import Table

LogRows = list[tuple[RunRecord, dict[str, Any]]]
"""`HiveLog.write_loads`'s input: each `run_log` row with its metrics for `metric_log`."""


@dataclass(frozen=True)
class Attempt:
    """What every log row of one load attempt shares.

    Attributes:
        run_id: The Dagster run.
        table: The table loaded.
        started_at: When the attempt started (UTC).
        attempt: 1 for the first try, 2 for the first retry, ...
    """

    run_id: str
    table: Table
    started_at: datetime
    attempt: int = 1

    def fields(self) -> dict[str, Any]:
        """The `RunRecord` fields every row of the attempt has."""
        table = self.table
        return dict(run_id=self.run_id, asset=table.name, domain=table.domain,
                    table_name=table.qualified_name, started_at=self.started_at,
                    code_version=table.code_version, attempt=self.attempt)


def logged_metrics(result: Any) -> dict[str, Any]:
    """The metrics written to `metric_log` for a `LoadResult`: everything numeric or textual
    about the load (its metrics plus bytes, duration and rows read)."""
    values = dict(result.metrics)
    values[M.BYTES] = result.bytes
    values[M.DURATION_S] = round(result.duration_s, 3)
    if result.rows_in is not None:
        values[M.ROWS_IN] = result.rows_in
    return values


def success_rows(attempt: Attempt, request: LoadRequest, result: Any,
                 finished_at: datetime) -> LogRows:
    """A load's log rows (`result` is its `LoadResult`): `SUCCESS`, or `HELD` for what its
    audit held back (with the reasons and where it is staged in `error_message`).

    A run over several partitions gets one row per partition with that partition's footer
    metrics (a partition that received no rows logs 0 rows); otherwise one row with every
    metric of the load.
    """
    base = attempt.fields()
    held = result.held
    note = None
    if held is not None:
        note = (f"held back: {'; '.join(held.reasons)}; staged at {held.location}; "
                f"{held.commands()}")

    def status(key: str | None) -> str:
        if held is None or not (held.whole or key in held.held_partitions):
            return SUCCESS
        return HELD

    if len(request.partition_keys) > 1:
        rows: LogRows = []
        for key in request.partition_keys:
            values = result.partitions.get(key, {M.ROW_COUNT: 0})
            state = status(key)
            rows.append((RunRecord(status=state, finished_at=finished_at, partition_key=key,
                                   row_count=values[M.ROW_COUNT],
                                   error_message=note if state == HELD else None, **base),
                         values))
        return rows
    key = request.partition_keys[0] if request.partition_keys else None
    state = status(key)
    return [(RunRecord(status=state, finished_at=finished_at, partition_key=key,
                       rows_in=result.rows_in, row_count=result.row_count, bytes=result.bytes,
                       watermark=result.watermark, error_message=note if state == HELD else None,
                       **base), logged_metrics(result))]


def published_rows(attempt: Attempt, held: Any, finished_at: datetime, by: str,
                   note: str) -> LogRows:
    """The rows of a held load published later (`held` is its `HeldLoad`): `SUCCESS` under
    the run that staged it, with who published it (and why) in `error_message`."""
    base = attempt.fields()
    message = f"published by {by}" + (f": {note}" if note else "") + f" (held at {held.held_at})"
    keys = list(held.held_partitions or held.partition_keys) or [None]
    rows: LogRows = []
    for key in keys:
        values = held.per_partition.get(key) if key is not None and len(keys) > 1 else None
        metrics = dict(values if values is not None else held.metrics)
        if values is None:
            metrics.update({M.BYTES: held.bytes, M.DURATION_S: round(held.duration_s, 3)})
        rows.append((RunRecord(status=SUCCESS, finished_at=finished_at, partition_key=key,
                               rows_in=held.rows_in if values is None else None,
                               row_count=metrics.get(M.ROW_COUNT),
                               bytes=held.bytes if values is None else None,
                               watermark=held.metrics.get(M.WATERMARK) if values is None else None,
                               error_message=message, **base), metrics))
    return rows


def failure_rows(attempt: Attempt, request: LoadRequest | None, error: BaseException,
                 finished_at: datetime, retries_left: bool) -> LogRows:
    """A failed load's rows, one per partition of the run: `RETRY` when Dagster will try
    again, else `FAILED`, with the error's type and message."""
    status = RETRY if retries_left else FAILED
    keys = request.partition_keys if request else ()
    message = f"{type(error).__name__}: {error}"
    return [(RunRecord(status=status, finished_at=finished_at, partition_key=key,
                       error_message=message, **attempt.fields()), {})
            for key in (keys or (None,))]




def discarded_rows(attempt: Attempt, held: Any, finished_at: datetime, by: str,
                   note: str) -> LogRows:
    """The rows of a held load deleted later (`held` is its `HeldLoad`): `DISCARDED` under the
    run that staged it, one per held partition, with who discarded it (and why)."""
    message = f"discarded by {by}" + (f": {note}" if note else "")
    keys = list(held.held_partitions or held.partition_keys) or [None]
    return [(RunRecord(status=DISCARDED, finished_at=finished_at, partition_key=key,
                       error_message=message, **attempt.fields()), {}) for key in keys]
