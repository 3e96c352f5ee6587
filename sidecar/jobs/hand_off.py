"""Handing a split job to Ray by the thresholds file's hand-off rule (`sidecar.config.HandOff`).

A job whose request named no `executor`, under a config whose executor is local, runs its split
attempts on this machine unless the rule says otherwise: an attempt split into more parts than
`max_local_parts` (up front, or on the ladder's split rung after an out-of-memory), or any split
attempt of a job whose estimate needs more than `max_machine_percent` of the machine budget, runs
its parts as Ray tasks (`RayParts`, the same executor a request naming `executor: {kind: ray}`
gets); the combine stays here, the same code as always. A job run whole stays whole: Ray runs parts.

A hand-off is never an error. Without the `ray` package, or for a query whose parts read tables
of its database (a Ray task reads only files), the parts stay here, and the attempt says so in
`stats.attempts[].hand_off` next to `executor`, the executor that ran them.
"""

from __future__ import annotations

import logging

import msgspec

from sidecar.config.settings import HandOff, Settings
from sidecar.errors import FeatureDisabled
from sidecar.jobs.executors import ParallelParts, PartResults
from sidecar.jobs.part_stores import PartStore, SplitAgain, TaskStore
from sidecar.jobs.ray_executor import RayCluster, RayParts, import_ray
from sidecar.jobs.split import SplitExecutor, run_split
from sidecar.jobs.steps import SplitRun, Steps
from sidecar.jobs.types import Attempt, QueryResult
from sidecar.partition import Plan

__all__ = ["HandOffSplit", "hand_off_reason", "hand_off_split"]

log = logging.getLogger(__name__)


def hand_off_reason(rule: HandOff, parts: int, need_bytes: int | None, machine_budget_bytes: int) -> str:
    """Why a split attempt in `parts` parts goes to Ray ("": it stays here); `need_bytes` is the
    job's up-front estimate (None: none was made).

    >>> rule = HandOff(max_local_parts=16, max_machine_percent=100.0)
    >>> hand_off_reason(rule, 32, None, 8 << 30)
    'split_parts 32 > 16'
    >>> hand_off_reason(rule, 8, 12 << 30, 8 << 30)
    'estimate_machine_percent 150% > 100%'
    >>> hand_off_reason(rule, 16, 8 << 30, 8 << 30), hand_off_reason(HandOff(), 256, 1 << 40, 8 << 30)
    ('', '')
    """
    if parts > 0 and rule.max_local_parts is not None and parts > rule.max_local_parts:
        return f"split_parts {parts} > {rule.max_local_parts}"
    if parts > 0 and rule.max_machine_percent is not None and need_bytes is not None:
        percent = 100 * need_bytes / max(1, machine_budget_bytes)
        if percent > rule.max_machine_percent:
            return f"estimate_machine_percent {percent:.3g}% > {rule.max_machine_percent:g}%"
    return ""


def hand_off_split(
    settings: Settings, need_bytes: int | None, local: SplitExecutor, cluster: RayCluster
) -> SplitExecutor | None:
    """The split executor of a job whose request named no executor: one that applies the config's
    hand-off rule, or None (the runner's own) when there is no rule, the config's executor is not
    local, or the request's `settings` chose one."""
    rule = settings.hand_off
    if rule is None or settings.executor != "local" or settings.sources.get("executor") == "request":
        return None
    return HandOffSplit(rule, need_bytes, local, cluster)


class HandOffSplit:
    """A `SplitExecutor`: each split attempt runs on `local`, or its parts on Ray when the rule says."""

    def __init__(self, rule: HandOff, need_bytes: int | None, local: SplitExecutor, cluster: RayCluster) -> None:
        self.rule, self.need_bytes, self.local, self.cluster = rule, need_bytes, local, cluster

    def __call__(self, request: SplitRun, parts: int) -> tuple[QueryResult, Attempt]:
        reason = hand_off_reason(self.rule, parts, self.need_bytes, request.settings.machine_budget_bytes)
        if not reason:
            return _noted(self.local(request, parts), "local", None)
        try:
            import_ray()
        except FeatureDisabled as error:
            why = f"{reason}; the parts stayed here: {error.message} ({error.hint})"
            log.warning("job %s: not handed to Ray: %s", request.call.id, why)
            return _noted(self.local(request, parts), "local", why)
        log.info("job %s: parts handed to Ray (%s)", request.call.id, reason)
        parts_on = RayIfFiles(RayParts(self.cluster, self.rule.address))
        ran = run_split(request, parts, parts_on)
        where = "local" if not parts_on.on_ray else f"ray:{self.rule.address}" if self.rule.address else "ray"
        return _noted(ran, where, reason + parts_on.stayed)


def _noted(ran: tuple[QueryResult, Attempt], executor: str, why: str | None) -> tuple[QueryResult, Attempt]:
    result, attempt = ran
    return result, msgspec.structs.replace(attempt, executor=executor, hand_off=why)


class RayIfFiles:
    """A `PartExecutor`: the parts on Ray when they only read files (a Ray task can run them),
    otherwise on this machine's workers, as they would have run without the hand-off."""

    apart = True

    def __init__(self, ray: RayParts) -> None:
        self.ray = ray
        self.on_ray = False
        self.stayed = "; the parts stayed here: this split runs them one after another on the database's worker"
        """Why the parts did not go to Ray ("" once they did); the default holds for a split that
        never hands its parts to an executor (a full ORDER BY answered in order)."""

    def run_parts(self, jobs: Steps, store: PartStore, plan: Plan, split_again: SplitAgain) -> PartResults:
        if store.isolated and isinstance(store, TaskStore):
            self.on_ray, self.stayed = True, ""
            return self.ray.run_parts(jobs, store, plan, split_again)
        self.stayed = "; the parts stayed here: they read tables of the database, and a Ray task reads only files"
        return ParallelParts().run_parts(jobs, store, plan, split_again)
