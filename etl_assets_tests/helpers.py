"""Helpers shared by the Spark tests (imported, never collected; fixtures live in conftest)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from etl_assets.definitions import build_assets, build_checks, build_resources
from etl_assets.settings import Settings
from etl_assets.specs import Project


def materialize_project(
    project: Project,
    settings: Settings,
    instance: dg.DagsterInstance,
    selection: list[str] | None = None,
    raise_on_error: bool = True,
    partition_key: str | None = None,
    tags: dict[str, str] | None = None,
) -> dg.ExecuteInProcessResult:
    """Materialize a project's assets in-process, as `dagster asset materialize` would."""
    return dg.materialize(
        [*build_assets(project), *build_checks(project)],
        resources=build_resources(settings),
        instance=instance,
        selection=selection,
        raise_on_error=raise_on_error,
        partition_key=partition_key,
        tags=tags,
    )


def write_spec(folder: Path, text: str, name: str = "domain.yaml") -> Path:
    """Write a spec file into a pipelines folder and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def execute_checks_only(
    project: Project, settings: Settings, instance: dg.DagsterInstance, asset: str
) -> dg.ExecuteInProcessResult:
    """Run only the checks of one asset (as the UI's "Execute checks" or a checks-only job)."""
    defs = dg.Definitions(
        assets=build_assets(project),
        asset_checks=build_checks(project),
        resources=build_resources(settings),
        jobs=[dg.define_asset_job(
            "checks_only", selection=dg.AssetSelection.checks_for_assets(dg.AssetKey(asset))
        )],
    )
    return defs.resolve_job_def("checks_only").execute_in_process(
        instance=instance, raise_on_error=False
    )
