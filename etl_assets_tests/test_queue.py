"""The embedded profile queues runs one at a time (Derby admits one process), and they all succeed.

The same four runs as on the cluster profile (two assets, each twice), launched at once
through `dagster dev`'s GraphQL API on a home of their own, as the UI's "Materialize" does.
A metastore password is set (Derby ignores it): the UI's resource page names its variable, and
no run's config or events hold its value.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from etl_assets_tests.helpers import ROOT, clean_env, overlap, run_dagster_dev

pytestmark = pytest.mark.e2e

PASSWORD = "s3cr3t-Pa55w0rd-7f1c"
RESOURCE = """
query Resource($selector: ResourceSelector!) {
  topLevelResourceDetailsOrError(resourceSelector: $selector) {
    __typename
    ... on ResourceDetails { name configuredValues { key value type } }
  }
}"""
RUN_CONFIG = """
query RunConfig($runId: ID!) { runOrError(runId: $runId) { ... on Run { runConfigYaml } } }"""


def test_four_runs_launched_at_once_queue_and_all_succeed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True)
    (dagster_home / "dagster.yaml").symlink_to(ROOT / "dagster.yaml")
    (tmp_path / "landing" / "orders").mkdir(parents=True)  # nothing lands: the sensor stays quiet
    env = clean_env(ETL_ASSETS_HOME=str(home), DAGSTER_HOME=str(dagster_home),
                    ETL_ASSETS_LANDING=str(tmp_path / "landing"),
                    ETL_ASSETS_METASTORE_PASSWORD=PASSWORD)

    with run_dagster_dev(env, tmp_path / "dagster_dev.log") as dev:
        assets = ["clean_orders", "customers_dim", "clean_orders", "customers_dim"]
        run_ids = [dev.launch(asset) for asset in assets]
        runs = dev.wait(run_ids)
        selector = {"repositoryLocationName": dev.location,
                    "repositoryName": "__repository__", "resourceName": "spark"}
        resource = dev.gql(RESOURCE, selector=selector)["topLevelResourceDetailsOrError"]
        stored = [json.dumps(resource),
                  *(json.dumps(dev.gql(RUN_CONFIG, runId=r)) for r in run_ids),
                  *(message for r in run_ids for message in dev.messages(r))]

    values = {v["key"]: v for v in resource["configuredValues"]}
    assert values["metastore_password"] == {"key": "metastore_password", "type": "ENV_VAR",
                                            "value": "ETL_ASSETS_METASTORE_PASSWORD"}
    assert not [text for text in stored if PASSWORD in text]

    assert [runs[r]["status"] for r in run_ids] == ["SUCCESS"] * 4, runs
    windows = sorted((runs[r]["startTime"], runs[r]["endTime"]) for r in run_ids)
    for earlier, later in zip(windows, windows[1:]):
        assert not overlap(earlier, later), windows  # one after another
