"""Anomaly checks on table metrics: numbers in, a verdict out.

This module is pure: standard library only, no Spark, no Dagster, no I/O. The callers read a
metric's history from the log tables, call `evaluate` and turn the `Verdict` into an asset
check result. `compare_schemas` and `compare_categories` / `compare_category_sets` cover the
two non-numeric checks (schema drift and new or vanished category values, capped lists too).

Rules (`AnomalyConfig.rule`)
----------------------------
Every history rule builds a band ``center ± half_width`` from the baseline points (see
"Baseline" below) and flags a value outside it. The half width is never smaller than
`AnomalyConfig.abs_floor`, so tiny tables do not alarm on a change of a few rows.

- ``relative_change`` (the seed rule): center = median, half width = ``max_change × |median|``
  (``max_change`` 0.5 when unset). Example: median 1,000 → allowed 500–1,500; 412 is flagged.
- ``mad``: center = median, half width = ``mad_threshold × 1.4826 × MAD`` (MAD = median of
  absolute deviations from the median; 1.4826 × MAD estimates the standard deviation of normal
  data). Example: history 990, 1,000, 1,010, 1,000, 995 → median 1,000, MAD 5, sigma ≈ 7.4,
  ``mad_threshold=3.5`` → half width 26 → allowed 974–1,026.
- ``zscore``: center = mean, half width = ``z_threshold × sample standard deviation`` of the
  baseline after robust outlier removal. Example: mean 1,000, sd 20, ``z_threshold=3`` → allowed
  940–1,060.
- ``auto`` (the default) adapts to each series:

  * *Scale.* A series that is never negative (counts, sums of amounts) is judged on the log
    scale: its spread and trend are relative and the band is a ratio band. Other series are
    judged on the linear scale.
  * *Center.* The median, or the series' own trend when it has one: a Theil-Sen line (median
    of pairwise slopes, robust to a few incidents) is taken when its residual spread is below
    60% of the level's and it rises more than 5 residual sigmas over the window; the center is
    then the line's value for the next run. Example: +4% per run for 30 runs → the center is
    today's expected level (3.2× the first run), not the median 15 runs behind.
  * *Width.* ``mad_threshold`` (3.5) robust sigmas of the residuals, widened by
    ``1 + 1/sqrt(n)`` for a short baseline, and never narrower than the relative floor:
    ``max_change`` when set, else ±10% (as a ratio: 1,000 → 909–1,100), nor than `abs_floor`.
    Examples: a calm table at 1,000 ± 2% → allowed 909–1,100, so a 30% drop and a 40% spike
    are flagged; a table swinging ±35% (robust sigma ≈ 0.26 on the log scale) → allowed about
    340–2,900, so a 30% dip passes.
  * *Constant series.* When every baseline point is the same (a dimension table), a loss of
    more than 2% is flagged (48,091 → 47,000 is); growth up to the relative floor passes.
  * *Weekly season, found by itself.* With dates and `weekday_seasonality` unset, the last
    10 weeks are searched for a weekly pattern (`weekly_pattern`); when it holds, the value is
    judged against the same weekday only and the verdict says "weekly pattern detected".
- ``bounds``: only the absolute `min`/`max` are checked; no history is needed.

Absolute bounds (`min`, `max`) are checked with every rule and need no history. A zero value is
flagged (rule ``zero_load``) when the baseline median is non-zero and none of the baseline
points was zero, even if the band would allow it (``5 → 0`` rows on a tiny table is an empty
load, not noise); set ``zero_is_anomaly=False`` for metrics where zero is good (null counts).
A missing value (``None``, NaN or infinite: a sum of +inf and -inf, an empty load's null sum)
is an anomaly (rule ``missing``) only when the metric used to be measured: with fewer than
``min_history`` measured points, or when the newest past point was not measured either, it
passes with status ``not_measured`` (rule ``not_measured``): nothing measured is nothing to
compare.

Baseline
--------
1. History is read newest first; missing points (None/NaN/inf) are skipped, points flagged in
   ``history_flags`` are excluded, and with ``weekday_seasonality`` only points on the weekday
   of ``value_date`` are kept (falling back to all points, said so in the reason, when fewer
   than ``min_history`` same-weekday points exist). The last ``window`` such points are used.
2. Level shift: if the last ``level_shift_runs`` points (flagged ones included) all lie outside
   the band computed from the points before them, on the same side, the series has moved to a
   new level that has held; the baseline becomes the trailing run of points at the new level
   (at most ``window``, at least ``min_history`` of them). Flagged points count here on
   purpose: otherwise the first runs of a genuine step change would be flagged, excluded, and
   the step would alarm for ever. A shift to zero is never accepted when ``zero_is_anomaly``.
   Likewise, when fewer than ``min_history`` unflagged points exist but the last
   ``level_shift_runs`` points (flagged or not) agree with each other, all points of the window
   form the baseline: with weekday seasonality, the first weekends are compared with all days
   and flagged while too few same-weekday points exist; without this they would stay excluded
   and the weekends would alarm for ever.
3. Robust outlier removal: points further than ``mad_threshold`` robust sigmas from the median
   are dropped (past incidents not marked in ``history_flags``), then the center and spread
   are computed again. When MAD is 0 (more than half the points equal), the robust sigma falls
   back to 1.2533 × mean absolute deviation; when all points are equal it is 0 and the band is
   the relative band or the absolute floor: no division by zero.
4. Fewer than ``min_history`` usable points: the verdict passes with status
   ``insufficient_history`` and says how many points exist ("insufficient history: 2 of 5
   points"); bounds and missing values are still flagged since they need no history.

Why these defaults (`auto`, window 30, mad_threshold 3.5, abs_floor 10, floor ±10%)
----------------------------------------------------------------------------------------
- A fixed ±50% band (the seed rule, and this rule's floor before) misses what matters on
  calm tables: a 30% drop on a table that never moves more than 3% is an incident. The band
  follows the series' own spread instead, with a ±10% floor so a table of 1.5M rows moving by
  a few hundred does not alarm on a 5% change.
- A median lags a trend: +4% per run puts today 1.8× above the median of the last 30 runs, so
  a load 50% below the trend looked normal. The Theil-Sen center follows the trend, and the
  two tests (residual spread, rise in sigmas) keep noise from passing for a trend.
- A wide-noise series keeps its wide band: 3.5 robust sigmas is the usual cut-off for the
  modified z-score (Iglewicz and Hoaglin).
- The median (or Theil-Sen line) and the outlier removal mean one past zero or spike in the
  window does not move the baseline: the day after an incident passes, and an old spike does
  not widen the band of a calm table.
- A level that has held for ``level_shift_runs`` (5) runs becomes the baseline, so a table
  whose volume doubled 10 runs ago is quiet again; at most 5 runs alarm after a step change.
- ``abs_floor=10`` keeps tables of a handful of rows (5 → 8) quiet. Set it to 0 for ratio
  metrics (null fraction, 0–1) where a change of 10 is meaningless.

Cost: history is scanned backwards and the scan stops once ``window + level_shift_runs`` usable
points are found, so the work is O(window) (plus sorting them for the median), not O(history),
unless most recent points are missing, flagged or on another weekday.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date

RULES = ("auto", "relative_change", "mad", "zscore", "bounds")
"""The values accepted by `AnomalyConfig.rule`."""

MAD_TO_SIGMA = 1.4826
"""1.4826 × MAD estimates the standard deviation of normally distributed data."""

MEAN_AD_TO_SIGMA = 1.2533
"""1.2533 × mean absolute deviation estimates the standard deviation (used when MAD is 0)."""

RELATIVE_CHANGE_DEFAULT = 0.5
"""`max_change` of the ``relative_change`` rule when unset (the seed's 50%)."""

DEFAULT_MIN_CHANGE = 0.1
"""The ``auto`` band is never narrower than ±10% (when `max_change` is unset)."""

CONSTANT_MAX_LOSS = 0.02
"""An exactly constant series (a dimension table) may lose at most 2% before it is flagged."""

WEEKLY_SCAN_DAYS = 70
"""Weekly-pattern detection looks at the last 10 weeks of the history."""

WEEKLY_SEPARATION = 6.0
"""Weekday effects must spread more than 6 robust sigmas of the noise to be a weekly season."""

TREND_MIN_POINTS = 8
"""Fewer baseline points than this and ``auto`` fits a level only, never a trend."""

TREND_GAIN = 0.6
"""``auto`` follows a trend when its residual spread is below 60% of the level's spread..."""

TREND_MIN_RISE = 5.0
"""... and the trend rises (or falls) more than 5 residual sigmas over the baseline."""

_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_LIST_LIMIT = 10


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking one metric value against its history.

    Attributes:
        passed: False when the value is an anomaly. True for "ok", "insufficient_history" and
            "not_measured".
        value: The value under test (NaN when it was missing).
        baseline: The center the value was compared with (median, or mean for "zscore"), in
            the metric's unit; None when no baseline was formed.
        lower: Lowest allowed value actually applied (band combined with `AnomalyConfig.min`),
            or None when unbounded / not checked.
        upper: Highest allowed value actually applied, or None.
        rule: What decided the verdict: "auto", "relative_change", "mad", "zscore", "bounds",
            "zero_load", "missing", "not_measured" or "insufficient_history".
        reason: One human sentence, e.g. "row_count 412 is 61% below the median 1,057 of the
            last 30 runs (allowed 528–1,586)".
        status: "ok", "anomaly", "insufficient_history" or "not_measured".
        window: The configured window size (points).
        points_used: How many history points formed the baseline (after exclusions).
        pct_change: ``(value - baseline) / |baseline| × 100`` in percent; None when there is no
            baseline or it is 0.
    """

    passed: bool
    value: float
    baseline: float | None
    lower: float | None
    upper: float | None
    rule: str
    reason: str
    status: str
    window: int
    points_used: int
    pct_change: float | None


@dataclass(frozen=True)
class AnomalyConfig:
    """How one metric of one table is checked. The defaults work without tuning.

    Attributes:
        rule: "auto" (default), "relative_change", "mad", "zscore" or "bounds"; see the module
            docstring for each rule with an example.
        max_change: Relative change as a fraction of the baseline (0.5 = 50% up or down).
            "relative_change" allows exactly this (0.5 when unset: 1,000 → 500–1,500); "auto"
            never makes its band narrower than this (±10% when unset).
        window: How many of the most recent usable history points form the baseline (30).
        min_history: Fewer usable points than this and the verdict is "insufficient_history"
            (passes, says so). Must be at least 1 and at most `window`.
        mad_threshold: Allowed distance from the median in robust sigmas (1.4826 × MAD), for
            "mad" and "auto", and the cut-off for dropping outliers from the baseline (3.5).
        z_threshold: Allowed distance from the mean in standard deviations, for "zscore" (3).
        min: Absolute lower bound in the metric's unit (e.g. 1 row); None = none. Checked even
            without history.
        max: Absolute upper bound; None = none.
        abs_floor: Absolute change (metric's unit) below which nothing is flagged: the band's
            half width is at least this (10, so 5 → 8 rows passes). Use 0 for ratio metrics.
        weekday_seasonality: Compare with the same weekday only (Mondays with Mondays); needs
            `history_dates` and `value_date`. The window then counts same-weekday points.
            None (default): only when `weekly_pattern` finds a weekly season in the history;
            True: always; False: never.
        level_shift_runs: A new level held by this many consecutive runs becomes the baseline
            (5). 0 disables level-shift acceptance.
        zero_is_anomaly: Flag a zero value when the baseline is non-zero and none of its points
            was zero (True). Set False for metrics where zero is normal or good.

    Raises:
        ValueError: On an unknown rule or an out-of-range parameter.
    """

    rule: str = "auto"
    max_change: float | None = None
    window: int = 30
    min_history: int = 5
    mad_threshold: float = 3.5
    z_threshold: float = 3.0
    min: float | None = None
    max: float | None = None
    abs_floor: float = 10.0
    weekday_seasonality: bool | None = None
    level_shift_runs: int = 5
    zero_is_anomaly: bool = True

    def __post_init__(self) -> None:
        """Reject configurations that cannot be evaluated."""
        if self.rule not in RULES:
            raise ValueError(f"unknown anomaly rule {self.rule!r}; expected one of {RULES}")
        if self.window < 1:
            raise ValueError(f"window must be at least 1, got {self.window}")
        if not 1 <= self.min_history <= self.window:
            raise ValueError(
                f"min_history must be between 1 and window ({self.window}), "
                f"got {self.min_history}"
            )
        if self.max_change is not None and not self.max_change >= 0:
            raise ValueError(f"max_change must be >= 0, got {self.max_change}")
        for name in ("abs_floor",):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("mad_threshold", "z_threshold"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.level_shift_runs < 0:
            raise ValueError(f"level_shift_runs must be >= 0, got {self.level_shift_runs}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")


@dataclass(frozen=True)
class SchemaDiff:
    """Columns added, removed or retyped between two schemas.

    Attributes:
        added: New columns, name → type.
        removed: Vanished columns, name → previous type.
        retyped: Columns whose type changed, name → (previous type, current type).
    """

    added: dict[str, str] = field(default_factory=dict)
    removed: dict[str, str] = field(default_factory=dict)
    retyped: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        """True when any column was added, removed or retyped."""
        return bool(self.added or self.removed or self.retyped)

    def describe(self) -> str:
        """One sentence, e.g. "schema changed: added note (string); removed id (int)".

        Returns:
            "schema unchanged" when nothing changed, else the changes grouped by kind.
        """
        if not self.changed:
            return "schema unchanged"
        parts = []
        if self.added:
            parts.append("added " + _join([f"{n} ({t})" for n, t in self.added.items()]))
        if self.removed:
            parts.append("removed " + _join([f"{n} ({t})" for n, t in self.removed.items()]))
        if self.retyped:
            parts.append(
                "retyped " + _join([f"{n} {a} → {b}" for n, (a, b) in self.retyped.items()])
            )
        return "schema changed: " + "; ".join(parts)


@dataclass(frozen=True)
class CategoryDiff:
    """Category values that appeared or vanished between two loads.

    Attributes:
        new: Values present now but not before, sorted (empty when the lists were capped).
        vanished: Values present before but not now, sorted (empty when capped).
        capped_count: When either load's value list was capped: the exact number of distinct
            values now; None when both lists were complete.
        previous_count: The exact number of distinct values before, when known.
        set_changed: For capped lists only: whether the full set differs (True/False), or
            None when nothing recorded can tell (no set hash before, and the counts and the
            lists' common prefix agree).
    """

    new: tuple[str, ...] = ()
    vanished: tuple[str, ...] = ()
    capped_count: int | None = None
    previous_count: int | None = None
    set_changed: bool | None = None

    @property
    def changed(self) -> bool:
        """True when any value appeared or vanished (for capped lists: the set changed)."""
        return bool(self.new or self.vanished or self.set_changed)

    def describe(self) -> str:
        """One sentence, e.g. "2 new categories: 'fr', 'it'; 1 vanished: 'de'".

        Returns:
            "categories unchanged" when nothing changed. At most 10 values of each kind are
            listed, followed by "and N more". For capped lists: "capped: 50,000 values, set
            changed" (with "(was 49,999)" when the count moved), "capped: 50,000 values, set
            unchanged", or "... set not compared" when the earlier load recorded no set hash;
            never "unchanged" without evidence.
        """
        if self.capped_count is not None:
            head = f"capped: {self.capped_count:,} values, set"
            if self.set_changed is None:
                return f"{head} not compared (the earlier load recorded no set hash)"
            if not self.set_changed:
                return f"{head} unchanged"
            moved = self.previous_count is not None and self.previous_count != self.capped_count
            return f"{head} changed" + (f" (was {self.previous_count:,})" if moved else "")
        if not self.changed:
            return "categories unchanged"
        parts = []
        if self.new:
            noun = "category" if len(self.new) == 1 else "categories"
            parts.append(f"{len(self.new)} new {noun}: " + _join([repr(v) for v in self.new]))
        if self.vanished:
            listed = _join([repr(v) for v in self.vanished])
            parts.append(f"{len(self.vanished)} vanished: {listed}")
        return "; ".join(parts)

    @property
    def sentence(self) -> str:
        """The same as `describe()`."""
        return self.describe()


@dataclass(frozen=True)
class CategorySet:
    """What one load recorded about a categorical column's distinct values.

    Attributes:
        values: The sorted distinct values, at most the cap (the first ones in sort order).
        count: The exact number of distinct values, when recorded.
        digest: An order-independent hash of the full set of distinct values (any text; equal
            sets give equal digests), when recorded.
        capped: True when `values` holds only the first of more distinct values.
    """

    values: tuple[str, ...] = ()
    count: int | None = None
    digest: str | None = None
    capped: bool = False


def compare_category_sets(previous: CategorySet, current: CategorySet) -> CategoryDiff:
    """Compare a categorical column's distinct values between two loads, capped lists too.

    Complete lists are compared value by value (`compare_categories`). When either list was
    capped, the lists cannot show what changed beyond the cap, so the full sets are compared:
    by their digests when both loads recorded one; otherwise a different exact count, or a
    different common prefix of the sorted lists (the first values of a sorted set depend only
    on the set), still proves a change, and anything else is "not compared".

    Example: 50,000 values with one replaced by a new one: same count, same first 100 values,
    different digest → ``set_changed=True``, "capped: 50,000 values, set changed".

    Args:
        previous: The earlier load's record.
        current: This load's record.

    Returns:
        A `CategoryDiff`: new/vanished values for complete lists, else `capped_count` and
        `set_changed`.
    """
    if not (previous.capped or current.capped):
        return compare_categories(previous.values, current.values)
    count = current.count if current.count is not None else len(current.values)
    if previous.digest is not None and current.digest is not None:
        changed: bool | None = previous.digest != current.digest
    else:
        common = min(len(previous.values), len(current.values))
        differs = (
            (previous.count is not None and current.count is not None
             and previous.count != current.count)
            or list(previous.values[:common]) != list(current.values[:common])
        )
        changed = True if differs else None
    return CategoryDiff(capped_count=count, previous_count=previous.count, set_changed=changed)


def compare_schemas(previous: dict[str, str], current: dict[str, str]) -> SchemaDiff:
    """Compare two schemas given as column name → type string.

    Column names are compared exactly; types are compared ignoring case and surrounding
    spaces ("BIGINT" equals "bigint"), but reported as given. Column order is ignored.

    Args:
        previous: The earlier schema, e.g. ``{"id": "bigint", "name": "string"}``.
        current: The schema now.

    Returns:
        A `SchemaDiff`; its entries keep the order of the given dicts.
    """
    added = {name: typ for name, typ in current.items() if name not in previous}
    removed = {name: typ for name, typ in previous.items() if name not in current}
    retyped = {
        name: (typ, current[name])
        for name, typ in previous.items()
        if name in current and _norm_type(typ) != _norm_type(current[name])
    }
    return SchemaDiff(added=added, removed=removed, retyped=retyped)


def compare_categories(previous: Collection[str], current: Collection[str]) -> CategoryDiff:
    """Compare the distinct values of a categorical column between two loads.

    Args:
        previous: Values seen before (duplicates are ignored; None is allowed).
        current: Values seen now.

    Returns:
        A `CategoryDiff` with the new and vanished values, each sorted.
    """
    before, now = set(previous), set(current)
    return CategoryDiff(
        new=tuple(sorted(now - before, key=_sort_key)),
        vanished=tuple(sorted(before - now, key=_sort_key)),
    )


def evaluate(
    history: Sequence[float | None],
    value: float | None,
    config: AnomalyConfig = AnomalyConfig(),
    *,
    metric: str = "value",
    history_flags: Sequence[bool] | None = None,
    history_dates: Sequence[date | None] | None = None,
    value_date: date | None = None,
) -> Verdict:
    """Check one metric value against the metric's history.

    Args:
        history: Past values of the metric, oldest first, excluding the value under test.
            None/NaN/inf entries (metric missing that run) are skipped.
        value: The value under test, in the metric's unit (rows, bytes, seconds, a ratio).
            None/NaN/inf is an anomaly ("value is missing/NaN") when the metric used to be
            measured, else it passes as "not_measured".
        config: The rule and its parameters; the defaults need no tuning for row counts.
        metric: Name used in the reason sentence, e.g. "row_count".
        history_flags: Same length as `history`; True marks a past point that was itself
            flagged, which is excluded from the baseline (unless part of a held level shift).
        history_dates: Same length as `history`; the run dates, for weekday seasonality.
        value_date: The run date of `value`, for weekday seasonality.

    Returns:
        The `Verdict`. Too little history passes with status "insufficient_history"; absolute
        bounds and missing values are flagged regardless of history.

    Raises:
        ValueError: When `history_flags` or `history_dates` has a different length than
            `history`.
    """
    if history_flags is not None and len(history_flags) != len(history):
        raise ValueError(
            f"history_flags has {len(history_flags)} items but history has {len(history)}"
        )
    if history_dates is not None and len(history_dates) != len(history):
        raise ValueError(
            f"history_dates has {len(history_dates)} items but history has {len(history)}"
        )
    if _is_missing(value):
        measured = [v for v in history if not _is_missing(v)]
        if len(measured) < config.min_history or (history and _is_missing(history[-1])):
            if not measured:
                before = "no earlier load measured it"
            elif _is_missing(history[-1]):
                before = "the previous load did not measure it either"
            else:
                before = f"only {len(measured)} of {config.min_history} earlier loads measured it"
            return Verdict(
                passed=True, value=math.nan, baseline=None, lower=config.min, upper=config.max,
                rule="not_measured", reason=f"{metric} not measured ({value!r}); {before}",
                status="not_measured", window=config.window, points_used=0, pct_change=None,
            )
        return Verdict(
            passed=False, value=math.nan, baseline=None, lower=config.min, upper=config.max,
            rule="missing", reason=f"{metric} value is missing/NaN ({value!r})",
            status="anomaly", window=config.window, points_used=0, pct_change=None,
        )
    value = float(value)  # type: ignore[arg-type]

    selection: _Selection | None = None
    band: _Band | None = None
    if config.rule != "bounds":
        selection = _select_with_seasonality(
            history, config, history_flags, history_dates, value_date
        )
        if len(selection.points) >= config.min_history:
            band = _band(selection.points, config)

    bounds_reason = _bounds_violation(value, config)
    if bounds_reason is not None:
        return _verdict(
            False, value, band, config.min, config.max, "bounds",
            f"{metric} {_fmt(value)} {bounds_reason}", config,
        )
    if config.rule == "bounds":
        return _verdict(
            True, value, None, config.min, config.max, "bounds",
            f"{metric} {_fmt(value)} is {_describe_bounds(config)}", config,
        )

    assert selection is not None
    if band is None:
        said = "".join(f"; {note}" for note in selection.notes)
        return Verdict(
            passed=True, value=value, baseline=None, lower=config.min, upper=config.max,
            rule="insufficient_history",
            reason=(
                f"insufficient history: {len(selection.points)} of {config.min_history} points "
                f"for {metric} ({_fmt(value)} not checked){said}"
            ),
            status="insufficient_history", window=config.window, points_used=0,
            pct_change=None,
        )

    lower, upper = band.lower, band.upper
    if config.min is not None:
        lower = max(lower, config.min)
    if config.max is not None:
        upper = min(upper, config.max)
    notes = list(selection.notes)
    if band.outliers:
        notes.append(f"{_plural(band.outliers, 'outlier')} excluded")
    if selection.flagged_skipped:
        notes.append(f"{_plural(selection.flagged_skipped, 'flagged run')} excluded")
    of_what = (
        f"the {band.center_name} {_fmt(band.center)} of the last "
        f"{_plural(band.used, selection.unit, with_count=True)}"
    )
    allowed = f"(allowed {_fmt(lower)}–{_fmt(upper)})"
    suffix = "".join(f"; {note}" for note in notes)

    if (
        value == 0
        and config.zero_is_anomaly
        and band.center != 0
        and not any(point == 0 for point in selection.points)
    ):
        reason = (
            f"{metric} is 0 (empty load) while {of_what} is non-zero and none of them was 0 "
            f"{allowed}{suffix}"
        )
        return _verdict(False, value, band, lower, upper, "zero_load", reason, config)

    passed = lower <= value <= upper
    if passed and abs(value - band.center) > band.rule_half:
        suffix = f"; change within the absolute floor {_fmt(config.abs_floor)}" + suffix
    reason = f"{metric} {_fmt(value)} {_compare(value, band.center, passed)} {of_what} {allowed}"
    return _verdict(passed, value, band, lower, upper, config.rule, reason + suffix, config)


def judge_skipped_rows(
    history: Sequence[float | None],
    value: float | None,
    *,
    max_increase: float = 0.5,
    window: int = 10,
    metric: str = "rows_skipped",
) -> Verdict:
    """Flag a jump in the rows an incremental load's watermark filter dropped.

    The baseline is the highest count of the last `window` measured loads (flagged ones
    included: a source whose count stepped up warns once, not on every load after it). A
    value is flagged when it is above zero and above ``baseline × (1 + max_increase)``; in
    particular any skipped row after loads that skipped none. A drop is never flagged. A
    source that keeps every past row counts them all each time: its count grows by a load's
    rows per load and stays within the band once the first jump was reported.

    Examples: history 0, 0, 0 and value 4 → flagged ("the last 3 loads skipped none");
    history 100, 130 and value 150 → passes (allowed up to 195); history 100 and value 400 →
    flagged (300% above 100, allowed up to 150).

    Args:
        history: Past counts, oldest first; None/NaN (a load without a watermark filter: the
            first one, a full refresh) is skipped.
        value: The count of the load under test; None/NaN passes as "not_measured".
        max_increase: Allowed growth over the baseline, as a fraction (0.5 = 50%); >= 0.
        window: How many of the newest measured counts form the baseline; >= 1.
        metric: Name used in the reason sentence.

    Returns:
        The `Verdict` (rule "skipped_rows"; "insufficient_history" when no earlier load was
        measured, "not_measured" when this one was not).

    Raises:
        ValueError: A negative `max_increase` or a `window` below 1.
    """
    if max_increase < 0 or window < 1:
        raise ValueError(f"max_increase must be >= 0 and window >= 1, got {max_increase}, "
                         f"{window}")

    def verdict(passed: bool, number: float, status: str, rule: str, reason: str,
                baseline: float | None = None, upper: float | None = None,
                used: int = 0) -> Verdict:
        pct = (number - baseline) / baseline * 100 if baseline else None
        return Verdict(passed=passed, value=number, baseline=baseline, lower=None, upper=upper,
                       rule=rule, reason=reason, status=status, window=window,
                       points_used=used, pct_change=pct)

    if _is_missing(value):
        return verdict(True, math.nan, "not_measured", "not_measured",
                       f"{metric} not measured: the load applied no watermark filter (first "
                       "load, full refresh, or counting turned off)")
    value = float(value)  # type: ignore[arg-type]
    points = [float(v) for v in history if not _is_missing(v)][-window:]  # type: ignore[arg-type]
    if not points:
        return verdict(True, value, "insufficient_history", "insufficient_history",
                       f"insufficient history: {metric} {_fmt(value)}, and no earlier load "
                       "counted its skipped rows to compare with")
    baseline = max(points)
    upper = baseline * (1 + max_increase)
    loads = _plural(len(points), "load")
    if value <= upper:
        return verdict(True, value, "ok", "skipped_rows",
                       f"{metric} {_fmt(value)} is within {_fmt(upper)} (the highest of the "
                       f"last {loads}, {_fmt(baseline)}, + {max_increase:.0%})",
                       baseline, upper, len(points))
    if baseline == 0:
        reason = f"{metric} {_fmt(value)} while the last {loads} skipped none"
    else:
        reason = (f"{metric} {_fmt(value)} {_compare(value, baseline, False)} the highest of "
                  f"the last {loads}, {_fmt(baseline)} (allowed up to {_fmt(upper)})")
    return verdict(False, value, "anomaly", "skipped_rows", reason, baseline, upper,
                   len(points))


# --- internals ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Selection:
    """The raw baseline points (oldest first) and what was done to pick them."""

    points: list[float]
    unit: str
    notes: list[str]
    flagged_skipped: int


@dataclass(frozen=True)
class _Band:
    """The allowed band computed from baseline points."""

    center: float
    lower: float
    upper: float
    used: int
    outliers: int
    center_name: str
    rule_half: float
    slope: float = 0.0
    log_scale: bool = False

    def at(self, ahead: int) -> tuple[float, float]:
        """(lower, upper) moved `ahead` runs along the band's trend (as is without one)."""
        if not self.slope or not ahead:
            return self.lower, self.upper
        if self.log_scale:
            factor = math.exp(self.slope * ahead)
            return self.lower * factor, self.upper * factor
        shift = self.slope * ahead
        return self.lower + shift, self.upper + shift


def _select_with_seasonality(
    history: Sequence[float | None],
    config: AnomalyConfig,
    flags: Sequence[bool] | None,
    dates: Sequence[date | None] | None,
    value_date: date | None,
) -> _Selection:
    """Pick baseline points, restricted to the weekday of `value_date` when configured.

    With `weekday_seasonality` None (the default) the weekly pattern is looked for in the
    history itself (`weekly_pattern`) and used when it holds; True forces it, False never.
    """
    detected = False
    if config.weekday_seasonality is None:
        detected = dates is not None and value_date is not None and weekly_pattern(
            history, dates, flags, config)
        if not detected:
            return _select(history, config, flags, None, None, "run")
    elif not config.weekday_seasonality:
        return _select(history, config, flags, None, None, "run")
    if dates is None or value_date is None:
        selection = _select(history, config, flags, None, None, "run")
        selection.notes.append(
            "weekday seasonality needs history_dates and value_date; compared with all runs"
        )
        return selection
    day = _WEEKDAYS[value_date.weekday()]
    seasonal = _select(history, config, flags, dates, value_date.weekday(), day)
    if len(seasonal.points) >= config.min_history:
        if detected:
            seasonal.notes.append("weekly pattern detected")
        return seasonal
    selection = _select(history, config, flags, None, None, "run")
    selection.notes.append(
        f"only {len(seasonal.points)} earlier {day}s of {config.min_history} needed for "
        f"weekday seasonality; compared with all runs"
    )
    return selection


def weekly_pattern(
    history: Sequence[float | None],
    dates: Sequence[date | None],
    flags: Sequence[bool] | None,
    config: AnomalyConfig,
) -> bool:
    """True when the history shows a weekly season: weekdays differ far more than they vary.

    Looks at the last `WEEKLY_SCAN_DAYS` (10 weeks) of measured, unflagged points with one
    point per day (daily partitions or daily runs). The series is detrended (Theil-Sen, on the
    log scale when positive); then each weekday's median is its seasonal effect. The pattern
    holds when the spread between the weekday effects is more than `WEEKLY_SEPARATION` (6)
    robust sigmas of the points around their own weekday's effect, and every weekday present
    has at least 3 points. Example: weekdays 100,000 ± 3%, weekends 33,000 ± 3% → effects 1.1
    apart on the log scale, noise 0.03: a weekly pattern. Pure noise of ±35% spreads the
    weekday medians by about 1.2 sigma: no pattern.

    Returns False with fewer than 3 weeks of points or more than one point on some day.
    """
    points: list[tuple[date, float]] = []
    newest: date | None = None
    for index in range(len(history) - 1, -1, -1):
        when, raw = dates[index], history[index]
        if when is None:
            return False
        newest = newest or when
        if (newest - when).days >= WEEKLY_SCAN_DAYS:
            break
        if _is_missing(raw) or (flags is not None and flags[index]):
            continue
        points.append((when, float(raw)))  # type: ignore[arg-type]
    if len(points) < 21 or len({when for when, _ in points}) != len(points):
        return False
    log_scale = min(v for _, v in points) > 0
    pairs = [((when - newest).days, math.log(v) if log_scale else v)  # type: ignore[operator]
             for when, v in points]
    slope, intercept = _theil_sen(pairs)
    by_day: dict[int, list[float]] = {}
    for (when, _), (x, y) in zip(points, pairs):
        by_day.setdefault(when.weekday(), []).append(y - (intercept + slope * x))
    if len(by_day) < 5 or min(len(values) for values in by_day.values()) < 3:
        return False
    effects = {day: statistics.median(values) for day, values in by_day.items()}
    noise = [r - effects[day] for day, values in by_day.items() for r in values]
    sigma = _robust_sigma(noise, 0.0)
    spread = max(effects.values()) - min(effects.values())
    if not log_scale:
        scale = abs(statistics.median(v for _, v in points)) or 1.0
        spread, sigma = spread / scale, sigma / scale
    return spread > WEEKLY_SEPARATION * sigma and spread > math.log1p(DEFAULT_MIN_CHANGE)


def _entries(
    history: Sequence[float | None],
    flags: Sequence[bool] | None,
    dates: Sequence[date | None] | None,
    weekday: int | None,
) -> Iterator[tuple[float, bool]]:
    """Yield (value, flagged) newest first, skipping missing values and other weekdays."""
    for index in range(len(history) - 1, -1, -1):
        raw = history[index]
        if _is_missing(raw):
            continue
        if weekday is not None:
            when = dates[index] if dates is not None else None
            if when is None or when.weekday() != weekday:
                continue
        yield float(raw), bool(flags[index]) if flags is not None else False  # type: ignore


def _select(
    history: Sequence[float | None],
    config: AnomalyConfig,
    flags: Sequence[bool] | None,
    dates: Sequence[date | None] | None,
    weekday: int | None,
    unit: str,
) -> _Selection:
    """Pick the raw baseline points: the last `window` usable ones, or a held level shift."""
    window, runs = config.window, config.level_shift_runs
    entries: list[tuple[float, bool]] = []
    usable_seen = 0
    for entry in _entries(history, flags, dates, weekday):
        entries.append(entry)
        usable_seen += not entry[1]
        if usable_seen >= window + runs:
            break

    usable: list[float] = []
    flagged_skipped = 0
    for point, flagged in entries:
        if len(usable) == window:
            break
        if flagged:
            flagged_skipped += 1
        else:
            usable.append(point)
    usable.reverse()

    if runs and len(entries) >= runs:
        older = [point for point, flagged in entries[runs:] if not flagged][:window]
        if len(older) >= config.min_history:
            old_band = _band(older[::-1], config)
            # entries[i] lies runs - 1 - i runs after the first tail point, where the old band
            # is centered: a trend band is carried along to it (a level band stays put).
            tail = [(point, runs - 1 - i) for i, (point, _) in enumerate(entries[:runs])]
            side = 0
            if all(point > old_band.at(ahead)[1] for point, ahead in tail):
                side = 1
            elif all(point < old_band.at(ahead)[0] for point, ahead in tail):
                side = -1
            if side:
                regime: list[float] = []
                for i, (point, _) in enumerate(entries):
                    lower, upper = old_band.at(runs - 1 - i)
                    outside = point > upper if side > 0 else point < lower
                    if not outside or len(regime) == window:
                        break
                    regime.append(point)
                regime.reverse()
                to_zero = config.zero_is_anomaly and statistics.median(regime) == 0
                if len(regime) >= config.min_history and not (to_zero and old_band.center):
                    note = (
                        f"level shift accepted: the last {_plural(len(regime), unit, True)} "
                        f"held a new level (previous {old_band.center_name} "
                        f"{_fmt(old_band.center)})"
                    )
                    return _Selection(regime, unit, [note], 0)
    if runs and len(usable) < config.min_history <= len(entries) and len(entries) >= runs:
        # Too few unflagged points: if the recent runs agree with each other, the flagged
        # points are the only evidence of normal (ends the warm-up alarms of seasonality).
        everything = [point for point, _ in entries[:window]][::-1]
        tail = everything[-runs:]
        tail_band = _band(tail, config)
        agree = all(tail_band.lower <= point <= tail_band.upper for point in tail)
        to_zero = config.zero_is_anomaly and statistics.median(everything) == 0
        if agree and not to_zero:
            note = (
                f"only {len(usable)} unflagged {_plural(len(usable), unit, False)}: "
                f"flagged runs used as the baseline since the last {runs} agree"
            )
            return _Selection(everything, unit, [note], 0)
    return _Selection(usable, unit, [], flagged_skipped)


def _band(points: list[float], config: AnomalyConfig) -> _Band:
    """The allowed band of `config.rule` over `points` (non-empty), after outlier removal."""
    if config.rule == "auto":
        return _adaptive_band(points, config)
    center = statistics.median(points)
    sigma = _robust_sigma(points, center)
    kept = points
    if sigma > 0:
        cut = config.mad_threshold * sigma
        kept = [point for point in points if abs(point - center) <= cut]
        center = statistics.median(kept)
        sigma = _robust_sigma(kept, center)
    name = "median"
    if config.rule == "zscore":
        name = "mean"
        center = statistics.fmean(kept)
        half = config.z_threshold * (statistics.stdev(kept) if len(kept) > 1 else 0.0)
    elif config.rule == "relative_change":
        half = _max_change(config) * abs(center)
    else:  # mad
        half = config.mad_threshold * sigma
    rule_half = half
    half = max(half, config.abs_floor)
    lower = center - half
    if lower < 0 <= min(kept):
        lower = 0.0  # a metric that was never negative (a count) is not allowed below zero
    outliers = len(points) - len(kept)
    return _Band(center, lower, center + half, len(kept), outliers, name, rule_half)


def _max_change(config: AnomalyConfig) -> float:
    """`max_change`, or the seed rule's 0.5 when unset."""
    return RELATIVE_CHANGE_DEFAULT if config.max_change is None else config.max_change


def _adaptive_band(points: list[float], config: AnomalyConfig, ahead: int = 0) -> _Band:
    """The ``auto`` band: width from the series' own spread, center on its trend if it has one.

    Positive series (counts, sums of positive amounts) are judged on the log scale, so spread
    and trend are relative (a 3% wobble is 3% at any size) and the band is a ratio band;
    series with negative values, or mostly zeros, on the linear scale. Zeros in an otherwise
    positive series (past empty loads) are left out as outliers.

    Args:
        points: Baseline points, oldest first, one per run (or per same weekday).
        config: `mad_threshold`, `max_change` (the relative floor when set), `abs_floor`.
        ahead: How many runs after the last point the band is for (0 = the next run).
    """
    n = len(points)
    positive = [(x, p) for x, p in enumerate(points) if p > 0]
    log_scale = min(points) >= 0 and len(positive) >= max(1, 0.8 * n)
    pairs = [(x, math.log(p)) for x, p in positive] if log_scale else list(enumerate(points))

    # Level fit: median and robust spread, outliers (past incidents) dropped once.
    kept = _drop_outliers(pairs, 0.0, statistics.median(y for _, y in pairs), config)
    level = statistics.median(y for _, y in kept)
    level_sigma = _robust_sigma([y for _, y in kept], level)
    center, sigma, slope, fit = level, level_sigma, 0.0, "median"

    # Trend fit (Theil-Sen): taken when it explains the series clearly better than a level.
    if len(pairs) >= TREND_MIN_POINTS and level_sigma > 0:
        t_slope, t_icept = _theil_sen(pairs)
        t_kept = _drop_outliers(pairs, t_slope, t_icept, config)
        t_slope, t_icept = _theil_sen(t_kept)
        residuals = [y - (t_icept + t_slope * x) for x, y in t_kept]
        t_sigma = _robust_sigma(residuals, statistics.median(residuals))
        # A trend is real when it explains the spread and its rise over the window is many
        # residual sigmas (pure noise fits slopes too: about 1-3 sigmas over 30 points).
        rise = abs(t_slope) * len(pairs)
        if t_sigma < TREND_GAIN * level_sigma and rise > TREND_MIN_RISE * t_sigma:
            kept, slope, sigma, fit = t_kept, t_slope, t_sigma, "trend"
            center = t_icept + t_slope * (n + ahead)

    exact_constant = len({y for _, y in kept}) == 1
    # The spread estimate of a few points is itself uncertain: widen the band for small n.
    half = config.mad_threshold * sigma * (1 + 1 / math.sqrt(len(kept)))
    floor = DEFAULT_MIN_CHANGE if config.max_change is None else config.max_change
    if log_scale:
        # The level's center in the metric's own unit, exactly (exp(log(x)) is not always x).
        mid = math.exp(center) if fit == "trend" else statistics.median(
            points[x] for x, _ in kept)
        upper = mid * math.exp(max(half, math.log1p(floor)))
        down = CONSTANT_MAX_LOSS if exact_constant else 1 - math.exp(-max(half, math.log1p(floor)))
        lower = mid * (1 - down)
    else:
        mid = center
        width = max(half, floor * abs(center))
        upper = mid + width
        lower = mid - (CONSTANT_MAX_LOSS * abs(center) if exact_constant else width)
    rule_half = max(upper - mid, mid - lower)
    lower = min(lower, mid - config.abs_floor)
    upper = max(upper, mid + config.abs_floor)
    if lower < 0 <= min(points):
        lower = 0.0  # a metric that was never negative (a count) is not allowed below zero
    name = "trend" if fit == "trend" else "median"
    return _Band(mid, lower, upper, len(kept), n - len(kept), name, rule_half, slope, log_scale)


def _drop_outliers(
    pairs: list[tuple[int, float]], slope: float, intercept: float, config: AnomalyConfig
) -> list[tuple[int, float]]:
    """The pairs within `mad_threshold` robust sigmas of the line (all, when sigma is 0)."""
    residuals = [y - (intercept + slope * x) for x, y in pairs]
    middle = statistics.median(residuals)
    sigma = _robust_sigma(residuals, middle)
    if sigma == 0:
        return pairs
    cut = config.mad_threshold * sigma
    return [pair for pair, r in zip(pairs, residuals) if abs(r - middle) <= cut]


def _theil_sen(pairs: list[tuple[int, float]]) -> tuple[float, float]:
    """Slope (median of pairwise slopes) and intercept (median of y - slope x) of the points.

    O(n²) pairs; n is at most `window` (30 by default: 435 pairs).
    """
    slopes = [
        (y2 - y1) / (x2 - x1)
        for i, (x1, y1) in enumerate(pairs)
        for x2, y2 in pairs[i + 1:]
        if x2 != x1
    ]
    slope = statistics.median(slopes) if slopes else 0.0
    return slope, statistics.median(y - slope * x for x, y in pairs)


def _robust_sigma(points: list[float], center: float) -> float:
    """Standard deviation estimate: 1.4826 × MAD, or 1.2533 × mean abs deviation if MAD is 0."""
    deviations = [abs(point - center) for point in points]
    mad = statistics.median(deviations)
    if mad > 0:
        return MAD_TO_SIGMA * mad
    return MEAN_AD_TO_SIGMA * statistics.fmean(deviations)


def _verdict(
    passed: bool,
    value: float,
    band: _Band | None,
    lower: float | None,
    upper: float | None,
    rule: str,
    reason: str,
    config: AnomalyConfig,
) -> Verdict:
    """Assemble a Verdict, computing the percent change against the band's center."""
    baseline = band.center if band is not None else None
    pct = (value - baseline) / abs(baseline) * 100 if baseline else None
    return Verdict(
        passed=passed, value=value, baseline=baseline, lower=lower, upper=upper, rule=rule,
        reason=reason, status="ok" if passed else "anomaly", window=config.window,
        points_used=band.used if band is not None else 0, pct_change=pct,
    )


def _bounds_violation(value: float, config: AnomalyConfig) -> str | None:
    """The reason fragment when `value` breaks an absolute bound, else None."""
    if config.min is not None and value < config.min:
        return f"is below the minimum {_fmt(config.min)}"
    if config.max is not None and value > config.max:
        return f"is above the maximum {_fmt(config.max)}"
    return None


def _describe_bounds(config: AnomalyConfig) -> str:
    """'within the bounds 1–100', 'at least 1', 'at most 100' or 'not bounded'."""
    if config.min is not None and config.max is not None:
        return f"within the bounds {_fmt(config.min)}–{_fmt(config.max)}"
    if config.min is not None:
        return f"at least the minimum {_fmt(config.min)}"
    if config.max is not None:
        return f"at most the maximum {_fmt(config.max)}"
    return "not bounded (no min or max configured)"


def _compare(value: float, center: float, passed: bool) -> str:
    """'is within 1% of', 'equals', 'is 61% below' or, for a zero center, 'is 5 above'."""
    diff = value - center
    if diff == 0:
        return "equals"
    if center == 0:
        amount = _fmt(abs(diff))
        return f"is within {amount} of" if passed else f"is {amount} {_direction(diff)}"
    pct = round(abs(diff) / abs(center) * 100, 6)  # 89.99999999999999 is 90
    if passed:
        return f"is within {math.ceil(pct):,}% of"
    shown = f"{math.floor(pct):,}" if pct >= 1 else f"{pct:.2g}"
    return f"is {shown}% {_direction(diff)}"


def _direction(diff: float) -> str:
    return "above" if diff > 0 else "below"


def _fmt(number: float) -> str:
    """Thousands separators; integers and values >= 100 without decimals, else 2–3 digits."""
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "∞" if number > 0 else "-∞"
    if number == 0:
        return "0"
    size = abs(number)
    if size >= 100 or number == int(number):
        return f"{number:,.0f}"
    if size >= 1:
        return f"{number:,.2f}".rstrip("0").rstrip(".")
    return f"{number:.3g}"


def _plural(count: int, noun: str, with_count: bool = True) -> str:
    """'1 run', '3 runs' (or just the noun when `with_count` is False)."""
    word = noun if count == 1 else noun + "s"
    return f"{count} {word}" if with_count else word


def _is_missing(number: object) -> bool:
    """True for None, NaN and infinities."""
    if number is None:
        return True
    try:
        return not math.isfinite(float(number))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return True


def _norm_type(type_name: str) -> str:
    return " ".join(str(type_name).split()).lower()


def _sort_key(item: object) -> tuple[bool, str]:
    return (item is None, str(item))


def _join(items: list[str]) -> str:
    """Comma-separated, at most 10 items then 'and N more'."""
    if len(items) <= _LIST_LIMIT:
        return ", ".join(items)
    return ", ".join(items[:_LIST_LIMIT]) + f" and {len(items) - _LIST_LIMIT} more"
