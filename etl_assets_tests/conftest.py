"""Shared fixtures: one Spark session for the whole test run, and the demo materialized once.

ETL_ASSETS_HOME points at a temporary folder before anything imports the project, so tests
never touch a developer's own `.etl_home` (metastore, warehouse, Dagster storage). Each
pytest-xdist worker imports this module itself, so each worker has its own home, Derby
metastore and Spark session: workers share no mutable state.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

_HOME = Path(tempfile.mkdtemp(prefix="etl_assets_test_home_"))
os.environ["ETL_ASSETS_HOME"] = str(_HOME)
os.environ.pop("ETL_ASSETS_DEFS", None)
os.environ.pop("ETL_ASSETS_LOG_DB", None)
# Every JVM the tests start (the Spark drivers of this process and of the CLI and `dagster`
# subprocesses, the cluster's servers and executors, beeline) lives for seconds on tiny data:
# the C1 compiler alone halves their CPU time (a session start plus one small job: 34 -> 17
# CPU seconds here), and on 2 cores the suite is CPU-bound. Behaviour is the same.
os.environ["JAVA_TOOL_OPTIONS"] = " ".join(
    filter(None, [os.environ.get("JAVA_TOOL_OPTIONS"), "-XX:TieredStopAtLevel=1"]))

import dagster as dg  # noqa: E402
import pytest  # noqa: E402
from playwright.sync_api import Browser, sync_playwright  # noqa: E402
from pyspark.sql import SparkSession  # noqa: E402

from etl_assets.core.settings import Settings, load_settings  # noqa: E402
from etl_assets.core.specs import Project, load_project  # noqa: E402
from etl_assets.engine.session import build_session  # noqa: E402
from etl_assets_tests.health_seed import LOG_DB, Seed, build_seed, write_seed  # noqa: E402
from etl_assets_tests.helpers import (  # noqa: E402
    CHROMIUM_ARGS,
    ensure_chromium,
    materialize_project,
)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove this process's home (each pytest-xdist worker, and the controller, has one)."""
    shutil.rmtree(_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def settings() -> Settings:
    """Settings of this process's embedded home (removed when the process ends)."""
    return load_settings()


@pytest.fixture(scope="session")
def spark(settings: Settings) -> Iterator[SparkSession]:
    """The one Spark session (Hive support, Derby under the temporary home)."""
    session = build_session(settings)
    yield session
    session.stop()


@pytest.fixture(scope="session")
def demo_project(settings: Settings) -> Project:
    """The shipped demo specs."""
    return load_project(settings.defs_dir)


@pytest.fixture(scope="session")
def demo_instance() -> Iterator[dg.DagsterInstance]:
    """A real Dagster instance with SQLite storage in a temporary folder."""
    with tempfile.TemporaryDirectory() as folder:
        with dg.DagsterInstance.local_temp(folder) as instance:
            yield instance


@pytest.fixture(scope="session")
def demo_run(
    spark: SparkSession, settings: Settings, demo_project: Project, demo_instance
) -> dg.ExecuteInProcessResult:
    """The demo materialized once (every unpartitioned table), shared by the tests."""
    selection = [t.name for t in demo_project.tables.values() if not t.spec.partitions]
    result = materialize_project(demo_project, settings, demo_instance, selection=selection)
    assert result.success
    return result


@pytest.fixture(scope="session")
def seeded_log(spark: SparkSession) -> Seed:
    """A log with known runs, failures and flags (health_seed.py) in its own database."""
    seed = build_seed(datetime.now(timezone.utc).date())
    write_seed(spark, LOG_DB, seed)
    return seed


@pytest.fixture()
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    """A fresh Dagster instance with SQLite storage in the test's temporary folder."""
    (tmp_path / "dagster").mkdir()
    with dg.DagsterInstance.local_temp(str(tmp_path / "dagster")) as inst:
        yield inst


# Tests that wait on other processes go first, servers before `dagster dev` and CLI runs before
# the browser: under pytest-xdist (`--dist loadfile --no-loadscope-reorder`, as `make test`
# runs it) each of their modules then starts at once on a worker, and their waits overlap
# with the in-process Spark modules instead of ending the run.
PROCESS_BOUND_FIRST = ("cluster", "e2e", "browser")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        marks = {mark.name for mark in item.iter_markers()}
        return next((i for i, name in enumerate(PROCESS_BOUND_FIRST) if name in marks),
                    len(PROCESS_BOUND_FIRST))

    items.sort(key=rank)  # stable: the order within each rank stays the collection order


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Headless Debian chromium through Playwright; under CI=true a missing one fails."""
    chromium = ensure_chromium()
    if chromium is None:
        message = "no /usr/bin/chromium and apt-get cannot install it (not root)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), headless=True,
                                             args=CHROMIUM_ARGS)
        yield browser
        browser.close()
