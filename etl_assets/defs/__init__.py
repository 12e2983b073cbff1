"""The defs folder `dg` loads (`[tool.dg.project]` in pyproject.toml): one folder per domain,
each a `HiveTables` component (`<domain>/defs.yaml`) with its Python table modules."""
