"""Class-data sharing for the Spark driver: its JVM starts in about 3 s instead of 5.

Every Spark driver loads, parses and verifies some 20,000 classes from the ~280 jars of the
pyspark wheel, Hive's metastore client and Derby before its first query, and loads more on the
first query of each kind. A dynamic class-data-sharing archive (JDK 13+; Spark 4 needs Java
17) keeps those classes parsed and verified in one memory-mapped file, so the session starts
about 2 s sooner and a fresh process's first queries run sooner too (`bench/health_report.py
--cold` measures both). Every process that starts Spark gains it: each `dg launch`, run worker,
`etl-assets` command and test process.

An archive fits one JVM binary and one class path exactly, so it is named by a fingerprint of
both (`fingerprint`) and only used when it exists (`driver_java_options`); a JVM whose
archive does not fit would ignore it with a warning, and a missing one costs nothing.
`python -m etl_assets.engine.jvm_training` (run by `make install`) writes it once (about
230 MB, 45-50 s on 2 cores).

Where: `ETL_ASSETS_JVM_ARCHIVE` (a folder, or `off`); by default `<venv>/var/etl_assets` in a
virtual environment (the archive goes with the jars it was made from), else
`~/.cache/etl_assets`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pyspark.find_spark_home import _find_spark_home

PREFIX = "spark-driver-"
# The driver's class path comes from these settings besides Spark's own jars.
CLASS_PATH_KEYS = ("spark.driver.extraClassPath", "spark.jars")


def java_binary(environ: Mapping[str, str] | None = None) -> Path | None:
    """The `java` that `spark-submit` starts: `$JAVA_HOME/bin/java`, else the one on PATH."""
    env = os.environ if environ is None else environ
    java_home = env.get("JAVA_HOME")
    found = (str(Path(java_home) / "bin" / "java") if java_home
             else shutil.which("java", path=env.get("PATH")))
    return Path(found).resolve() if found and Path(found).exists() else None


def fingerprint(conf: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> str | None:
    """`<runtime>-<class path>`, 12 hex digits each, or None without java.

    The runtime part covers the JVM binary (path, size, modification time) and every jar of
    Spark's `jars/` folder (name, size, modification time); the class-path part the
    class-path settings of `conf` (the cluster profile adds a JDBC driver). A change to any of
    them names another archive, so a stale one is never used; archives of another runtime
    are stale for good (`train` removes them), those of another class path are another
    profile's.
    """
    java = java_binary(environ)
    if java is None:
        return None
    runtime = hashlib.sha256()
    stat = java.stat()
    runtime.update(f"{java}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    jars = Path(_find_spark_home()) / "jars"
    for entry in sorted(os.scandir(jars), key=lambda e: e.name) if jars.is_dir() else ():
        jar = entry.stat()
        runtime.update(f"{entry.name}|{jar.st_size}|{jar.st_mtime_ns}\n".encode())
    class_path = hashlib.sha256()
    for key in CLASS_PATH_KEYS:
        class_path.update(f"{key}={conf.get(key, '')}\n".encode())
    return f"{runtime.hexdigest()[:12]}-{class_path.hexdigest()[:12]}"


def archive_path(folder: Path, conf: Mapping[str, Any]) -> Path | None:
    """Where the archive for this JVM and class path lives (None: no java found)."""
    key = fingerprint(conf)
    return folder / f"{PREFIX}{key}.jsa" if key else None


def driver_java_options(folder: Path | None, conf: Mapping[str, Any]) -> str:
    """`-XX:SharedArchiveFile=...` when this JVM's archive exists in `folder`, else ''."""
    if folder is None:
        return ""
    path = archive_path(folder, conf)
    return f"-XX:SharedArchiveFile={path}" if path and path.is_file() else ""


def with_java_options(conf: Mapping[str, Any], options: str) -> dict[str, Any]:
    """`conf` with `options` appended to the driver's Java options (a copy; '' adds nothing)."""
    merged = dict(conf)
    if options:
        current = str(merged.get("spark.driver.extraJavaOptions", "")).strip()
        merged["spark.driver.extraJavaOptions"] = f"{current} {options}".strip()
    return merged


def with_archive(conf: Mapping[str, Any], folder: Path | None) -> dict[str, Any]:
    """`conf` with the archive added to the driver's Java options (unchanged without one)."""
    return with_java_options(conf, driver_java_options(folder, conf))
