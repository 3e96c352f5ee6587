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

from collections.abc import Sequence

from sqlglot import exp

from sidecar.partition.buckets import buckets_of, hash_predicate
from sidecar.partition.joins import join_keys, plan_join
from sidecar.partition.modifiers import split_modifiers
from sidecar.partition.plan import MAX_PARTS, Bucket, Combine, NeedsBounds, Part, Plan, Shape, Unsplittable, check_params
from sidecar.partition.recombine import decompose_global
from sidecar.partition.ranges import Bound, plan_sorted
from sidecar.partition.through import SOURCE_MARK, see_through
from sidecar.partition.shapes import (
    has_own_aggregate,
    plain_refusal,
    contains_window,
    own_nodes,
    parse_select,
    resolve_group_keys,
    same_exprs,
    windows_of,
)

__all__ = [
    "MAX_PARTS",
    "hash_predicate",
    "is_empty_group",
    "plan_partitioned",
]

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
    check_params(parts, salt, within)
    select = parse_select(sql)
    group = select.args.get("group")
    if group is not None and is_empty_group(group):
        group = None
        select = select.copy()
        select.set("group", None)
    if group is None and bounds is None and has_own_aggregate(select):
        return _plan_global(select, sql, parts, salt, within)
    if bounds is not None:
        return plan_sorted(select, sql, parts, bounds, within)
    found = _keys_of(select, sql)
    if found is not None:
        return _plan_union(select, sql, found[0], found[1], parts, salt, within)
    through = see_through(select, sql, _keys_of)
    if through is not None:
        return _plan_through(select, sql, through, parts, salt, within)
    full_order = select.args.get("order") is not None and select.args.get("limit") is None
    joined = None if full_order else join_keys(select, sql)
    if joined is not None:
        return plan_join(select, sql, joined, parts, salt, within)
    if full_order:
        raise NeedsBounds()
    raise plain_refusal(select, sql)


def _keys_of(select: exp.Select, sql: str) -> tuple[Shape, list[exp.Expression]] | None:
    """The shape and keys `select` splits by on its own (GROUP BY, window, DISTINCT); None for a
    SELECT with none of them (a row-wise one may still split by what it reads: see_through)."""
    group = select.args.get("group")
    if group is not None and is_empty_group(group):
        group = None
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
        return "group_by", keys
    windows = windows_of(select)
    if windows:
        return "window", _common_partition(windows, sql)
    distinct = select.args.get("distinct")
    if distinct is not None:
        on = distinct.args.get("on")
        if on is not None:
            return "distinct_on", [k.copy() for k in (on.expressions if isinstance(on, exp.Tuple) else [on])]
        return "distinct", _distinct_keys(select, sql)
    return None


def _plan_through(
    select: exp.Select,
    sql: str,
    through: tuple[exp.Select, Shape, list[exp.Expression]],
    parts: int,
    salt: int,
    within: Sequence[Bucket],
) -> Plan:
    """A row-wise query over a source that splits by keys: each part filters the source's input."""
    source, shape, keys = through
    if not keys:
        raise Unsplittable(shape, "there is no key to split by", sql=sql)
    source.meta[SOURCE_MARK] = True
    try:
        split = split_modifiers(select, keys, shape, sql)
    finally:
        source.meta.pop(SOURCE_MARK, None)
    plan_parts = []
    for i, buckets in enumerate(buckets_of(parts, salt, within)):
        predicate = exp.and_(*(hash_predicate(keys, b) for b in buckets))
        part = split.part_select.copy()
        inner = next(n for n in part.find_all(exp.Select) if n.meta.get(SOURCE_MARK))
        inner.meta.pop(SOURCE_MARK, None)
        inner.where(predicate.copy(), append=True, copy=False)
        plan_parts.append(Part(index=i, sql=part.sql("duckdb"), predicate=predicate.sql("duckdb")))
    return Plan(
        shape=shape,
        sql=sql,
        parts=tuple(plan_parts),
        combine=Combine(kind="union_then", sql=split.combine.sql("duckdb")),
        key_exprs=tuple(k.sql("duckdb") for k in keys),
        salt=salt,
        within=tuple(within),
        notes=(
            f"split through a subquery or CTE by its {shape} keys: the outer query only filters, projects, "
            "orders or limits its rows, and each part filters the source's input rows",
            *split.notes,
            *_join_notes(source),
        ),
    )


def is_empty_group(group: exp.Group) -> bool:
    items = group.expressions
    return (
        not group.args.get("all")
        and len(items) == 1
        and isinstance(items[0], exp.Tuple)
        and not items[0].expressions
    )


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


def _hash_parts(
    part_select: exp.Select, keys: Sequence[exp.Expression], parts: int, salt: int, within: Sequence[Bucket]
) -> tuple[Part, ...]:
    """`part_select` once per bucket, each with its bucket's hash filter added to the WHERE."""
    plan_parts = []
    for i, buckets in enumerate(buckets_of(parts, salt, within)):
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
