"""The definitions of one domain (a `HiveTables` component) and of the whole project.

A domain's folder holds its `defs.yaml` and Python table modules; it brings the source
assets, table assets, checks, schedules and arrival sensors of what it declares. The parts
that span every domain (the health report, the alert sensors, the held-load and feedback
jobs) are built once, from the whole project, by `build_project_definitions`.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from etl_assets.core.held import DEFAULT_RETENTION_DAYS
from etl_assets.core.lineage import project_lineage
from etl_assets.core.settings import Settings
from etl_assets.core.specs import Project
from etl_assets.orchestration.assets import build_source_asset, build_table_asset
from etl_assets.orchestration.feedback import feedback_job
from etl_assets.orchestration.health_asset import build_health_report_asset
from etl_assets.orchestration.held_loads import build_held_load_jobs
from etl_assets.orchestration.schedules import build_health_report_schedule, build_schedules
from etl_assets.orchestration.sensors import (
    alerts_job,
    build_check_failure_sensor,
    build_source_sensor,
    run_failure_alerts,
)


def domain_part(project: Project, folder: Path) -> Project:
    """The tables and sources declared in one domain folder (its defs.yaml and modules), with
    its domains' schedules; lookups across domains still go through the whole project."""
    tables = {n: t for n, t in project.tables.items() if t.file.parent == folder}
    sources = {n: s for n, s in project.sources.items() if s.file.parent == folder}
    domains = {t.domain for t in tables.values()} | {s.domain for s in sources.values()}
    schedules = {d: s for d, s in project.domain_schedules.items() if d in domains}
    return Project(tables=tables, sources=sources, domain_schedules=schedules)


def build_assets(project: Project, held_retention_days: float = DEFAULT_RETENTION_DAYS,
                 part: Project | None = None) -> list[dg.AssetsDefinition | dg.AssetSpec]:
    """A source asset per declared source and a table asset per table spec: of the whole
    project, or of `part` of it (a domain), its tables still looking inputs up in `project`
    (their lineage is traced back through every domain's tables)."""
    part = part or project
    sources = [build_source_asset(source) for source in part.sources.values()]
    lineages = project_lineage(project, part.tables)  # each SQL parsed once, not per table
    tables = [build_table_asset(project, table, held_retention_days, lineages)
              for table in part.tables.values()]
    return [*sources, *tables]


def build_domain_definitions(
    project: Project, folder: Path, held_retention_days: float = DEFAULT_RETENTION_DAYS
) -> dg.Definitions:
    """Source and table assets, checks, schedules and arrival sensors of one domain folder."""
    part = domain_part(project, folder)
    return dg.Definitions(
        assets=build_assets(project, held_retention_days, part),
        schedules=build_schedules(part),
        sensors=[build_source_sensor(project, source) for source in part.sources.values()
                 if source.spec.sensor],
    )


def build_project_definitions(project: Project, settings: Settings) -> dg.Definitions:
    """What spans every domain: the health report (and its schedule), the alert sensors, and
    the alert, feedback and held-load jobs."""
    return dg.Definitions(
        assets=[build_health_report_asset(project, settings)],
        schedules=[build_health_report_schedule()],
        sensors=[build_check_failure_sensor(project), run_failure_alerts],
        jobs=[alerts_job, feedback_job, *build_held_load_jobs(project)],
    )
