"""Column lineage: which input columns each output column of a table derives from.

A SQL table's lineage is read from its SQL by sqlglot's own lineage walk
(`sqlglot.lineage.lineage`, which qualifies the query with `sqlglot.optimizer.qualify` and
follows every column through joins, aggregates, CASE, window functions, CTEs, subqueries and
set operations); a Python table's is what its `column_lineage` option declares. Either way the
result is plain data, `{output column: [(input name, input column), ...]}`, which the Dagster
layer turns into `dagster/column_lineage` metadata.

Lineage is informational: nothing here raises. What cannot be resolved (an unqualified column
of a join whose input columns are unknown, `SELECT *` without known input columns, a struct
field whose root is unknown) gives no entry for that column rather than a partial or a wrong
one; SQL that does not parse gives `{}`.

Pure: imports neither Spark nor Dagster.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence

import sqlglot
from sqlglot import exp
from sqlglot.lineage import Node, lineage

from etl_assets.core.specs import render_template

logger = logging.getLogger(__name__)

Lineage = dict[str, list[tuple[str, str]]]
"""Output column -> the (input name, input column) pairs it derives from, sorted."""

DIALECT = "spark"


def column_lineage(
    sql: str,
    inputs: Sequence[str],
    input_columns: Mapping[str, Sequence[str]] | None = None,
    output_columns: Sequence[str] | None = None,
) -> Lineage:
    """The lineage of each output column of a SQL table's query.

    Args:
        sql: The table's SQL (Spark dialect); `{partition_start}`-style placeholders are
            filled with sample values first (`specs.render_template`), as for validation.
        inputs: The table's input names, as the SQL reads them (case-insensitive, as Spark).
        input_columns: Input name -> its column names, when known (at load time, the
            columns of the input DataFrames). Needed to expand `SELECT *` and to tell which
            input an unqualified column of a join comes from; inputs left out, or with no
            columns, are read without a schema.
        output_columns: The written table's column names, when known: output names are
            matched to them case-insensitively (Spark's resolution), and a name not among
            them is dropped. Without them, names are spelled as the SQL or the input columns
            spell them.

    Returns:
        Output column -> its sorted (input, column) pairs, in output order. A column with no
        input column (a literal, `count(*)`, `input_file_name()`) or with any reference left
        unresolved has no entry; unparseable SQL, or SQL that is not one query, gives `{}`.
    """
    try:
        tree = sqlglot.parse_one(render_template(sql), read=DIALECT)
    except sqlglot.errors.SqlglotError as err:
        logger.info("no column lineage: the sql does not parse (%s)", err)
        return {}
    if not isinstance(tree, exp.Query):
        return {}
    by_name = {name.lower(): name for name in inputs}
    known = {name: list(cols) for name, cols in (input_columns or {}).items()
             if name.lower() in by_name and cols}
    # The types do not matter to lineage; sqlglot's schema needs one per column.
    schema = {name: {_quoted(col): "string" for col in cols} for name, cols in known.items()}
    try:
        # trim_selects=False: trimming copies the whole query for every column (a 300-column
        # join took 12 s instead of 1 s); the nodes then share their scope's statement.
        nodes = lineage(None, tree, schema, dialect=DIALECT, trim_selects=False)
    except Exception as err:  # noqa: BLE001 - sqlglot's optimizer raises assorted errors
        # (SqlglotError, ValueError, KeyError on odd trees); lineage must not fail a load.
        logger.info("no column lineage: sqlglot could not trace the sql (%s: %s)",
                    type(err).__name__, err)
        return {}
    # sqlglot lowercases names (Spark resolves them case-insensitively): spell them back.
    spelled = _spellings(ident.name for ident in tree.find_all(exp.Identifier))
    input_spelling = {by_name[name.lower()]: _spellings(cols) for name, cols in known.items()}
    for cols in known.values():
        spelled |= {k: v for k, v in _spellings(cols).items() if k not in spelled}
    outputs = _spellings(output_columns) if output_columns is not None else None
    result: Lineage = {}
    statements: dict[int, dict[str, str]] = {}
    for name, node in nodes.items():
        if outputs is not None:
            column = outputs.get(name.lower())
        else:
            column = spelled.get(name.lower(), name)
        deps = _dependencies(node, by_name, input_spelling, spelled, statements)
        if column is not None and deps:
            result[column] = deps
    return result


def _dependencies(
    root: Node,
    inputs: dict[str, str],
    input_spelling: dict[str, dict[str, str]],
    spelled: dict[str, str],
    statements: dict[int, dict[str, str]],
) -> list[tuple[str, str]] | None:
    """The (input, column) leaves under one output column's node; None when any is unknown.

    A leaf is a node without downstream: an input table (resolved), a placeholder (a column
    sqlglot could not place) or an unexpanded `*`. Its column is looked up in its parent's
    statement (a lateral view's, for a UDTF) by the text sqlglot named the leaf with, so a
    name that is a keyword or holds a dot or a quote needs no parsing back. `statements`
    caches each statement's column texts -> names across the output columns.
    """
    found: set[tuple[str, str]] = set()
    for node in root.walk():
        for leaf in node.downstream:
            if leaf.downstream:
                continue
            if isinstance(leaf.expression, exp.Placeholder):
                return None
            if not isinstance(leaf.expression, exp.Table):
                continue  # a select of no column (a literal, count(*)): nothing to add
            columns = statements.get(id(node.source))
            if columns is None:
                columns = {c.sql(comments=False): c.name
                           for c in node.source.find_all(exp.Column)}
                statements[id(node.source)] = columns
            source = inputs.get(leaf.expression.name.lower())
            column = columns.get(leaf.name)
            if source is None or column is None:  # not an input, or `*` left unexpanded
                return None
            spelling = input_spelling.get(source, spelled)
            found.add((source, spelling.get(column.lower(), column)))
    return sorted(found)


def declared_lineage(
    declared: Mapping[str, Sequence[str]],
    input_columns: Mapping[str, Sequence[str]] | None = None,
    output_columns: Sequence[str] | None = None,
) -> Lineage:
    """A Python table's declared `column_lineage` (`{"out": ["input.col", ...]}`) as lineage.

    The input name ends at the first dot (input names are identifiers), so the column may
    hold dots. With `output_columns` or `input_columns` known (at load time), an output
    column the function does not return, or an input column its input does not have, is
    dropped with a warning, and names are spelled as the frames spell them
    (case-insensitively). An output column left without dependencies has no entry.
    """
    outputs = _spellings(output_columns) if output_columns is not None else None
    columns = {name: _spellings(cols) for name, cols in (input_columns or {}).items()}
    result: Lineage = {}
    for output, refs in declared.items():
        column = outputs.get(output.lower()) if outputs is not None else output
        if column is None:
            logger.warning("column_lineage names '%s', which the table does not have "
                           "(columns: %s); ignored", output, list(output_columns or []))
            continue
        deps = set()
        for ref in refs:
            source, _, name = ref.partition(".")
            if source in columns:
                if name.lower() not in columns[source]:
                    logger.warning("column_lineage of '%s': '%s' is not a column of the "
                                   "input '%s'; ignored", output, name, source)
                    continue
                name = columns[source][name.lower()]
            deps.add((source, name))
        if deps:
            result[column] = sorted(deps)
    return result


def _spellings(names: Iterable[str]) -> dict[str, str]:
    """Lowercased name -> its first spelling."""
    found: dict[str, str] = {}
    for name in names:
        found.setdefault(name.lower(), name)
    return found


def _quoted(column: str) -> str:
    """A column name as sqlglot's schema reads it: backticked, so a name holding a dot, a
    space or a keyword is one column."""
    return exp.to_identifier(column, quoted=True).sql(dialect=DIALECT)
