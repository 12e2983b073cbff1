"""The one place where names and values become Spark SQL text.

Every identifier and string literal that the package puts into SQL (DDL on the target and log
tables, partition specs, queries on the log tables, `F.col` names) goes through here, so that
a column called ``we`ird``, a partition value ``O'Brien; DROP TABLE x; --`` or a watermark
holding a newline is always read as data, never as SQL. Values that need not be SQL at all are
better passed as DataFrame expressions (`F.col(...) == value`), as the sensors do with run ids.

Rules (Spark 4 SQL, default parser settings):

- identifiers are backticked, a backtick inside doubled: ``we`ird`` -> `` `we``ird` ``. Any
  other character (quote, semicolon, dot, newline) is plain text inside backticks. `F.col`
  parses names the same way, so `F.col(identifier(name))` is the column `name` exactly;
- string literals are single-quoted with backslash escapes: backslash, both quotes and the
  control characters newline, carriage return, tab and NUL are escaped, so the SQL text stays
  on one line. This assumes `spark.sql.parser.escapedStringLiterals=false` (Spark's
  default), under which Spark unescapes exactly these sequences back.

Pure: imports neither Spark nor Dagster.
"""

from __future__ import annotations

from datetime import date

# Characters escaped inside a string literal, with what Spark's unescaping turns back into them.
# NUL is written as \u0000, not \0: Spark reads \0 followed by two octal digits as one octal
# character.
_ESCAPES = {"\\": "\\\\", "'": "\\'", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t",
            "\0": "\\u0000"}
_TRANSLATION = str.maketrans(_ESCAPES)


def identifier(name: str) -> str:
    """A name as a backticked Spark SQL identifier: `` identifier("we`ird") == "`we``ird`" ``.

    Usable in SQL text and in `F.col` / `DataFrame.select` names, which parse backticks the
    same way (so a name holding a dot is one column, not a struct field).

    Raises:
        ValueError: The name is empty: Spark has no empty identifier.
    """
    if not name:
        raise ValueError("an identifier cannot be empty")
    return "`" + name.replace("`", "``") + "`"


def qualified_name(*parts: str) -> str:
    """A multi-part name, each part quoted: `` qualified_name("db", "t") == "`db`.`t`" ``.

    Raises:
        ValueError: No part is given, or one is empty.
    """
    if not parts:
        raise ValueError("a qualified name needs at least one part")
    return ".".join(identifier(part) for part in parts)


def table_name(qualified: str) -> str:
    """A `database.table` name as SQL, both parts quoted: `` "`etl_log`.`run_log`" ``.

    The text is split at its first dot: database names are identifiers (checked when specs
    and settings load), so the dot is always the separator; a table part may hold dots.

    Raises:
        ValueError: The name has no dot or an empty part.
    """
    database, dot, name = qualified.partition(".")
    if not dot:
        raise ValueError(f"table name {qualified!r} is not database.table")
    return qualified_name(database, name)


def escape_string(text: str) -> str:
    """The text escaped for use between quotes of a Spark SQL string literal (no quotes added).

    For placeholders that a spec writes inside its own quotes (`'{watermark}'`): the value
    can neither close the quote nor end the line. Escapes both quote kinds, so it is safe
    between single or double quotes.
    """
    return text.translate(_TRANSLATION)


def string_literal(text: str) -> str:
    """The text as a Spark SQL string literal: `` string_literal("it's") == "'it\\\\'s'" ``.

    Spark reads it back as exactly `text` (any characters, including quotes, backslashes,
    semicolons, newlines and NUL).
    """
    return "'" + escape_string(text) + "'"


def date_literal(day: date | str) -> str:
    """A date (or ISO date text) as a Spark SQL `DATE'YYYY-MM-DD'` literal.

    Raises:
        ValueError: The text is not an ISO date (`YYYY-MM-DD`).
    """
    parsed = day if isinstance(day, date) else date.fromisoformat(day)
    return "DATE" + string_literal(parsed.isoformat())


def column_definitions(columns: list[tuple[str, str]]) -> str:
    """`(name, type)` pairs as the column list of a `CREATE TABLE` or `ADD COLUMNS`.

    `type` is Spark's own type text (`DataType.simpleString()`); names are quoted.
    """
    return ", ".join(f"{identifier(name)} {kind}" for name, kind in columns)


def partition_spec(values: list[tuple[str, str]]) -> str:
    """`(column, value)` pairs as a partition spec: `` `k`='O\\'Brien', `d`='2026-01-01' ``."""
    return ", ".join(f"{identifier(column)}={string_literal(value)}" for column, value in values)
