"""The one Definitions object loads, and its graph is the one the specs declare.

No Spark: loading definitions must never start it (the resource is lazy).
"""

from __future__ import annotations

import dagster as dg

from etl_assets.core.settings import load_settings
from etl_assets.core.specs import load_project
from etl_assets.definitions import build_executor, defs


def test_definitions_load() -> None:
    dg.Definitions.validate_loadable(defs)


def test_asset_graph_follows_spec_inputs() -> None:
    project = load_project(load_settings().defs_dir)
    graph = defs.resolve_asset_graph()
    for table in project.tables.values():
        node = graph.get(dg.AssetKey(table.name))
        assert {k.path[-1] for k in node.parent_keys} == set(table.spec.inputs) | {
            name for name in table.rule_reads if name in project.tables}
        assert node.code_version == table.code_version
        assert node.group_name == table.domain
    for source in project.sources:
        assert not graph.get(dg.AssetKey(source)).is_materializable


def test_embedded_profile_runs_in_process_with_lazy_spark() -> None:
    job = defs.resolve_implicit_global_asset_job_def()
    assert job.executor_def is dg.in_process_executor
    chosen = load_settings({"ETL_ASSETS_EXECUTOR": "multiprocess"})
    assert build_executor(chosen).name == "multiprocess"  # a choice, on either profile
    spark = defs.resources["spark"]
    assert type(spark).__name__ == "EtlSparkResource"  # dagster-pyspark's lazy one, subclassed
    config = spark.spark_config
    assert config["spark.sql.catalogImplementation"] == "hive"
    home = load_settings().home
    url = config["spark.hadoop.javax.jdo.option.ConnectionURL"]
    assert f"databaseName={home}/metastore_db" in url
    assert config["spark.sql.warehouse.dir"] == str(home / "warehouse")
    assert f"-Dderby.system.home={home}" in config["spark.driver.extraJavaOptions"]
    assert spark.embedded_metastore == str(home / "metastore_db")  # locked before Spark starts


def test_partitioned_inputs_map_partition_to_partition_or_a_window(tmp_path) -> None:
    from etl_assets.definitions import build_resources
    from etl_assets.orchestration.domains import build_assets
    from etl_assets_tests.helpers import write_spec

    write_spec(tmp_path, """
database: t_map
sources: {src: {format: parquet, path: /nowhere}}
tables:
  - name: daily
    inputs: [src]
    partitions: {type: daily, start: 2026-03-01, column: d}
    sql: SELECT d FROM src
  - name: same_day
    inputs: [daily]
    partitions: {type: daily, start: 2026-03-01, column: d}
    sql: SELECT d FROM daily
  - name: rolling_week
    inputs: [daily]
    partitions: {type: daily, start: 2026-03-01, column: d, input_windows: {daily: 7}}
    sql: SELECT d FROM daily
""")
    defs = dg.Definitions(assets=build_assets(load_project(tmp_path)),
                          resources=build_resources(load_settings()))
    graph = defs.resolve_asset_graph()

    def parents(child: str, key: str) -> list[str]:
        subset = graph.get_parent_partition_keys_for_child(
            key, dg.AssetKey("daily"), dg.AssetKey(child)).partitions_subset
        return sorted(subset.get_partition_keys())

    assert parents("same_day", "2026-03-10") == ["2026-03-10"]
    assert parents("rolling_week", "2026-03-10") == [f"2026-03-{d:02d}" for d in range(4, 11)]


def test_retries_freshness_and_automation_come_from_the_specs() -> None:
    graph = defs.resolve_asset_graph()
    landed = defs.resolve_assets_def("landed_order_totals")
    policy = landed.op.retry_policy
    assert policy.max_retries == 3 and policy.delay == 10
    assert policy.backoff == dg.Backoff.EXPONENTIAL and policy.jitter == dg.Jitter.PLUS_MINUS
    final = graph.get(dg.AssetKey("final_output"))
    assert final.freshness_policy.fail_window.to_timedelta().total_seconds() == 26 * 3600
    sensors = {s.name for s in defs.sensors}
    assert {"landed_orders_arrivals", "failed_check_alerts", "run_failure_alerts"} <= sensors
    assert {s.name for s in defs.schedules} == {
        "sales_schedule", "daily_sales_schedule", "customer_rolling_spend_schedule",
        "spend_bands_schedule", "etl_health_report_schedule"}


def test_health_report_is_downstream_of_every_table_on_a_stopped_schedule() -> None:
    project = load_project(load_settings().defs_dir)
    node = defs.resolve_asset_graph().get(dg.AssetKey("etl_health_report"))
    assert {k.path[-1] for k in node.parent_keys} == set(project.tables)
    schedule = defs.resolve_schedule_def("etl_health_report_schedule")
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    job = defs.resolve_job_def(schedule.job_name)
    assert job.asset_layer.selected_asset_keys == {node.key}


def test_tables_a_quality_rule_reads_are_loaded_first(tmp_path) -> None:
    from etl_assets.definitions import build_resources
    from etl_assets.orchestration.domains import build_assets
    from etl_assets_tests.helpers import write_spec

    write_spec(tmp_path, """
database: t_rule_deps
sources: {src: {format: parquet, path: /nowhere}, ref: {format: parquet, path: /nowhere}}
tables:
  - name: customers
    inputs: [src]
    sql: SELECT id FROM src
  - name: codes
    inputs: [src]
    sql: SELECT id AS code FROM src
  - name: orders
    inputs: [src]
    sql: SELECT id, id AS customer_id, id AS code, id AS parent FROM src
    quality:
      - {relationship: {column: customer_id, to: customers.id}}
      - {relationship: {column: parent, to: orders.id}}
      - {relationship: {column: id, to: ref.id}}
      - {sql: "SELECT * FROM {table} t LEFT ANTI JOIN codes c ON t.code = c.code"}
""")
    project = load_project(tmp_path)
    assert project.tables["orders"].rule_reads == ["codes", "customers", "ref"]
    # Loaded in dependency order: the rules' tables before the table that reads them.
    order = list(project.tables)
    assert order.index("customers") < order.index("orders") > order.index("codes")
    defs = dg.Definitions(assets=build_assets(project),
                          resources=build_resources(load_settings()))
    node = defs.resolve_asset_graph().get(dg.AssetKey("orders"))
    # Project tables become dependencies; the source stays out (sources are not loaded), and a
    # rule on the table's own rows is no dependency.
    assert {k.path[-1] for k in node.parent_keys} == {"src", "customers", "codes"}
