"""Column lineage: which input columns each output column of a table derives from.

A SQL table's lineage is read from its SQL by sqlglot's own lineage walk
(`sqlglot.lineage.lineage`, which qualifies the query with `sqlglot.optimizer.qualify` and
follows every column through joins, aggregates, CASE, window functions, CTEs, subqueries and
set operations); a Python table's is what its `column_lineage` option declares. Either way the
result is plain data, `{output column: [(input name, input column), ...]}`, which the Dagster
layer turns into `dagster/column_lineage` metadata. `trace_lineage` follows one table's columns
through the lineage of every table of the project back to where they start, for the readable
`column_lineage` entry the open-source UI shows.

Lineage is informational: nothing here raises. What cannot be resolved (an unqualified column
of a join whose input columns are unknown, `SELECT *` without known input columns, a struct
field whose root is unknown) gives no entry for that column rather than a partial or a wrong
one; SQL that does not parse gives `{}`.

Pure: imports neither Spark nor Dagster.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.lineage import Node, lineage

from etl_assets.core.specs import Project, Table, render_template

logger = logging.getLogger(__name__)

Lineage = dict[str, list[tuple[str, str]]]
"""Output column -> the (input name, input column) pairs it derives from, sorted."""

DIALECT = "spark"

Step = tuple[str, str]
"""(table or source name, column): one column on a trail."""

MAX_TRAILS = 10
"""Trails listed per column by default; the rest are counted (`TracedColumn.more`)."""

MAX_DEPTH = 12
"""Steps per trail by default; a longer one is cut (`Trail.end == "depth"`)."""


@dataclass(frozen=True)
class Trail:
    """One derivation path of an output column, from the table's own input to where it stops.

    `steps[0]` is the input column the table reads, each next step a column the previous one
    derives from. `end` says why the trail stops at `steps[-1]`: `"origin"` (a source's
    column, or a table's column with no lineage of its own: `count(*)`, a literal, one that
    did not resolve), `"cycle"` (the column is already on the trail) or `"depth"` (the trail
    reached the depth cap; the column derives from more).
    """

    steps: tuple[Step, ...]
    end: str = "origin"


@dataclass(frozen=True)
class TracedColumn:
    """An output column's trails (at most the cap, in input order) and how many more exist."""

    trails: tuple[Trail, ...]
    more: int = 0


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


def static_lineage(table: Table) -> Lineage:
    """A table's lineage before any load: its SQL's without the inputs' columns (so no
    `SELECT *` expansion), or what a Python table declares."""
    spec = table.spec
    if table.function is not None:
        return declared_lineage(spec.column_lineage)
    return column_lineage(spec.sql or "", spec.inputs)


def project_lineage(project: Project, names: Iterable[str]) -> dict[str, Lineage]:
    """The static lineage of the named tables and of every table upstream of them (what
    `trace_lineage` reads to trace them); sources and unknown names are left out."""
    found: dict[str, Lineage] = {}
    todo = [name for name in names if name in project.tables]
    while todo:
        name = todo.pop()
        if name in found:
            continue
        table = project.tables[name]
        found[name] = static_lineage(table)
        todo += [n for n in table.spec.inputs if n in project.tables and n not in found]
    return found


def trace_lineage(
    lineages: Mapping[str, Lineage],
    table: str,
    max_trails: int = MAX_TRAILS,
    max_depth: int = MAX_DEPTH,
) -> dict[str, TracedColumn]:
    """Each column of `table` traced back through the upstream tables to where it starts.

    Args:
        lineages: The static lineage of every table of the project, `{table name: Lineage}`
            (`column_lineage` of its SQL, `declared_lineage` of a Python table). A name not
            in it is a source (or a table without lineage): its columns start there.
        table: The table to trace; not in `lineages` (or no column with lineage): `{}`.
        max_trails: Trails listed per column; the others are only counted, so a wide fan-in
            (a column of a 300-column join summed over every input) stays readable.
        max_depth: Steps per trail at most (at least 1); a trail cut there ends with
            `end="depth"`.

    Returns:
        Output column -> its `TracedColumn`, in the table's lineage order; a column with no
        lineage (a literal, `count(*)`) has no entry. E.g. the demo's
        `enriched_categories.total_amount` has one trail, `category_totals.total_amount`,
        `clean_orders.amount`, `raw_orders.amount`, and `order_count` one of one step,
        `category_totals.order_count` (a `count(*)`, so its trail starts there).

    Edge cases: table and column names are matched case-insensitively (as Spark resolves
    them) and spelled as the downstream table's lineage spells them. Several trails to the
    same origin (a diamond: two inputs of one upstream table) are each listed: they are
    different derivations. The work is bounded by the project's columns times `max_depth`,
    however many trails there are: each (column, depth left) is traced once, keeping its
    first trails and their exact count (`more`). A column already on its trail, a cycle
    (which `load_project` rejects between tables, but the lineage given may hold), ends
    that trail with `end="cycle"` instead of looping; as a column's trails are traced once,
    in a cyclic lineage a trail reached another way may instead run on to the depth cap.
    `max_trails` below 1 lists none (every trail counted in `more`).
    """
    index = {name.lower(): {col.lower(): deps for col, deps in lin.items()}
             for name, lin in lineages.items()}
    own = next((lin for name, lin in lineages.items() if name.lower() == table.lower()), {})
    # (step lowered, steps left) -> its first trails and their count. Each entry is built
    # once, so the work is bounded by columns x depth, not by the number of trails.
    cache: dict[tuple[Step, int], tuple[list[Trail], int]] = {}

    def trails(step: Step, left: int, on_trail: frozenset[Step]) -> tuple[list[Trail], int]:
        """The trails starting at `step` (at most `max_trails`) and their count."""
        key = (step[0].lower(), step[1].lower())
        if key in on_trail:
            return [Trail((step,), "cycle")], 1
        deps = index.get(key[0], {}).get(key[1], [])
        if not deps:
            return [Trail((step,))], 1
        if left <= 1:
            return [Trail((step,), "depth")], 1
        if (key, left) not in cache:
            found: list[Trail] = []
            count = 0
            for dep in deps:
                below, n = trails(dep, left - 1, on_trail | {key})
                count += n
                found += [Trail((step, *t.steps), t.end)
                          for t in below[:max(0, max_trails - len(found))]]
            cache[(key, left)] = (found, count)
        return cache[(key, left)]

    result: dict[str, TracedColumn] = {}
    for column, deps in own.items():
        start = frozenset({(table.lower(), column.lower())})
        found: list[Trail] = []
        count = 0
        for dep in deps:
            below, n = trails(dep, max_depth, start)
            count += n
            found += below[:max(0, max_trails - len(found))]
        if count:
            result[column] = TracedColumn(tuple(found), count - len(found))
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
