"""Global aggregates (no GROUP BY) rebuilt exactly from per-part partial results.

Each part computes partials (`sum(x) AS __bmad_p0`, ...); the combine computes the same
select list over the union of the parts with every aggregate replaced by its re-combination:
sum -> sum, count -> sum (as BIGINT), min/max/bool_and/bool_or/bit_* -> themselves,
avg -> sum(sum) / sum(count). A DISTINCT aggregate (count(DISTINCT x)) is exact only when
equal values of x meet in one part, so such a query is split by hash(x).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlglot import exp

from sidecar.partition.plan import PARTS_RELATION, Unsplittable
from sidecar.partition.shapes import contains_window, is_aggregate, own_nodes

__all__ = ["Decomposition", "decompose_global"]

PARTIAL_PREFIX = "__bmad_p"

# Aggregates that are their own re-combination: f(f(part 1), f(part 2), ...) == f(all rows).
_SELF_COMBINING: dict[type[exp.Expression], str] = {
    exp.Min: "MIN",
    exp.Max: "MAX",
    exp.LogicalAnd: "BOOL_AND",
    exp.LogicalOr: "BOOL_OR",
    exp.BitwiseAndAgg: "BIT_AND",
    exp.BitwiseOrAgg: "BIT_OR",
}
# Aggregates whose DISTINCT form is not idempotent: equal values must meet in one part.
_DISTINCT_NEEDS_KEY = (exp.Count, exp.Sum, exp.Avg, exp.BitwiseXorAgg)

_RECOMBINABLE = "sum, count, count_if, min, max, avg, bool_and, bool_or, bit_and, bit_or, bit_xor"


@dataclass
class Decomposition:
    """Partials for the parts, the combine query, and the split key DISTINCT aggregates need."""

    combine: exp.Select
    partials: list[exp.Expression] = field(default_factory=list)
    distinct_keys: list[exp.Expression] = field(default_factory=list)


def decompose_global(select: exp.Select, sql: str) -> Decomposition:
    """Split a global aggregate query into partial aggregates and their exact re-combination."""
    combine = select.copy()
    result = Decomposition(combine=combine)
    for clause in ("qualify",):
        if combine.args.get(clause) is not None:
            raise Unsplittable("global_aggregate", "QUALIFY over a global aggregate", sql=sql)
    roots = [*combine.expressions, combine.args.get("having"), combine.args.get("order")]
    for root in [r for r in roots if r is not None]:
        if contains_window(root):
            raise Unsplittable(
                "global_aggregate_window",
                "a window function over a global aggregate",
                hint="Compute the aggregate in a subquery and apply the window outside, unsplit.",
                sql=sql,
            )
        if any(True for _ in root.find_all(exp.Subquery)):
            raise Unsplittable(
                "global_aggregate_subquery",
                "a subquery in the select list of a global aggregate",
                hint="Join the subquery's result in FROM, or compute it separately.",
                sql=sql,
            )
        aggregates = [n for n in own_nodes(root, exp.Func) if is_aggregate(n)]
        for agg in aggregates:
            unit = agg.parent if isinstance(agg.parent, exp.Filter) else agg
            unit.replace(_recombine(agg, unit, result, sql))
    combine.set("from_", exp.From(this=exp.to_table(PARTS_RELATION)))
    for clause in ("where", "joins", "laterals", "with_", "prewhere"):
        combine.set(clause, None)
    return result


def _recombine(agg: exp.Expression, unit: exp.Expression, result: Decomposition, sql: str) -> exp.Expression:
    distinct = agg.this if isinstance(agg.this, exp.Distinct) else None
    if distinct is not None and isinstance(agg, _DISTINCT_NEEDS_KEY):
        _require_key(list(distinct.expressions), agg, result, sql)

    def partial(node: exp.Expression) -> exp.Column:
        name = f"{PARTIAL_PREFIX}{len(result.partials)}"
        if unit is not agg:  # keep the FILTER (WHERE ...) clause on the partial
            node = exp.Filter(this=node, expression=unit.args["expression"].copy())
        result.partials.append(exp.alias_(node, name))
        return exp.column(name)

    if isinstance(agg, (exp.Count, exp.CountIf)):
        total = exp.func("SUM", partial(agg.copy()))
        return exp.cast(exp.func("COALESCE", total, exp.Literal.number(0)), "BIGINT")
    if isinstance(agg, exp.Sum):
        return exp.func("SUM", partial(agg.copy()))
    if isinstance(agg, exp.BitwiseXorAgg):
        return exp.func("BIT_XOR", partial(agg.copy()))
    if type(agg) in _SELF_COMBINING:
        return exp.func(_SELF_COMBINING[type(agg)], partial(agg.copy()))
    if isinstance(agg, exp.Avg):
        total = partial(exp.Sum(this=agg.this.copy()))
        count = partial(exp.Count(this=agg.this.copy()))
        numerator = exp.cast(exp.func("SUM", total), "DOUBLE")
        return exp.Div(this=numerator, expression=exp.func("SUM", count))
    name = agg.sql_name().lower() if not isinstance(agg, exp.Anonymous) else str(agg.this).lower()
    hint = f"Only {_RECOMBINABLE} re-combine exactly from parts. Add a GROUP BY (each group then lives in one part)"
    if name in {"median", "quantile", "quantile_cont", "quantile_disc", "percentile_cont", "percentile_disc"}:
        hint += (
            "; a global SELECT whose holistic aggregates are all median/quantile_cont/quantile_disc runs in "
            "exact passes instead (docs/architecture/partitioning-strategies.md)"
        )
    raise Unsplittable(
        "global_aggregate",
        f"the global aggregate {agg.sql('duckdb')} cannot be re-combined from parts",
        hint=hint + ".",
        sql=sql,
    )


def _require_key(keys: list[exp.Expression], agg: exp.Expression, result: Decomposition, sql: str) -> None:
    if not result.distinct_keys:
        result.distinct_keys = [k.copy() for k in keys]
        return
    if {k.sql("duckdb") for k in keys} != {k.sql("duckdb") for k in result.distinct_keys}:
        shown = ", ".join(k.sql("duckdb") for k in result.distinct_keys)
        raise Unsplittable(
            "global_aggregate_distinct",
            f"{agg.sql('duckdb')} and a DISTINCT aggregate over ({shown}) need different splits",
            hint="Run one query per DISTINCT argument (each splits by its own hash) and join the one-row results.",
            sql=sql,
        )
