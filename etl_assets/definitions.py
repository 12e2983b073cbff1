"""The one `Definitions` of the project, assembled from the specs and the profile."""

from __future__ import annotations

import dagster as dg

from etl_assets.core.held import DEFAULT_RETENTION_DAYS
from etl_assets.core.settings import Settings, load_settings
from etl_assets.core.specs import Project, load_project
from etl_assets.orchestration.assets import build_source_asset, build_table_asset
from etl_assets.orchestration.checks import build_table_checks
from etl_assets.orchestration.feedback import feedback_job
from etl_assets.orchestration.health_asset import build_health_report_asset
from etl_assets.orchestration.held_loads import build_held_load_jobs
from etl_assets.orchestration.resources import EtlLogResource, build_spark_resource
from etl_assets.orchestration.schedules import build_health_report_schedule, build_schedules
from etl_assets.orchestration.sensors import alerts_job, build_sensors


def build_resources(settings: Settings) -> dict[str, object]:
    """Resources for the settings' profile: Spark (lazy) and the log database."""
    return {
        "spark": build_spark_resource(settings),
        "etl_log": EtlLogResource(database=settings.log_db),
    }


def build_assets(project: Project, held_retention_days: float = DEFAULT_RETENTION_DAYS
                 ) -> list[dg.AssetsDefinition | dg.AssetSpec]:
    """A source asset per declared source and a table asset per table spec."""
    sources = [build_source_asset(source) for source in project.sources.values()]
    tables = [build_table_asset(project, table, held_retention_days)
              for table in project.tables.values()]
    return [*sources, *tables]


def build_checks(project: Project) -> list[dg.AssetChecksDefinition]:
    """The anomaly, schema and category checks of every table."""
    checks = [build_table_checks(table) for table in project.tables.values()]
    return [c for c in checks if c is not None]


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    """Everything Dagster loads: assets from the specs, resources and executor by profile.

    The embedded profile runs steps in-process: Derby admits one process, and Spark's start-up
    is then paid once per run, not once per asset. The cluster profile runs steps in parallel
    processes (each its own Spark application on the cluster), up to
    `ETL_ASSETS_MAX_CONCURRENT_STEPS` at once.
    """
    settings = settings or load_settings()
    project = load_project(
        settings.pipelines_dir, rename_database=settings.environment.database,
        transforms=settings.transforms_dir,
    )
    return dg.Definitions(
        assets=[*build_assets(project, settings.held_retention_days),
                build_health_report_asset(project, settings)],
        asset_checks=build_checks(project),
        schedules=[*build_schedules(project), build_health_report_schedule()],
        sensors=build_sensors(project),
        jobs=[alerts_job, feedback_job, *build_held_load_jobs(project)],
        resources=build_resources(settings),
        executor=build_executor(settings),
    )


def build_executor(settings: Settings) -> dg.ExecutorDefinition:
    """In-process (embedded) or multiprocess (cluster) execution of a run's steps."""
    if settings.executor == "multiprocess":
        return dg.multiprocess_executor.configured(
            {"max_concurrent": settings.max_concurrent_steps}
        )
    return dg.in_process_executor


defs = build_definitions()
