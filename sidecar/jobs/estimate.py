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
from sidecar.partition.memory_model import (
    WIDEST_ROW,
    chao1,
    choose_parts,
    read_explain,
    row_width,
    sample_sql,
)

__all__ = ["Estimate", "Probe", "estimate"]

Probe = Callable[[str, Any], list[list[Any]]]
"""Runs one read-only statement (with parameters) as a supervised job; returns its rows."""


def estimate(
    probe: Probe, plan: Plan | None, holistic: bool, sql: str, params: Any, limit: int, threads: int = 1
) -> Estimate | None:
    """Run the looks (EXPLAIN, DESCRIBE, maybe a sample) and choose; None when there is nothing to go on.

    `plan` is the hash plan, or None for a global quantile query (split by exact passes)."""
    rows = probe(f"EXPLAIN (FORMAT JSON) {sql.strip().rstrip(';')}", params)
    cards = read_explain(rows[0][1]) if rows and len(rows[0]) > 1 else None
    if cards is None:
        return None

    def choose(width: int, groups: int | None = None) -> Estimate:
        return choose_parts(
            plan.shape if plan else "global_quantiles", holistic, cards, width, limit, groups, threads
        )

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
    query = sample_sql(plan) if plan is not None else None
    if query is None:
        return first
    d, f1, f2, n = probe(query, params)[0]
    groups = chao1(int(d), int(f1), int(f2), int(n or 0), cards.input_rows)
    return msgspec.structs.replace(choose(width, groups), sampled=True)
