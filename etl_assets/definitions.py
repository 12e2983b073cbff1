"""The one `Definitions` of the project: the defs folder's components, what spans them, and
the profile's resources and executor."""

from __future__ import annotations

import hashlib
import sys
import types
from pathlib import Path

import dagster as dg
from dagster.components.core.component_tree import ComponentTree

from etl_assets.components import loading_with, project_of
from etl_assets.core.settings import DEFAULT_DEFS, PACKAGE_DIR, Settings, load_settings
from etl_assets.orchestration.domains import build_project_definitions
from etl_assets.orchestration.health_asset import HEALTH_REPORT_ASSET
from etl_assets.orchestration.resources import EtlLogResource, build_spark_resource


def build_resources(settings: Settings) -> dict[str, object]:
    """Resources for the settings' profile: Spark (lazy) and the log database."""
    return {
        # The health report only queries the log: a run of it alone starts Spark quicker.
        "spark": build_spark_resource(settings, query_only_assets=[HEALTH_REPORT_ASSET]),
        "etl_log": EtlLogResource(database=settings.log_db),
    }


def defs_tree(folder: Path) -> ComponentTree:
    """Dagster's component tree of a defs folder: the package's `etl_assets.defs` (what `dg`
    loads), or any other folder in the same layout (`ETL_ASSETS_DEFS`), imported as a
    package of its own so its Python modules load the same way."""
    if folder == DEFAULT_DEFS:
        import etl_assets.defs as module
    else:
        name = "etl_assets_defs_" + hashlib.sha256(str(folder).encode()).hexdigest()[:12]
        module = sys.modules.get(name) or types.ModuleType(name)
        module.__file__ = str(folder / "__init__.py")
        module.__path__ = [str(folder)]
        sys.modules[name] = module
    return ComponentTree.from_module(defs_module=module, project_root=PACKAGE_DIR.parent)


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    """Everything Dagster loads: the `HiveTables` components of the defs folder (each domain's
    assets, checks, schedules and sensors), what spans them (health report, alert sensors,
    jobs), and resources and executor by profile.

    The embedded profile runs steps in-process: Derby admits one process, and Spark's start-up
    is then paid once per run, not once per asset. The cluster profile runs steps in parallel
    processes (each its own Spark application on the cluster), up to
    `ETL_ASSETS_MAX_CONCURRENT_STEPS` at once.
    """
    settings = settings or load_settings()
    with loading_with(settings):  # the components see these settings, not the environment's
        tree = defs_tree(settings.defs_dir)
        domains = tree.build_defs()
        project = project_of(tree)
    return dg.Definitions.merge(
        domains,
        build_project_definitions(project, settings),
        dg.Definitions(resources=build_resources(settings), executor=build_executor(settings)),
    )


def build_executor(settings: Settings) -> dg.ExecutorDefinition:
    """In-process (the default: one Spark session per run) or multiprocess execution of a
    run's steps (`ETL_ASSETS_EXECUTOR`)."""
    if settings.executor == "multiprocess":
        return dg.multiprocess_executor.configured(
            {"max_concurrent": settings.max_concurrent_steps}
        )
    return dg.in_process_executor


defs = build_definitions()
