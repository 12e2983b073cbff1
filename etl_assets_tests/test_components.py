"""The specs as a Dagster component: `HiveTables`, its JSON schema and the `dg` CLI.

The in-process tests load domains through Dagster's component tree exactly as `dg check defs`
and the code server do (`etl_assets.definitions.build_definitions`); the others run `dg` the
way users do, from the project's folder or from a scratch `dg` project of their own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
import jsonschema
import pytest
from dagster_shared.yaml_utils import parse_yaml_with_source_position

from etl_assets.components import spec_json_schema
from etl_assets.core.settings import DEFAULT_DEFS, load_settings
from etl_assets.core.specs import DEFS_FILE, SpecError, load_project
from etl_assets.definitions import build_definitions
from etl_assets_tests.test_specs import CLEAN, MALFORMED, clean_with, one_table, write_files

BIN = Path(sys.prefix) / "bin"
ROOT = Path(__file__).resolve().parent.parent


def _dg_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a `dg` command: this venv active, state under tmp_path."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    if not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").symlink_to(ROOT / "dagster.yaml")  # telemetry off
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ETL_", "DAGSTER_"))}
    return env | {"ETL_ASSETS_HOME": str(home), "DAGSTER_HOME": str(home), "NO_COLOR": "1",
                  "VIRTUAL_ENV": str(BIN.parent), "COLUMNS": "200", **extra}


def _dg(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "dg"), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300, check=False)


def _scratch_project(tmp_path: Path) -> Path:
    """A `dg` project of its own (module `scratch_specs`, defs in `scratch_specs/defs`) that
    uses this venv; returns its defs folder."""
    root = tmp_path / "scratch"
    defs = root / "scratch_specs" / "defs"
    defs.mkdir(parents=True)
    (root / "scratch_specs" / "__init__.py").write_text("")
    (defs / "__init__.py").write_text("")
    (root / "pyproject.toml").write_text(textwrap.dedent("""\
        [project]
        name = "scratch_specs"
        version = "0.0.0"

        [tool.dg]
        directory_type = "project"

        [tool.dg.project]
        root_module = "scratch_specs"
        registry_modules = ["etl_assets.components"]
    """))
    return defs


# --- the JSON schema ------------------------------------------------------------------------


def _attributes(path: Path) -> dict:
    """A defs.yaml's attributes as `dg check yaml` reads them (dates stay strings)."""
    text = path.read_text(encoding="utf-8")
    return parse_yaml_with_source_position(text, str(path)).value["attributes"]


def test_the_schema_validates_the_shipped_specs_and_rejects_a_misspelt_field() -> None:
    schema = spec_json_schema()
    shipped = sorted(DEFAULT_DEFS.rglob(DEFS_FILE))
    assert shipped, "the package ships at least one domain"
    for path in shipped:
        jsonschema.validate(_attributes(path), schema)
    attributes = _attributes(DEFAULT_DEFS / "sales" / DEFS_FILE)
    attributes["tables"][0]["repartitoin"] = attributes["tables"][0].pop("repartition")
    with pytest.raises(jsonschema.ValidationError, match="repartitoin"):
        jsonschema.validate(attributes, schema)


def test_the_component_module_imports_no_spark() -> None:
    """`dg check yaml` and editors read the schema: that must not need PySpark."""
    code = ("import sys, etl_assets.components as c; c.HiveTables.get_model_cls()"
            ".model_json_schema(); print(sorted(m for m in sys.modules if m.startswith("
            "('pyspark', 'py4j'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.strip() == "[]", done.stdout


def test_dg_check_yaml_rejects_a_misspelt_field_with_pyspark_unimportable(tmp_path: Path) -> None:
    defs = _scratch_project(tmp_path)
    write_files(defs, one_table(clean_with("repartitoin: 4\n")))
    blocker = tmp_path / "no_spark" / "pyspark"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('PySpark must not be imported')\n")
    env = _dg_env(tmp_path, PYTHONPATH=os.pathsep.join([str(blocker.parent),
                                                         str(defs.parent.parent)]))
    done = _dg(["check", "yaml"], defs.parent.parent, env)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "domain/defs.yaml:10" in output and "'repartitoin' was unexpected" in output, output
    assert "PySpark must not be imported" not in output
    # The same file without the typo passes.
    write_files(defs, one_table(CLEAN))
    done = _dg(["check", "yaml"], defs.parent.parent, env)
    assert done.returncode == 0, done.stdout + done.stderr


# --- loading through Dagster's component tree -----------------------------------------------


def _chain(error: BaseException | None) -> list[BaseException]:
    """The error and its causes, outermost first (Dagster wraps a component's error)."""
    chain = []
    while error is not None:
        chain.append(error)
        error = error.__cause__ or error.__context__
    return chain


@pytest.mark.parametrize(("files", "culprit", "words"), MALFORMED)
def test_the_component_tree_refuses_each_malformed_spec(
    tmp_path: Path, files: dict[str, str], culprit: str, words: list[str]
) -> None:
    """What `dg check defs` loads: the definitions built from the defs folder. The spec's own
    message (file, table, field) reaches the user; structure Dagster checks before the
    component loads (YAML syntax, the attributes' top level) is reported by Dagster with the
    file and line."""
    paths = write_files(tmp_path / "defs", files)
    settings = load_settings({"ETL_ASSETS_HOME": str(tmp_path / "home"),
                              "ETL_ASSETS_DEFS": str(tmp_path / "defs")})
    with pytest.raises(Exception) as caught:
        build_definitions(settings)
    chain = _chain(caught.value)
    spec_errors = [e for e in chain if isinstance(e, SpecError)]
    if spec_errors:
        message = str(spec_errors[0])
        assert message.startswith(f"{paths[culprit]}:"), message
        for word in words:
            assert word in message, f"{word!r} not in: {message}"
    else:
        text = "\n".join(str(e) for e in chain)
        assert str(paths[culprit]) in text, text


def test_domains_are_validated_together_across_folders(tmp_path: Path) -> None:
    """Cross-domain checks run once over every component: a table of one domain reads another
    domain's source, and a name defined twice across domains is refused."""
    write_files(tmp_path / "defs", {
        "orders.yaml": "sources:\n  src: {format: parquet, path: /nowhere}\ntables: []\n",
        "reports.yaml": "tables:\n  - {name: copy, inputs: [src], sql: SELECT * FROM src}\n",
    })
    settings = load_settings({"ETL_ASSETS_HOME": str(tmp_path / "home"),
                              "ETL_ASSETS_DEFS": str(tmp_path / "defs")})
    graph = build_definitions(settings).resolve_asset_graph()
    assert graph.get(dg.AssetKey("copy")).parent_keys == {dg.AssetKey("src")}
    assert graph.get(dg.AssetKey("copy")).group_name == "reports"
    write_files(tmp_path / "defs", {
        "orders.yaml": "sources:\n  src: {format: parquet, path: /nowhere}\ntables:\n"
                       "  - {name: copy, inputs: [src], sql: SELECT * FROM src}\n"})
    with pytest.raises(Exception) as caught:
        build_definitions(settings)
    (error,) = [e for e in _chain(caught.value) if isinstance(e, SpecError)]
    assert "table 'copy': field 'name': name already defined in" in str(error)


def test_the_components_take_the_settings_given_to_build_definitions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Staging renames every database; the process environment says nothing of it.
    monkeypatch.delenv("ETL_ENV", raising=False)
    settings = load_settings({"ETL_ASSETS_HOME": str(tmp_path / "home"), "ETL_ENV": "staging"})
    graph = build_definitions(settings).resolve_asset_graph()
    project = load_project(DEFAULT_DEFS)
    names = {graph.get(dg.AssetKey(name)).metadata["dagster/table_name"]
             for name in project.tables}
    assert names and all(n.startswith("etl_demo_staging.") for n in names), names
    # The settings do not stick: the next build with other settings gets those.
    dev = build_definitions(load_settings({"ETL_ASSETS_HOME": str(tmp_path / "home")}))
    table = next(iter(project.tables))
    assert dev.resolve_asset_graph().get(dg.AssetKey(table)).metadata[
        "dagster/table_name"].startswith("etl_demo.")


# --- the dg CLI on the project ----------------------------------------------------------------


def test_dg_list_defs_lists_every_table_and_check(tmp_path: Path) -> None:
    done = _dg(["list", "defs", "--json"], ROOT, _dg_env(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    listed = json.loads(done.stdout[done.stdout.index("{"):])
    assets = {a["asset_key"] for a in listed["assets"]}
    checks = {c["key"] for c in listed["asset_checks"]}
    project = load_project(DEFAULT_DEFS)
    assert set(project.tables) | set(project.sources) | {"etl_health_report"} == assets
    defs = build_definitions(load_settings({"ETL_ASSETS_HOME": str(tmp_path / "in")}))
    expected = {f"{key.asset_key.to_user_string()}:{key.name}"
                for key in defs.resolve_asset_graph().asset_check_keys}
    assert checks == expected and len(checks) > len(project.tables)
    # Each table points at its own entry (a Python table at its function), not only at the
    # component: the UI's "open in editor" goes there too.
    source = {a["asset_key"]: a.get("source") for a in listed["assets"]}
    text = (DEFAULT_DEFS / "sales" / DEFS_FILE).read_text(encoding="utf-8").splitlines()
    for name, table in project.tables.items():
        path, line = source[name].rsplit(":", 1)
        assert ROOT / path == table.file, (name, source[name])
        if table.function is None:
            assert text[int(line) - 1].strip() == f"- name: {name}", (name, source[name])
        else:
            assert int(line) == table.function.__code__.co_firstlineno
    for name in project.sources:
        assert text[int(source[name].rsplit(":", 1)[1]) - 1].strip() == f"{name}:", name


def test_dg_scaffold_defs_writes_a_domain_that_loads(tmp_path: Path) -> None:
    defs = _scratch_project(tmp_path)
    env = _dg_env(tmp_path, PYTHONPATH=str(defs.parent.parent))
    done = _dg(["scaffold", "defs", "etl_assets.components.HiveTables", "web-shop"],
               defs.parent.parent, env)
    assert done.returncode == 0, done.stdout + done.stderr
    spec = defs / "web-shop" / DEFS_FILE
    project = load_project(defs)
    assert list(project.tables) == ["web_shop_rows"]
    assert project.tables["web_shop_rows"].file == spec
    assert project.tables["web_shop_rows"].domain == "web_shop"
    assert project.sources["web_shop_input"].spec.format == "csv"
    # The new domain, as the project's own defs folder, passes `dg check defs`.
    done = _dg(["check", "defs"], ROOT, _dg_env(tmp_path, ETL_ASSETS_DEFS=str(defs)))
    assert done.returncode == 0, done.stdout + done.stderr
