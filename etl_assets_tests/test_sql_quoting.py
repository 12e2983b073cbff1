"""Names and values become SQL only through `etl_assets.core.sql_quoting`, and hostile ones survive.

Why: SQL text is assembled in many modules (DDL of the target and log tables, partition specs,
the log queries, `F.col` names). A quote, backtick, semicolon or newline in any value a user
can reach (a spec's names, a column of the SQL's output, a partition value, a watermark, a run
id, a tag) must be quoted or refused, never read as SQL. The pure tests parse the quoted text
back with sqlglot's Spark dialect (an independent parser); the Spark test runs a real load with
such values and reads them back from the table and the log tables.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from urllib.parse import unquote

import pytest
import sqlglot
from sqlglot import exp

from etl_assets.core import sql_quoting as S
from etl_assets.core.settings import load_environment, load_settings
from etl_assets.core.specs import (
    DEFS_FILE,
    SpecError,
    domain_document,
    load_project,
    render_template,
)

HOSTILE = [
    "we`ird",
    "``",
    "it's",
    'say "hi"',
    "'; DROP TABLE x; --",
    "line\nbreak\r\n",
    "tab\there",
    "back\\slash\\",
    "\\'",
    "\x0012",  # NUL then octal digits: must not become one octal character
    "x.y",
    "사용일자 ✓",
    "${VAR} {watermark} %_",
]


def _literal_value(sql_literal: str) -> str:
    tree = sqlglot.parse_one(f"SELECT {sql_literal} AS v", read="spark")
    literal = tree.expressions[0].this
    assert isinstance(literal, exp.Literal) and literal.is_string, tree
    return literal.this


@pytest.mark.parametrize("text", HOSTILE)
def test_string_literal_reads_back_as_the_same_text(text: str) -> None:
    quoted = S.string_literal(text)
    assert _literal_value(quoted) == text
    assert "\n" not in quoted and "\r" not in quoted, "the SQL stays on one line"
    assert len(sqlglot.parse(f"SELECT {quoted}", read="spark")) == 1, "one statement"


@pytest.mark.parametrize("text", HOSTILE)
def test_escaped_text_is_safe_between_either_quote(text: str) -> None:
    escaped = S.escape_string(text)
    assert _literal_value(f"'{escaped}'") == text
    assert _literal_value(f'"{escaped}"') == text


@pytest.mark.parametrize("name", HOSTILE)
def test_identifier_reads_back_as_one_name(name: str) -> None:
    tree = sqlglot.parse_one(
        f"SELECT {S.identifier(name)} FROM {S.qualified_name('db', name)}", read="spark")
    (column,) = tree.expressions
    assert isinstance(column, exp.Column) and column.name == name and not column.table
    table = tree.find(exp.Table)
    assert (table.db, table.name) == ("db", name)


def test_identifier_doubles_backticks_and_refuses_empty() -> None:
    assert S.identifier("we`ird") == "`we``ird`"
    assert S.identifier("a.b") == "`a.b`"  # one column, not a struct field
    with pytest.raises(ValueError, match="empty"):
        S.identifier("")


def test_table_name_quotes_both_parts() -> None:
    assert S.table_name("etl_log.run_log") == "`etl_log`.`run_log`"
    assert S.table_name("db.t.x") == "`db`.`t.x`"
    with pytest.raises(ValueError, match="database.table"):
        S.table_name("run_log")
    with pytest.raises(ValueError, match="empty"):
        S.table_name(".run_log")


def test_partition_spec_and_column_definitions() -> None:
    spec = S.partition_spec([("k", "O'Brien; DROP TABLE x; --"), ("we`ird", "a\nb")])
    assert spec == "`k`='O\\'Brien; DROP TABLE x; --', `we``ird`='a\\nb'"
    tree = sqlglot.parse_one(f"ALTER TABLE t ADD PARTITION ({spec})", read="spark")
    assert {lit.this for lit in tree.find_all(exp.Literal)} == {
        "O'Brien; DROP TABLE x; --", "a\nb"}
    assert S.column_definitions([("a;b", "int"), ("c`", "string")]) == "`a;b` int, `c``` string"


def test_date_literal_accepts_only_dates() -> None:
    assert S.date_literal("2026-03-05") == "DATE'2026-03-05'"
    with pytest.raises(ValueError):
        S.date_literal("2026-03-05' OR '1'='1")


def test_template_values_cannot_close_the_specs_quotes() -> None:
    sql = "SELECT * FROM src WHERE mark > '{watermark}' AND day = DATE'{run_date}'"
    rendered = render_template(sql, {"watermark": "b'; DROP TABLE x; --", "run_date": "2026-01-02"})
    tree = sqlglot.parse_one(rendered, read="spark")
    assert {lit.this for lit in tree.find_all(exp.Literal)} == {
        "b'; DROP TABLE x; --", "2026-01-02"}
    assert render_template(sql) == sql.replace("{watermark}", "2000-01-01").replace(
        "{run_date}", "2000-01-01")


# --- values that cannot be quoted everywhere are refused when the spec or settings load -------


def _load(tmp_path: Path, text: str) -> None:
    spec = tmp_path / "domain" / DEFS_FILE
    spec.parent.mkdir(exist_ok=True)
    spec.write_text(domain_document(textwrap.dedent(text)), encoding="utf-8")
    load_project(tmp_path)


def _table(extra: str = "", name: str = "t", database: str = "db") -> str:
    return f"""\
database: {database}
sources:
  src: {{path: data/src.csv}}
tables:
  - name: {name}
    inputs: [src]
    sql: SELECT * FROM src
{textwrap.indent(textwrap.dedent(extra), "    ")}"""


@pytest.mark.parametrize(
    ("text", "words"),
    [
        pytest.param(_table(name="\"t'; DROP TABLE x; --\""), ["field 'name'", "DROP TABLE"],
                     id="table-name"),
        pytest.param(_table(database="\"db`x\""), ["field 'database'", "db`x"], id="database"),
        pytest.param(_table().replace("  src:", "  \"s;rc\":"),
                     ["field 'sources'", "source name 's;rc'"], id="source-name"),
        pytest.param(_table("tags: {team: \"a'; DROP TABLE x; --\"}\n"),
                     ["table 't'", "field 'tags'", "tag team"], id="tag-value"),
        pytest.param(_table("tags: {\"a b\": x}\n"), ["table 't'", "field 'tags'", "'a b'"],
                     id="tag-key"),
        pytest.param(_table("quality:\n  - {name: \"n'1\", not_null: [a]}\n"),
                     ["table 't'", "field 'name'", "n'1"], id="check-name"),
    ],
)
def test_hostile_names_are_refused_naming_file_table_and_field(
    tmp_path: Path, text: str, words: list[str]
) -> None:
    with pytest.raises(SpecError) as caught:
        _load(tmp_path, text)
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'domain' / DEFS_FILE}:"), message
    for word in words:
        assert word in message, f"{word!r} not in: {message}"


def test_hostile_column_names_are_accepted_in_specs(tmp_path: Path) -> None:
    extra = """\
        partition_by: ["k'1"]
        metrics: {sum: ["we`ird"], categorical: ["a'b;c"]}
        quality:
          - {not_null: ["we`ird"]}
          - {accepted_values: {column: "a'b;c", values: ["x'; --"]}}
        """
    _load(tmp_path, _table(extra))  # quoted where used, so nothing to refuse


def test_log_database_and_environment_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ETL_ASSETS_LOG_DB="):
        load_settings({"ETL_ASSETS_HOME": str(tmp_path), "ETL_ASSETS_LOG_DB": "log`; DROP"})
    environments = tmp_path / "environments.yaml"
    environments.write_text("prod: {database_prefix: \"p.\"}\n", encoding="utf-8")
    with pytest.raises(ValueError) as caught:
        load_environment("prod", environments)
    assert all(w in str(caught.value) for w in (str(environments), "prod", "database_prefix"))


# --- a real load with hostile names and values ------------------------------------------------

WEIRD = "we`ird"  # a backtick: F.col("`we`ird`") failed with INVALID_ATTRIBUTE_NAME_SYNTAX
TEXT = "a'b;c\nd"  # quote, semicolon, newline
PART = "p'q"  # a partition column Hive escapes in folder names (p%27q=...)
DROP = "'; DROP TABLE x; --"
FIRST = [  # id, we`ird, a'b;c\nd, k (partition value), mark (incremental, a string)
    (1, 10, "x'; --", "O'Brien; DROP TABLE x; --", "2026-01-01 it's"),
    (2, 20, "line\nbreak", "line\nbreak", "2026-01-02 O'Brien\n"),
    (3, 30, 'q"x', "back\\slash", "2026-01-03 it's \\ \"q\"\n;--"),
]
LATER = [
    (4, 40, "new'", "O'Brien; DROP TABLE x; --", "2026-01-04 x'y"),
    (5, 50, "z\\", "new; part'", "2026-01-05 " + DROP),
]


def _hostile_spec(source: Path) -> str:
    # JSON-style double quotes (JSON is YAML): YAML reads \n and \\ in them as escapes.
    return f"""\
database: t_hostile
sources:
  src: {{format: parquet, path: {source}}}
tables:
  - name: hostile_append
    inputs: [src]
    write_mode: append
    partition_by: [k]
    incremental: {{column: mark}}
    metrics: {{sum: ["{WEIRD}"], categorical: ["a'b;c\\nd"]}}
    quality:
      - {{not_null: ["{WEIRD}"]}}
      - {{accepted_values: {{column: k, values: {json.dumps([r[3] for r in FIRST + LATER])}}}}}
    sql: SELECT * FROM src WHERE mark > '{{watermark}}'
  - name: hostile_merge
    inputs: [src]
    write_mode: merge
    merge_keys: ["{WEIRD}"]
    partition_by: ["{PART}"]
    incremental: {{column: mark}}
    sql: SELECT *, k AS `{PART.replace("`", "``")}` FROM src WHERE mark > '{{watermark}}'
"""


def test_hostile_names_and_values_load_and_come_back_unchanged(
    spark, settings, tmp_path: Path, instance
) -> None:
    from pyspark.sql import functions as F
    from pyspark.sql import types as T
    from pyspark.testing import assertDataFrameEqual

    from etl_assets.core import metric_names as M
    from etl_assets_tests.helpers import materialize_project, write_spec

    schema = T.StructType([T.StructField("id", T.IntegerType()),
                           T.StructField(WEIRD, T.IntegerType()),
                           T.StructField(TEXT, T.StringType()),
                           T.StructField("k", T.StringType()),
                           T.StructField("mark", T.StringType())])
    source = tmp_path / "src"
    spec = write_spec(tmp_path / "pipelines", _hostile_spec(source))
    project = load_project(spec.parent)
    run_logs = f"{settings.log_db}.run_log"
    # The second run reads only the rows past the first one's watermark, so category_change
    # rightly sees other values; every other check, the quality rules included, passes.
    for rows, expected_mark, may_fail in ((FIRST, FIRST[2][4], set()),
                                          (FIRST + LATER, LATER[1][4], {"category_change"})):
        spark.createDataFrame(rows, schema).write.mode("overwrite").parquet(str(source))
        result = materialize_project(project, settings, instance, tags={"note": DROP})
        assert result.success
        failed = {e.check_name for e in result.get_asset_check_evaluations() if not e.passed}
        assert failed <= may_fail
        logged = spark.table(run_logs).where(F.col("run_id") == result.run_id).collect()
        assert {(r.asset, r.status, r.watermark) for r in logged} == {
            ("hostile_append", "SUCCESS", expected_mark),
            ("hostile_merge", "SUCCESS", expected_mark)}

    everything = spark.createDataFrame(FIRST + LATER, schema)
    columns = [S.identifier(c) for c in everything.columns]  # a plain "we`ird" does not parse
    assertDataFrameEqual(spark.table("t_hostile.hostile_append").select(*columns), everything)
    assertDataFrameEqual(spark.table("t_hostile.hostile_merge").select(*columns), everything)
    merged = spark.table("t_hostile.hostile_merge")
    # The second (merging) load keeps the table's column order: the key is not moved first.
    assert merged.columns == ["id", WEIRD, TEXT, "k", "mark", PART]
    assert merged.where(F.col(S.identifier(PART)) != F.col("k")).isEmpty()
    values = {r[3] for r in FIRST + LATER}
    for name, column in (("hostile_append", "k"), ("hostile_merge", PART)):
        # Hive escapes quotes, newlines and backslashes in folder names: k=O%27Brien...
        shown = [r[0] for r in spark.sql(f"SHOW PARTITIONS t_hostile.{name}").collect()]
        assert sorted(unquote(p.split("=", 1)[1]) for p in shown) == sorted(values)
        assert {unquote(p.split("=", 1)[0]) for p in shown} == {column}

    (event,) = result.asset_materializations_for_node("hostile_append")
    meta = {k: v.value for k, v in event.metadata.items()}
    assert meta[M.SUM + WEIRD] == 90 and meta[M.ROWS_WRITTEN] == 2  # the second run's rows
    # The table's rows, counted from the kept counts and the footers of the partitions the
    # append grew, whose folder names Hive escaped (`k=O%27Brien...`).
    assert meta[M.ROW_COUNT] == everything.count() == len(FIRST) + len(LATER)
    assert meta[M.CATEGORIES + TEXT] == sorted(["new'", "z\\"])
    metric_rows = spark.table(f"{settings.log_db}.metric_log").where(
        (F.col("run_id") == result.run_id) & (F.col("asset") == "hostile_append")).collect()
    assert {r.metric: r.value for r in metric_rows}[M.SUM + WEIRD] == 90


FOLDERS = ["/w/t.db/t/k=O'Brien; DROP TABLE x; --", "/w/t/k=a\nb/ü=日本", "/w/t/k=100%",
           "/w/t/k=a b+c#d?e", "hdfs://nn:8020/w/t/k=%27", "file:/w/t/k=x%2Fy",
           "s3a://bucket/w/t/k=[1]{2}"]


@pytest.mark.parametrize("folder", FOLDERS)
def test_a_location_is_read_as_hadoop_reads_it(spark, folder: str) -> None:
    # The metastore hands partition locations back as URI text (all of a table's partitions
    # in one JSON listing); read without the JVM, each must name the folder Hadoop's
    # `Path(URI)` names, or the load would look for a folder that does not exist.
    from etl_assets.engine import storage

    uri = spark.sparkContext._jvm.org.apache.hadoop.fs.Path(folder).toUri()
    assert "%" in uri.toString() or folder.isascii()  # the text really is encoded
    assert storage.folder_of_uri_text(uri.toString()) == storage.folder_of(spark, uri)
