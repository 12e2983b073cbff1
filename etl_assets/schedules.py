"""Schedules from the specs: a domain's or a table's `schedule: {cron, timezone, running}`.

Unpartitioned tables of a schedule load in one job run. A time-partitioned table gets a
partition-aware schedule that materializes the partition that has just closed (yesterday's
for a daily table), at the cron's minute and hour. Schedules start stopped unless the spec
says `running: true`.

The pipeline-health page (`etl_health_report`) has its own hourly schedule, stopped like the
others until turned on in the UI.
"""

from __future__ import annotations

import dagster as dg

from etl_assets.health import HEALTH_REPORT_ASSET
from etl_assets.specs import Project, ScheduleSpec, SpecError, Table
from etl_assets.tables import partitions_definition


def _status(spec: ScheduleSpec) -> dg.DefaultScheduleStatus:
    return dg.DefaultScheduleStatus.RUNNING if spec.running else dg.DefaultScheduleStatus.STOPPED


def _partitioned_schedule(name: str, table: Table, spec: ScheduleSpec) -> dg.ScheduleDefinition:
    minute, hour, *rest = spec.cron.split()
    if not (minute.isdigit() and hour.isdigit()) or rest != ["*", "*", "*"]:
        raise SpecError(
            f"{table.file}: table '{table.name}': field 'schedule.cron': a partitioned table runs "
            f"once per partition; give 'M H * * *' (got {spec.cron!r})"
        )
    job = dg.define_asset_job(f"{name}_job", selection=[table.name],
                              partitions_def=partitions_definition(table))
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


def build_schedules(project: Project) -> list[dg.ScheduleDefinition]:
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
                schedules.append(_partitioned_schedule(f"{table.name}_schedule", table, spec))
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
