"""Stages 7 and 9 of a load: judge the staged load by the quality rules measured in its write
(`judge`), and, once it is published, run the rules that need a query (`query_rules`).
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import SparkSession

from etl_assets.core import metric_names as M
from etl_assets.core.load_request import LoadRequest
from etl_assets.core.outcomes import CheckOutcome
from etl_assets.core.specs import Project
from etl_assets.engine import quality as Q
from etl_assets.engine.frames import in_window
from etl_assets.engine.inputs import read_input
from etl_assets.engine.staging import Measured, Staged, job_group


def judge(
    staged: Staged, measured: Measured, samples: dict[str, Any], rejected_rows: int | None
) -> list[CheckOutcome]:
    """The verdicts of the rules measured in the load itself (observed counts and footers),
    in spec order; no Spark job.

    Args:
        staged: The staged load (its rules and observed counts).
        measured: Its metrics (row count, max/<column> for freshness).
        samples: Offending rows of the failed row-level rules (`staging.sample_failures`).
        rejected_rows: Rows quarantined, None without a quarantine; the rules judged the
            written rows and the rejected ones.
    """
    rules, observed = staged.rules, staged.observed
    judged = measured.metrics[M.ROW_COUNT] + (rejected_rows or 0)
    quarantined = None
    if staged.quarantining:
        quarantined = {r.name: rules.violations(observed, r) for r in rules.quarantine}
    return Q.judge_load(rules, observed, measured.metrics, judged, quarantined=quarantined,
                        samples=samples)


def query_rules(
    spark: SparkSession,
    project: Project,
    staged: Staged,
    request: LoadRequest,
    measured: Measured,
    before_publish: bool = False,
) -> list[CheckOutcome]:
    """The rules that need a query (unique, relationship, sql) over this run's rows, in the
    job group `<group>:quality`; [] when the table has none.

    After the publish they judge the table's rows in the run's window. `before_publish`
    (a table whose blocking rules include one, so the audit must see it) judges the staged
    files instead: the same rows for every write mode but `append`, where they are the
    appended rows only.
    """
    rules, target = staged.rules, staged.target
    table = target.table
    if not any(r.computed == Q.BY_QUERY for r in rules.rules):
        return []
    if before_publish:
        rows = spark.read.schema(measured.schema).option("basePath", target.location).parquet(
            target.location)
    else:
        rows = spark.table(table.qualified_name)
    with job_group(spark, f"{target.job_group}:quality",
                   f"etl_assets quality {table.qualified_name}"):
        return Q.run_query_rules(
            spark, rules, in_window(rows, table, request),
            lambda name: read_input(spark, project, name), measured.metrics[M.ROW_COUNT])


def blocking_query_rules(staged: Staged) -> bool:
    """Whether a blocking rule needs a query (it must then judge the staged rows)."""
    return any(r.computed == Q.BY_QUERY and r.spec.blocking for r in staged.rules.rules)
