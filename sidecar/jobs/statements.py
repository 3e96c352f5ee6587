"""What a job looks like, read by DuckDB's own parser before any worker runs it.

The sidecar parses (never runs) the SQL in a private, empty, locked-down DuckDB: enough to
know whether the job only reads (safe to retry), writes to its database (to be wrapped in
one transaction), and uses aggregates that hold whole groups in memory (which more threads
or spilling cannot rescue, so the ladder skips those rungs), or aggregates at all (only such a
query can need a split: the estimate looks at no other). Each SQL text is parsed once, and its
JSON tree serialized once, however many of these questions a request asks
(`tests/test_statements.py::test_one_sql_text_is_parsed_once`).
"""

from __future__ import annotations

import functools
import glob
import itertools
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, NamedTuple

import duckdb
from sqlglot import exp, parse_one
from sqlglot.errors import ParseError

from sidecar.engine.outputs import inside

__all__ = [
    "JobShape",
    "shape_of",
    "holistic",
    "may_split",
    "reads_only_files",
    "input_files",
    "input_bytes",
    "HOLISTIC_FUNCTIONS",
]

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

    @property
    def may_split(self) -> bool:
        """Whether a SELECT groups, aggregates, windows, de-duplicates or joins anywhere: the only
        queries the planner can split and the estimate could split up front (see `may_split`)."""
        return may_split(self.sql)


class _Facts(NamedTuple):
    holistic: bool
    splits: bool
    """Groups, windows, de-duplicates or joins somewhere (or could not be read)."""


_parser_lock = threading.Lock()
_parser: duckdb.DuckDBPyConnection | None = None
CACHED_SQL_CHARS = 100_000
"""SQL texts up to this long are parsed once and remembered (the last `CACHE_ENTRIES` of them)."""
CACHE_ENTRIES = 256


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


def _remembered(compute: Callable[[str], Any]) -> Callable[[str], Any]:
    """`compute(sql)` once per SQL text (a request repeated, a look, a step); a very long text is not kept."""
    cached = functools.lru_cache(maxsize=CACHE_ENTRIES)(compute)

    @functools.wraps(compute)
    def lookup(sql: str) -> Any:
        return cached(sql) if len(sql) <= CACHED_SQL_CHARS else compute(sql)

    return lookup


def _nodes(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _nodes(value)
    elif isinstance(node, list):
        for value in node:
            yield from _nodes(value)


@_remembered
def _statements(sql: str) -> tuple[tuple[str, str], ...] | None:
    """(type, text) of each statement, from DuckDB's parser; None when it does not parse."""
    with _parser_lock:
        try:
            return tuple((_type_name(s), s.query) for s in _connection().extract_statements(sql))
        except duckdb.Error:
            return None


@_remembered
def _facts(sql: str) -> _Facts:
    """What the parse trees of the SELECTs in `sql` say; a tree DuckDB cannot serialize counts as
    splitting (the estimate then looks, as it would have)."""
    is_holistic = splits = False
    for kind, text in _statements(sql) or ():
        if kind != "SELECT":
            continue
        with _parser_lock:
            con = _connection()
            try:
                row = con.execute("SELECT json_serialize_sql(?::VARCHAR)", [text]).fetchone()
            except duckdb.Error:
                row = None
        tree = json.loads(row[0]) if row else {"error": True}
        if tree.get("error"):
            splits = True
            continue
        for node in _nodes(tree):
            name = node.get("function_name")
            if isinstance(name, str):
                is_holistic = is_holistic or name.lower() in HOLISTIC_FUNCTIONS
                splits = splits or node.get("class") == "WINDOW"
            splits = splits or bool(node.get("group_expressions")) or bool(node.get("group_sets"))
            splits = splits or node.get("aggregate_handling") not in (None, "STANDARD_HANDLING")
            splits = splits or node.get("type") in ("DISTINCT_MODIFIER", "JOIN")  # a join splits too
    return _Facts(is_holistic, splits)


def shape_of(sql: str) -> JobShape:
    """Classify SQL; SQL that does not parse is left for the worker to report precisely."""
    parsed = _statements(sql)
    if parsed is None:
        return JobShape(sql, read_only=False, statement_types=())
    types = tuple(kind for kind, _ in parsed)
    return JobShape(sql, read_only=bool(types) and all(t in READ_ONLY for t in types), statement_types=types)


def holistic(sql: str) -> bool:
    """Whether any SELECT in `sql` calls an aggregate that keeps whole groups in memory.

    >>> holistic("SELECT g, median(v) FROM t GROUP BY g"), holistic("SELECT g, sum(v) FROM t GROUP BY g")
    (True, False)
    """
    return bool(_facts(sql).holistic)


def may_split(sql: str) -> bool:
    """Whether the estimate could split `sql` up front: some SELECT in it groups, uses a window,
    DISTINCT or a join, or holds a holistic aggregate. A global aggregate of others (count, sum,
    count(DISTINCT ...)) is estimated at no memory of its own (`choose_parts`), so it is not looked
    at: the EXPLAIN job cost a 1 MB TPC-H q6 3.8 ms against its 2.4 ms in plain DuckDB. (A PIVOT
    parses as several statements, `MULTI`, and is never estimated.)

    >>> may_split("SELECT count(*) FROM t"), may_split("SELECT DISTINCT a FROM t"), may_split("SELECT 42")
    (False, True, False)
    >>> may_split("SELECT median(v) FROM t"), may_split("SELECT count(*) FROM (SELECT k FROM t GROUP BY k)")
    (True, True)
    >>> may_split("SELECT a, row_number() OVER (ORDER BY b) FROM t"), may_split("SELECT a FROM t WHERE b > 1")
    (True, False)
    >>> may_split("SELECT * FROM a JOIN b USING (k)"), may_split("SELECT sum(x) FROM a, b WHERE a.k = b.k")
    (True, True)
    """
    facts = _facts(sql)
    return facts.splits or facts.holistic


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


FILE_READERS = frozenset({
    "readparquet", "readcsv", "read_parquet", "parquet_scan", "read_csv", "read_csv_auto",
    "read_json", "read_json_auto", "read_ndjson", "read_ndjson_auto",
})  # fmt: skip
"""Table functions whose first argument names the files they read (sqlglot names two by class)."""


@_remembered
def input_files(sql: str) -> tuple[str, ...] | None:
    """The file paths or globs a single SELECT reads, when it reads nothing else (no table, view,
    or other table function such as range(): nothing whose size a file listing tells); else None.

    >>> input_files("WITH c AS (SELECT * FROM 'a.csv') SELECT * FROM c JOIN read_parquet(['b/*.parquet', 'c.parquet']) USING (k)")
    ('b/*.parquet', 'c.parquet', 'a.csv')
    >>> input_files("SELECT * FROM read_csv('a.csv', header = true)"), input_files("SELECT * FROM t")
    (('a.csv',), None)
    >>> input_files("SELECT * FROM range(10)"), input_files("SELECT * FROM read_parquet(getenv('X'))")
    (None, None)
    """
    try:
        tree = parse_one(sql, read="duckdb")
    except ParseError:
        return None
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    files: list[str] = []
    for table in tree.find_all(exp.Table):
        name = table.this
        if isinstance(name, exp.Identifier):
            if table.db or table.catalog:
                return None
            if name.quoted and ("." in name.name or "/" in name.name):
                files.append(name.name)
            elif name.name not in ctes:
                return None
            continue
        function = (name.name if isinstance(name, exp.Anonymous) else type(name).__name__).lower()
        first = name.this if isinstance(name, exp.Expression) and isinstance(name.this, exp.Expression) else None
        if first is None and isinstance(name, exp.Expression) and name.expressions:
            first = name.expressions[0]
        paths = first.expressions if isinstance(first, exp.Array) else [first]
        if function not in FILE_READERS or not all(isinstance(p, exp.Literal) and p.is_string for p in paths):
            return None
        files.extend(p.this for p in paths)
    return tuple(files) if files else None


def input_bytes(sql: str, cwd: Path, allowed: list[str], enough: int | None = None) -> int | None:
    """The bytes on disk of every file a SELECT reads (`input_files`, globs expanded from `cwd`);
    None when it reads anything else, a path matches no file or cannot be read (the query reports
    that itself), or a pattern reaches outside the `allowed` directories (the worker's guard
    refuses it; nothing is walked first, so `read_parquet('/**/*.parquet')` costs nothing here).
    With `enough`, the count stops once it passes that many bytes (a glob over thousands of files
    need not be summed to know it is large).

    >>> import tempfile; d = Path(tempfile.mkdtemp()); _ = (d / "a.csv").write_text("x" * 10)
    >>> _ = (d / "b.csv").write_text("x" * 5)
    >>> ok = [str(d)]
    >>> input_bytes("SELECT * FROM 'a.csv'", d, ok), input_bytes(f"SELECT * FROM read_csv('{d}/*.csv')", Path("/"), ok)
    (10, 15)
    >>> input_bytes("SELECT * FROM read_csv('*.csv')", d, ok, enough=4) in (5, 10), input_bytes("SELECT * FROM 'c.csv'", d, ok)
    (True, None)
    >>> input_bytes("SELECT * FROM read_csv('/**/*.csv')", d, ok), input_bytes("SELECT * FROM 'a.csv'", d, ["/elsewhere"])
    (None, None)
    """
    files = input_files(sql)
    if files is None:
        return None
    total = 0
    for pattern in files:
        path = Path(pattern).expanduser()
        path = path if path.is_absolute() else cwd / path
        fixed = Path(*[part for part in itertools.takewhile(lambda p: not glob.has_magic(p), path.parts)])
        if not inside(fixed, allowed):
            return None
        matches = glob.iglob(str(path), recursive=True) if glob.has_magic(str(path)) else iter([str(path)])
        found = False
        try:
            for match in matches:
                if os.path.isfile(match):
                    found = True
                    total += os.stat(match).st_size
                    if enough is not None and total > enough:
                        return total
        except OSError:  # gone or unreadable between the listing and the stat: the query will say
            return None
        if not found:
            return None
    return total


def _type_name(statement: duckdb.Statement) -> str:
    try:
        return statement.type.name
    except ValueError:
        return "UNKNOWN"
