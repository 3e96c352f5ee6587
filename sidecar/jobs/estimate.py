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
3. a working-memory figure per shape, against DuckDB's limit for the most the job can
   ever get: a job that may grow in place is not split when growing suffices.

The memory model that turns these figures into parts is pure and lives in
`sidecar.partition.memory_model`, with its figures and the measurements behind them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from sidecar.jobs.types import Estimate
from sidecar.partition import Plan
from sidecar.partition.answer import HashSplit, QuantilePasses, SplitAnswer
from sidecar.partition.join_size import join_parts, read_build_side
from sidecar.partition.memory_model import (
    ROW_OVERHEAD,
    WIDEST_ROW,
    chao1,
    choose_parts,
    read_explain,
    row_width,
    sample_sql,
)

__all__ = ["Estimate", "Probe", "estimate"]

_ANY_SHAPE = ("group_by", "global_quantiles")
"""Between them every way `choose_parts` splits: group_by stands for distinct and window too."""

Probe = Callable[[str, Any], list[list[Any]]]
"""Runs one read-only statement (with parameters) as a supervised job; returns its rows."""


def _join_estimate(probe: Probe, plan_json: str, sql: str, params: Any, limit: int) -> Estimate | None:
    """An ungrouped join by its build side (sidecar.partition.join_size): rows x the columns it
    carries, each as wide as the query's average column, plus the row overhead."""
    build = read_build_side(plan_json)
    if build is None:
        return None
    types = [row[1] for row in probe(f"DESCRIBE {sql.strip().rstrip(';')}", params)]
    need = build.rows * (build.columns * row_width(types) // max(1, len(types)) + ROW_OVERHEAD)
    basis = f"build side of the {build.join_type.lower()} hash join"
    parts = join_parts(need, limit)
    return Estimate(bytes=need, limit_bytes=limit, parts=parts, basis=basis, input_rows=build.rows)


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
    explain = rows[0][1] if rows and len(rows[0]) > 1 else "[]"
    cards = read_explain(explain)
    if cards is None and callable(plan) and read_build_side(explain) is not None:
        answer = plan()  # no grouping or window, a hash join: the planner says whether it is an ungrouped join
        plan = answer.plan if isinstance(answer, HashSplit) else None
    if isinstance(plan, Plan) and plan.shape == "join":
        return _join_estimate(probe, explain, sql, params, limit)
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
