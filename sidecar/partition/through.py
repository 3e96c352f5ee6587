"""Seeing through a subquery or CTE: a row-wise outer query splits by the keys of what it reads.

`SELECT ... FROM (SELECT k, v, row_number() OVER (PARTITION BY k ORDER BY v DESC) AS r FROM x) WHERE r <= 2`
is how most people write a top-N per group. The outer query only filters, projects, orders or limits
the rows of one source, so each of its rows comes from exactly one row of the source; when the source
splits by keys (a GROUP BY, a window's PARTITION BY, a DISTINCT), filtering the source's input rows by
`hash(keys) % N = i` gives parts whose union is the source's answer, and the outer query applied to each
part gives parts whose union is the whole answer. The hash filter goes into the source's own WHERE,
where its keys are in scope; ORDER BY/LIMIT of the outer query move to the combine as usual.

A CTE is seen through only when the query reads it once: a second reference (a self-join, an IN
subquery) would see the filtered CTE too.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp

from sidecar.partition.plan import Shape
from sidecar.partition.shapes import has_own_aggregate, windows_of

__all__ = ["KeysOf", "SOURCE_MARK", "see_through"]

SOURCE_MARK = "bmad_split_source"
"""Meta flag on the source SELECT, so the planner finds it again in a copy of the tree."""

KeysOf = Callable[[exp.Select, str], "tuple[Shape, list[exp.Expression]] | None"]
"""How a SELECT splits by itself: its shape and keys, None when it has none of its own."""


def see_through(
    select: exp.Select, sql: str, keys_of: KeysOf
) -> tuple[exp.Select, Shape, list[exp.Expression]] | None:
    """The source SELECT under a row-wise `select` that splits by keys, with its shape and keys
    (looking through any number of row-wise levels); None when there is none.

    >>> from sidecar.partition.shapes import parse_select
    >>> def groups(s, sql):
    ...     g = s.args.get("group")
    ...     return ("group_by", list(g.expressions)) if g else None
    >>> q = "WITH g AS (SELECT k, sum(v) AS s FROM x GROUP BY k) SELECT * FROM g WHERE s > 1"
    >>> source, shape, keys = see_through(parse_select(q), q, groups)
    >>> shape, [k.sql() for k in keys]
    ('group_by', ['k'])
    >>> see_through(parse_select("SELECT * FROM g JOIN h USING (k)"), "", groups) is None
    True
    """
    while _row_wise(select):  # a loop, not recursion: the nesting depth is the user's
        source = _single_source(select)
        if source is None or source.args.get("limit") is not None or source.args.get("offset") is not None:
            return None
        found = keys_of(source, sql)
        if found is not None:
            return source, found[0], found[1]
        select = source
    return None


def _row_wise(select: exp.Select) -> bool:
    """Whether each output row of `select` comes from one row of its FROM (no grouping, windows,
    DISTINCT, QUALIFY or joins)."""
    return not (
        select.args.get("group") is not None
        or select.args.get("distinct") is not None
        or select.args.get("qualify") is not None
        or select.args.get("joins")
        or select.args.get("laterals")
        or has_own_aggregate(select)
        or windows_of(select)
    )


def _single_source(select: exp.Select) -> exp.Select | None:
    """The SELECT that `select` reads: its FROM subquery, or the CTE its FROM names (read once)."""
    from_ = select.args.get("from_") or select.args.get("from")
    if from_ is None:
        return None
    source = from_.this
    if isinstance(source, exp.Subquery):
        return source.this if isinstance(source.this, exp.Select) else None
    if not isinstance(source, exp.Table) or source.args.get("db") is not None:
        return None
    cte = _cte_named(select, source.name)
    if cte is None or not isinstance(cte.this, exp.Select):
        return None
    readers = [t for t in select.root().find_all(exp.Table) if t.name == source.name and t.args.get("db") is None]
    return cte.this if len(readers) == 1 else None


def _cte_named(node: exp.Expression, name: str) -> exp.CTE | None:
    """The CTE called `name` visible from `node`: the nearest enclosing WITH that defines it."""
    scope: exp.Expression | None = node
    while scope is not None:
        with_ = scope.args.get("with_") or scope.args.get("with")
        if isinstance(with_, exp.With):
            for cte in with_.expressions:
                if cte.alias == name:
                    return cte if isinstance(cte, exp.CTE) else None
        scope = scope.parent
    return None
