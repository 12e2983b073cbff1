"""`make demo` on the embedded profile vs the cluster profile, and what each server costs to start.

Everything runs as a user runs it, each in a fresh temporary ETL_ASSETS_HOME:
1. `make demo` (embedded: local Spark, Derby, SQLite, in-process executor);
2. `make cluster-up` (PostgreSQL, Spark master + worker, Thrift Server, Dagster's tables),
   timed per server by `etl-assets cluster up` itself, then a second `make cluster-up`;
3. `ETL_PROFILE=cluster make demo` with the profile's default executor (in-process: one Spark
   application per run), and the ratio cluster / embedded (issue 23's target: <= 1.5);
4. with --multiprocess, also the same with ETL_ASSETS_EXECUTOR=multiprocess (one Spark
   application per step: the cluster default before issue 23);
5. `make cluster-down`.

Usage: .venv/bin/python bench/profiles.py [--multiprocess]   (about 6 minutes on 2 cores;
       15 with --multiprocess)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def make(target: str, **env: str) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run(["make", "--no-print-directory", target], cwd=ROOT,
                          env={**os.environ, **env}, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"make {target} failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    return elapsed, proc.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--multiprocess", action="store_true",
                        help="also time the cluster demo with the multiprocess executor")
    args = parser.parse_args()
    results: dict[str, object] = {}
    base = Path(tempfile.mkdtemp(prefix="etl_assets_profiles_"))
    base.chmod(0o755)  # PostgreSQL (as the postgres user) keeps its data under the home
    embedded, cluster = base / "embedded", base / "cluster"
    try:
        make("install")
        results["embedded_demo_s"], _ = make("demo", ETL_ASSETS_HOME=str(embedded))

        up_s, out = make("cluster-up", ETL_ASSETS_HOME=str(cluster))
        results["cluster_up_first_s"] = round(up_s, 1)
        costs = re.search(r"seconds per server: (\{.*\})", out)
        results["cluster_up_per_server_s"] = json.loads(costs.group(1).replace("'", '"'))
        results["cluster_up_again_s"], _ = make("cluster-up", ETL_ASSETS_HOME=str(cluster))

        results["cluster_demo_in_process_s"], _ = make(
            "demo", ETL_ASSETS_HOME=str(cluster), ETL_PROFILE="cluster")
        results["cluster_over_embedded"] = round(
            results["cluster_demo_in_process_s"] / results["embedded_demo_s"], 2)
        if args.multiprocess:
            results["cluster_demo_multiprocess_s"], _ = make(
                "demo", ETL_ASSETS_HOME=str(cluster), ETL_PROFILE="cluster",
                ETL_ASSETS_EXECUTOR="multiprocess")
    finally:
        make("cluster-down", ETL_ASSETS_HOME=str(cluster))
        shutil.rmtree(base, ignore_errors=True)
    print(json.dumps({k: round(v, 1) if isinstance(v, float) else v
                      for k, v in results.items()}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
