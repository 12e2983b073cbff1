"""How the Spark driver's JVM starts: its class archive and the quick JIT of query-only runs.

The archive's naming, the Java options and the choice of a run's JIT are pure and tested
without Spark; one test starts a real driver in a fresh process and reads from the JVM's own
class-loading log that it mapped the archive `make install` wrote.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from etl_assets.core.settings import JVM_ARCHIVE_ENV, jvm_archive_folder, load_settings
from etl_assets.engine.jvm_archive import archive_path, fingerprint, with_archive
from etl_assets.engine.jvm_training import train
from etl_assets.engine.session import QUERY_ONLY_JAVA_OPTIONS, spark_config
from etl_assets.orchestration.resources import driver_summary, runs_queries_only

ROOT = Path(__file__).resolve().parents[1]
REPORT = "etl_health_report"


def test_the_archive_name_follows_the_runtime_and_the_class_path() -> None:
    plain = fingerprint({})
    assert plain is not None  # Java 17 is what Spark runs on here
    runtime, class_path = plain.split("-")
    with_jdbc = fingerprint({"spark.driver.extraClassPath": "/usr/share/java/postgresql.jar"})
    # Another profile's class path: another archive of the same runtime.
    assert with_jdbc.startswith(runtime + "-") and with_jdbc != plain
    assert fingerprint({"spark.jars": "/tmp/x.jar"}) not in (plain, with_jdbc)
    assert fingerprint({}) == plain  # stable between calls


def test_no_java_no_archive(tmp_path: Path) -> None:
    environ = {"JAVA_HOME": str(tmp_path / "missing-jdk"), "PATH": str(tmp_path)}
    assert fingerprint({}, environ) is None
    environ = {"PATH": str(tmp_path)}  # no JAVA_HOME and no java on PATH
    assert fingerprint({}, environ) is None


def test_the_archive_is_passed_only_when_it_exists(tmp_path: Path) -> None:
    conf = {"spark.driver.extraJavaOptions": "-Dderby.system.home=/h"}
    assert with_archive(conf, tmp_path) == conf  # not written yet: nothing to map
    assert with_archive(conf, None) == conf  # ETL_ASSETS_JVM_ARCHIVE=off
    path = archive_path(tmp_path, conf)
    path.write_bytes(b"x")
    merged = with_archive(conf, tmp_path)
    assert merged["spark.driver.extraJavaOptions"] == (
        f"-Dderby.system.home=/h -XX:SharedArchiveFile={path}")
    assert conf["spark.driver.extraJavaOptions"] == "-Dderby.system.home=/h"  # a copy


def test_archive_folder_from_the_environment(tmp_path: Path) -> None:
    assert jvm_archive_folder({JVM_ARCHIVE_ENV: "off"}) is None
    assert jvm_archive_folder({JVM_ARCHIVE_ENV: " OFF "}) is None
    assert jvm_archive_folder({JVM_ARCHIVE_ENV: str(tmp_path / "a")}) == tmp_path / "a"
    assert sys.prefix != sys.base_prefix  # the tests run in the project's virtualenv
    assert jvm_archive_folder({}) == Path(sys.prefix) / "var" / "etl_assets"
    settings = load_settings({"ETL_ASSETS_HOME": str(tmp_path), JVM_ARCHIVE_ENV: "off"})
    assert settings.jvm_archive_dir is None


def _run(selection: set[str] | None, checks: set[str] | None = None) -> dg.DagsterRun:
    return dg.DagsterRun(
        job_name="__ASSET_JOB",
        asset_selection=frozenset(dg.AssetKey(k) for k in selection) if selection else None,
        asset_check_selection=frozenset(
            dg.AssetCheckKey(dg.AssetKey(c), "row_count_anomaly") for c in checks)
        if checks else None)


def test_only_a_run_of_the_report_alone_gets_the_quick_jit() -> None:
    assert runs_queries_only(_run({REPORT}), [REPORT])
    assert not runs_queries_only(_run({REPORT, "clean_orders"}), [REPORT])  # a load too
    assert not runs_queries_only(_run({"clean_orders"}), [REPORT])
    assert not runs_queries_only(_run(None), [REPORT])  # a whole job: what it loads is unknown
    assert not runs_queries_only(_run({REPORT}, checks={"clean_orders"}), [REPORT])
    assert not runs_queries_only(_run({REPORT}), [])
    assert not runs_queries_only(None, [REPORT])


def test_the_run_log_line_says_what_the_jvm_got() -> None:
    line = driver_summary(["-Dx=1", "-XX:SharedArchiveFile=/v/spark-driver-a-b.jsa",
                           QUERY_ONLY_JAVA_OPTIONS], query_only=True, interpreted=True)
    assert line == ("Spark driver started: class archive spark-driver-a-b.jsa, "
                    "JIT C1 only, expressions interpreted (a run that only queries the log)")
    line = driver_summary(["-Dx=1"], query_only=False)
    assert line == "Spark driver started: no class archive, JIT tiered"
    # C1 from elsewhere (JAVA_TOOL_OPTIONS), in a run that loads: said as it is.
    line = driver_summary([QUERY_ONLY_JAVA_OPTIONS], query_only=False)
    assert line == "Spark driver started: no class archive, JIT C1 only"


_FRESH_DRIVER = """
import json, sys
from pathlib import Path
from etl_assets.core.settings import load_settings
from etl_assets.engine import session, storage
settings = load_settings()
conf = session.spark_config(settings)
conf["spark.driver.extraJavaOptions"] += f" -Xlog:class+load=info:file={sys.argv[1]}"
spark = session.start_session(conf, embedded_metastore=settings.embedded_metastore,
                              jvm_archive_dir=settings.jvm_archive_dir, query_only=True)
spark.sql("SELECT count(*) FROM range(10)").collect()
print(json.dumps(storage.driver_jvm_arguments(spark)))
"""


@pytest.mark.e2e
def test_a_fresh_driver_maps_the_archive_and_takes_the_quick_jit(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "ETL_ASSETS_HOME": str(home)}
    env.pop(JVM_ARCHIVE_ENV, None)
    env.pop("JAVA_TOOL_OPTIONS", None)  # conftest's C1 for every test JVM: not the one tested
    folder = jvm_archive_folder(env)
    conf = spark_config(load_settings(env))
    path = train(folder, conf)  # `make install` wrote it: then this returns at once
    assert path == archive_path(folder, conf) and path.stat().st_size > 50_000_000
    loaded = tmp_path / "class-load.log"
    done = subprocess.run([sys.executable, "-c", _FRESH_DRIVER, str(loaded)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    arguments = json.loads(done.stdout.strip().splitlines()[-1])
    assert f"-XX:SharedArchiveFile={path}" in arguments
    assert QUERY_ONLY_JAVA_OPTIONS in arguments
    sources = loaded.read_text().splitlines()
    # Spark's and Hive's classes came from the archive (its top layer), parsed already.
    from_archive = [s for s in sources if "source: shared objects file (top)" in s]
    assert any("org.apache.spark.sql.SparkSession " in s for s in from_archive)
    assert len(from_archive) > 5_000
