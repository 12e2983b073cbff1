"""The engine reaches the JVM through `etl_assets/engine/storage.py` alone (pure Python, no Spark).

Spark Connect has no JVM in the driver: keeping every `_jvm` / `_jsc` / `_jsparkSession` call
in one module means that module is all a Spark Connect port replaces.
"""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "etl_assets"
JVM = re.compile(r"\._(jvm|jsc|jsparkSession|jdf|jconf|jo)\b")
OUTSIDE_THE_ENGINE = {"engine/storage.py", "tools/cluster.py"}  # the module; operator tooling


def test_only_the_storage_module_calls_into_the_jvm() -> None:
    offenders = {
        str(path.relative_to(PACKAGE)): [n for n, line in enumerate(path.read_text().splitlines(), 1)
                                         if JVM.search(line)]
        for path in sorted(PACKAGE.rglob("*.py"))
        if str(path.relative_to(PACKAGE)) not in OUTSIDE_THE_ENGINE
    }
    assert {k: v for k, v in offenders.items() if v} == {}
    assert JVM.search((PACKAGE / "engine" / "storage.py").read_text())  # the pattern finds real calls
