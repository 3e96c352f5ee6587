"""ORDER BY, LIMIT, OFFSET and DISTINCT: taken out of the parts, applied once in the combine.

The combine reads the union of the part results (`_parts`), whose columns are the query's
own output columns (same names, same positions) followed by hidden sort columns
(`__bmad_order_0`, ...) for ORDER BY expressions that are not in the select list:

    SELECT * EXCLUDE (__bmad_order_0) FROM _parts ORDER BY __bmad_order_0 DESC, 2 LIMIT 10

With ORDER BY and a constant LIMIT, each part keeps its own top LIMIT+OFFSET rows (exact:
the global top rows are among the union of every part's top rows), so the combine reads at
most parts x (LIMIT+OFFSET) rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlglot import exp

from sidecar.partition.plan import PARTS_RELATION, Shape, Unsplittable

__all__ = ["HIDDEN_PREFIX", "Split", "split_modifiers"]

HIDDEN_PREFIX = "__bmad_order_"


@dataclass
class Split:
    """The part query (without the row filter) and the combine query over `_parts`."""

    part_select: exp.Select
    combine: exp.Select
    notes: list[str] = field(default_factory=list)


def split_modifiers(select: exp.Select, keys: list[exp.Expression], shape: Shape, sql: str) -> Split:
    order: exp.Order | None = select.args.get("order")
    limit: exp.Limit | None = select.args.get("limit")
    offset: exp.Offset | None = select.args.get("offset")
    distinct: exp.Distinct | None = select.args.get("distinct")
    if order is None and (limit is not None or offset is not None):
        raise Unsplittable(
            "limit_without_order",
            "LIMIT/OFFSET without ORDER BY picks arbitrary rows of the result",
            hint="Add an ORDER BY that makes the rows chosen well-defined, or drop the LIMIT.",
            sql=sql,
        )
    if distinct is not None and distinct.args.get("on") is not None and shape != "distinct_on":
        raise Unsplittable(
            "distinct_on",
            "DISTINCT ON together with GROUP BY or window functions",
            hint="Compute the grouped or windowed rows in a subquery and apply DISTINCT ON outside it.",
            sql=sql,
        )
    part = select.copy()
    for clause in ("order", "limit", "offset"):
        part.set(clause, None)
    notes: list[str] = []
    combine_order = None
    if order is not None:
        items, hidden = _map_order(select, order, sql)
        combine_order = exp.Order(expressions=items)
        part.set("expressions", [*part.expressions, *hidden])
        if shape == "distinct_on":  # ORDER BY decides which row of each DISTINCT ON group survives
            part.set("order", order.copy())
        top = _top_rows(limit, offset)
        if top is not None:
            part.set("order", order.copy())
            part.set("limit", exp.Limit(expression=exp.Literal.number(top)))
            notes.append(
                f"each part keeps only its first {top} rows in ORDER BY order (top-N pushed into parts)"
            )
    else:
        hidden = []
    star = exp.Star(except_=[exp.column(h.alias) for h in hidden]) if hidden else exp.Star()
    combine = exp.select(star).from_(PARTS_RELATION)
    if distinct is not None and distinct.args.get("on") is None and not _keys_in_output(select, keys):
        combine.set("distinct", exp.Distinct())
        notes.append("rows from different parts can be equal, so the combine applies DISTINCT again")
    if combine_order is not None:
        combine.set("order", combine_order)
    if limit is not None:
        combine.set("limit", limit.copy())
    if offset is not None:
        combine.set("offset", offset.copy())
    return Split(part_select=part, combine=combine, notes=notes)


def _top_rows(limit: exp.Limit | None, offset: exp.Offset | None) -> int | None:
    if limit is None or limit.args.get("limit_options") is not None:
        return None
    count = _integer(limit.expression)
    skip = 0 if offset is None else _integer(offset.expression)
    return None if count is None or skip is None else count + skip


def _integer(node: exp.Expression | None) -> int | None:
    if isinstance(node, exp.Literal) and not node.is_string and node.this.isdigit():
        return int(node.this)
    return None


def _unalias(node: exp.Expression) -> exp.Expression:
    return node.this if isinstance(node, exp.Alias) else node


def _is_star(node: exp.Expression) -> bool:
    node = _unalias(node)
    return isinstance(node, exp.Star) or (isinstance(node, exp.Column) and isinstance(node.this, exp.Star))


def _map_order(select: exp.Select, order: exp.Order, sql: str) -> tuple[list[exp.Ordered], list[exp.Alias]]:
    """Each ORDER BY item as a reference to a `_parts` column: ordinal, output name or hidden column."""
    items = select.expressions
    has_star = any(_is_star(i) for i in items)
    distinct = select.args.get("distinct") is not None and select.args["distinct"].args.get("on") is None
    texts = [_unalias(i).sql("duckdb") for i in items]
    aliases = [i.alias if isinstance(i, exp.Alias) else None for i in items]
    mapped: list[exp.Ordered] = []
    hidden: list[exp.Alias] = []
    for ordered in order.expressions:
        key = ordered.this
        ref: exp.Expression | None = None
        if isinstance(key, exp.Var) or (isinstance(key, exp.Literal) and not key.is_string):
            ref = key.copy()  # ORDER BY ALL, ORDER BY 2: both refer to the output columns
        elif isinstance(key, exp.Column) and not key.table and key.name in aliases:
            position = aliases.index(key.name)
            ref = exp.column(key.name, quoted=True) if has_star else exp.Literal.number(position + 1)
        elif key.sql("duckdb") in texts and not has_star:
            ref = exp.Literal.number(texts.index(key.sql("duckdb")) + 1)
        elif has_star and distinct and isinstance(key, exp.Column):
            ref = exp.column(key.name, quoted=True)
        elif not distinct:
            name = f"{HIDDEN_PREFIX}{len(hidden)}"
            hidden.append(exp.alias_(key.copy(), name))
            ref = exp.column(name)
        else:
            raise Unsplittable(
                "distinct_order",
                f"ORDER BY {key.sql('duckdb')} is not in the SELECT DISTINCT list",
                hint="Order by columns of the select list.",
                sql=sql,
            )
        new = ordered.copy()
        new.set("this", ref)
        mapped.append(new)
    return mapped, hidden


def _keys_in_output(select: exp.Select, keys: list[exp.Expression]) -> bool:
    """Whether every split key is an output column (then equal rows never come from two parts)."""
    outputs = {_unalias(i).sql("duckdb") for i in select.expressions}
    outputs |= {i.alias for i in select.expressions if isinstance(i, exp.Alias)}
    has_star = any(_is_star(i) for i in select.expressions)
    return all(
        k.sql("duckdb") in outputs or isinstance(k, exp.Columns) or (has_star and isinstance(k, exp.Column))
        for k in keys
    )
