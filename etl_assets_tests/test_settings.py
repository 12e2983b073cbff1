"""Settings from the environment: one home folder for all state, and ETL_ENV environments.

Pure: no Spark is started; the Spark configuration is checked as the dict handed to Spark.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from etl_assets.core.settings import load_settings
from etl_assets.core.specs import load_project
from etl_assets.engine.session import spark_config


def test_etl_assets_home_moves_metastore_warehouse_and_derby_files(tmp_path: Path) -> None:
    settings = load_settings({"ETL_ASSETS_HOME": str(tmp_path / "h")})
    conf = spark_config(settings)
    home = tmp_path / "h"
    assert conf["spark.hadoop.javax.jdo.option.ConnectionURL"] == (
        f"jdbc:derby:;databaseName={home}/metastore_db;create=true")
    assert conf["spark.sql.warehouse.dir"] == str(home / "warehouse")
    assert f"-Dderby.system.home={home}" in conf["spark.driver.extraJavaOptions"]
    assert settings.dagster_home == home / "dagster"
    assert conf["spark.master"] == "local[*]"


def test_production_overrides_come_from_the_environment(tmp_path: Path) -> None:
    settings = load_settings({
        "ETL_ASSETS_HOME": str(tmp_path), "SPARK_MASTER": "spark://127.0.0.1:7077",
        "ETL_ASSETS_METASTORE_URI": "thrift://127.0.0.1:9083",
        "ETL_ASSETS_WAREHOUSE_DIR": "hdfs://nn/warehouse",
    })
    conf = spark_config(settings)
    assert conf["spark.master"] == "spark://127.0.0.1:7077"
    assert conf["spark.hadoop.hive.metastore.uris"] == "thrift://127.0.0.1:9083"
    assert "spark.hadoop.javax.jdo.option.ConnectionURL" not in conf
    assert conf["spark.sql.warehouse.dir"] == "hdfs://nn/warehouse"


def test_etl_env_renames_databases_and_adds_spark_settings(tmp_path: Path) -> None:
    settings = load_settings({"ETL_ASSETS_HOME": str(tmp_path), "ETL_ENV": "staging"})
    assert settings.log_db == "etl_log_staging"
    assert spark_config(settings)["spark.sql.shuffle.partitions"] == "16"
    project = load_project(settings.defs_dir,
                           rename_database=settings.environment.database)
    assert {t.database for t in project.tables.values()} == {"etl_demo_staging"}
    dev = load_settings({"ETL_ASSETS_HOME": str(tmp_path)})
    assert dev.environment.name == "dev" and dev.log_db == "etl_log"


@pytest.mark.parametrize(("environ", "words"), [
    ({"ETL_ENV": "qa"}, ["ETL_ENV='qa'", "dev", "prod", "staging"]),
    ({"ETL_PROFILE": "cloud"}, ["ETL_PROFILE='cloud'", "embedded"]),
    ({"ETL_ASSETS_SHUFFLE_PARTITIONS": "many"}, ["ETL_ASSETS_SHUFFLE_PARTITIONS", "positive"]),
])
def test_bad_settings_say_what_and_where(tmp_path: Path, environ: dict, words: list) -> None:
    with pytest.raises(ValueError) as caught:
        load_settings({"ETL_ASSETS_HOME": str(tmp_path), **environ})
    for word in words:
        assert word in str(caught.value)


def test_both_profiles_run_a_runs_steps_in_one_process_unless_told(tmp_path: Path) -> None:
    # A multiprocess step starts a Spark application of its own; the cluster profile no
    # longer pays that by default (issue 23), and the executor stays a choice.
    cluster = {"ETL_ASSETS_HOME": str(tmp_path), "ETL_PROFILE": "cluster",
               "ETL_ASSETS_METASTORE_URI": "thrift://127.0.0.1:9083"}
    assert load_settings({"ETL_ASSETS_HOME": str(tmp_path)}).executor == "in_process"
    assert load_settings(cluster).executor == "in_process"
    assert load_settings({**cluster, "ETL_ASSETS_EXECUTOR": "multiprocess"}).executor == (
        "multiprocess")
