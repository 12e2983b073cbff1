"""Tests of the table specs (`etl_assets/core/specs.py`): the YAML models, the loader and its errors.

A malformed spec must fail when Dagster loads the definitions, with one message naming the file,
the table (or source) and the field, never later inside a Spark run. These tests pin that
contract for each kind of mistake, plus the demo domain, the SQL table finder and code versions.
They never start Spark (pure parsing, milliseconds), except the two `dagster definitions
validate` subprocess tests, which take a few seconds each.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from etl_assets.core.settings import DEFAULT_DEFS
from etl_assets.core.specs import (
    DEFS_FILE,
    Project,
    SpecError,
    domain_document,
    load_project,
    sql_tables,
)

DEMO_TABLES = [
    "clean_orders",
    "category_totals",
    "customer_stats",
    "enriched_categories",
    "final_output",
    "report_data",
    "daily_sales",
    "customers_dim",
    "landed_order_totals",
    "customer_rolling_spend",  # a Python table, etl_assets/defs/sales/transforms.py
    "spend_bands",
]
BIN = Path(sys.prefix) / "bin"  # the venv's, beside its python
ROOT = Path(__file__).resolve().parent.parent


def write_files(folder: Path, files: dict[str, str]) -> dict[str, Path]:
    """Write domains (file name -> spec YAML, dedented) into a defs folder, each as
    `<stem>/defs.yaml`; return their paths by the given names."""
    paths = {}
    for name, text in files.items():
        path = paths[name] = folder / Path(name).stem / DEFS_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(domain_document(textwrap.dedent(text).lstrip("\n")), encoding="utf-8")
    return paths


# --- the demo domain -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo() -> Project:
    """The shipped specs, loaded without Spark."""
    return load_project(DEFAULT_DEFS)


def test_demo_has_eleven_tables_and_four_sources(demo: Project) -> None:
    assert sorted(demo.tables) == sorted(DEMO_TABLES)
    assert sorted(demo.sources) == ["categories", "customers", "landed_orders", "raw_orders"]
    assert demo.tables["daily_sales"].spec.partitions.column == "order_date"
    assert demo.tables["customers_dim"].incremental_input == "customers"
    assert {table.domain for table in demo.tables.values()} == {"sales"}
    files = {name: table.file.name for name, table in demo.tables.items()}
    assert files.pop("customer_rolling_spend") == "transforms.py"
    assert set(files.values()) == {DEFS_FILE}
    # `make demo` loads the partitioned tables in its --partition-range run, by this tag.
    assert {n for n, t in demo.tables.items() if t.spec.tags.get("cadence") == "daily"} == {
        n for n, t in demo.tables.items() if t.spec.partitions}


def test_demo_tables_are_in_dependency_order(demo: Project) -> None:
    order = list(demo.tables)
    assert order.index("clean_orders") < order.index("category_totals")
    assert order.index("clean_orders") < order.index("customer_stats")
    assert order.index("category_totals") < order.index("enriched_categories")
    assert order.index("enriched_categories") < order.index("final_output")
    assert order.index("customer_stats") < order.index("report_data")
    # Every table comes after each of its table inputs.
    for position, name in enumerate(order):
        for upstream in demo.upstream(name):
            if upstream in demo.tables:
                assert order.index(upstream) < position, (name, upstream)


def test_demo_qualified_names_are_in_etl_demo(demo: Project) -> None:
    for name, table in demo.tables.items():
        assert table.database == "etl_demo"
        assert table.qualified_name == f"etl_demo.{name}"


def test_demo_upstream_matches_inputs(demo: Project) -> None:
    assert demo.upstream("clean_orders") == ["raw_orders"]
    assert demo.upstream("enriched_categories") == ["category_totals", "categories"]
    assert demo.tables["enriched_categories"].spec.broadcast == ["categories"]


def test_demo_source_paths_resolve_to_existing_files(demo: Project) -> None:
    for source in demo.sources.values():
        assert source.resolved_path is not None, source.name
        path = Path(source.resolved_path)
        assert path.is_absolute()
        if "*" in path.name:
            assert list(path.parent.glob(path.name)), f"{source.name}: {path} matches nothing"
            continue
        assert path.is_file(), f"{source.name}: {path} does not exist"
        assert path.parent.name == "sample_data"


# --- sql_tables ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        pytest.param("SELECT * FROM a", {"a"}, id="single"),
        pytest.param(
            "SELECT a.x, b.y FROM a JOIN b ON a.id = b.id LEFT JOIN c USING (id)",
            {"a", "b", "c"},
            id="joins",
        ),
        pytest.param(
            "SELECT * FROM (SELECT * FROM inner_t) s WHERE s.x IN (SELECT x FROM other_t)",
            {"inner_t", "other_t"},
            id="subqueries",
        ),
        pytest.param(
            "SELECT EXISTS(SELECT 1 FROM e) AS f FROM t", {"e", "t"}, id="exists-subquery"
        ),
        pytest.param(
            "WITH w AS (SELECT * FROM base) SELECT * FROM w JOIN dim ON w.k = dim.k",
            {"base", "dim"},
            id="cte-excluded",
        ),
        pytest.param(
            "WITH a AS (SELECT * FROM src), b AS (SELECT * FROM a) SELECT * FROM b",
            {"src"},
            id="chained-ctes",
        ),
        pytest.param(
            "WITH W AS (SELECT * FROM base) SELECT * FROM w",
            {"base"},
            id="cte-case-insensitive",
        ),
        pytest.param(
            "SELECT t.category_code, c.`사용일자`, c.`주문 금액` "
            "FROM category_totals t LEFT JOIN categories c ON t.category_code = c.category_code",
            {"category_totals", "categories"},
            id="backticked-unicode-columns",
        ),
        pytest.param(
            "SELECT `사용일자` FROM `카테고리`", {"카테고리"}, id="backticked-unicode-table"
        ),
        pytest.param("SELECT * FROM a UNION ALL SELECT * FROM b", {"a", "b"}, id="union"),
        pytest.param("SELECT * FROM db.t", {"db.t"}, id="qualified"),
        pytest.param(
            "SELECT x FROM t LATERAL VIEW explode(arr) e AS x", {"t"}, id="lateral-view"
        ),
        pytest.param("SELECT * FROM VALUES (1, 2) AS v(a, b)", set(), id="values"),
        pytest.param("SELECT 1", set(), id="no-table"),
    ],
)
def test_sql_tables(sql: str, expected: set[str]) -> None:
    assert sql_tables(sql) == expected


def test_sql_tables_of_demo_specs(demo: Project) -> None:
    """Each shipped table's SQL reads exactly its inputs (a Python table has no SQL)."""
    for name, table in demo.tables.items():
        if table.function is None:
            assert sql_tables(table.spec.sql) == set(table.spec.inputs), name
    assert demo.tables["customer_rolling_spend"].spec.sql is None


@pytest.mark.parametrize(
    ("sql", "words"),
    [
        pytest.param("SELECT FROM WHERE ((", ["does not parse", "line 1"], id="parse-error"),
        pytest.param("SELECT 'abc FROM t", ["does not parse", "unclosed quote"], id="token-error"),
        pytest.param("SELECT 1; SELECT 2", ["exactly one"], id="two-statements"),
        pytest.param("INSERT INTO x SELECT 1", ["must be a query", "INSERT"], id="not-a-query"),
    ],
)
def test_sql_tables_rejects_bad_sql(sql: str, words: list[str]) -> None:
    with pytest.raises(ValueError) as caught:
        sql_tables(sql)
    for word in words:
        assert word in str(caught.value)
    assert "\x1b[" not in str(caught.value), "no terminal escape codes in the message"


# --- code_version ----------------------------------------------------------------------------


def _demo_copy(folder: Path, old: str = "", new: str = "") -> Project:
    """The demo domain (its defs.yaml and Python tables) copied, with `old` replaced."""
    shutil.copytree(DEFAULT_DEFS / "sales", folder / "sales",
                    ignore=shutil.ignore_patterns("__pycache__"))
    spec = folder / "sales" / DEFS_FILE
    text = spec.read_text(encoding="utf-8")
    if old:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    spec.write_text(text, encoding="utf-8")
    return load_project(folder)


def test_code_version_is_stable_across_loads(demo: Project, tmp_path: Path) -> None:
    again = load_project(DEFAULT_DEFS)
    copied = _demo_copy(tmp_path)
    for name in DEMO_TABLES:
        version = demo.tables[name].code_version
        assert version == again.tables[name].code_version
        assert version == copied.tables[name].code_version  # not tied to the file's location
        assert len(version) == 16
    assert len({t.code_version for t in demo.tables.values()}) == len(DEMO_TABLES)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        pytest.param(
            "SUM(quantity) AS total_quantity",
            "SUM(quantity) AS total_qty",
            id="sql",
        ),
        pytest.param(
            "        FROM clean_orders\n        GROUP BY category_code",
            "        FROM clean_orders\n        GROUP BY category_code\n      coalesce: 2",
            id="coalesce",
        ),
        pytest.param(
            "    - name: category_totals\n",
            "    - name: category_totals\n      description: Totals per category.\n",
            id="description",
        ),
        pytest.param(
            "        FROM clean_orders\n        GROUP BY category_code",
            "        FROM clean_orders\n        GROUP BY category_code\n"
            "      metrics:\n        categorical: [category_code]",
            id="metrics",
        ),
    ],
)
def test_code_version_changes_only_for_the_changed_table(
    demo: Project, tmp_path: Path, old: str, new: str
) -> None:
    changed = _demo_copy(tmp_path, old, new)
    assert changed.tables["category_totals"].code_version != (
        demo.tables["category_totals"].code_version
    )
    for name in DEMO_TABLES:
        if name != "category_totals":  # upstream, sibling and downstream tables keep theirs
            assert changed.tables[name].code_version == demo.tables[name].code_version, name


def test_code_version_changes_with_the_database(demo: Project, tmp_path: Path) -> None:
    moved = _demo_copy(tmp_path, "database: etl_demo", "database: etl_other")
    for name in DEMO_TABLES:
        assert moved.tables[name].qualified_name == f"etl_other.{name}"
        assert moved.tables[name].code_version != demo.tables[name].code_version


# --- malformed specs -------------------------------------------------------------------------

SOURCES = """\
sources:
  orders: {path: data/orders.csv}
  dim: {path: data/dim.csv}
"""


def one_table(table: str, sources: str = SOURCES, head: str = "") -> dict[str, str]:
    """A `domain.yaml`: optional top-level lines, the sources, and the given table entries."""
    return {"domain.yaml": head + sources + "tables:\n" + textwrap.indent(table, "  ")}


CLEAN = """\
- name: clean
  inputs: [orders]
  sql: SELECT * FROM orders
"""


def clean_with(extra: str) -> str:
    """The `clean` table with extra YAML lines appended to its entry."""
    return CLEAN + textwrap.indent(textwrap.dedent(extra), "  ")


MALFORMED = [
    pytest.param(
        one_table(clean_with("repartitoin: 4\n")),
        "domain.yaml",
        ["table 'clean'", "field 'repartitoin'", "unknown field", "did you mean 'repartition'"],
        id="unknown-field",
    ),
    pytest.param(
        one_table(clean_with("metrics: {categorial: [x]}\n")),
        "domain.yaml",
        ["table 'clean'", "field 'metrics.categorial'", "unknown field", "'categorical'"],
        id="unknown-nested-field",
    ),
    pytest.param(
        one_table(CLEAN, sources="sources:\n  orders: {path: a.csv, hedaer: true}\n"),
        "domain.yaml",
        ["source 'orders'", "field 'hedaer'", "unknown field"],
        id="unknown-source-field",
    ),
    pytest.param(
        one_table("- name: clean\n  inputs: [orders]\n"),
        "domain.yaml",
        ["table 'clean'", "field 'sql'", "missing required field"],
        id="missing-sql",
    ),
    pytest.param(
        one_table("- inputs: [orders]\n  sql: SELECT * FROM orders\n"),
        "domain.yaml",
        ["table #1", "field 'name'", "missing required field"],
        id="missing-name",
    ),
    pytest.param(
        one_table("- name: clean\n  inputs: [orders]\n  sql: '   '\n"),
        "domain.yaml",
        ["table 'clean'", "field 'sql'", "sql is empty"],
        id="empty-sql",
    ),
    pytest.param(
        one_table("- name: clean\n  inputs: [nope]\n  sql: SELECT * FROM nope\n"),
        "domain.yaml",
        ["table 'clean'", "field 'inputs'", "'nope' names no table or source"],
        id="unknown-input",
    ),
    pytest.param(
        one_table(
            "- {name: a, inputs: [b], sql: SELECT * FROM b}\n"
            "- {name: b, inputs: [a], sql: SELECT * FROM a}\n"
        ),
        "domain.yaml",
        ["table 'a'", "field 'inputs'", "dependency cycle a -> b -> a"],
        id="cycle",
    ),
    pytest.param(
        one_table(
            "- {name: a, inputs: [c], sql: SELECT * FROM c}\n"
            "- {name: b, inputs: [a], sql: SELECT * FROM a}\n"
            "- {name: c, inputs: [b], sql: SELECT * FROM b}\n"
        ),
        "domain.yaml",
        ["table 'a'", "field 'inputs'", "dependency cycle a -> c -> b -> a"],
        id="cycle-of-three",
    ),
    pytest.param(
        one_table(
            "- {name: a, inputs: [orders], sql: SELECT id FROM orders,\n"
            "   quality: [{relationship: {column: id, to: b.id}}]}\n"
            "- {name: b, inputs: [a], sql: SELECT * FROM a}\n"
        ),
        "domain.yaml",
        ["table 'a'", "dependency cycle a -> b -> a", "a quality rule's relationship or sql"],
        id="cycle-through-a-quality-rule",
    ),
    pytest.param(
        one_table("- name: clean\n  inputs: [clean]\n  sql: SELECT * FROM clean\n"),
        "domain.yaml",
        ["table 'clean'", "field 'inputs'", "reads itself"],
        id="reads-itself",
    ),
    pytest.param(
        {
            "first.yaml": SOURCES + "tables:\n" + textwrap.indent(CLEAN, "  "),
            "second.yaml": "tables:\n" + textwrap.indent(CLEAN, "  "),
        },
        "second.yaml",
        ["first/defs.yaml", "table 'clean'", "field 'name'", "already defined"],
        id="duplicate-table-across-files",
    ),
    pytest.param(
        one_table("- name: orders\n  inputs: [dim]\n  sql: SELECT * FROM dim\n"),
        "domain.yaml",
        ["table 'orders'", "field 'name'", "already defined"],
        id="table-named-like-a-source",
    ),
    pytest.param(
        one_table(clean_with("write_mode: upsert\n")),
        "domain.yaml",
        ["table 'clean'", "field 'write_mode'", "'overwrite'", "got 'upsert'"],
        id="bad-write-mode",
    ),
    pytest.param(
        one_table(clean_with("repartition: 0\n")),
        "domain.yaml",
        ["table 'clean'", "field 'repartition'", "greater than 0", "got 0"],
        id="repartition-zero",
    ),
    pytest.param(
        one_table(clean_with("repartition: four\n")),
        "domain.yaml",
        ["table 'clean'", "field 'repartition'", "valid integer", "got 'four'"],
        id="repartition-not-a-number",
    ),
    pytest.param(
        one_table(clean_with("repartition: 2\ncoalesce: 1\n")),
        "domain.yaml",
        ["table 'clean'", "field 'coalesce'", "either repartition or coalesce, not both"],
        id="repartition-and-coalesce",
    ),
    pytest.param(
        one_table("- name: clean\n  inputs: [orders]\n  sql: SELECT FROM WHERE ((\n"),
        "domain.yaml",
        ["table 'clean'", "field 'sql'", "does not parse", "line 1, column 17", "'WHERE'"],
        id="sql-does-not-parse",
    ),
    pytest.param(
        one_table("- name: clean\n  inputs: [orders]\n  sql: \"SELECT 'x FROM orders\"\n"),
        "domain.yaml",
        ["table 'clean'", "field 'sql'", "does not parse", "unclosed quote"],
        id="sql-unclosed-quote",
    ),
    pytest.param(
        one_table("- name: clean\n  inputs: [orders]\n  sql: DROP TABLE orders\n"),
        "domain.yaml",
        ["table 'clean'", "field 'sql'", "must be a query", "DROP"],
        id="sql-not-a-query",
    ),
    pytest.param(
        one_table(
            "- name: clean\n  inputs: [orders]\n"
            "  sql: SELECT * FROM orders o JOIN dim d ON o.k = d.k\n"
        ),
        "domain.yaml",
        ["table 'clean'", "field 'sql'", "reads 'dim'", "not listed in inputs"],
        id="sql-reads-non-input",
    ),
    pytest.param(
        one_table("- name: clean\n  inputs: [orders]\n  sql: SELECT * FROM etl_demo.orders\n"),
        "domain.yaml",
        ["table 'clean'", "field 'sql'", "reads 'etl_demo.orders'", "not listed in inputs"],
        id="sql-reads-hive-table-directly",
    ),
    pytest.param(
        one_table("- name: bad-name\n  inputs: [orders]\n  sql: SELECT * FROM orders\n"),
        "domain.yaml",
        ["table 'bad-name'", "field 'name'", "not a valid identifier"],
        id="bad-table-name",
    ),
    pytest.param(
        one_table(CLEAN, head="database: my-db\n"),
        "domain.yaml",
        ["field 'database'", "'my-db'", "not a valid identifier"],
        id="bad-database-name",
    ),
    pytest.param(
        one_table(CLEAN, sources="sources:\n  bad-src: {path: a.csv}\n"),
        "domain.yaml",
        ["field 'sources'", "source name 'bad-src'", "not a valid identifier"],
        id="bad-source-name",
    ),
    pytest.param(
        {"domain.yaml": "tables:\n  - name: clean\n    inputs: [orders\n    sql: SELECT 1\n"},
        "domain.yaml",
        ["YAML syntax error", "line 6"],  # of defs.yaml: the spec starts at line 3
        id="yaml-syntax-error",
    ),
    pytest.param(
        {"domain.yaml": "tables:\n  - name: clean\n    inputs: [orders]\n\tsql: SELECT 1\n"},
        "domain.yaml",
        ["YAML syntax error", "line 6, column 3", "'\\t'"],
        id="yaml-tab-indent",
    ),
    pytest.param(
        one_table(clean_with("broadcast: [dim]\n")),
        "domain.yaml",
        ["table 'clean'", "field 'broadcast'", "'dim' is not one of the inputs"],
        id="broadcast-non-input",
    ),
    pytest.param(
        one_table(CLEAN, sources="sources:\n  orders: {format: csv}\n"),
        "domain.yaml",
        ["source 'orders'", "field 'path'", "neither 'path'", "nor 'table'"],
        id="source-without-path-or-table",
    ),
    pytest.param(
        one_table(CLEAN, sources="sources:\n  orders: {table: raw.orders}\n"),
        "domain.yaml",
        ["source 'orders'", "field 'format'", "must be 'table'", "got 'csv'"],
        id="source-table-without-format-table",
    ),
    pytest.param(
        one_table(CLEAN, sources="sources:\n  orders: {format: table, path: a.csv}\n"),
        "domain.yaml",
        ["source 'orders'", "field 'table'", "no 'table'"],
        id="source-format-table-without-table",
    ),
    pytest.param(
        one_table(CLEAN, sources="sources:\n  orders: {format: xls, path: a.xls}\n"),
        "domain.yaml",
        ["source 'orders'", "field 'format'", "'parquet'", "got 'xls'"],
        id="source-bad-format",
    ),
    pytest.param(
        {"domain.yaml": "- name: clean\n- name: other\n"},
        "domain.yaml",
        ["field 'attributes'", "expected a mapping with 'tables:'", "got a list"],
        id="top-level-list",
    ),
    pytest.param(
        {"domain.yaml": "# nothing here yet\n"},
        "domain.yaml",
        ["field 'attributes'", "expected a mapping with 'tables:'", "got none"],
        id="empty-file",
    ),
    pytest.param(
        {"domain.yaml": SOURCES},
        "domain.yaml",
        ["field 'tables'", "missing required field"],
        id="no-tables",
    ),
    pytest.param(
        {"domain.yaml": "tables:\n  - clean\n"},
        "domain.yaml",
        ["table #1", "expected a mapping", "got 'clean'"],
        id="table-entry-not-a-mapping",
    ),
    pytest.param(
        one_table(clean_with("metrics: {categorical: [x], category_cap: 0}\n")),
        "domain.yaml",
        ["table 'clean'", "field 'metrics.category_cap'", "greater than or equal to 1"],
        id="category-cap-zero",
    ),
    pytest.param(
        one_table(clean_with("metrics: {categorical: [x], category_cap: 20000}\n")),
        "domain.yaml",
        ["table 'clean'", "field 'metrics.category_cap'", "less than or equal to 10000"],
        id="category-cap-too-large",
    ),
    pytest.param(
        one_table(clean_with("partition_by: ['  ']\n")),
        "domain.yaml",
        ["table 'clean'", "field 'partition_by'", "is empty"],
        id="partition-column-blank",
    ),
    pytest.param(
        one_table(clean_with("checks: {row_count: {blocking: true}}\n")),
        "domain.yaml",
        ["table 'clean'", "field 'checks'", "blocking needs severity: ERROR"],
        id="checks-blocking-without-error",
    ),
    pytest.param(
        one_table(clean_with("checks: {row_count: {max_chnage: 0.3}}\n")),
        "domain.yaml",
        ["table 'clean'", "field 'checks.row_count.max_chnage'", "did you mean 'max_change'"],
        id="checks-unknown-tuning-field",
    ),
    pytest.param(
        one_table(clean_with("checks: {defaults: {window: 0}}\n")),
        "domain.yaml",
        ["table 'clean'", "field 'checks.defaults.window'", "greater than or equal to 1"],
        id="checks-window-zero",
    ),
    pytest.param(
        one_table(clean_with("checks: {row_count: {severity: FATAL}}\n")),
        "domain.yaml",
        ["table 'clean'", "field 'checks.row_count.severity'", "'WARN' or 'ERROR'"],
        id="checks-bad-severity",
    ),
    pytest.param(
        one_table(clean_with("write_mode: append\n"
                             "incremental: {column: updated_at, lookback: 2 days}\n")),
        "domain.yaml",
        ["table 'clean'", "field 'incremental.lookback'", "append", "second time", "merge"],
        id="lookback-with-append",
    ),
    pytest.param(
        one_table(clean_with("write_mode: merge\nmerge_keys: [id]\n"
                             "incremental: {column: updated_at, lookback: two days}\n")),
        "domain.yaml",
        ["table 'clean'", "field 'incremental.lookback'", "'two days'", "'6 hours'"],
        id="lookback-not-a-duration",
    ),
    pytest.param(
        one_table(clean_with("write_mode: merge\nmerge_keys: [id]\n"
                             "incremental: {column: version, lookback: -3}\n")),
        "domain.yaml",
        ["table 'clean'", "field 'incremental.lookback'", "negative"],
        id="lookback-negative",
    ),
    pytest.param(
        {"domain.yaml": "sources:\n  orders: {path: '${ETL_ASSETS_NO_SUCH_VAR}/o.csv'}\n"
                        "tables:\n" + textwrap.indent(CLEAN, "  ")},
        "domain.yaml",
        ["source 'orders'", "field 'path'", "ETL_ASSETS_NO_SUCH_VAR is not set"],
        id="source-path-unset-variable",
    ),
]


@pytest.mark.parametrize(("files", "culprit", "words"), MALFORMED)
def test_malformed_spec_fails_with_a_precise_message(
    tmp_path: Path, files: dict[str, str], culprit: str, words: list[str]
) -> None:
    paths = write_files(tmp_path, files)
    with pytest.raises(SpecError) as caught:
        load_project(tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{paths[culprit]}:"), message
    for word in words:
        assert word in message, f"{word!r} not in: {message}"
    assert "\x1b[" not in message, "no terminal escape codes in the message"


@pytest.mark.parametrize(("lookback", "expected"), [
    ("2 days", timedelta(days=2)), ("6 hours", timedelta(hours=6)), ("90m", timedelta(minutes=90)),
    ("1 week", timedelta(weeks=1)), ("30 seconds", timedelta(seconds=30)), (5, 5), (0, 0),
])
def test_lookback_is_a_duration_or_a_whole_number(
    tmp_path: Path, lookback: object, expected: object
) -> None:
    incremental = f"incremental: {{column: updated_at, lookback: {lookback}}}\n"
    write_files(tmp_path, one_table(clean_with("write_mode: merge\nmerge_keys: [id]\n"
                                               + incremental)))
    spec = load_project(tmp_path).tables["clean"].spec.incremental
    assert spec.lookback_value == expected and spec.count_skipped


def test_several_problems_in_one_table_are_each_listed(tmp_path: Path) -> None:
    write_files(tmp_path, one_table(clean_with("repartitoin: 4\nwrite_mode: upsert\n")))
    with pytest.raises(SpecError) as caught:
        load_project(tmp_path)
    lines = str(caught.value).splitlines()
    assert len(lines) == 2
    assert "field 'repartitoin'" in str(caught.value)
    assert "field 'write_mode'" in str(caught.value)


def test_empty_folder_fails(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no <domain>/defs.yaml of type"):
        load_project(tmp_path)


def test_sql_names_are_matched_to_inputs_case_insensitively(tmp_path: Path) -> None:
    """Spark resolves the input views case-insensitively, so the loader must accept it too."""
    write_files(
        tmp_path,
        one_table("- name: clean\n  inputs: [orders]\n  sql: SELECT * FROM Orders\n"),
    )
    project = load_project(tmp_path)
    assert list(project.tables) == ["clean"]


def test_source_paths_resolve_against_the_spec_folder(tmp_path: Path) -> None:
    write_files(tmp_path / "pipelines", one_table(CLEAN))
    project = load_project(tmp_path / "pipelines")
    assert project.sources["orders"].resolved_path == str(
        (tmp_path / "pipelines" / "domain" / "data" / "orders.csv").resolve()
    )
    assert project.tables["clean"].qualified_name == "etl_demo.clean"
    assert project.tables["clean"].domain == "domain"


def test_hive_table_source_has_no_path(tmp_path: Path) -> None:
    sources = "sources:\n  orders: {format: table, table: raw.orders}\n"
    write_files(tmp_path, one_table(CLEAN, sources=sources))
    source = load_project(tmp_path).sources["orders"]
    assert source.spec.table == "raw.orders"
    assert source.resolved_path is None


# --- dagster definitions validate -----------------------------------------------------------


# `dg check defs` (what users run) and `dagster definitions validate` (what older tooling
# runs) load the code location the same way; both must refuse a malformed spec.
CHECK_COMMANDS = {
    "dg-check-defs": [str(BIN / "dg"), "check", "defs"],
    "dagster-definitions-validate": [str(BIN / "dagster"), "definitions", "validate",
                                     "-m", "etl_assets.definitions"],
}


def _validate(tmp_path: Path, defs: Path | None, command: str = "dg-check-defs"
              ) -> subprocess.CompletedProcess[str]:
    """Run a check command on the project (with `defs` as its defs folder when given), state
    kept under tmp_path."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ETL_", "DAGSTER_"))}
    env |= {"ETL_ASSETS_HOME": str(home), "DAGSTER_HOME": str(home), "NO_COLOR": "1",
            "VIRTUAL_ENV": str(BIN.parent)}
    if defs is not None:
        env["ETL_ASSETS_DEFS"] = str(defs)
    return subprocess.run(
        CHECK_COMMANDS[command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize("command", list(CHECK_COMMANDS))
def test_check_commands_fail_on_a_malformed_spec(tmp_path: Path, command: str) -> None:
    paths = write_files(tmp_path / "defs", one_table(clean_with("repartitoin: 4\n")))
    result = _validate(tmp_path, tmp_path / "defs", command)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "SpecError" in output
    assert (
        f"{paths['domain.yaml']}: table 'clean': field 'repartitoin': unknown field" in output
    ), output


def test_dg_check_defs_passes_for_the_shipped_specs(tmp_path: Path) -> None:
    result = _validate(tmp_path, None)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "All definitions loaded successfully" in output
    assert "superseded" not in output.lower()


def test_source_path_takes_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    folder = DEFAULT_DEFS
    default = load_project(folder).sources["raw_orders"].resolved_path
    assert default.endswith("sample_data/raw_orders.csv")
    monkeypatch.setenv("ETL_ASSETS_DEMO_ORDERS", "raw_orders_shrunk.csv")
    shrunk = load_project(folder).sources["raw_orders"].resolved_path
    assert shrunk.endswith("sample_data/raw_orders_shrunk.csv") and Path(shrunk).is_file()
