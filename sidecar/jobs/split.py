"""Where a split query goes: the one entry point the supervised engine calls for split work.

Two executors live behind it: `sidecar.jobs.partitioned` (hash- or range-split parts plus a
combine) and, for a global SELECT with median/quantile aggregates (which no split of the rows
re-combines), `sidecar.jobs.quantile_passes` (exact passes of bounded memory). Both take a
`SplitRun` (`sidecar.jobs.steps`) whose steps run through a `StepRunner`. The runner only asks
`can_split` and calls `run_split`.
"""

from __future__ import annotations

from sidecar.jobs.types import Attempt, QueryResult
from sidecar.errors import SidecarError
from sidecar.partition.quantiles import has_quantiles, plan_quantiles
from sidecar.jobs.partitioned import run_partitioned, splittable
from sidecar.jobs.quantile_passes import run_quantiles
from sidecar.jobs.steps import SplitRun

__all__ = ["SplitRun", "can_split", "run_split"]


def can_split(sql: str) -> bool:
    """Whether some executor can split `sql` (asked for the estimate, or when a memory failure may call for a split)."""
    return splittable(sql) or _quantiles_plannable(sql)


def _quantiles_plannable(sql: str) -> bool:
    if not has_quantiles(sql):
        return False
    try:
        plan_quantiles(sql, 2)
    except SidecarError:
        return False
    return True


def run_split(request: SplitRun, parts: int) -> tuple[QueryResult, Attempt]:
    """Run the request's query split in `parts` parts; the final result and one Attempt for it all.

    A global query with quantiles goes to the quantile passes (its other aggregates still run in
    `parts` parts); its refusal, if any, names what the quantile planner could not do.
    """
    if has_quantiles(request.spec.sql) and not splittable(request.spec.sql):
        return run_quantiles(request, parts)
    return run_partitioned(request, parts)
