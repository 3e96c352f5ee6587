"""Reading a query's shape: which part of it decides how its rows may be shared out.

Pure sqlglot over DuckDB's dialect. Everything here looks only at the outermost SELECT:
subqueries, CTEs and FROM items are carried into every part unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from sidecar.partition.plan import Unsplittable

__all__ = [
    "AGGREGATE_NAMES",
    "contains_aggregate",
    "contains_window",
    "is_aggregate",
    "own_nodes",
    "parse_select",
    "resolve_group_keys",
    "resolve_order_key",
    "same_exprs",
    "windows_of",
]

#: DuckDB's aggregate function names (`duckdb_functions()`, DuckDB 2.0.1). sqlglot parses the ones
#: it does not know (histogram, product, fsum, ...) as plain function calls; this list lets the
#: planner still see them as aggregates. A test fails when DuckDB's list drifts from it.
AGGREGATE_NAMES = frozenset(
    [
        "any_value",
        "approx_count_distinct",
        "approx_quantile",
        "approx_top_k",
        "arbitrary",
        "arg_max",
        "arg_max_null",
        "arg_max_nulls_last",
        "arg_min",
        "arg_min_null",
        "arg_min_nulls_last",
        "argmax",
        "argmin",
        "array_agg",
        "avg",
        "bit_and",
        "bit_or",
        "bit_xor",
        "bitstring_agg",
        "bool_and",
        "bool_or",
        "combine_aggr",
        "corr",
        "count",
        "count_if",
        "count_star",
        "countif",
        "covar_pop",
        "covar_samp",
        "decimal_average",
        "entropy",
        "favg",
        "first",
        "fsum",
        "group_concat",
        "histogram",
        "histogram_exact",
        "kahan_sum",
        "kurtosis",
        "kurtosis_pop",
        "last",
        "list",
        "listagg",
        "lttb",
        "mad",
        "max",
        "max_by",
        "mean",
        "median",
        "min",
        "min_by",
        "mode",
        "product",
        "quantile",
        "quantile_cont",
        "quantile_disc",
        "regr_avgx",
        "regr_avgy",
        "regr_count",
        "regr_intercept",
        "regr_r2",
        "regr_slope",
        "regr_sxx",
        "regr_sxy",
        "regr_syy",
        "reservoir_quantile",
        "sem",
        "skewness",
        "stddev",
        "stddev_pop",
        "stddev_samp",
        "string_agg",
        "sum",
        "sum_no_overflow",
        "sumkahan",
        "var_pop",
        "var_samp",
        "variance",
        "variant_group_object",
    ]
)

# Functions whose value differs between runs: each part would see a different one.
_NONDETERMINISTIC = frozenset({"random", "rand", "uuid", "gen_random_uuid", "uuidv4", "uuidv7", "setseed"})


def parse_select(sql: str) -> exp.Select:
    """The one SELECT statement in `sql`, or Unsplittable naming what was found instead."""
    try:
        statements = [s for s in sqlglot.parse(sql, read="duckdb") if s is not None]
    except ParseError as exc:
        raise Unsplittable(
            "unparsed",
            f"the SQL could not be parsed in DuckDB's dialect ({_first_line(str(exc))})",
            hint="Check the SQL runs unsplit first; if it does, write the construct the parser rejected "
            "in a more common form.",
            sql=sql,
        ) from exc
    if len(statements) != 1:
        raise Unsplittable(
            "several_statements",
            f"it holds {len(statements)} statements; a plan splits exactly one SELECT",
            hint="Send one SELECT per request.",
            sql=sql,
        )
    tree = statements[0]
    if isinstance(tree, exp.SetOperation):
        raise Unsplittable(
            "set_operation",
            f"its outermost statement is a {tree.key.upper()}",
            hint="Split each side of the UNION/INTERSECT/EXCEPT as its own query, or wrap the set operation in "
            "a subquery under a GROUP BY or DISTINCT.",
            sql=sql,
        )
    if isinstance(tree, exp.Pivot) or tree.find(exp.Pivot):
        raise Unsplittable(
            "pivot",
            "PIVOT/UNPIVOT is not split",
            hint="Write the PIVOT as a GROUP BY with one aggregate per column, e.g. "
            "sum(v) FILTER (WHERE k = 'x') AS x; that splits by the group keys.",
            sql=sql,
        )
    if not isinstance(tree, exp.Select):
        raise Unsplittable(
            "not_select",
            f"it is a {tree.key.upper()} statement, not a SELECT",
            hint="Only a SELECT is split; let the sidecar write its result (output) instead of COPY/CREATE.",
            sql=sql,
        )
    _check_outer(tree, sql)
    return tree


def _check_outer(select: exp.Select, sql: str) -> None:
    with_ = select.args.get("with_") or select.args.get("with")
    if with_ is not None and with_.args.get("recursive"):
        raise Unsplittable(
            "recursive_cte",
            "WITH RECURSIVE is evaluated as a whole",
            hint="Materialise the recursive CTE into a table first, then split the query over that table.",
            sql=sql,
        )
    if select.args.get("from_") is None and select.args.get("from") is None:
        raise Unsplittable(
            "no_from", "it reads no rows (no FROM)", hint="There is nothing to split.", sql=sql
        )
    if select.args.get("windows"):
        raise Unsplittable(
            "named_window",
            "it uses a named WINDOW clause",
            hint="Write each window inline: OVER (PARTITION BY ... ORDER BY ...).",
            sql=sql,
        )
    if select.find(exp.TableSample):
        raise Unsplittable(
            "sample",
            "it samples its input (USING SAMPLE / TABLESAMPLE); every part would draw its own sample",
            hint="Sample into a table first, then split the query over that table.",
            sql=sql,
        )
    for func in select.find_all(exp.Func):
        if func.sql_name().lower() in _NONDETERMINISTIC or isinstance(func, exp.Rand):
            raise Unsplittable(
                "nondeterministic",
                f"it calls {func.sql_name().lower()}(), which gives each part different values",
                hint="Compute the random values into a table first, then split the query over that table.",
                sql=sql,
            )


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


def own_nodes(
    root: exp.Expression, kind: type[exp.Expression] | tuple[type[exp.Expression], ...]
) -> Iterator[exp.Expression]:
    """Nodes of `kind` under `root` that belong to the same query level (not inside a subquery)."""
    for node in root.walk(prune=lambda n: n is not root and isinstance(n, (exp.Subquery, exp.Query))):
        if isinstance(node, kind) and not _inside_query(node, root):
            yield node


def _inside_query(node: exp.Expression, root: exp.Expression) -> bool:
    if node is root:
        return False
    parent = node.parent
    while parent is not None and parent is not root:
        if isinstance(parent, (exp.Subquery, exp.Query)):
            return True
        parent = parent.parent
    return False


def is_aggregate(node: exp.Expression) -> bool:
    """An aggregate call (not a window function: those are wrapped in exp.Window)."""
    if isinstance(node, exp.Window):
        return False
    if isinstance(node.parent, exp.Window) and node.parent.this is node:
        return False
    if isinstance(node, exp.AggFunc):
        return True
    if isinstance(node, exp.Anonymous):
        return str(node.this).lower() in AGGREGATE_NAMES
    return False


def contains_aggregate(root: exp.Expression) -> bool:
    return any(is_aggregate(n) for n in own_nodes(root, exp.Func))


def contains_window(root: exp.Expression) -> bool:
    return any(True for _ in own_nodes(root, exp.Window))


def windows_of(select: exp.Select) -> list[exp.Window]:
    """Window calls of the outer query (select list, QUALIFY, ORDER BY)."""
    found: list[exp.Window] = []
    for arg in (*select.expressions, select.args.get("qualify"), select.args.get("order")):
        if arg is not None:
            found.extend(w for w in own_nodes(arg, exp.Window) if isinstance(w, exp.Window))
    return found


def same_exprs(a: list[exp.Expression], b: list[exp.Expression]) -> bool:
    """Equal as sets of SQL texts (order of keys does not change which rows share a key)."""
    return {e.sql("duckdb") for e in a} == {e.sql("duckdb") for e in b}


def _unalias(node: exp.Expression) -> exp.Expression:
    return node.this if isinstance(node, exp.Alias) else node


def resolve_group_keys(select: exp.Select, sql: str) -> list[exp.Expression]:
    """The expressions rows are grouped by, usable in WHERE (ordinals and GROUP BY ALL resolved).

    A bare name stays a name: DuckDB binds it in WHERE exactly as in GROUP BY (a column first,
    then a select alias), so the hash sees the same value the grouping does.
    """
    group = select.args["group"]
    for kind in ("grouping_sets", "rollup", "cube"):
        if group.args.get(kind):
            raise _grouping_sets(sql)
    if any(isinstance(e, (exp.GroupingSets, exp.Rollup, exp.Cube)) for e in group.expressions):
        raise _grouping_sets(sql)
    items = select.expressions
    if group.args.get("all"):
        keys = [_unalias(e).copy() for e in items if not contains_aggregate(e) and not contains_window(e)]
        if any(isinstance(k, exp.Star) for k in keys):
            raise Unsplittable(
                "group_by_all_star",
                "GROUP BY ALL with * in the select list",
                hint="Name the group keys in GROUP BY.",
                sql=sql,
            )
        return keys
    keys = []
    for key in group.expressions:
        if isinstance(key, exp.Literal) and not key.is_string:
            position = int(key.this)
            if not 1 <= position <= len(items):
                raise Unsplittable("group_by", f"GROUP BY {position} is out of range", sql=sql)
            key = _unalias(items[position - 1])
        keys.append(key.copy())
    for key in keys:
        if contains_aggregate(key) or contains_window(key):
            raise Unsplittable(
                "group_by", f"the group key {key.sql('duckdb')} holds an aggregate or window", sql=sql
            )
    return keys


def _grouping_sets(sql: str) -> Unsplittable:
    return Unsplittable(
        "grouping_sets",
        "GROUPING SETS / ROLLUP / CUBE combine rows across group keys",
        hint="Run one GROUP BY per grouping set (each splits by its keys) and UNION ALL the results.",
        sql=sql,
    )


def resolve_order_key(select: exp.Select, key: exp.Expression) -> exp.Expression:
    """An ORDER BY expression as a row expression: ordinals and select aliases replaced.

    ORDER BY binds a name to a select alias before a column, so aliases are expanded here.
    """
    items = select.expressions
    if isinstance(key, exp.Literal) and not key.is_string:
        return _unalias(items[int(key.this) - 1]).copy()
    if isinstance(key, exp.Column) and not key.table:
        for item in items:
            if isinstance(item, exp.Alias) and item.alias == key.name:
                return item.this.copy()
    return key.copy()


def has_own_aggregate(select: exp.Select) -> bool:
    roots = [*select.expressions, select.args.get("having"), select.args.get("order")]
    return any(contains_aggregate(r) for r in roots if r is not None)


def plain_refusal(select: exp.Select, sql: str) -> Unsplittable:
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
