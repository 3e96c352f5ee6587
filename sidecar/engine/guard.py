"""What user SQL may not do, decided per statement by DuckDB's own parser.

The database is opened with external access off and file access confined to the allowed
directories (DuckDB enforces that, `..` tricks included, and SQL cannot undo it). What
DuckDB would still let SQL do is change the settings the sidecar manages, attach other
databases, and install or load extensions: those statement types are refused here,
before anything runs. `lock_configuration` is deliberately not used: the sidecar itself
must still be able to change `memory_limit` on a running query.
"""

from __future__ import annotations

import re
from typing import Sequence

import duckdb

from sidecar.errors import AccessDenied, SqlError

__all__ = ["checked_statements", "SAFE_PRAGMAS"]

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
            raise AccessDenied(
                f"statement refused: {text.strip()[:200]!r} is of a type that could not be classified ({exc})",
                hint="Only queries, DDL and DML that read and write inside the allowed directories are served.",
                details={"statement": text.strip()[:2000]},
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
    return statements
