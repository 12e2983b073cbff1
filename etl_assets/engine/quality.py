"""Declarative data-quality rules (`quality:` in a table's spec), judged during the load.

Each rule becomes a Dagster asset check on the table's own asset; its result is returned with
the materialization, because the numbers it judges exist only during the write:

- row-level rules (`not_null`, `accepted_values`, `range`, `pattern`) are aggregates over the
  written rows: a `count_if` of the offending rows, attached to the same `DataFrame.observe` as
  the table's metrics, so they are computed by the write's own Spark job (no extra scan, no
  extra job). Only a rule that fails costs more: one `LIMIT 5` query on the load's own files
  for the sample rows a human needs (`sample_offenders`). Sampling inside the write cost more
  than the counts themselves (a `min_by(row, flag, 5)` per rule and row: 5M rows, six rules,
  +2.8 s on a 2.8 s write, against +1.0 s for the counts), paid on every load to describe
  the rare failing one;
- `row_count` and `freshness` read what the load already measured (the Parquet footers' row
  count and max of a date/timestamp column): free;
- `unique`, `relationship` and `sql` need a shuffle or another table: one query each on the
  written table after the write (the check's `computed` metadata says so).

`on_fail: quarantine` on a row-level rule splits the write itself: the offending rows go, with
the names of the rules they broke, to `<table>__rejected`, the others to the table (see
`tables.load_table`). Nothing here starts a Spark job except `sample_offenders` and
`run_query_rules`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from etl_assets.core import metric_names as M
from etl_assets.core.outcomes import CheckOutcome
from etl_assets.core.specs import QualityRuleSpec, Table, parse_duration, sql_tables
from etl_assets.core.sql_quoting import identifier

# Metadata names of a rule's check result (stable: the UI shows and plots them).
RULE = "rule"
KIND = "kind"
COMPUTED = "computed"
VIOLATIONS = "violations"
VIOLATION_FRACTION = "violation_fraction"
ROWS_JUDGED = "rows_judged"
ALLOWED_FRACTION = "allowed_fraction"
SAMPLE_ROWS = "sample_rows"
SAMPLES_FROM = "samples_from"
ROWS_QUARANTINED = "rows_quarantined"
ROWS_LOADED = "rows_loaded"
STATUS = "status"

# Where a rule's numbers come from.
IN_WRITE = "observe: aggregated in the write's own Spark job (no extra scan)"
FROM_LOAD = "load metrics: the written files' footers (no scan)"
BY_QUERY = "query: one Spark query on the written table after the write"
SAMPLED = "a LIMIT 5 query on the load's files, run because the rule failed"

OBSERVED_PREFIX = "quality/"
REJECTED_SUFFIX = "__rejected"
REJECTED_BY = "_rejected_by"
SAMPLE_SIZE = 5
SAMPLE_COLUMNS = 8
SAMPLE_VALUE_CHARS = 100

_FLOATING = (T.FloatType, T.DoubleType)
_NUMERIC = (T.ByteType, T.ShortType, T.IntegerType, T.LongType, T.FloatType, T.DoubleType,
            T.DecimalType)
_TEMPORAL = (T.DateType, T.TimestampType, T.TimestampNTZType)


class QualityConfigError(ValueError):
    """A rule does not fit the written table (unknown column, wrong type); names file, table,
    rule and field."""


@dataclass(frozen=True)
class Rule:
    """A rule of a table with its check name and 1-based position in `quality:`."""

    spec: QualityRuleSpec
    name: str
    position: int

    @property
    def kind(self) -> str:
        """The rule kind."""
        return self.spec.kind

    @property
    def computed(self) -> str:
        """Where the rule's numbers come from (`IN_WRITE`, `FROM_LOAD` or `BY_QUERY`)."""
        if self.kind in ("row_count", "freshness"):
            return FROM_LOAD
        if self.kind in ("unique", "relationship", "sql"):
            return BY_QUERY
        return IN_WRITE

    def text(self) -> str:
        """The rule as written in the spec (one line of YAML-ish JSON)."""
        value = getattr(self.spec, self.kind)
        if hasattr(value, "model_dump"):
            value = value.model_dump(mode="json", exclude_none=True)
        return f"{self.kind}: {json.dumps(value, ensure_ascii=False, default=str)}"


def table_rules(table: Table) -> list[Rule]:
    """The table's rules in spec order."""
    return [Rule(spec, spec.check_name(i), i) for i, spec in enumerate(table.spec.quality, 1)]


def rule_outcome(
    rule: Rule,
    passed: bool,
    status: str,
    description: str,
    violations: int | None = None,
    rows: int | None = None,
    samples: list[dict[str, Any]] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> CheckOutcome:
    """A rule's verdict on one load as a `CheckOutcome`.

    `value` is the count of offending rows and `upper` the count allowed (the rule's fraction
    of the judged rows, rounded down); the metadata holds the rule, where its numbers came
    from, the judged rows and fraction, samples of offending rows and the rule's own extras.
    """
    metadata: dict[str, Any] = {
        RULE: rule.text(), KIND: rule.kind, COMPUTED: rule.computed, STATUS: status,
        ALLOWED_FRACTION: float(rule.spec.allowed_fraction),
    }
    allowed = None
    if violations is not None:
        metadata[VIOLATIONS] = violations
    if rows is not None:
        metadata[ROWS_JUDGED] = rows
        allowed = math.floor(rule.spec.allowed_fraction * rows)
        if violations is not None:
            metadata[VIOLATION_FRACTION] = violations / rows if rows else 0.0
    if samples:
        metadata[SAMPLE_ROWS] = samples
    metadata.update(extra or {})
    return CheckOutcome(check=rule.name, metric=f"{OBSERVED_PREFIX}{rule.kind}", passed=passed,
                        severity=rule.spec.severity, status=status, description=description,
                        value=violations, upper=allowed, metadata=metadata)


@dataclass(frozen=True)
class QualityPlan:
    """The rules of one load, resolved against the written schema.

    `exprs` are the observed aggregates (one per row-level rule: the count of offending rows),
    to attach to the write's `observe`.
    `conditions` are the row-level rules' offending-row predicates (null-safe: never null).
    """

    table: Table
    rules: list[Rule]
    schema: T.StructType
    columns: dict[str, dict[str, str]]
    exprs: list[tuple[str, Column]]
    conditions: dict[str, Column]

    @property
    def quarantine(self) -> list[Rule]:
        """The rules whose offending rows go to `<table>__rejected`."""
        return [r for r in self.rules if r.spec.on_fail == "quarantine"]

    def rejected_by(self) -> Column | None:
        """Comma-separated names of the quarantine rules a row breaks; null for a good row."""
        rules = self.quarantine
        if not rules:
            return None
        names = [F.when(self.conditions[r.name], F.lit(r.name)) for r in rules]
        return F.when(~self.keep_condition(), F.concat_ws(",", *names))

    def keep_condition(self) -> Column | None:
        """True for rows that stay in the table (break no quarantine rule)."""
        rules = self.quarantine
        if not rules:
            return None
        broken = self.conditions[rules[0].name]
        for rule in rules[1:]:
            broken = broken | self.conditions[rule.name]
        return ~broken

    def violations(self, observed: Mapping[str, Any], rule: Rule) -> int:
        """A row-level rule's count of offending rows, from the write's observed values."""
        return int(observed.get(f"{OBSERVED_PREFIX}{rule.name}/violations") or 0)

    def failed_row_rules(self, observed: Mapping[str, Any], rows: int) -> list[Rule]:
        """The row-level rules whose offending rows exceed their allowance among `rows`."""
        return [r for r in self.rules if r.name in self.conditions
                and not _within(self.violations(observed, r), rows, r.spec.allowed_fraction)]


def _within(violations: int, rows: int, allowed: float) -> bool:
    return (violations / rows if rows else 0.0) <= allowed


def sample_offenders(
    plan: QualityPlan, written: DataFrame, rules: Sequence[Rule]
) -> dict[str, list[dict[str, Any]] | str]:
    """Up to `SAMPLE_SIZE` offending rows of each rule: one `LIMIT` query each on `written`.

    `written` is the load's own files (with the `_rejected_by` partition column when the load
    quarantines: a quarantine rule's rows are looked for among the rejected rows only, so its
    query skips the good rows' folder). Spark's `LIMIT` reads partitions one batch at a time and
    stops at the fifth row, so a common violation costs a fraction of a scan; a rare one at
    most one pruned scan. A query that fails gives the error text instead of samples (shown in
    the check's `samples_from`); it never fails the load.
    """
    found: dict[str, list[dict[str, Any]] | str] = {}
    for rule in rules:
        rows = written.where(plan.conditions[rule.name])
        if rule.spec.on_fail == "quarantine" and REJECTED_BY in written.columns:
            rows = rows.where(F.col(REJECTED_BY).isNotNull())
        sample = _sample_struct(plan.schema, list(plan.columns[rule.name].values()))
        try:
            found[rule.name] = sample_rows(_limited(rows, sample))
        except Exception as err:  # noqa: BLE001 - samples only describe a verdict already made
            message = (str(err).strip().splitlines() or [""])[0][:300]
            found[rule.name] = f"sampling failed: {type(err).__name__}: {message}"
    return found


def _where(table: Table, rule: Rule, field_name: str) -> str:
    return (f"{table.file}: table '{table.name}': quality rule #{rule.position} '{rule.name}': "
            f"field '{field_name}'")


def _field_name(rule: Rule) -> str:
    return rule.kind if isinstance(getattr(rule.spec, rule.kind), list) else f"{rule.kind}.column"


def _resolve(table: Table, rule: Rule, schema: T.StructType) -> dict[str, T.StructField]:
    """The rule's columns as the schema spells them (Spark matches names case-insensitively)."""
    fields = {f.name.lower(): f for f in schema.fields}
    found = {}
    for column in rule.spec.columns:
        if column.lower() not in fields:
            raise QualityConfigError(
                f"{_where(table, rule, _field_name(rule))}: column '{column}' is not in the "
                f"table's columns {[f.name for f in schema.fields]}")
        found[column] = fields[column.lower()]
    return found


def _literal(table: Table, rule: Rule, where: str, value: Any, kind: T.DataType) -> Column:
    """A rule's bound or accepted value as a literal comparable with the column's type."""
    problem = None
    if isinstance(kind, _NUMERIC):
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            problem = "a number"
        else:
            try:
                number = Decimal(str(value))
            except InvalidOperation:
                problem = "a number"
            else:
                # No cast to the column's type: a bound of 0.5 on an integer column stays 0.5
                # (Spark widens the column for the comparison).
                if isinstance(kind, T.DecimalType) or isinstance(value, str):
                    return F.lit(number)
                return F.lit(value)
    elif isinstance(kind, T.DateType):
        try:
            day = value if isinstance(value, date) and not isinstance(value, datetime) else (
                date.fromisoformat(str(value)))
        except ValueError:
            problem = "a date (YYYY-MM-DD)"
        else:
            return F.lit(day.isoformat()).cast(kind)
    elif isinstance(kind, (T.TimestampType, T.TimestampNTZType)):
        try:
            stamp = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        except ValueError:
            problem = "a timestamp (ISO 8601, e.g. 2026-03-01T00:00:00+09:00)"
        else:
            # Spark parses the text itself: an offset is honoured, a naive value is read in the
            # session time zone (never the Python process's local zone).
            return F.lit(stamp.isoformat()).cast(kind)
    elif isinstance(kind, T.BooleanType):
        if isinstance(value, bool):
            return F.lit(value)
        problem = "true or false"
    else:
        text = str(value).lower() if isinstance(value, bool) else str(value)
        return F.lit(text)
    raise QualityConfigError(f"{_where(table, rule, where)}: {value!r} is not {problem}, as the "
                             f"column's type {kind.simpleString()} needs")


def _condition(table: Table, rule: Rule, fields: Mapping[str, T.StructField]) -> Column | None:
    """The offending-row predicate of a row-level rule (null-safe), else None."""
    spec = rule.spec
    if rule.kind == "not_null":
        parts = []
        for column, info in fields.items():
            col = F.col(identifier(info.name))
            parts.append(col.isNull() | F.isnan(col) if isinstance(info.dataType, _FLOATING)
                         else col.isNull())
        bad = parts[0]
        for part in parts[1:]:
            bad = bad | part
        return bad
    if rule.kind not in ("accepted_values", "range", "pattern"):
        return None
    info = next(iter(fields.values()))
    col = F.col(identifier(info.name))
    nan = F.isnan(col) if isinstance(info.dataType, _FLOATING) else F.lit(False)
    if rule.kind == "accepted_values":
        values = [_literal(table, rule, "accepted_values.values", v, info.dataType)
                  for v in spec.accepted_values.values]
        bad = nan | ~col.isin(*values)
    elif rule.kind == "range":
        bad = nan
        if spec.range.min is not None:
            bad = bad | (col < _literal(table, rule, "range.min", spec.range.min, info.dataType))
        if spec.range.max is not None:
            bad = bad | (col > _literal(table, rule, "range.max", spec.range.max, info.dataType))
    else:
        if isinstance(info.dataType, (T.StructType, T.ArrayType, T.MapType)):
            raise QualityConfigError(f"{_where(table, rule, 'pattern.column')}: column "
                                     f"'{info.name}' is {info.dataType.simpleString()}, not text")
        bad = ~col.cast("string").rlike(spec.pattern.regex)
    # Nulls pass these rules (not_null judges them), and a null predicate counts as passing.
    return col.isNotNull() & F.coalesce(bad, F.lit(False))


def _sample_struct(schema: T.StructType, first: Sequence[str]) -> Column:
    """The columns shown for an offending row: the rule's own first, then the table's leading
    columns, at most `SAMPLE_COLUMNS`."""
    names = list(dict.fromkeys([*first, *(f.name for f in schema.fields)]))[:SAMPLE_COLUMNS]
    return F.struct(*[F.col(identifier(n)).alias(n) for n in names])


def plan_quality(table: Table, schema: T.StructType) -> QualityPlan:
    """Resolve the table's rules against the written schema and build their aggregates.

    Raises:
        QualityConfigError: A rule names a column the table lacks, a freshness column is not a
            date or timestamp, or a bound does not fit the column's type; the message names
            the file, the table, the rule and the field.
    """
    rules = table_rules(table)
    exprs: list[tuple[str, Column]] = []
    conditions: dict[str, Column] = {}
    columns: dict[str, dict[str, str]] = {}
    for rule in rules:
        fields = _resolve(table, rule, schema)
        columns[rule.name] = {k: v.name for k, v in fields.items()}
        if rule.kind == "freshness":
            info = next(iter(fields.values()))
            if not isinstance(info.dataType, _TEMPORAL):
                raise QualityConfigError(
                    f"{_where(table, rule, 'freshness.column')}: column '{info.name}' is "
                    f"{info.dataType.simpleString()}, not a date or timestamp")
        bad = _condition(table, rule, fields)
        if bad is None:
            continue
        conditions[rule.name] = bad
        exprs.append((f"{OBSERVED_PREFIX}{rule.name}/violations", F.count_if(bad)))
    return QualityPlan(table, rules, schema, columns, exprs, conditions)


def _cap(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    text = value.isoformat() if isinstance(value, (date, datetime)) else str(value)
    return text if len(text) <= SAMPLE_VALUE_CHARS else text[:SAMPLE_VALUE_CHARS - 3] + "..."


def sample_rows(rows: Sequence[Any] | None) -> list[dict[str, Any]]:
    """Offending rows as JSON-ready dicts: at most `SAMPLE_SIZE`, each value capped in size.

    NaN and infinities become null (JSON has neither); long text is cut to
    `SAMPLE_VALUE_CHARS` characters.
    """
    found = []
    for row in list(rows or [])[:SAMPLE_SIZE]:
        values = row.asDict() if hasattr(row, "asDict") else dict(row)
        found.append({str(k): _cap(v) for k, v in list(values.items())[:SAMPLE_COLUMNS]})
    return found


def _pct(fraction: float) -> str:
    return f"{fraction:.2%}" if fraction >= 0.0001 or fraction == 0 else f"{fraction:.2e}"


def _what(rule: Rule, columns: Mapping[str, str]) -> str:
    spec = rule.spec
    names = ", ".join(columns.values()) or ", ".join(spec.columns)
    if rule.kind == "not_null":
        return f"null (or NaN) in {names}"
    if rule.kind == "accepted_values":
        shown = ", ".join(str(v) for v in spec.accepted_values.values[:10])
        more = ", ..." if len(spec.accepted_values.values) > 10 else ""
        return f"{names} not in [{shown}{more}]"
    if rule.kind == "range":
        low = "-inf" if spec.range.min is None else spec.range.min
        high = "+inf" if spec.range.max is None else spec.range.max
        return f"{names} outside [{low}, {high}] (or NaN)"
    if rule.kind == "pattern":
        return f"{names} not matching /{spec.pattern.regex}/"
    if rule.kind == "unique":
        return f"duplicate {names}"
    if rule.kind == "relationship":
        return f"{names} missing from {spec.relationship.to}"
    return "rows returned by the sql"


def judge_count(
    rule: Rule,
    violations: int,
    rows: int,
    columns: Mapping[str, str] | None = None,
    samples: Sequence[Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> CheckOutcome:
    """The verdict of a rule from its count of offending rows among `rows` judged rows.

    Passes when the offending fraction is at most the rule's `max_null_fraction` /
    `max_invalid_fraction` (0 unless set). An empty table has no offending rows and passes.
    """
    fraction = violations / rows if rows else 0.0
    allowed = rule.spec.allowed_fraction
    passed = _within(violations, rows, allowed)
    limit = f"allowed {_pct(allowed)}" if allowed else "allowed none"
    description = (f"{violations:,} of {rows:,} rows ({_pct(fraction)}): "
                   f"{_what(rule, columns or {})}; {limit}")
    return rule_outcome(rule, passed, "ok" if passed else "failed", description, violations, rows,
                        sample_rows(samples), extra)


def _as_utc(value: Any, data_type: T.DataType) -> datetime | None:
    """A date/timestamp metric as an aware UTC datetime (a date counts as its midnight UTC)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            return value.astimezone(timezone.utc)
        if isinstance(data_type, T.TimestampType):
            return value.astimezone(timezone.utc)  # collected: the Python process's local time
        return value.replace(tzinfo=timezone.utc)  # TIMESTAMP_NTZ: wall clock, read as UTC
    if isinstance(value, date):
        return datetime.combine(value, time(), tzinfo=timezone.utc)
    return None


def judge_load(
    plan: QualityPlan,
    observed: Mapping[str, Any],
    metrics: Mapping[str, Any],
    rows_judged: int,
    now: datetime | None = None,
    quarantined: Mapping[str, int] | None = None,
    samples: Mapping[str, Sequence[Any] | str] | None = None,
) -> list[CheckOutcome]:
    """Verdicts of the rules measured in the load itself (observe + footers), in spec order.

    Args:
        plan: The load's quality plan.
        observed: The write's observed values (`MetricPlan.observed`).
        metrics: The load's metrics (`dagster/row_count`, `max/<column>`).
        rows_judged: Rows the rules saw: the rows written, rejected rows included.
        now: The time freshness is judged at (default: now, UTC).
        quarantined: Rows moved to `<table>__rejected` (0 when none were) if any rule
            quarantines.
        samples: Offending rows of the failed row-level rules (`sample_offenders`).
    """
    now = now or datetime.now(timezone.utc)
    loaded = int(metrics.get(M.ROW_COUNT) or 0)
    outcomes = []
    for rule in plan.rules:
        columns = plan.columns[rule.name]
        if rule.name in plan.conditions:
            extra = {}
            if rule.spec.on_fail == "quarantine" and quarantined is not None:
                extra = {ROWS_QUARANTINED: quarantined.get(rule.name, 0), ROWS_LOADED: loaded}
            sample = (samples or {}).get(rule.name)
            if sample is not None:
                extra[SAMPLES_FROM] = sample if isinstance(sample, str) else SAMPLED
            outcome = judge_count(rule, plan.violations(observed, rule), rows_judged, columns,
                                  None if isinstance(sample, str) else sample, extra)
            if ROWS_QUARANTINED in extra:
                outcome.description += (f"; {extra[ROWS_QUARANTINED]:,} rows quarantined to "
                                        f"{plan.table.name}{REJECTED_SUFFIX}, {loaded:,} loaded")
            outcomes.append(outcome)
        elif rule.kind == "row_count":
            outcomes.append(_row_count(rule, loaded))
        elif rule.kind == "freshness":
            column = next(iter(columns.values()))
            data_type = plan.schema[column].dataType
            outcomes.append(_freshness(rule, column, metrics.get(M.MAX + column), data_type, now))
    return outcomes


def _row_count(rule: Rule, rows: int) -> CheckOutcome:
    spec = rule.spec.row_count
    low = spec.min if spec.min is not None else 0
    high = spec.max
    passed = rows >= low and (high is None or rows <= high)
    band = f"[{low:,}, {'+inf' if high is None else f'{high:,}'}]"
    description = f"row_count {rows:,} {'within' if passed else 'outside'} {band}"
    return rule_outcome(rule, passed, "ok" if passed else "failed", description,
                        0 if passed else 1, rows,
                        extra={"row_count": rows, "min": spec.min, "max": spec.max})


def _freshness(
    rule: Rule, column: str, newest: Any, data_type: T.DataType, now: datetime
) -> CheckOutcome:
    max_age = parse_duration(rule.spec.freshness.max_age)
    stamp = _as_utc(newest, data_type)
    if stamp is None:
        return rule_outcome(rule, False, "no_data",
                            f"{column} has no value (empty table or all null): nothing is fresh",
                            extra={"max_age_h": max_age.total_seconds() / 3600})
    age = now - stamp
    passed = age <= max_age
    hours = age / timedelta(hours=1)
    when = f"{hours:,.1f} h old" if hours >= 0 else "in the future"
    description = (f"newest {column} {stamp.isoformat()} is {when} "
                   f"({'within' if passed else 'beyond'} max_age {rule.spec.freshness.max_age})")
    return rule_outcome(rule, passed, "ok" if passed else "failed", description,
                        0 if passed else 1, 1,
                        extra={"newest": stamp.isoformat(), "age_h": round(hours, 3),
                               "max_age_h": max_age.total_seconds() / 3600})


def run_query_rules(
    spark: SparkSession,
    plan: QualityPlan,
    written: DataFrame,
    read_table: Any,
    rows_judged: int,
) -> list[CheckOutcome]:
    """Verdicts of `unique`, `relationship` and `sql`: one Spark query each on the written rows.

    Args:
        spark: The session.
        plan: The load's quality plan.
        written: The rows the load wrote (the published table, or its run's partitions).
        read_table: `name -> DataFrame` for a project table or source (relationship targets
            and tables an `sql` rule reads).
        rows_judged: Rows written (the denominator of an `sql` rule's fraction).

    A query that fails (a missing relationship table, a runtime SQL error) gives a failed
    outcome with status `error` and the error text; the load itself stands.
    """
    outcomes = []
    for rule in plan.rules:
        if rule.kind not in ("unique", "relationship", "sql"):
            continue
        columns = plan.columns[rule.name]
        try:
            if rule.kind == "unique":
                outcome = _unique(rule, written, columns)
            elif rule.kind == "relationship":
                outcome = _relationship(rule, written, columns, read_table)
            else:
                outcome = _sql(spark, rule, plan.table, written, read_table, rows_judged)
        except Exception as err:  # noqa: BLE001 - a broken rule is a failed check, not a failed load
            message = str(err).strip().splitlines()[0][:500] if str(err).strip() else repr(err)
            outcome = rule_outcome(rule, False, "error",
                                   f"the rule's query failed: {type(err).__name__}: {message}")
        outcomes.append(outcome)
    return outcomes


def _limited(rows: DataFrame, sample: Column) -> list[Any]:
    """At most `SAMPLE_SIZE` values of `sample` over `rows` (a LIMIT query)."""
    return [r[0] for r in rows.select(sample.alias("row")).limit(SAMPLE_SIZE).collect()]


def _unique(rule: Rule, written: DataFrame, columns: Mapping[str, str]) -> CheckOutcome:
    keys = [F.col(identifier(c)) for c in columns.values()]
    has_null = F.lit(False)
    for key in keys:
        has_null = has_null | key.isNull()
    groups = written.groupBy(*keys).agg(F.count(F.lit(1)).alias("__n")).withColumn(
        "__null", has_null)
    duplicated = (~F.col("__null")) & (F.col("__n") > 1)
    row = groups.agg(
        F.sum(F.when(~F.col("__null"), F.col("__n"))).alias("judged"),
        F.sum(F.when(duplicated, F.col("__n"))).alias("bad"),
        F.count_if(duplicated).alias("keys"),
    ).first()
    outcome = judge_count(rule, int(row.bad or 0), int(row.judged or 0), columns, None,
                          {"duplicate_keys": int(row.keys or 0)})
    if not outcome.passed:
        # The most duplicated keys: a second grouping, only for a failed rule (a top-5 by
        # count inside the first one cost a third of the check on a unique 5M-row key).
        sample = F.struct(*[F.col(identifier(c)).alias(c) for c in columns.values()],
                          F.col("__n").alias("rows"))
        outcome.metadata[SAMPLE_ROWS] = sample_rows(_limited(
            groups.where(duplicated).orderBy(F.col("__n").desc()), sample))
    outcome.description += f" ({int(row.keys or 0):,} duplicated keys; rows with a null key " \
                           "are not judged)"
    return outcome


def _relationship(
    rule: Rule, written: DataFrame, columns: Mapping[str, str], read_table: Any
) -> CheckOutcome:
    target, _, target_column = rule.spec.relationship.to.partition(".")
    column = next(iter(columns.values()))
    parent = read_table(target)
    resolved = next((c for c in parent.columns if c.lower() == target_column.lower()), None)
    if resolved is None:
        raise QualityConfigError(f"relationship.to: column '{target_column}' is not in "
                                 f"{target}'s columns {parent.columns}")
    keys = parent.select(F.col(identifier(resolved)).alias("__ref")).distinct().withColumn(
        "__found", F.lit(True))
    joined = written.join(keys, F.col(identifier(column)) == F.col("__ref"), "left")
    bad = F.col(identifier(column)).isNotNull() & F.col("__found").isNull()
    row = joined.agg(
        F.count_if(F.col(identifier(column)).isNotNull()).alias("judged"),
        F.count_if(bad).alias("bad"),
    ).first()
    outcome = judge_count(rule, int(row.bad), int(row.judged), columns)
    if not outcome.passed:
        outcome.metadata[SAMPLE_ROWS] = sample_rows(_limited(
            joined.where(bad), _sample_struct(written.schema, [column])))
    return outcome


def _sql(
    spark: SparkSession,
    rule: Rule,
    table: Table,
    written: DataFrame,
    read_table: Any,
    rows_judged: int,
) -> CheckOutcome:
    view = f"__quality_{table.name}"
    written.createOrReplaceTempView(view)
    for name in sql_tables(rule.spec.sql.replace("{table}", "__quality_table")):
        if name != "__quality_table":
            read_table(name).createOrReplaceTempView(name)
    bad = spark.sql(rule.spec.sql.replace("{table}", view))
    outcome = judge_count(rule, bad.count(), rows_judged)
    if not outcome.passed:
        outcome.metadata[SAMPLE_ROWS] = sample_rows(_limited(bad, _sample_struct(bad.schema, [])))
    return outcome
