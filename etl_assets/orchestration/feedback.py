"""Feedback on check verdicts: accept a flagged load, or re-baseline a table from a load.

- **accept** ("expected: the promotion doubled orders"): the load joins the baseline again and
  later verdicts no longer leave it out as a past incident.
- **rebaseline** ("the source system changed; judge from here on"): the checks judge later
  loads against this load and the ones after it only.

A decision is an `AssetObservation` of the table's asset (metadata ``etl/feedback``, the target
load's run id, event-log storage id and partition, the note and who decided), recorded by the
`etl_feedback` job: the checks read decisions from the same event log as the history, with one
bounded query, and the asset's page lists them. The job mirrors each decision into the Hive
table ``etl_log.check_feedback`` for SQL readers. Users launch the job from the launchpad
(typed config) or with ``etl-assets accept|rebaseline <table> --run <id> --note "..."``.
"""


import getpass
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Literal

import dagster as dg
from dagster_pyspark import LazyPySparkResource
from pydantic import Field

from etl_assets.core.records import FeedbackRecord
from etl_assets.orchestration.resources import EtlLogResource

FEEDBACK = "etl/feedback"
TARGET_RUN = "etl/target_run_id"
TARGET_STORAGE_ID = "etl/target_storage_id"
NOTE = "etl/note"
BY = "etl/by"
ACCEPT = "accept"
REBASELINE = "rebaseline"
ACTIONS = (ACCEPT, REBASELINE)
FEEDBACK_LIMIT = 200
"""Newest decisions read per table by the checks (a table gets a handful over its life)."""

TARGET_SCAN = 10_000
"""Materializations of the table read while looking for a run's loads (those in its time span:
a ranged backfill of many partitions is one run with one load per partition)."""

FEEDBACK_JOB = "etl_feedback"


class FeedbackError(ValueError):
    """A decision that cannot be recorded (unknown table or run), with the reason."""


@dataclass(frozen=True)
class Decision:
    """One recorded decision about one load (one partition of a ranged run counts as one)."""

    action: str
    target_run_id: str
    target_storage_id: int
    partition: str | None
    note: str
    by: str
    recorded_at: float
    """When the decision was recorded (epoch seconds)."""

    def describe(self) -> str:
        """'re-baselined by ana (the source system changed)' / 'accepted by ana'."""
        verb = "re-baselined" if self.action == REBASELINE else "accepted"
        note = f" ({self.note})" if self.note else ""
        return f"{verb} by {self.by or 'unknown'}{note}"


@dataclass
class Decisions:
    """A table's decisions as the checks use them.

    Attributes:
        accepted: Storage ids of accepted loads (never left out of a baseline as flagged).
        rebaseline: The newest re-baseline per partition-free table (or None).
    """

    accepted: dict[int, Decision] = field(default_factory=dict)
    rebaseline: Decision | None = None


def read_decisions(instance: dg.DagsterInstance, key: dg.AssetKey) -> Decisions:
    """The table's decisions, from its newest `FEEDBACK_LIMIT` observations (one query)."""
    records = instance.fetch_observations(key, limit=FEEDBACK_LIMIT).records
    decisions = Decisions()
    for record in records:  # newest first
        observation = record.asset_observation
        if observation is None or FEEDBACK not in observation.metadata:
            continue
        meta = {k: v.value for k, v in observation.metadata.items()}
        decision = Decision(
            action=str(meta[FEEDBACK]),
            target_run_id=str(meta.get(TARGET_RUN, "")),
            target_storage_id=int(meta.get(TARGET_STORAGE_ID, 0)),  # type: ignore[arg-type]
            partition=observation.partition,
            note=str(meta.get(NOTE) or ""),
            by=str(meta.get(BY) or ""),
            recorded_at=record.timestamp,
        )
        if decision.action == ACCEPT:
            decisions.accepted.setdefault(decision.target_storage_id, decision)
        elif decision.action == REBASELINE and decisions.rebaseline is None:
            decisions.rebaseline = decision
    return decisions


def target_loads(
    instance: dg.DagsterInstance, table: str, run_id: str
) -> list[dg.EventLogRecord]:
    """The materializations of `table` in run `run_id` (one, or one per partition).

    Raises:
        FeedbackError: When the run does not exist or did not materialize the table.
    """
    record = instance.get_run_record_by_id(run_id)
    if record is None:
        raise FeedbackError(f"no run {run_id!r} in this Dagster instance")
    # The asset index's storage ids (what the checks compare) differ from a run's own event
    # ids on sharded storage (SQLite): look the loads up by asset, within the run's time span.
    start = record.start_time or record.create_timestamp.timestamp()
    end = record.end_time
    records_filter = dg.AssetRecordsFilter(
        asset_key=dg.AssetKey(table), after_timestamp=start - 1,
        before_timestamp=end + 1 if end else None)
    loads = [load for load in instance.fetch_materializations(
        records_filter, limit=TARGET_SCAN).records if load.run_id == run_id]
    if not loads:
        raise FeedbackError(f"run {run_id!r} did not materialize table {table!r}")
    return loads


class FeedbackConfig(dg.Config):
    """A decision about one load of one table (the launchpad shows these fields)."""

    table: str = Field(description="The table (asset name), e.g. orders_clean.")
    run_id: str = Field(description="The run that materialized the load the decision is about.")
    action: Literal["accept", "rebaseline"] = Field(
        description="accept: the flagged load was expected and joins the baseline; "
                    "rebaseline: judge later loads from this load on.")
    note: str = Field(default="", description="Why, shown in later verdicts.")
    by: str = Field(default="", description="Who decided (default: the user running the job).")


@dg.op(name="record_feedback", description="Record an accept / re-baseline decision.", out={})
def record_feedback_op(
    context: dg.OpExecutionContext,
    config: FeedbackConfig,
    spark: LazyPySparkResource,
    etl_log: EtlLogResource,
) -> Iterator[dg.AssetObservation]:
    """One observation per target load on the table's asset, and their `check_feedback` rows."""
    try:
        loads = target_loads(context.instance, config.table, config.run_id)
    except FeedbackError as err:
        raise dg.Failure(description=str(err), allow_retries=False) from None
    by = config.by or getpass.getuser()
    now = datetime.now(timezone.utc)
    records = []
    for load in loads:
        partition = load.partition_key
        records.append(FeedbackRecord(
            run_id=context.run.run_id, asset=config.table, partition_key=partition,
            action=config.action, target_run_id=config.run_id, note=config.note, by=by,
            recorded_at=now))
    etl_log.write_feedback(spark.spark_session, records)
    for load in loads:
        where = f" partition {load.partition_key}" if load.partition_key else ""
        context.log.info(f"{config.table}{where}: {config.action} the load of run "
                         f"{config.run_id} by {by}")
        yield dg.AssetObservation(
            asset_key=dg.AssetKey(config.table), partition=load.partition_key,
            description=f"{config.action}: {config.note}" if config.note else config.action,
            metadata={FEEDBACK: config.action, TARGET_RUN: config.run_id,
                      TARGET_STORAGE_ID: load.storage_id, NOTE: config.note, BY: by})


@dg.job(name=FEEDBACK_JOB, description=(
    "Accept a flagged load (it joins the baseline again) or re-baseline a table from a load "
    "(later loads are judged from it on). Same as `etl-assets accept|rebaseline`."))
def feedback_job() -> None:
    """The launchpad's entry for check feedback."""
    record_feedback_op()
