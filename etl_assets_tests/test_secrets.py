"""The metastore password reaches Spark, and nothing Dagster stores or shows holds it.

Configured resource values are kept in the code location's snapshot (Deployment -> Resources
in the UI) and in each run's job snapshot; a password put into the Spark config dict, as the
first version did, was on display there. The snapshot tests build the definitions without
Spark; the run test materializes on a real instance with the shared session and reads back
everything the run left in storage.
"""

from __future__ import annotations

import dataclasses
import stat
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.remote_representation.external_data import (
    RepositorySnap,
    ResourceConfigEnvVarSnap,
)
from dagster._serdes import serialize_value
from pyspark.sql import SparkSession

from etl_assets.core.settings import Settings, load_settings
from etl_assets.core.specs import load_project
from etl_assets.definitions import build_definitions
from etl_assets.engine.session import METASTORE_PASSWORD_ENV, METASTORE_PASSWORD_KEY, spark_config
from etl_assets.orchestration.resources import build_spark_resource
from etl_assets.tools.cluster import thrift_submit_args
from etl_assets_tests.helpers import materialize_project, write_spec

PASSWORD = "s3cr3t-Pa55w0rd-7f1c"


def _jdbc_settings(home: Path) -> Settings:
    """Cluster-like settings: a PostgreSQL metastore with a password (never connected to)."""
    return load_settings({
        "ETL_ASSETS_HOME": str(home),
        "ETL_ASSETS_METASTORE_JDBC_URL": "jdbc:postgresql://127.0.0.1:1/metastore",
        "ETL_ASSETS_METASTORE_USER": "etl",
        METASTORE_PASSWORD_ENV: PASSWORD,
    })


def test_code_location_snapshot_names_the_variable_not_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(METASTORE_PASSWORD_ENV, PASSWORD)
    settings = _jdbc_settings(tmp_path)
    repo = build_definitions(settings).get_repository_def()

    snap = RepositorySnap.from_def(repo)
    assert PASSWORD not in serialize_value(snap)
    (spark,) = [r for r in snap.resources if r.name == "spark"]
    assert spark.configured_values["metastore_password"] == ResourceConfigEnvVarSnap(
        name=METASTORE_PASSWORD_ENV)
    # Each job's snapshot (stored with every run) carries the resources' config defaults too.
    for job in repo.get_all_jobs():
        assert PASSWORD not in serialize_value(job.get_job_snapshot())


def test_no_spark_setting_holds_the_password(tmp_path: Path) -> None:
    settings = _jdbc_settings(tmp_path)
    conf = spark_config(settings)
    assert conf["spark.hadoop.javax.jdo.option.ConnectionUserName"] == "etl"
    assert PASSWORD not in repr(conf)

    # The Thrift Server gets it in a file of its owner's, not on its command line.
    secrets = tmp_path / "thrift-secrets.conf"
    args = thrift_submit_args(settings, secrets)
    assert PASSWORD not in repr(args)
    assert args[args.index("--properties-file") + 1] == str(secrets)
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    assert secrets.read_text() == f"spark.hadoop.{METASTORE_PASSWORD_KEY}={PASSWORD}\n"


def test_a_password_only_in_cluster_env_is_refused_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Dagster would fail at the run's start with an unset variable; say it at load time.
    monkeypatch.delenv(METASTORE_PASSWORD_ENV, raising=False)
    with pytest.raises(ValueError, match=f"{METASTORE_PASSWORD_ENV}.*`source` that file"):
        build_spark_resource(_jdbc_settings(tmp_path))


def test_run_passes_the_password_to_spark_and_stores_it_nowhere(
    spark: SparkSession, settings: Settings, tmp_path: Path, instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    # Derby checks no password, so the embedded profile serves to follow one through a run.
    monkeypatch.setenv(METASTORE_PASSWORD_ENV, PASSWORD)
    with_password = dataclasses.replace(settings, metastore_password=PASSWORD)
    source = tmp_path / "src"
    spark.range(3).write.parquet(str(source))
    spec = write_spec(tmp_path / "specs", f"""
database: t_secret
sources:
  src: {{format: parquet, path: {source}}}
tables:
  - name: copied
    inputs: [src]
    sql: SELECT id FROM src
""")
    hadoop = spark.sparkContext._jsc.hadoopConfiguration()
    try:
        result = materialize_project(load_project(spec.parent), with_password, instance)
        assert result.success
        # The resource resolved the variable in the run and gave it to the session.
        assert hadoop.get(METASTORE_PASSWORD_KEY) == PASSWORD
        assert PASSWORD not in repr(spark.sparkContext.getConf().getAll())
    finally:
        hadoop.unset(METASTORE_PASSWORD_KEY)

    run = instance.get_run_by_id(result.run_id)
    stored = [
        run,  # run config and tags
        instance.get_job_snapshot(run.job_snapshot_id),
        instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id),
        *instance.all_logs(result.run_id),
    ]
    for record in stored:
        assert PASSWORD not in serialize_value(record), type(record).__name__
