"""The quality rules as Dagster asset checks, declared on the table's asset (their results come
with the materialization, `etl_assets.orchestration.metadata.to_check_result`).
"""

from __future__ import annotations

import dagster as dg

from etl_assets.core.specs import Table
from etl_assets.engine.quality import (
    COMPUTED,
    RULE,
    table_rules,
)


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
