"""What one run asks of a table (`LoadRequest`), and the error a spec author can fix (`LoadError`).

Pure: imports neither Spark nor Dagster.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timezone

from etl_assets.core.python_tables import LoadWindow


class LoadError(RuntimeError):
    """A load failed for a reason the spec author can fix; the message names table and field."""


@dataclass(frozen=True)
class LoadRequest:
    """What one run asks of a table: its partitions, watermark and overrides.

    Args:
        run_id: The Dagster run (names the load folder and the Spark job group).
        partition_keys: The partitions of a partitioned table in this run (several for a
            single-run backfill).
        window: `[start, end)` ISO dates covered by those partitions.
        watermark: The incremental column's value at the last successful load.
        full_refresh: Reload everything: no watermark, and write modes that add to the table
            (`append`, `merge`, `delete_insert`) replace it instead.
        run_date: The run's date (UTC), for `{run_date}` in SQL and conditions.
    """

    run_id: str
    partition_keys: tuple[str, ...] = ()
    window: tuple[str, str] | None = None
    watermark: str | None = None
    full_refresh: bool = False
    run_date: str = field(default_factory=lambda: datetime.now(timezone.utc).date().isoformat())

    def load_window(self) -> LoadWindow:
        """The request as a Python table's function sees it (`window`)."""
        start, end = self.window or (None, None)
        return LoadWindow(
            partition_start=date.fromisoformat(start) if start else None,
            partition_end=date.fromisoformat(end) if end else None,
            partition_keys=tuple(self.partition_keys),
            watermark=None if self.full_refresh else self.watermark,
            run_date=date.fromisoformat(self.run_date),
            full_refresh=self.full_refresh,
        )

    def template_values(self) -> dict[str, str]:
        """Values for the `{...}` placeholders of SQL and target conditions."""
        values = {"run_date": self.run_date}
        if self.window:
            values["partition_start"], values["partition_end"] = self.window
        if len(self.partition_keys) == 1:
            values["partition_key"] = self.partition_keys[0]
        if self.watermark is not None:
            values["watermark"] = self.watermark
        return values
