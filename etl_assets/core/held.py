"""A load held back by its audit (write, audit, publish): what it is, and its manifest's JSON.

A held load is a staged folder that a blocking check refused to publish. Its manifest
(`_etl_held.json` in the folder; Spark skips files starting with `_`) holds everything needed
to publish it later exactly as the load would have: where it is, the run's request, the
schema and metrics, and what the table held when it was held (to refuse a publish over a
newer load).

Pure: imports neither Spark nor Dagster.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

MANIFEST = "_etl_held.json"
DEFAULT_RETENTION_DAYS = 7


@dataclass(frozen=True)
class HeldLoad:
    """One held load of one table.

    Attributes:
        table: The table's asset name.
        qualified_name: `<database>.<table>`.
        run_id: The run that staged it.
        location: The staged folder.
        loads_root: The table's folder of load folders.
        mode: The load's write mode.
        partition_keys: The run's partitions (all of them).
        held_partitions: The partitions held back (empty: the whole load).
        window: The run's `[start, end)` dates, if partitioned.
        watermark: The watermark the load started from.
        full_refresh: Whether it was a full refresh.
        run_date: The run's date.
        schema_json: The table's schema as published (Spark's JSON form).
        metrics: The load's metrics (`etl_assets.core.metric_names`).
        per_partition: Partition key -> that partition's footer metrics.
        rows_in: Rows read, if known.
        bytes: Bytes written.
        duration_s: Seconds the load took until it was held.
        reasons: The failed checks' sentences.
        held_at: When it was held (UTC, ISO).
        base: What readers saw when it was held: the table's folder (unpartitioned) or each
            held partition's folder ("" when the table or partition did not exist).
        code_version: The table's code version at the time.
    """

    table: str
    qualified_name: str
    run_id: str
    location: str
    loads_root: str
    mode: str
    partition_keys: tuple[str, ...]
    held_partitions: tuple[str, ...]
    window: tuple[str, str] | None
    watermark: str | None
    full_refresh: bool
    run_date: str
    schema_json: str
    metrics: dict[str, Any]
    per_partition: dict[str, dict[str, Any]]
    rows_in: int | None
    bytes: int
    duration_s: float
    reasons: tuple[str, ...]
    held_at: str
    base: dict[str, str] = field(default_factory=dict)
    code_version: str = ""

    @property
    def manifest_path(self) -> str:
        """Where the manifest lives: in the staged folder."""
        return f"{self.location.rstrip('/')}/{MANIFEST}"

    @property
    def held_partitions_set(self) -> frozenset[str]:
        """`held_partitions` as a set (what `publish` leaves alone)."""
        return frozenset(self.held_partitions)

    @property
    def whole(self) -> bool:
        """Whether the whole load is held (else only `held_partitions`)."""
        return not self.held_partitions

    def expired(self, retention_days: float, now: datetime | None = None) -> bool:
        """Whether it was held longer ago than the retention period (never earlier)."""
        now = now or datetime.now(timezone.utc)
        return now - datetime.fromisoformat(self.held_at) > timedelta(days=retention_days)

    def to_json(self) -> str:
        """The manifest's text: decimals, dates and timestamps keep their type."""
        return json.dumps(_encode(asdict(self)), ensure_ascii=False, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> HeldLoad:
        """A manifest read back (unknown keys from a newer version are ignored)."""
        data = _decode(json.loads(text))
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        for name in ("partition_keys", "held_partitions", "reasons"):
            data[name] = tuple(data.get(name) or ())
        if data.get("window") is not None:
            data["window"] = tuple(data["window"])
        return cls(**data)

    def commands(self) -> str:
        """The two commands a person runs next."""
        return (f"publish with `etl-assets publish {self.table} --run {self.run_id}` or discard "
                f"with `etl-assets discard {self.table} --run {self.run_id}`")


def _encode(value: Any) -> Any:
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, float) and value != value:
        return {"$float": "nan"}
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return {"$float": str(value)}
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1:
            (tag, raw), = value.items()
            if tag == "$decimal":
                return Decimal(raw)
            if tag == "$datetime":
                return datetime.fromisoformat(raw)
            if tag == "$date":
                return date.fromisoformat(raw)
            if tag == "$float":
                return float(raw)
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value
