"""The Spark driver serves this machine only.

A driver listens on an RPC port, a block manager port and its web UI (4040 and up, which shows
every query's SQL and the session's configuration). Left to Spark's defaults the first two
bind the host's network address and the UI every interface; the project's sessions keep all
three on loopback. Checked on the suite's own session, whose JVM is a child of this process.
"""

from __future__ import annotations

import os

import psutil
from pyspark.sql import SparkSession

from etl_assets_tests.helpers import listeners


def test_the_driver_listens_on_loopback_only(spark: SparkSession) -> None:
    spark.range(3).count()  # the block manager and the UI are up once a job has run
    jvms = {p.pid for p in psutil.Process(os.getpid()).children(recursive=True)}
    found = listeners(lambda process: process.pid in jvms)
    ui = spark.sparkContext.uiWebUrl
    assert ui and int(ui.rsplit(":", 1)[1]) in {s.port for s in found}, (ui, found)
    exposed = sorted(f"{s.address}:{s.port}" for s in found if not s.loopback)
    assert not exposed, f"the driver listens beyond this machine on {exposed}"
