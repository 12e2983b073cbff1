"""Spark configuration: the embedded Hive default, overridable through the environment.

The same configuration serves the assets (through dagster-pyspark's `LazyPySparkResource`), the
`etl-assets` CLI and the tests, so a user never needs to know the Derby settings to query their
own tables.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from dagster_pyspark import LazyPySparkResource
from pyspark.sql import SparkSession

from etl_assets.settings import Settings

LOOPBACK = "127.0.0.1"
# The driver's RPC and block manager ports bind spark.driver.bindAddress, which defaults to the
# host's name and so its network address: on loopback, only this machine can reach them.
LOOPBACK_DRIVER = {"spark.driver.host": LOOPBACK, "spark.driver.bindAddress": LOOPBACK}


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
    driver must be on the driver's class path when its JVM starts, hence extraClassPath.
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
    if settings.metastore_password:
        conf[prefix + "javax.jdo.option.ConnectionPassword"] = settings.metastore_password
    return conf


def serve_ui_on_loopback(settings: Settings) -> None:
    """Make the driver's web UI (port 4040 and up) bind 127.0.0.1, as its other ports do.

    Spark takes the UI's address from nothing but the driver JVM's `SPARK_LOCAL_IP` (else
    0.0.0.0, every interface), and the JVM inherits this process's environment, so it is set
    here before a session starts. A `SPARK_LOCAL_IP` already set wins; on YARN or Kubernetes,
    where the cluster must reach the driver, nothing changes.
    """
    if settings.spark_master.startswith(("local", "spark://")):
        os.environ.setdefault("SPARK_LOCAL_IP", LOOPBACK)


def build_session(settings: Settings) -> SparkSession:
    """Start (or reuse) the Spark session for these settings; creates the home folder."""
    settings.home.mkdir(parents=True, exist_ok=True)
    serve_ui_on_loopback(settings)
    builder = SparkSession.builder
    for key, value in spark_config(settings).items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    return session


def build_spark_resource(settings: Settings) -> LazyPySparkResource:
    """dagster-pyspark's lazy resource: definitions load without starting Spark.

    Every process that loads the definitions (the run worker, each step process) calls this
    before its session starts, so the driver's UI binds loopback there too.
    """
    settings.home.mkdir(parents=True, exist_ok=True)
    serve_ui_on_loopback(settings)
    return LazyPySparkResource(spark_config=spark_config(settings))
