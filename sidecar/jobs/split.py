"""Where a split attempt goes: the one interface between the runner and the split executors.

Two executors live behind it: `sidecar.jobs.partitioned` (hash- or range-split parts plus a
combine) and, for a global SELECT with median/quantile aggregates (which no split of the rows
re-combines), `sidecar.jobs.quantile_passes` (exact passes of bounded memory). Both take a
`SplitRun` (`sidecar.jobs.steps`) whose steps run through a `StepRunner`. The runner only asks
`split_refusal` and calls a `SplitExecutor`; `LocalSplit` here is one, and where its parts run is
a `PartExecutor` (`sidecar.jobs.executors`: serially, at once on local workers, or Ray tasks).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sidecar.jobs.executors import SERIAL, PartExecutor
from sidecar.jobs.partitioned import run_partitioned
from sidecar.jobs.quantile_passes import run_quantiles
from sidecar.jobs.steps import SplitRun
from sidecar.jobs.types import Attempt, QueryResult
from sidecar.partition.answer import CannotSplit, HashSplit, QuantilePasses, how_to_split

__all__ = ["LocalSplit", "SplitExecutor", "SplitRun", "split_refusal", "run_split"]


class SplitExecutor(Protocol):
    """Runs one split attempt: the request's query in `parts` parts, its answer and the one Attempt
    the whole run counts as. A memory failure it cannot absorb is raised as OUT_OF_MEMORY (the
    ladder then asks for more parts); any other error is the request's."""

    def __call__(self, request: SplitRun, parts: int) -> tuple[QueryResult, Attempt]: ...


def split_refusal(sql: str) -> str:
    """Why no executor can split `sql` ("" when one can): the shape the planner found and why.

    >>> split_refusal("SELECT k, count(*) FROM t GROUP BY k")
    ''
    >>> split_refusal("SELECT i FROM t").startswith("plain_select: ")
    True
    """
    answer = how_to_split(sql, 2)
    return f"{answer.shape}: {answer.reason}" if isinstance(answer, CannotSplit) else ""


def run_split(
    request: SplitRun, parts: int, executor: PartExecutor = SERIAL
) -> tuple[QueryResult, Attempt]:
    """Run the request's query split in `parts` parts; the final result and one Attempt for it all.

    A global query with quantiles goes to the quantile passes (its other aggregates still run in
    `parts` parts); a query that does not split is refused with the shape the planner found.
    `executor` runs the parts (sidecar.jobs.executors); the combine is the same whichever does.
    """
    answer = how_to_split(request.spec.sql, parts)
    if isinstance(answer, CannotSplit):
        raise answer.error()
    if isinstance(answer, QuantilePasses):
        return run_quantiles(request, parts, answer.plan, executor)
    return run_partitioned(request, parts, answer.plan if isinstance(answer, HashSplit) else None, executor)


@dataclass(frozen=True)
class LocalSplit:
    """A `SplitExecutor` whose parts run on `parts` (serially, at once on local workers, or on Ray)."""

    parts: PartExecutor = SERIAL

    def __call__(self, request: SplitRun, parts: int) -> tuple[QueryResult, Attempt]:
        return run_split(request, parts, self.parts)
