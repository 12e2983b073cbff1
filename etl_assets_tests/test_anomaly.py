"""Tests of `etl_assets.core.anomaly`: labelled synthetic histories, pure Python, milliseconds."""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Sequence
from datetime import date, timedelta

import pytest

from etl_assets.core.anomaly import (
    AnomalyConfig,
    CategoryDiff,
    CategorySet,
    SchemaDiff,
    Verdict,
    compare_categories,
    compare_category_sets,
    compare_schemas,
    evaluate,
    judge_skipped_rows,
    weekly_pattern,
)

SEED = 20240601
BAND_RULES = {"auto", "relative_change", "mad", "zscore"}


# --- synthetic histories (fixed seeds) -----------------------------------------------------


def stable(n: int = 30, level: float = 1000.0, noise: float = 0.02, seed: int = SEED) -> list:
    """`n` runs around `level`, uniform relative noise of ± `noise`."""
    rng = random.Random(seed)
    return [round(level * (1 + rng.uniform(-noise, noise))) for _ in range(n)]


def noisy(n: int = 30, seed: int = SEED) -> list:
    """A noisy-but-stable table: ±15% around 1,000."""
    return stable(n, noise=0.15, seed=seed)


def growth(n: int = 60, rate: float = 0.01, seed: int = SEED) -> list:
    """Steady growth of `rate` per run with ±1% noise, starting at 1,000."""
    rng = random.Random(seed)
    return [round(1000 * (1 + rate) ** i * (1 + rng.uniform(-0.01, 0.01))) for i in range(n)]


def level_shift(before: int = 40, after: int = 10, seed: int = SEED) -> list:
    """1,000 rows for `before` runs, then the level doubled and held for `after` runs."""
    return stable(before, seed=seed) + stable(after, level=2000, seed=seed + 1)


def with_incidents(history: list, incidents: dict[int, float]) -> list:
    """A copy of `history` with `index → value` incidents written in."""
    result = list(history)
    for index, value in incidents.items():
        result[index] = value
    return result


START_MONDAY = date(2024, 1, 1)  # a Monday


def weekly(weeks: int = 10, seed: int = SEED) -> tuple[list, list]:
    """Daily runs from a Monday: weekdays ~1,000 rows, weekends ~300 (±3%), and their dates."""
    rng = random.Random(seed)
    dates = [START_MONDAY + timedelta(days=i) for i in range(weeks * 7)]
    values = [
        round((300 if d.weekday() >= 5 else 1000) * (1 + rng.uniform(-0.03, 0.03)))
        for d in dates
    ]
    return values, dates


def walk_forward(
    values: Sequence[float],
    config: AnomalyConfig = AnomalyConfig(),
    dates: Sequence[date] | None = None,
    start: int = 0,
) -> list[int]:
    """Evaluate every run against the runs before it, feeding verdicts back as flags.

    Returns:
        The indices of the runs flagged as anomalies (from `start` on).
    """
    flags: list[bool] = []
    alarms = []
    for i, value in enumerate(values):
        verdict = evaluate(
            values[:i], value, config, metric="row_count", history_flags=flags,
            history_dates=dates[:i] if dates else None, value_date=dates[i] if dates else None,
        )
        flags.append(not verdict.passed)
        if not verdict.passed and i >= start:
            alarms.append(i)
    return alarms


# --- labelled cases ---------------------------------------------------------------------------

STABLE = stable()
NOISY = noisy()
FLAT = [1000.0] * 30
TINY = [5, 6, 5, 4, 5, 6, 5, 5]

# id, history, value, config, passed, status, rule, expected baseline (None: don't check)
LABELLED = [
    ("stable_normal", STABLE, 1005, AnomalyConfig(), True, "ok", "auto", 1000),
    ("noisy_high_normal", NOISY, 1140, AnomalyConfig(), True, "ok", "auto", 1000),
    ("noisy_low_normal", NOISY, 860, AnomalyConfig(), True, "ok", "auto", 1000),
    ("steady_growth", growth()[:-1], growth()[-1], AnomalyConfig(), True, "ok", "auto", None),
    ("level_shift_held", level_shift(), 2010, AnomalyConfig(), True, "ok", "auto", 2000),
    ("drop_60", STABLE, 400, AnomalyConfig(), False, "anomaly", "auto", 1000),
    ("spike_80", STABLE, 1800, AnomalyConfig(), False, "anomaly", "auto", 1000),
    ("noisy_drop_60", NOISY, 400, AnomalyConfig(), False, "anomaly", "auto", 1000),
    ("noisy_spike_80", NOISY, 1800, AnomalyConfig(), False, "anomaly", "auto", 1000),
    ("zero_load", STABLE, 0, AnomalyConfig(), False, "anomaly", "zero_load", 1000),
    (
        "day_after_zero_incident",
        with_incidents(STABLE, {-1: 0}), 1000, AnomalyConfig(), True, "ok", "auto", 1000,
    ),
    (
        "day_after_drop_incident",
        with_incidents(STABLE, {-1: 400, -3: 0}), 995, AnomalyConfig(), True, "ok", "auto", 1000,
    ),
    ("flat_plus_one_row", FLAT, 1001, AnomalyConfig(), True, "ok", "auto", 1000),
    ("flat_big_drop", FLAT, 300, AnomalyConfig(), False, "anomaly", "auto", 1000),
    ("flat_big_spike", FLAT, 2000, AnomalyConfig(), False, "anomaly", "auto", 1000),
    ("flat_zero_history_zero", [0.0] * 30, 0, AnomalyConfig(), True, "ok", "auto", 0),
    ("flat_zero_history_spike", [0.0] * 30, 500, AnomalyConfig(), False, "anomaly", "auto", 0),
    ("tiny_5_to_8", TINY, 8, AnomalyConfig(), True, "ok", "auto", 5),
    ("tiny_without_floor", TINY, 8, AnomalyConfig(abs_floor=0), False, "anomaly", "auto", 5),
    ("tiny_empty_load", TINY, 0, AnomalyConfig(), False, "anomaly", "zero_load", 5),
    (
        "tiny_zero_allowed",
        TINY, 0, AnomalyConfig(zero_is_anomaly=False), True, "ok", "auto", 5,
    ),
    (
        "cold_start_two_points",
        [1000, 1010], 412, AnomalyConfig(), True, "insufficient_history",
        "insufficient_history", None,
    ),
    (
        "cold_start_zero_load",
        [1000, 1010, 990], 0, AnomalyConfig(), True, "insufficient_history",
        "insufficient_history", None,
    ),
    (
        "cold_start_empty",
        [], 5, AnomalyConfig(), True, "insufficient_history", "insufficient_history", None,
    ),
    (
        "relative_rule_drop",
        STABLE, 400, AnomalyConfig(rule="relative_change"), False, "anomaly",
        "relative_change", 1000,
    ),
    (
        "mad_rule_small_drift_flags",
        STABLE, 1100, AnomalyConfig(rule="mad"), False, "anomaly", "mad", 1000,
    ),
    ("mad_rule_normal", STABLE, 1010, AnomalyConfig(rule="mad"), True, "ok", "mad", 1000),
]


@pytest.mark.parametrize(
    ("history", "value", "config", "passed", "status", "rule", "baseline"),
    [case[1:] for case in LABELLED],
    ids=[case[0] for case in LABELLED],
)
def test_labelled_cases(history, value, config, passed, status, rule, baseline):
    verdict = evaluate(history, value, config, metric="row_count")

    assert verdict.passed is passed
    assert verdict.status == status
    assert verdict.rule == rule
    assert verdict.value == value
    assert verdict.window == config.window
    assert verdict.reason.startswith("row_count") or verdict.reason.startswith("insufficient")
    if baseline is not None:
        assert verdict.baseline == pytest.approx(baseline, rel=0.05, abs=0.5)
    if rule in BAND_RULES:
        assert verdict.lower is not None and verdict.upper is not None
        assert (verdict.lower <= value <= verdict.upper) is passed
        assert verdict.points_used >= config.min_history
        assert "allowed" in verdict.reason
        assert "median" in verdict.reason or "trend" in verdict.reason
    if status == "insufficient_history":
        assert verdict.baseline is None and verdict.points_used == 0
        assert f"insufficient history: {len(history)} of 5 points" in verdict.reason


def test_zero_load_reason_names_the_empty_load():
    verdict = evaluate(STABLE, 0, metric="row_count")
    assert "row_count is 0 (empty load)" in verdict.reason
    assert verdict.pct_change == pytest.approx(-100)


def test_reason_sentence_format():
    history = [1050, 1064] * 15  # median 1,057

    failed = evaluate(history, 412, metric="row_count")
    passed = evaluate(history, 1050, metric="row_count")

    # A calm series: the band is the relative floor, ±10% as a ratio (1,057 / 1.1 to × 1.1).
    assert failed.reason == (
        "row_count 412 is 61% below the median 1,057 of the last 30 runs (allowed 961–1,163)"
    )
    assert passed.reason == (
        "row_count 1,050 is within 1% of the median 1,057 of the last 30 runs "
        "(allowed 961–1,163)"
    )
    assert failed.pct_change == pytest.approx((412 - 1057) / 1057 * 100)
    assert (failed.lower, failed.upper) == pytest.approx((1057 / 1.1, 1057 * 1.1))


def test_reason_for_spike_says_above_and_keeps_decimals_sensible():
    verdict = evaluate([0.5, 0.52, 0.49, 0.51, 0.5, 0.5], 0.95, AnomalyConfig(abs_floor=0))
    assert not verdict.passed
    assert verdict.reason.startswith("value 0.95 is 90% above the median 0.5 of the last 6 runs")


def test_reason_for_zero_baseline_uses_absolute_change():
    verdict = evaluate([0.0] * 30, 500, metric="rejected_rows")
    assert verdict.pct_change is None
    assert "rejected_rows 500 is 500 above the median 0" in verdict.reason


def test_tiny_table_reason_mentions_the_floor():
    verdict = evaluate(TINY, 8, metric="row_count")
    assert "within the absolute floor 10" in verdict.reason


# --- flat series: every rule, no division by zero ------------------------------------------


@pytest.mark.parametrize("rule", sorted(BAND_RULES))
@pytest.mark.parametrize(("value", "passed"), [(1001, True), (1000, True), (2000, False),
                                               (300, False)])
def test_flat_series_every_rule(rule, value, passed):
    verdict = evaluate(FLAT, value, AnomalyConfig(rule=rule), metric="row_count")
    assert verdict.passed is passed
    assert verdict.baseline == 1000
    assert verdict.points_used == 30


# --- walk forward over whole series (the verdicts fed back as history_flags) ---------------


@pytest.mark.parametrize(
    "values",
    [stable(200), noisy(200), growth(120), stable(200, level=5, noise=0.4)],
    ids=["stable", "noisy", "growth_1pct", "tiny"],
)
def test_quiet_series_never_alarm(values):
    assert walk_forward(values) == []


@pytest.mark.parametrize("new_level", [2000, 400, 5000])
def test_level_shift_alarms_only_until_the_new_level_has_held(new_level):
    values = stable(40) + stable(40, level=new_level, seed=SEED + 1)
    alarms = walk_forward(values)
    assert alarms == list(range(40, 45))  # level_shift_runs = 5 alarms, then quiet


def test_an_outage_to_zero_is_never_accepted_as_a_new_level():
    values = stable(40) + [0] * 10
    assert walk_forward(values) == list(range(40, 50))


def test_flagged_zero_loads_are_not_used_as_a_baseline():
    config = AnomalyConfig(min=1)
    verdict = evaluate([0] * 6, 1000, config, history_flags=[True] * 6)
    assert verdict.passed
    assert verdict.status == "insufficient_history"


def test_past_incidents_alarm_once_and_do_not_poison_the_baseline():
    values = with_incidents(stable(80), {30: 0, 50: 380, 51: 1850, 65: 0})
    assert walk_forward(values) == [30, 50, 51, 65]


def test_unflagged_past_incident_is_excluded_as_outlier():
    history = with_incidents(STABLE, {-1: 0, -5: 5000})
    verdict = evaluate(history, 1000)
    assert verdict.passed
    assert verdict.points_used == 28
    assert "2 outliers excluded" in verdict.reason


# --- weekday seasonality -------------------------------------------------------------------


def test_normal_weekend_passes_with_weekday_seasonality():
    values, dates = weekly(weeks=10)
    saturday = dates[-1] + timedelta(days=6)
    assert saturday.weekday() == 5
    config = AnomalyConfig(weekday_seasonality=True)

    verdict = evaluate(values, 295, config, metric="row_count", history_dates=dates,
                       value_date=saturday)

    assert verdict.passed and verdict.status == "ok"
    assert verdict.baseline == pytest.approx(300, rel=0.05)
    assert verdict.points_used == 10
    assert "of the last 10 Saturdays" in verdict.reason


def test_normal_weekend_is_flagged_without_seasonality():
    values, dates = weekly(weeks=10)
    for config in (AnomalyConfig(rule="relative_change"), AnomalyConfig()):
        verdict = evaluate(values, 295, config)
        assert not verdict.passed
        assert verdict.baseline == pytest.approx(1000, rel=0.05)


def test_seasonality_still_flags_a_weekday_drop_and_a_weekend_spike():
    values, dates = weekly(weeks=10)
    config = AnomalyConfig(weekday_seasonality=True)
    monday, sunday = dates[-1] + timedelta(days=1), dates[-1] + timedelta(days=7)

    weekday_drop = evaluate(values, 300, config, history_dates=dates, value_date=monday)
    weekend_spike = evaluate(values, 1000, config, history_dates=dates, value_date=sunday)

    assert not weekday_drop.passed and "Mondays" in weekday_drop.reason
    assert not weekend_spike.passed and "Sundays" in weekend_spike.reason


def test_seasonal_walk_forward_is_quiet_once_five_weeks_exist():
    values, dates = weekly(weeks=12)
    config = AnomalyConfig(weekday_seasonality=True)
    assert walk_forward(values, config, dates, start=35) == []
    # Before five Saturdays exist, weekends fall back to all days (and alarm): only then.
    warm_up = walk_forward(values, config, dates)
    assert warm_up and all(i < 35 and dates[i].weekday() >= 5 for i in warm_up)
    assert walk_forward(values, AnomalyConfig(), dates, start=35) != []


def test_seasonality_falls_back_honestly_with_few_same_weekday_points():
    values, dates = weekly(weeks=3)
    saturday = dates[-1] + timedelta(days=6)

    verdict = evaluate(values, 1000, AnomalyConfig(weekday_seasonality=True),
                       history_dates=dates, value_date=saturday)

    assert "only 3 earlier Saturdays of 5 needed" in verdict.reason
    assert "compared with all runs" in verdict.reason
    assert verdict.passed  # 1,000 is normal among all runs


def test_seasonality_without_dates_says_so():
    verdict = evaluate(STABLE, 1000, AnomalyConfig(weekday_seasonality=True))
    assert verdict.passed
    assert "needs history_dates and value_date" in verdict.reason


# --- missing values ------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, math.nan, math.inf])
def test_missing_value_is_an_anomaly_when_the_metric_used_to_be_measured(value):
    verdict = evaluate(STABLE, value, metric="sum/amount")
    assert not verdict.passed
    assert verdict.status == "anomaly"
    assert verdict.rule == "missing"
    assert "sum/amount value is missing/NaN" in verdict.reason
    assert math.isnan(verdict.value)


@pytest.mark.parametrize("history, said", [
    ([], "no earlier load measured it"),  # the first load: +inf and -inf summed to NaN
    ([1000, 1010], "only 2 of 5 earlier loads measured it"),
    ([*STABLE, math.nan], "the previous load did not measure it either"),  # empty loads
    ([None] * 40, "no earlier load measured it"),
])
@pytest.mark.parametrize("value", [None, math.nan, -math.inf])
def test_an_unmeasured_value_without_a_measured_baseline_is_not_an_anomaly(value, history, said):
    verdict = evaluate(history, value, metric="sum/amount")
    assert verdict.passed
    assert (verdict.status, verdict.rule) == ("not_measured", "not_measured")
    assert verdict.reason.startswith("sum/amount not measured") and said in verdict.reason
    assert math.isnan(verdict.value) and verdict.baseline is None


def test_missing_points_in_history_are_skipped():
    holey = []
    for i, point in enumerate(STABLE):
        holey.append(point)
        if i % 4 == 0:
            holey.append(math.nan if i % 8 == 0 else None)

    clean = evaluate(STABLE, 400)
    with_holes = evaluate(holey, 400)

    assert dataclasses.replace(with_holes, reason="") == dataclasses.replace(clean, reason="")
    assert with_holes.points_used == 30


def test_missing_points_do_not_count_toward_min_history():
    verdict = evaluate([1000, None, math.nan, 1010, None], 1000)
    assert verdict.status == "insufficient_history"
    assert "insufficient history: 2 of 5 points" in verdict.reason


# --- absolute bounds -------------------------------------------------------------------------


def test_bounds_flag_below_min_even_inside_the_band():
    config = AnomalyConfig(min=900, max=1200)
    verdict = evaluate(STABLE, 850, config, metric="row_count")
    assert not verdict.passed
    assert verdict.rule == "bounds"
    assert verdict.reason == "row_count 850 is below the minimum 900"
    assert verdict.baseline == pytest.approx(1000, rel=0.05)


def test_bounds_flag_above_max_and_narrow_the_reported_band():
    config = AnomalyConfig(min=900, max=1200)
    above = evaluate(NOISY, 1300, config)
    inside = evaluate(NOISY, 1100, config)  # the noisy band (635–1,639) is wider than the bounds
    assert not above.passed and "above the maximum 1,200" in above.reason
    assert inside.passed and (inside.lower, inside.upper) == (900, 1200)


def test_bounds_need_no_history():
    config = AnomalyConfig(min=1)
    assert evaluate([], 0, config).rule == "bounds"
    assert not evaluate([], 0, config).passed
    assert evaluate([], 5, config).status == "insufficient_history"


def test_bounds_only_rule():
    config = AnomalyConfig(rule="bounds", min=0, max=100)
    ok = evaluate([], 50, config, metric="null_pct")
    bad = evaluate(STABLE, 150, config, metric="null_pct")
    assert ok.passed and ok.status == "ok" and ok.rule == "bounds"
    assert ok.reason == "null_pct 50 is within the bounds 0–100"
    assert not bad.passed and bad.rule == "bounds"


# --- z-score option ----------------------------------------------------------------------------


def test_zscore_rule():
    rng = random.Random(SEED)
    history = [rng.gauss(10_000, 100) for _ in range(30)]
    config = AnomalyConfig(rule="zscore")

    near = evaluate(history, 10_150, config, metric="bytes")
    far = evaluate(history, 10_600, config, metric="bytes")

    mean = sum(history) / len(history)
    assert near.passed and near.rule == "zscore"
    assert near.baseline == pytest.approx(mean, rel=0.01)
    assert "the mean" in near.reason
    assert not far.passed and far.rule == "zscore"
    assert far.lower < 10_000 < far.upper < 10_600


def test_zscore_baseline_is_not_poisoned_by_a_past_incident():
    history = with_incidents(STABLE, {-2: 0})
    verdict = evaluate(history, 1000, AnomalyConfig(rule="zscore"))
    assert verdict.passed
    assert verdict.baseline == pytest.approx(1000, rel=0.02)
    assert verdict.points_used == 29


# --- history flags and window ------------------------------------------------------------


def test_flagged_history_points_are_excluded():
    # 18 flagged bad loads of 100 rows interleaved with 12 good ones of 1,000 rows.
    history = [100, 100, 1000, 100, 1000] * 6
    flags = [point == 100 for point in history]
    config = AnomalyConfig(rule="relative_change")

    respected = evaluate(history, 1000, config, history_flags=flags)
    ignored = evaluate(history, 1000, config)

    assert respected.passed and respected.baseline == 1000
    assert respected.points_used == 12
    assert "flagged runs excluded" in respected.reason
    assert not ignored.passed and ignored.baseline == 100


def test_recent_flagged_bad_loads_stay_flagged():
    history = STABLE + [100, 100]
    flags = [False] * 30 + [True, True]
    verdict = evaluate(history, 100, history_flags=flags)
    assert not verdict.passed
    assert verdict.baseline == pytest.approx(1000, rel=0.05)


def test_lengths_must_match():
    with pytest.raises(ValueError, match="history_flags"):
        evaluate(STABLE, 1000, history_flags=[False])
    with pytest.raises(ValueError, match="history_dates"):
        evaluate(STABLE, 1000, history_dates=[START_MONDAY])


@pytest.mark.parametrize(("window", "used"), [(10, 10), (30, 30)])
def test_window_limits_points_used(window, used):
    history = list(range(1000, 1100))
    verdict = evaluate(history, 1100, AnomalyConfig(window=window))
    assert verdict.points_used == used
    assert verdict.window == window
    # +1 per run: the center is the trend's next value, not the lagging median (1,084.5 of 30).
    assert verdict.baseline == pytest.approx(1100, rel=1e-4)
    assert f"the trend 1,100 of the last {used} runs" in verdict.reason


class CountingSequence(Sequence):
    """A sequence that counts item reads, to check the work done per evaluation."""

    def __init__(self, items: list) -> None:
        self.items = items
        self.reads = 0

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index):
        self.reads += 1
        return self.items[index]


def test_work_is_proportional_to_the_window_not_the_history():
    history = CountingSequence(stable(100_000))
    verdict = evaluate(history, 1000)
    assert verdict.passed
    assert history.reads <= 30 + 5


# --- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rule": "magic"},
        {"window": 0},
        {"min_history": 0},
        {"min_history": 31},
        {"max_change": -0.1},
        {"mad_threshold": 0},
        {"z_threshold": -1},
        {"abs_floor": -1},
        {"level_shift_runs": -1},
        {"min": 10, "max": 1},
    ],
)
def test_invalid_config_is_rejected(kwargs):
    with pytest.raises(ValueError):
        AnomalyConfig(**kwargs)


def test_verdict_and_config_are_frozen():
    verdict = evaluate(STABLE, 1000)
    assert isinstance(verdict, Verdict)
    with pytest.raises(dataclasses.FrozenInstanceError):
        verdict.passed = False  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        AnomalyConfig().window = 3  # type: ignore[misc]


# --- schema and category diffs ------------------------------------------------------------------


def test_compare_schemas_reports_added_removed_and_retyped():
    previous = {"id": "bigint", "name": "string", "price": "int", "legacy": "string"}
    current = {"id": "BIGINT", "name": "string", "price": "decimal(10,2)", "note": "string"}

    diff = compare_schemas(previous, current)

    assert isinstance(diff, SchemaDiff)
    assert diff.changed
    assert diff.added == {"note": "string"}
    assert diff.removed == {"legacy": "string"}
    assert diff.retyped == {"price": ("int", "decimal(10,2)")}
    assert diff.describe() == (
        "schema changed: added note (string); removed legacy (string); "
        "retyped price int → decimal(10,2)"
    )


def test_compare_schemas_unchanged_ignores_order_and_type_case():
    diff = compare_schemas({"a": "int", "b": "string"}, {"b": "STRING", "a": "int"})
    assert not diff.changed
    assert diff.describe() == "schema unchanged"


def test_compare_categories():
    diff = compare_categories(["de", "fr", "fr", "nl"], {"fr", "it", "es", "nl"})

    assert isinstance(diff, CategoryDiff)
    assert diff.changed
    assert diff.new == ("es", "it")
    assert diff.vanished == ("de",)
    assert diff.describe() == "2 new categories: 'es', 'it'; 1 vanished: 'de'"
    assert diff.sentence == diff.describe()


def test_compare_categories_unchanged_and_long_lists():
    assert not compare_categories(["a", "b"], ["b", "a"]).changed
    assert compare_categories(["a"], ["a"]).describe() == "categories unchanged"

    many = compare_categories([], [f"c{i:02d}" for i in range(15)])
    assert many.describe().startswith("15 new categories: 'c00', 'c01'")
    assert many.describe().endswith("'c09' and 5 more")


def _capped(values: list[str], count: int, digest: str | None) -> CategorySet:
    return CategorySet(values=tuple(values), count=count, digest=digest, capped=True)


def test_capped_category_sets_are_compared_by_their_hash():
    # 50,000 values, the first 100 listed: one value beyond the cap replaced by a new one
    # keeps the list and the count; only the hash of the full set sees it.
    first = [f"v{i:05d}" for i in range(100)]
    before = _capped(first, 50_000, "0f3a")
    replaced = compare_category_sets(before, _capped(first, 50_000, "77c1"))
    assert replaced.changed and replaced.set_changed is True
    assert replaced.describe() == "capped: 50,000 values, set changed"
    assert replaced.new == () and replaced.vanished == ()  # a capped list cannot tell which

    same = compare_category_sets(before, _capped(first, 50_000, "0f3a"))
    assert not same.changed and same.describe() == "capped: 50,000 values, set unchanged"

    grown = compare_category_sets(before, _capped(first, 50_001, "9e00"))
    assert grown.describe() == "capped: 50,001 values, set changed (was 50,000)"


def test_capped_category_sets_without_an_earlier_hash_never_say_unchanged():
    first = [f"v{i:05d}" for i in range(100)]
    old_load = _capped(first, 50_000, None)  # recorded before loads hashed their sets
    unknown = compare_category_sets(old_load, _capped(first, 50_000, "0f3a"))
    assert not unknown.changed and unknown.set_changed is None
    assert "unchanged" not in unknown.describe() and "not compared" in unknown.describe()
    # A different count, or a different start of the sorted list, still proves a change.
    assert compare_category_sets(old_load, _capped(first, 49_999, "0f3a")).set_changed is True
    other = ["a", *first[1:]]
    assert compare_category_sets(old_load, _capped(other, 50_000, "0f3a")).set_changed is True


def test_a_list_that_grows_past_the_cap_is_compared_by_hash():
    complete = CategorySet(values=("a", "b"), count=2, digest="01", capped=False)
    assert compare_category_sets(complete, _capped(["a", "b"], 3, "02")).set_changed is True
    # Both complete: value by value, as before.
    diff = compare_category_sets(complete, CategorySet(values=("b", "c"), count=2, digest="03"))
    assert (diff.new, diff.vanished, diff.capped_count) == (("c",), ("a",), None)


def test_compare_categories_with_none():
    diff = compare_categories(["a", None], ["a", "b"])
    assert diff.new == ("b",)
    assert diff.vanished == (None,)


# --- rows skipped by an incremental load's watermark filter ----------------------------------


@pytest.mark.parametrize(("history", "value", "passed", "status", "words"), [
    ([0, 0, 0], 4, False, "anomaly", ["rows_skipped 4 while the last 3 loads skipped none"]),
    ([0, 0, 0], 0, True, "ok", ["within 0"]),
    ([100, 130], 150, True, "ok", ["within 195", "highest of the last 2 loads, 130"]),
    ([100], 400, False, "anomaly", ["300% above", "allowed up to 150"]),
    ([400, 100], 120, True, "ok", []),  # a drop is never flagged
    ([], 7, True, "insufficient_history", ["no earlier load"]),
    ([None, math.nan], 7, True, "insufficient_history", []),  # unmeasured loads are skipped
    ([0, 5], None, True, "not_measured", ["no watermark filter"]),
])
def test_skipped_rows_flag_a_jump_over_the_recent_highest(
    history: list, value: float | None, passed: bool, status: str, words: list[str]
) -> None:
    verdict = judge_skipped_rows(history, value)
    assert (verdict.passed, verdict.status) == (passed, status), verdict.reason
    for word in words:
        assert word in verdict.reason, verdict.reason


def test_skipped_rows_baseline_is_the_window_and_counts_a_flagged_jump() -> None:
    # A source that keeps its past rows: the step from 0 to 100 warns once, then growth of
    # one load's rows per load passes.
    counts = [0, 100, 130, 160, 190]
    verdicts = [judge_skipped_rows(counts[:i], counts[i]) for i in range(1, len(counts))]
    assert [v.passed for v in verdicts] == [False, True, True, True]
    # Only the newest `window` counts count: 1,000 three loads ago has left the window.
    assert not judge_skipped_rows([1000, 0, 0, 0], 5, window=3).passed
    assert judge_skipped_rows([1000, 0, 0, 0], 5, window=4).passed
    tight = judge_skipped_rows([100], 101, max_increase=0)
    assert not tight.passed and tight.upper == 100 and tight.baseline == 100
    with pytest.raises(ValueError, match="window"):
        judge_skipped_rows([], 1, window=0)


# --- the adaptive default: calm, trend, constant, weekly found by itself ----------------------


def test_calm_table_flags_a_30_pct_drop_and_a_40_pct_spike():
    calm = stable(noise=0.02)
    assert not evaluate(calm, 700).passed
    assert not evaluate(calm, 1400).passed
    assert evaluate(calm, 1030).passed


def test_calm_table_tolerates_the_relative_floor_of_10_pct():
    # 1.5M rows moving by a few hundred: a calm series, but a 5% change is not an incident.
    calm = stable(level=1_500_000, noise=0.0005)
    verdict = evaluate(calm, 1_500_000 * 0.95)
    assert verdict.passed
    assert verdict.lower == pytest.approx(verdict.baseline / 1.1)


def test_noisy_table_stays_quiet_on_a_30_pct_dip():
    swinging = stable(noise=0.35)
    assert evaluate(swinging, 700).passed
    assert evaluate(swinging, 1300).passed


def test_growing_table_is_judged_against_its_trend():
    history = growth(n=30, rate=0.04)
    expected = 1000 * 1.04 ** 30
    on_trend = evaluate(history, expected)
    below = evaluate(history, expected * 0.5)
    assert on_trend.passed and "the trend" in on_trend.reason
    assert not below.passed and "below the trend" in below.reason
    # The median of the window lags 15 runs (about 1.8x below today's level): it would pass.
    assert below.value > evaluate(history, expected, AnomalyConfig(rule="relative_change")).lower


def test_noise_does_not_make_a_trend():
    # Pure noise fits a slope too; it is not taken unless it rises many sigmas over the window.
    for seed in range(20):
        verdict = evaluate(stable(noise=0.35, seed=seed), 1000)
        assert "trend" not in verdict.reason, seed


def test_exactly_constant_dimension_flags_a_12_pct_loss_but_not_growth():
    constant = [48_091.0] * 20
    assert not evaluate(constant, 48_091 * 0.88).passed
    assert not evaluate(constant, 48_091 * 0.97).passed  # more than 2% of a constant table
    assert evaluate(constant, 48_091 + 5).passed
    assert evaluate(constant, 48_091 * 1.05).passed


def test_a_50_pct_drop_on_a_calm_table_with_an_old_spike_is_flagged():
    history = with_incidents(stable(noise=0.02), {8: 3500})
    verdict = evaluate(history, 500)
    assert not verdict.passed
    assert "1 outlier excluded" in verdict.reason


def test_weekly_pattern_is_found_without_configuration():
    values, dates = weekly(weeks=8)
    saturday = dates[-1] + timedelta(days=6)  # the last date is a Sunday
    monday = dates[-1] + timedelta(days=1)
    normal_saturday = evaluate(values, 300, history_dates=dates, value_date=saturday)
    busy_saturday = evaluate(values, 1000, history_dates=dates, value_date=saturday)
    weak_monday = evaluate(values, 600, history_dates=dates, value_date=monday)
    assert normal_saturday.passed
    assert "Saturdays" in normal_saturday.reason
    assert "weekly pattern detected" in normal_saturday.reason
    assert not busy_saturday.passed
    assert not weak_monday.passed and "Mondays" in weak_monday.reason


def test_weekday_seasonality_false_turns_detection_off():
    values, dates = weekly(weeks=8)
    saturday = dates[-1] + timedelta(days=6)
    verdict = evaluate(values, 300, AnomalyConfig(weekday_seasonality=False),
                       history_dates=dates, value_date=saturday)
    assert not verdict.passed and "weekly pattern" not in verdict.reason


def test_no_weekly_pattern_in_noise_or_without_enough_weeks():
    rng = random.Random(SEED)
    dates = [START_MONDAY + timedelta(days=i) for i in range(70)]
    noise = [1000 * (1 + rng.uniform(-0.35, 0.35)) for _ in dates]
    assert not weekly_pattern(noise, dates, None, AnomalyConfig())
    values, week_dates = weekly(weeks=2)
    assert not weekly_pattern(values, week_dates, None, AnomalyConfig())
    values, week_dates = weekly(weeks=8)
    assert weekly_pattern(values, week_dates, None, AnomalyConfig())


def test_a_null_fraction_jump_is_flagged_with_the_ratio_floor():
    # The null-fraction check's settings (checks.NULL_FRACTION_BASE): a floor of one
    # percentage point, not 10 rows, and zero nulls is good news.
    ratio = AnomalyConfig(abs_floor=0.01, zero_is_anomaly=False)
    history = [0.001, 0.0012, 0.0009, 0.0011, 0.001, 0.0008, 0.0013]
    assert not evaluate(history, 0.4, ratio).passed
    assert evaluate(history, 0.0015, ratio).passed  # a wobble below the floor
    assert evaluate(history, 0.0, ratio).passed
    # With the row-count floor of 10 nothing on a 0–1 scale could ever be flagged.
    assert evaluate(history, 0.4).passed
