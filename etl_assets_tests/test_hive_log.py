"""The log tables' look-ups on a real Hive metastore: they must stay right as the log grows.

The watermark look-up reads the newest `log_date` partitions first, so a long log costs no
more than a short one; these tests make sure it still finds the newest successful load when
that load is older than the first probes, and never returns a failed load's watermark.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from pyspark.sql import SparkSession

from etl_assets.core.records import FAILED, SUCCESS, RunRecord
from etl_assets.engine.hive_log import HiveLog


def _load(asset: str, finished: datetime, status: str, watermark: str | None) -> RunRecord:
    return RunRecord(run_id=f"{asset}-{finished:%Y%m%d}-{status}", asset=asset, domain="d",
                     table_name=f"d.{asset}", status=status, started_at=finished,
                     finished_at=finished, code_version="1", watermark=watermark)


def test_last_watermark_finds_the_newest_successful_load_past_the_first_probes(
    spark: SparkSession,
) -> None:
    log = HiveLog(spark, "etl_log_watermarks")
    start = datetime(2025, 1, 1, 6, tzinfo=timezone.utc)
    loads = []
    for day in range(120):  # another asset loads daily: 120 partitions
        finished = start + timedelta(days=day)
        loads.append((_load("daily", finished, SUCCESS, f"d{day:03d}"), {}))
    # `sparse` succeeded on day 10 and 70 (50 partitions older than the newest), and failed
    # since, with a watermark on the failed row that must not count.
    loads.append((_load("sparse", start + timedelta(days=10), SUCCESS, "s010"), {}))
    loads.append((_load("sparse", start + timedelta(days=70), SUCCESS, "s070"), {}))
    loads.append((_load("sparse", start + timedelta(days=70, hours=2), SUCCESS, None), {}))
    loads.append((_load("sparse", start + timedelta(days=119), FAILED, "bad"), {}))
    log.write_loads(loads)
    try:
        assert len(log.log_dates("run_log")) == 120
        assert log.last_watermark("daily") == "d119"
        assert log.last_watermark("sparse") == "s070"
        assert log.last_watermark("never_loaded") is None
    finally:
        spark.sql("DROP DATABASE etl_log_watermarks CASCADE")


def test_last_watermark_on_an_empty_log_is_none(spark: SparkSession) -> None:
    log = HiveLog(spark, "etl_log_empty")
    try:
        assert log.last_watermark("anything") is None
    finally:
        spark.sql("DROP DATABASE etl_log_empty CASCADE")
