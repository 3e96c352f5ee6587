"""The memory model of the up-front estimate: from DuckDB's cardinalities to a number of parts.

Pure arithmetic on rows, widths and groups; `sidecar.jobs.estimate` does the looking (EXPLAIN,
DESCRIBE, a sample of the keys, each run on a supervised worker) and hands the figures here.
The public API, small on purpose (a join estimate would add one shape to `choose_parts`):

    read_explain(plan_json) -> Cardinalities | None   the first grouping/window operator's rows
    row_width(types) -> int                           bytes per row of DuckDB column types
    chao1(d, f1, f2, n, input_rows) -> int            distinct groups from a sample's profile
    choose_parts(shape, holistic, cards, width, limit, groups, threads) -> Estimate
    sample_sql(plan) -> str | None                    the SQL of that sample's profile

The model, per shape (bytes are rough on purpose; every figure is a multiple of rows):
- GROUP BY / DISTINCT with aggregates that spill: `groups x (row width + 32)`. DuckDB spills
  these well, so the query is split only past `SPILL_FACTOR` x the limit: q10 (1e8 groups) is,
  q3 and q5 (1e6 groups) are not.
- Holistic aggregates (median, quantile, list, string_agg, ...) keep every input value:
  `input rows x HOLISTIC_BYTES_PER_ROW`, split past 1x the limit. (q6, median of 1e8 doubles by
  id4, id5, failed at 4 parts and completed at 8 within 698 MiB.) A query one of whose groups alone
  needs more than the limit is not split: no split can help it.
- A top-n aggregate (DuckDB's rewrite of `row_number() ... QUALIFY rn <= n`): per group and thread.
- Windows: `input rows x (row width + 32)`, split past `WINDOW_FACTOR` x the limit.
- A global query of median/quantiles whose values would not fit runs in exact passes (2 parts for
  its other aggregates).
- An ungrouped equi-join: its hash join's build side (the side DuckDB builds on, from EXPLAIN),
  `build rows x (its columns x the query's average column width + 32)`, split past
  `JOIN_FACTOR` x the limit (sidecar.partition.join_size; the looks are in sidecar.jobs.estimate).
Anything else, or a plan the planner cannot split, runs whole and the ladder stays the safety net:
an underestimate costs the failed attempt it always cost, an overestimate costs the split.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

import msgspec
from sqlglot import exp

from sidecar.jobs.types import Estimate
from sidecar.partition.plan import Plan
from sidecar.partition.shapes import parse_select, windows_of

__all__ = [
    "Cardinalities",
    "Estimate",
    "chao1",
    "choose_parts",
    "read_explain",
    "row_width",
    "sample_sql",
]

SPILL_FACTOR = 4.0
WINDOW_FACTOR = 2.0
HOLISTIC_BYTES_PER_ROW = 64
ROW_OVERHEAD = 32
MAX_ESTIMATED_PARTS = 256
"""The most parts an estimate asks for (the ladder may split further after a failure)."""
TOP_N_STATE_BYTES = 512
"""A top-n aggregate's state (`arg_max(x, y, n)`, DuckDB's rewrite of `row_number() ... QUALIFY rn <= n`)
per group and thread. Measured on q8 (1e6 groups, 2 threads): it ran out of memory at a 698 MiB
limit and completed at 1 GiB, so 350-512 bytes; these states hold heap memory and do not spill."""
WIDEST_ROW = 1024
"""Bytes per row assumed before DESCRIBE: below the limit even at this width, a query needs no split."""

GROUP_SAMPLE_ROWS = 1_000_000
"""Input rows whose keys the sample reads (see `sample_sql`)."""

_GROUPING = ("HASH_GROUP_BY", "PERFECT_HASH_GROUP_BY")
_GLOBAL = "UNGROUPED_AGGREGATE"
_TOP_N = re.compile(r"\b(?:arg_max|arg_min|max_by|min_by)\w*\([^()]*,[^()]*,[^()]*\)", re.IGNORECASE)
_WINDOWS = ("WINDOW", "STREAMING_WINDOW")


class Cardinalities(msgspec.Struct, frozen=True):
    """DuckDB's estimates at the first grouping or window operator under the result."""

    operator: str
    input_rows: int
    output_rows: int
    aggregates: str = ""
    """The grouping operator's aggregates as EXPLAIN prints them (DuckDB's rewrites included)."""


def read_explain(plan_json: str) -> Cardinalities | None:
    """The first grouping or window operator of an `EXPLAIN (FORMAT JSON)` tree, top down.

    >>> scan = {"name": "SEQ_SCAN", "extra_info": {"Estimated Cardinality": "~1000"}}
    >>> group = {"name": "HASH_GROUP_BY", "children": [scan],
    ...          "extra_info": {"Estimated Cardinality": "10", "Aggregates": ["sum(#1)"]}}
    >>> read_explain(json.dumps([{"name": "PROJECTION", "children": [group]}]))
    Cardinalities(operator='group_by', input_rows=1000, output_rows=10, aggregates='sum(#1)')
    >>> read_explain(json.dumps([scan])) is None  # no grouping or window: nothing to estimate
    True
    """
    stack: list[Any] = list(reversed(json.loads(plan_json)))
    while stack:
        node = stack.pop()
        name = str(node.get("name", "")).strip()
        if name in _GROUPING or name in _WINDOWS or name == _GLOBAL:
            children = node.get("children") or []
            rows = _cardinality(children[0]) if children else None
            if name == _GLOBAL:  # DuckDB plans a global DISTINCT or quantile on branches of its own
                rows = max((r for r in map(_cardinality, _below(node)) if r is not None), default=rows)
            out = _cardinality(node)
            if rows is None or out is None:
                return None
            aggregates = (node.get("extra_info") or {}).get("Aggregates", "")
            if isinstance(aggregates, list):
                aggregates = ", ".join(map(str, aggregates))
            kind = "window" if name in _WINDOWS else "global" if name == _GLOBAL else "group_by"
            return Cardinalities(kind, rows, out, str(aggregates))
        stack.extend(reversed(node.get("children") or []))
    return None


def _below(node: dict[str, Any]) -> list[dict[str, Any]]:
    found, stack = [], list(node.get("children") or [])
    while stack:
        child = stack.pop()
        found.append(child)
        stack.extend(child.get("children") or [])
    return found


def _cardinality(node: dict[str, Any]) -> int | None:
    value = (node.get("extra_info") or {}).get("Estimated Cardinality")
    try:
        return int(str(value).lstrip("~"))
    except ValueError:
        return None


_WIDTHS = {
    "BOOLEAN": 1,
    "TINYINT": 1,
    "UTINYINT": 1,
    "SMALLINT": 2,
    "USMALLINT": 2,
    "INTEGER": 4,
    "UINTEGER": 4,
    "FLOAT": 4,
    "DATE": 4,
    "BIGINT": 8,
    "UBIGINT": 8,
    "DOUBLE": 8,
    "TIME": 8,
    "HUGEINT": 16,
    "UHUGEINT": 16,
    "UUID": 16,
    "INTERVAL": 16,
    "VARCHAR": 24,
    "BLOB": 24,
}


def row_width(types: Sequence[str]) -> int:
    """Bytes per row of these DuckDB types: strings as their 16-byte header plus a short tail,
    nested types as 48 (a guess that errs high).

    >>> row_width(["BIGINT", "VARCHAR", "DECIMAL(18,3)", "TIMESTAMP WITH TIME ZONE", "INTEGER[]"])
    104
    """
    total = 0
    for name in types:
        base = name.split("(", 1)[0].strip().upper()
        if base.startswith("TIMESTAMP"):
            total += 8
        elif base == "DECIMAL":
            total += 16
        elif "[" in name or base in ("STRUCT", "MAP", "UNION", "LIST"):
            total += 48
        else:
            total += _WIDTHS.get(base, 16)
    return total


def choose_parts(
    shape: str,
    holistic: bool,
    cards: Cardinalities,
    width: int,
    limit: int,
    groups: int | None = None,
    threads: int = 1,
) -> Estimate:
    """The number of parts for a plan of this `shape` (0: run whole), from cardinalities and DuckDB's limit.

    `global_quantiles` (a global SELECT of median/quantile aggregates, which run in exact passes of
    bounded memory) is split when its values would not fit, in 2 parts: the passes need no more,
    and the parts are only those of its other aggregates.

    1e6 groups of 100-byte rows need 1e6 x 132 bytes: they spill well, so 64 MiB is enough, while
    a holistic aggregate over 1e7 input rows holds 64 bytes a row and is split past 1x the limit:

    >>> cards = Cardinalities("group_by", input_rows=10**7, output_rows=10**6)
    >>> choose_parts("group_by", False, cards, width=100, limit=64 * 2**20).parts
    0
    >>> e = choose_parts("group_by", True, cards, width=100, limit=64 * 2**20)
    >>> e.parts, e.bytes, e.basis
    (10, 640000000, 'values held (holistic aggregate)')
    """
    groups = cards.output_rows if groups is None else groups
    if cards.operator == "global":
        need = cards.input_rows * HOLISTIC_BYTES_PER_ROW if holistic else 0
        parts = 2 if shape == "global_quantiles" and need > limit else 0
        return Estimate(int(need), limit, parts, "values held (holistic aggregate)", cards.input_rows)
    if cards.operator == "window":
        need, factor, basis = cards.input_rows * (width + ROW_OVERHEAD), WINDOW_FACTOR, "window rows"
    elif holistic:
        need, factor, basis = (
            cards.input_rows * HOLISTIC_BYTES_PER_ROW,
            1.0,
            "values held (holistic aggregate)",
        )
    elif _TOP_N.search(cards.aggregates):
        need, factor, basis = groups * threads * TOP_N_STATE_BYTES, 1.0, "top-n states per group and thread"
    else:
        need, factor, basis = groups * (width + ROW_OVERHEAD), SPILL_FACTOR, "groups"
    parts = 0
    if shape in ("group_by", "distinct", "distinct_on", "window") and need > factor * limit:
        parts = min(MAX_ESTIMATED_PARTS, max(2, math.ceil(need / (factor * limit))))
        if cards.operator == "group_by":
            # a group is never split: more parts than groups add nothing, and when one group alone
            # needs more than the limit no split can help (the ladder then says so)
            parts = min(parts, groups)
            if groups < 2 or need / max(1, groups) > factor * limit:
                parts = 0
    return Estimate(
        bytes=int(need),
        limit_bytes=limit,
        parts=parts,
        basis=basis,
        input_rows=cards.input_rows,
        groups=groups if cards.operator == "group_by" else None,
    )


def sample_sql(plan: Plan) -> str | None:
    """SQL for the frequency profile (d, f1, f2, n) of the plan's keys over the first GROUP_SAMPLE_ROWS
    input rows; None when the query reads more than one relation (sampling a join would compute it).

    The first rows, not a system sample: a system sample still decodes every row of the key columns
    (1.1-1.6 s for H2O's string keys over 1e8 rows, against 0.1-0.2 s for the first million), and
    both errors are safe: keys clustered in file order make the estimate too low (the ladder then
    splits after a failed attempt, as it always did), unique runs make it too high (a split that
    was not needed)."""
    outer = parse_select(plan.sql)
    select = outer if plan.shape == "global_aggregate" else _keys_scope(outer)
    if select is None or select.args.get("joins") or select.args.get("from_") is None or not plan.key_exprs:
        return None
    keys = [exp.maybe_parse(k, dialect="duckdb") for k in plan.key_exprs]
    if any(k.find(exp.Star) is not None or "COLUMNS" in k.sql("duckdb").upper() for k in keys):
        return None
    inner = exp.select(*[exp.alias_(k, f"__k{i}", quoted=True) for i, k in enumerate(keys)])
    for arg in ("with_", "from_", "where"):
        if select.args.get(arg) is not None:
            inner.set(arg, select.args[arg].copy())
    if inner.args.get("with_") is None and select is not outer and outer.args.get("with_") is not None:
        inner.set("with_", outer.args["with_"].copy())  # a CTE's body may read the CTEs before it
    inner.set("limit", exp.Limit(expression=exp.Literal.number(GROUP_SAMPLE_ROWS)))
    names = ", ".join(f'"__k{i}"' for i in range(len(keys)))
    return (
        "SELECT count(*) AS d, count(*) FILTER (WHERE c = 1) AS f1, count(*) FILTER (WHERE c = 2) AS f2, "
        f"coalesce(sum(c), 0) AS n FROM (SELECT count(*) AS c FROM ({inner.sql('duckdb')}) GROUP BY {names})"
    )


def _keys_scope(select: exp.Select) -> exp.Select | None:
    """The SELECT whose GROUP BY, DISTINCT or window holds the keys: this one, or the one that a
    chain of single subqueries or CTEs in FROM leads to (the top-n written over a windowed
    subquery, a GROUP BY in a CTE the outer query only filters); None past a join or anything else.

    >>> _keys_scope(parse_select("SELECT * FROM (SELECT k, row_number() OVER (PARTITION BY k) AS r FROM x) WHERE r <= 2")).sql()
    'SELECT k, ROW_NUMBER() OVER (PARTITION BY k) AS r FROM x'
    >>> _keys_scope(parse_select("WITH g AS (SELECT k, sum(v) AS s FROM x GROUP BY k) SELECT * FROM g WHERE s > 0")).sql()
    'SELECT k, SUM(v) AS s FROM x GROUP BY k'
    >>> _keys_scope(parse_select("SELECT * FROM a JOIN (SELECT k FROM b GROUP BY k) USING (k)")) is None
    True
    """
    with_ = select.args.get("with_")
    ctes = {c.alias_or_name: c.this for c in with_.expressions} if with_ is not None else {}
    for _ in range(16):  # deeper chains are not looked into: the EXPLAIN alone decides
        if _splits_itself(select):
            return select
        source = select.args.get("from_")
        node = source.this if source is not None and not select.args.get("joins") else None
        if isinstance(node, exp.Subquery) and isinstance(node.this, exp.Select):
            select = node.this
        elif isinstance(node, exp.Table) and not node.db and isinstance(ctes.get(node.name), exp.Select):
            select = ctes[node.name]
        else:
            return None
    return None


def _splits_itself(select: exp.Select) -> bool:
    """Whether the outermost SELECT holds the keys it splits by (GROUP BY, DISTINCT or a window)."""
    return any(select.args.get(a) is not None for a in ("group", "distinct")) or bool(windows_of(select))


def chao1(d: int, f1: int, f2: int, n: int, input_rows: int) -> int:
    """Distinct groups in the whole input from a sample's frequency profile (bias-corrected Chao1),
    never above the input rows. A sample of all-unique keys says the keys are (nearly) unique.

    >>> chao1(d=1000, f1=0, f2=0, n=10**6, input_rows=10**8)  # every group seen often: all seen
    1000
    >>> chao1(d=10**6, f1=10**6, f2=0, n=10**6, input_rows=10**8)  # all unique: as many as rows
    100000000
    >>> chao1(d=632_000, f1=368_000, f2=184_000, n=10**6, input_rows=10**8)  # 1e6 groups, Poisson(1)
    999997
    """
    if n == 0:
        return 0
    if d >= n:
        return input_rows
    return min(input_rows, int(d + f1 * (f1 - 1) / (2 * (f2 + 1))))
