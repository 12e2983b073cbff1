"""Schedules from the specs: a domain's or a table's `schedule: {cron, timezone, running}`.

Unpartitioned tables of a schedule load in one job run. A time-partitioned table gets a
partition-aware schedule that materializes the partition that has just closed (yesterday's
for a daily table), at the cron's minute and hour in the partitions' time zone (a schedule
that names another zone is refused at load time). Schedules start stopped unless the spec
says `running: true`.

The pipeline-health page (`etl_health_report`) has its own hourly schedule, stopped like the
others until turned on in the UI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg

from etl_assets.core.specs import Project, ScheduleSpec, SpecError, Table
from etl_assets.orchestration.health_asset import HEALTH_REPORT_ASSET

if TYPE_CHECKING:  # what build_schedule_from_partitioned_job returns; not exported by dagster
    from dagster._core.definitions.partitions.partitioned_schedule import (
        UnresolvedPartitionedAssetScheduleDefinition,
    )


def _status(spec: ScheduleSpec) -> dg.DefaultScheduleStatus:
    return dg.DefaultScheduleStatus.RUNNING if spec.running else dg.DefaultScheduleStatus.STOPPED


def _partitioned_schedule(
    name: str, table: Table, spec: ScheduleSpec, from_domain: bool = False
) -> UnresolvedPartitionedAssetScheduleDefinition:
    """The closed partition's load at the cron's minute and hour, in the partitions' time zone.

    Dagster ticks a partitioned job's schedule in its partitions' time zone, so a schedule
    that names another zone would silently fire at the wrong hour: that is refused here, at
    load time. A schedule that names no zone takes the partitions'. `from_domain`: the spec is
    the domain's schedule, which errors name as such.
    """
    where = (f"domain '{table.domain}' (for its partitioned table '{table.name}')" if from_domain
             else f"table '{table.name}'")
    minute, hour, *rest = spec.cron.split()
    if not (minute.isdigit() and hour.isdigit()) or rest != ["*", "*", "*"]:
        raise SpecError(
            f"{table.file}: {where}: field 'schedule.cron': a partitioned table runs "
            f"once per partition; give 'M H * * *' (got {spec.cron!r})"
        )
    zone = table.spec.partitions.timezone  # only partitioned tables come here
    if "timezone" in spec.model_fields_set and spec.timezone != zone:
        raise SpecError(
            f"{table.file}: {where}: field 'schedule.timezone': {spec.timezone!r} "
            f"differs from partitions.timezone {zone!r}; a partitioned table's schedule fires in "
            f"its partitions' time zone: set partitions.timezone: {spec.timezone} (or drop "
            "schedule.timezone)"
        )
    # The job's partitions come from its one asset when Definitions resolves it.
    job = dg.define_asset_job(f"{name}_job", selection=[table.name])
    return dg.build_schedule_from_partitioned_job(
        job, name=name, minute_of_hour=int(minute), hour_of_day=int(hour),
        default_status=_status(spec),
    )


HEALTH_REPORT_CRON = "15 * * * *"  # hourly, after loads scheduled on the hour


def build_health_report_schedule() -> dg.ScheduleDefinition:
    """Refresh the health page hourly; stopped by default, like the specs' schedules."""
    job = dg.define_asset_job(f"{HEALTH_REPORT_ASSET}_job", selection=[HEALTH_REPORT_ASSET])
    return dg.ScheduleDefinition(
        name=f"{HEALTH_REPORT_ASSET}_schedule", job=job, cron_schedule=HEALTH_REPORT_CRON,
        execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.STOPPED)


def build_schedules(
    project: Project,
) -> list[dg.ScheduleDefinition | UnresolvedPartitionedAssetScheduleDefinition]:
    """One schedule per scheduled domain (its unpartitioned tables) and per scheduled table."""
    schedules = []
    for domain, spec in sorted(project.domain_schedules.items()):
        tables = [t for t in project.tables.values() if t.domain == domain]
        plain = [t.name for t in tables if not t.spec.partitions and t.spec.schedule is None]
        if plain:
            job = dg.define_asset_job(f"{domain}_job", selection=plain)
            schedules.append(dg.ScheduleDefinition(
                name=f"{domain}_schedule", job=job, cron_schedule=spec.cron,
                execution_timezone=spec.timezone, default_status=_status(spec)))
        for table in tables:
            if table.spec.partitions and table.spec.schedule is None:
                schedules.append(_partitioned_schedule(f"{table.name}_schedule", table, spec,
                                                       from_domain=True))
    for table in project.tables.values():
        spec = table.spec.schedule
        if spec is None:
            continue
        if table.spec.partitions:
            schedules.append(_partitioned_schedule(f"{table.name}_schedule", table, spec))
        else:
            job = dg.define_asset_job(f"{table.name}_job", selection=[table.name])
            schedules.append(dg.ScheduleDefinition(
                name=f"{table.name}_schedule", job=job, cron_schedule=spec.cron,
                execution_timezone=spec.timezone, default_status=_status(spec)))
    return schedules
