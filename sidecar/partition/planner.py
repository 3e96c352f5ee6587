"""plan_partitioned: one SELECT in, N independent parts and an exact combining step out.

Pure: it parses and rewrites SQL text and never runs it. Rows are shared out by a filter
added to each part's WHERE clause, so it applies to the input rows (after joins, before
grouping):

    hash(k1, k2, ...) % N = i              one part per remainder i
    hash(k1, ..., salt) % M = j            a salted re-split, ANDed with the part's bucket

Which keys are hashed decides what lands together, and so which shapes stay exact: see
docs/architecture/partitioning-strategies.md.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from sqlglot import exp

from sidecar.errors import InvalidParams
from sidecar.partition.modifiers import split_modifiers
from sidecar.partition.plan import PARTS_RELATION, Bucket, Combine, NeedsBounds, Part, Plan, Shape, Unsplittable
from sidecar.partition.recombine import decompose_global
from sidecar.partition.shapes import (
    contains_aggregate,
    contains_window,
    own_nodes,
    parse_select,
    resolve_group_keys,
    resolve_order_key,
    same_exprs,
    windows_of,
)

__all__ = [
    "MAX_PARTS",
    "column_stats_sql",
    "decode_bounds",
    "hash_predicate",
    "is_empty_group",
    "plan_partitioned",
    "sort_key_sample_sql",
]

MAX_PARTS = 65_536
Bound = int | float | str | bool | dt.date | dt.datetime | Decimal
_ALL_COLUMNS = "*COLUMNS(*)"


def plan_partitioned(
    sql: str,
    parts: int,
    *,
    salt: int = 0,
    within: Sequence[Bucket] = (),
    bounds: Sequence[Bound] | None = None,
) -> Plan:
    """Split `sql` into `parts` queries whose combination is exactly its answer.

    `within` restricts every part to rows already in those buckets (re-splitting a part
    that ran out of memory); `salt` must then differ from theirs. `bounds` (N-1 ascending
    values of the first sort key, sampled by the executor) is only for a full ORDER BY.

    >>> plan = plan_partitioned("SELECT k, count(*) FROM t GROUP BY k", 2)
    >>> [p.predicate for p in plan.parts]
    ['HASH(k) % 2 = 0', 'HASH(k) % 2 = 1']
    """
    _check_params(parts, salt, within)
    select = parse_select(sql)
    group = select.args.get("group")
    if group is not None and is_empty_group(group):
        group = None
        select = select.copy()
        select.set("group", None)
    if group is None and bounds is None and _has_own_aggregate(select):
        return _plan_global(select, sql, parts, salt, within)
    if bounds is not None:
        return _plan_sorted(select, sql, parts, bounds, within)
    if group is not None:
        keys = resolve_group_keys(select, sql)
        windows = windows_of(select)
        if windows:
            window_keys = _common_partition(windows, sql)
            group_texts = {k.sql("duckdb") for k in keys}
            if not {k.sql("duckdb") for k in window_keys} <= group_texts:
                raise Unsplittable(
                    "group_by_window",
                    "a window over grouped rows whose PARTITION BY is not made of group keys",
                    hint="Partition the window by group keys, or compute the grouped result first and window it "
                    "unsplit.",
                    sql=sql,
                )
            keys = window_keys
        return _plan_union(select, sql, "group_by", keys, parts, salt, within)
    windows = windows_of(select)
    if windows:
        return _plan_union(select, sql, "window", _common_partition(windows, sql), parts, salt, within)
    distinct = select.args.get("distinct")
    if distinct is not None:
        on = distinct.args.get("on")
        if on is not None:
            keys = [k.copy() for k in (on.expressions if isinstance(on, exp.Tuple) else [on])]
            return _plan_union(select, sql, "distinct_on", keys, parts, salt, within)
        return _plan_union(select, sql, "distinct", _distinct_keys(select, sql), parts, salt, within)
    if select.args.get("order") is not None and select.args.get("limit") is None:
        raise NeedsBounds()
    raise _plain(select, sql)


def hash_predicate(keys: Sequence[exp.Expression], bucket: Bucket) -> exp.Expression:
    """`hash(keys[, salt]) % modulus = remainder`, the filter that keeps one bucket's rows.

    >>> hash_predicate([exp.column("k")], Bucket(modulus=4, remainder=1, salt=7)).sql("duckdb")
    'HASH(k, 7) % 4 = 1'
    """
    args = [k.copy() for k in keys]
    if bucket.salt:
        args.append(exp.Literal.number(bucket.salt))
    hashed = exp.Anonymous(this="HASH", expressions=args)
    modulo = exp.Mod(this=hashed, expression=exp.Literal.number(bucket.modulus))
    return exp.EQ(this=modulo, expression=exp.Literal.number(bucket.remainder))


def _check_params(parts: int, salt: int, within: Sequence[Bucket]) -> None:
    if isinstance(parts, bool) or not isinstance(parts, int) or not 1 <= parts <= MAX_PARTS:
        raise InvalidParams(f"parts must be an integer from 1 to {MAX_PARTS}, got {parts!r}")
    if isinstance(salt, bool) or not isinstance(salt, int) or salt < 0:
        raise InvalidParams(f"salt must be a non-negative integer, got {salt!r}")
    for bucket in within:
        if not 0 <= bucket.remainder < bucket.modulus:
            raise InvalidParams(f"bucket remainder {bucket.remainder} is outside 0..{bucket.modulus - 1}")
        if bucket.salt == salt:
            raise InvalidParams(
                f"salt {salt} is already used by the bucket being split; a re-split needs a new salt, "
                "or every row would land in one sub-part"
            )


def is_empty_group(group: exp.Group) -> bool:
    items = group.expressions
    return (
        not group.args.get("all")
        and len(items) == 1
        and isinstance(items[0], exp.Tuple)
        and not items[0].expressions
    )


def _has_own_aggregate(select: exp.Select) -> bool:
    roots = [*select.expressions, select.args.get("having"), select.args.get("order")]
    return any(contains_aggregate(r) for r in roots if r is not None)


def _common_partition(windows: list[exp.Window], sql: str) -> list[exp.Expression]:
    first = list(windows[0].args.get("partition_by") or [])
    for window in windows:
        keys = list(window.args.get("partition_by") or [])
        if not keys:
            raise Unsplittable(
                "window_without_partition",
                f"the window {window.sql('duckdb')} has no PARTITION BY: it sees every row",
                hint="Add PARTITION BY to the window if the computation allows it; otherwise run the query unsplit.",
                sql=sql,
            )
        if not same_exprs(keys, first):
            raise Unsplittable(
                "window_mixed_partitions",
                "its windows are partitioned by different keys",
                hint="Use one PARTITION BY for every window, or compute each window in its own query.",
                sql=sql,
            )
    for key in first:
        if contains_window(key) or (isinstance(key, exp.Literal)):
            raise Unsplittable(
                "window", f"the partition key {key.sql('duckdb')} is not a row expression", sql=sql
            )
    return [k.copy() for k in first]


def _distinct_keys(select: exp.Select, sql: str) -> list[exp.Expression]:
    keys: list[exp.Expression] = []
    for item in select.expressions:
        node = item.this if isinstance(item, exp.Alias) else item
        if isinstance(node, exp.Star):
            if any(node.args.get(a) for a in ("except_", "replace", "rename")):
                raise Unsplittable(
                    "distinct_star",
                    "SELECT DISTINCT * with EXCLUDE/REPLACE",
                    hint="Name the columns.",
                    sql=sql,
                )
            keys.append(exp.maybe_parse(_ALL_COLUMNS, dialect="duckdb"))
        elif isinstance(node, exp.Column) and isinstance(node.this, exp.Star):
            raise Unsplittable("distinct_star", "SELECT DISTINCT t.*", hint="Name the columns.", sql=sql)
        else:
            keys.append(node.copy())
    return keys


def _buckets(parts: int, salt: int, within: Sequence[Bucket]) -> list[tuple[Bucket, ...]]:
    return [(*within, Bucket(modulus=parts, remainder=i, salt=salt)) for i in range(parts)]


def _hash_parts(
    part_select: exp.Select, keys: Sequence[exp.Expression], parts: int, salt: int, within: Sequence[Bucket]
) -> tuple[Part, ...]:
    """`part_select` once per bucket, each with its bucket's hash filter added to the WHERE."""
    plan_parts = []
    for i, buckets in enumerate(_buckets(parts, salt, within)):
        predicate = exp.and_(*(hash_predicate(keys, b) for b in buckets))
        part = part_select.where(predicate.copy(), append=True, copy=True)
        plan_parts.append(Part(index=i, sql=part.sql("duckdb"), predicate=predicate.sql("duckdb")))
    return tuple(plan_parts)


def _plan_union(
    select: exp.Select,
    sql: str,
    shape: Shape,
    keys: list[exp.Expression],
    parts: int,
    salt: int,
    within: Sequence[Bucket],
) -> Plan:
    if not keys:
        raise Unsplittable(shape, "there is no key to split by", sql=sql)
    split = split_modifiers(select, keys, shape, sql)
    return Plan(
        shape=shape,
        sql=sql,
        parts=_hash_parts(split.part_select, keys, parts, salt, within),
        combine=Combine(kind="union_then", sql=split.combine.sql("duckdb")),
        key_exprs=tuple(k.sql("duckdb") for k in keys),
        salt=salt,
        within=tuple(within),
        notes=(*split.notes, *_join_notes(select)),
    )


def _plan_global(select: exp.Select, sql: str, parts: int, salt: int, within: Sequence[Bucket]) -> Plan:
    decomposition = decompose_global(select, sql)
    keys = decomposition.distinct_keys or _row_keys(select)
    part_select = select.copy()
    for clause in ("having", "order", "limit", "offset", "distinct", "qualify"):
        part_select.set(clause, None)
    part_select.set("expressions", decomposition.partials)
    notes = _join_notes(select)
    if not decomposition.distinct_keys:
        notes.append(
            "sum/count/min/max/avg stream in constant memory; splitting them only helps when the FROM side "
            "(a join, a subquery) is what runs out of memory"
        )
    return Plan(
        shape="global_aggregate",
        sql=sql,
        parts=_hash_parts(part_select, keys, parts, salt, within),
        combine=Combine(kind="union_then", sql=decomposition.combine.sql("duckdb")),
        key_exprs=tuple(k.sql("duckdb") for k in keys),
        salt=salt,
        within=tuple(within),
        notes=tuple(notes),
    )


def _join_notes(select: exp.Select) -> list[str]:
    if not select.args.get("joins"):
        return []
    return [
        (
            "the row filter is on the split keys: when they are the join keys DuckDB pushes it into both "
            "sides of an inner equi-join; otherwise each part joins every row of the other side, so the "
            "memory saved is the aggregate's, not the join's (DuckDB's hash join spills on its own)"
        )
    ]


def _row_keys(select: exp.Select) -> list[exp.Expression]:
    """Any row function splits a global aggregate exactly; prefer the columns its aggregates read."""
    seen: dict[str, exp.Expression] = {}
    for item in select.expressions:
        for column in own_nodes(item, exp.Column):
            if not column.find_ancestor(exp.Lambda) and not isinstance(column.this, exp.Star):
                seen.setdefault(column.sql("duckdb"), column.copy())
    return list(seen.values()) or [exp.maybe_parse(_ALL_COLUMNS, dialect="duckdb")]


def _plan_sorted(
    select: exp.Select, sql: str, parts: int, bounds: Sequence[Bound], within: Sequence[Bucket]
) -> Plan:
    order = select.args.get("order")
    if order is None or _has_own_aggregate(select) or select.args.get("group") is not None:
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
        raise _plain(select, sql)
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
    _check_params(parts, 0, ())
    select = parse_select(sql)
    _plan_sorted(select, sql, 1, [], ())  # the same checks as the range plan itself
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


def _plain(select: exp.Select, sql: str) -> Unsplittable:
    if select.args.get("limit") is not None:
        return Unsplittable(
            "limit_without_aggregate",
            "a SELECT with LIMIT and no GROUP BY, DISTINCT or window",
            hint="DuckDB already runs ORDER BY ... LIMIT (top-N) and plain LIMIT in bounded memory; run it unsplit.",
            sql=sql,
        )
    return Unsplittable(
        "plain_select",
        "a plain SELECT (no GROUP BY, DISTINCT, aggregate, window or ORDER BY)",
        hint="A plain SELECT streams in constant memory; run it unsplit, writing its result to an output file.",
        sql=sql,
    )
