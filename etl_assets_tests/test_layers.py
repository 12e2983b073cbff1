"""The package's layers stay true: each layer imports only the layers below it, with no cycles.

    core/           pure logic: neither Spark nor Dagster
    engine/         the Spark engine: Spark, core; never Dagster
    orchestration/  the Dagster layer: adapts the engine
    tools/          operator tooling and the CLI, outside the runtime path
    components.py   the HiveTables component (what `dg` loads from defs/)
    defs/           the demo's domains: specs and Python tables
    definitions.py  the code location's entry point

Every import counts, also those inside functions (a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "etl_assets"
SPARK = ("pyspark", "py4j")
DAGSTER = ("dagster", "dagster_pyspark", "dagster_slack", "dagster_postgres", "dagster_dg_cli")

# layer -> (project layers it may import, third-party roots it must not import)
RULES = {
    "core": ({"core"}, SPARK + DAGSTER),
    "engine": ({"core", "engine"}, DAGSTER),
    "orchestration": ({"core", "engine", "orchestration"}, ()),
    "tools": ({"core", "engine", "orchestration", "tools", "definitions"}, ()),
    "definitions": ({"core", "engine", "orchestration", "components", "defs"}, ()),
    "defs": ({"core"}, DAGSTER),  # the demo's Python tables: the public `@table` only
    "components": ({"core", "engine", "orchestration"}, ()),  # HiveTables: a Dagster adapter
}


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(path: Path) -> set[str]:
    """Every module a file imports, anywhere in it, as dotted names (`from x import y` gives
    `x` and `x.y`); imports under `if TYPE_CHECKING:` are annotations only and do not count."""
    tree = ast.parse(path.read_text(), str(path))
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and getattr(block.test, "id", getattr(block.test, "attr", "")) == "TYPE_CHECKING"
                   for n in ast.walk(block)}
    names = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _project_imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (a `from x import name` of a module counts
    as that module; of a function, as `x`)."""
    graph = {}
    for module, path in modules.items():
        graph[module] = {name for name in _imports(path) if name in modules and name != module
                         and name != "etl_assets"}
    return graph


def test_each_layer_imports_only_the_layers_below_it() -> None:
    modules = _modules()
    assert {_layer(m) for m in modules} >= {"core", "engine", "orchestration", "tools"}
    offences = []
    for module, path in modules.items():
        layer = _layer(module)
        if layer not in RULES:
            continue
        allowed, banned = RULES[layer]
        for name in sorted(_imports(path)):
            root = name.split(".")[0]
            if root == "etl_assets" and name not in modules:
                name = name.rsplit(".", 1)[0]  # a name imported from a module: that module
            if root in banned:
                offences.append(f"{module} imports {name}")
            elif root == "etl_assets" and _layer(name) not in allowed | {None}:
                offences.append(f"{module} imports {name} (layer {_layer(name)})")
    assert offences == []


def test_the_package_has_no_import_cycle() -> None:
    graph = _project_imports(_modules())
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as err:
        raise AssertionError(f"import cycle: {' -> '.join(err.args[1])}") from None
    assert order.index("etl_assets.core.specs") < order.index("etl_assets.engine.load")


def test_the_checks_see_a_violation() -> None:
    """The walk finds real imports (a check that can fail): the Dagster layer imports Dagster,
    the engine Spark, and the cycle check refuses a cycle."""
    modules = _modules()
    assert "dagster" in _imports(modules["etl_assets.orchestration.assets"])
    assert "pyspark.sql" in _imports(modules["etl_assets.engine.load"])
    try:
        list(TopologicalSorter({"a": {"b"}, "b": {"a"}}).static_order())
    except CycleError:
        pass
    else:
        raise AssertionError("a cycle went unnoticed")


def test_importing_the_pure_layer_loads_neither_spark_nor_dagster() -> None:
    """At run time too: a fresh interpreter imports every core module (and the public `@table`)
    without pulling in pyspark or dagster."""
    core = sorted(m for m in _modules() if _layer(m) == "core")
    code = (f"import sys, etl_assets; [__import__(m) for m in {core!r}]; "
            "from etl_assets import LoadWindow, table; "
            "loaded = sorted({m.split('.')[0] for m in sys.modules} & "
            f"{set(SPARK + DAGSTER)!r}); print(loaded); assert not loaded, loaded")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
