"""What user SQL may not do, decided per statement by DuckDB's own parser.

The database is opened with external access off and file access confined to the allowed
directories (DuckDB enforces that, `..` tricks included, and SQL cannot undo it). What
DuckDB would still let SQL do is change the settings the sidecar manages, attach other
databases, and install or load extensions: those statement types are refused here,
before anything runs. `lock_configuration` is deliberately not used: the sidecar itself
must still be able to change `memory_limit` on a running query.

One gap in DuckDB's answer is closed here too: a path written as a table (`FROM '/etc/hostname'`,
`FROM "../x/y"`) that DuckDB does not recognise as a file comes back as "Table ... does not exist!
Did you mean sqlite_schema", which sends the user hunting for a table. Such a path outside the
allowed directories (`..` and symlinks resolved) is refused as ACCESS_DENIED, like read_csv of it.
That check parses with sqlglot (milliseconds), so it runs only for a statement that holds a path
character and could name a table at all (`names_no_table` says which cannot: `SELECT '/a/b'`).
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Sequence

import duckdb
import sqlglot
from sqlglot import exp

from sidecar.errors import AccessDenied, SqlError

__all__ = ["checked_statements", "names_no_table", "SAFE_PRAGMAS", "TABLE_WORDS"]

SAFE_PRAGMAS = frozenset(
    {
        "database_size",
        "show_tables",
        "show_tables_expanded",
        "table_info",
        "show",
        "storage_info",
        "version",
        "platform",
        "functions",
        "collations",
        "metadata_info",
        "show_databases",
    }
)
"""PRAGMAs that only read the catalog; every other PRAGMA may change state and is refused."""

_REFUSED = {
    "SET": "changes a setting the sidecar manages (memory_limit, threads, temp_directory, ...)",
    "LOAD": "installs or loads an extension",
    "ATTACH": "attaches another database",
    "DETACH": "detaches a database",
    "EXTENSION": "manages extensions",
}
_SET_VARIABLE = re.compile(r"^\s*SET\s+VARIABLE\b", re.I)
_PRAGMA_NAME = re.compile(r"^\s*PRAGMA\s+([A-Za-z_][A-Za-z0-9_]*)", re.I)


def _refusal(kind: str, what: str, sql: str) -> AccessDenied:
    return AccessDenied(
        f"statement refused: {sql.strip()[:200]!r} {what}",
        hint=(
            'Settings belong in the request\'s `settings` (e.g. {"memory_limit": "4GB"}) or the config '
            "files; extensions and other databases are not available to SQL sent through the sidecar."
        ),
        details={"statement_type": kind, "statement": sql.strip()[:2000]},
    )


def checked_statements(con: duckdb.DuckDBPyConnection, sql: str) -> Sequence[duckdb.Statement]:
    """Parse `sql` into statements, refusing any that would escape the sidecar's control."""
    if not sql.strip():
        raise SqlError("the SQL text is empty", hint="Send at least one statement in `sql`.")
    statements = con.extract_statements(sql)
    if not statements:
        raise SqlError("the SQL text holds no statement", hint="Send at least one statement in `sql`.")
    for statement in statements:
        text = statement.query
        try:
            kind = statement.type.name
        except ValueError as exc:  # a statement type the Python binding cannot even name
            name = " ".join(_LEADING_WORDS.findall(text)[:2]).upper() or "this statement"
            raise AccessDenied(
                f"statement refused: {name} is not served by the sidecar ({text.strip()[:200]!r})",
                hint=(
                    "Send queries, DDL and DML that read and write inside the allowed directories; "
                    "extensions, settings and other databases are managed by the sidecar, not by SQL."
                ),
                details={"statement": text.strip()[:2000], "statement_name": name},
            ) from exc
        if kind == "SET" and _SET_VARIABLE.match(text):
            continue
        if kind in _REFUSED:
            raise _refusal(kind, _REFUSED[kind], text)
        if kind == "PRAGMA":
            match = _PRAGMA_NAME.match(text)
            if match is None:
                raise _refusal(kind, "is a database-level operation (IMPORT/COPY DATABASE)", text)
            if match.group(1).lower() not in SAFE_PRAGMAS:
                raise _refusal(kind, f"runs PRAGMA {match.group(1)}, which may change settings", text)
        _refuse_paths_outside(con, text)
    return statements


_LEADING_WORDS = re.compile(r"[A-Za-z_]+")
CACHED_SQL_CHARS = 100_000
"""Statements up to this long have their path tables remembered (the last 256 of them)."""

TABLE_WORDS = ("FROM", "TABLE", "JOIN", "PIVOT", "UNPIVOT", "SUMMARIZE", "DESCRIBE", "SHOW")
"""The words that introduce a table in a SELECT: `FROM t`, `(TABLE t)`, `EXISTS (TABLE t)`,
`(PIVOT t ON x)`, `(SHOW TABLES)`, ... (DuckDB reads a table inside a SELECT only after one of them)."""
_SELECT_FIRST = re.compile(r"\s*\(*\s*SELECT\b", re.I)
_TABLE_WORD = re.compile(r"\b(?:" + "|".join(TABLE_WORDS) + r")\b", re.I)


def names_no_table(sql: str) -> bool:
    """Whether `sql` is one SELECT that cannot read any table: it starts with SELECT, holds no
    second statement and none of TABLE_WORDS, not even inside a string (a false "no" only costs
    the slower path).

    >>> names_no_table("SELECT 42"), names_no_table("select '/tmp/x' AS path, now()")
    (True, True)
    >>> names_no_table("SELECT * FROM t"), names_no_table("SELECT (TABLE t)"), names_no_table("TABLE t")
    (False, False, False)
    >>> names_no_table("SELECT 'from'"), names_no_table("SUMMARIZE t"), names_no_table("/* c */ SELECT 1")
    (False, False, False)
    >>> names_no_table("SELECT 1; UPDATE t SET a = 1"), names_no_table("SELECT 1;")
    (False, True)
    """
    if ";" in sql.strip().rstrip(";"):
        return False
    return _SELECT_FIRST.match(sql) is not None and _TABLE_WORD.search(sql) is None


def _path_tables(sql: str) -> tuple[str, ...]:
    """Table names in `sql` that are file paths: they hold a path separator or start with `~`.

    A statement that reads files (`read_parquet('/data/x.parquet')`) holds a `/` and is parsed by
    sqlglot, 1-4 ms for a TPC-H query: the answer is kept per statement text, so a repeated query
    or the steps of a split run pay it once.
    >>> _path_tables("SELECT * FROM '/etc/x'"), _path_tables("SELECT * FROM read_parquet('/d/x.parquet')")
    (('/etc/x',), ())
    """
    if not any(c in sql for c in "/\\~") or names_no_table(sql):
        return ()  # no path is written without one of these, nor a table named without a word: no parse
    return _parsed_path_tables(sql) if len(sql) <= CACHED_SQL_CHARS else _parsed_path_tables.__wrapped__(sql)


@functools.lru_cache(maxsize=256)
def _parsed_path_tables(sql: str) -> tuple[str, ...]:
    try:
        trees = sqlglot.parse(sql, read="duckdb")
    except sqlglot.errors.SqlglotError:
        return ()  # DuckDB parsed it; what sqlglot cannot read, DuckDB answers for itself
    names = (table.name for tree in trees if tree is not None for table in tree.find_all(exp.Table))
    return tuple(n for n in names if "/" in n or "\\" in n or n.startswith("~"))


def _refuse_paths_outside(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    names = _path_tables(sql)
    if not names:
        return
    row = con.execute(
        "SELECT current_setting('enable_external_access'), current_setting('allowed_directories')"
    ).fetchone()
    if row is None or row[0]:
        return  # not confined (a connection outside the sidecar's workers): DuckDB allows any path
    allowed = [Path(d).resolve() for d in row[1] or []]
    for name in names:
        path = Path(os.path.expanduser(name))
        resolved = (path if path.is_absolute() else Path.cwd() / path).resolve()  # `..` and symlinks
        if any(resolved == d or d in resolved.parents for d in allowed):
            continue
        raise AccessDenied(
            f"statement refused: it reads {name!r} ({resolved}), which is outside the allowed directories",
            hint=(
                "Move the file into one of the allowed directories (config.get -> "
                "settings.allowed_directories), or add its directory to BMAD_DATA_ALLOWED_DIRECTORIES."
            ),
            details={
                "path": name,
                "resolved": str(resolved),
                "allowed_directories": [str(d) for d in allowed],
            },
        )
