"""Exact global median and quantiles over more rows than fit in memory: the plan and its search.

A quantile of parts is not the quantile of the whole, so a global SELECT with `median(x)`,
`quantile_cont(x, p)`, `quantile_disc(x, p)` or `quantile(x, p)` (DuckDB's alias of
quantile_disc) cannot be split like `sum`. DuckDB itself must hold every value of x at once.
This plan finds the same answer in passes that each need a little memory:

1. count: the non-null values of x, its infinities and NaN, and its finite min and max;
2. bins: count values per bin (1024 over [lo, hi]; one GROUP BY, a few KB) and keep, for each
   wanted rank, the exact [min, max] of the bin that holds it; repeat while it holds more than
   `exact_rows` values (a bin that is one value is the answer, however many rows it has);
3. exact: number the rows of the small bins in order and keep the wanted ranks;
4. DuckDB's own function over the one or two order statistics gives the answer:
   `quantile_cont(v, d)` over VALUES (x[i]), (x[i+1]) interpolates exactly as over all n rows,
   with the same result type.

Bins are computed with exact integer arithmetic on the original values (floats by IEEE
subtraction and division, which are monotone), so every value of a bin lies in its [min, max]
and the counts below it are exact; the final pass compares the original type. The other
aggregates of the query (sum, count(DISTINCT x), ...) run as a reduced query through the
partitioned planner. Pure: SQL text in, SQL text out; the executor is sidecar.jobs.quantile_passes.

This module plans; `sidecar.partition.quantile_values` reads value types and writes the answer's
SQL, and `sidecar.partition.quantile_search` holds the passes that isolate each rank.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import msgspec
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.tokens import TokenType

from sidecar.partition.plan import Plan, Unsplittable
from sidecar.partition.planner import is_empty_group, plan_partitioned
from sidecar.partition.shapes import (
    contains_aggregate,
    contains_window,
    is_aggregate,
    own_nodes,
    parse_select,
)

__all__ = [
    "DEFAULT_BINS",
    "DEFAULT_EXACT_ROWS",
    "HUGE",
    "SOURCE",
    "V",
    "VALUES",
    "Family",
    "Function",
    "QuantileCall",
    "QuantilePlan",
    "Series",
    "bind_params",
    "has_quantiles",
    "number_placeholders",
    "plan_quantiles",
]

DEFAULT_BINS = 1024
DEFAULT_EXACT_ROWS = 1 << 20
"""A bin of at most this many values is read exactly (one window sort of ~1M values, ~30 MB)."""

Function = Literal["median", "quantile_cont", "quantile_disc"]
Family = Literal["integer", "decimal", "float", "date", "timestamp"]

_FUNCTIONS: dict[type[exp.Expression], Function] = {
    exp.Median: "median",
    exp.PercentileCont: "quantile_cont",
    exp.PercentileDisc: "quantile_disc",
    exp.Quantile: "quantile_disc",  # DuckDB: quantile(x, p) is quantile_disc(x, p)
}
V = "__bmad_v"
SOURCE = "__bmad_src"
VALUES = "__bmad_values"
HUGE = 2**126  # an offset times the bin count stays below this, well inside HUGEINT


class Series(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The values quantiles are taken of: one expression over the query's rows (and its FILTER)."""

    value: str
    source: str
    """`SELECT <value> AS __bmad_v FROM ... WHERE ...`: the query's FROM, joins and WHERE."""


class QuantileCall(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One quantile aggregate of the query; the final query reads its answer as `column`."""

    column: str
    function: Function
    series: int
    param: str | None
    """The SQL of p (None for median); a list literal gives a list answer."""
    listed: bool = False


class QuantilePlan(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What to run for a global query with quantiles: passes per series, the other aggregates, a final.

    Like `Plan` it says what to run, never where; `others` is the partitioned plan of the reduced
    query (`others_sql`, each aggregate as VARCHAR `__bmad_a<j>`), `others_typed` the same with
    the aggregates' own types, for DESCRIBE.
    """

    sql: str
    series: tuple[Series, ...]
    calls: tuple[QuantileCall, ...]
    projections: tuple[str, ...]
    """The select list over `__bmad_values`, where each aggregate is a column."""
    where: str | None
    """The HAVING clause over `__bmad_values`."""
    tail: str
    """LIMIT / OFFSET of the query."""
    others_sql: str | None
    others_typed: str | None
    others: Plan | None
    bins: int = DEFAULT_BINS
    exact_rows: int = DEFAULT_EXACT_ROWS

    def to_json(self) -> bytes:
        return msgspec.json.encode(self)

    @classmethod
    def from_json(cls, data: bytes | str) -> QuantilePlan:
        return msgspec.json.decode(data, type=cls)


# -- planning -------------------------------------------------------------------------------


def has_quantiles(sql: str) -> bool:
    """Whether `sql` is a global aggregate (no GROUP BY) calling a quantile: this plan's shape, or none.

    >>> has_quantiles("SELECT median(v) FROM t"), has_quantiles("SELECT k, median(v) FROM t GROUP BY k")
    (True, False)
    """
    try:
        select = parse_select(sql)
    except Unsplittable:
        return False
    group = select.args.get("group")
    if group is not None and not is_empty_group(group):
        return False
    roots = [r for r in (*select.expressions, select.args.get("having")) if r is not None]
    return any(type(n) in _FUNCTIONS and is_aggregate(n) for r in roots for n in own_nodes(r, exp.Func))


def plan_quantiles(
    sql: str, parts: int, *, bins: int = DEFAULT_BINS, exact_rows: int = DEFAULT_EXACT_ROWS
) -> QuantilePlan:
    """Plan a global SELECT whose aggregates include quantiles; Unsplittable for any other shape.

    >>> plan = plan_quantiles("SELECT median(v) - avg(v) FROM t WHERE k > 1", 4)
    >>> plan.series[0].source, plan.projections, plan.others_sql
    ('SELECT v AS __bmad_v FROM t WHERE k > 1', ('__bmad_q0 - __bmad_a0',), \
'SELECT CAST(AVG(v) AS TEXT) AS __bmad_a0 FROM t WHERE k > 1')
    """
    if bins < 2 or exact_rows < 1:
        raise ValueError("bins must be at least 2 and exact_rows at least 1")
    select = parse_select(number_placeholders(sql))
    group = select.args.get("group")
    if group is not None and not is_empty_group(group):
        raise Unsplittable(
            "quantiles", "a GROUP BY query is split by its group keys, not by quantile passes", sql=sql
        )
    if select.args.get("qualify") is not None or any(
        contains_window(r) for r in (*select.expressions, select.args.get("having")) if r is not None
    ):
        raise Unsplittable(
            "quantiles_window",
            "a window function over a global aggregate",
            hint="Compute the aggregates in a subquery and apply the window outside, unsplit.",
            sql=sql,
        )
    final = select.copy()
    final.set("group", None)
    roots = [r for r in (*final.expressions, final.args.get("having")) if r is not None]
    series: dict[tuple[str, str | None], Series] = {}
    calls: list[QuantileCall] = []
    others: list[exp.Expression] = []
    for root in roots:
        for agg in [n for n in own_nodes(root, exp.Func) if is_aggregate(n)]:
            unit = agg.parent if isinstance(agg.parent, exp.Filter) else agg
            if type(agg) in _FUNCTIONS:
                column = f"__bmad_q{len(calls)}"
                calls.append(_call(select, agg, unit, column, series, sql))
            else:
                column = f"__bmad_a{len(others)}"
                others.append(unit.copy())
            unit.replace(exp.column(column))
    if not calls:
        raise Unsplittable("quantiles", "it has no median or quantile aggregate", sql=sql)
    others_typed = _reduced(select, [o.copy() for o in others]) if others else None
    others_sql = _reduced(select, [exp.cast(o, "VARCHAR") for o in others]) if others else None
    having = final.args.get("having")
    return QuantilePlan(
        sql=sql,
        series=tuple(series.values()),
        calls=tuple(calls),
        projections=tuple(p.unalias().sql("duckdb") for p in final.expressions),
        where=having.this.sql("duckdb") if having is not None else None,
        tail=" ".join(
            final.args[c].sql("duckdb") for c in ("limit", "offset") if final.args.get(c) is not None
        ),
        others_sql=others_sql,
        others_typed=others_typed,
        others=plan_partitioned(others_sql, parts) if others_sql else None,
        bins=bins,
        exact_rows=exact_rows,
    )


def _call(
    select: exp.Select,
    agg: exp.Expression,
    unit: exp.Expression,
    column: str,
    series: dict[tuple[str, str | None], Series],
    sql: str,
) -> QuantileCall:
    """One quantile aggregate: its function, the series it reads and its p."""
    if isinstance(agg.parent, exp.WithinGroup) or isinstance(agg.this, (exp.Order, exp.Distinct)):
        raise Unsplittable(
            "quantiles",
            f"{unit.sql('duckdb')} (DISTINCT, ORDER BY or WITHIN GROUP in a quantile) is not run in passes",
            hint="Write it as median(x), quantile_cont(x, p) or quantile_disc(x, p).",
            sql=sql,
        )
    value = agg.this
    param = agg.args.get("quantile") if isinstance(agg, exp.Quantile) else agg.args.get("expression")
    if value is None or (param is None and not isinstance(agg, exp.Median)):
        raise Unsplittable("quantiles", f"{agg.sql('duckdb')} has no value or no p", sql=sql)
    if contains_aggregate(value) or contains_window(value) or value.find(exp.Subquery):
        raise Unsplittable(
            "quantiles", f"the quantile's argument {value.sql('duckdb')} is not a row expression", sql=sql
        )
    if param is not None and param.find(exp.Column, exp.Subquery):
        raise Unsplittable("quantiles", f"the quantile's p {param.sql('duckdb')} is not a constant", sql=sql)
    condition = unit.args["expression"].this if isinstance(unit, exp.Filter) else None
    key = (value.sql("duckdb"), condition.sql("duckdb") if condition is not None else None)
    if key not in series:
        series[key] = Series(value=key[0], source=_source(select, value, condition))
    return QuantileCall(
        column=column,
        function=_FUNCTIONS[type(agg)],
        series=list(series).index(key),
        param=param.sql("duckdb") if param is not None else None,
        listed=isinstance(param, exp.Array),
    )


def _bare(select: exp.Select) -> exp.Select:
    """The query's FROM, joins and WHERE (and WITH), without what applies to its one result row."""
    bare = select.copy()
    for clause in ("group", "having", "order", "limit", "offset", "distinct", "qualify"):
        bare.set(clause, None)
    return bare


def _source(select: exp.Select, value: exp.Expression, condition: exp.Expression | None) -> str:
    source = _bare(select)
    source.set("expressions", [exp.alias_(value.copy(), V)])
    if condition is not None:
        source = source.where(condition.copy(), append=True)
    return source.sql("duckdb")


def _reduced(select: exp.Select, aggregates: list[exp.Expression]) -> str:
    reduced = _bare(select)
    reduced.set("expressions", [exp.alias_(a, f"__bmad_a{j}") for j, a in enumerate(aggregates)])
    return reduced.sql("duckdb")


# -- parameters -----------------------------------------------------------------------------


def number_placeholders(sql: str) -> str:
    """`?` placeholders numbered `$1, $2, ...` in order, so a derived query can keep a subset.

    >>> number_placeholders("SELECT median(v) + ? FROM t WHERE k = '?' AND j = ?")
    "SELECT median(v) + $1 FROM t WHERE k = '?' AND j = $2"
    """
    tokens = [
        t for t in Dialect.get_or_raise("duckdb").tokenize(sql) if t.token_type == TokenType.PLACEHOLDER
    ]
    for number, token in reversed(list(enumerate(tokens, 1))):
        sql = sql[: token.start] + f"${number}" + sql[token.end + 1 :]
    return sql


def bind_params(sql: str, params: list[Any] | dict[str, Any] | None) -> tuple[str, Any]:
    """`sql` and the parameters it uses: DuckDB refuses a parameter a statement does not use.

    >>> bind_params('SELECT $3 + $1 AS "$3"', ["a", "b", "c"])
    ('SELECT $2 + $1 AS "$3"', ['a', 'c'])
    """
    if params is None:
        return sql, None
    pieces = re.split(r"('(?:[^']|'')*'|\"(?:[^\"]|\"\")*\")", sql)  # odd pieces are quoted
    code = " ".join(pieces[0::2])
    if isinstance(params, dict):
        used = set(re.findall(r"\$([A-Za-z_]\w*)", code))
        return sql, {k: v for k, v in params.items() if k in used} or None
    numbers = sorted({int(m) for m in re.findall(r"\$(\d+)", code)})
    if not numbers:
        return sql, None
    renumber = {old: new for new, old in enumerate(numbers, 1)}
    for i in range(0, len(pieces), 2):
        pieces[i] = re.sub(r"\$(\d+)", lambda m: f"${renumber[int(m.group(1))]}", pieces[i])
    return "".join(pieces), [params[n - 1] for n in numbers if n - 1 < len(params)]
