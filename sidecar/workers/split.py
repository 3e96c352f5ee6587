"""Where a split query goes: the one entry point the supervised engine calls for split work.

Two executors live behind it: `sidecar.workers.partitioned` (hash- or range-split parts plus a
combine) and, for global exact quantiles, the two-pass executor. The engine and the ladder only
ask `can_split` and call `run_split`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from sidecar.engine.executor import Attempt, QuerySpec
from sidecar.engine.monitor import Sample
from sidecar.workers.partitioned import run_partitioned, splittable

if TYPE_CHECKING:
    from sidecar.config import Settings
    from sidecar.workers.engine import SupervisedEngine

__all__ = ["can_split", "run_split"]


def can_split(sql: str) -> bool:
    """Whether some executor can split `sql` (asked only after a memory failure or for an estimate)."""
    return splittable(sql)


def run_split(
    engine: SupervisedEngine,
    spec: QuerySpec,
    settings: Settings,
    call: Any,
    on_sample: Callable[[Sample], None] | None,
    database: str,
    parts: int,
    *,
    number: int = 1,
    rung: str = "partition",
) -> tuple[dict[str, Any], Attempt]:
    """Run `spec` split in `parts` parts; returns the final result and one Attempt for it all."""
    return run_partitioned(engine, spec, settings, call, on_sample, database, parts, number=number, rung=rung)
