"""Real servers on 127.0.0.1 for the `cluster` profile, started and stopped idempotently.

    etl-assets cluster up       PostgreSQL, Spark master + worker, Spark Thrift Server
    etl-assets cluster down     stop them all (state stays under ETL_ASSETS_HOME/cluster)
    etl-assets cluster status   what runs, on which port

- PostgreSQL: a throwaway cluster (`initdb`/`pg_ctl`) holding two databases, `metastore` (the
  Hive metastore, through DataNucleus and the JDBC driver of `libpostgresql-jdbc-java`) and
  `dagster` (Dagster's run, event and schedule storage, through dagster-postgres). Run as the
  `postgres` user when we are root, because PostgreSQL refuses to run as root.
- Spark standalone: `org.apache.spark.deploy.master.Master` and one `...worker.Worker`, started
  with the pyspark wheel's own `sbin/spark-daemon.sh`.
- Spark Thrift Server (`HiveThriftServer2`) on the same metastore and warehouse, so beeline and
  BI tools query the target tables and `etl_log.*` over JDBC.

Ports are picked once (the usual ones when free, else any free port) and written with every
other connection setting to `<home>/cluster/cluster.env`, which the `cluster` profile reads
(`etl_assets.core.settings`) and the Makefile includes. Missing Debian packages (PostgreSQL, its
JDBC driver) are installed with apt-get when running as root.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyspark

from etl_assets.core.settings import (
    CLUSTER_ENV_FILE,
    PACKAGE_DIR,
    Settings,
    load_settings,
)
from etl_assets.core.settings import (
    read_env_file as read_env,
)

SPARK_HOME = Path(pyspark.__file__).resolve().parent
MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
THRIFT_CLASS = "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2"
PG_USER = "etl"
PG_DATABASES = ("metastore", "dagster")
DEFAULT_PORTS = {"pg": 5433, "master": 7077, "master_ui": 8080, "worker_ui": 8081,
                 "thrift": 10000}
INSTANCE_YAML = PACKAGE_DIR.parent / "dagster-cluster.yaml"

# Creates the metastore tables that DataNucleus would otherwise create lazily, on first use,
# possibly in two run processes at once. Run through beeline, so it also proves the Thrift
# Server answers.
METASTORE_WARMUP = """
CREATE DATABASE IF NOT EXISTS etl_assets_warmup;
CREATE TABLE IF NOT EXISTS etl_assets_warmup.t (v INT, s STRING) USING parquet PARTITIONED BY (d STRING);
INSERT INTO etl_assets_warmup.t PARTITION (d = 'x') VALUES (1, 'a');
ANALYZE TABLE etl_assets_warmup.t COMPUTE STATISTICS FOR ALL COLUMNS;
ALTER TABLE etl_assets_warmup.t SET TBLPROPERTIES ('etl_assets' = 'warmup');
CREATE FUNCTION IF NOT EXISTS etl_assets_warmup.f AS 'org.apache.hadoop.hive.ql.udf.UDFAscii';
DROP FUNCTION IF EXISTS etl_assets_warmup.f;
DROP DATABASE etl_assets_warmup CASCADE;
"""


class ClusterError(RuntimeError):
    """A server did not start or stop; the message names it and its log file."""


@dataclass(frozen=True)
class Cluster:
    """Folders and ports of the servers of one ETL_ASSETS_HOME."""

    settings: Settings

    @property
    def root(self) -> Path:
        return self.settings.home / "cluster"

    @property
    def env_file(self) -> Path:
        return self.root / CLUSTER_ENV_FILE

    @property
    def pg_dir(self) -> Path:
        return self.root / "pg"

    @property
    def spark_dir(self) -> Path:
        return self.root / "spark"

    @property
    def dagster_home(self) -> Path:
        return self.settings.home / "dagster-cluster"

    def ports(self) -> dict[str, int]:
        """The ports written at the first `up`, or free ones chosen now."""
        saved = read_env(self.env_file)
        ports: dict[str, int] = {}
        for name, default in DEFAULT_PORTS.items():
            key = f"ETL_ASSETS_PORT_{name.upper()}"
            if key in saved:
                ports[name] = int(saved[key])
            else:
                ports[name] = default if port_free(default) else free_port()
        return ports


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_for(what: str, ready, timeout_s: float, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.5)
    where = f"; see {log}" if log else ""
    raise ClusterError(f"{what} not ready after {timeout_s:.0f} s{where}")


def run(cmd: Sequence[str], *, env: dict[str, str] | None = None, check: bool = True,
        user: str | None = None) -> subprocess.CompletedProcess[str]:
    if user:
        cmd = ["runuser", "-u", user, "--", *cmd]
    proc = subprocess.run(list(cmd), env=env, text=True, capture_output=True)
    if check and proc.returncode != 0:
        raise ClusterError(f"{' '.join(cmd)} failed ({proc.returncode}):\n"
                           f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return proc


def say(message: str) -> None:
    print(f"[cluster] {message}", flush=True)


# --- Debian packages --------------------------------------------------------------------------

def pg_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return Path(found[-1]).parent if found else None


def can_apt_install() -> bool:
    """Whether `apt_install` can work here: root, with apt-get on the PATH."""
    return os.geteuid() == 0 and shutil.which("apt-get") is not None


def apt_install(packages: Sequence[str]) -> None:
    """Install Debian packages with apt-get (as root); `apt-get update` only when needed.

    Raises:
        ClusterError: Not root or no apt-get (naming the command to run by hand), or apt-get
            failed.
    """
    if not packages:
        return
    if not can_apt_install():
        raise ClusterError(f"missing Debian packages {list(packages)}: run "
                           f"`sudo apt-get install -y {' '.join(packages)}`")
    say(f"installing {' '.join(packages)} with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if run(["apt-get", "install", "-y", "-q", *packages], env=env, check=False).returncode:
        run(["apt-get", "update", "-q"], env=env)
        run(["apt-get", "install", "-y", "-q", *packages], env=env)


def ensure_packages(settings: Settings) -> Path:
    """PostgreSQL's server binaries and the JDBC driver, installed from Debian when missing."""
    missing = []
    if pg_bindir() is None:
        missing.append("postgresql")
    if not Path(settings.jdbc_driver_jar).exists():
        missing.append("libpostgresql-jdbc-java")
    apt_install(missing)
    bindir = pg_bindir()
    if bindir is None:
        raise ClusterError("PostgreSQL's initdb is still missing after installing postgresql")
    return bindir


# --- PostgreSQL -------------------------------------------------------------------------------

def pg_owner() -> str | None:
    """The user PostgreSQL runs as: ourselves, or `postgres` when we are root."""
    return "postgres" if os.geteuid() == 0 else None


def pg_data_parent(cluster: Cluster, owner: str | None) -> Path:
    """`<home>/cluster/pg`, or a folder the `postgres` user can reach, linked from there.

    As root, the home may sit below a folder only root may enter (mktemp's 0700 folders): the
    data then lives in /var/tmp and `<home>/cluster/pg` is a symlink to it.
    """
    link = cluster.pg_dir
    if link.exists():
        return link.resolve()
    link.parent.mkdir(parents=True, exist_ok=True)
    if owner is None or run(["test", "-x", str(link.parent)], user=owner, check=False).returncode == 0:
        link.mkdir()
        target = link
    else:
        digest = hashlib.sha256(str(cluster.settings.home).encode()).hexdigest()[:12]
        target = Path("/var/tmp") / f"etl_assets_pg_{digest}"
        target.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target)
        say(f"{link.parent} is closed to the postgres user: data in {target}")
    if owner:
        shutil.chown(target, user=owner)
    return target


def pg_running(bindir: Path, data: Path, owner: str | None) -> bool:
    data = data.resolve()  # the postgres user may not pass through the link's folder
    if not (data / "PG_VERSION").exists():
        return False
    return run([str(bindir / "pg_ctl"), "-D", str(data), "status"], user=owner,
               check=False).returncode == 0


def pg_up(cluster: Cluster, bindir: Path, port: int) -> None:
    owner = pg_owner()
    parent = pg_data_parent(cluster, owner)
    data, log = parent / "data", parent / "postgresql.log"
    if pg_running(bindir, data, owner):
        say(f"PostgreSQL already running on 127.0.0.1:{port}")
    else:
        if not (data / "PG_VERSION").exists():
            run([str(bindir / "initdb"), "-D", str(data), "-U", PG_USER, "-A", "trust",
                 "-E", "UTF8", "--no-locale"], user=owner)
        options = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''"
        run([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60",
             "-o", options, "start"], user=owner)
        say(f"PostgreSQL started on 127.0.0.1:{port} (data {data})")
    import psycopg2  # dagster-postgres' driver

    conn = psycopg2.connect(host="127.0.0.1", port=port, user=PG_USER, dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        for name in PG_DATABASES:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()


def pg_down(cluster: Cluster) -> None:
    bindir, owner = pg_bindir(), pg_owner()
    data = cluster.pg_dir / "data"
    if bindir and pg_running(bindir, data, owner):
        run([str(bindir / "pg_ctl"), "-D", str(data.resolve()), "-m", "fast", "-w", "stop"],
            user=owner)
        say("PostgreSQL stopped")


# --- Spark ------------------------------------------------------------------------------------

def spark_env(cluster: Cluster) -> dict[str, str]:
    logs = cluster.spark_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "SPARK_HOME": str(SPARK_HOME),
        "SPARK_LOG_DIR": str(logs),
        "SPARK_PID_DIR": str(cluster.spark_dir / "pids"),
        "SPARK_IDENT_STRING": "etl_assets",
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOCAL_HOSTNAME": "127.0.0.1",
        "SPARK_WORKER_DIR": str(cluster.spark_dir / "work"),
        "PYSPARK_PYTHON": sys.executable,
    }


def daemon(cluster: Cluster, action: str, cls: str, *args: str) -> subprocess.CompletedProcess:
    script = SPARK_HOME / "sbin" / "spark-daemon.sh"
    return run(["bash", str(script), action, cls, "1", *args], env=spark_env(cluster),
               check=False)


def daemon_running(cluster: Cluster, cls: str) -> bool:
    return daemon(cluster, "status", cls).returncode == 0


def daemon_log(cluster: Cluster, cls: str) -> Path:
    logs = sorted((cluster.spark_dir / "logs").glob(f"*{cls}*.out"))
    return logs[-1] if logs else cluster.spark_dir / "logs"


def alive_workers(ui_port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=2) as resp:
            return int(json.load(resp).get("aliveworkers", 0))
    except (OSError, ValueError):
        return 0


def spark_up(cluster: Cluster, ports: dict[str, int], settings: Settings) -> None:
    master_url = settings.spark_master
    if daemon_running(cluster, MASTER_CLASS):
        say(f"Spark master already running at {master_url}")
    else:
        daemon(cluster, "start", MASTER_CLASS, "--host", "127.0.0.1",
               "--port", str(ports["master"]), "--webui-port", str(ports["master_ui"]))
        wait_for("Spark master", lambda: port_open(ports["master"]), 60,
                 daemon_log(cluster, MASTER_CLASS))
        say(f"Spark master started at {master_url} (UI http://127.0.0.1:{ports['master_ui']})")
    if daemon_running(cluster, WORKER_CLASS):
        say("Spark worker already running")
    else:
        daemon(cluster, "start", WORKER_CLASS, "--host", "127.0.0.1",
               "--webui-port", str(ports["worker_ui"]),
               "--cores", str(settings.worker_cores), "--memory", settings.worker_memory,
               "--work-dir", str(cluster.spark_dir / "work"), master_url)
        wait_for("Spark worker registration", lambda: alive_workers(ports["master_ui"]) > 0,
                 60, daemon_log(cluster, WORKER_CLASS))
        say(f"Spark worker started ({settings.worker_cores} cores, {settings.worker_memory})")


def thrift_up(cluster: Cluster, ports: dict[str, int], settings: Settings) -> None:
    if daemon_running(cluster, THRIFT_CLASS) and port_open(ports["thrift"]):
        say(f"Thrift Server already running on 127.0.0.1:{ports['thrift']}")
        return
    args = thrift_submit_args(settings, cluster.spark_dir / "thrift-secrets.conf")
    args += ["--hiveconf", f"hive.server2.thrift.port={ports['thrift']}",
             "--hiveconf", "hive.server2.thrift.bind.host=127.0.0.1"]
    daemon(cluster, "submit", THRIFT_CLASS, *args)
    wait_for("Spark Thrift Server", lambda: port_open(ports["thrift"]), 180,
             daemon_log(cluster, THRIFT_CLASS))
    say(f"Thrift Server started: jdbc:hive2://127.0.0.1:{ports['thrift']}/default")


def thrift_submit_args(settings: Settings, secrets_file: Path) -> list[str]:
    """spark-submit's options for the Thrift Server, the metastore password kept off them.

    Every `--conf` shows in `ps` and in the daemon's log (`Spark Command: ...`), so the password
    goes to `secrets_file` instead, readable by its owner only (mode 0600), given with
    `--properties-file`. Spark trims the values it reads there: a password that begins or ends
    with whitespace does not survive.
    """
    from etl_assets.engine.session import METASTORE_PASSWORD_KEY, spark_config

    conf = spark_config(settings)
    conf.update({"spark.app.name": "etl_assets-thrift", "spark.cores.max": "1",
                 "spark.executor.memory": "512m"})
    args = ["--master", conf.pop("spark.master")]
    for key, value in conf.items():
        args += ["--conf", f"{key}={value}"]
    if settings.metastore_password:
        secrets_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(secrets_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # a file left by an older version may have had another mode
        # java.util.Properties syntax: backslashes and line breaks escaped.
        value = (settings.metastore_password.replace("\\", "\\\\")
                 .replace("\n", "\\n").replace("\r", "\\r"))
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(f"spark.hadoop.{METASTORE_PASSWORD_KEY}={value}\n")
        args += ["--properties-file", str(secrets_file)]
    return args


def beeline(settings: Settings, sql: str, *, port: int | None = None) -> str:
    """Run SQL through the Thrift Server with the wheel's beeline; returns its CSV output."""
    port = port or settings.thrift_port
    cmd = ["bash", str(SPARK_HOME / "bin" / "beeline"), "-u",
           f"jdbc:hive2://127.0.0.1:{port}/default", "-n", os.environ.get("USER", "etl"),
           "--silent=true", "--showHeader=true", "--outputformat=csv2", "-e", sql]
    proc = run(cmd, env={**os.environ, "SPARK_HOME": str(SPARK_HOME)}, check=False)
    if proc.returncode != 0 or "Error:" in proc.stdout + proc.stderr:
        raise ClusterError(f"beeline failed: {proc.stdout[-1500:]}{proc.stderr[-1500:]}")
    # beeline echoes its prompt ("0: jdbc:hive2://...> ") before each statement's output.
    return re.sub(r"(?m)^\d+: jdbc:hive2://\S+> ", "", proc.stdout)


# --- The whole cluster ------------------------------------------------------------------------

def write_env(cluster: Cluster, ports: dict[str, int]) -> None:
    pg = f"127.0.0.1:{ports['pg']}"
    values = {
        **{f"ETL_ASSETS_PORT_{k.upper()}": str(v) for k, v in ports.items()},
        "SPARK_MASTER": f"spark://127.0.0.1:{ports['master']}",
        "ETL_ASSETS_METASTORE_JDBC_URL": f"jdbc:postgresql://{pg}/metastore",
        "ETL_ASSETS_METASTORE_USER": PG_USER,
        "ETL_ASSETS_METASTORE_PASSWORD": PG_USER,
        "ETL_ASSETS_DAGSTER_PG_URL": f"postgresql+psycopg2://{PG_USER}:{PG_USER}@{pg}/dagster",
        "ETL_ASSETS_THRIFT_PORT": str(ports["thrift"]),
    }
    cluster.root.mkdir(parents=True, exist_ok=True)
    lines = ["# Written by `etl-assets cluster up`; read by the cluster profile and the Makefile."]
    lines += [f"export {k}={v}" for k, v in values.items()]
    # It holds the passwords: readable by its owner only.
    fd = os.open(cluster.env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")


def dagster_instance_up(cluster: Cluster) -> None:
    """Link the cluster instance config and create Dagster's tables in PostgreSQL."""
    home = cluster.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    link = home / "dagster.yaml"
    if not link.exists():
        link.symlink_to(INSTANCE_YAML)
    env = {**os.environ, **read_env(cluster.env_file), "DAGSTER_HOME": str(home)}
    dagster = Path(sys.executable).parent / "dagster"
    run([str(dagster), "instance", "migrate"], env=env)
    say(f"Dagster instance on PostgreSQL (DAGSTER_HOME={home})")


def up(home_settings: Settings) -> Settings:
    """Start every server that is not running; returns the cluster profile's settings."""
    started = time.monotonic()
    cluster = Cluster(home_settings)
    bindir = ensure_packages(home_settings)
    ports = cluster.ports()
    write_env(cluster, ports)
    settings = load_settings({**os.environ, "ETL_PROFILE": "cluster",
                              **read_env(cluster.env_file),
                              "ETL_ASSETS_HOME": str(home_settings.home)})
    timings = {}
    for name, step in (("postgresql", lambda: pg_up(cluster, bindir, ports["pg"])),
                       ("spark", lambda: spark_up(cluster, ports, settings)),
                       ("thrift", lambda: thrift_up(cluster, ports, settings)),
                       ("dagster", lambda: dagster_instance_up(cluster))):
        t0 = time.monotonic()
        step()
        timings[name] = round(time.monotonic() - t0, 1)
    t0 = time.monotonic()
    beeline(settings, METASTORE_WARMUP, port=ports["thrift"])
    timings["metastore_warmup"] = round(time.monotonic() - t0, 1)
    say(f"up in {time.monotonic() - started:.1f} s; seconds per server: {timings}")
    say(f"use it: source {cluster.env_file} && export ETL_PROFILE=cluster")
    return settings


def down(home_settings: Settings) -> None:
    """Stop whatever runs; safe to call when nothing does."""
    cluster = Cluster(home_settings)
    for cls in (THRIFT_CLASS, WORKER_CLASS, MASTER_CLASS):
        if daemon_running(cluster, cls):
            daemon(cluster, "stop", cls)
            say(f"stopped {cls.rsplit('.', 1)[-1]}")
    pg_down(cluster)


def status(home_settings: Settings) -> dict[str, bool]:
    cluster = Cluster(home_settings)
    ports = cluster.ports()
    bindir = pg_bindir()
    state = {
        "postgresql": bool(bindir) and pg_running(bindir, cluster.pg_dir / "data", pg_owner()),
        "spark_master": daemon_running(cluster, MASTER_CLASS),
        "spark_worker": daemon_running(cluster, WORKER_CLASS),
        "thrift_server": daemon_running(cluster, THRIFT_CLASS) and port_open(ports["thrift"]),
    }
    for name, running in state.items():
        print(f"{name:14} {'running' if running else 'stopped'}")
    return state


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="etl-assets cluster", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["up", "down", "status"])
    args = parser.parse_args(argv)
    settings = load_settings({**os.environ, "ETL_PROFILE": "embedded"})
    try:
        if args.action == "up":
            up(settings)
        elif args.action == "down":
            down(settings)
        else:
            return 0 if all(status(settings).values()) else 3
    except ClusterError as err:
        print(f"etl-assets cluster {args.action}: {err}", file=sys.stderr)
        return 1
    return 0
