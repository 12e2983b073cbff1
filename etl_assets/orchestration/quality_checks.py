"""The quality rules as Dagster asset checks: their specs on the table's asset, and each rule's
outcome as an `AssetCheckResult`.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from etl_assets.core.specs import Table
from etl_assets.engine.quality import (
    ALLOWED_FRACTION,
    COMPUTED,
    KIND,
    ROWS_JUDGED,
    RULE,
    SAMPLE_ROWS,
    STATUS,
    VIOLATION_FRACTION,
    VIOLATIONS,
    RuleOutcome,
    table_rules,
)
from etl_assets.orchestration import metadata as MD


def quality_check_specs(table: Table) -> list[dg.AssetCheckSpec]:
    """One `AssetCheckSpec` per rule, declared on the table's asset (results come with the
    materialization). ERROR rules with `blocking: true` skip the downstream tables."""
    key = dg.AssetKey(table.name)
    return [
        dg.AssetCheckSpec(
            rule.name,
            asset=key,
            description=rule.spec.description or f"{rule.text()} ({rule.spec.severity})",
            blocking=rule.spec.blocking,
            metadata={RULE: rule.text(), COMPUTED: rule.computed},
        )
        for rule in table_rules(table)
    ]


def to_check_result(key: dg.AssetKey, outcome: RuleOutcome) -> dg.AssetCheckResult:
    """The rule's Dagster check result: the numbers, the rule, where they came from, samples."""
    rule = outcome.rule
    metadata: dict[str, Any] = {
        RULE: dg.MetadataValue.text(rule.text()),
        KIND: dg.MetadataValue.text(rule.kind),
        COMPUTED: dg.MetadataValue.text(rule.computed),
        STATUS: dg.MetadataValue.text(outcome.status),
        ALLOWED_FRACTION: dg.MetadataValue.float(rule.spec.allowed_fraction),
    }
    if outcome.violations is not None:
        metadata[VIOLATIONS] = dg.MetadataValue.int(outcome.violations)
    if outcome.rows is not None:
        metadata[ROWS_JUDGED] = dg.MetadataValue.int(outcome.rows)
    if outcome.fraction is not None:
        metadata[VIOLATION_FRACTION] = dg.MetadataValue.float(outcome.fraction)
    if outcome.samples:
        metadata[SAMPLE_ROWS] = dg.MetadataValue.json(outcome.samples)
    for name, value in outcome.extra.items():
        metadata[name] = MD.to_metadata(value)
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=rule.name,
        passed=outcome.passed,
        severity=dg.AssetCheckSeverity(rule.spec.severity),
        description=outcome.description,
        metadata=metadata,
    )
