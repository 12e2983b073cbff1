"""Where the project's state lives and which profile runs, decided in one place.

Every environment variable the project reads is read here, so the rest of the code takes a
`Settings` value and never calls `os.environ` itself.

- `ETL_ASSETS_HOME`: folder holding all embedded state (Derby metastore, warehouse, Dagster
  storage). Default: `.etl_home` beside the package's source tree (git-ignored).
- `ETL_PROFILE`: `embedded` (default: local Spark, Derby, SQLite, in-process executor) or
  `cluster` (Spark standalone, PostgreSQL metastore and Dagster storage, in-process executor).
  The cluster profile takes its defaults from `<home>/cluster/cluster.env`, written by
  `etl-assets cluster up`; variables set in the environment win over the file.
- `SPARK_MASTER`: Spark master URL (default `local[*]`; `spark://host:7077`, `yarn` or
  `k8s://https://host:443` are the same setting).
- `ETL_ASSETS_METASTORE_URI`: a remote Hive metastore (`thrift://host:9083`); replaces Derby.
- `ETL_ASSETS_METASTORE_JDBC_URL` (+ `_USER`, `_PASSWORD`): a metastore database reached over
  JDBC (`jdbc:postgresql://host:5432/metastore`); replaces Derby. `ETL_ASSETS_JDBC_DRIVER_JAR`
  is its driver (default `/usr/share/java/postgresql.jar`, Debian's libpostgresql-jdbc-java).
  The password is a secret: Dagster resolves it from the environment when a run's Spark
  session starts (`dg.EnvVar`), so it never becomes a configured value (`etl_assets.engine.session`).
- `ETL_ASSETS_METASTORE_LOCK_TIMEOUT`: seconds a process waits for another one holding the
  embedded (Derby) metastore before it gives up (default: unset, wait as long as it takes;
  `0` fails at once). See `etl_assets.engine.metastore_lock`.
- `ETL_ASSETS_EXECUTOR`: `in_process` (the default on both profiles: one Spark application per
  run, runs still side by side) or `multiprocess` (each step its own process and Spark
  application, paying Spark's start-up per step); `ETL_ASSETS_MAX_CONCURRENT_STEPS` (2) bounds
  the latter.
- `ETL_ASSETS_SPARK_CORES_MAX` (2), `ETL_ASSETS_EXECUTOR_MEMORY` (1g): each run's share of a
  Spark cluster; `ETL_ASSETS_WORKER_CORES` (6), `ETL_ASSETS_WORKER_MEMORY` (8g): the worker
  that `etl-assets cluster up` starts.
- `ETL_ASSETS_WAREHOUSE_DIR`: the Spark SQL warehouse (default `<home>/warehouse`).
- `ETL_ASSETS_LOG_DB`: the Hive database of the log tables (default `etl_log`).
- `ETL_ASSETS_DEFS`: a defs folder to load instead of the package's `etl_assets/defs/`
  (`<domain>/defs.yaml` and its Python table modules, the layout `dg` uses).
- `ETL_ASSETS_SHUFFLE_PARTITIONS`: `spark.sql.shuffle.partitions` (default 4, for 2 cores).
- `ETL_ENV`: `dev` (default), `staging` or `prod`, from `environments.yaml` (or the file
  named by `ETL_ASSETS_ENVIRONMENTS`): database name prefix/suffix and Spark settings.
- Alerts (see `AlertSettings`): `ETL_ASSETS_ALERT_WEBHOOK_URLS`, `ETL_ASSETS_ALERT_SMTP_*`,
  `ETL_ASSETS_UI_URL`, `ETL_ASSETS_ALERT_TIMEOUT_S`.
- `ETL_ASSETS_JVM_ARCHIVE`: folder of the Spark driver's class-data archive
  (`etl_assets.engine.jvm_archive`; default `<venv>/var/etl_assets`), or `off`.
- `ETL_ASSETS_HELD_RETENTION_DAYS` (7): days a load held back by its audit waits to be
  published or discarded before the table's next load removes it (never earlier).
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PACKAGE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_HOME = PACKAGE_DIR.parent / ".etl_home"
DEFAULT_DEFS = PACKAGE_DIR / "defs"
PROFILES = ("embedded", "cluster")
CLUSTER_ENV_FILE = "cluster.env"
JDBC_DRIVER_JAR = "/usr/share/java/postgresql.jar"
DEFAULT_ENVIRONMENTS = PACKAGE_DIR / "environments.yaml"
JVM_ARCHIVE_ENV = "ETL_ASSETS_JVM_ARCHIVE"
# Database names are split at their dot (`db.table`) and passed to catalog APIs as text, so
# they hold only the characters of a spec's database (letters, digits, _).
_NAME_PART = re.compile(r"^[A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Environment:
    """One entry of `environments.yaml`."""

    name: str = "dev"
    database_prefix: str = ""
    database_suffix: str = ""
    spark: dict[str, Any] = field(default_factory=dict)

    def database(self, name: str) -> str:
        """A spec's database name as it is called in this environment."""
        return f"{self.database_prefix}{name}{self.database_suffix}"


def load_environment(name: str, path: Path) -> Environment:
    """Read one environment from the environments file.

    Raises:
        ValueError: Unknown environment or malformed entry, naming the file and the choices.
    """
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if name not in raw:
        raise ValueError(f"ETL_ENV={name!r} is not in {path}; choose one of {sorted(raw)}")
    entry = raw[name] or {}
    unknown = set(entry) - {"database_prefix", "database_suffix", "spark"}
    if unknown:
        raise ValueError(f"{path}: environment '{name}': unknown fields {sorted(unknown)}")
    for key in ("database_prefix", "database_suffix"):
        if not _NAME_PART.match(str(entry.get(key) or "")):
            raise ValueError(f"{path}: environment '{name}': field '{key}': "
                             f"{entry[key]!r} may hold only letters, digits and _")
    return Environment(
        name=name,
        database_prefix=str(entry.get("database_prefix") or ""),
        database_suffix=str(entry.get("database_suffix") or ""),
        spark={str(k): str(v) for k, v in (entry.get("spark") or {}).items()},
    )


@dataclass(frozen=True)
class AlertSettings:
    """Alert channels, all from the environment (secrets included, never from files).

    - `ETL_ASSETS_ALERT_WEBHOOK_URLS`: comma-separated URLs that get a JSON POST per alert.
    - `ETL_ASSETS_ALERT_SMTP_HOST`, `..._PORT` (25), `..._FROM`, `..._TO` (comma-separated),
      `..._USER`, `..._PASSWORD`, `..._STARTTLS` (`true`): e-mail.
    - `ETL_ASSETS_SLACK_TOKEN`, `ETL_ASSETS_SLACK_CHANNEL`: Slack through dagster-slack
      (`ETL_ASSETS_SLACK_API_URL` points it at another Slack-compatible API).
    - `ETL_ASSETS_UI_URL`: base of links to the Dagster UI (default http://127.0.0.1:3000).
    - `ETL_ASSETS_ALERT_TIMEOUT_S` (10): seconds each channel gets for one delivery (a sensor
      tick's alerts), connecting and waiting for answers included; a channel that has not
      answered by then is recorded as failed, and the others are not kept waiting.
    """

    log_db: str = "etl_log"
    webhook_urls: tuple[str, ...] = ()
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str = "etl-assets@localhost"
    smtp_to: tuple[str, ...] = ()
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    slack_token: str | None = None
    slack_channel: str | None = None
    slack_api_url: str | None = None
    ui_url: str = "http://127.0.0.1:3000"
    timeout_s: float = 10.0


def load_alert_settings(environ: dict[str, str] | None = None) -> AlertSettings:
    """Read the alert channels from the environment."""
    env = os.environ if environ is None else environ

    def listed(name: str) -> tuple[str, ...]:
        return tuple(v.strip() for v in (env.get(name) or "").split(",") if v.strip())

    port = env.get("ETL_ASSETS_ALERT_SMTP_PORT") or "25"
    if not port.isdigit():
        raise ValueError(f"ETL_ASSETS_ALERT_SMTP_PORT={port!r} must be a port number")
    timeout = env.get("ETL_ASSETS_ALERT_TIMEOUT_S") or "10"
    try:
        timeout_s = float(timeout)
    except ValueError:
        timeout_s = 0.0
    if not 0 < timeout_s < float("inf"):
        raise ValueError(f"ETL_ASSETS_ALERT_TIMEOUT_S={timeout!r} must be a positive number "
                         "of seconds")
    return AlertSettings(
        log_db=load_settings(environ).log_db,
        webhook_urls=listed("ETL_ASSETS_ALERT_WEBHOOK_URLS"),
        smtp_host=env.get("ETL_ASSETS_ALERT_SMTP_HOST") or None,
        smtp_port=int(port),
        smtp_from=env.get("ETL_ASSETS_ALERT_SMTP_FROM") or "etl-assets@localhost",
        smtp_to=listed("ETL_ASSETS_ALERT_SMTP_TO"),
        smtp_user=env.get("ETL_ASSETS_ALERT_SMTP_USER") or None,
        smtp_password=env.get("ETL_ASSETS_ALERT_SMTP_PASSWORD") or None,
        smtp_starttls=(env.get("ETL_ASSETS_ALERT_SMTP_STARTTLS") or "").lower() == "true",
        slack_token=env.get("ETL_ASSETS_SLACK_TOKEN") or None,
        slack_channel=env.get("ETL_ASSETS_SLACK_CHANNEL") or None,
        slack_api_url=env.get("ETL_ASSETS_SLACK_API_URL") or None,
        ui_url=(env.get("ETL_ASSETS_UI_URL") or "http://127.0.0.1:3000").rstrip("/"),
        timeout_s=timeout_s,
    )


@dataclass(frozen=True)
class Settings:
    """The deployment settings, read from the environment by `load_settings`."""

    home: Path
    profile: str
    spark_master: str
    metastore_uri: str | None
    warehouse_dir: str
    log_db: str
    defs_dir: Path  # the defs folder: <domain>/defs.yaml and Python table modules
    shuffle_partitions: int
    environment: Environment = field(default_factory=Environment)
    metastore_jdbc_url: str | None = None
    metastore_user: str | None = None
    metastore_password: str | None = None
    jdbc_driver_jar: str = JDBC_DRIVER_JAR
    executor: str = "in_process"
    max_concurrent_steps: int = 2
    spark_cores_max: int = 2
    executor_memory: str = "1g"
    worker_cores: int = 6
    worker_memory: str = "8g"
    thrift_port: int = 10000
    metastore_lock_timeout_s: float | None = None
    held_retention_days: float = 7.0  # a held load not published or discarded is then removed
    jvm_archive_dir: Path | None = None  # the driver's class archive (None: not used)

    @property
    def dagster_home(self) -> Path:
        """Folder of the Dagster instance (SQLite storage, logs) under the home folder."""
        return self.home / "dagster"

    @property
    def embedded_metastore(self) -> Path | None:
        """Derby's folder (`<home>/metastore_db`) when no shared metastore is configured."""
        if self.metastore_uri or self.metastore_jdbc_url:
            return None
        return self.home / "metastore_db"


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Read the settings from the environment.

    Args:
        environ: Mapping to read instead of `os.environ` (tests).

    Raises:
        ValueError: On an unknown profile, a non-integer shuffle partition count or a log
            database name other than letters, digits and _, naming the variable and the
            accepted values.
    """
    env = dict(os.environ if environ is None else environ)
    home = Path(env.get("ETL_ASSETS_HOME") or DEFAULT_HOME).expanduser().resolve()
    profile = env.get("ETL_PROFILE") or "embedded"
    if profile not in PROFILES:
        raise ValueError(f"ETL_PROFILE={profile!r} is not a known profile; use one of {PROFILES}")
    if profile == "cluster":
        env = {**read_env_file(home / "cluster" / CLUSTER_ENV_FILE), **env}
    shuffle = _positive(env, "ETL_ASSETS_SHUFFLE_PARTITIONS", 4)
    # In-process on the cluster too: a multiprocess step starts its own Spark application
    # (about 20 s on 2 cores), which made the cluster demo 4.7x the embedded one (issue 23).
    executor = env.get("ETL_ASSETS_EXECUTOR") or "in_process"
    if executor not in ("in_process", "multiprocess"):
        raise ValueError(f"ETL_ASSETS_EXECUTOR={executor!r}: use in_process or multiprocess")
    environments = Path(env.get("ETL_ASSETS_ENVIRONMENTS") or DEFAULT_ENVIRONMENTS)
    environment = load_environment(env.get("ETL_ENV") or "dev", environments)
    log_db = env.get("ETL_ASSETS_LOG_DB") or "etl_log"
    if not _NAME_PART.match(log_db):
        raise ValueError(f"ETL_ASSETS_LOG_DB={log_db!r} may hold only letters, digits and _ "
                         "(it names a Hive database)")
    defs = Path(env.get("ETL_ASSETS_DEFS") or DEFAULT_DEFS).resolve()
    return Settings(
        home=home,
        profile=profile,
        spark_master=env.get("SPARK_MASTER") or "local[*]",
        metastore_uri=env.get("ETL_ASSETS_METASTORE_URI") or None,
        warehouse_dir=env.get("ETL_ASSETS_WAREHOUSE_DIR") or str(home / "warehouse"),
        log_db=environment.database(log_db),
        defs_dir=defs,
        shuffle_partitions=shuffle,
        environment=environment,
        metastore_jdbc_url=env.get("ETL_ASSETS_METASTORE_JDBC_URL") or None,
        metastore_user=env.get("ETL_ASSETS_METASTORE_USER") or None,
        metastore_password=env.get("ETL_ASSETS_METASTORE_PASSWORD") or None,
        jdbc_driver_jar=env.get("ETL_ASSETS_JDBC_DRIVER_JAR") or JDBC_DRIVER_JAR,
        executor=executor,
        max_concurrent_steps=_positive(env, "ETL_ASSETS_MAX_CONCURRENT_STEPS", 2),
        spark_cores_max=_positive(env, "ETL_ASSETS_SPARK_CORES_MAX", 2),
        executor_memory=env.get("ETL_ASSETS_EXECUTOR_MEMORY") or "1g",
        worker_cores=_positive(env, "ETL_ASSETS_WORKER_CORES", 6),
        worker_memory=env.get("ETL_ASSETS_WORKER_MEMORY") or "8g",
        thrift_port=_positive(env, "ETL_ASSETS_THRIFT_PORT", 10000),
        metastore_lock_timeout_s=_seconds(env, "ETL_ASSETS_METASTORE_LOCK_TIMEOUT"),
        held_retention_days=_days(env, "ETL_ASSETS_HELD_RETENTION_DAYS", 7.0),
        jvm_archive_dir=jvm_archive_folder(env),
    )


def jvm_archive_folder(environ: dict[str, str] | None = None) -> Path | None:
    """Folder of the Spark driver's class archive: `ETL_ASSETS_JVM_ARCHIVE`, None when `off`.

    Default: `<venv>/var/etl_assets` in a virtual environment, where the archive sits beside
    the pyspark jars it was made from and goes when they go; else `$XDG_CACHE_HOME/etl_assets`
    (`~/.cache/etl_assets`).
    """
    env = os.environ if environ is None else environ
    value = (env.get(JVM_ARCHIVE_ENV) or "").strip()
    if value.lower() == "off":
        return None
    if value:
        return Path(value).expanduser().resolve()
    if sys.prefix != sys.base_prefix:
        return Path(sys.prefix) / "var" / "etl_assets"
    return Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "etl_assets"


def _days(env: dict[str, str], name: str, default: float) -> float:
    """A positive number of days (fractions allowed), the default when unset."""
    value = env.get(name) or str(default)
    try:
        days = float(value)
    except ValueError:
        days = -1.0
    if not 0 < days < float("inf"):
        raise ValueError(f"{name}={value!r} must be a positive number of days")
    return days


def _positive(env: dict[str, str], name: str, default: int) -> int:
    value = env.get(name) or str(default)
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{name}={value!r} must be a positive integer")
    return int(value)


def _seconds(env: dict[str, str], name: str) -> float | None:
    """A non-negative number of seconds, or None when the variable is unset or empty."""
    value = env.get(name) or ""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:  # also refuses nan
        raise ValueError(f"{name}={value!r} must be a number of seconds (0 or more)")
    return seconds


def read_env_file(path: Path) -> dict[str, str]:
    """`export KEY=value` lines of `cluster.env` (valid shell and make syntax)."""
    if not path.exists():
        return {}
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.removeprefix("export ").partition("=")
            values[key.strip()] = value.strip()
    return values
