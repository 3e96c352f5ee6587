"""Range plans for a full ORDER BY: parts that hold ascending ranges of its first sort key.

The bounds come from the data: `sort_key_sample_sql` samples the key, `decode_bounds` reads the
sample's answer, and `plan_partitioned(sql, n, bounds=...)` (via `plan_sorted`) builds the parts.
`column_stats_sql` reads which output columns may hold NULLs (so part files keep the schema of an
unsplit output). Pure: SQL text in, SQL text out.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from sqlglot import exp

from sidecar.errors import InvalidParams
from sidecar.partition.plan import PARTS_RELATION, Bucket, Combine, Part, Plan, Unsplittable, check_params
from sidecar.partition.shapes import (
    contains_aggregate,
    contains_window,
    has_own_aggregate,
    parse_select,
    plain_refusal,
    resolve_order_key,
)

__all__ = ["SAMPLE_ROWS", "Bound", "column_stats_sql", "decode_bounds", "plan_sorted", "sort_key_sample_sql"]

Bound = int | float | str | bool | dt.date | dt.datetime | Decimal


def plan_sorted(
    select: exp.Select, sql: str, parts: int, bounds: Sequence[Bound], within: Sequence[Bucket]
) -> Plan:
    order = select.args.get("order")
    if order is None or has_own_aggregate(select) or select.args.get("group") is not None:
        raise InvalidParams(
            "bounds are only for a query whose shape is a full ORDER BY (no GROUP BY or aggregates)"
        )
    if within:
        raise InvalidParams("a range-split part is re-split by finer bounds, not by `within` hash buckets")
    if len(bounds) != parts - 1:
        raise InvalidParams(f"{parts} parts need {parts - 1} bounds, got {len(bounds)}")
    if any(b is None for b in bounds) or any(bounds[i] > bounds[i + 1] for i in range(len(bounds) - 1)):  # type: ignore[operator]
        raise InvalidParams("bounds must be non-null values in ascending order")
    if select.args.get("limit") is not None or select.args.get("offset") is not None:
        raise plain_refusal(select, sql)
    if contains_window(select) or select.args.get("distinct") is not None:
        raise InvalidParams("bounds are only for a plain full ORDER BY (no DISTINCT or window functions)")
    first = order.expressions[0]
    if isinstance(first.this, (exp.Var, exp.Collate)):
        raise Unsplittable(
            "sorted_ranges",
            f"the first sort key {first.this.sql('duckdb')} cannot be range-split (ORDER BY ALL or COLLATE)",
            hint="Name the first sort key plainly, without COLLATE.",
            sql=sql,
        )
    key = resolve_order_key(select, first.this)
    if contains_aggregate(key) or contains_window(key):
        raise Unsplittable(
            "sorted_ranges", f"the sort key {key.sql('duckdb')} is not a row expression", sql=sql
        )
    literals = [exp.convert(b) for b in bounds]
    # Part i holds range r: (-inf, b1), [b1, b2), ..., [b_last, +inf); descending order reverses them.
    ranges = list(range(parts))[::-1] if first.args.get("desc") else list(range(parts))
    null_part = 0 if first.args.get("nulls_first") else parts - 1
    plan_parts = []
    for i, r in enumerate(ranges):
        conditions: list[exp.Expression] = []
        if r > 0:
            conditions.append(exp.GTE(this=key.copy(), expression=literals[r - 1].copy()))
        if r < parts - 1:
            conditions.append(exp.LT(this=key.copy(), expression=literals[r].copy()))
        predicate: exp.Expression = exp.and_(*conditions) if conditions else exp.true()
        if i == null_part and conditions:  # comparisons with NULL are NULL: other parts drop NULL keys
            predicate = exp.or_(predicate, exp.Is(this=key.copy(), expression=exp.null()))
        part = select.where(predicate.copy(), append=True, copy=True)
        plan_parts.append(Part(index=i, sql=part.sql("duckdb"), predicate=predicate.sql("duckdb")))
    return Plan(
        shape="sorted_ranges",
        sql=sql,
        parts=tuple(plan_parts),
        combine=Combine(kind="concat_in_order", sql=None, relation=PARTS_RELATION),
        key_exprs=(key.sql("duckdb"),),
        notes=(
            "parts hold ascending ranges of the first sort key in part order; NULLs go where ORDER BY puts them",
        ),
    )


SAMPLE_ROWS = 100_000
"""Rows of the reservoir the range bounds of a full ORDER BY are sampled from."""
SAMPLE_KEY = "__bmad_key"


def sort_key_sample_sql(sql: str, parts: int, *, rows: int = SAMPLE_ROWS, seed: int = 5) -> str:
    """The query that samples the first sort key of a full ORDER BY for `parts - 1` range bounds.

    `quantile_disc` over a reservoir sample of the rows the query reads (FROM, joins, WHERE):
    the sample's minimum, then the bounds (see `decode_bounds`). NULL keys are left out, as the
    range plan puts them in the first or last part anyway. Refuses, like
    `plan_partitioned(..., bounds=...)`, a query that is not a plain full ORDER BY.

    >>> sort_key_sample_sql("SELECT a, b AS c FROM t WHERE a > 0 ORDER BY c DESC, a", 4, rows=1000)
    'SELECT QUANTILE_DISC(__bmad_key, [0.0, 0.25, 0.5, 0.75]) AS bounds FROM (SELECT b AS __bmad_key FROM t \
WHERE a > 0 AND NOT b IS NULL) AS __bmad_sample USING SAMPLE reservoir(1000 ROWS) REPEATABLE (5)'
    """
    check_params(parts, 0, ())
    select = parse_select(sql)
    plan_sorted(select, sql, 1, [], ())  # the same checks as the range plan itself
    key = resolve_order_key(select, select.args["order"].expressions[0].this)
    inner = select.copy()
    inner.set("order", None)
    inner.set("expressions", [exp.alias_(key.copy(), SAMPLE_KEY)])
    inner = inner.where(exp.Not(this=exp.Is(this=key, expression=exp.null())), append=True, copy=False)
    fractions = ", ".join(repr(i / parts) for i in range(parts))
    return (
        f"SELECT QUANTILE_DISC({SAMPLE_KEY}, [{fractions}]) AS bounds FROM ({inner.sql('duckdb')}) AS __bmad_sample "
        f"USING SAMPLE reservoir({rows} ROWS) REPEATABLE ({seed})"
    )


def column_stats_sql(sql: str) -> str:
    """DuckDB's statistics (`stats()`) of every output column of `sql`, read off its first row.

    A range part filters on the sort key, so DuckDB may prove a column NULL-free in one part
    and not in the whole; its Parquet writer then marks the column REQUIRED in that part only.
    These statistics say which columns the whole query may fill with NULLs. The ORDER BY is
    dropped: it changes no statistics, and without it the first row comes without a sort.

    >>> column_stats_sql("SELECT a, b FROM t ORDER BY b")
    'SELECT STATS(COLUMNS(*)) FROM (SELECT a, b FROM t) AS __bmad_q LIMIT 1'
    """
    select = parse_select(sql).copy()
    select.set("order", None)
    return f"SELECT STATS(COLUMNS(*)) FROM ({select.sql('duckdb')}) AS __bmad_q LIMIT 1"


_INFINITY = float("inf")
_INTEGERS = frozenset(
    u + t for u in ("", "U") for t in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT")
)


def _bound_decoder(type_name: str) -> Callable[[Any], Bound] | None:
    """How a value of a DuckDB type comes back over JSON (docs/protocol.md), as a planner bound."""
    if type_name in _INTEGERS:
        return int
    if type_name in ("FLOAT", "DOUBLE"):
        return float
    if type_name.startswith("DECIMAL"):
        return Decimal
    if type_name == "VARCHAR":
        return str
    if type_name == "BOOLEAN":
        return bool
    if type_name == "DATE":
        return dt.date.fromisoformat
    if type_name.startswith("TIMESTAMP"):
        return dt.datetime.fromisoformat
    return None


def decode_bounds(values: Sequence[Any] | None, type_name: str, sql: str | None = None) -> list[Bound]:
    """Sampled bounds (`sort_key_sample_sql`'s answer, a list of `type_name`) as planner bounds.

    The first value is the sample's minimum: a bound at or below it would only open a range of
    keys the sample never saw, so it is dropped. Equal bounds are kept once, so a key with few
    values gives fewer parts, and values that make no literal (NaN, infinities) are dropped:
    fewer bounds only mean larger parts.

    >>> decode_bounds(["2024-01-01", "2024-01-01", "2024-01-01", "2024-03-01"], "DATE[]")
    [datetime.date(2024, 3, 1)]
    >>> decode_bounds([0.5, 1.5, "NaN", 2.5], "DOUBLE[]")
    [1.5, 2.5]
    """
    element = type_name.removesuffix("[]")
    decode = _bound_decoder(element)
    if decode is None:
        raise Unsplittable(
            "sorted_ranges",
            f"the first sort key is of type {element}, which is not range-split",
            hint="Sort first by a number, string, date or timestamp, or run the query unsplit.",
            sql=sql,
        )
    lowest, *rest = [_literal(decode, v) for v in values or [None]]
    bounds: list[Bound] = []
    for bound in rest:
        floor = bounds[-1] if bounds else lowest
        if bound is not None and (floor is None or bound > floor):  # type: ignore[operator]
            bounds.append(bound)
    return bounds


def _literal(decode: Callable[[Any], Bound], value: Any) -> Bound | None:
    """A sampled value as a bound, or None when it makes no literal (NULL, NaN, infinities)."""
    if value is None:
        return None
    try:
        bound = decode(value)
    except (ValueError, TypeError, ArithmeticError):
        return None
    finite = not isinstance(bound, float) or -_INFINITY < bound < _INFINITY  # NaN compares false
    return bound if finite else None
