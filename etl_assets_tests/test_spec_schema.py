"""Tests of the spec models' JSON schema, which editors (yaml-language-server) read for
completion and hover help on `pipelines/*.yaml`.

Every field explains itself there: its attribute docstring in `etl_assets/core/specs.py`
becomes its `description` (`use_attribute_docstrings`). Pure: no Spark, no Dagster.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from etl_assets.core.specs import DomainSpec, TableSpec


def _properties(node: Any, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every property of every object schema below `node` (`$defs` included), with its path."""
    if isinstance(node, dict):
        properties = node.get("properties")
        if isinstance(properties, dict):
            for name, schema in properties.items():
                yield f"{where}.{name}", schema
        for key, value in node.items():
            yield from _properties(value, f"{where}.{key}" if where else key)
    elif isinstance(node, list):
        for position, value in enumerate(node):
            yield from _properties(value, f"{where}[{position}]")


@pytest.mark.parametrize("model", [DomainSpec, TableSpec], ids=lambda m: m.__name__)
def test_every_field_of_the_schema_has_a_description(model: type[BaseModel]) -> None:
    """DomainSpec is a YAML file; TableSpec holds a Python table's options."""
    schema = model.model_json_schema(by_alias=True)
    found = list(_properties(schema, model.__name__))
    missing = sorted(path for path, prop in found
                     if not str(prop.get("description") or "").strip())
    assert not missing, f"{len(missing)} fields without a description: " + ", ".join(missing)
    # The walk reached the nested models, not only the top level.
    assert len(found) > 100
    if model is DomainSpec:
        assert {"SourceSpec", "SqlTableSpec", "QualityRuleSpec", "ChecksSpec",
                "AnomalyCheckSpec", "PartitionsSpec", "RangeRule"} <= set(schema["$defs"])
        assert "schema" in schema["$defs"]["SourceSpec"]["properties"]  # the alias, by_alias


def test_sql_table_schema_forbids_unknown_fields() -> None:
    schema = DomainSpec.model_json_schema(by_alias=True)
    sql_table = schema["$defs"]["SqlTableSpec"]
    assert sql_table["additionalProperties"] is False
    assert "sql" in sql_table["required"]
    assert schema["properties"]["tables"]["items"] == {"$ref": "#/$defs/SqlTableSpec"}
