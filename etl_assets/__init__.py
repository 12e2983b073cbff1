"""etl_assets: every Hive table of the specs as a Dagster asset built with PySpark.

The public API of a Python table is `table` and `LoadWindow` (`from etl_assets import table`).
The package is in layers (`etl_assets_tests/test_layers.py` keeps them true): `core` (pure
logic), `engine` (Spark), `orchestration` (Dagster), `tools` (operator tooling, the CLI).
"""

from etl_assets.core.python_tables import LoadWindow, table

__all__ = ["LoadWindow", "table"]
