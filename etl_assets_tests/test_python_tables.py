"""Python tables (`etl_assets/core/python_tables.py`): `@table` functions are tables like YAML ones.

Why: a team's first non-SQL transform (a window function, a pandas UDF) must not need a
second tool. These tests pin that a Python table is validated by the same models with errors
naming the module, the function and the field; that it reads and is read by YAML tables;
that its load produces the same metadata keys, log rows and checks as the equivalent SQL
table; that a failing function loses nothing and logs FAILED; and that its code version
follows its source. The pure tests never start Spark; the Spark ones use the session fixture.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from datetime import date
from pathlib import Path

import dagster as dg
import pytest
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from etl_assets.core import metric_names as M
from etl_assets.core import python_tables as PT
from etl_assets.core.settings import PACKAGE_DIR, load_settings
from etl_assets.core.specs import SpecError, load_project
from etl_assets.definitions import build_resources
from etl_assets.orchestration.domains import build_assets
from etl_assets_tests.helpers import materialize_project, write_spec

DAGSTER = Path(sys.prefix) / "bin" / "dagster"

SOURCES = """
database: {db}
sources:
  src: {{format: parquet, path: {path}}}
"""


def write_module(folder: Path, text: str, name: str = "scores.py") -> Path:
    """A Python table module (dedented) in a domain folder; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def project_with(tmp_path: Path, module: str, yaml_tables: str = "", db: str = "t_py",
                 source: Path | None = None, name: str = "scores.py"):
    """A defs folder with one domain: one source (plus YAML tables) in its defs.yaml and a
    Python table module beside it; returns (defs folder, module path)."""
    spec = SOURCES.format(db=db, path=source or "/nowhere")
    spec += f"tables:\n{textwrap.dedent(yaml_tables)}" if yaml_tables else "tables: []\n"
    pipelines = tmp_path / "pipelines"
    spec_path = write_spec(pipelines, spec)
    return pipelines, write_module(spec_path.parent, module, name)


# --- load-time errors (no Spark) -------------------------------------------------------------

HEADER = """
from pyspark.sql import DataFrame, SparkSession
from etl_assets import LoadWindow, table
"""


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        pytest.param('write_mode="upsert"', "field 'write_mode': Input should be", id="enum"),
        pytest.param('write_mod="merge"', "field 'write_mod': unknown field (did you mean "
                     "'write_mode'?)", id="unknown-option"),
        pytest.param('write_mode="merge"', "write_mode merge needs merge_keys", id="model-rule"),
        pytest.param('quality=[{"not_null": []}]', "rule #1 'not_null': field 'not_null': ",
                     id="quality-rule"),
        pytest.param('partitions={"type": "hourly", "start": "2026-01-01", "column": "d"}',
                     "field 'partitions.type': ", id="nested"),
        pytest.param('database="bad-name"', "field 'database': database 'bad-name' is not a "
                     "valid identifier", id="database"),
        pytest.param('sql="SELECT 1"', "field 'sql': a Python table's rows are what its "
                     "function returns", id="sql"),
        pytest.param('broadcast=["other"]', "field 'broadcast': 'other' is not one of the "
                     "inputs", id="project-check"),
    ],
)
def test_a_malformed_option_names_module_function_and_field(
    tmp_path: Path, options: str, expected: str
) -> None:
    pipelines, module = project_with(tmp_path, HEADER + f"""
@table(inputs=["src"], {options})
def customer_scores(spark: SparkSession, src: DataFrame) -> DataFrame:
    return src
""")
    with pytest.raises(SpecError) as err:
        load_project(pipelines)
    message = str(err.value)
    assert message.startswith(f"{module}: function 'customer_scores': "), message
    assert expected in message, message


def test_an_unknown_input_names_module_function_and_field(tmp_path: Path) -> None:
    pipelines, module = project_with(tmp_path, HEADER + """
@table(inputs=["src", "clean_ordrs"])
def customer_scores(src: DataFrame, clean_ordrs: DataFrame) -> DataFrame:
    return src
""")
    with pytest.raises(SpecError, match=f"^{module}: function 'customer_scores': field "
                       "'inputs': 'clean_ordrs' names no table or source"):
        load_project(pipelines)


def test_an_unknown_parameter_names_module_function_and_parameter(tmp_path: Path) -> None:
    pipelines, module = project_with(tmp_path, HEADER + """
@table(inputs=["src"])
def customer_scores(spark: SparkSession, src: DataFrame, windw: LoadWindow) -> DataFrame:
    return src
""")
    with pytest.raises(SpecError) as err:
        load_project(pipelines)
    assert str(err.value) == (
        f"{module}: function 'customer_scores': parameter 'windw': not 'spark', 'window' or "
        "one of the inputs ['src']; add it to inputs or remove it")


def test_a_module_that_fails_to_import_names_the_file_and_line(tmp_path: Path) -> None:
    pipelines, module = project_with(tmp_path, HEADER + """
import etl_assets.no_such_module
""")
    with pytest.raises(SpecError, match=f"^{module}: line 4: could not import the module: "
                       "ModuleNotFoundError: No module named 'etl_assets.no_such_module'"):
        load_project(pipelines)
    write_module(module.parent, "def broken(:\n", module.name)
    with pytest.raises(SpecError, match=f"^{module}: line 1: could not import the module: "
                       "SyntaxError"):
        load_project(pipelines)


def test_a_name_defined_twice_names_both_files(tmp_path: Path) -> None:
    pipelines, module = project_with(tmp_path, HEADER + """
@table(inputs=["src"])
def src_copy(src: DataFrame) -> DataFrame:
    return src
""", yaml_tables="""
  - name: src_copy
    inputs: [src]
    sql: SELECT * FROM src
""")
    with pytest.raises(SpecError, match=f"^{module}: function 'src_copy': field 'name': name "
                       "already defined in .*domain/defs.yaml"):
        load_project(pipelines)


def test_modules_leave_no_trace_in_sys_modules_and_helpers_are_skipped(tmp_path: Path) -> None:
    pipelines, _ = project_with(tmp_path, HEADER + """
@table(inputs=["src"])
def src_copy(src: DataFrame) -> DataFrame:
    return src
""")
    write_module(pipelines / "domain", "raise RuntimeError('never imported')", "_helpers.py")
    before = set(sys.modules)
    project = load_project(pipelines)
    assert set(project.tables) == {"src_copy"}
    assert not {m for m in set(sys.modules) - before if m.startswith(PT.MODULE_PREFIX)}


# --- the graph: Python and YAML tables read each other (no Spark) ----------------------------


def test_python_and_yaml_tables_read_each_other_with_the_same_lineage(tmp_path: Path) -> None:
    pipelines, module = project_with(tmp_path, HEADER + """
@table(inputs=["clean"], database="t_py", group="scoring", owners=["ana@example.com"],
       tags={"tier": "gold"}, description="Scores.")
def scores(clean: DataFrame) -> DataFrame:
    return clean
""", yaml_tables="""
  - name: clean
    inputs: [src]
    sql: SELECT * FROM src
  - name: report
    inputs: [scores, clean]
    sql: SELECT s.* FROM scores s JOIN clean c ON s.id = c.id
""")
    project = load_project(pipelines)
    assert list(project.tables) == ["clean", "scores", "report"]
    scores = project.tables["scores"]
    assert scores.function is not None and scores.spec.sql is None
    assert scores.domain == "domain" and scores.file == module  # the folder names the domain
    assert scores.qualified_name == "t_py.scores"
    graph = dg.Definitions(assets=build_assets(project),
                           resources=build_resources(load_settings())).resolve_asset_graph()

    def parents(name: str) -> set[str]:
        return {k.path[-1] for k in graph.get(dg.AssetKey(name)).parent_keys}

    assert parents("scores") == {"clean"} and parents("report") == {"scores", "clean"}
    node = graph.get(dg.AssetKey("scores"))
    assert node.group_name == "scoring" and node.owners == ["ana@example.com"]
    assert node.tags["tier"] == "gold" and node.code_version == scores.code_version
    assert "python" in node.kinds


def test_a_module_joins_the_domain_and_database_of_the_yaml_file_of_its_name(
    tmp_path: Path
) -> None:
    pipelines, _ = project_with(tmp_path, HEADER + """
@table(inputs=["src"])
def here(src: DataFrame) -> DataFrame:
    return src

@table(inputs=["src"], database="elsewhere")
def there(src: DataFrame) -> DataFrame:
    return src
""", name="domain.py")  # beside pipelines/domain.yaml, whose database is t_py
    tables = load_project(pipelines, rename_database=lambda db: f"dev_{db}").tables
    assert tables["here"].qualified_name == "dev_t_py.here"
    assert tables["there"].qualified_name == "dev_elsewhere.there"
    assert {t.domain for t in tables.values()} == {"domain"}


# --- binding and the load window (no Spark) --------------------------------------------------


def test_parameters_are_bound_by_name_with_the_rest_of_the_inputs_as_kwargs() -> None:
    window = PT.LoadWindow(date(2026, 3, 1), date(2026, 3, 2), ("2026-03-01",), None,
                           date(2026, 3, 2), False)

    def takes(window, b, **rest):  # noqa: ANN001, ANN003 - a stand-in function
        return window, b, rest

    assert PT.parameter_problems(takes, ["a", "b", "c"]) == []
    arguments = PT.call_arguments(takes, "session", {"a": 1, "b": 2, "c": 3}, window)
    assert arguments == {"window": window, "b": 2, "a": 1, "c": 3}

    def star(*frames):  # noqa: ANN002
        return frames

    assert PT.parameter_problems(star, []) == [
        "parameter 'frames': *frames gets nothing: parameters are bound by name"]
    problems = PT.parameter_problems(lambda spark, /: spark, ["spark"])
    assert problems == ["parameter 'spark': positional-only, but parameters are bound by name",
                        "field 'inputs': an input named 'spark' would be bound as the session; "
                        "rename it"]


# --- code version ----------------------------------------------------------------------------

VERSIONED = HEADER + """
from pyspark.sql import functions as F

@table(inputs=["src"], write_mode="{mode}")
def scored(src: DataFrame) -> DataFrame:
    return src.withColumn("score", F.col("v") * {factor})
"""


def test_code_version_follows_the_function_source_and_the_options(tmp_path: Path) -> None:
    def version(mode: str, factor: int, comment: str = "") -> str:
        pipelines, _ = project_with(tmp_path, VERSIONED.format(mode=mode, factor=factor)
                                    + comment)
        return load_project(pipelines).tables["scored"].code_version

    first = version("overwrite", 2)
    assert version("overwrite", 2) == first  # the same code: the same version
    assert version("overwrite", 3) != first  # the function's body changed
    assert version("append", 2) != first  # an option changed
    # Code outside the function (another function, a comment) is not the table's definition.
    assert version("overwrite", 2, "\n# a note\ndef helper():\n    return 1\n") == first


# --- Spark: the same load as SQL -------------------------------------------------------------

EQUIVALENT_OPTIONS = """
    partitions={"type": "daily", "start": "2026-03-01", "column": "d"},
    repartition=2,
    metrics={"categorical": ["k"]},
    quality=[{"not_null": ["k"], "on_fail": "quarantine"},
             {"range": {"column": "v2", "min": 0}, "severity": "ERROR"},
             {"unique": ["id"]}],
    checks={"row_count": {"severity": "ERROR"}},
    column_lineage={"d": ["src.d"], "id": ["src.id"], "k": ["src.k"], "v2": ["src.v"]},
"""

EQUIVALENT_YAML = """
  - name: sql_t
    inputs: [src]
    partitions: {type: daily, start: 2026-03-01, column: d}
    repartition: 2
    metrics: {categorical: [k]}
    quality:
      - {not_null: [k], on_fail: quarantine}
      - {range: {column: v2, min: 0}, severity: ERROR}
      - {unique: [id]}
    checks: {row_count: {severity: ERROR}}
    sql: |
      SELECT d, id, k, v * 2 AS v2 FROM src
      WHERE d >= '{partition_start}' AND d < '{partition_end}'
"""

EQUIVALENT_MODULE = HEADER + """
from pyspark.sql import functions as F

@table(inputs=["src"], name="py_t", database="t_py_same", OPTIONS)
def doubled(spark: SparkSession, src: DataFrame, window: LoadWindow) -> DataFrame:
    day = (F.col("d") >= F.lit(window.partition_start)) & (F.col("d") < F.lit(window.partition_end))
    return src.where(day).select("d", "id", "k", (F.col("v") * 2).alias("v2"))
"""

# What describes the run rather than the rows: where, when, how long, which code.
RUN_FIELDS = {"run_id", "asset", "table_name", "started_at", "finished_at", "duration_s",
              "code_version", "log_date", "recorded_at", "checked_at"}
PER_TABLE_METADATA = {M.URI, M.TABLE_NAME, M.DURATION_S}


@pytest.fixture()
def source(spark: SparkSession, tmp_path: Path) -> Path:
    """Three days of rows; one with a null k (quarantined), ids unique."""
    path = tmp_path / "src"
    spark.sql("""
        SELECT DATE'2026-03-01' + CAST(id % 3 AS INT) AS d, id,
               CASE WHEN id = 7 THEN NULL ELSE CAST(id % 4 AS INT) END AS k,
               CAST(id AS DOUBLE) / 10 AS v
        FROM range(60)
    """).write.parquet(str(path))
    return path


def test_a_python_table_loads_like_the_equivalent_sql_table(
    spark: SparkSession, settings, instance, tmp_path: Path, source: Path
) -> None:
    pipelines, _ = project_with(
        tmp_path, EQUIVALENT_MODULE.replace("OPTIONS", EQUIVALENT_OPTIONS),
        yaml_tables=EQUIVALENT_YAML, db="t_py_same", source=source,
        name="domain.py")  # the YAML file's domain, so the tables share it
    project = load_project(pipelines)
    result = materialize_project(project, settings, instance, partition_key="2026-03-02")
    assert result.success

    meta = {name: {k: v.value for k, v in result.asset_materializations_for_node(name)[0]
                   .metadata.items()} for name in ("sql_t", "py_t")}
    assert set(meta["py_t"]) == set(meta["sql_t"])
    # The declared lineage is what the SQL's gives (compared with the other shared keys).
    assert M.COLUMN_LINEAGE in meta["sql_t"]
    assert M.ROWS_REJECTED in meta["py_t"] and meta["py_t"][M.ROW_COUNT] == 19  # 20 less k null
    for key in set(meta["sql_t"]) - PER_TABLE_METADATA:
        assert meta["py_t"][key] == meta["sql_t"][key], key

    def log_rows(table: str, order: str) -> dict[str, list[dict]]:
        rows = spark.sql(f"SELECT * FROM {settings.log_db}.{table} "
                         f"WHERE run_id = '{result.run_id}' ORDER BY {order}").collect()
        by_asset: dict[str, list[dict]] = {"sql_t": [], "py_t": []}
        for row in rows:
            # Texts name the table ("1 rows quarantined to py_t__rejected"): the same
            # sentence either way once the name is taken out.
            by_asset[row.asset].append({
                k: v.replace(row.asset, "<table>") if isinstance(v, str) else v
                for k, v in row.asDict().items() if k not in RUN_FIELDS})
        return by_asset

    runs = log_rows("run_log", "asset")
    assert runs["py_t"] == runs["sql_t"] and runs["py_t"][0]["status"] == "SUCCESS"
    metrics = log_rows("metric_log", "asset, metric")
    measured = [r for r in metrics["sql_t"] if r["metric"] != M.DURATION_S]
    assert [r for r in metrics["py_t"] if r["metric"] != M.DURATION_S] == measured
    assert {r["metric"] for r in measured} >= {M.ROW_COUNT, M.SUM + "v2", M.ROWS_REJECTED}
    checks = log_rows("check_log", "asset, check_name")
    assert checks["py_t"] == checks["sql_t"] and checks["py_t"]

    evaluations: dict[str, set[str]] = {"sql_t": set(), "py_t": set()}
    for evaluation in result.get_asset_check_evaluations():
        evaluations[evaluation.asset_key.path[-1]].add(evaluation.check_name)
    assert evaluations["py_t"] == evaluations["sql_t"]
    assert {"not_null_k", "range_v2", "unique_id", "row_count_anomaly"} <= evaluations["py_t"]
    assertDataFrameEqual(spark.table("t_py_same.py_t"), spark.table("t_py_same.sql_t"))
    assertDataFrameEqual(spark.table("t_py_same.py_t__rejected"),
                         spark.table("t_py_same.sql_t__rejected"))


FAILING = HEADER + """
from pyspark.sql import functions as F

@table(inputs=["src"], database="t_py_fail")
def fragile(src: DataFrame) -> DataFrame:
    BODY
"""


def test_a_failing_function_keeps_the_previous_table_and_logs_failed(
    spark: SparkSession, settings, instance, tmp_path: Path, source: Path
) -> None:
    def load(body: str, folder: str) -> dg.ExecuteInProcessResult:
        pipelines, _ = project_with(tmp_path / folder, FAILING.replace("BODY", body),
                                    db="t_py_fail", source=source)
        return materialize_project(load_project(pipelines), settings, instance,
                                   raise_on_error=False)

    good = load('return src.select("id", "v")', "v1")
    assert good.success
    before = spark.table("t_py_fail.fragile").collect()
    assert len(before) == 60

    def failed_row(result: dg.ExecuteInProcessResult):
        assert not result.success
        (row,) = spark.sql(f"SELECT * FROM {settings.log_db}.run_log "
                           f"WHERE run_id = '{result.run_id}'").collect()
        assert row.status == "FAILED" and row.asset == "fragile" and row.row_count is None
        assertDataFrameEqual(spark.table("t_py_fail.fragile"), before)
        return row

    raised = load('raise ValueError("no scores for today")', "v2")
    assert "no scores for today" in str(raised.failure_data_for_node("fragile").error)
    assert failed_row(raised).error_message == "ValueError: no scores for today"

    returned = load("return [1, 2]", "v3")
    message = failed_row(returned).error_message
    assert message.startswith("LoadError: ") and "function 'fragile': returned list, not a " \
        "DataFrame" in message

    # Lazy: the function returns a plan that fails only while the write runs.
    lazy = load('return src.select("id", F.raise_error(F.lit("bad row")).alias("v"))', "v4")
    assert "bad row" in failed_row(lazy).error_message
    loads = spark.table("t_py_fail.fragile").inputFiles()
    assert len({Path(f.removeprefix("file:")).parent for f in loads}) == 1


def test_the_demo_python_table_rolls_a_week_and_scores_with_a_pandas_udf(
    spark: SparkSession, settings, instance, tmp_path: Path
) -> None:
    source = tmp_path / "orders"
    spark.sql("""
        SELECT * FROM VALUES
          (1, 10.00, DATE'2026-03-01'), (1, 20.00, DATE'2026-03-03'), (1, 5.00, DATE'2026-03-08'),
          (2, 300.00, DATE'2026-03-08'), (NULL, 1.00, DATE'2026-03-08')
        AS t(customer_id, amount, order_date)
    """).selectExpr("CAST(customer_id AS INT) customer_id",
                    "CAST(amount AS DECIMAL(12,2)) amount", "order_date").write.parquet(
        str(source))
    pipelines, _ = project_with(tmp_path, "", yaml_tables="""
  - name: clean_orders
    inputs: [src]
    sql: SELECT * FROM src
""", source=source)
    # The shipped module, its database renamed so the demo's own tables are left alone.
    shutil.copy(PACKAGE_DIR / "defs" / "sales" / "transforms.py", pipelines / "domain")
    project = load_project(pipelines, rename_database=lambda _: "t_py_demo")
    assert materialize_project(project, settings, instance, selection=["clean_orders"]).success
    result = materialize_project(project, settings, instance,
                                 selection=["customer_rolling_spend"], partition_key="2026-03-08")
    assert result.success
    rows = spark.table("t_py_demo.customer_rolling_spend").orderBy("customer_id").collect()
    # Customer 1: the 7 days ending 2026-03-08 hold the orders of the 3rd and the 8th.
    assert [(r.customer_id, r.orders_7d, float(r.spend_7d), r.spend_score) for r in rows] == [
        (1, 2, 25.0, 7.7), (2, 1, 300.0, 50.0)]
    assert {str(r.order_date) for r in rows} == {"2026-03-08"}
    assert all(e.passed for e in result.get_asset_check_evaluations()
               if e.check_name in ("not_null_customer_id_spend_7d", "range_spend_score"))
    # The Python workers run this interpreter, which has the project's packages.
    import pyspark.sql.functions as F

    workers = spark.range(1).select(F.udf(lambda _: sys.executable)("id")).first()[0]
    assert workers == sys.executable


# --- dg check defs ----------------------------------------------------------------------------


def test_dg_check_defs_fails_on_a_malformed_option(tmp_path: Path) -> None:
    pipelines, module = project_with(tmp_path, HEADER + """
@table(inputs=["src"], write_mode="upsert")
def customer_scores(src: DataFrame) -> DataFrame:
    return src
""")
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ETL_", "DAGSTER_"))}
    env |= {"ETL_ASSETS_HOME": str(home), "DAGSTER_HOME": str(home), "NO_COLOR": "1",
            "ETL_ASSETS_DEFS": str(pipelines), "VIRTUAL_ENV": str(DAGSTER.parent.parent)}
    done = subprocess.run([str(DAGSTER.parent / "dg"), "check", "defs"],
                          cwd=Path(__file__).resolve().parent.parent, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert f"{module}: function 'customer_scores': field 'write_mode': " in output, output
