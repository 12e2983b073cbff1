"""Python tables: a function decorated with `@table(...)` whose returned DataFrame is the
table's new rows.

```python
from pyspark.sql import DataFrame, SparkSession

from etl_assets.core.python_tables import LoadWindow, table


@table(inputs=["clean_orders"], partitions={"type": "daily", "start": "2026-01-01",
                                            "column": "order_date"},
       quality=[{"not_null": ["customer_id"]}])
def customer_spend(spark: SparkSession, clean_orders: DataFrame,
                   window: LoadWindow) -> DataFrame:
    return clean_orders.groupBy("order_date", "customer_id").sum("amount")
```

The options are those of a YAML table (`etl_assets.core.specs.TableSpec`, validated by the same
models when the project loads, with errors naming the module, the function and the field),
plus `database`, `name` (default: the function's name) and `column_lineage` (where each
returned column comes from, `{"spend_7d": ["clean_orders.amount"]}`, for Dagster's column
lineage: a SQL table's is read from its SQL); there is no `sql`. The module's
name is the table's domain, as a YAML file's name is: `transforms/sales.py` holds tables of the
domain of `pipelines/sales.yaml`, in that file's database unless `database` names another
(`etl_demo` when no YAML file has the domain, as in YAML).
Everything after the frame (the write, metrics, logs, checks, quality rules, partitions,
retries) is the YAML tables' code.

The function's parameters are bound by name: `spark` (the session), each input (a DataFrame:
the incremental input already past the watermark, as the SQL of a YAML table sees it; a
partitioned table's rows outside the run's window are dropped from the result, so the
function may read more, e.g. the week before a day for a rolling sum), `window` (a
`LoadWindow`), and `**kwargs` (the inputs no parameter names). Any other parameter fails the
load naming it.

Pure logic: neither Spark nor Dagster is imported at run time (pyspark only for annotations).
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

TABLE_ATTRIBUTE = "__etl_assets_table__"
SPARK = "spark"
WINDOW = "window"
# The name modules are executed under: importable names are left alone, and the entry is
# removed once the module has run, so two projects' `sales.py` never meet in sys.modules and
# cloudpickle ships the module's UDFs to the executors by value (an executor could not import
# a module that lives in a project folder).
MODULE_PREFIX = "etl_assets_transforms"


@dataclass(frozen=True)
class LoadWindow:
    """What the run asks of the table, for a Python table's function.

    Attributes:
        partition_start: First day of the run's partitions (a partitioned table), else None.
        partition_end: The day after the last partition (exclusive), else None.
        partition_keys: The run's partition keys (several for a single-run backfill), or ().
        watermark: The incremental column's value at the last successful load, as text (the
            incremental input is already filtered past it); None on the first load, a full
            refresh or a table that is not incremental.
        run_date: The run's date (UTC).
        full_refresh: The run reloads everything (the `etl_assets/full_refresh` run tag).
    """

    partition_start: date | None
    partition_end: date | None
    partition_keys: tuple[str, ...]
    watermark: str | None
    run_date: date
    full_refresh: bool


@dataclass(frozen=True)
class TableFunction:
    """A decorated function and its options as written (validated by `specs.load_project`)."""

    function: Callable[..., DataFrame]
    options: Mapping[str, Any]


def table(function: Callable[..., DataFrame] | None = None, /, **options: Any) -> Any:
    """Declare a Python table; use as `@table(inputs=[...], ...)` or bare `@table`.

    Returns the function itself, unchanged (so it can be called in a unit test), with its
    options attached; nothing is validated until the project loads.
    """

    def decorate(fn: Callable[..., DataFrame]) -> Callable[..., DataFrame]:
        if not inspect.isfunction(fn):
            raise TypeError(f"@table decorates a function, not {fn!r}")
        setattr(fn, TABLE_ATTRIBUTE, TableFunction(fn, dict(options)))
        return fn

    return decorate if function is None else decorate(function)


class ModuleImportError(Exception):
    """A transforms module failed to import; the message names the file and, when known, the
    line."""


def import_module_file(path: Path) -> dict[str, Any]:
    """Run a Python file as a module and return its namespace.

    Raises:
        ModuleImportError: The file raised (a syntax error, a failed import, ...), with the
            line of the file where it happened.
    """
    name = f"{MODULE_PREFIX}.{path.parent.name}.{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ModuleImportError(f"{path}: not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # while it runs: dataclasses and pickling look it up there
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # noqa: BLE001 - any error of user code names its file
        raise ModuleImportError(f"{path}:{_line_of(err, path)} could not import the module: "
                                f"{type(err).__name__}: {err}") from err
    finally:
        sys.modules.pop(name, None)
    return vars(module)


def _line_of(err: BaseException, path: Path) -> str:
    """` line N:` of the innermost frame of `path` in the error's traceback, or ``."""
    if isinstance(err, SyntaxError) and err.lineno is not None:
        return f" line {err.lineno}:"
    line = None
    frame = err.__traceback__
    while frame is not None:
        if Path(frame.tb_frame.f_code.co_filename) == path:
            line = frame.tb_lineno
        frame = frame.tb_next
    return f" line {line}:" if line is not None else ""


def module_tables(namespace: Mapping[str, Any]) -> list[TableFunction]:
    """The decorated functions defined in a module (not those it imports), in file order."""
    module = namespace.get("__name__")
    found = [value for value in namespace.values()
             if inspect.isfunction(value) and value.__module__ == module
             and isinstance(getattr(value, TABLE_ATTRIBUTE, None), TableFunction)]
    found.sort(key=lambda fn: fn.__code__.co_firstlineno)
    return [getattr(fn, TABLE_ATTRIBUTE) for fn in found]


def function_source(function: Callable[..., Any]) -> str:
    """The function's source text (decorator included), for the table's code version."""
    try:
        return inspect.getsource(function)
    except (OSError, TypeError):  # no file (defined in a REPL): its bytecode stands in
        return function.__code__.co_code.hex()


def parameter_problems(function: Callable[..., Any], inputs: list[str]) -> list[str]:
    """Parameters the load could not bind by name, one message each (empty: all bindable)."""
    problems = []
    allowed = [SPARK, *inputs, WINDOW]
    for parameter in inspect.signature(function).parameters.values():
        kind = parameter.kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            continue
        where = f"parameter '{parameter.name}'"
        if kind is inspect.Parameter.VAR_POSITIONAL:
            problems.append(f"{where}: *{parameter.name} gets nothing: parameters are bound by "
                            "name")
        elif kind is inspect.Parameter.POSITIONAL_ONLY:
            problems.append(f"{where}: positional-only, but parameters are bound by name")
        elif parameter.name not in allowed:
            problems.append(f"{where}: not '{SPARK}', '{WINDOW}' or one of the inputs "
                            f"{inputs}; add it to inputs or remove it")
    for name in inputs:
        if name in (SPARK, WINDOW):
            problems.append(f"field 'inputs': an input named '{name}' would be bound as the "
                            f"{'session' if name == SPARK else 'load window'}; rename it")
    return problems


def call_arguments(
    function: Callable[..., Any],
    spark: SparkSession,
    inputs: Mapping[str, DataFrame],
    window: LoadWindow,
) -> dict[str, Any]:
    """The keyword arguments of one call: what each parameter names (checked at load by
    `parameter_problems`), and the other inputs for a `**kwargs` parameter."""
    values: dict[str, Any] = {SPARK: spark, WINDOW: window, **inputs}
    arguments: dict[str, Any] = {}
    rest = False
    for parameter in inspect.signature(function).parameters.values():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            rest = True
        elif parameter.name in values:
            arguments[parameter.name] = values[parameter.name]
    if rest:
        arguments.update({k: v for k, v in inputs.items() if k not in arguments})
    return arguments
