"""Precision and recall of the default anomaly check against the anchors, per kind.

Builds the labelled suite of `bench/anomaly_suite.py` and judges every case with:
- ``default``: the project's default check. With ``--path dagster`` (the default) through the
  real check path: the history is written as runless materializations into an ephemeral
  Dagster instance and the table's check is executed alone (`checks.evaluate_table`), exactly
  as the asset check reads it; ``--path pure`` calls `anomaly.evaluate` directly (fast, for
  tuning).
- ``seed_50pct``: the hand-written logger's 50%-vs-previous rule.
- ``deequ_online_normal``: Deequ's OnlineNormal strategy with its defaults.
- ``elementary_zscore``: Elementary's z-score volume test with its defaults.

Prints precision and recall per kind and overall for each detector; a quiet kind (no
anomalies) shows its false alarms instead, which count against the overall precision.

Usage: .venv/bin/python bench/anomaly_eval.py [--per-kind 12] [--path dagster|pure] [--show-misses]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from anomaly_suite import (  # noqa: E402
    KINDS,
    Case,
    build_suite,
    deequ_online_normal,
    elementary_zscore,
    seed_rule,
)

from etl_assets.core.anomaly import AnomalyConfig, evaluate  # noqa: E402

RATIO_CONFIG = AnomalyConfig(abs_floor=0.01, zero_is_anomaly=False)
"""The null-fraction check's defaults (a 0–1 metric: no absolute floor, zero is good)."""


def pure_default(case: Case) -> bool:
    """The default rule called directly, with the config the check path would use."""
    config = RATIO_CONFIG if case.metric == "null_fraction" else AnomalyConfig()
    verdict = evaluate(list(case.history), case.value, config, metric=case.metric,
                       history_dates=list(case.dates), value_date=case.value_date)
    return not verdict.passed


class DagsterDefault:
    """The default check through Dagster: runless materializations, then the check alone.

    One instance (SQLite, temporary folder) and one daily-partitioned table per case, so each
    case's history is the only history its check reads.
    """

    def __init__(self, folder: Path, cases: int) -> None:
        import dagster as dg

        from etl_assets.core.specs import DEFS_FILE, domain_document, load_project

        self._dg = dg
        spec = folder / "eval" / DEFS_FILE
        spec.parent.mkdir()
        spec.write_text(domain_document(
            "database: eval\nsources: {src: {format: parquet, path: /nowhere}}\ntables:\n" + "".join(
                f"  - {{name: t{i}, inputs: [src], sql: SELECT * FROM src,"
                f" partitions: {{type: daily, column: day, start: '2025-01-01'}}}}\n"
                for i in range(cases))))
        self._tables = load_project(folder).tables
        (folder / "dagster").mkdir()
        self._context = dg.DagsterInstance.local_temp(str(folder / "dagster"))
        self._instance = self._context.__enter__()
        self._count = 0

    def close(self) -> None:
        self._context.__exit__(None, None, None)

    def __call__(self, case: Case) -> bool:
        from etl_assets.core import metric_names as M
        from etl_assets.orchestration.checks import NULLS_CHECK, ROW_COUNT_CHECK, evaluate_table

        dg = self._dg
        table = self._tables[f"t{self._count}"]
        self._count += 1
        key = dg.AssetKey(table.name)
        for value, day in [*zip(case.history, case.dates), (case.value, case.value_date)]:
            self._instance.report_runless_asset_event(dg.AssetMaterialization(
                key, partition=day.isoformat(), metadata=self._metadata(case, value, M)))
        check = NULLS_CHECK if case.metric == "null_fraction" else ROW_COUNT_CHECK
        latest, outcomes = evaluate_table(self._instance, table, {check})
        assert latest is not None and len(outcomes) == 1, outcomes
        return not outcomes[0].passed

    @staticmethod
    def _metadata(case: Case, value: float, M) -> dict:
        if case.metric == "null_fraction":
            rows = 1_000_000
            return {M.ROW_COUNT: rows, f"{M.NULL_COUNT}amount": round(value * rows)}
        return {M.ROW_COUNT: int(round(value))}


def score(cases: list[Case], detector: Callable[[Case], bool]) -> tuple[dict, list[Case]]:
    """Per kind and overall: [tp, fp, fn, tn]; and the cases judged wrongly."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    wrong = []
    for case in cases:
        flagged = detector(case)
        slot = (0 if case.anomaly else 1) if flagged else (2 if case.anomaly else 3)
        counts[case.kind][slot] += 1
        counts["overall"][slot] += 1
        if flagged != case.anomaly:
            wrong.append(case)
    return counts, wrong


def _ratio(num: int, den: int) -> str:
    return f"{num / den:.2f}" if den else "-"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-kind", type=int, default=12)
    parser.add_argument("--path", choices=("dagster", "pure"), default="dagster")
    parser.add_argument("--show-misses", action="store_true")
    args = parser.parse_args()
    cases = build_suite(args.per_kind)
    with tempfile.TemporaryDirectory() as folder:
        default = (DagsterDefault(Path(folder), len(cases)) if args.path == "dagster"
                   else pure_default)
        detectors = {"default": default, "seed_50pct": seed_rule,
                     "deequ_online_normal": deequ_online_normal,
                     "elementary_zscore": elementary_zscore}
        started = time.perf_counter()
        results = {name: score(cases, fn) for name, fn in detectors.items()}
        elapsed = time.perf_counter() - started
        if isinstance(default, DagsterDefault):
            default.close()
    out = sys.stdout
    anomalies = sum(c.anomaly for c in cases)
    out.write(f"{len(cases)} cases ({anomalies} anomalies) from {args.per_kind} histories of "
              f"each of {len(KINDS)} kinds; default judged via the {args.path} path\n\n")
    header = f"{'kind':<18}" + "".join(f"{name:>26}" for name in detectors)
    out.write(header + "\n" + f"{'':<18}" + "".join(f"{'precision / recall':>26}"
                                                     for _ in detectors) + "\n")
    for kind in [*KINDS, "overall"]:
        row = f"{kind:<18}"
        for name in detectors:
            tp, fp, fn, tn = results[name][0][kind]
            if tp + fn:
                cell = _ratio(tp, tp + fp) + " / " + _ratio(tp, tp + fn)
            else:  # a quiet kind: only false alarms can happen
                cell = f"{fp} of {fp + tn} false alarms"
            row += f"{cell:>26}"
        out.write(row + "\n")
    for name in detectors:
        tp, fp, fn, tn = results[name][0]["overall"]
        out.write(f"\n{name}: tp {tp}, fp {fp}, fn {fn}, tn {tn}")
    out.write(f"\n({elapsed:.0f} s)\n")
    if args.show_misses:
        for case in results["default"][1]:
            out.write(f"default wrong: {case.name} value {case.value:,.4g} "
                      f"(anomaly={case.anomaly}) last {case.history[-3:] if case.history else ()}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
