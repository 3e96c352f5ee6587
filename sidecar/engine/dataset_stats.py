"""The SQL behind `dataset.analyze`: column statistics from Parquet footers, from a full scan,
or from a sample of rows.

Kept apart from `analyze.py` (which resolves paths, picks a strategy and builds the result)
so each strategy is one small query builder that can be read next to the SQL it emits.
Min/max values are encoded exactly as query.run encodes a value of the same type
(`sidecar.engine.encode.ValueEncoding`): a BIGINT beyond 2^53 or any DECIMAL is a string, a
TIMESTAMPTZ is UTC with a 'Z', DATE 'infinity' stays 'infinity'.
"""

from __future__ import annotations

import math
import re
from typing import Any, Sequence

import duckdb
import msgspec

from sidecar.engine.encode import ValueEncoding

__all__ = [
    "ColumnFigures",
    "DistinctSample",
    "ParquetRowGroup",
    "quote_ident",
    "quote_str",
    "sql_list",
    "is_numeric",
    "is_nested",
    "scan_figures",
    "sample_figures",
    "footer_figures",
    "plan_row_group_sample",
    "estimate_distinct",
]

_INTEGER_TYPES = frozenset(
    {
        "TINYINT",
        "SMALLINT",
        "INTEGER",
        "BIGINT",
        "HUGEINT",
        "UTINYINT",
        "USMALLINT",
        "UINTEGER",
        "UBIGINT",
        "UHUGEINT",
    }
)
_FLOAT_TYPES = frozenset({"FLOAT", "DOUBLE"})
_NESTED = re.compile(r"^(STRUCT|MAP|UNION)\(|\[\d*\]$")


class ColumnFigures(msgspec.Struct, frozen=True):
    """What one query learned about one column; exactness is decided by the caller."""

    non_null: int | None
    min: Any
    max: Any
    approx_distinct: int | None
    mean: float | None
    std: float | None


class DistinctSample(msgspec.Struct, frozen=True):
    """Distinct values `d` and values seen exactly once `f1` among `n` non-NULL sampled values."""

    n: int
    d: int
    f1: int


class ParquetRowGroup(msgspec.Struct, frozen=True):
    """A slice of one row group, addressed by the reader's `file_row_number`."""

    file: str
    first_row: int
    last_row: int


def quote_ident(name: str) -> str:
    """A column name as a SQL identifier.

    >>> quote_ident('a"b')
    '"a""b"'
    """
    return '"' + name.replace('"', '""') + '"'


def quote_str(value: str) -> str:
    """A SQL string literal.

    >>> quote_str("it's")
    "'it''s'"
    """
    return "'" + value.replace("'", "''") + "'"


def sql_list(values: Sequence[str]) -> str:
    """A SQL list of string literals, as DuckDB's readers take a list of files.

    >>> sql_list(["a.csv", "b.csv"])
    "['a.csv', 'b.csv']"
    """
    return "[" + ", ".join(quote_str(v) for v in values) + "]"


def is_numeric(duck_type: str) -> bool:
    """Whether a mean and a standard deviation make sense for the type.

    >>> is_numeric("DECIMAL(12,2)"), is_numeric("DATE")
    (True, False)
    """
    return duck_type in _INTEGER_TYPES or duck_type in _FLOAT_TYPES or duck_type.startswith("DECIMAL")


def is_nested(duck_type: str) -> bool:
    """Nested values have no useful min/max, and no per-column Parquet statistics.

    >>> is_nested("STRUCT(a INTEGER)"), is_nested("INTEGER[]"), is_nested("VARCHAR")
    (True, True, False)
    """
    return bool(_NESTED.search(duck_type))


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _column_aggregates(name: str, duck_type: str, *, with_distinct: bool) -> list[str]:
    """Aggregates for one column, in the order `_figures_from_row` reads them back."""
    col = quote_ident(name)
    nested = is_nested(duck_type)
    # Parquet footers leave NaN out of min/max, and DuckDB sorts NaN above everything:
    # exclude it here too so a scan and a footer agree.
    keep = f" FILTER (WHERE NOT isnan({col}))" if duck_type in _FLOAT_TYPES else ""
    numeric = is_numeric(duck_type)
    return [
        f"count({col})",
        "NULL" if nested else ValueEncoding(duck_type).sql(f"min({col}){keep}"),
        "NULL" if nested else ValueEncoding(duck_type).sql(f"max({col}){keep}"),
        f"approx_count_distinct({col})" if with_distinct else "NULL",
        f"avg(CAST({col} AS DOUBLE))" if numeric else "NULL",
        f"stddev_samp(CAST({col} AS DOUBLE))" if numeric else "NULL",
    ]


def _figures_from_row(row: Sequence[Any], start: int, duck_type: str) -> ColumnFigures:
    non_null, lo, hi, distinct, mean, std = row[start : start + 6]
    encode = ValueEncoding(duck_type)
    return ColumnFigures(
        non_null=non_null,
        min=encode(lo),
        max=encode(hi),
        approx_distinct=distinct,
        mean=_finite(mean),
        std=_finite(std),
    )


def scan_figures(
    con: duckdb.DuckDBPyConnection, source: str, columns: Sequence[tuple[str, str]]
) -> tuple[int, list[ColumnFigures]]:
    """Row count and every column's figures from one pass over `source` (a FROM clause)."""
    aggs = ["count(*)"]
    for name, duck_type in columns:
        aggs.extend(_column_aggregates(name, duck_type, with_distinct=True))
    row = con.execute(f"SELECT {', '.join(aggs)} FROM {source}").fetchone()
    if row is None:  # an aggregate without GROUP BY always yields one row
        raise duckdb.InternalException("aggregate query returned no row")
    return int(row[0]), [_figures_from_row(row, 1 + 6 * i, t) for i, (_, t) in enumerate(columns)]


def sample_figures(
    con: duckdb.DuckDBPyConnection, sample_sql: str, columns: Sequence[tuple[str, str]]
) -> tuple[int, list[ColumnFigures], list[DistinctSample]]:
    """Figures over a sample, plus the value frequencies a distinct-count estimator needs.

    The sample is materialized once; each column then gets one GROUP BY over it, which is the
    dominant cost (about 70 ms per column per million rows on two cores).
    """
    aggs = ["count(*)"]
    for name, duck_type in columns:
        aggs.extend(_column_aggregates(name, duck_type, with_distinct=False))
        col = quote_ident(name)
        aggs.append(
            f"(SELECT {{'d': count(*), 'f1': count(*) FILTER (WHERE k = 1)}} "
            f"FROM (SELECT count(*) AS k FROM s WHERE {col} IS NOT NULL GROUP BY {col}))"
        )
    row = con.execute(f"WITH s AS MATERIALIZED ({sample_sql}) SELECT {', '.join(aggs)} FROM s").fetchone()
    if row is None:
        raise duckdb.InternalException("aggregate query returned no row")
    figures, distincts = [], []
    for i, (_, duck_type) in enumerate(columns):
        start = 1 + 7 * i
        figures.append(_figures_from_row(row, start, duck_type))
        freq = row[start + 6] or {"d": 0, "f1": 0}
        distincts.append(DistinctSample(n=int(row[start] or 0), d=int(freq["d"]), f1=int(freq["f1"])))
    return int(row[0]), figures, distincts


def estimate_distinct(sample: DistinctSample, population: int) -> int:
    """Distinct values in `population` non-NULL values, from a sample's frequencies.

    Haas and Stokes' Duj1 estimator (the one PostgreSQL's ANALYZE uses): values seen once
    in the sample suggest many more unseen ones; values seen repeatedly suggest few.

    >>> estimate_distinct(DistinctSample(n=1000, d=1000, f1=1000), 10**6)
    1000000
    >>> estimate_distinct(DistinctSample(n=1000, d=5, f1=0), 10**6)
    5
    """
    n, d, f1 = sample.n, sample.d, sample.f1
    if n == 0:
        return 0
    if n >= population:
        return d
    estimate = n * d / (n - f1 + f1 * n / population)
    return int(round(min(max(estimate, d), population)))


class FooterFigures(msgspec.Struct, frozen=True):
    """A column's exact figures from Parquet footers, or None where a footer cannot vouch."""

    null_count: int | None
    min: Any
    max: Any
    min_max_exact: bool


def footer_figures(
    con: duckdb.DuckDBPyConnection, files: Sequence[str], row_count: int, columns: Sequence[tuple[str, str]]
) -> dict[str, FooterFigures]:
    """Null counts and min/max of flat columns from the row-group statistics in the footers.

    A column's null count is exact only if every chunk carries one; columns missing from some
    files count those files' rows as NULL. Min/max are exact only if every chunk holding a value
    has both bounds, they cast back to the column's type, and the writer did not mark them
    truncated (long strings) -- otherwise the caller falls back to the sample.
    """
    flat = [(n, t) for n, t in columns if not is_nested(t)]
    if not flat:
        return {}
    aggs: list[str] = []
    for name, duck_type in flat:
        here = f"path_in_schema = {quote_str(name)}"
        lo, hi = f"TRY_CAST(stats_min_value AS {duck_type})", f"TRY_CAST(stats_max_value AS {duck_type})"
        has_values = "(stats_null_count IS NULL OR stats_null_count < num_values)"
        unusable = f"{has_values} AND ({lo} IS NULL OR {hi} IS NULL OR min_is_exact IS FALSE OR max_is_exact IS FALSE)"
        aggs += [
            f"sum(stats_null_count) FILTER (WHERE {here})",
            f"count(*) FILTER (WHERE {here} AND stats_null_count IS NULL)",
            f"coalesce(sum(num_values) FILTER (WHERE {here}), 0)",
            ValueEncoding(duck_type).sql(f"min({lo}) FILTER (WHERE {here})"),
            ValueEncoding(duck_type).sql(f"max({hi}) FILTER (WHERE {here})"),
            f"count(*) FILTER (WHERE {here} AND {unusable})",
        ]
    row = con.execute(f"SELECT {', '.join(aggs)} FROM parquet_metadata({sql_list(list(files))})").fetchone()
    if row is None:
        raise duckdb.InternalException("aggregate query returned no row")
    result: dict[str, FooterFigures] = {}
    for i, (name, duck_type) in enumerate(flat):
        nulls, missing_nulls, values, lo, hi, unusable = row[6 * i : 6 * i + 6]
        encode = ValueEncoding(duck_type)
        null_count = None if missing_nulls else int(nulls or 0) + (row_count - int(values))
        result[name] = FooterFigures(
            null_count=null_count, min=encode(lo), max=encode(hi), min_max_exact=not unusable
        )
    return result


def plan_row_group_sample(
    con: duckdb.DuckDBPyConnection, files: Sequence[str], sample_rows: int, min_clusters: int = 16
) -> list[ParquetRowGroup]:
    """Row-group slices spread evenly over the whole dataset, about `sample_rows` rows in all.

    Whole contiguous slices are what a Parquet reader can fetch without touching the rest of
    the file (DuckDB prunes row groups on a `file_row_number` range), so this costs a few
    row groups of I/O where `USING SAMPLE` must still scan everything. Slices are placed
    systematically (every G/k-th row group, from the middle of each stride), so the result is
    repeatable and a sorted file is sampled across its whole range. At least `min_clusters`
    slices are taken when there are that many row groups, which limits the cluster effect of
    big row groups.
    """
    groups = con.execute(
        "SELECT file_name, row_group_id, row_group_num_rows FROM parquet_metadata(?) "
        "GROUP BY ALL ORDER BY row_group_id",
        [list(files)],
    ).fetchall()
    order = {f: i for i, f in enumerate(files)}
    groups.sort(key=lambda g: (order.get(g[0], len(order)), g[1]))
    spans: list[tuple[str, int, int]] = []
    next_row: dict[str, int] = {}
    for file_name, _, rows in groups:
        start = next_row.get(file_name, 0)
        next_row[file_name] = start + rows
        if rows > 0:
            spans.append((file_name, start, rows))
    if not spans:
        return []
    total = sum(rows for _, _, rows in spans)
    average = total / len(spans)
    k = min(len(spans), max(min_clusters, math.ceil(sample_rows / average)))
    per_slice = max(1, math.ceil(sample_rows / k))
    chosen = sorted({int((i + 0.5) * len(spans) / k) for i in range(k)})
    return [
        ParquetRowGroup(
            file=spans[i][0], first_row=spans[i][1], last_row=spans[i][1] + min(per_slice, spans[i][2]) - 1
        )
        for i in chosen
    ]
