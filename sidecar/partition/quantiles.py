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
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import ROUND_DOWN, ROUND_FLOOR, Decimal, localcontext
from typing import Any, Literal

import msgspec
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.tokens import TokenType

from sidecar.errors import SqlError
from sidecar.partition.plan import Plan, Unsplittable
from sidecar.partition.planner import _is_empty_group, plan_partitioned
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
    "Pick",
    "QuantileCall",
    "QuantileParam",
    "QuantilePlan",
    "Range",
    "Search",
    "Series",
    "ValueKind",
    "answer_sql",
    "bin_sql",
    "bind_params",
    "count_sql",
    "exact_sql",
    "final_sql",
    "has_quantiles",
    "literal",
    "narrow",
    "param_sql",
    "pick",
    "plan_quantiles",
    "read_exact",
    "read_params",
    "start_search",
    "value_kind",
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
_SOURCE = "__bmad_src"
VALUES = "__bmad_values"
_HUGE = 2**126  # an offset times the bin count stays below this, well inside HUGEINT


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
    if group is not None and not _is_empty_group(group):
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
    if group is not None and not _is_empty_group(group):
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


# -- value types ----------------------------------------------------------------------------


class ValueKind(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How a DuckDB type is binned; `lowest`/`highest` are the values ordered outside every finite one."""

    type: str
    family: Family
    scale: int = 0
    lowest: tuple[str, ...] = ()
    highest: tuple[str, ...] = ()
    epoch: str = "epoch_us"


_INTEGERS = frozenset(
    f"{u}{t}" for u in ("", "U") for t in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT")
)
_EPOCHS = {
    "TIMESTAMP": "epoch_us",
    "TIMESTAMP_S": "epoch_us",
    "TIMESTAMP_MS": "epoch_us",
    "TIMESTAMP WITH TIME ZONE": "epoch_us",
    "TIMESTAMP_NS": "epoch_ns",
    "TIMESTAMPTZ_NS": "epoch_ns",
}


def value_kind(type_name: str, sql: str | None = None) -> ValueKind:
    """The binning of a quantile argument of this type; Unsplittable for types ranges do not fit.

    >>> value_kind("DECIMAL(18,3)").scale, value_kind("DOUBLE").highest
    (3, ('inf', 'nan'))
    """
    name = type_name.upper()
    if name in _INTEGERS:
        return ValueKind(type=name, family="integer")
    if name in ("FLOAT", "DOUBLE"):
        return ValueKind(type=name, family="float", lowest=("-inf",), highest=("inf", "nan"))
    decimal = re.fullmatch(r"DECIMAL\((\d+),\s*(\d+)\)", name)
    if decimal:
        return ValueKind(type=name, family="decimal", scale=int(decimal.group(2)))
    if name == "DATE":
        return ValueKind(type=name, family="date", lowest=("-infinity",), highest=("infinity",))
    if name in _EPOCHS:
        return ValueKind(
            type=name, family="timestamp", lowest=("-infinity",), highest=("infinity",), epoch=_EPOCHS[name]
        )
    raise Unsplittable(
        "quantiles_type",
        f"a median/quantile of {type_name} values is not computed in passes (only numbers, dates and timestamps)",
        hint="Give the query more memory (`memory_limit`), or take the quantile of a numeric expression "
        "(e.g. epoch(x) or a rank) and convert the answer back.",
        sql=sql,
    )


def literal(text: str | None, type_name: str) -> str:
    """A value as SQL, exactly: DuckDB's own VARCHAR of it, cast back to its type.

    >>> literal("it's", "VARCHAR"), literal(None, "DATE")
    ("CAST('it''s' AS VARCHAR)", 'CAST(NULL AS DATE)')
    """
    if text is None:
        return f"CAST(NULL AS {type_name})"
    return "CAST('" + text.replace("'", "''") + f"' AS {type_name})"


def _double(value: float) -> str:
    return f"CAST('{value!r}' AS DOUBLE)"


# -- quantile parameters and ranks ----------------------------------------------------------


class QuantileParam(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One p as DuckDB binds it: DECIMAL p are exact; others are DOUBLE."""

    text: str
    exact: bool
    double: float


def param_sql(plan: QuantilePlan) -> str | None:
    """One row: for each call with a p, its element types, VARCHARs and DOUBLEs (lists of them)."""
    columns = []
    for call in plan.calls:
        if call.param is None:
            continue
        p = call.param if call.listed else f"[{call.param}]"
        columns += [
            f"list_transform({p}, lambda x: typeof(x))",
            f"list_transform({p}, lambda x: CAST(x AS VARCHAR))",
            f"list_transform({p}, lambda x: CAST(CAST(x AS DOUBLE) AS VARCHAR))",
        ]
    return f"SELECT {', '.join(columns)}" if columns else None


def read_params(plan: QuantilePlan, row: Sequence[Any]) -> dict[str, tuple[QuantileParam, ...]]:
    """The p of each call (by its column) from the row `param_sql` returned."""
    found: dict[str, tuple[QuantileParam, ...]] = {}
    position = 0
    for call in plan.calls:
        if call.param is None:
            continue
        types, texts, doubles = row[position : position + 3]
        position += 3
        found[call.column] = tuple(
            QuantileParam(text=t, exact=k.startswith("DECIMAL"), double=float(d))
            for k, t, d in zip(types, texts, doubles)
        )
    return found


class Pick(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The order statistics (0-based ranks, ascending) one quantile needs, and the p that gives
    DuckDB's answer when its own function runs over just those values."""

    ranks: tuple[int, ...]
    fraction: float


def pick(function: Function, n: int, param: QuantileParam | None) -> Pick:
    """Which ranks of n values DuckDB's quantile reads (measured against DuckDB 2.0.1, see tests).

    quantile_cont and median: RN = (n - 1) * p in DOUBLE, the values at floor(RN) and ceil(RN),
    interpolated by RN - floor(RN). quantile_disc: index max(1, n - floor(n - n * p)) - 1, with
    p exact for a DECIMAL p and, for a DOUBLE p, truncated to 15 decimal places. A negative p
    counts from the top.

    >>> pick("median", 4, None), pick("quantile_disc", 10, QuantileParam("0.9", True, 0.9))
    (Pick(ranks=(1, 2), fraction=0.5), Pick(ranks=(8,), fraction=0.5))
    """
    if function == "median" or param is None:
        q, desc = 0.5, False
    else:
        q, desc = abs(param.double), param.double < 0
    if function == "quantile_disc" and param is not None:
        with localcontext() as context:  # exact: n has 20 digits at most, p 40 or so
            context.prec = 200
            exact = (
                abs(Decimal(param.text)) if param.exact else Decimal(q).quantize(Decimal("1e-15"), ROUND_DOWN)
            )
            index = max(1, n - int((n - n * exact).to_integral_value(ROUND_FLOOR))) - 1
        return Pick(ranks=(n - 1 - index if desc else index,), fraction=0.5)
    rn = float(n - 1) * q
    low, high = int(rn // 1), -int(-rn // 1)
    ranks = (low,) if low == high else (low, high)
    if desc:
        ranks = tuple(n - 1 - r for r in ranks)
    return Pick(ranks=ranks, fraction=-(rn - low) if desc else rn - low)


def answer_sql(call: QuantileCall, kind: ValueKind, picks: Sequence[Pick], values: dict[int, str]) -> str:
    """The call's answer: DuckDB's own function over the one or two order statistics each p needs.

    Over values x[i] <= x[i+1] and p' = RN - floor(RN), quantile_cont computes RN' = 1 * p' and
    interpolates x[i], x[i+1] by p' exactly as it does over all n values.
    """
    answers = []
    for chosen in picks:
        rows = ", ".join(f"({literal(values[r], kind.type)})" for r in chosen.ranks)
        function = (
            "median(__bmad_x)"
            if call.function == "median"
            else (f"{call.function}(__bmad_x, {_double(chosen.fraction)})")
        )
        answers.append(f"(SELECT {function} FROM (VALUES {rows}) AS __bmad_t(__bmad_x))")
    if call.listed:
        return f"[{', '.join(answers)}]"
    return answers[0]


def final_sql(plan: QuantilePlan, columns: Sequence[tuple[str, str]], values: dict[str, str]) -> str:
    """The query's answer from every aggregate's value: named and typed as DESCRIBE says.

    `columns` are the (name, type) of the original query; `values` the SQL of each aggregate column.
    """
    if len(columns) != len(plan.projections):
        raise SqlError(
            f"the query has {len(columns)} columns but its select list {len(plan.projections)}",
            hint="Name each column once; a * in a global aggregate is not split.",
        )
    inner = ", ".join(f"{sql} AS {column}" for column, sql in values.items())
    outer = ", ".join(
        f"CAST({projection} AS {kind}) AS " + '"' + name.replace('"', '""') + '"'
        for projection, (name, kind) in zip(plan.projections, columns)
    )
    where = f" WHERE {plan.where}" if plan.where else ""
    return f"SELECT {outer} FROM (SELECT {inner}) AS {VALUES}{where}{' ' + plan.tail if plan.tail else ''}"


# -- the search -----------------------------------------------------------------------------


class Range(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Finite values in [lo, hi] (DuckDB's VARCHAR of each); `below` values of the series order before lo."""

    lo: str
    hi: str
    below: int
    count: int


class Search(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where the wanted ranks of one series are: found values, and disjoint ranges still to narrow."""

    kind: ValueKind
    n: int
    wanted: tuple[int, ...]
    found: tuple[tuple[int, str], ...] = ()
    ranges: tuple[Range, ...] = ()
    passes: int = 1

    def values(self) -> dict[int, str]:
        return dict(self.found)


def _from(source: str) -> str:
    return f"FROM ({source}) AS {_SOURCE}"


def count_sql(series: Series, kind: ValueKind) -> str:
    """The first pass: n, how many of each special value (-inf, inf, NaN, ...), the finite min and max."""
    columns = [f"count({V})"]
    columns += [
        f"count(*) FILTER (WHERE {V} = {literal(s, kind.type)})" for s in (*kind.lowest, *kind.highest)
    ]
    finite = ""
    if kind.lowest:
        finite = f" FILTER (WHERE {V} > {literal(kind.lowest[-1], kind.type)} AND {V} < {literal(kind.highest[0], kind.type)})"
    columns += [f"CAST(min({V}){finite} AS VARCHAR)", f"CAST(max({V}){finite} AS VARCHAR)"]
    return f"SELECT {', '.join(columns)} {_from(series.source)}"


def start_search(kind: ValueKind, ranks: Sequence[int], row: Sequence[Any]) -> Search:
    """The search after the first pass: ranks among the special values are found already."""
    n = int(row[0])
    specials = [int(c) for c in row[1 : 1 + len(kind.lowest) + len(kind.highest)]]
    low = sum(specials[: len(kind.lowest)])
    finite = n - sum(specials)
    segments = (
        list(zip(kind.lowest, specials))
        + [(None, finite)]
        + list(zip(kind.highest, specials[len(kind.lowest) :]))
    )
    found: list[tuple[int, str]] = []
    inside: list[int] = []
    for rank in sorted(set(ranks)):
        start = 0
        for text, size in segments:
            if start <= rank < start + size:
                if text is None:
                    inside.append(rank)
                else:
                    found.append((rank, text))
                break
            start += size
    search = Search(kind=kind, n=n, wanted=tuple(sorted(set(ranks))), found=tuple(found))
    if not inside:
        return search
    lo, hi = str(row[-2]), str(row[-1])
    if lo == hi:
        return msgspec.structs.replace(search, found=(*found, *((r, lo) for r in inside)))
    return msgspec.structs.replace(search, ranges=(Range(lo, hi, low, finite),))


def _pending(search: Search) -> dict[int, list[int]]:
    """The ranks still wanted in each range (by range index)."""
    known = {r for r, _ in search.found}
    return {
        i: [r for r in search.wanted if r not in known and rng.below <= r < rng.below + rng.count]
        for i, rng in enumerate(search.ranges)
    }


def _in_ranges(kind: ValueKind, ranges: Sequence[tuple[int, Range]]) -> tuple[str, str]:
    """The rows in any of `ranges` (a WHERE) and which range each is in (a CASE)."""
    tests = [(i, f"{V} BETWEEN {literal(r.lo, kind.type)} AND {literal(r.hi, kind.type)}") for i, r in ranges]
    where = " OR ".join(f"({t})" for _, t in tests)
    which = "CASE " + " ".join(f"WHEN {t} THEN {i}" for i, t in tests) + " END"
    return where, which


def bin_sql(series: Series, search: Search, bins: int, exact_rows: int) -> str | None:
    """A bin pass over every range holding more than `exact_rows` values (None: none does).

    Rows: range index, bin, count, min and max (VARCHAR) of each non-empty bin.
    """
    big = [(i, r) for i, r in enumerate(search.ranges) if r.count > exact_rows]
    if not big:
        return None
    where, which = _in_ranges(search.kind, big)
    binned = (
        "CASE __bmad_r " + " ".join(f"WHEN {i} THEN {_bin(search.kind, r, bins)}" for i, r in big) + " END"
    )
    return (
        f"SELECT __bmad_r, __bmad_b, count(*), CAST(min({V}) AS VARCHAR), CAST(max({V}) AS VARCHAR) "
        f"FROM (SELECT __bmad_r, {binned} AS __bmad_b, {V} "
        f"FROM (SELECT {V}, {which} AS __bmad_r {_from(series.source)} WHERE {where}) AS __bmad_in) AS __bmad_bins "
        "GROUP BY __bmad_r, __bmad_b"
    )


def _bin(kind: ValueKind, rng: Range, bins: int) -> str:
    """The bin of a value of `rng`, non-decreasing in the value, 0 at lo and at least 1 at hi.

    Integers, decimals, dates and timestamps: exact `offset * bins // (offset(hi) + 1)` in HUGEINT;
    a spread too wide for that is halved at its exact midpoint instead. Floats: IEEE
    `(v - lo) / (hi - lo) * bins`, halved first when hi - lo would overflow.
    """
    lo, hi = literal(rng.lo, kind.type), literal(rng.hi, kind.type)
    if kind.family == "float":
        half = "" if float(rng.hi) - float(rng.lo) < float("inf") else " * 0.5"

        def offset(x: str) -> str:
            return f"(CAST({x} AS DOUBLE){half} - CAST({lo} AS DOUBLE){half})"

        return f"LEAST(CAST(floor({offset(V)} / {offset(hi)} * {bins}) AS BIGINT), {bins - 1})"
    midpoint = _midpoint(kind, rng, bins)
    if midpoint is not None:
        return f"CASE WHEN {V} <= {literal(midpoint, kind.type)} THEN 0 ELSE 1 END"

    def exact(x: str) -> str:
        if kind.family == "integer":
            wide = "UHUGEINT" if kind.type == "UHUGEINT" else "HUGEINT"
            return f"(CAST({x} AS {wide}) - CAST({lo} AS {wide}))"
        if kind.family == "decimal":
            wide = f"DECIMAL(38,{kind.scale})"
            return f"CAST((CAST({x} AS {wide}) - CAST({lo} AS {wide})) * {10**kind.scale} AS HUGEINT)"
        if kind.family == "date":
            return f"CAST({x} - {lo} AS HUGEINT)"
        return f"(CAST({kind.epoch}({x}) AS HUGEINT) - CAST({kind.epoch}({lo}) AS HUGEINT))"

    return f"{exact(V)} * {bins} // ({exact(hi)} + 1)"


def _midpoint(kind: ValueKind, rng: Range, bins: int) -> str | None:
    """For an integer or decimal range too wide for exact bins, the value to halve it at (else None)."""
    if kind.family == "integer":
        lo_i, hi_i = int(rng.lo), int(rng.hi)
        return str(lo_i + (hi_i - lo_i) // 2) if (hi_i - lo_i + 1) * bins >= _HUGE else None
    if kind.family == "decimal":
        with localcontext() as context:
            context.prec = 100
            lo_d, hi_d = Decimal(rng.lo), Decimal(rng.hi)
            spread = (hi_d - lo_d).scaleb(kind.scale)
            if (spread + 1) * bins < _HUGE and spread < Decimal(10) ** (38 - kind.scale):
                return None
            quantum = Decimal(1).scaleb(-kind.scale)
            return str((lo_d + (hi_d - lo_d) / 2).quantize(quantum, rounding=ROUND_FLOOR))
    return None


def narrow(search: Search, rows: Sequence[Sequence[Any]], exact_rows: int) -> Search:
    """The search after a bin pass: each wanted rank's range becomes its bin's [min, max].

    Raises SqlError when the bins do not add up to their range: the input changed between passes.
    """
    by_range: dict[int, list[tuple[int, int, str, str]]] = {}
    for r, b, count, low, high in rows:
        by_range.setdefault(int(r), []).append((int(b), int(count), str(low), str(high)))
    pending = _pending(search)
    found = list(search.found)
    ranges: list[Range] = []
    for i, rng in enumerate(search.ranges):
        if rng.count <= exact_rows:
            ranges.append(rng)
            continue
        bins = sorted(by_range.get(i, []))
        if sum(c for _, c, _, _ in bins) != rng.count:
            raise _changed(search, rng)
        below = rng.below
        for _, count, low, high in bins:
            inside = [r for r in pending[i] if below <= r < below + count]
            if inside and low == high:
                found += [(r, low) for r in inside]
            elif inside:
                ranges.append(Range(low, high, below, count))
            below += count
    return msgspec.structs.replace(search, found=tuple(found), ranges=tuple(ranges), passes=search.passes + 1)


def _batch(search: Search, exact_rows: int) -> list[int]:
    """The ranges the next exact pass reads: in order, at most `exact_rows` values (at least one range)."""
    chosen: list[int] = []
    total = 0
    for i, rng in enumerate(search.ranges):
        if chosen and total + rng.count > exact_rows:
            break
        chosen.append(i)
        total += rng.count
    return chosen


def exact_sql(series: Series, search: Search, exact_rows: int) -> str | None:
    """An exact pass over small ranges, at most `exact_rows` values in all (None: none is left).

    Rows: range index, rank within the range, VARCHAR value, for each wanted rank.
    """
    batch = _batch(search, exact_rows)
    if not batch:
        return None
    pending = _pending(search)
    where, which = _in_ranges(search.kind, [(i, search.ranges[i]) for i in batch])
    keep = " OR ".join(
        f"(__bmad_r = {i} AND __bmad_n IN ({', '.join(str(k - search.ranges[i].below) for k in pending[i])}))"
        for i in batch
    )
    return (
        f"SELECT __bmad_r, __bmad_n, CAST({V} AS VARCHAR) FROM ("
        f"SELECT __bmad_r, {V}, row_number() OVER (PARTITION BY __bmad_r ORDER BY {V}) - 1 AS __bmad_n "
        f"FROM (SELECT {V}, {which} AS __bmad_r {_from(series.source)} WHERE {where}) AS __bmad_in"
        f") AS __bmad_ranked WHERE {keep}"
    )


def read_exact(search: Search, rows: Sequence[Sequence[Any]], exact_rows: int) -> Search:
    """The search after an exact pass: the wanted ranks of its ranges found, those ranges done."""
    batch = _batch(search, exact_rows)
    found = dict(search.found)
    for r, k, text in rows:
        found[search.ranges[int(r)].below + int(k)] = str(text)
    pending = _pending(search)
    for i in batch:
        if any(r not in found for r in pending[i]):
            raise _changed(search, search.ranges[i])
    left = tuple(rng for i, rng in enumerate(search.ranges) if i not in batch)
    return msgspec.structs.replace(
        search, found=tuple(sorted(found.items())), ranges=left, passes=search.passes + 1
    )


def _changed(search: Search, rng: Range) -> SqlError:
    return SqlError(
        "the input changed while its quantiles were computed in passes: "
        f"the values in [{rng.lo}, {rng.hi}] no longer number {rng.count}",
        hint="Run the query again when its input is not being written to.",
        details={"n": search.n, "range": msgspec.to_builtins(rng)},
    )
