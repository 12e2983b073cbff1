"""How Dagster runs a table's asset, from its spec: partitions, retries, freshness, its pool.
"""

import dagster as dg

from etl_assets.core.specs import Table, parse_duration


def partitions_definition(table: Table) -> dg.TimeWindowPartitionsDefinition | None:
    """The Dagster partitions of a time-partitioned table."""
    spec = table.spec.partitions
    if spec is None:
        return None
    kind = dg.DailyPartitionsDefinition if spec.type == "daily" else dg.MonthlyPartitionsDefinition
    return kind(start_date=spec.start.isoformat(), end_offset=spec.end_offset,
                timezone=spec.timezone)


def retry_policy(table: Table) -> dg.RetryPolicy | None:
    """Dagster's `RetryPolicy` from the spec's `retries`."""
    retries = table.spec.retries
    if retries is None or retries.max == 0:
        return None
    backoff = {"linear": dg.Backoff.LINEAR, "exponential": dg.Backoff.EXPONENTIAL}
    return dg.RetryPolicy(
        max_retries=retries.max,
        delay=retries.delay_s or None,
        backoff=backoff.get(retries.backoff or ""),
        jitter=dg.Jitter.PLUS_MINUS if retries.jitter else None,
    )


def freshness_policy(table: Table) -> dg.FreshnessPolicy | None:
    """Dagster's freshness policy from the spec: the UI shows when the table is stale."""
    freshness = table.spec.freshness
    if freshness is None:
        return None
    warn = parse_duration(freshness.warn_after) if freshness.warn_after else None
    return dg.FreshnessPolicy.time_window(fail_window=parse_duration(freshness.max_age),
                                          warn_window=warn)


def table_pool(table: Table) -> str:
    """The Dagster concurrency pool of a table's writes: its qualified Hive name."""
    return f"table:{table.qualified_name}"
