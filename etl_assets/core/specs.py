"""Table specs: pydantic models for the domains of the defs folder and a loader with precise
errors.

One `HiveTables` component per domain (`etl_assets/defs/<domain>/defs.yaml`). A bad spec fails here, at definitions load time, with one message
naming the file, the table (or source) and the field, never later in a run.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import textwrap
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Any, Literal

import sqlglot
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlglot import exp

from etl_assets.core import python_tables as PT
from etl_assets.core.sql_quoting import escape_string

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Dagster's rules for definition tags (dagster._utils.tags), checked here so that a bad tag
# names its file and table instead of failing the definitions with Dagster's own message.
_TAG_KEY = re.compile(r"^([A-Za-z0-9_.-]{1,63}/)?[A-Za-z0-9_.-]{1,63}$")
_TAG_VALUE = re.compile(r"^[A-Za-z0-9_.-]{0,63}$")


class SpecError(ValueError):
    """A table spec is malformed; the message names the file, the table and the field."""


def _check_identifier(value: str, what: str) -> str:
    if not IDENTIFIER.match(value):
        raise ValueError(
            f"{what} {value!r} is not a valid identifier (letters, digits and _, "
            "not starting with a digit)"
        )
    return value


def _check_columns(values: list[str]) -> list[str]:
    # Any other character is fine: column names reach SQL only through sql_quoting.identifier.
    for column in values:
        if not column.strip():
            raise ValueError(f"column name {column!r} is empty")
    return values


class _Strict(BaseModel):
    # use_attribute_docstrings: the string under a field is its `description` in the JSON
    # schema, which editors show for completion and hover help (pydantic >= 2.7).
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class SourceSpec(_Strict):
    """A source: files read with Spark (`path` + `format`) or an existing Hive table."""

    format: Literal["csv", "parquet", "json", "orc", "table"] = "csv"
    """How to read it: a Spark file format (`csv`, the default, `parquet`, `json`, `orc`), or
    `table` for an existing Hive table named in `table`."""
    path: str | None = None
    """The files to read (required unless format is `table`): relative to this YAML file; may be
    a glob and use `${VAR}` or `${VAR:-default}` from the environment."""
    table: str | None = None
    """The existing Hive table to read, `database.table`: required with format `table`, refused
    with any other format."""
    options: dict[str, str | bool | int | float] = Field(default_factory=dict)
    """Spark reader options for the files, passed as text (`{header: true}` for a CSV with a
    header row); default none. Not used for format `table`."""
    schema_ddl: str | None = Field(default=None, alias="schema")
    """Spark DDL schema of the files (`order_id INT, amount DECIMAL(12,2)`); unset: Spark's own
    (a CSV's columns all text unless `inferSchema`). A `relationship` to it is checked at load."""
    description: str | None = None
    """Shown on the source's asset in the Dagster catalog; default: its format and path (or
    table)."""
    sensor: bool = False
    """`true` (file sources): a `<source>_arrivals` sensor, on by default, runs the unpartitioned
    tables downstream whenever files matching `path` are new or changed. Default false."""
    sensor_interval_s: int = Field(default=30, ge=5, le=86_400)
    """Seconds between two looks of the arrival sensor for new files (default 30, 5 to 86,400)."""


class MetricsSpec(_Strict):
    """Which metrics a table records beyond row count, null counts and date ranges."""

    sum: list[str] | None = None
    """Numeric columns whose sum is recorded (`sum/<column>`) and judged by `sums_anomaly`;
    unset (the default): every numeric column; `[]`: none."""
    categorical: list[str] = Field(default_factory=list)
    """Columns whose distinct values are recorded and watched by the `category_change` check
    (which exists only when this names a column); default none."""
    category_cap: int = Field(default=100, ge=1, le=10_000)
    """Most distinct values listed per categorical column (default 100, 1 to 10,000); beyond it
    the set is judged by its hash and its count only."""

    _columns_sum = field_validator("sum")(lambda v: None if v is None else _check_columns(v))
    _columns_cat = field_validator("categorical")(_check_columns)


class PartitionsSpec(_Strict):
    """Time partitions: one Dagster partition per period, one Hive partition per value.

    `column` holds the period's start date (`YYYY-MM-DD`): the order date for daily tables,
    the first day of the month for monthly ones.
    """

    type: Literal["daily", "monthly"] = "daily"
    """The period of one partition: `daily` (the default) or `monthly`."""
    start: date
    """The first partition's date (`YYYY-MM-DD`); required. No partition exists before it."""
    column: str
    """The output column holding each row's period start date, which is the Hive partition
    column; required. Rows outside the run's periods are dropped."""
    end_offset: int = Field(default=0, ge=0, le=365)
    """Partitions past the last complete period (Dagster's `end_offset`, 0 to 365): 0, the
    default, ends a daily table at yesterday; 1 adds today's, still open."""
    timezone: str = "UTC"
    """The IANA time zone in which periods start and end (default `UTC`); a partitioned table's
    schedule fires in it too."""
    input_windows: dict[str, int] = Field(default_factory=dict)
    """Input -> periods (at least 1): each partition reads that many partitions of a partitioned
    input, ending at its own (`{daily_orders: 7}`); default: partition to partition."""

    _column = field_validator("column")(lambda v: _check_columns([v])[0])

    @field_validator("input_windows")
    @classmethod
    def _windows(cls, value: dict[str, int]) -> dict[str, int]:
        for name, periods in value.items():
            if periods < 1:
                raise ValueError(f"input_windows.{name}: must be at least 1 period, got {periods}")
        return value


_LOOKBACK = re.compile(
    r"^\s*(\d+(?:\.\d+)?)\s*(s|secs?|seconds?|m|mins?|minutes?|h|hours?|d|days?|w|weeks?)\s*$")
_LOOKBACK_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_lookback(value: int | str) -> int | timedelta:
    """An `incremental.lookback`: an amount in a numeric watermark's units, or a duration.

    `3` (an integer, for a numeric watermark column) stays 3; `"2 days"`, `"6 hours"`,
    `"90m"`, `"1 week"` (for a date or timestamp column) become a timedelta.

    Raises:
        ValueError: A negative or non-integer number, a boolean, or text that is no duration.
    """
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"lookback must be a whole number (numeric watermark) or a duration "
                         f"like '2 days' or '6 hours' (date/timestamp watermark), got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"lookback must not be negative, got {value}")
        return value
    match = _LOOKBACK.match(value.lower())
    if not match:
        raise ValueError(f"lookback {value!r} must be a duration like '2 days', '6 hours', "
                         "'30 minutes' or '90s' (or a whole number for a numeric watermark)")
    return timedelta(**{_LOOKBACK_UNITS[match.group(2)[0]]: float(match.group(1))})


class IncrementalSpec(_Strict):
    """Read only source rows past the watermark of the last successful load.

    Attributes:
        column: The watermark column (in the incremental input and in the table).
        input: The input read incrementally (default: the one source input).
        lookback: Re-read rows this far below the watermark, so rows that arrive late are
            loaded too: a duration (`"2 days"`) for a date or timestamp column, a whole
            number for a numeric one. Re-read rows are loaded again, so only modes that
            replace rather than add them accept it (not `append`, `delete_insert`).
        count_skipped: Count the rows the filter drops (`rows_skipped`) in the same read.
            The filter then runs after the count, so the watermark no longer prunes the
            input's files or partitions: turn it off for a large input that only grows.
    """

    column: str
    """The watermark column, in the incremental input and in the table's output: only rows above
    its highest loaded value are read (rows where it is null are skipped); required."""
    input: str | None = None
    """The input read incrementally; default: the one source input, or the one input when none
    is a source (name it when that is ambiguous)."""
    lookback: int | str | None = None
    """Re-read rows this far below the watermark, for late rows: `"2 days"` for a date or
    timestamp column, a whole number for a numeric one; not with `append`, `delete_insert`."""
    count_skipped: bool = True
    """Count the rows the filter drops (`rows_skipped`, judged by `rows_skipped_jump`); default
    true. `false` lets the watermark prune the input's files (a large input that only grows)."""

    _column = field_validator("column")(lambda v: _check_columns([v])[0])

    @field_validator("lookback", mode="before")
    @classmethod
    def _lookback(cls, value: Any) -> Any:
        if value is not None:
            parse_lookback(value)
        return value

    @property
    def lookback_value(self) -> int | timedelta | None:
        """`lookback` parsed: an amount (numeric watermark), a timedelta, or None."""
        return None if self.lookback is None else parse_lookback(self.lookback)


class RetriesSpec(_Strict):
    """Retries of a failed load, as Dagster's `RetryPolicy`."""

    max: int = Field(ge=0, le=20)
    """How many times a failed load is retried, 0 to 20; required. 0: never."""
    delay_s: float = Field(default=0, ge=0, le=86_400)
    """Seconds to wait before a retry (default 0: at once; at most 86,400)."""
    backoff: Literal["linear", "exponential"] | None = None
    """How the delay grows with each retry: `linear` or `exponential`; unset: the same delay
    every time."""
    jitter: bool = False
    """`true`: each delay is made randomly longer or shorter, so retries do not fire in step;
    default false."""


class ScheduleSpec(_Strict):
    """When a table (or a whole domain) loads: a cron expression in a time zone."""

    cron: str
    """A five-field cron expression (minute hour day month weekday), e.g. `"0 6 * * *"`;
    required. A partitioned table's schedule takes only `M H * * *`."""
    timezone: str = "UTC"
    """The IANA time zone the cron is read in (default `UTC`). A partitioned table's schedule
    fires in `partitions.timezone`: left unset it takes that zone, another is refused."""
    running: bool = False
    """`true`: the schedule starts running; default false, stopped until turned on in the UI's
    Automation page."""

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        if len(value.split()) != 5:
            raise ValueError(f"cron {value!r} must have 5 fields (minute hour day month weekday)")
        return value


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")


def parse_duration(text: str) -> timedelta:
    """`90s`, `30m`, `26h`, `2d` as a timedelta.

    Raises:
        ValueError: Any other form.
    """
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"duration {text!r} must look like 90s, 30m, 26h or 2d")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
    return timedelta(**{unit: float(match.group(1))})


class FreshnessSpec(_Strict):
    """How fresh the table must be: materialized within `max_age` (warn after `warn_after`)."""

    max_age: str
    """How long after its last materialization the table is marked stale (failed): `90s`,
    `30m`, `26h` or `2d`; required."""
    warn_after: str | None = None
    """The age at which it is marked with a warning first: same form, shorter than `max_age`;
    unset: no warning stage."""

    @model_validator(mode="after")
    def _durations(self) -> FreshnessSpec:
        fail = parse_duration(self.max_age)
        if self.warn_after is not None and parse_duration(self.warn_after) >= fail:
            raise ValueError("freshness.warn_after must be shorter than max_age")
        return self


Severity = Literal["WARN", "ERROR"]
RULES = ("auto", "relative_change", "mad", "zscore", "bounds")


class AnomalyCheckSpec(_Strict):
    """Tuning of one anomaly check; unset fields inherit from `checks.defaults`.

    Field names match `etl_assets.core.anomaly.AnomalyConfig`, where each is documented.
    """

    enabled: bool | None = None
    """`false` turns the check off (under `checks.columns`: that column's sum); unset:
    inherited, on by default."""
    severity: Severity | None = None
    """`WARN` or `ERROR`, how a failure is reported; unset: inherited, `WARN` by default."""
    blocking: bool | None = None
    """`true` (ERROR only): the staged load is judged before the switch and a failure holds it
    back, skipping the downstream tables; unset: inherited, false by default."""
    rule: Literal["auto", "relative_change", "mad", "zscore", "bounds"] | None = None
    """The anomaly rule: `auto` (the default, adapts to the series), `relative_change`, `mad`,
    `zscore`, or `bounds` (only `min` and `max`, no history); unset: inherited."""
    max_change: float | None = Field(default=None, gt=0)
    """Relative change as a fraction of the baseline (0.3 = 30% up or down): the band of
    `relative_change` (0.5 when unset), the narrowest band of `auto` (0.1 when unset)."""
    window: int | None = Field(default=None, ge=1, le=1000)
    """How many of the most recent usable earlier loads form the baseline (default 30, 1 to
    1,000); with a weekly season, loads on the same weekday."""
    min_history: int | None = Field(default=None, ge=1, le=1000)
    """With fewer usable earlier loads than this the check passes, saying `insufficient
    history` (default 5; at most `window`)."""
    mad_threshold: float | None = Field(default=None, gt=0)
    """Allowed distance from the median in robust sigmas, for `mad` and `auto`, and the cut-off
    for dropping outliers from the baseline (default 3.5)."""
    z_threshold: float | None = Field(default=None, gt=0)
    """Allowed distance from the mean in standard deviations, for `zscore` (default 3)."""
    min: float | None = None
    """Absolute lower bound in the metric's unit (rows, the column's sum, a 0-1 null fraction),
    checked by every rule, even without history; unset: none."""
    max: float | None = None
    """Absolute upper bound in the metric's unit, checked like `min`; unset: none."""
    abs_floor: float | None = Field(default=None, ge=0)
    """Changes smaller than this, in the metric's unit, are never flagged (default 10, so 5 -> 8
    rows passes; 0.01 for null fractions)."""
    weekday_seasonality: bool | None = None
    """Judge against the same weekday only: `true` always, `false` never; unset: only when a
    weekly pattern is found in daily history."""
    level_shift_runs: int | None = Field(default=None, ge=1, le=100)
    """A new level held by this many consecutive loads becomes the baseline (default 5, 1 to
    100)."""
    zero_is_anomaly: bool | None = None
    """Flag a zero when the baseline is non-zero and none of its loads was zero (default true;
    false for null fractions, where zero is good)."""

    def merged(self, base: AnomalyCheckSpec) -> AnomalyCheckSpec:
        """This spec with unset fields taken from `base`."""
        values = base.model_dump(exclude_none=True) | self.model_dump(exclude_none=True)
        return AnomalyCheckSpec(**values)


class ChangeCheckSpec(_Strict):
    """A `schema_change` or `category_change` check."""

    enabled: bool = True
    """`false` turns the check off; default on."""
    severity: Severity = "WARN"
    """`WARN` (the default) or `ERROR`, how a failure is reported."""
    blocking: bool = False
    """`true` (ERROR only): the staged load is judged before the switch and a failure holds it
    back, skipping the downstream tables; default false."""


class SkippedRowsCheckSpec(ChangeCheckSpec):
    """The `rows_skipped_jump` check of an incremental table (`anomaly.judge_skipped_rows`).

    Attributes:
        max_increase: Allowed growth of `rows_skipped` over the highest of the last `window`
            loads, as a fraction (0.5 = 50%); after loads that skipped none, any is flagged.
        window: How many earlier loads form that baseline.
    """

    max_increase: float = Field(default=0.5, ge=0)
    """Allowed growth of `rows_skipped` over the highest of the last `window` loads, as a
    fraction (default 0.5 = 50%); after loads that skipped none, any skipped row is flagged."""
    window: int = Field(default=10, ge=1, le=1000)
    """How many earlier loads form that baseline (default 10, 1 to 1,000)."""


class ChecksSpec(_Strict):
    """The table's asset checks. Every table gets them by default, with no YAML.

    - `defaults`: applied to every anomaly check of the table (`row_count`, `sums`, `columns`).
    - `row_count`: the `row_count_anomaly` check.
    - `sums`: the `sums_anomaly` check over every summed column's `sum/<column>`.
    - `nulls`: the `null_fraction_anomaly` check over every column's null fraction.
    - `columns`: per summed column overrides of `sums` (e.g. turn one column off).
    - `schema_change`, `category_change`: columns or category values appearing or vanishing.
    - `rows_skipped`: the `rows_skipped_jump` check of an incremental table.
    """

    defaults: AnomalyCheckSpec = Field(default_factory=AnomalyCheckSpec)
    """Settings for every anomaly check of the table (`row_count`, `sums`, `nulls`, `columns`);
    a check's own fields win."""
    row_count: AnomalyCheckSpec = Field(default_factory=AnomalyCheckSpec)
    """The `row_count_anomaly` check: the load's row count (`dagster/row_count`) against its
    history."""
    sums: AnomalyCheckSpec = Field(default_factory=AnomalyCheckSpec)
    """The `sums_anomaly` check: every summed column's `sum/<column>` against its history."""
    nulls: AnomalyCheckSpec = Field(default_factory=AnomalyCheckSpec)
    """The `null_fraction_anomaly` check: each column's null fraction (0-1) against its history;
    its `abs_floor` (0.01) and `zero_is_anomaly` (false) come from here only, not `defaults`."""
    columns: dict[str, AnomalyCheckSpec] = Field(default_factory=dict)
    """Summed column -> overrides of `sums` for that column (`{discount: {enabled: false}}`);
    default none."""
    schema_change: ChangeCheckSpec = Field(default_factory=ChangeCheckSpec)
    """The `schema_change` check: columns added, removed or retyped since the previous load."""
    category_change: ChangeCheckSpec = Field(default_factory=ChangeCheckSpec)
    """The `category_change` check: new or vanished values of the `metrics.categorical` columns
    (no check when none is listed)."""
    rows_skipped: SkippedRowsCheckSpec = Field(default_factory=SkippedRowsCheckSpec)
    """The `rows_skipped_jump` check of an incremental table (unless `count_skipped: false`):
    a jump in the rows the watermark filter skipped."""

    @model_validator(mode="after")
    def _blocking_needs_error(self) -> ChecksSpec:
        for name in ("row_count", "sums", "nulls", "schema_change", "category_change",
                     "rows_skipped"):
            spec = getattr(self, name)
            merged = spec.merged(self.defaults) if isinstance(spec, AnomalyCheckSpec) else spec
            if merged.blocking and merged.severity != "ERROR":
                raise ValueError(
                    f"checks.{name}: blocking needs severity: ERROR (only ERROR checks block)"
                )
        return self


QUALITY_KINDS = ("not_null", "unique", "accepted_values", "range", "pattern", "row_count",
                 "freshness", "relationship", "sql")
ROW_LEVEL_KINDS = ("not_null", "accepted_values", "range", "pattern")
_FRACTION_KINDS = ("accepted_values", "range", "pattern", "unique", "relationship", "sql")
RuleValue = int | float | datetime | date | str


def _check_bounds(rule: Any, kind: str) -> Any:
    """A `range` or `row_count` rule has a bound, and `min` is not above `max`."""
    if rule.min is None and rule.max is None:
        raise ValueError(f"{kind} needs min, max or both")
    try:
        inverted = rule.min is not None and rule.max is not None and rule.min > rule.max
    except TypeError as err:
        raise ValueError(f"{kind} min {rule.min!r} and max {rule.max!r} are not of one "
                         "type") from err
    if inverted:
        raise ValueError(f"{kind} min {rule.min!r} is above max {rule.max!r}")
    return rule


class AcceptedValuesRule(_Strict):
    """`accepted_values`: every non-null value of `column` is one of `values`."""

    column: str
    """The column judged."""
    values: list[bool | int | float | str] = Field(min_length=1)
    """The allowed values, at least one; nulls pass, NaN does not."""

    _column = field_validator("column")(lambda v: _check_columns([v])[0])


class RangeRule(_Strict):
    """`range`: non-null values of `column` lie in `[min, max]` (inclusive, either optional)."""

    column: str
    """The column judged; nulls pass, NaN counts as outside the range."""
    min: RuleValue | None = None
    """Lowest allowed value, inclusive: a number, date or timestamp of the column's type; unset:
    no lower bound (give `min`, `max` or both)."""
    max: RuleValue | None = None
    """Highest allowed value, inclusive, like `min`; unset: no upper bound."""

    _column = field_validator("column")(lambda v: _check_columns([v])[0])

    _bounds = model_validator(mode="after")(lambda self: _check_bounds(self, "range"))


class PatternRule(_Strict):
    """`pattern`: non-null values of `column` (as text) contain a match of `regex` (Java
    syntax; anchor with `^...$` to match the whole value)."""

    column: str
    """The column judged, read as text; nulls pass."""
    regex: str
    """A Java regular expression the value must contain a match of; anchor it with `^...$` to
    match the whole value."""

    _column = field_validator("column")(lambda v: _check_columns([v])[0])

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as err:
            raise ValueError(f"regex {value!r} does not compile: {err}") from err
        return value


class RowCountRule(_Strict):
    """`row_count`: the load wrote between `min` and `max` rows (inclusive)."""

    min: int | None = Field(default=None, ge=0)
    """Fewest rows the load may write, inclusive; unset: no lower bound (give `min`, `max` or
    both)."""
    max: int | None = Field(default=None, ge=0)
    """Most rows the load may write, inclusive; unset: no upper bound."""

    _bounds = model_validator(mode="after")(lambda self: _check_bounds(self, "row_count"))


class FreshnessRule(_Strict):
    """`freshness`: the newest value of a date/timestamp `column` is at most `max_age` old."""

    column: str
    """The date or timestamp column whose newest value is judged; an empty table, or a column
    of nulls only, fails."""
    max_age: str
    """How old the newest value may be when the table loads: `90s`, `30m`, `26h` or `2d` (a
    date counts from its midnight UTC)."""

    _column = field_validator("column")(lambda v: _check_columns([v])[0])

    @field_validator("max_age")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value


class RelationshipRule(_Strict):
    """`relationship`: every non-null `column` value exists in `to` (`table.column`)."""

    column: str
    """This table's column whose every non-null value must exist in `to`."""
    to: str
    """The referenced column, `<table>.<column>` of a table or source of the project (a project
    table is then loaded first)."""

    _column = field_validator("column")(lambda v: _check_columns([v])[0])

    @field_validator("to")
    @classmethod
    def _target(cls, value: str) -> str:
        table, _, column = value.partition(".")
        if not table or not column:
            raise ValueError(f"to {value!r} must be <table>.<column> (a table or source of the "
                             "project)")
        _check_identifier(table, "relationship table")
        _check_columns([column])
        return value


_CHECK_NAME = re.compile(r"^[A-Za-z0-9_]+$")


class QualityRuleSpec(_Strict):
    """One data-quality rule of a table: exactly one rule kind plus how a failure is treated.

    Each rule becomes a Dagster asset check named `name` (default: the kind and its columns).
    `severity` WARN (default) or ERROR; `blocking: true` (ERROR only) skips the downstream
    tables of the run when the rule fails. `on_fail: quarantine` (row-level kinds only) moves
    the offending rows to `<table>__rejected` and loads the rest. `max_null_fraction`
    (`not_null`) and `max_invalid_fraction` (other row kinds) tolerate that fraction of rows.
    """

    name: str | None = None
    """The asset check's name (letters, digits, `_`); default: the kind and its columns
    (`not_null_order_id`), or `sql_<n>` for an `sql` rule at position n."""
    description: str | None = None
    """Shown on the check in the UI; default: the rule as written and its severity."""
    severity: Severity = "WARN"
    """`WARN` (the default) or `ERROR`; a failed WARN rule, or a non-blocking ERROR one, leaves
    the run successful."""
    blocking: bool = False
    """`true` (ERROR only): the staged load is judged before the switch and a failure holds it
    back, skipping the downstream tables; default false."""
    on_fail: Literal["report", "quarantine"] = "report"
    """`report` (the default): only the check fails; `quarantine` (row-level kinds): offending
    rows go to `<table>__rejected` and the rest load."""
    max_null_fraction: float | None = Field(default=None, ge=0, le=1)
    """`not_null` only: the fraction of rows (0-1) allowed to hold a null; default 0."""
    max_invalid_fraction: float | None = Field(default=None, ge=0, le=1)
    """All kinds but `not_null`, `row_count` and `freshness`: the fraction of judged rows (0-1)
    allowed to offend; default 0."""
    not_null: list[str] | None = Field(default=None, min_length=1)
    """Rule kind: these columns (at least one) hold no null, nor NaN in a float column."""
    unique: list[str] | None = Field(default=None, min_length=1)
    """Rule kind: no two rows share a value of these columns (several: a composite key); rows
    with a null key part are not judged."""
    accepted_values: AcceptedValuesRule | None = None
    """Rule kind: every non-null value of `column` is one of `values`."""
    range: RangeRule | None = None
    """Rule kind: non-null values of `column` lie between `min` and `max`, inclusive."""
    pattern: PatternRule | None = None
    """Rule kind: non-null values of `column` contain a match of `regex`."""
    row_count: RowCountRule | None = None
    """Rule kind: the load wrote between `min` and `max` rows."""
    freshness: FreshnessRule | None = None
    """Rule kind: the newest value of `column` is at most `max_age` old."""
    relationship: RelationshipRule | None = None
    """Rule kind: every non-null value of `column` exists in the column `to`."""
    sql: str | None = None
    """Rule kind: a Spark SQL query reading the table as `{table}` that returns the offending
    rows (`SELECT * FROM {table} WHERE ...`); it fails when any row comes back."""

    _not_null = field_validator("not_null")(lambda v: None if v is None else _check_columns(v))
    _unique = field_validator("unique")(lambda v: None if v is None else _check_columns(v))

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not _CHECK_NAME.match(value):
            raise ValueError(f"name {value!r} may hold only letters, digits and _ (it names "
                             "the asset check)")
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> QualityRuleSpec:
        kinds = [k for k in QUALITY_KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            found = f"got {', '.join(kinds)}" if kinds else "got none"
            raise ValueError(f"a rule has exactly one of {', '.join(QUALITY_KINDS)}; {found}")
        kind = kinds[0]
        if self.blocking and self.severity != "ERROR":
            raise ValueError("blocking needs severity: ERROR (only ERROR checks block)")
        if self.on_fail == "quarantine" and kind not in ROW_LEVEL_KINDS:
            raise ValueError(f"on_fail: quarantine applies to row-level rules "
                             f"({', '.join(ROW_LEVEL_KINDS)}), not {kind}")
        if self.max_null_fraction is not None and kind != "not_null":
            raise ValueError(f"max_null_fraction applies to not_null, not {kind} "
                             "(use max_invalid_fraction)")
        if self.max_invalid_fraction is not None and kind not in _FRACTION_KINDS:
            hint = " (use max_null_fraction)" if kind == "not_null" else ""
            raise ValueError(f"max_invalid_fraction does not apply to {kind}{hint}")
        if kind == "sql":
            if "{table}" not in self.sql:
                raise ValueError("sql must read the table as {table}: SELECT ... FROM {table} "
                                 "WHERE <condition of bad rows>")
            sql_tables(self.sql.replace("{table}", "__quality_table"))
        return self

    @property
    def kind(self) -> str:
        """The rule kind (`not_null`, `range`, ...)."""
        return next(k for k in QUALITY_KINDS if getattr(self, k) is not None)

    @property
    def columns(self) -> list[str]:
        """The table's columns the rule reads (none for `row_count` and `sql`)."""
        value = getattr(self, self.kind)
        if isinstance(value, list):
            return list(value)
        column = getattr(value, "column", None)
        return [column] if column else []

    @property
    def reads(self) -> set[str]:
        """The other tables or sources the rule's query reads (a relationship's target, the
        tables an `sql` rule joins)."""
        if self.kind == "relationship":
            return {self.relationship.to.partition(".")[0]}
        if self.kind == "sql":
            return sql_tables(self.sql.replace("{table}", "__quality_table")) - {
                "__quality_table"}
        return set()

    @property
    def allowed_fraction(self) -> float:
        """The fraction of judged rows that may violate the rule (0: none)."""
        return self.max_null_fraction or self.max_invalid_fraction or 0.0

    def check_name(self, position: int) -> str:
        """The asset check's name: `name`, else the kind and its columns (`not_null_id`).

        Columns that are not plain identifiers (unicode names) are replaced by a short hash;
        `sql` rules without a name are `sql_<position>` (1-based).
        """
        if self.name:
            return self.name
        if self.kind == "sql":
            return f"sql_{position}"
        parts = [self.kind]
        for column in self.columns:
            if IDENTIFIER.match(column):
                parts.append(column)
            else:
                parts.append("c" + hashlib.sha256(column.encode()).hexdigest()[:6])
        return "_".join(parts)


class TableSpec(_Strict):
    """One Hive target table: its rows, how it is written and what is measured.

    The rows are the `sql` over the inputs for a table of a YAML file (`SqlTableSpec`), or
    what the function returns for a Python table (`etl_assets.core.python_tables.table`), which
    has no `sql`. Both are validated by this model.
    """

    name: str
    """The Hive table's name and the Dagster asset key: a plain identifier, unique across all
    files, tables and sources."""
    sql: str | None = None
    """A YAML table's rows: one Spark SQL SELECT over its inputs (required there); a Python
    table has none, its function returns the rows."""
    inputs: list[str] = Field(default_factory=list)
    """The sources and tables this table reads, by name: its upstream in the dependency graph.
    Its sql may read only these; default none."""
    description: str | None = None
    """Shown on the asset in the Dagster catalog; default `Hive table <database>.<name>`."""
    columns: dict[str, str] = Field(default_factory=dict)
    """Column name -> description, shown in the catalog's column table."""
    owners: list[str] = Field(default_factory=list)
    """The asset's owners in Dagster: e-mail addresses or `team:<name>`; default none."""
    group: str | None = None
    """The asset's group in Dagster; default: the domain."""
    tags: dict[str, str] = Field(default_factory=dict)
    """Dagster tags on the asset (`{tier: gold}`): letters, digits, `_ - .`, at most 63, a key
    with an optional `namespace/` in front; default none."""
    broadcast: list[str] = Field(default_factory=list)
    """Inputs to broadcast in joins (small lookups sent whole to every executor); each one of
    `inputs`. Default none."""
    cache: bool = False
    """`true`: keep the written table in Spark's cache for later steps in the same session;
    default false."""
    repartition: PositiveInt | None = None
    """Shuffle the new rows into this many Spark partitions before the write (about as many
    files per partition written); not with `coalesce`. Unset: as the query makes them."""
    coalesce: PositiveInt | None = None
    """Merge the new rows into at most this many Spark partitions, without a shuffle (fewer,
    larger files); not with `repartition`. Unset: as the query makes them."""
    partition_by: list[str] = Field(default_factory=list)
    """Hive partition columns (one partition per value), in the output; not with `partitions`.
    Default none."""
    write_mode: Literal["overwrite", "append", "insert_overwrite", "delete_insert", "merge"] = (
        "overwrite"
    )
    """How a load changes the table: `overwrite` (the default, all rows), `append`,
    `insert_overwrite` (the partitions written), `delete_insert`, `merge` (upsert)."""
    target_condition: str | None = None
    """`delete_insert` only, and required there: a Spark SQL condition on the rows to delete
    before the insert (`base_dt = '{run_date}'`)."""
    merge_keys: list[str] = Field(default_factory=list)
    """`merge` only, and required there: the key columns; rows of the table whose key is among
    the new rows' keys are replaced."""
    partitions: PartitionsSpec | None = None
    """Daily or monthly time partitions: a partitioned Dagster asset, one Hive partition per
    period; not with `partition_by`. Unset: none."""
    incremental: IncrementalSpec | None = None
    """Read only the input rows past the watermark of the last successful load; unset: every
    load reads all rows."""
    retries: RetriesSpec | None = None
    """Retries of a failed load (Dagster's `RetryPolicy`); unset: none."""
    schedule: ScheduleSpec | None = None
    """The table's own schedule, which takes it out of the domain's; unset: the domain's
    schedule, if any."""
    freshness: FreshnessSpec | None = None
    """How recently the table must have been materialized (Dagster's freshness policy); unset:
    no policy."""
    auto_materialize: bool = False
    """`true`: Dagster's automation materializes the table whenever an input is updated;
    default false."""
    metrics: MetricsSpec = Field(default_factory=MetricsSpec)
    """Which column sums and category sets are recorded besides row count, null counts and date
    ranges; default: every numeric column's sum, no categories."""
    checks: ChecksSpec = Field(default_factory=ChecksSpec)
    """Tuning of the anomaly and change checks, all on by default without it."""
    quality: list[QualityRuleSpec] = Field(default_factory=list)
    """Data-quality rules, each an asset check on the table; default none."""
    # Left out of the dump, so of `code_version`: it describes the rows, it does not change
    # them (a Python table's source, decorator included, versions it).
    column_lineage: dict[str, list[str]] = Field(default_factory=dict, exclude=True)
    """A Python table's column lineage, `{"out_col": ["input.col", ...]}`; a SQL table must
    not set it (its lineage is read from its sql). Default none."""

    _name = field_validator("name")(lambda v: _check_identifier(v, "table name"))
    _partition_by = field_validator("partition_by")(_check_columns)

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: dict[str, str]) -> dict[str, str]:
        for key, text in value.items():
            if not _TAG_KEY.match(key):
                raise ValueError(f"tag key {key!r} may hold only letters, digits, _, - and . "
                                 "(at most 63, with one optional namespace/ in front)")
            if not _TAG_VALUE.match(text):
                raise ValueError(f"tag {key}: value {text!r} may hold only letters, digits, "
                                 "_, - and . (at most 63)")
        return value

    @field_validator("sql")
    @classmethod
    def _sql_not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("sql is empty")
        return value

    @model_validator(mode="after")
    def _lineage_refs(self) -> TableSpec:
        for column, refs in self.column_lineage.items():
            _check_columns([column])
            for ref in refs:
                source, _, name = ref.partition(".")
                if source not in self.inputs or not name.strip():
                    raise ValueError(f"field 'column_lineage.{column}': {ref!r} must be "
                                     f"<input>.<column>, with an input of {self.inputs}")
        return self

    @model_validator(mode="after")
    def _write_mode_fields(self) -> TableSpec:
        if self.write_mode == "delete_insert" and not self.target_condition:
            raise ValueError("write_mode delete_insert needs target_condition (rows to delete)")
        if self.target_condition and self.write_mode != "delete_insert":
            raise ValueError("target_condition applies only to write_mode: delete_insert")
        if self.write_mode == "merge" and not self.merge_keys:
            raise ValueError("write_mode merge needs merge_keys (the columns of the key)")
        if self.merge_keys and self.write_mode != "merge":
            raise ValueError("merge_keys applies only to write_mode: merge")
        if self.write_mode == "insert_overwrite" and not self.hive_partition_columns:
            raise ValueError("write_mode insert_overwrite needs partition_by or partitions")
        if self.partitions and self.partition_by:
            raise ValueError("give either partitions (time partitions) or partition_by")
        if self.target_condition:
            try:
                sqlglot.parse_one(render_template(self.target_condition), read="spark")
            except sqlglot.errors.SqlglotError as err:
                raise ValueError(f"target_condition does not parse: {err}") from err
        return self

    @property
    def hive_partition_columns(self) -> list[str]:
        """The Hive partition columns: the time partition column or `partition_by`."""
        return [self.partitions.column] if self.partitions else list(self.partition_by)


class SqlTableSpec(TableSpec):
    """A table of a YAML file: its rows are its `sql` (required)."""

    sql: str
    """The rows: one Spark SQL SELECT reading only `inputs`, by name; required. Placeholders
    such as `'{partition_start}'`, `'{partition_end}'`, `'{watermark}'` go inside quotes."""


class DomainSpec(_Strict):
    """The attributes of one `HiveTables` component: `defs/<domain>/defs.yaml`."""

    domain: str | None = None
    """The domain's name: its tables' default Dagster group; default: the folder's name (the
    Python table modules beside defs.yaml join it)."""
    database: str = "etl_demo"
    """The Hive database of this domain's tables (default `etl_demo`), a plain identifier; the
    environment may add a prefix or suffix (`etl_demo_staging`)."""
    description: str | None = None
    """What the domain holds, for readers of the file."""
    schedule: ScheduleSpec | None = None
    """A schedule for the domain: one run of its unpartitioned tables, and one per partitioned
    table (the just-closed partition); tables with their own schedule are left out."""
    sources: dict[str, SourceSpec] = Field(default_factory=dict)
    """Source name -> source: files, or existing Hive tables, that tables read by name; names
    are plain identifiers, unique across all domains. Default none."""
    tables: list[SqlTableSpec]
    """The domain's SQL tables, each a Hive table and a Dagster asset; required (`[]` for a
    domain of Python tables only)."""

    _database = field_validator("database")(lambda v: _check_identifier(v, "database"))

    @field_validator("sources")
    @classmethod
    def _source_names(cls, value: dict[str, SourceSpec]) -> dict[str, SourceSpec]:
        for name in value:
            _check_identifier(name, "source name")
        return value


@dataclass(frozen=True)
class Source:
    """A validated source with its file path resolved against the spec file's folder."""

    name: str
    spec: SourceSpec
    domain: str
    file: Path
    resolved_path: str | None
    line: int | None = field(default=None, compare=False)  # of its entry, 1-based


@dataclass(frozen=True)
class Table:
    """A validated table spec with where it came from.

    A Python table carries its function (`python_tables.table`) and the function's source
    text, read when the project loaded; a YAML table has its `spec.sql` instead.
    """

    spec: TableSpec
    domain: str
    database: str
    file: Path
    function: Callable[..., Any] | None = field(default=None, compare=False)
    function_source: str | None = field(default=None, compare=False)
    line: int | None = field(default=None, compare=False)  # of its entry (or def), 1-based

    @property
    def where(self) -> str:
        """`<file>: table '<name>'`, or `<file>: function '<name>'` for a Python table (with
        the table's name when it differs), to start an error message."""
        if self.function is None:
            return f"{self.file}: table '{self.name}'"
        function = self.function.__name__
        named = "" if function == self.name else f" (table '{self.name}')"
        return f"{self.file}: function '{function}'{named}"

    @property
    def name(self) -> str:
        """The asset key and the Hive table's name."""
        return self.spec.name

    @property
    def qualified_name(self) -> str:
        """`database.table`."""
        return f"{self.database}.{self.spec.name}"

    @property
    def incremental_input(self) -> str | None:
        """The input read past the watermark, if the table is incremental."""
        incremental = self.spec.incremental
        if incremental is None:
            return None
        return incremental.input or self.spec.inputs[0]

    @property
    def rule_reads(self) -> list[str]:
        """Tables and sources the quality rules read besides the table itself (the rules'
        queries run after the load, so a project table among them must be loaded first)."""
        names = set().union(*(rule.reads for rule in self.spec.quality))
        return sorted(names - {self.name})

    @property
    def code_version(self) -> str:
        """Hash of the spec (and of a Python table's function source): changes exactly when
        the table's definition changes."""
        payload = f"{self.database}\n{self.spec.model_dump_json(by_alias=True)}"
        if self.function is not None:
            payload += f"\n{self.function_source}"
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Project:
    """All tables and sources of a pipelines folder, in dependency order."""

    tables: dict[str, Table]
    sources: dict[str, Source]
    domain_schedules: dict[str, ScheduleSpec] = field(default_factory=dict)

    def upstream(self, name: str) -> list[str]:
        """The inputs of table `name`."""
        return list(self.tables[name].spec.inputs)


def _known_fields(model: type[BaseModel] | None, loc: list[Any]) -> list[str]:
    """The field names (YAML spelling) of the model at `loc` below `model`, for a hint."""
    for part in loc:
        field = model.model_fields.get(str(part)) if model is not None else None
        annotation = field.annotation if field is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    if model is None:
        return []
    return [info.alias or name for name, info in model.model_fields.items()]


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand(text: str, file: Path, source: str) -> str:
    """Expand `${VAR}` and `${VAR:-default}` in a source path from the environment."""

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = os.environ.get(name) or default
        if value is None:
            raise SpecError(
                f"{file}: source '{source}': field 'path': environment variable {name} is not "
                f"set; set it or write ${{{name}:-default}}"
            )
        return value

    return _ENV_REF.sub(replace, text)


def _format_validation(
    err: ValidationError, raw: dict[str, Any], table: dict[str, Any] | None = None
) -> list[str]:
    """One line per error: where (table, rule or source), the field and the problem.

    `raw` is the YAML file's contents and `err` DomainSpec's; or `table` is a Python table's
    options and `err` TableSpec's (the caller names the function).
    """
    lines = []
    for item in err.errors():
        loc = list(item["loc"])
        where = ""
        model: type[BaseModel] | None = DomainSpec
        in_table = table is not None
        entry: Any = table
        if table is None and loc[:1] == ["tables"] and len(loc) > 1 and isinstance(loc[1], int):
            tables = raw.get("tables") or []
            entry = tables[loc[1]] if loc[1] < len(tables) else {}
            name = entry.get("name") if isinstance(entry, dict) else None
            where = f"table '{name}'" if name else f"table #{loc[1] + 1}"
            loc = loc[2:]
            in_table = True
        if in_table:
            model = TableSpec
            if loc[:1] == ["quality"] and len(loc) > 1 and isinstance(loc[1], int):
                where = ": ".join(p for p in (where, _rule_label(entry, loc[1])) if p)
                loc = loc[2:]
                model = QualityRuleSpec
        elif loc[:1] == ["sources"] and len(loc) > 1:
            where = f"source '{loc[1]}'"
            loc = loc[2:]
            model = SourceSpec
        field = ".".join(str(p) for p in loc)
        message = item["msg"]
        value = item.get("input")
        if item["type"] == "extra_forbidden":
            message = "unknown field"
            close = difflib.get_close_matches(str(loc[-1]), _known_fields(model, loc[:-1]), n=1)
            if close:
                message += f" (did you mean '{close[0]}'?)"
        elif item["type"] == "missing":
            message = "missing required field"
        elif item["type"] == "value_error":
            message = message.removeprefix("Value error, ")
        elif item["type"] in ("model_type", "dict_type") and not field:
            message = f"expected a mapping of fields, got {value!r}"
        elif isinstance(value, (str, int, float, bool)) or value is None:
            message = f"{message} (got {value!r})"
        parts = [p for p in (where, f"field '{field}'" if field else "") if p]
        lines.append(f"{': '.join(parts + [message])}")
    return lines


def _rule_label(entry: Any, index: int) -> str:
    """`rule #2 'not_null_id'` for the error messages: position and name (or kind)."""
    rules = entry.get("quality") if isinstance(entry, dict) else None
    rule = rules[index] if isinstance(rules, list) and index < len(rules) else None
    label = f"rule #{index + 1}"
    if isinstance(rule, dict):
        name = rule.get("name") or next((k for k in QUALITY_KINDS if k in rule), None)
        if name:
            label += f" '{name}'"
    return label


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise SpecError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from err
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise SpecError(f"{path}:{where}: YAML syntax error: {problem}") from err
    if not isinstance(raw, dict):
        found = "the file is empty" if raw is None else f"got a {type(raw).__name__}"
        raise SpecError(f"{path}: expected a mapping with 'type:' and 'attributes:' at the top "
                        f"level, {found}")
    return raw


TEMPLATE_FIELDS = ("partition_start", "partition_end", "partition_key", "run_date", "watermark")
_PLACEHOLDER = re.compile(r"\{(" + "|".join(TEMPLATE_FIELDS) + r")\}")


def render_template(text: str, values: dict[str, str] | None = None) -> str:
    """Fill `{partition_start}`, `{partition_end}`, `{partition_key}`, `{run_date}` and
    `{watermark}` in SQL; other braces are left alone. Without values, sample dates are used
    (for parsing at load time).

    Values are escaped for a string literal, where the specs place them (`'{watermark}'`,
    `DATE'{run_date}'`): a watermark is data (the highest value of a column) and may hold a
    quote, a backslash or a newline, which must not end the literal. Dates and numbers are
    left as they are.
    """
    values = values or {}
    return _PLACEHOLDER.sub(lambda m: escape_string(values.get(m.group(1), "2000-01-01")), text)


def sql_tables(sql: str) -> set[str]:
    """Names of the tables a Spark SQL query reads, CTE names excluded.

    Raises:
        ValueError: When the SQL does not parse, with the parser's message.
    """
    try:
        statements = sqlglot.parse(render_template(sql), read="spark")
    except sqlglot.errors.ParseError as err:
        raise ValueError(f"sql does not parse: {_parse_problem(err)}") from err
    except sqlglot.errors.SqlglotError as err:  # TokenError: unclosed quote or backtick
        raise ValueError(f"sql does not parse: {err} (an unclosed quote or backtick?)") from err
    if len(statements) != 1 or statements[0] is None:
        raise ValueError("sql must be exactly one SELECT statement")
    tree = statements[0]
    if not isinstance(tree, exp.Query):
        raise ValueError(f"sql must be a query (SELECT ...), got {tree.key.upper()}")
    # Spark resolves CTE and temporary view names case-insensitively.
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    names = set()
    for table in tree.find_all(exp.Table):
        if not table.name:
            continue
        full = ".".join(p for p in (table.db, table.name) if p)
        if full.lower() not in ctes:
            names.add(full)
    return names


_TOKEN_REPR = re.compile(r"<Token token_type: [^,]*, text: (.*?), line: \d+, col: \d+.*?>")
_CLASS_REPR = re.compile(r"<class '(?:\w+\.)*(\w+)'>")


def _parse_problem(err: sqlglot.errors.ParseError) -> str:
    """sqlglot's first parse error as one plain line: the problem, where, and near what."""
    if not err.errors:
        return str(err)
    first = err.errors[0]
    description = _TOKEN_REPR.sub(r"'\1'", str(first.get("description", ""))).strip()
    description = description.replace("'SENTINEL'", "the end of the sql")
    description = _CLASS_REPR.sub(r"\1", description)
    line, col, near = first.get("line"), first.get("col"), first.get("highlight")
    where = f" at line {line}, column {col} of the sql" if line is not None else ""
    near_text = f" near {near!r}" if near else ""
    return f"{description}{where}{near_text}"


def sql_columns(sql: str) -> list[str] | None:
    """The output column names of a query, when the SQL alone says them (no `*`), else None."""
    try:
        tree = sqlglot.parse_one(render_template(sql), read="spark")
    except sqlglot.errors.SqlglotError:
        return None
    if not isinstance(tree, exp.Query):
        return None
    select = tree
    while isinstance(select, exp.SetOperation):
        select = select.left
    if not isinstance(select, exp.Select):
        return None
    names = []
    for projection in select.expressions:
        if isinstance(projection, exp.Star) or (
            isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star)
        ):
            return None
        name = projection.alias_or_name
        if not name:
            return None
        names.append(name)
    return names


def _quality_problems(
    table: Table, known: dict[str, str], columns: dict[str, list[str] | None]
) -> list[str]:
    """Rules that name unknown columns or tables, or share a check name."""
    problems = []
    own = columns.get(table.name)
    own_lower = {c.lower() for c in own} if own is not None else None
    reserved = {"row_count_anomaly", "sums_anomaly", "schema_change", "category_change"}
    seen: dict[str, int] = {}
    for position, rule in enumerate(table.spec.quality, start=1):
        name = rule.check_name(position)
        label = f"quality rule #{position} '{name}'"
        kind = rule.kind
        if name in reserved:
            problems.append(f"{label}: field 'name': '{name}' is the name of an anomaly check; "
                            "give the rule another name")
        if name in seen:
            problems.append(f"{label}: field 'name': check name '{name}' is also rule "
                            f"#{seen[name]}'s; give one of them a name")
        seen.setdefault(name, position)
        if own_lower is not None:
            for column in rule.columns:
                if column.lower() not in own_lower:
                    field = kind if isinstance(getattr(rule, kind), list) else f"{kind}.column"
                    problems.append(f"{label}: field '{field}': column '{column}' is not in the "
                                    f"sql's columns {own}")
        if kind == "relationship":
            target, _, column = rule.relationship.to.partition(".")
            if target not in known:
                problems.append(f"{label}: field 'relationship.to': '{target}' names no table "
                                "or source")
            elif columns.get(target) is not None and column.lower() not in {
                c.lower() for c in columns[target] or []
            }:
                problems.append(f"{label}: field 'relationship.to': column '{column}' is not in "
                                f"{target}'s columns {columns[target]}")
        if kind == "sql":
            read = sql_tables(rule.sql.replace("{table}", "__quality_table"))
            for other in sorted(n for n in read if n != "__quality_table" and n not in known):
                problems.append(f"{label}: field 'sql': reads '{other}', which names no table "
                                "or source of the project")
    return problems


def _check_table(
    table: Table, known: dict[str, str], columns: dict[str, list[str] | None] | None = None
) -> list[str]:
    spec = table.spec
    problems = _quality_problems(table, known, columns or {})
    inputs = {name.lower() for name in spec.inputs}
    for name in spec.inputs:
        if name not in known:
            problems.append(f"field 'inputs': '{name}' names no table or source")
    for name in spec.broadcast:
        if name not in spec.inputs:
            problems.append(f"field 'broadcast': '{name}' is not one of the inputs {spec.inputs}")
    if spec.repartition and spec.coalesce:
        problems.append("field 'coalesce': use either repartition or coalesce, not both")
    if spec.incremental:
        target = spec.incremental.input
        candidates = [i for i in spec.inputs if known.get(i) == "source"] or list(spec.inputs)
        if target is None and len(candidates) != 1:
            problems.append(
                "field 'incremental.input': name the input to read incrementally "
                f"(one of {spec.inputs})"
            )
        elif target is not None and target not in spec.inputs:
            problems.append(f"field 'incremental.input': '{target}' is not one of the inputs")
        if spec.incremental.lookback is not None and spec.write_mode in ("append",
                                                                         "delete_insert"):
            problems.append(
                "field 'incremental.lookback': re-reads rows already loaded, which write_mode "
                f"{spec.write_mode} would add a second time; use write_mode merge (with "
                "merge_keys), which replaces them, or drop lookback"
            )
    if spec.partitions:
        for name in spec.partitions.input_windows:
            if name not in spec.inputs:
                problems.append(
                    f"field 'partitions.input_windows': '{name}' is not one of the inputs"
                )
    if spec.name in spec.inputs:
        problems.append(f"field 'inputs': the table reads itself ('{spec.name}')")
    if spec.sql is None:  # a Python table declares what it reads: its inputs
        return problems
    if spec.column_lineage:
        problems.append("field 'column_lineage': a SQL table's lineage is read from its sql; "
                        "remove column_lineage")
    try:
        read = sql_tables(spec.sql)
    except ValueError as err:
        problems.append(f"field 'sql': {err}")
    else:
        for name in sorted(n for n in read if n.lower() not in inputs):
            problems.append(f"field 'sql': reads '{name}', which is not listed in inputs")
    return problems


def _ddl_columns(ddl: str) -> list[str] | None:
    """Column names of a DDL schema (`a INT, b STRING`), or None when it does not parse."""
    try:
        tree = sqlglot.parse_one(f"CREATE TABLE t ({ddl})", read="spark")
    except sqlglot.errors.SqlglotError:
        return None
    schema = tree.this if isinstance(tree, exp.Create) else None
    if not isinstance(schema, exp.Schema):
        return None
    return [c.name for c in schema.expressions if isinstance(c, exp.ColumnDef)]


def _source_problem(source: SourceSpec) -> str | None:
    """Why a source names neither files nor a Hive table (or mixes them), or None."""
    if source.format == "table":
        if source.table is None:
            return "field 'table': format is 'table' but no 'table' (a Hive table) is given"
        return None
    if source.table is not None:
        return (
            f"field 'format': 'table' is given, so format must be 'table' "
            f"(got '{source.format}'); or give 'path' instead of 'table' for files"
        )
    if source.path is None:
        return (
            "field 'path': neither 'path' (files) nor 'table' with format: table "
            "(an existing Hive table) is given"
        )
    return None


def _find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as err:
        return list(err.args[1])
    return None


COMPONENT_TYPE = "etl_assets.components.HiveTables"
DEFS_FILE = "defs.yaml"


@dataclass(frozen=True)
class DomainFile:
    """One domain as the defs folder holds it: `<domain>/defs.yaml` (a `HiveTables`
    component: its `attributes` are the domain's database, sources and tables) and the Python
    table modules beside it (every `*.py` of the folder whose name does not start with `_`)."""

    path: Path
    attributes: dict[str, Any]
    modules: tuple[Path, ...] = ()

    @property
    def folder_domain(self) -> str:
        """The domain when the attributes name none: the folder's name."""
        return self.path.parent.name


def domain_document(attributes_yaml: str) -> str:
    """A `defs.yaml` declaring a `HiveTables` component whose attributes are the given YAML
    (a domain spec: `database:`, `sources:`, `tables:` ...), indented under `attributes:`."""
    body = textwrap.indent(attributes_yaml, "  ")
    return f"type: {COMPONENT_TYPE}\nattributes:\n{body}"


def domain_modules(folder: Path) -> tuple[Path, ...]:
    """The Python table modules of a domain folder (helpers start with `_`)."""
    return tuple(sorted(p for p in folder.glob("*.py") if not p.name.startswith("_")))


def read_domain_file(path: Path, raw: dict[str, Any] | None = None) -> DomainFile:
    """Read one `defs.yaml` (or take its parsed contents, `raw`): a `type:
    etl_assets.components.HiveTables` document whose `attributes` are the domain's spec.

    Raises:
        SpecError: The file is not YAML, not a mapping, names another component type, or has
            no `attributes` mapping.
    """
    raw = _read_yaml(path) if raw is None else raw
    kind = raw.get("type")
    if kind != COMPONENT_TYPE:
        raise SpecError(f"{path}: field 'type': expected {COMPONENT_TYPE!r}, got {kind!r}")
    attributes = raw.get("attributes")
    if not isinstance(attributes, dict):
        found = "none" if attributes is None else f"a {type(attributes).__name__}"
        raise SpecError(f"{path}: field 'attributes': expected a mapping with 'tables:', "
                        f"got {found}")
    return DomainFile(path, _without_final_newlines(attributes), domain_modules(path.parent))


def _without_final_newlines(value: Any) -> Any:
    """Every string with one final newline dropped, as Dagster's template rendering (Jinja)
    leaves the strings of a component's attributes: a spec read here, and the same spec
    resolved by Dagster, then make the same tables with the same code versions."""
    if isinstance(value, str):
        return value[:-1] if value.endswith("\n") else value
    if isinstance(value, dict):
        return {k: _without_final_newlines(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_final_newlines(v) for v in value]
    return value


def _entry_lines(path: Path) -> dict[tuple[str, str], int]:
    """("tables" or "sources", name) -> the 1-based line of its entry in a defs.yaml (for code
    references: the UI's "open in editor" and `dg list defs`); empty when the file cannot be
    read as YAML."""
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}

    def child(node: Any, key: str) -> Any:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value == key:
                    return v
        return None

    attributes = child(root, "attributes")
    tables, sources = child(attributes, "tables"), child(attributes, "sources")
    lines = {}
    for entry in tables.value if isinstance(tables, yaml.SequenceNode) else []:
        name = child(entry, "name")
        if isinstance(name, yaml.ScalarNode):
            lines["tables", name.value] = entry.start_mark.line + 1
    for key, _ in sources.value if isinstance(sources, yaml.MappingNode) else []:
        lines["sources", key.value] = key.start_mark.line + 1
    return lines


def domain_files(folder: Path) -> list[DomainFile]:
    """Every `HiveTables` domain below a defs folder (`<domain>/defs.yaml`, at any depth), in
    path order; other components' folders are left to Dagster."""
    found = []
    for path in sorted(Path(folder).rglob(DEFS_FILE)):
        raw = _read_yaml(path)
        if raw.get("type") == COMPONENT_TYPE:
            found.append(read_domain_file(path, raw))
    return found


def _python_tables(
    path: Path, domain: str, domain_database: str,
    rename_database: Callable[[str], str] | None,
) -> list[Table]:
    """The `@table` functions of one module of a domain folder, validated like YAML tables.

    `domain_database` is the domain's database (from its defs.yaml), used unless a table
    names its own.

    Raises:
        SpecError: The module does not import, or an option or a parameter is malformed,
            naming the module, the function and the field.
    """
    try:
        namespace = PT.import_module_file(path)
    except PT.ModuleImportError as err:
        raise SpecError(str(err)) from err
    tables = []
    for found in PT.module_tables(namespace):
        function = found.function
        where = f"{path}: function '{function.__name__}'"
        options = dict(found.options)
        if "sql" in options:
            raise SpecError(f"{where}: field 'sql': a Python table's rows are what its "
                            "function returns; remove sql")
        database = options.pop("database", domain_database)
        try:
            _check_identifier(database, "database")
        except ValueError as err:
            raise SpecError(f"{where}: field 'database': {err}") from err
        options.setdefault("name", function.__name__)
        try:
            spec = TableSpec.model_validate(options)
        except ValidationError as err:
            lines = _format_validation(err, {}, table=options)
            raise SpecError(f"{where}: " + "\n  ".join(lines)) from err
        problems = PT.parameter_problems(function, list(spec.inputs))
        if problems:
            raise SpecError(f"{where}: " + "\n  ".join(problems))
        tables.append(Table(spec, domain, (rename_database or str)(database), path,
                            function=function, function_source=PT.function_source(function),
                            line=function.__code__.co_firstlineno))
    return tables


def load_project(
    folder: Path | str, rename_database: Callable[[str], str] | None = None
) -> Project:
    """Load and validate every `HiveTables` domain of a defs folder (`domain_files`).

    Raises:
        SpecError: See `build_project`; also when the folder holds no domain.
    """
    domains = domain_files(Path(folder))
    if not domains:
        raise SpecError(f"{folder}: no <domain>/{DEFS_FILE} of type {COMPONENT_TYPE} found")
    return build_project(domains, rename_database)


def build_project(
    domains: Iterable[DomainFile], rename_database: Callable[[str], str] | None = None
) -> Project:
    """Validate the domains together: each file's fields, then what spans files (names unique
    across domains, inputs that exist, no dependency cycle).

    Args:
        domains: The domain files (read by `read_domain_file`, or the attributes Dagster
            resolved for each `HiveTables` component).
        rename_database: Maps a spec's database to the environment's name for it.

    Returns:
        The tables (in dependency order) and sources. A Python table's domain is its
        folder's, and its database the domain's unless it names one.

    Raises:
        SpecError: On the first malformed file, naming the file, the table (or a Python
            table's function) and the field; a file with several problems lists each on its
            own line.
    """
    tables: dict[str, Table] = {}
    sources: dict[str, Source] = {}
    origin: dict[str, str] = {}
    schedules: dict[str, ScheduleSpec] = {}
    for domain_file in domains:
        path, raw = domain_file.path, domain_file.attributes
        try:
            domain_spec = DomainSpec.model_validate(raw)
        except ValidationError as err:
            lines = _format_validation(err, raw)
            raise SpecError(f"{path}: " + "\n  ".join(lines)) from err
        domain = domain_spec.domain or domain_file.folder_domain
        lines = _entry_lines(path)
        if domain_spec.schedule is not None:
            schedules[domain] = domain_spec.schedule
        for name, source in domain_spec.sources.items():
            if name in origin:
                raise SpecError(f"{path}: source '{name}': name already defined in {origin[name]}")
            problem = _source_problem(source)
            if problem:
                raise SpecError(f"{path}: source '{name}': {problem}")
            resolved = None
            if source.path is not None:
                raw_path = Path(_expand(source.path, path, name)).expanduser()
                resolved = str((path.parent / raw_path).resolve())
            origin[name] = str(path)
            sources[name] = Source(name, source, domain, path, resolved,
                                   line=lines.get(("sources", name)))
        for spec in domain_spec.tables:
            if spec.name in origin:
                raise SpecError(
                    f"{path}: table '{spec.name}': field 'name': name already defined in "
                    f"{origin[spec.name]}"
                )
            origin[spec.name] = str(path)
            database = (rename_database or str)(domain_spec.database)
            tables[spec.name] = Table(spec, domain, database, path,
                                      line=lines.get(("tables", spec.name)))
        for module in domain_file.modules:
            for table in _python_tables(module, domain, domain_spec.database, rename_database):
                if table.name in origin:
                    raise SpecError(f"{table.where}: field 'name': name already defined in "
                                    f"{origin[table.name]}")
                origin[table.name] = str(module)
                tables[table.name] = table
    known = {name: "table" for name in tables} | {name: "source" for name in sources}
    columns = {name: sql_columns(t.spec.sql) if t.spec.sql is not None else None
               for name, t in tables.items()}
    for name, source in sources.items():
        ddl = source.spec.schema_ddl
        columns[name] = _ddl_columns(ddl) if ddl else None
    for table in tables.values():
        problems = _check_table(table, known, columns)
        if problems:
            raise SpecError(f"{table.where}: " + "\n  ".join(problems))
    graph = {name: [i for i in [*t.spec.inputs, *t.rule_reads] if i in tables]
             for name, t in tables.items()}
    cycle = _find_cycle(graph)
    if cycle:
        first = tables[cycle[0]]
        raise SpecError(
            f"{first.where}: field 'inputs': dependency cycle "
            + " -> ".join(reversed(cycle))
            + " (each table reads the next one: in its inputs, or in a quality rule's "
            "relationship or sql)"
        )
    order = list(TopologicalSorter(graph).static_order())
    return Project(tables={name: tables[name] for name in order}, sources=sources,
                   domain_schedules=schedules)
