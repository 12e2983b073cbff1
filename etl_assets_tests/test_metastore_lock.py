"""A second process on the embedded metastore waits with one line, or fails with one message.

Without the lock, a second `dagster asset materialize` on the same home retried Derby's
`XSDB6` for minutes and died with `Unable to instantiate SessionHiveMetaStoreClient` after
thousands of log lines. The lock itself is tested between small Python processes (two Spark
sessions would take a minute on 2 cores); the last test shows that the session builder takes
it, using the session this test process already has.
"""

from __future__ import annotations

import os
import selectors
import subprocess
import sys
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from etl_assets.core.settings import Settings, load_settings
from etl_assets.engine.metastore_lock import MetastoreBusyError, lock_embedded_metastore, lock_path

# Takes the lock (waiting as long as argv[2] says, "none" for no limit), says so, then holds
# it until its stdin closes.
LOCKER = """
import sys
from pathlib import Path
from etl_assets.engine.metastore_lock import lock_embedded_metastore
timeout = None if sys.argv[2] == "none" else float(sys.argv[2])
lock_embedded_metastore(Path(sys.argv[1]), timeout_s=timeout)
print("locked", flush=True)
sys.stdin.read()
"""


def _locker(metastore: Path, timeout: str = "none") -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", LOCKER, str(metastore), timeout],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _holder(metastore: Path) -> subprocess.Popen:
    proc = _locker(metastore)
    assert proc.stdout.readline() == "locked\n", proc.stderr.read()
    return proc


def _first_line(proc: subprocess.Popen) -> tuple[str, str]:
    """("stdout" or "stderr", line) of whichever the process writes first (60 s at most)."""
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ, "stdout")
        selector.register(proc.stderr, selectors.EVENT_READ, "stderr")
        ready = selector.select(timeout=60)
    assert ready, "the process said nothing in 60 s"
    key, _ = ready[0]
    return key.data, key.fileobj.readline()


def _release(proc: subprocess.Popen) -> None:
    proc.stdin.close()
    proc.wait(timeout=60)


def test_second_process_says_one_line_waits_and_proceeds(tmp_path: Path) -> None:
    metastore = tmp_path / "metastore_db"
    holder = _holder(metastore)
    waiter = _locker(metastore)
    try:
        # Said before it waits (had it not waited, "locked" would come first on stdout).
        said = (f"waiting for another etl_assets process (pid {holder.pid}) using the "
                f"embedded metastore at {metastore}\n")
        assert _first_line(waiter) == ("stderr", said)
    finally:
        _release(holder)
    out, err = waiter.communicate("", timeout=60)
    assert (out, err, waiter.returncode) == ("locked\n", "", 0)  # one line, no stack trace


def test_bounded_wait_fails_with_the_holder_and_the_folder_named(tmp_path: Path) -> None:
    metastore = tmp_path / "metastore_db"
    holder = _holder(metastore)
    try:
        said: list[str] = []
        with pytest.raises(MetastoreBusyError) as busy:
            lock_embedded_metastore(metastore, timeout_s=0.5, on_wait=said.append)
        assert said == [f"waiting for another etl_assets process (pid {holder.pid}) using the "
                        f"embedded metastore at {metastore} (for up to 0.5 s)"]
        assert str(busy.value).startswith(
            f"another etl_assets process (pid {holder.pid}) is using the embedded metastore at "
            f"{metastore} (Derby admits one process); gave up after 0.5 s "
            "(ETL_ASSETS_METASTORE_LOCK_TIMEOUT)")
        with pytest.raises(MetastoreBusyError, match="gave up after 0 s"):
            lock_embedded_metastore(metastore, timeout_s=0, on_wait=said.append)
        assert len(said) == 1  # no wait, no waiting line
    finally:
        _release(holder)
    # Once the holder is gone (however it ended), the lock is free: nothing stale is left.
    assert lock_embedded_metastore(metastore, timeout_s=0) == lock_path(metastore)


def test_the_same_process_takes_its_own_lock_again_at_once(tmp_path: Path) -> None:
    metastore = tmp_path / "metastore_db"
    first = lock_embedded_metastore(metastore, timeout_s=0)
    again = lock_embedded_metastore(metastore, timeout_s=0)
    assert again == first == tmp_path / "metastore_db.lock"
    other = _locker(metastore, timeout="0")
    _, err = other.communicate("", timeout=60)
    assert other.returncode == 1
    assert f"(pid {os.getpid()}) is using the embedded metastore at {metastore}" in err


def test_lock_timeout_setting() -> None:
    assert load_settings({}).metastore_lock_timeout_s is None
    bounded = load_settings({"ETL_ASSETS_METASTORE_LOCK_TIMEOUT": "2.5"})
    assert bounded.metastore_lock_timeout_s == 2.5
    for bad in ("soon", "-1", "nan"):
        with pytest.raises(ValueError, match="ETL_ASSETS_METASTORE_LOCK_TIMEOUT=.* seconds"):
            load_settings({"ETL_ASSETS_METASTORE_LOCK_TIMEOUT": bad})
    shared = load_settings({"ETL_ASSETS_METASTORE_URI": "thrift://127.0.0.1:9083"})
    assert shared.embedded_metastore is None  # a shared metastore admits many processes


def test_the_session_builder_holds_the_embedded_metastore(
    spark: SparkSession, settings: Settings
) -> None:
    assert settings.embedded_metastore is not None
    other = _locker(settings.embedded_metastore, timeout="0")
    _, err = other.communicate("", timeout=60)
    assert other.returncode == 1
    assert f"(pid {os.getpid()}) is using the embedded metastore at " \
           f"{settings.embedded_metastore}" in err
