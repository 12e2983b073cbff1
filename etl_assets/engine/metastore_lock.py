"""One process at a time on the embedded (Derby) metastore, said in one line instead of a crash.

Derby boots a database in one process only. A second process that starts Spark on the same
`metastore_db` retries `XSDB6: Another instance of Derby may have already booted the database`
for minutes and dies with `Unable to instantiate SessionHiveMetaStoreClient`, thousands of log
lines later. So before Spark starts, the embedded profile takes an exclusive `flock` on
`<home>/metastore_db.lock` (beside Derby's folder, not inside it, where Derby keeps its own
`db.lck`) and holds it for the rest of the process: the kernel releases it when the process
ends, however it ends, so a killed run never leaves a stale lock behind. A process that finds
the lock taken logs one line and waits, or fails with a clear message once its bounded wait
(`ETL_ASSETS_METASTORE_LOCK_TIMEOUT`) is over.

No Spark, no Dagster: this module is imported by the session builder and tested on its own.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)

# How often a bounded wait tries the lock again: flock itself has no timeout.
_POLL_S = 0.2
# Lock files held by this process, so a second session start in it is a no-op (a second flock
# on a new descriptor of the same file would wait for this very process).
_HELD: dict[Path, int] = {}
_GUARD = threading.Lock()


class MetastoreBusyError(RuntimeError):
    """Another process holds the embedded metastore and the bounded wait is over."""


def lock_path(metastore_dir: Path) -> Path:
    """The lock file of an embedded metastore: `<metastore_dir>.lock`, beside it."""
    return metastore_dir.with_name(metastore_dir.name + ".lock")


def lock_embedded_metastore(
    metastore_dir: Path,
    timeout_s: float | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> Path:
    """Hold the embedded metastore for the rest of this process, waiting for another holder.

    Args:
        metastore_dir: Derby's database folder (`<home>/metastore_db`; it need not exist yet).
        timeout_s: Longest wait in seconds for another process to let go; `None` waits as long
            as it takes (as the run queue would), `0` fails at once.
        on_wait: Receives the one line said before waiting (default: a warning through
            `logging`); the Dagster resource passes its run's logger.

    Returns:
        The lock file. Calling again in the same process returns at once.

    Raises:
        MetastoreBusyError: The wait is over and another process still holds the metastore;
            the message names the folder and, when known, that process's pid.
    """
    path = lock_path(metastore_dir)
    with _GUARD:
        if path in _HELD:
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if not _try_lock(fd):
                _wait_for_lock(fd, metastore_dir, timeout_s, on_wait or logger.warning)
            # Who holds it, for the message of the next process that has to wait.
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        _HELD[path] = fd
        return path


def _wait_for_lock(fd: int, metastore_dir: Path, timeout_s: float | None,
                   on_wait: Callable[[str], None]) -> None:
    holder = _holder(fd)
    if timeout_s is not None and timeout_s <= 0:
        raise MetastoreBusyError(_busy(metastore_dir, holder, timeout_s))
    bound = "" if timeout_s is None else f" (for up to {timeout_s:g} s)"
    on_wait(f"waiting for another etl_assets process{holder} using the embedded metastore at "
            f"{metastore_dir}{bound}")
    if timeout_s is None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return
    deadline = time.monotonic() + timeout_s
    while not _try_lock(fd):
        if time.monotonic() >= deadline:
            raise MetastoreBusyError(_busy(metastore_dir, holder, timeout_s))
        time.sleep(_POLL_S)


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _holder(fd: int) -> str:
    """` (pid N)` from the lock file, or nothing when the holder has not written it yet."""
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return f" (pid {text})" if text.isdigit() else ""


def _busy(metastore_dir: Path, holder: str, timeout_s: float) -> str:
    return (f"another etl_assets process{holder} is using the embedded metastore at "
            f"{metastore_dir} (Derby admits one process); gave up after {timeout_s:g} s "
            "(ETL_ASSETS_METASTORE_LOCK_TIMEOUT). Let it finish, or run on the cluster profile "
            "for concurrent processes")
