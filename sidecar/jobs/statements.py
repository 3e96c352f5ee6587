"""What a job looks like, read by DuckDB's own parser before any worker runs it.

The sidecar parses (never runs) the SQL in a private, empty, locked-down DuckDB: enough to
know whether the job only reads (safe to retry), writes to its database (to be wrapped in
one transaction), and uses aggregates that hold whole groups in memory (which more threads
or spilling cannot rescue, so the ladder skips those rungs).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any, Iterator

import duckdb
from sqlglot import exp, parse_one
from sqlglot.errors import ParseError

__all__ = ["JobShape", "shape_of", "holistic", "reads_only_files", "HOLISTIC_FUNCTIONS"]

HOLISTIC_FUNCTIONS = frozenset(
    {
        "median",
        "quantile",
        "quantile_cont",
        "quantile_disc",
        "mode",
        "mad",
        "list",
        "array_agg",
        "string_agg",
        "group_concat",
        "listagg",
        "histogram",
        "arg_max_null",
    }
)
"""Aggregates that keep every value of a group (DuckDB's docs: they cannot spill well)."""

READ_ONLY = frozenset({"SELECT", "EXPLAIN", "PRAGMA", "CALL", "SET"})


@dataclass(frozen=True)
class JobShape:
    sql: str
    read_only: bool
    statement_types: tuple[str, ...]

    @property
    def holistic(self) -> bool:
        """Whether a SELECT uses aggregates that hold whole groups (parsed lazily: by the estimate, or after a memory failure)."""
        return holistic(self.sql)


_parser_lock = threading.Lock()
_parser: duckdb.DuckDBPyConnection | None = None


def _connection() -> duckdb.DuckDBPyConnection:
    global _parser
    if _parser is None:
        _parser = duckdb.connect(
            ":memory:",
            config={
                "enable_external_access": "false",
                "memory_limit": "64MB",
                "threads": "1",
                "autoinstall_known_extensions": "false",
                "autoload_known_extensions": "false",
            },
        )
    return _parser


def _functions(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        name = node.get("function_name")
        if isinstance(name, str):
            yield name.lower()
        for value in node.values():
            yield from _functions(value)
    elif isinstance(node, list):
        for value in node:
            yield from _functions(value)


def shape_of(sql: str) -> JobShape:
    """Classify SQL; SQL that does not parse is left for the worker to report precisely."""
    with _parser_lock:
        try:
            types = tuple(_type_name(s) for s in _connection().extract_statements(sql))
        except duckdb.Error:
            return JobShape(sql, read_only=False, statement_types=())
    return JobShape(sql, read_only=bool(types) and all(t in READ_ONLY for t in types), statement_types=types)


def holistic(sql: str) -> bool:
    """Whether any SELECT in `sql` calls an aggregate that keeps whole groups in memory."""
    with _parser_lock:
        con = _connection()
        try:
            for statement in con.extract_statements(sql):
                if _type_name(statement) != "SELECT":
                    continue
                row = con.execute("SELECT json_serialize_sql(?::VARCHAR)", [statement.query]).fetchone()
                if row and any(name in HOLISTIC_FUNCTIONS for name in _functions(json.loads(row[0]))):
                    return True
        except duckdb.Error:
            return False
    return False


def reads_only_files(sql: str) -> bool:
    """Whether a SELECT reads nothing of its database: only files (read_parquet, 'x.csv', ...),
    table functions and its own CTEs. Such a query's parts may run on any worker, in an in-memory
    database, or on another machine; a query naming a table or view needs its database's worker.

    >>> reads_only_files("SELECT k, sum(v) FROM read_parquet('d/*.parquet') GROUP BY k")
    True
    >>> reads_only_files("WITH c AS (SELECT * FROM 'a.csv') SELECT * FROM c JOIN 'b.parquet' USING (k)")
    True
    >>> reads_only_files("SELECT * FROM read_csv('a.csv') JOIN customers USING (k)")
    False
    """
    try:
        tree = parse_one(sql, read="duckdb")
    except ParseError:
        return False
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    for table in tree.find_all(exp.Table):
        name = table.this
        if not isinstance(name, exp.Identifier):
            continue  # a table function: read_parquet(...), range(...)
        if table.db or table.catalog:
            return False  # an attached database's table
        if name.quoted and ("." in name.name or "/" in name.name):
            continue  # a file path written as a table: FROM 'x.parquet'
        if name.name not in ctes:
            return False
    return True


def _type_name(statement: duckdb.Statement) -> str:
    try:
        return statement.type.name
    except ValueError:
        return "UNKNOWN"
