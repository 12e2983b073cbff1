"""A labelled suite of metric histories, and the anchor rules re-implemented from their docs.

Each `Case` is one history (oldest first, with a date per point) and one value under test,
labelled True when an experienced engineer wants it flagged. The kinds cover what the default
check must catch (calm tables, trends, dimension tables, weekly seasons, a calm table with an
old spike, null fractions) and what it must leave alone (noisy tables, steady growth, level
shifts that have held, the day after an incident, tiny tables, cold starts). Every kind is
generated from seeded random draws, so the suite is the same on every run; `bench/anomaly_eval.py`
runs it. Pure: standard library only.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

START = date(2026, 1, 5)  # a Monday


@dataclass(frozen=True)
class Case:
    """One labelled judgement: `value` (on `value_date`) against `history`."""

    kind: str
    name: str
    history: tuple[float, ...]
    dates: tuple[date, ...]
    value: float
    value_date: date
    anomaly: bool
    metric: str = "row_count"


def _dates(count: int) -> tuple[tuple[date, ...], date]:
    days = tuple(START + timedelta(days=i) for i in range(count + 1))
    return days[:-1], days[-1]


def _case(kind: str, name: str, series: Sequence[float], value: float, anomaly: bool,
          metric: str = "row_count", start_weekday: int = 0) -> Case:
    dates, value_date = _dates(len(series) + start_weekday)
    dates = dates[start_weekday:]
    return Case(kind, name, tuple(round(v, 6) for v in series), dates, value, value_date,
                anomaly, metric)


def _calm(rng: random.Random, seed: int) -> list[Case]:
    level = rng.uniform(1e4, 2e6)
    noise = rng.uniform(0.005, 0.03)
    length = rng.randint(20, 45)
    if seed % 3 == 2:  # uniform wobble of at most "a few percent"
        draw = lambda: rng.uniform(-2 * noise, 2 * noise)  # noqa: E731
    else:
        draw = lambda: rng.gauss(0, noise)  # noqa: E731
    series = [level * (1 + draw()) for _ in range(length)]
    normal = level * (1 + draw())
    bad = level * (rng.uniform(0.5, 0.7) if seed % 2 else rng.uniform(1.4, 2.0))
    return [_case("calm", f"calm-{seed}-normal", series, round(normal), False),
            _case("calm", f"calm-{seed}-{'drop' if seed % 2 else 'spike'}", series, round(bad),
                  True)]


def _trend(rng: random.Random, seed: int) -> list[Case]:
    level = rng.uniform(1e4, 1e6)
    growth = rng.uniform(0.02, 0.05)
    noise = rng.uniform(0.005, 0.02)
    length = rng.randint(20, 40)
    series = [level * (1 + growth) ** i * (1 + rng.gauss(0, noise)) for i in range(length)]
    expected = level * (1 + growth) ** length
    on_trend = expected * (1 + rng.gauss(0, noise))
    below = expected * (1 - rng.uniform(0.4, 0.6))
    return [_case("trend", f"trend-{seed}-on", series, round(on_trend), False),
            _case("trend", f"trend-{seed}-below", series, round(below), True)]


def _dimension(rng: random.Random, seed: int) -> list[Case]:
    level = float(rng.randint(2_000, 500_000))
    length = rng.randint(15, 40)
    series = [level] * length
    if seed % 3 == 1:  # a dimension that gains a handful of rows now and then
        for i in range(length):
            if rng.random() < 0.15:
                level += rng.randint(1, 5)
            series[i] = level
    return [_case("dimension", f"dim-{seed}-same", series, level, False),
            _case("dimension", f"dim-{seed}-grew", series, level + rng.randint(0, 5), False),
            _case("dimension", f"dim-{seed}-lost", series,
                  round(level * (1 - rng.uniform(0.1, 0.15))), True)]


def _weekly(rng: random.Random, seed: int) -> list[Case]:
    weekday = rng.uniform(5e4, 5e5)
    weekend = weekday * rng.uniform(0.25, 0.4)
    noise = rng.uniform(0.02, 0.05)
    weeks = rng.randint(8, 10)
    cases = []
    for target, label in ((5, "saturday"), (0, "monday")):
        length = weeks * 7 + target  # the value under test falls on `target`
        growth = rng.choice([0.0, 0.0, 0.002, 0.005])  # per day
        series = [(weekend if i % 7 >= 5 else weekday) * (1 + growth) ** i
                  * (1 + rng.gauss(0, noise)) for i in range(length)]
        usual = (weekend if target >= 5 else weekday) * (1 + growth) ** length
        normal = usual * (1 + rng.gauss(0, noise))
        cases.append(_case("weekly", f"weekly-{seed}-{label}-normal", series, round(normal),
                           False))
        bad = (weekday if target >= 5 else weekday * 0.6) * (1 + growth) ** length
        cases.append(_case("weekly", f"weekly-{seed}-{label}-bad", series,
                           round(bad * (1 + rng.gauss(0, noise))), True))
    return cases


def _old_spike(rng: random.Random, seed: int) -> list[Case]:
    level = rng.uniform(1e4, 1e6)
    noise = rng.uniform(0.01, 0.03)
    length = rng.randint(25, 40)
    series = [level * (1 + rng.gauss(0, noise)) for _ in range(length)]
    series[rng.randint(3, length - 8)] = level * rng.uniform(2.5, 4)
    return [_case("old_spike", f"spike-{seed}-normal", series,
                  round(level * (1 + rng.gauss(0, noise))), False),
            _case("old_spike", f"spike-{seed}-drop", series, round(level * 0.5), True)]


def _null_fraction(rng: random.Random, seed: int) -> list[Case]:
    base = rng.uniform(0.0005, 0.003)
    length = rng.randint(15, 35)
    series = [max(0.0, base * (1 + rng.gauss(0, 0.2))) for _ in range(length)]
    return [_case("null_fraction", f"nulls-{seed}-normal", series,
                  max(0.0, base * (1 + rng.gauss(0, 0.2))), False, "null_fraction"),
            _case("null_fraction", f"nulls-{seed}-jump", series, rng.uniform(0.2, 0.5), True,
                  "null_fraction")]


def _noisy(rng: random.Random, seed: int) -> list[Case]:
    level = rng.uniform(1e4, 1e6)
    length = rng.randint(20, 40)
    if seed % 2:
        series = [level * (1 + rng.uniform(-0.35, 0.35)) for _ in range(length)]
    else:
        series = [level * max(0.05, 1 + rng.gauss(0, 0.18)) for _ in range(length)]
    return [_case("noisy", f"noisy-{seed}-dip", series, round(level * 0.7), False),
            _case("noisy", f"noisy-{seed}-peak", series, round(level * 1.3), False)]


def _growth(rng: random.Random, seed: int) -> list[Case]:
    level = rng.uniform(1e4, 1e6)
    growth = rng.uniform(0.003, 0.015)
    length = rng.randint(20, 40)
    series = [level * (1 + growth) ** i * (1 + rng.gauss(0, 0.02)) for i in range(length)]
    value = level * (1 + growth) ** length * (1 + rng.gauss(0, 0.02))
    return [_case("steady_growth", f"growth-{seed}", series, round(value), False)]


def _level_shift(rng: random.Random, seed: int) -> list[Case]:
    level = rng.uniform(1e4, 1e6)
    factor = rng.choice([0.4, 0.5, 2.0, 2.5])
    held = rng.randint(6, 12)
    before = rng.randint(15, 30)
    series = [level * (1 + rng.gauss(0, 0.03)) for _ in range(before)]
    series += [level * factor * (1 + rng.gauss(0, 0.03)) for _ in range(held)]
    value = level * factor * (1 + rng.gauss(0, 0.03))
    return [_case("level_shift_held", f"shift-{seed}", series, round(value), False)]


def _after_incident(rng: random.Random, seed: int) -> list[Case]:
    level = rng.uniform(1e4, 1e6)
    length = rng.randint(15, 35)
    series = [level * (1 + rng.gauss(0, 0.03)) for _ in range(length)]
    series[-1] = rng.choice([0.0, level * 0.2, level * 3])
    if seed % 3 == 0:
        series[-2] = series[-1]
    return [_case("after_incident", f"after-{seed}", series,
                  round(level * (1 + rng.gauss(0, 0.03))), False)]


def _tiny(rng: random.Random, seed: int) -> list[Case]:
    length = rng.randint(10, 30)
    series = [float(rng.randint(3, 9)) for _ in range(length)]
    return [_case("tiny", f"tiny-{seed}", series, float(rng.randint(2, 14)), False)]


def _cold_start(rng: random.Random, seed: int) -> list[Case]:
    level = rng.uniform(100, 1e6)
    length = rng.randint(0, 4)
    series = [level * (1 + rng.gauss(0, 0.3)) for _ in range(length)]
    return [_case("cold_start", f"cold-{seed}", series, round(level * rng.uniform(0.3, 3)),
                  False)]


KINDS: dict[str, Callable[[random.Random, int], list[Case]]] = {
    "calm": _calm,
    "trend": _trend,
    "dimension": _dimension,
    "weekly": _weekly,
    "old_spike": _old_spike,
    "null_fraction": _null_fraction,
    "noisy": _noisy,
    "steady_growth": _growth,
    "level_shift_held": _level_shift,
    "after_incident": _after_incident,
    "tiny": _tiny,
    "cold_start": _cold_start,
}
"""Each kind's generator: (random source, seed) → its cases."""


def build_suite(per_kind: int = 12, seed: int = 20261202) -> list[Case]:
    """`per_kind` histories of every kind (a history gives one to four cases)."""
    cases = []
    for offset, (kind, make) in enumerate(KINDS.items()):
        for index in range(per_kind):
            cases.extend(make(random.Random(seed * 1000 + offset * 100 + index), index))
    return cases


# --- anchors, re-implemented from their documentation ----------------------------------------


def seed_rule(case: Case) -> bool:
    """The hand-written logger's rule: flag a change of more than 50% against the last load."""
    if not case.history or case.history[-1] == 0:
        return False
    return abs(case.value - case.history[-1]) / abs(case.history[-1]) > 0.5


def deequ_online_normal(case: Case, factor: float = 3.0, ignore_start: float = 0.1) -> bool:
    """Deequ's `OnlineNormalStrategy` defaults: running mean and standard deviation over the
    whole history (Welford), deviation factors 3 up and down, the first 10% of points never
    flagged, and points found anomalous left out of the running statistics
    (`ignoreAnomalies = true`)."""
    series = list(case.history) + [case.value]
    start = int(len(series) * ignore_start)
    count, mean, m2 = 0, 0.0, 0.0
    flagged_last = False
    for index, value in enumerate(series):
        std = math.sqrt(m2 / (count - 1)) if count > 1 else 0.0
        anomalous = (index >= start and count > 1
                     and not mean - factor * std <= value <= mean + factor * std)
        if index == len(series) - 1:
            flagged_last = anomalous
        if not anomalous:
            count += 1
            delta = value - mean
            mean += delta / count
            m2 += delta * (value - mean)
    return flagged_last


def elementary_zscore(case: Case, sensitivity: float = 3.0, training_days: int = 14,
                      min_training: int = 7) -> bool:
    """Elementary's volume anomaly test defaults: z-score of the value against the mean and
    standard deviation of the training period (the last 14 days), `anomaly_sensitivity` 3,
    both directions, no seasonality; too small a training set is not judged."""
    training = [v for v, d in zip(case.history, case.dates)
                if (case.value_date - d).days <= training_days]
    if len(training) < min_training:
        return False
    mean = statistics.fmean(training)
    std = statistics.stdev(training)
    if std == 0:
        return case.value != mean
    return abs(case.value - mean) / std > sensitivity
