"""Column lineage (`etl_assets/core/lineage.py`), its `dagster/column_lineage` metadata and
the traced, readable `column_lineage` entry.

Why: Dagster's catalog shows, per column, the upstream columns it comes from, but only when a
materialization says so. The pure tests pin what is read from SQL (joins, aggregates, CASE,
CTEs, `SELECT *` only with known input columns) and that what cannot be resolved gives no
entry instead of a wrong one or an exception. The open-source UI hides
`dagster/column_lineage`, so each definition also carries the lineage traced back through the
upstream tables as Markdown: the tracing tests (no Spark) pin the demo's trails, the caps that
keep a wide fan-in readable and a cycle finite, and the Markdown's escaping. The Spark tests
load small tables and the demo and read the lineage back from the recorded materializations,
as the UI does.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import dagster as dg
import pytest
from pyspark.sql import SparkSession

from etl_assets.core import metric_names as M
from etl_assets.core.lineage import (
    Lineage,
    TracedColumn,
    Trail,
    column_lineage,
    declared_lineage,
    project_lineage,
    trace_lineage,
)
from etl_assets.core.specs import Project, SpecError, load_project
from etl_assets.definitions import build_resources
from etl_assets.engine.inputs import read_source
from etl_assets.orchestration.domains import build_assets
from etl_assets.orchestration.metadata import lineage_markdown
from etl_assets_tests.helpers import materialize_project, write_spec

# --- SQL -> lineage, no Spark -----------------------------------------------------------------


def test_a_join_takes_each_column_from_its_own_input() -> None:
    sql = """
        SELECT o.id, c.name, o.amount
        FROM orders o JOIN customers c ON o.customer_id = c.customer_id
    """
    assert column_lineage(sql, ["orders", "customers"]) == {
        "id": [("orders", "id")],
        "name": [("customers", "name")],
        "amount": [("orders", "amount")],
    }


def test_unqualified_columns_of_a_join_need_the_input_columns() -> None:
    sql = "SELECT id, name FROM orders JOIN customers USING (customer_id)"
    columns = {"orders": ["id", "customer_id"], "customers": ["customer_id", "name"]}
    # Without the inputs' columns no input is known to hold `id`: no entry, not a guess.
    assert column_lineage(sql, ["orders", "customers"]) == {}
    assert column_lineage(sql, ["orders", "customers"], columns) == {
        "id": [("orders", "id")], "name": [("customers", "name")]}


def test_an_aggregate_derives_from_what_it_aggregates_and_count_star_from_no_column() -> None:
    sql = """
        SELECT category, sum(a) AS total, count(*) AS n, 1 AS one
        FROM facts WHERE day >= '{partition_start}' AND day < '{partition_end}'
        GROUP BY category
    """
    assert column_lineage(sql, ["facts"]) == {
        "category": [("facts", "category")], "total": [("facts", "a")]}


def test_a_cte_and_a_subquery_are_followed_to_the_inputs() -> None:
    sql = """
        WITH big AS (SELECT id, amount * 2 AS doubled FROM orders WHERE amount > 10)
        SELECT b.id, b.doubled,
               (SELECT max(r.rate) FROM rates r WHERE r.id = b.id) AS top_rate
        FROM big b
    """
    assert column_lineage(sql, ["orders", "rates"]) == {
        "id": [("orders", "id")],
        "doubled": [("orders", "amount")],
        "top_rate": [("rates", "rate")],
    }


def test_case_over_two_columns_derives_from_both() -> None:
    sql = """
        SELECT id,
               CASE WHEN t.amount >= 1000 THEN 'gold' WHEN t.visits > 3 THEN 'silver'
                    ELSE 'bronze' END AS segment
        FROM customers t
    """
    assert column_lineage(sql, ["customers"])["segment"] == [
        ("customers", "amount"), ("customers", "visits")]


def test_select_star_expands_only_with_known_input_columns() -> None:
    sql = "SELECT *, upper(name) AS shout FROM src"
    assert column_lineage(sql, ["src"]) == {"shout": [("src", "name")]}
    columns = ["id", "name", "사용일자", "we`ird", "a.b"]
    found = column_lineage(sql, ["src"], {"src": columns})
    assert list(found) == [*columns, "shout"]
    assert all(found[c] == [("src", c)] for c in columns)


def test_names_are_spelled_as_the_input_and_written_columns_spell_them() -> None:
    sql = "SELECT Category AS Code, sum(AMOUNT) AS Total FROM Facts GROUP BY 1"
    assert column_lineage(sql, ["facts"]) == {
        "Code": [("facts", "Category")], "Total": [("facts", "AMOUNT")]}
    # At load time the frames' names win, matched case-insensitively as Spark resolves them;
    # an output name the table does not have is dropped.
    assert column_lineage(sql, ["facts"], {"facts": ["category", "Amount"]}, ["code"]) == {
        "code": [("facts", "category")]}


@pytest.mark.parametrize("sql", ["SELEC id FROM src", "SELECT (id FROM src", "SELECT 'open",
                                 "INSERT INTO src VALUES (1)", "SELECT 1; SELECT 2", ""])
def test_unparseable_or_non_query_sql_gives_no_lineage(sql: str) -> None:
    assert column_lineage(sql, ["src"]) == {}


def test_declared_lineage_is_matched_to_the_frames_and_drops_what_they_lack() -> None:
    declared = {"Spend": ["orders.amount", "orders.missing"], "ghost": ["orders.id"],
                "days": ["orders.order_date", "rates.day"]}
    frames = {"orders": ["AMOUNT", "order_date", "id"]}
    assert declared_lineage(declared, frames, ["spend", "days"]) == {
        "spend": [("orders", "AMOUNT")],
        "days": [("orders", "order_date"), ("rates", "day")],  # rates' columns unknown: kept
    }
    assert declared_lineage({"v": ["src.a.b", "src.c"]}) == {"v": [("src", "a.b"), ("src", "c")]}


# --- tracing through the project's tables, no Spark -------------------------------------------


def _steps(traced: dict[str, TracedColumn], column: str) -> list[tuple[tuple[str, str], ...]]:
    return [trail.steps for trail in traced[column].trails]


def test_the_demo_columns_are_traced_back_to_the_sources(demo_project: Project) -> None:
    lineages = project_lineage(demo_project, ["enriched_categories"])
    # Only the table and what is upstream of it is read (the sources have no lineage).
    assert set(lineages) == {"enriched_categories", "category_totals", "clean_orders"}
    traced = trace_lineage(lineages, "enriched_categories")
    assert list(traced) == ["category_code", "category_name", "category_group", "사용일자",
                            "order_count", "total_amount", "total_quantity"]
    assert traced["total_amount"] == TracedColumn((Trail((
        ("category_totals", "total_amount"), ("clean_orders", "amount"),
        ("raw_orders", "amount"))),))
    assert _steps(traced, "category_name") == [(("categories", "category_name"),)]
    # count(*) has no column of clean_orders: the trail starts at category_totals.
    assert _steps(traced, "order_count") == [(("category_totals", "order_count"),)]
    assert all(t.end == "origin" and not c.more for c in traced.values() for t in c.trails)


def test_a_diamond_lists_each_derivation_and_names_match_case_insensitively() -> None:
    lineages: dict[str, Lineage] = {
        "top": {"Score": [("Mid", "A"), ("mid", "b")]},
        "mid": {"a": [("src", "x")], "B": [("src", "x"), ("other", "y")], "n": []},
    }
    traced = trace_lineage(lineages, "TOP")
    # Spelled as the downstream lineage spells them; two trails reach src.x.
    assert _steps(traced, "Score") == [
        (("Mid", "A"), ("src", "x")),
        (("mid", "b"), ("src", "x")),
        (("mid", "b"), ("other", "y")),
    ]
    assert trace_lineage(lineages, "src") == {}  # a source: nothing to trace
    assert trace_lineage({"t": {"v": []}}, "t") == {}  # a column without lineage


def test_a_wide_fan_in_lists_the_first_trails_and_counts_the_rest() -> None:
    wide = {"total": [("wide_in", f"c{i}") for i in range(300)]}
    traced = trace_lineage({"t": wide}, "t")
    assert len(traced["total"].trails) == 10 and traced["total"].more == 290
    assert trace_lineage({"t": wide}, "t", max_trails=3)["total"].more == 297
    assert trace_lineage({"t": wide}, "t", max_trails=0)["total"] == TracedColumn((), 300)


def test_trails_doubling_at_every_layer_are_counted_not_walked_and_cut_at_the_depth() -> None:
    # 40 layers, each column from both columns of the layer below: 2**40 trails, counted in
    # columns x depth steps. Past the depth cap a trail ends with "depth".
    layers = {f"l{i}": {"a": [(f"l{i + 1}", "a"), (f"l{i + 1}", "b")],
                        "b": [(f"l{i + 1}", "a"), (f"l{i + 1}", "b")]} for i in range(40)}
    deep = trace_lineage(layers, "l0", max_depth=60)["a"]
    assert deep.more == 2**40 - 10
    assert [len(t.steps) for t in deep.trails] == [40] * 10
    assert deep.trails[0].steps[-1] == ("l40", "a") and deep.trails[0].end == "origin"
    capped = trace_lineage(layers, "l0", max_depth=5)["a"]
    assert capped.more == 2**5 - 10
    assert {len(t.steps) for t in capped.trails} == {5}
    assert {t.end for t in capped.trails} == {"depth"}


def test_a_cycle_ends_its_trail_instead_of_looping() -> None:
    lineages: dict[str, Lineage] = {"a": {"x": [("b", "y"), ("src", "z")]},
                                    "b": {"y": [("A", "X")]},
                                    "self": {"v": [("self", "V")]}}
    traced = trace_lineage(lineages, "a")
    assert traced["x"].trails == (Trail((("b", "y"), ("A", "X")), "cycle"),
                                  Trail((("src", "z"),)))
    assert trace_lineage(lineages, "self")["v"].trails == (Trail((("self", "V"),), "cycle"),)


def test_the_markdown_has_a_row_per_trail_and_escapes_names() -> None:
    traced = {
        "total_amount": TracedColumn((Trail((("category_totals", "total_amount"),
                                             ("clean_orders", "amount"))),)),
        "a|b": TracedColumn((Trail((("t", "_x_"),), "depth"), Trail((("t", "*y*"),), "cycle")),
                            more=1234),
    }
    assert lineage_markdown(traced).value.splitlines() == [
        "| column | derives from |",
        "|---|---|",
        "| total_amount | category_totals.total_amount ← clean_orders.amount |",
        "| a\\|b | t.\\_x\\_ ← … |",
        "| a\\|b | t.\\*y\\* ← … (cycle) |",
        "| a\\|b | … 1,234 more |",
    ]


# --- spec validation ---------------------------------------------------------------------------

SOURCES = """
database: t_lin
sources:
  src: {format: parquet, path: /nowhere}
tables:
"""


def test_a_python_table_lineage_must_name_its_inputs(tmp_path: Path) -> None:
    module = write_spec(tmp_path / "pipelines", SOURCES + "  []\n").parent / "lin.py"
    module.write_text(textwrap.dedent("""
        from etl_assets import table

        @table(inputs=["src"], column_lineage={"v2": ["src.v", "other.v"]})
        def doubled(src):
            return src
    """), encoding="utf-8")
    with pytest.raises(SpecError) as err:
        load_project(tmp_path / "pipelines")
    message = str(err.value)
    assert message.startswith(f"{module}: function 'doubled': "), message
    assert "field 'column_lineage.v2': 'other.v' must be <input>.<column>" in message, message


def test_a_sql_table_cannot_declare_lineage(tmp_path: Path) -> None:
    path = write_spec(tmp_path, SOURCES + """
  - name: t
    inputs: [src]
    sql: SELECT v FROM src
    column_lineage: {v: [src.v]}
""")
    with pytest.raises(SpecError, match=f"^{path}: table 't': field 'column_lineage': a SQL "
                       "table's lineage is read from its sql"):
        load_project(tmp_path)


# --- Spark and Dagster: the recorded metadata ------------------------------------------------

PROJECT = """
database: t_lin
sources:
  orders: {{format: parquet, path: {orders}}}
  customers: {{format: parquet, path: {customers}}}
tables:
  - name: order_facts
    inputs: [orders, customers]
    sql: |
      SELECT id, name, CASE WHEN amount > 10 THEN tier ELSE 'low' END AS band,
             amount * 2 AS doubled
      FROM orders JOIN customers ON orders.customer_id = customers.customer_id
  - name: per_customer
    inputs: [order_facts]
    sql: SELECT name, sum(doubled) AS total, count(*) AS n FROM order_facts GROUP BY name
  - name: copied
    inputs: [order_facts]
    sql: SELECT * FROM order_facts
"""


def _lineage(instance: dg.DagsterInstance, asset: str) -> dict[str, set[tuple[str, str]]]:
    """The latest recorded materialization's column lineage, as {column: {(asset, column)}}."""
    (record,) = instance.fetch_materializations(dg.AssetKey(asset), limit=1).records
    value = record.asset_materialization.metadata[M.COLUMN_LINEAGE].value
    assert isinstance(value, dg.TableColumnLineage)
    return {column: {(d.asset_key.to_user_string(), d.column_name) for d in deps}
            for column, deps in value.deps_by_column.items()}


def test_a_load_records_column_lineage_from_the_input_frames(
    spark: SparkSession, settings, instance, tmp_path: Path
) -> None:
    orders, customers = tmp_path / "orders", tmp_path / "customers"
    spark.sql("SELECT id, id % 3 AS customer_id, CAST(id * 5 AS INT) AS amount "
              "FROM range(6)").write.parquet(str(orders))
    spark.sql("SELECT id AS customer_id, concat('c', id) AS name, "
              "IF(id = 0, 'gold', 'silver') AS tier FROM range(3)").write.parquet(str(customers))
    spec = write_spec(tmp_path / "pipelines", PROJECT.format(orders=orders, customers=customers))
    project = load_project(spec.parent)
    result = materialize_project(project, settings, instance)
    assert result.success

    # The parquet sources declare no schema: only the frames the load read tell which input
    # holds the unqualified `name`, `tier` and `amount`.
    assert _lineage(instance, "order_facts") == {
        "id": {("orders", "id")},
        "name": {("customers", "name")},
        "band": {("orders", "amount"), ("customers", "tier")},
        "doubled": {("orders", "amount")},
    }
    assert _lineage(instance, "per_customer") == {
        "name": {("order_facts", "name")}, "total": {("order_facts", "doubled")}}
    # `SELECT *` expands to the columns of order_facts as written.
    written = spark.table("t_lin.order_facts").columns
    assert _lineage(instance, "copied") == {c: {("order_facts", c)} for c in written}
    # Every asset named is an upstream of the table in Dagster's graph (sources included).
    graph = dg.Definitions(assets=build_assets(project),
                           resources=build_resources(settings)).resolve_asset_graph()
    for table in project.tables.values():
        upstream = {a for deps in _lineage(instance, table.name).values() for a, _ in deps}
        parents = {k.to_user_string() for k in graph.get(dg.AssetKey(table.name)).parent_keys}
        assert upstream and upstream <= parents, table.name


def test_the_demo_lineage_reaches_back_through_the_tables_to_the_sources(
    spark: SparkSession, demo_project: Project, demo_run
) -> None:
    loaded = [t.name for t in demo_project.tables.values() if not t.spec.partitions]
    metadata = {name: demo_run.asset_materializations_for_node(name)[0].metadata
                for name in loaded}
    lineage = {asset: {column: {(d.asset_key.to_user_string(), d.column_name) for d in deps}
                       for column, deps in meta[M.COLUMN_LINEAGE].value.deps_by_column.items()}
               for asset, meta in metadata.items()}

    def columns(asset: str) -> list[str]:
        """An asset's columns: a table's as written, a source's as the load reads it."""
        if asset in metadata:
            return [c.name for c in metadata[asset][M.COLUMN_SCHEMA].value.columns]
        return read_source(spark, demo_project.sources[asset]).columns

    # Each entry names a column of the table, and only columns its inputs have.
    for asset, entries in lineage.items():
        assert entries and set(entries) <= set(columns(asset)), asset
        for deps in entries.values():
            for upstream, column in deps:
                assert upstream in demo_project.tables[asset].spec.inputs, (asset, upstream)
                assert column in columns(upstream), (asset, upstream, column)

    def origins(asset: str, column: str) -> set[tuple[str, str]]:
        """Every upstream column `asset.column` derives from, through the recorded lineage."""
        found: set[tuple[str, str]] = set()
        for dep in lineage.get(asset, {}).get(column, set()):
            found |= {dep} | origins(*dep)
        return found

    enriched = lineage["enriched_categories"]
    assert enriched["category_name"] == {("categories", "category_name")}
    assert enriched["사용일자"] == {("categories", "사용일자")}
    assert origins("enriched_categories", "total_amount") >= {
        ("category_totals", "total_amount"), ("clean_orders", "amount"), ("raw_orders", "amount")}
    assert ("clean_orders", "category_code") in origins("enriched_categories", "category_code")
    # order_count is count(*): no column of clean_orders, so the trail ends at category_totals.
    assert origins("enriched_categories", "order_count") == {("category_totals", "order_count")}


def test_the_asset_definitions_carry_the_lineage_the_sql_gives(demo_project: Project) -> None:
    """Before any load: the definition's own metadata has the lineage of explicit columns, so
    the catalog shows it for a table never materialized."""
    [asset] = [a for a in build_assets(demo_project) if isinstance(a, dg.AssetsDefinition)
               and dg.AssetKey("enriched_categories") in a.keys]
    spec = asset.specs_by_key[dg.AssetKey("enriched_categories")]
    lineage = spec.metadata[M.COLUMN_LINEAGE]
    deps = {column: {(d.asset_key.path[-1], d.column_name) for d in found}
            for column, found in lineage.deps_by_column.items()}
    assert deps["category_name"] == {("categories", "category_name")}
    assert deps["total_amount"] == {("category_totals", "total_amount")}
    # The open-source UI hides that entry; the readable one, traced to the sources, it shows.
    rows = spec.metadata[M.COLUMN_LINEAGE_TEXT].value.splitlines()
    assert rows[0] == "| column | derives from |"
    assert ("| total_amount | category_totals.total_amount ← clean_orders.amount ← "
            "raw_orders.amount |") in rows
    assert "| category_name | categories.category_name |" in rows
