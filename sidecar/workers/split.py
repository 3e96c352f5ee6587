"""Where a split query goes: the one entry point the supervised engine calls for split work.

Two executors live behind it: `sidecar.workers.partitioned` (hash- or range-split parts plus a
combine) and, for a global SELECT with median/quantile aggregates (which no split of the rows
re-combines), `sidecar.workers.quantiles` (exact passes of bounded memory). The engine and the
ladder only ask `can_split` and call `run_split`.
"""

from __future__ import annotations

from typing import Any

from sidecar.jobs.types import Attempt
from sidecar.errors import SidecarError
from sidecar.partition.quantiles import has_quantiles, plan_quantiles
from sidecar.workers.partitioned import SplitRun, run_partitioned, splittable
from sidecar.workers.quantiles import run_quantiles

__all__ = ["SplitRun", "can_split", "run_split"]


def can_split(sql: str) -> bool:
    """Whether some executor can split `sql` (asked only after a memory failure or for an estimate)."""
    return splittable(sql) or _quantiles_plannable(sql)


def _quantiles_plannable(sql: str) -> bool:
    if not has_quantiles(sql):
        return False
    try:
        plan_quantiles(sql, 2)
    except SidecarError:
        return False
    return True


def run_split(request: SplitRun, parts: int) -> tuple[dict[str, Any], Attempt]:
    """Run the request's query split in `parts` parts; the final result and one Attempt for it all.

    A global query with quantiles goes to the quantile passes (its other aggregates still run in
    `parts` parts); its refusal, if any, names what the quantile planner could not do.
    """
    if has_quantiles(request.spec.sql) and not splittable(request.spec.sql):
        return run_quantiles(request, parts)
    return run_partitioned(request, parts)
