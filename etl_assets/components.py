"""`HiveTables`: one domain of Hive target tables as a Dagster component.

A domain is a folder of the defs folder (`etl_assets/defs/<domain>/`): its `defs.yaml`
declares the component, and its `attributes` are the domain's database, sources and tables;
the `*.py` modules beside it hold its Python tables (`@table`). `dg check defs`, `dg list
defs`, `dg launch` and `dg dev` load it like any component; `dg scaffold defs
etl_assets.components.HiveTables <domain>` writes a new domain to fill in.

Validation has two layers. The component's JSON schema (`get_model_cls`) is the full spec
schema, every field described: editors complete and check against it, and `dg check yaml`
validates with it without importing Spark. At load, the domains are validated together once
per component tree (`project_of`): fields, SQL that reads undeclared inputs, names unique
across domains, cycles across files; an error names the file, the table and the field.

This module imports neither PySpark nor the engine at import time (`dg check yaml` imports
it to read the schema); `build_defs` imports the Dagster layer.
"""

# No `from __future__ import annotations`: Dagster reads the component's field annotations
# to derive how the YAML resolves, and cannot resolve them from strings.
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import dagster as dg
from dagster.components.scaffold.scaffold import Scaffolder, ScaffoldRequest, scaffold_with
from pydantic import BaseModel

from etl_assets.core.settings import Settings, load_settings
from etl_assets.core.specs import (
    DEFS_FILE,
    DomainFile,
    DomainSpec,
    Project,
    SpecError,
    build_project,
    domain_modules,
)

if TYPE_CHECKING:
    from dagster.components.core.component_tree import ComponentTree


def spec_json_schema() -> dict[str, Any]:
    """The JSON schema of a domain's attributes: `DomainSpec`'s, YAML spelling (`schema`, not
    `schema_ddl`), every field with its description."""
    return DomainSpec.model_json_schema(by_alias=True, mode="validation")


class _Attributes(BaseModel):
    """What Dagster validates before the component loads: the top-level fields only (the
    tables and sources are validated together, with messages that name them, by
    `build_project`). Its JSON schema is the full one, for editors and `dg check yaml`."""

    model_config = {"extra": "forbid"}

    domain: str | None = None
    database: str = "etl_demo"
    description: str | None = None
    schedule: dict[str, Any] | None = None
    sources: dict[str, Any] = {}
    tables: list[Any]

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:  # noqa: D102
        return spec_json_schema()


SCAFFOLD_TEMPLATE = """\
type: etl_assets.components.HiveTables
attributes:
  domain: {domain}              # the Dagster group of its tables (default: the folder's name)
  database: etl_demo            # the Hive database of the tables (created when missing)
  description: What this domain's tables are for.
  sources:
    {domain}_input:
      format: csv
      path: ../../sample_data/raw_orders.csv   # relative to this file
      options: {{header: true}}
  tables:
    - name: {domain}_rows
      description: Every row of {domain}_input.
      inputs: [{domain}_input]
      sql: SELECT * FROM {domain}_input
"""


class HiveTablesScaffolder(Scaffolder):
    """`dg scaffold defs etl_assets.components.HiveTables <domain>`: a domain with one source
    and one table that loads as it is, to edit from there."""

    def scaffold(self, request: ScaffoldRequest) -> None:
        # Names are identifiers: `dg scaffold defs ... web-shop` makes the domain `web_shop`
        # (a Dagster group name) and the table `web_shop_rows`; the folder keeps its name.
        domain = re.sub(r"\W", "_", request.target_path.name)
        request.target_path.mkdir(parents=True, exist_ok=True)
        (request.target_path / DEFS_FILE).write_text(
            SCAFFOLD_TEMPLATE.format(domain=domain), encoding="utf-8")


@scaffold_with(HiveTablesScaffolder)
@dataclass
class HiveTables(dg.Component, dg.Resolvable):
    """One domain of Hive target tables built with PySpark: its sources, its tables (SQL here,
    Python in the modules beside this file), their checks, schedule and arrival sensors.

    The fields are those of a domain spec (see the README's "Specs"); `domain` defaults to
    the folder's name.
    """

    tables: list[Any]
    domain: str | None = None
    database: str = "etl_demo"
    description: str | None = None
    schedule: dict[str, Any] | None = None
    sources: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def get_model_cls(cls) -> type[BaseModel]:
        return _Attributes

    @classmethod
    def load(cls, attributes: BaseModel | None, context: dg.ComponentLoadContext) -> "HiveTables":
        path = context.component_path.file_path / DEFS_FILE
        if attributes is None:  # `attributes:` missing or empty: the same message as the loader's
            raise SpecError(f"{path}: field 'attributes': expected a mapping with 'tables:', "
                            "got none")
        component = super().load(attributes, context)
        component._defs_path = path
        return component

    def domain_file(self) -> DomainFile:
        """The domain as `build_project` reads it: the attributes Dagster resolved and the
        Python table modules of the folder."""
        path = getattr(self, "_defs_path", None)
        if path is None:
            raise dg.DagsterInvalidDefinitionError(
                "HiveTables is loaded from a defs folder (<domain>/defs.yaml); it has no folder "
                "when built in Python")
        return DomainFile(path, asdict(self), domain_modules(path.parent))  # asdict copies

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        from etl_assets.orchestration.domains import build_domain_definitions

        settings = current_settings()
        project = project_of(context.component_tree)
        return build_domain_definitions(project, self.domain_file().path.parent,
                                        settings.held_retention_days)


_last_project: "tuple[ComponentTree, Project] | None" = None
_loading_settings: ContextVar[Settings | None] = ContextVar("etl_assets_settings", default=None)


@contextmanager
def loading_with(settings: Settings) -> Iterator[None]:
    """Components built inside this block use these settings (database renaming, held-load
    retention): `build_definitions(settings)` passes its own to the tree it loads."""
    token = _loading_settings.set(settings)
    try:
        yield
    finally:
        _loading_settings.reset(token)


def current_settings() -> Settings:
    """The settings of the definitions being built: those given to `loading_with`, else the
    process environment's (a tree that `dg` loads by itself)."""
    return _loading_settings.get() or load_settings()


def project_of(tree: "ComponentTree") -> Project:
    """Every `HiveTables` domain of the tree, validated together once (each component's
    `build_defs` and the project-wide parts ask for the same tree's project).

    Raises:
        SpecError: A spec is malformed, naming the file, the table and the field.
    """
    global _last_project
    if _last_project is not None and _last_project[0] is tree:
        return _last_project[1]
    settings = current_settings()
    domains = [c.domain_file() for c in tree.get_all_components(of_type=HiveTables)]
    project = build_project(domains, rename_database=settings.environment.database)
    _last_project = (tree, project)
    return project


__all__ = ["HiveTables", "HiveTablesScaffolder", "project_of", "spec_json_schema"]
