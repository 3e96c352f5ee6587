"""How many parts a query needs, estimated before it runs, so a split job does not pay for a failed whole one.

The ladder splits a query after it ran out of memory; on the H2O benchmark that first, failed
attempt cost 8.7-28.6 s before the split run (6-11 s) began. This module looks first:

1. `EXPLAIN (FORMAT JSON)` gives DuckDB's cardinalities: the rows entering the first grouping,
   window or global aggregate (exact for Parquet, from its footers) and its group estimate, which
   DuckDB bounds by the keys' min/max statistics for integers but sets to the input rows when a
   key has no statistics (strings);
2. in that case only, and only when the answer would change the decision, the keys of the first
   million input rows give a Chao1 estimate of the distinct groups (`d + f1 (f1 - 1) / (2 (f2 + 1))`);
   on 1e8 H2O rows it gave 1.0e6 for `id3` (1e6 groups) and saturated at the rows for `id1..id6`
   (1e8), in 0.1-0.3 s (see `sample_sql` for why the first rows and not a system sample);
3. a working-memory figure per shape (below), against DuckDB's limit for the most the job can
   ever get: a job that may grow in place is not split when growing suffices.

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
Anything else, or a plan the planner cannot split, runs whole and the ladder stays the safety net:
an underestimate costs the failed attempt it always cost, an overestimate costs the split.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
from sqlglot import exp

from sidecar.jobs.types import Estimate
from sidecar.partition import Plan
from sidecar.partition.answer import HashSplit, QuantilePasses, SplitAnswer
from sidecar.partition.shapes import parse_select, windows_of

__all__ = [
    "Cardinalities",
    "Estimate",
    "choose_parts",
    "estimate",
    "read_explain",
    "row_width",
    "sample_sql",
]

SPILL_FACTOR = 4.0
WINDOW_FACTOR = 2.0
HOLISTIC_BYTES_PER_ROW = 64
ROW_OVERHEAD = 32
SAMPLE_ROWS = 1_000_000
MAX_PARTS = 256
TOP_N_STATE_BYTES = 512
"""A top-n aggregate's state (`arg_max(x, y, n)`, DuckDB's rewrite of `row_number() ... QUALIFY rn <= n`)
per group and thread. Measured on q8 (1e6 groups, 2 threads): it ran out of memory at a 698 MiB
limit and completed at 1 GiB, so 350-512 bytes; these states hold heap memory and do not spill."""
WIDEST_ROW = 1024
"""Bytes per row assumed before DESCRIBE: below the limit even at this width, a query needs no split."""

_ANY_SHAPE = ("group_by", "global_quantiles")
"""Between them every way `choose_parts` splits: group_by stands for distinct and window too."""

Probe = Callable[[str, Any], list[list[Any]]]
"""Runs one read-only statement (with parameters) as a supervised job; returns its rows."""

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
    """The first grouping or window operator of an `EXPLAIN (FORMAT JSON)` tree, top down."""
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
    nested types as 48 (a guess that errs high)."""
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
    and the parts are only those of its other aggregates."""
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
        parts = min(MAX_PARTS, max(2, math.ceil(need / (factor * limit))))
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
    """SQL for the frequency profile (d, f1, f2, n) of the plan's keys over the first SAMPLE_ROWS
    input rows; None when the query reads more than one relation (sampling a join would compute it).

    The first rows, not a system sample: a system sample still decodes every row of the key columns
    (1.1-1.6 s for H2O's string keys over 1e8 rows, against 0.1-0.2 s for the first million), and
    both errors are safe: keys clustered in file order make the estimate too low (the ladder then
    splits after a failed attempt, as it always did), unique runs make it too high (a split that
    was not needed)."""
    select = parse_select(plan.sql)
    if select.args.get("joins") or select.args.get("from_") is None or not plan.key_exprs:
        return None
    if plan.shape != "global_aggregate" and not _splits_itself(select):
        return None  # split through a subquery or CTE: its keys are not in this query's scope
    keys = [exp.maybe_parse(k, dialect="duckdb") for k in plan.key_exprs]
    if any(k.find(exp.Star) is not None or "COLUMNS" in k.sql("duckdb").upper() for k in keys):
        return None
    inner = exp.select(*[exp.alias_(k, f"__k{i}", quoted=True) for i, k in enumerate(keys)])
    for arg in ("with_", "from_", "where"):
        if select.args.get(arg) is not None:
            inner.set(arg, select.args[arg].copy())
    inner.set("limit", exp.Limit(expression=exp.Literal.number(SAMPLE_ROWS)))
    names = ", ".join(f'"__k{i}"' for i in range(len(keys)))
    return (
        "SELECT count(*) AS d, count(*) FILTER (WHERE c = 1) AS f1, count(*) FILTER (WHERE c = 2) AS f2, "
        f"coalesce(sum(c), 0) AS n FROM (SELECT count(*) AS c FROM ({inner.sql('duckdb')}) GROUP BY {names})"
    )


def _splits_itself(select: exp.Select) -> bool:
    """Whether the outermost SELECT holds the keys it splits by (GROUP BY, DISTINCT or a window)."""
    return any(select.args.get(a) is not None for a in ("group", "distinct")) or bool(windows_of(select))


def chao1(d: int, f1: int, f2: int, n: int, input_rows: int) -> int:
    """Distinct groups in the whole input from a sample's frequency profile (bias-corrected Chao1),
    never above the input rows. A sample of all-unique keys says the keys are (nearly) unique."""
    if n == 0:
        return 0
    if d >= n:
        return input_rows
    return min(input_rows, int(d + f1 * (f1 - 1) / (2 * (f2 + 1))))


def estimate(
    probe: Probe,
    plan: Plan | None | Callable[[], SplitAnswer],
    holistic: bool,
    sql: str,
    params: Any,
    limit: int,
    threads: int = 1,
) -> Estimate | None:
    """Run the looks (EXPLAIN, DESCRIBE, maybe a sample) and choose; None when there is nothing to go on.

    `plan` is the hash plan, None for a global quantile query (split by exact passes), or how to get
    either: the planner is then asked only when the EXPLAIN says some split could be needed (on
    TPC-H up to SF 1 it never is, and the planner cost 4-10 ms of CPU a query: issue 15,
    docs/performance/benchmarks.md)."""
    rows = probe(f"EXPLAIN (FORMAT JSON) {sql.strip().rstrip(';')}", params)
    cards = read_explain(rows[0][1]) if rows and len(rows[0]) > 1 else None
    if cards is None:
        return None
    hash_plan: Plan | None
    if callable(plan):
        widest = [choose_parts(s, holistic, cards, WIDEST_ROW, limit, None, threads) for s in _ANY_SHAPE]
        if all(e.parts == 0 for e in widest):  # no shape would split it: its figures, with no plan
            return choose_parts(_ANY_SHAPE[0], holistic, cards, 0, limit, None, threads)
        answer = plan()
        if not isinstance(answer, (HashSplit, QuantilePasses)):
            return None  # a full ORDER BY is split only when asked, or after a memory failure
        hash_plan = answer.plan if isinstance(answer, HashSplit) else None
    else:
        hash_plan = plan

    def choose(width: int, groups: int | None = None) -> Estimate:
        shape = hash_plan.shape if hash_plan else "global_quantiles"
        return choose_parts(shape, holistic, cards, width, limit, groups, threads)

    if choose(WIDEST_ROW).parts == 0:
        return choose(0)  # fits however wide its rows: no DESCRIBE
    width = row_width([row[1] for row in probe(f"DESCRIBE {sql.strip().rstrip(';')}", params)])
    first = choose(width)
    # DuckDB puts the groups at the input rows when a key has no statistics: look at a sample,
    # but only when its answer could change the decision.
    if (
        first.parts == 0
        or holistic
        or cards.operator != "group_by"
        or cards.output_rows < cards.input_rows // 2
    ):
        return first
    query = sample_sql(hash_plan) if hash_plan is not None else None
    if query is None:
        return first
    d, f1, f2, n = probe(query, params)[0]
    groups = chao1(int(d), int(f1), int(f2), int(n or 0), cards.input_rows)
    return msgspec.structs.replace(choose(width, groups), sampled=True)
