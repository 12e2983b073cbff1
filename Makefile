# Two commands: `make demo` and `make test`. Everything is installed by these files.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export ETL_ASSETS_HOME ?= $(CURDIR)/.etl_home
export ETL_PROFILE ?= embedded
# `dg` runs in the project's own environment: say it is the active one.
export VIRTUAL_ENV := $(CURDIR)/$(VENV)

# The embedded profile keeps Dagster's SQLite storage in $ETL_ASSETS_HOME/dagster. The cluster
# profile (`make cluster-up`, then `ETL_PROFILE=cluster make demo`) uses PostgreSQL, with the
# connection settings that `cluster-up` wrote to cluster.env (shell and make syntax both).
ifeq ($(ETL_PROFILE),cluster)
export DAGSTER_HOME := $(ETL_ASSETS_HOME)/dagster-cluster
INSTANCE_YAML := dagster-cluster.yaml
-include $(ETL_ASSETS_HOME)/cluster/cluster.env
else
export DAGSTER_HOME := $(ETL_ASSETS_HOME)/dagster
INSTANCE_YAML := dagster.yaml
endif

.PHONY: install dagster-home demo test test-fast bench ui check status report screenshot clean cluster-up \
	cluster-down cluster-status

# Re-install only when the project's dependencies change.
$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]' 2>&1 | grep -v '^WARNING: Location' || true
	$(BIN)/python -c "import etl_assets, dagster, pyspark"
	touch $@

# The Spark driver's class archive, once per JVM and jar set (etl_assets.engine.jvm_archive):
# every later Spark start maps it and starts ~2 s sooner. ETL_ASSETS_JVM_ARCHIVE=off skips it.
install: $(BIN)/.installed
	$(BIN)/python -m etl_assets.engine.jvm_training

# The instance config is the top-level dagster.yaml; storage lands under ETL_ASSETS_HOME.
dagster-home:
	mkdir -p "$(DAGSTER_HOME)"
	ln -sf "$(CURDIR)/$(INSTANCE_YAML)" "$(DAGSTER_HOME)/dagster.yaml"

# Every unpartitioned table (and its checks), then the daily tables (tagged cadence=daily)
# over the first quarter as one single-run backfill (one run, one Spark job per table for all
# 90 days), then the health page over both runs' log ($(ETL_ASSETS_HOME)/reports/health.html;
# `etl-assets report` rewrites it).
DEMO_RANGE ?= 2026-01-01...2026-03-31

demo: install dagster-home
	date +%s > "$(ETL_ASSETS_HOME)/.demo_started"
	$(BIN)/dg launch --assets 'not tag:cadence=daily and not key:etl_health_report'
	$(BIN)/dg launch --assets 'tag:cadence=daily' --partition-range $(DEMO_RANGE)
	$(BIN)/dg launch --assets etl_health_report
	$(BIN)/etl-assets status
	@echo "make demo: the run took $$(( $$(date +%s) - $$(cat "$(ETL_ASSETS_HOME)/.demo_started") )) s (installing is the install target's)"

# Two pytest-xdist workers, each with its own Spark session and embedded home (conftest.py);
# whole modules go to a worker (module fixtures are written once), the ones that wait on other
# processes first (conftest.py orders them). `make test-fast` leaves those out: pure and
# in-process Spark tests only. PYTEST_ARGS passes more, e.g. PYTEST_ARGS='-k quality'.
PYTEST_PARALLEL := -n 2 --dist loadfile --no-loadscope-reorder
FAST_TIER := not cluster and not e2e and not browser

test: install
	$(BIN)/python -m pytest $(PYTEST_PARALLEL) $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest $(PYTEST_PARALLEL) -m "$(FAST_TIER)" $(PYTEST_ARGS)

# End to end against a hand-written job (1M order rows by default: a few minutes), then the
# checks' cost against history length. BENCH_SIZES=1M,10M,50M for the full scale run.
BENCH_SIZES ?= 1M
bench: install
	$(BIN)/python bench/e2e.py --sizes $(BENCH_SIZES)
	$(BIN)/python bench/check_latency.py

# The UI on this machine only; UI_HOST=0.0.0.0 serves it to the network (put it behind auth).
UI_HOST ?= 127.0.0.1
UI_PORT ?= 3000
ui: install dagster-home
	$(BIN)/dg dev --host $(UI_HOST) --port $(UI_PORT)

# The definitions as `dg` sees them: every spec validated (file, table and field named on an
# error), then what they make (assets, checks, schedules, sensors, jobs).
check: install dagster-home
	$(BIN)/dg check yaml
	$(BIN)/dg check defs
	$(BIN)/dg list defs

status: install
	$(BIN)/etl-assets status

# The pipeline-health page over the last 30 days of etl_log.* (REPORT_DAYS=90 for more).
REPORT_DAYS ?= 30
report: install
	$(BIN)/etl-assets report --days $(REPORT_DAYS)

# docs/health_report.png for the README: the browser test's screenshot of the seeded page
# (installs Debian's chromium when missing, as the test always does).
screenshot: install
	ETL_ASSETS_DOCS_SCREENSHOT=1 $(BIN)/python -m pytest -q \
		etl_assets_tests/test_health_browser.py::test_every_panel_draws_in_chromium

# PostgreSQL, a Spark master and worker, and the Spark Thrift Server on 127.0.0.1, with their
# state under $(ETL_ASSETS_HOME)/cluster. Both are idempotent.
cluster-up: install
	$(BIN)/etl-assets cluster up

cluster-down: install
	$(BIN)/etl-assets cluster down

cluster-status: install
	$(BIN)/etl-assets cluster status

clean: cluster-down
	rm -rf .etl_home
