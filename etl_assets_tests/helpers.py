"""Helpers shared by the Spark tests (imported, never collected; fixtures live in conftest)."""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import psutil
import requests

from etl_assets.core.settings import Settings
from etl_assets.core.specs import DEFS_FILE, Project, domain_document
from etl_assets.definitions import build_resources
from etl_assets.orchestration.domains import build_assets
from etl_assets.tools.cluster import apt_install, can_apt_install, free_port

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ARTIFACTS = ROOT / "etl_assets_tests" / "artifacts"  # screenshots etc. (git-ignored)
CHROMIUM = Path("/usr/bin/chromium")
# What works on these machines (no GPU, no network but the package registries, root).
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"]


def ensure_chromium() -> Path | None:
    """Debian's chromium, installed with apt-get when missing and possible (root); else None."""
    if not CHROMIUM.exists() and can_apt_install():
        apt_install(["chromium"])
    return CHROMIUM if CHROMIUM.exists() else None


def materialize_project(
    project: Project,
    settings: Settings,
    instance: dg.DagsterInstance,
    selection: list[str] | None = None,
    raise_on_error: bool = True,
    partition_key: str | None = None,
    tags: dict[str, str] | None = None,
) -> dg.ExecuteInProcessResult:
    """Materialize a project's assets in-process, as `dg launch` would."""
    return dg.materialize(
        build_assets(project),
        resources=build_resources(settings),
        instance=instance,
        selection=selection,
        raise_on_error=raise_on_error,
        partition_key=partition_key,
        tags=tags,
    )


def write_spec(folder: Path, text: str, name: str = "domain.yaml") -> Path:
    """Write a domain (its spec's YAML text) into a defs folder as `<stem of name>/defs.yaml`,
    a `HiveTables` component, and return the file's path."""
    path = folder / Path(name).stem / DEFS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(domain_document(text), encoding="utf-8")
    return path


def execute_checks_only(
    project: Project, settings: Settings, instance: dg.DagsterInstance, asset: str
) -> dg.ExecuteInProcessResult:
    """Run only the checks of one asset (as the UI's "Execute checks" or a checks-only job)."""
    defs = dg.Definitions(
        assets=build_assets(project),
        resources=build_resources(settings),
        jobs=[dg.define_asset_job(
            "checks_only", selection=dg.AssetSelection.checks_for_assets(dg.AssetKey(asset))
        )],
    )
    return defs.resolve_job_def("checks_only").execute_in_process(
        instance=instance, raise_on_error=False
    )


LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""

RUN = """
query Run($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { status startTime endTime stepStats { stepKey status startTime endTime } }
  }
}"""

LOGS = """
query Logs($runId: ID!) {
  logsForRun(runId: $runId) {
    ... on EventConnection { events { __typename ... on MessageEvent { message } } }
  }
}"""

RUNS_TAGGED = """
query Runs($filter: RunsFilter) {
  runsOrError(filter: $filter) { ... on Runs { results { runId status } } }
}"""

LOCATIONS = """
{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"""

FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}


@dataclass
class DagsterDev:
    url: str
    location: str

    def gql(self, query: str, **variables: object) -> dict:
        resp = requests.post(f"{self.url}/graphql", json={"query": query, "variables": variables},
                             timeout=60)
        resp.raise_for_status()
        body = resp.json()
        assert "errors" not in body, body["errors"]
        return body["data"]

    def launch(self, *assets: str) -> str:
        params = {"selector": {"repositoryLocationName": self.location,
                               "repositoryName": "__repository__", "jobName": "__ASSET_JOB",
                               "assetSelection": [{"path": [a]} for a in assets]},
                  "mode": "default", "runConfigData": {}}
        result = self.gql(LAUNCH, params=params)["launchRun"]
        assert result["__typename"] == "LaunchRunSuccess", result
        return result["run"]["runId"]

    def run(self, run_id: str) -> dict:
        return self.gql(RUN, runId=run_id)["runOrError"]

    def wait(self, run_ids: list[str], timeout_s: float = 600) -> dict[str, dict]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            runs = {run_id: self.run(run_id) for run_id in run_ids}
            if all(r["status"] in FINISHED for r in runs.values()):
                return runs
            time.sleep(2)
        raise AssertionError(f"runs not finished after {timeout_s} s: {runs}")

    def wait_for_run_tagged(self, key: str, value: str, timeout_s: float = 300) -> dict:
        """The run carrying tag `key=value` (launched by a sensor, say), once it has finished."""
        deadline = time.monotonic() + timeout_s
        while True:
            runs = self.gql(RUNS_TAGGED, filter={"tags": [{"key": key, "value": value}]})
            finished = [r for r in runs["runsOrError"]["results"] if r["status"] in FINISHED]
            if finished:
                return finished[0]
            assert time.monotonic() < deadline, f"no finished run tagged {key}={value}: {runs}"
            time.sleep(2)

    def messages(self, run_id: str) -> list[str]:
        events = self.gql(LOGS, runId=run_id)["logsForRun"]["events"]
        return [e.get("message") or "" for e in events]


def clean_env(**values: str) -> dict[str, str]:
    """This process's environment without project, Spark or Dagster settings, plus `values`."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("ETL_", "SPARK_", "DAGSTER_"))}
    return {**env, **values}


@contextmanager
def run_dagster_dev(env: dict[str, str], log_path: Path,
                    make_ui: bool = False) -> Iterator[DagsterDev]:
    """`dg dev` (webserver, daemon, code server) on a free port until the block ends.

    With `make_ui`, started as users start it, by the Makefile's `ui` target (its `install`
    prerequisite taken as done: a test never reinstalls the virtualenv, and `make test` has
    just run it).
    """
    port = free_port()
    if make_ui:
        command = ["make", "--no-print-directory", "-o", ".venv/bin/.installed", "ui",
                   f"UI_PORT={port}"]
    else:
        command = [str(BIN / "dg"), "dev", "--host", "127.0.0.1", "--port", str(port)]
        env = {**env, "VIRTUAL_ENV": str(BIN.parent)}
    with log_path.open("w") as log:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            dev = DagsterDev(f"http://127.0.0.1:{port}", "")
            deadline = time.monotonic() + 240
            while not dev.location:
                assert proc.poll() is None, log_path.read_text()[-3000:]
                assert time.monotonic() < deadline, "dg dev did not load the code location"
                try:
                    entries = dev.gql(LOCATIONS)["workspaceOrError"]["locationEntries"]
                    loaded = [e["name"] for e in entries if e["loadStatus"] == "LOADED"]
                    dev.location = loaded[0] if loaded else ""
                except requests.RequestException:
                    pass
                time.sleep(1)
            yield dev
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@dataclass(frozen=True)
class Listener:
    """A listening TCP socket and the process that owns it."""

    address: str
    port: int
    pid: int
    process: str  # the start of its command line

    @property
    def loopback(self) -> bool:
        """Whether only this machine can connect (127.0.0.0/8, ::1, or IPv4-mapped 127.x)."""
        ip = ipaddress.ip_address(self.address)
        mapped = getattr(ip, "ipv4_mapped", None)
        return (mapped or ip).is_loopback


def listeners(owned: Callable[[psutil.Process], bool]) -> set[Listener]:
    """Listening TCP sockets (IPv4 and IPv6) of the processes `owned` accepts.

    Read from /proc through psutil; processes that end meanwhile, or that we may not inspect,
    are left out.
    """
    found = set()
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status != psutil.CONN_LISTEN or not conn.pid:
            continue
        try:
            process = psutil.Process(conn.pid)
            if owned(process):
                found.add(Listener(conn.laddr.ip, conn.laddr.port, conn.pid,
                                   " ".join(process.cmdline())[:160]))
        except (psutil.Error, OSError):
            continue
    return found


def overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether two (start, end) intervals overlap."""
    return a[0] < b[1] and b[0] < a[1]
