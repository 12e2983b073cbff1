"""Spark configuration: the embedded Hive default, overridable through the environment.

The same configuration serves the assets (through `EtlSparkResource` in
`etl_assets.orchestration.resources`), the `etl-assets` CLI and the tests, so a user never needs to know the Derby settings to query their own tables.

Secrets stay out of every configured value: `spark_config` holds none, and the metastore
password reaches Spark only when a session starts (`start_session`), set on the Hadoop
configuration of the running context rather than passed as a Spark setting, which PySpark would
put on the JVM's command line. The Dagster resource takes it as an environment variable that
Dagster resolves in the run's process only.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pyspark import SparkConf, SparkContext
from pyspark.sql import SparkSession

from etl_assets.core.settings import Settings
from etl_assets.engine import storage
from etl_assets.engine.jvm_archive import with_archive, with_java_options
from etl_assets.engine.metastore_lock import lock_embedded_metastore

METASTORE_PASSWORD_ENV = "ETL_ASSETS_METASTORE_PASSWORD"
# Hive's own key, on the Hadoop configuration (Spark's equivalent setting would be this key
# with the `spark.hadoop.` prefix, which is what must not travel as plain configuration).
METASTORE_PASSWORD_KEY = "javax.jdo.option.ConnectionPassword"
LOOPBACK = "127.0.0.1"
# The driver's RPC and block manager ports bind spark.driver.bindAddress, which defaults to the
# host's name and so its network address: on loopback, only this machine can reach them.
LOOPBACK_DRIVER = {"spark.driver.host": LOOPBACK, "spark.driver.bindAddress": LOOPBACK}
# The JIT of a driver that runs only a few queries over small tables (the health report and
# `status` over the log tables): C1 alone, which compiles at once and profiles nothing. Such a
# process spends its seconds running Catalyst's and the metastore client's code for the first
# time, so a fresh report over 12 log rows takes 5.0 s after the session's start instead of
# 7.4 s, and the session starts in 2.3 s instead of 3.1 s (2 cores, with the class archive).
# Never for loads: without C2, writing 5M rows takes 2.7x as long (`bench/health_report.py
# --cold`, `bench/metrics_overhead.py`).
QUERY_ONLY_JAVA_OPTIONS = "-XX:TieredStopAtLevel=1"
# The same processes evaluate expressions interpreted, generating no Java code for Janino to
# compile: over 12 log rows the fresh report takes 4.4-4.6 s instead of 5.1-5.2 s, and over
# 100,000 rows 8.5 s either way (`bench/health_report.py --cold`). `factoryMode` is marked
# internal in Spark; its NO_CODEGEN path is the interpreted one every Spark expression test
# runs too, and is only taken here, never by a load.
CODEGEN_MODE = "spark.sql.codegen.factoryMode"
QUERY_ONLY_SQL_CONF = {"spark.sql.codegen.wholeStage": "false", CODEGEN_MODE: "NO_CODEGEN"}


def spark_config(settings: Settings) -> dict[str, Any]:
    """Spark settings for a session with Hive support on the configured metastore.

    Embedded (no `ETL_ASSETS_METASTORE_URI`): a Derby metastore under `<home>/metastore_db`,
    with Derby's own files (`derby.log`) kept in the home folder too, not in the working
    directory. Metastore settings carry the `spark.hadoop.` prefix so they reach Hive's config.
    """
    home = settings.home
    java_opts = f"-Dderby.system.home={home} -Dderby.stream.error.file={home / 'derby.log'}"
    conf: dict[str, Any] = {
        "spark.master": settings.spark_master,
        "spark.app.name": "etl_assets",
        "spark.sql.catalogImplementation": "hive",
        "spark.sql.warehouse.dir": settings.warehouse_dir,
        "spark.driver.extraJavaOptions": java_opts,
        "spark.sql.adaptive.enabled": "true",
        "spark.sql.shuffle.partitions": str(settings.shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.sources.partitionOverwriteMode": "dynamic",
        # INT96 (the default) carries no min/max in Parquet footers, where metrics read them.
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        "spark.ui.showConsoleProgress": "false",
        # Filters pushed into the CSV/JSON parsers drop rows before Spark counts them as read,
        # which would make `rows_in` count rows kept instead of rows read.
        "spark.sql.csv.filterPushdown.enabled": "false",
        "spark.sql.json.filterPushdown.enabled": "false",
        # Hive's own warehouse setting, so tables created through Hive DDL land beside Spark's.
        "spark.hadoop.hive.metastore.warehouse.dir": settings.warehouse_dir,
    }
    if settings.spark_master.startswith("local"):
        conf.update(LOOPBACK_DRIVER)  # local mode: nothing but this process talks to the driver
    if settings.spark_master.startswith("spark://"):
        conf.update(standalone_config(settings))
    if settings.metastore_uri:
        conf["spark.hadoop.hive.metastore.uris"] = settings.metastore_uri
    elif settings.metastore_jdbc_url:
        conf.update(jdbc_metastore_config(settings))
    else:
        url = f"jdbc:derby:;databaseName={home / 'metastore_db'};create=true"
        conf["spark.hadoop.javax.jdo.option.ConnectionURL"] = url
    conf.update(settings.environment.spark)
    return conf


def standalone_config(settings: Settings) -> dict[str, str]:
    """One run's share of a Spark standalone cluster, with the driver on loopback."""
    return {
        "spark.cores.max": str(settings.spark_cores_max),
        "spark.executor.memory": settings.executor_memory,
        **LOOPBACK_DRIVER,
        # Executors run Python (if a spec ever needs it) with the driver's interpreter.
        "spark.pyspark.python": sys.executable,
    }


def jdbc_metastore_config(settings: Settings) -> dict[str, str]:
    """Hive metastore in a database over JDBC (PostgreSQL in the cluster profile).

    `datanucleus.schema.autoCreateAll=true` hangs against PostgreSQL; creating tables and
    columns (not constraints) on first use, without schema verification, works. The JDBC
    driver must be on the driver's class path when its JVM starts, hence extraClassPath. The
    password is not here: `start_session` sets it (see the module's docstring).
    """
    prefix = "spark.hadoop."
    conf = {
        "spark.driver.extraClassPath": settings.jdbc_driver_jar,
        prefix + "javax.jdo.option.ConnectionURL": settings.metastore_jdbc_url or "",
        prefix + "javax.jdo.option.ConnectionDriverName": "org.postgresql.Driver",
        prefix + "datanucleus.schema.autoCreateAll": "false",
        prefix + "datanucleus.schema.autoCreateTables": "true",
        prefix + "datanucleus.schema.autoCreateColumns": "true",
        prefix + "datanucleus.schema.autoCreateConstraints": "false",
        prefix + "hive.metastore.schema.verification": "false",
    }
    if settings.metastore_user:
        conf[prefix + "javax.jdo.option.ConnectionUserName"] = settings.metastore_user
    return conf


def start_session(
    conf: Mapping[str, Any],
    metastore_password: str | None = None,
    embedded_metastore: Path | None = None,
    lock_timeout_s: float | None = None,
    on_wait: Callable[[str], None] | None = None,
    jvm_archive_dir: Path | None = None,
    query_only: bool = False,
) -> SparkSession:
    """Start (or reuse) this process's Spark session, with its secret and its metastore lock.

    Args:
        conf: Spark settings without secrets (`spark_config`).
        metastore_password: Set as Hive's `javax.jdo.option.ConnectionPassword` on the running
            context's Hadoop configuration before the session (and so the metastore client)
            exists: it reaches the metastore without appearing in the Spark settings, the JVM's
            command line or a log. With Derby, which checks no password, it is harmless.
        embedded_metastore: Derby's folder; when given, this process first takes the lock of
            `etl_assets.engine.metastore_lock` (waiting for another holder with one logged line).
        lock_timeout_s: Longest wait for that lock in seconds (`None`: no limit).
        on_wait: Receives the waiting line (default: `logging`).
        jvm_archive_dir: Folder of the driver's class archive (`etl_assets.engine.jvm_archive`):
            when it holds the archive of this JVM and class path, the driver maps it and
            starts about 2 s sooner. Ignored when a session already runs in this process.
        query_only: This process runs only small queries, never a load: its driver compiles
            with C1 alone (`QUERY_ONLY_JAVA_OPTIONS`) and evaluates expressions interpreted
            (`QUERY_ONLY_SQL_CONF`). Ignored when a session already runs.

    Raises:
        MetastoreBusyError: Another process held the embedded metastore past `lock_timeout_s`.
    """
    if embedded_metastore is not None:
        lock_embedded_metastore(embedded_metastore, timeout_s=lock_timeout_s, on_wait=on_wait)
    if SparkContext._active_spark_context is None:  # the JVM's options count only at its start
        conf = with_archive(conf, jvm_archive_dir)
        if query_only:
            conf = {**with_java_options(conf, QUERY_ONLY_JAVA_OPTIONS), **QUERY_ONLY_SQL_CONF}
    settings = {str(key): str(value) for key, value in conf.items()}
    context = SparkContext.getOrCreate(SparkConf().setAll(list(settings.items())))
    if metastore_password:
        storage.set_hadoop_option(context, METASTORE_PASSWORD_KEY, metastore_password)
    session = SparkSession.builder.config(map=settings).getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    return session


def serve_ui_on_loopback(settings: Settings) -> None:
    """Make the driver's web UI (port 4040 and up) bind 127.0.0.1, as its other ports do.

    Spark takes the UI's address from nothing but the driver JVM's `SPARK_LOCAL_IP` (else
    0.0.0.0, every interface), and the JVM inherits this process's environment, so it is set
    here before a session starts. A `SPARK_LOCAL_IP` already set wins; on YARN or Kubernetes,
    where the cluster must reach the driver, nothing changes.
    """
    if settings.spark_master.startswith(("local", "spark://")):
        os.environ.setdefault("SPARK_LOCAL_IP", LOOPBACK)


def python_workers_on_this_interpreter(settings: Settings) -> None:
    """Run a local master's Python workers (Python and pandas UDFs of Python tables) with this
    process's interpreter.

    PySpark starts them with `PYSPARK_PYTHON`, read when the context starts, else with
    `python3` from the PATH, which for a virtualenv not on the PATH (`.venv/bin/dagster ...`)
    is another interpreter, without the project's packages: a pandas UDF then fails with "No
    module named 'pandas'". Set here, before a session starts, for local masters and Spark
    standalone (whose executors already run the driver's interpreter, `standalone_config`); a
    `PYSPARK_PYTHON` already set wins, and on YARN or Kubernetes, where executors need their
    own interpreter path, nothing changes.
    """
    if settings.spark_master.startswith(("local", "spark://")):
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)


def build_session(settings: Settings, query_only: bool = False) -> SparkSession:
    """Start (or reuse) the Spark session for these settings; creates the home folder.

    `query_only`: see `start_session` (the CLI's `report` and `status` say so).
    """
    settings.home.mkdir(parents=True, exist_ok=True)
    serve_ui_on_loopback(settings)
    python_workers_on_this_interpreter(settings)
    return start_session(
        spark_config(settings),
        metastore_password=settings.metastore_password,
        embedded_metastore=settings.embedded_metastore,
        lock_timeout_s=settings.metastore_lock_timeout_s,
        jvm_archive_dir=settings.jvm_archive_dir,
        query_only=query_only,
    )


