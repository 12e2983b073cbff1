"""The resources every step gets: the Spark session and where the log tables live.

`EtlSparkResource` is dagster-pyspark's `LazyPySparkResource` with the metastore secret and the
embedded metastore's lock added. It takes the password as `dg.EnvVar`, which Dagster keeps as
the variable's name in the code location's snapshot, the UI and the run's records, and resolves
in the run's process only.
"""

# No `from __future__ import annotations`: Dagster reads the annotations of asset functions
# (context, config, resources) at definition time and cannot resolve them from strings.
import os
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_pyspark import LazyPySparkResource
from pydantic import Field, PrivateAttr
from pyspark import SparkContext
from pyspark.sql import SparkSession

from etl_assets.core.outcomes import CheckedLoad, CheckOutcome
from etl_assets.core.records import FeedbackRecord
from etl_assets.core.settings import Settings
from etl_assets.engine.hive_log import HiveLog
from etl_assets.engine.session import (
    CODEGEN_MODE,
    METASTORE_PASSWORD_ENV,
    QUERY_ONLY_JAVA_OPTIONS,
    python_workers_on_this_interpreter,
    serve_ui_on_loopback,
    spark_config,
    start_session,
)
from etl_assets.engine.storage import driver_jvm_arguments


class EtlLogResource(dg.ConfigurableResource):
    """Where the Hive log tables live (database `etl_log` unless configured)."""

    database: str = "etl_log"

    def write_checks(
        self, spark: SparkSession, records: list[tuple[CheckedLoad, CheckOutcome]]
    ) -> None:
        """Append one step's check evaluations to `check_log`, in one batch.

        Called inside the step, before its results are reported: a failed write fails the
        step, instead of vanishing into a resource-teardown event after the results were
        shown (a log append costs milliseconds and no Spark job, so one per step is cheap).
        """
        HiveLog(spark, self.database).write_checks(records)

    def write_feedback(self, spark: SparkSession, records: list[FeedbackRecord]) -> None:
        """Append accept / re-baseline decisions to `check_feedback`, in one batch."""
        HiveLog(spark, self.database).write_feedback(records)


class EtlSparkResource(LazyPySparkResource):
    """dagster-pyspark's lazy Spark resource, with the metastore's secret and lock.

    Definitions load without starting Spark; the session starts on first use in a step
    (`start_session`). `metastore_password` is meant to be `dg.EnvVar(...)`: Dagster shows and
    stores the variable's name, never its value, and resolves it in the run's process.

    Example:
        ```python
        EtlSparkResource(spark_config=spark_config(settings),
                         metastore_password=dg.EnvVar("ETL_ASSETS_METASTORE_PASSWORD"))
        ```
    """

    metastore_password: str | None = Field(
        default=None,
        description="Password of the metastore database; pass dg.EnvVar(...), never a value.",
    )
    embedded_metastore: str | None = Field(
        default=None,
        description="Derby's folder: one process at a time holds its lock before Spark starts.",
    )
    metastore_lock_timeout_s: float | None = Field(
        default=None,
        description="Seconds to wait for another process holding the embedded metastore "
        "(unset: no limit).",
    )
    jvm_archive_dir: str | None = Field(
        default=None,
        description="Folder of the driver's class-data archive (etl_assets.engine.jvm_archive): "
        "used when it holds this JVM's, so the driver starts sooner.",
    )
    query_only_assets: list[str] = Field(
        default_factory=list,
        description="Assets that only query the log tables (the health report): a run of "
        "nothing else starts its driver with a quick JIT (QUERY_ONLY_JAVA_OPTIONS).",
    )
    _log: Any = PrivateAttr(default=None)
    _query_only: bool = PrivateAttr(default=False)

    @classmethod
    def _is_dagster_maintained(cls) -> bool:
        return False

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # The waiting line goes to the run's own log (the UI), not only to stderr.
        self._log = context.log
        self._query_only = runs_queries_only(context.run, self.query_only_assets)

    @property
    def spark_session(self) -> SparkSession:
        if self._spark_session is None:
            password = self.metastore_password
            if isinstance(password, dg.EnvVar):  # used outside a run: Dagster resolved nothing
                password = password.get_value()
            self._spark_session = start_session(
                self.spark_config,
                metastore_password=password,
                embedded_metastore=Path(self.embedded_metastore)
                if self.embedded_metastore else None,
                lock_timeout_s=self.metastore_lock_timeout_s,
                on_wait=self._log.warning if self._log is not None else None,
                jvm_archive_dir=Path(self.jvm_archive_dir) if self.jvm_archive_dir else None,
                query_only=self._query_only,
            )
            if self._log is not None:
                session = self._spark_session
                self._log.info(driver_summary(
                    driver_jvm_arguments(session), self._query_only,
                    interpreted=session.conf.get(CODEGEN_MODE) == "NO_CODEGEN"))
        return self._spark_session

    @property
    def spark_context(self) -> SparkContext:
        return self.spark_session.sparkContext


def runs_queries_only(run: dg.DagsterRun | None, query_only_assets: list[str]) -> bool:
    """Whether `run` materializes only assets of `query_only_assets`, and checks nothing.

    A run of the whole job, a selection with any load or an asset check, or a run whose
    selection is unknown (an op job, no run) is not: its driver keeps the JIT a load needs.
    """
    if run is None or not run.asset_selection or not query_only_assets:
        return False
    if run.asset_check_selection:
        return False
    return {key.to_user_string() for key in run.asset_selection} <= set(query_only_assets)


def driver_summary(arguments: list[str], query_only: bool, interpreted: bool = False) -> str:
    """One line for the run's log: the start-up options the driver's JVM really got, whether
    its expressions run interpreted (`QUERY_ONLY_SQL_CONF`), and whether this run chose them
    (`JAVA_TOOL_OPTIONS` may set C1 for any run)."""
    archive = next((a.split("=", 1)[1] for a in arguments
                    if a.startswith("-XX:SharedArchiveFile=")), None)
    jit = "C1 only" if QUERY_ONLY_JAVA_OPTIONS in arguments else "tiered"
    return ("Spark driver started: "
            + (f"class archive {Path(archive).name}" if archive else "no class archive")
            + f", JIT {jit}" + (", expressions interpreted" if interpreted else "")
            + (" (a run that only queries the log)" if query_only else ""))


def build_spark_resource(
    settings: Settings, query_only_assets: list[str] | None = None
) -> EtlSparkResource:
    """The lazy Spark resource of these settings: definitions load without starting Spark.

    Raises:
        ValueError: The settings' metastore password is not this process's
            `ETL_ASSETS_METASTORE_PASSWORD` (say, it is only in `cluster.env`): Dagster resolves
            secrets from the environment of the run's process alone.
    """
    settings.home.mkdir(parents=True, exist_ok=True)
    serve_ui_on_loopback(settings)  # every process loading the definitions, before Spark starts
    python_workers_on_this_interpreter(settings)
    password = None
    if settings.metastore_password:
        if os.environ.get(METASTORE_PASSWORD_ENV) != settings.metastore_password:
            raise ValueError(
                f"the metastore password must be in the environment as {METASTORE_PASSWORD_ENV}, "
                "where Dagster resolves secrets when a run starts; it is not (only in "
                f"{settings.home}/cluster/cluster.env?): `source` that file before starting "
                "dagster, as the Makefile does")
        password = dg.EnvVar(METASTORE_PASSWORD_ENV)
    embedded = settings.embedded_metastore
    return EtlSparkResource(
        spark_config=spark_config(settings),
        metastore_password=password,
        embedded_metastore=str(embedded) if embedded else None,
        metastore_lock_timeout_s=settings.metastore_lock_timeout_s,
        jvm_archive_dir=str(settings.jvm_archive_dir) if settings.jvm_archive_dir else None,
        query_only_assets=list(query_only_assets or ()),
    )
