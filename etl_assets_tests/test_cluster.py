"""The cluster profile on real servers on 127.0.0.1: PostgreSQL (Hive metastore and Dagster
storage), a Spark standalone master and worker, and the Spark Thrift Server.

`etl-assets cluster up` starts them in a home of their own (installing PostgreSQL and its JDBC
driver from Debian when missing); they are stopped at the end even when a test fails. Runs go
the way a user's do: `dg launch` for the demo, and `make ui` (`dg dev`:
webserver, daemon, queued run coordinator, run-failure sensor) for the concurrent runs and the
fault, launched through its GraphQL API as the UI's "Materialize" button does. Tables and log
rows are read back through the Thrift Server with beeline, a real JDBC client.

Marked `cluster`: `pytest -m "not cluster"` leaves it out. Without root and without the Debian
packages the servers cannot start and the module is skipped, except under CI, where it fails.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from etl_assets.core.settings import JDBC_DRIVER_JAR, load_settings, read_env_file
from etl_assets.tools.cluster import beeline, pg_bindir
from etl_assets_tests.helpers import (
    BIN,
    FINISHED,
    ROOT,
    DagsterDev,
    clean_env,
    listeners,
    overlap,
    run_dagster_dev,
    write_spec,
)

pytestmark = pytest.mark.cluster

# A table whose load can be made slow: each row of the input sleeps `sleep_ms` in the executor.
FAULTS_SPEC = """\
domain: faults
database: etl_faults
sources:
  slow_input:
    format: csv
    path: ../../fault_data/slow.csv
    options: {header: true}
    schema: id INT, sleep_ms BIGINT
tables:
  - name: slow_copy
    inputs: [slow_input]
    sql: |
      SELECT id, sleep_ms, reflect('java.lang.Thread', 'sleep', sleep_ms) AS slept
      FROM slow_input
"""



@dataclass
class Servers:
    home: Path
    env: dict[str, str]
    up_output: str

    def query(self, sql: str) -> list[dict[str, str]]:
        """Rows of a query sent through the Thrift Server with beeline."""
        settings = load_settings(self.env)
        return list(csv.DictReader(io.StringIO(beeline(settings, sql).strip())))

    def run(self, *args: str, timeout: float = 900, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / args[0]), *args[1:]], cwd=ROOT,
                              env={**self.env, "VIRTUAL_ENV": str(BIN.parent), **extra},
                              capture_output=True, text=True,
                              timeout=timeout)


def write_slow_input(home: Path, rows: int, sleep_ms: int) -> None:
    lines = ["id,sleep_ms", *(f"{i},{sleep_ms}" for i in range(rows))]
    (home / "fault_data" / "slow.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _servers_can_start() -> bool:
    packages = pg_bindir() is not None and Path(JDBC_DRIVER_JAR).exists()
    return packages or (os.geteuid() == 0 and shutil.which("apt-get") is not None)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    if not _servers_can_start():
        message = "PostgreSQL is not installed and apt-get cannot install it (not root)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    home = tmp_path_factory.mktemp("cluster_home")
    pipelines = home / "defs"  # the demo's domain (spec and Python tables) and a faulty one
    shutil.copytree(ROOT / "etl_assets" / "defs" / "sales", pipelines / "sales",
                    ignore=shutil.ignore_patterns("__pycache__"))
    write_spec(pipelines, FAULTS_SPEC, "faults.yaml")
    (home / "sample_data").symlink_to(ROOT / "etl_assets" / "sample_data")
    (home / "fault_data").mkdir()
    write_slow_input(home, rows=20, sleep_ms=0)
    (home / "landing" / "orders").mkdir(parents=True)  # nothing lands: the sensor stays quiet
    env = clean_env(ETL_ASSETS_HOME=str(home), ETL_ASSETS_DEFS=str(pipelines),
                    ETL_ASSETS_LANDING=str(home / "landing"))
    try:
        up = subprocess.run([str(BIN / "etl-assets"), "cluster", "up"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=900)
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        env.update(read_env_file(home / "cluster" / "cluster.env"))
        env.update({"ETL_PROFILE": "cluster", "DAGSTER_HOME": str(home / "dagster-cluster")})
        yield Servers(home, env, up.stdout)
    finally:
        down = subprocess.run([str(BIN / "etl-assets"), "cluster", "down"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)
        print(down.stdout, down.stderr)
        pg = home / "cluster" / "pg"
        if pg.is_symlink():  # PostgreSQL's data sat outside the temporary home (see cluster.py)
            shutil.rmtree(pg.resolve(), ignore_errors=True)


@pytest.fixture(scope="module")
def dagster_dev(servers: Servers) -> Iterator[DagsterDev]:
    """`make ui` on the cluster profile: PostgreSQL storage, queued runs, sensors."""
    with run_dagster_dev(servers.env, servers.home / "dagster_dev.log", make_ui=True) as dev:
        yield dev


def test_cluster_up_is_idempotent(servers: Servers) -> None:
    print(servers.up_output)  # the start-up cost of each server, with `pytest -s`
    assert "PostgreSQL started on 127.0.0.1:" in servers.up_output
    assert "Thrift Server started: jdbc:hive2://127.0.0.1:" in servers.up_output
    again = servers.run("etl-assets", "cluster", "up")
    assert again.returncode == 0, again.stderr
    for name in ("PostgreSQL", "Spark master", "Spark worker", "Thrift Server"):
        assert f"{name} already running" in again.stdout
    status = servers.run("etl-assets", "cluster", "status")
    assert status.returncode == 0
    assert status.stdout.count("running") == 4
    # Everything lives under the home: PostgreSQL's data (or its link), Spark's pids and logs.
    assert (servers.home / "cluster" / "pg" / "data" / "PG_VERSION").exists()
    assert list((servers.home / "cluster" / "spark" / "pids").glob("*.pid"))


def test_demo_on_the_cluster_is_visible_through_the_thrift_server(servers: Servers) -> None:
    # The profile's default executor (in-process: one Spark application per run); the
    # concurrent runs below show runs still go side by side.
    done = servers.run("dg", "launch", "--assets", "not tag:cadence=daily and not key:slow_copy "
                       "and not key:landed_order_totals")
    assert done.returncode == 0, done.stderr[-3000:]
    done = servers.run("dg", "launch", "--assets", "tag:cadence=daily", "--partition-range",
                       "2026-01-01...2026-01-07")
    assert done.returncode == 0, done.stderr[-3000:]

    # The metastore is PostgreSQL and the tables are queried through the Thrift Server.
    (orders,) = servers.query("SELECT count(*) AS n, sum(amount) AS s FROM etl_demo.clean_orders")
    assert int(orders["n"]) > 0
    loads = servers.query("SELECT asset, status, row_count FROM etl_log.run_log "
                          "WHERE partition_key IS NULL")
    by_table = {row["asset"]: row for row in loads}
    assert len(by_table) == 7, by_table
    assert {row["status"] for row in loads} == {"SUCCESS"}
    assert by_table["clean_orders"]["row_count"] == orders["n"]
    days = servers.query("SELECT count(DISTINCT partition_key) AS n FROM etl_log.run_log "
                         "WHERE asset = 'daily_sales' AND status = 'SUCCESS'")
    assert days == [{"n": "7"}]
    import psycopg2

    port = int(servers.env["ETL_ASSETS_PORT_PG"])
    with psycopg2.connect(host="127.0.0.1", port=port, user="etl", dbname="metastore") as conn:
        with conn.cursor() as cur:
            cur.execute('SELECT count(*) FROM "TBLS" t JOIN "DBS" d ON t."DB_ID" = d."DB_ID" '
                        "WHERE d.\"NAME\" = 'etl_demo'")
            assert cur.fetchone()[0] == 10  # every demo table but landed_order_totals
    with psycopg2.connect(host="127.0.0.1", port=port, user="etl", dbname="dagster") as conn:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM runs WHERE status = 'SUCCESS'")
            assert cur.fetchone()[0] == 2


def test_every_server_and_a_runs_driver_listen_on_loopback_only(
    servers: Servers, dagster_dev: DagsterDev
) -> None:
    """What `etl-assets cluster up` and `make ui` start, and the Spark driver of a run launched
    from the UI, accept connections from this machine only: every listening socket of a process
    of this home (its environment names it) is on 127.0.0.1 or ::1."""
    home = str(servers.home)

    def ours(process: psutil.Process) -> bool:
        return process.environ().get("ETL_ASSETS_HOME") == home

    known = {int(servers.env[f"ETL_ASSETS_PORT_{name}"])
             for name in ("PG", "MASTER", "MASTER_UI", "WORKER_UI", "THRIFT")}
    known.add(int(dagster_dev.url.rsplit(":", 1)[1]))
    # psutil reads /proc process by process, and may miss a socket while processes come and go:
    # look until every server's own port has been seen, so the check cannot pass on nothing.
    seen = listeners(ours)
    deadline = time.monotonic() + 60
    while not known <= {s.port for s in seen}:
        assert time.monotonic() < deadline, (sorted(known), sorted(seen, key=str))
        time.sleep(1)
        seen |= listeners(ours)
    servers_pids = {s.pid for s in seen}
    run_id = dagster_dev.launch("customers_dim")
    while dagster_dev.run(run_id)["status"] not in FINISHED:
        seen |= listeners(ours)
        time.sleep(0.5)
    assert dagster_dev.run(run_id)["status"] == "SUCCESS"
    drivers = {s for s in seen if s.pid not in servers_pids and "java" in s.process}
    assert drivers, "the run's Spark driver was never seen listening"
    exposed = sorted(f"{s.address}:{s.port} ({s.process})" for s in seen if not s.loopback)
    assert not exposed, "listening beyond this machine:\n" + "\n".join(exposed)


def test_four_concurrent_runs_succeed_and_one_table_has_one_writer(
    servers: Servers, dagster_dev: DagsterDev
) -> None:
    run_ids = [dagster_dev.launch(asset) for asset in
               ("clean_orders", "customers_dim", "slow_copy", "clean_orders")]
    runs = dagster_dev.wait(run_ids)
    assert [runs[r]["status"] for r in run_ids] == ["SUCCESS"] * 4, runs

    # Runs of different assets ran at the same time ...
    windows = [(runs[r]["startTime"], runs[r]["endTime"]) for r in run_ids]
    most = max(sum(start <= t < end for start, end in windows) for t, _ in windows)
    assert most >= 3, windows
    # ... and the two writers of clean_orders took turns (its pool admits one step at a time).
    steps = [next(s for s in runs[r]["stepStats"] if s["stepKey"] == "clean_orders")
             for r in (run_ids[0], run_ids[3])]
    assert all(s["status"] == "SUCCESS" for s in steps)
    first, second = ((s["startTime"], s["endTime"]) for s in steps)
    assert not overlap(first, second), steps

    logged = servers.query("SELECT run_id, asset, status FROM etl_log.run_log WHERE run_id IN "
                           f"({', '.join(repr(r) for r in run_ids)})")
    assert sorted((row["run_id"], row["asset"]) for row in logged) == sorted(
        zip(run_ids, ["clean_orders", "customers_dim", "slow_copy", "clean_orders"]))
    assert {row["status"] for row in logged} == {"SUCCESS"}


def _kill_tree(pid: int) -> int:
    process = psutil.Process(pid)
    processes = [*process.children(recursive=True), process]
    for p in processes:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    return len(processes)


def test_killed_run_mid_write_keeps_the_table_logs_failed_and_reruns(
    servers: Servers, dagster_dev: DagsterDev
) -> None:
    (before,) = servers.query("SELECT count(*) AS n, max(sleep_ms) AS ms FROM etl_faults.slow_copy")
    assert before == {"n": "20", "ms": "0"}  # written by the concurrent runs above

    write_slow_input(servers.home, rows=400, sleep_ms=1000)
    run_id = dagster_dev.launch("slow_copy")
    loads = servers.home / "warehouse" / "etl_faults.db" / "slow_copy__loads"
    deadline = time.monotonic() + 300
    while not list(loads.glob("*/_temporary")):  # the new load's files are being written
        assert dagster_dev.run(run_id)["status"] not in FINISHED, dagster_dev.run(run_id)
        assert time.monotonic() < deadline, "the slow load never started writing"
        time.sleep(1)
    (pid,) = {int(m.group(1)) for text in dagster_dev.messages(run_id)
              for m in [re.search(r"Started process for run \(pid: (\d+)\)", text)] if m}
    assert _kill_tree(pid) >= 2  # the run worker and at least its step process

    (run,) = dagster_dev.wait([run_id], timeout_s=120).values()
    assert run["status"] == "FAILURE"
    (after,) = servers.query("SELECT count(*) AS n, max(sleep_ms) AS ms FROM etl_faults.slow_copy")
    assert after == before  # the table still points at the previous load's folder

    # The rerun waits for the pool slot the killed step held (freed by the daemon) ...
    write_slow_input(servers.home, rows=30, sleep_ms=0)
    rerun = dagster_dev.launch("slow_copy")
    # ... while the run-failure sensor (30 s interval) launches the alert job (its run key names
    # the failed run), which writes the FAILED row.
    alert_run = dagster_dev.wait_for_run_tagged("dagster/run_key", f"run-{run_id}")
    assert alert_run["status"] == "SUCCESS", alert_run
    failed = servers.query("SELECT asset, status, error_message FROM etl_log.run_log "
                           f"WHERE run_id = '{run_id}'")
    assert [(row["asset"], row["status"]) for row in failed] == [("slow_copy", "FAILED")]
    assert failed[0]["error_message"]  # what Dagster said about the run

    assert dagster_dev.wait([rerun])[rerun]["status"] == "SUCCESS"
    (final,) = servers.query("SELECT count(*) AS n FROM etl_faults.slow_copy")
    assert final == {"n": "30"}
