"""Remediation: what a firing alert does to the sidecar, each action named in the alert and logged.

The pack's action names map to a few real levers of the sidecar (`ACTIONS`):

- `watch`: keep watching (`monitor`);
- `cleanup` / `cleanup_aggressive`: remove what dead workers left (spill directories, half-written
  outputs, default databases); the aggressive one also stops idle workers and their caches;
- `pause`: admission control starts no new job while the rule holds;
- `narrow`: at most half the configured concurrent jobs (at least one) while the rule holds;
- `shrink`: a new attempt's memory ceiling, and so DuckDB's limit, is halved while the rule holds;
- `scale_memory` / `scale_jobs`: a scaling trigger's `scale_factor` applied to new jobs' memory
  (between `min_memory` and `max_memory`) or to the concurrent jobs (`min/max_connections`);
- `kill` / `kill_longest`: interrupt the job the rule is about (the busiest, largest or longest
  one) or the longest-running one; its error names the rule.

Holds (pause, narrow, shrink, scale) lift when the rule's value falls under its resolve mark,
even for a severity that waits for an acknowledgement: the lever follows the condition.
Any other action name is refused at its line with the reason (`REFUSED`).
"""

from __future__ import annotations

import logging
from typing import Protocol

import msgspec

from sidecar.config.validate import Ctx
from sidecar.errors import did_you_mean
from sidecar.monitor.events import ActionResult
from sidecar.monitor.metrics import MetricsSample, WorkerMetrics
from sidecar.units import format_size
from sidecar.workers.admission import Hold

__all__ = ["ACTIONS", "REFUSED", "ActionSpec", "Levers", "Remedies", "SHRINK_SCALE", "holds_of", "action_specs"]

log = logging.getLogger(__name__)

SHRINK_SCALE = 0.5
"""`reduce_memory_limit`: new attempts start with half the memory ceiling while the rule holds."""

ACTIONS = {
    "monitor": "watch",
    "prepare_cleanup": "cleanup",
    "automatic_cleanup": "cleanup",
    "increase_cleanup_frequency": "cleanup",
    "emergency_cleanup": "cleanup_aggressive",
    "emergency_memory_cleanup": "cleanup_aggressive",
    "system_cleanup": "cleanup_aggressive",
    "throttle_queries": "pause",
    "throttle_new_connections": "pause",
    "reject_new_connections": "pause",
    "reduce_connections": "narrow",
    "reduce_connection_pool_size": "narrow",
    "limit_concurrent_queries": "narrow",
    "reduce_concurrent_operations": "narrow",
    "reduce_memory_limit": "shrink",
    "increase_memory_limit": "scale_memory",
    "decrease_memory_limit": "scale_memory",
    "increase_max_connections": "scale_jobs",
    "decrease_max_connections": "scale_jobs",
    "kill_queries": "kill",
    "kill_long_running_queries": "kill_longest",
}
_NO_PRIORITY = "jobs are admitted first come, first served; the sidecar has no priorities to change"
_NO_CACHE = "the sidecar keeps no query result cache"
_ROWS = "a result's size is its request's max_rows (or a file output); the sidecar never trims an answer"
REFUSED = {
    "analyze_query": "the sidecar does not analyse a query on its own; run query.explain on it (the alert names its hash)",
    "process_optimization": "the sidecar does not tune other processes; lower machine_budget to leave them room",
    "enable_query_result_caching": _NO_CACHE,
    "enable_aggressive_caching": _NO_CACHE,
    "reduce_result_set_sizes": _ROWS,
    "limit_result_set_sizes": _ROWS,
    "enable_streaming_results": _ROWS,
    "postpone_non_critical_operations": _NO_PRIORITY,
    "enable_query_prioritization": _NO_PRIORITY,
    "prioritize_critical_queries": _NO_PRIORITY,
    "implement_connection_queuing": "admission control queues every job already; nothing to turn on",
    "increase_query_timeout_limits": "a job's timeout is its request's timeout_ms; the sidecar never extends it",
    "disable_non_essential_features": "features are the pack's feature flags (config/feature-flags.yaml), set by you",
    "optimize_queries": "the sidecar does not rewrite queries; a split (partition.parts) is the request's choice",
    "performance_analysis": "run bench.run for figures; the sidecar does not profile on an alert",
}


class ActionSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One honoured action of one rule, with a scaling trigger's bounds when it has them."""

    name: str
    kind: str
    factor: float | None = None
    low: int | None = None
    """min_memory (bytes) or min_connections."""
    high: int | None = None
    """max_memory (bytes) or max_connections."""


def action_specs(names: list[str], ctx: Ctx, path: str, **bounds: float | int | None) -> list[ActionSpec]:
    """The honoured actions among `names`; each other one is a warning at its line saying why."""
    specs = []
    for i, name in enumerate(names):
        where = f"{path}[{i}]"
        if name in ACTIONS:
            specs.append(ActionSpec(name=name, kind=ACTIONS[name], **bounds))  # type: ignore[arg-type]
        elif name in REFUSED:
            ctx.add("warning", ctx.positions.get(where), where, f"remediation action '{name}' is not taken: {REFUSED[name]}",
                    "remove it; the actions this sidecar takes are listed in docs/monitoring-setup.md#actions")
        else:
            ctx.add("warning", ctx.positions.get(where), where,
                    f"unknown remediation action '{name}' is not taken{did_you_mean(name, [*ACTIONS, *REFUSED])}",
                    f"the actions this sidecar takes: {', '.join(ACTIONS)}")
    return specs


class Levers(Protocol):
    """What the actions pull: the supervisor's cleanup, admission holds, and job interrupts."""

    @property
    def max_jobs(self) -> int: ...

    def cleanup(self, *, aggressive: bool) -> tuple[int, int]: ...

    def hold(self, hold: Hold) -> None: ...

    def lift(self, rule: str) -> bool: ...

    def interrupt(self, job: int, reason: str) -> bool: ...


class RuleView(Protocol):
    name: str
    metric: str
    where: str
    resolve_below: float
    below: bool
    actions: list[ActionSpec]


def _target(sample: MetricsSample, metric: str, kind: str) -> WorkerMetrics | None:
    """The job a kill is about: the longest for time and CPU, the busiest for DuckDB memory, the
    most spilled for spill, else the largest RSS."""
    workers = sample.workers
    if kind == "kill_longest" or metric in ("longest_job_ms", "cpu_percent"):
        return max(workers, key=lambda w: w.elapsed_ms, default=None)
    if metric == "duckdb_memory_percent":
        return max(workers, key=lambda w: w.managed_bytes / max(w.duckdb_limit_bytes, 1), default=None)
    if metric == "spill_bytes":
        return max(workers, key=lambda w: w.spilled_bytes, default=None)
    return max(workers, key=lambda w: w.rss_bytes, default=None)


def holds_of(rule: str, specs: list[ActionSpec], max_jobs: int) -> tuple[Hold | None, list[ActionResult]]:
    """The admission hold a rule's actions ask for, and what each says it does.

    >>> hold, said = holds_of("r", [ActionSpec(name="reduce_connections", kind="narrow"),
    ...     ActionSpec(name="reduce_memory_limit", kind="shrink")], max_jobs=4)
    >>> (hold.pause, hold.max_jobs, hold.scale)
    (False, 2, 0.5)
    >>> said[0].detail
    'at most 2 concurrent job(s) while the rule holds'
    """
    pause, jobs, scale, low, high = False, None, None, 0, None
    said = []
    for spec in specs:
        if spec.kind == "pause":
            pause = True
            detail = "no new job starts while the rule holds"
        elif spec.kind in ("narrow", "scale_jobs"):
            if spec.kind == "narrow":
                n = max(1, max_jobs // 2)
            else:
                n = max(1, round(max_jobs * (spec.factor or 1.0)))
                n = min(n, spec.high) if spec.high is not None and (spec.factor or 1) > 1 else n
                n = max(n, spec.low) if spec.low is not None and (spec.factor or 1) < 1 else n
            jobs = n if jobs is None else min(jobs, n)
            detail = f"at most {n} concurrent job(s) while the rule holds"
        elif spec.kind in ("shrink", "scale_memory"):
            factor = SHRINK_SCALE if spec.kind == "shrink" else (spec.factor or 1.0)
            scale = factor if scale is None else min(scale, factor)
            low, high = spec.low or low, spec.high if spec.high is not None else high
            bounds = "".join(
                [f", at least {format_size(spec.low)}" if spec.low else "",
                 f", at most {format_size(spec.high)}" if spec.high else ""]
            )
            detail = f"new jobs start with {factor:g}x the memory ceiling{bounds} while the rule holds"
        else:
            continue
        said.append(ActionResult(action=spec.name, done=True, detail=detail))
    if not said:
        return None, []
    return Hold(rule=rule, pause=pause, max_jobs=jobs, scale=scale, min_bytes=low, max_bytes=high), said


class Remedies:
    """Runs a firing rule's actions against the levers, and lifts its holds when it clears."""

    def __init__(self, levers: Levers) -> None:
        self.levers = levers
        self.held: dict[str, RuleView] = {}
        self.holds: dict[str, Hold] = {}

    def act(self, rule: RuleView, message: str, sample: MetricsSample, force_cleanup: bool) -> list[ActionResult]:
        """Run the actions of a rule that just fired (or escalated); what each did, in order."""
        done: list[ActionResult] = []
        specs = list(rule.actions)
        if force_cleanup and not any(s.kind == "cleanup_aggressive" for s in specs):
            specs.append(ActionSpec(name="force_cleanup", kind="cleanup_aggressive"))
        hold, said = holds_of(rule.name, specs, self.levers.max_jobs)
        for spec in specs:
            try:
                result = self._one(rule, spec, message, sample)
            except Exception as exc:  # an action that fails is reported in the alert and logged, never raised
                log.exception("remediation %s of %s failed", spec.name, rule.name)
                result = ActionResult(action=spec.name, done=False, detail=f"failed: {exc}")
            if result is None:
                result = next(r for r in said if r.action == spec.name)
            done.append(result)
        if hold is not None:
            self.levers.hold(hold)
            self.held[rule.name] = rule
            self.holds[rule.name] = hold
        for r in done:
            log.warning("remediation for %s: %s %s: %s", rule.name, r.action, "done" if r.done else "not done", r.detail)
        return done

    def _one(self, rule: RuleView, spec: ActionSpec, message: str, sample: MetricsSample) -> ActionResult | None:
        if spec.kind == "watch":
            return ActionResult(action=spec.name, done=True, detail="the monitor keeps watching")
        if spec.kind in ("cleanup", "cleanup_aggressive"):
            aggressive = spec.kind == "cleanup_aggressive"
            freed, removed = self.levers.cleanup(aggressive=aggressive)
            extra = "; idle workers stopped" if aggressive else ""
            return ActionResult(
                action=spec.name, done=True,
                detail=f"removed {removed} leftover file(s) (dead workers, stale jobs), {format_size(freed)}{extra}",
            )
        if spec.kind in ("kill", "kill_longest"):
            target = _target(sample, rule.metric, spec.kind)
            if target is None:
                return ActionResult(action=spec.name, done=False, detail="no job was running")
            sentence = f"alert rule '{rule.name}' ({rule.where}) fired: {message}; its actions include {spec.name}"
            if not self.levers.interrupt(int(target.job_id), f"alert:{rule.name}:{sentence}"):
                return ActionResult(action=spec.name, done=False, detail=f"job {target.job_id} had already ended or stopped")
            return ActionResult(
                action=spec.name, done=True,
                detail=f"interrupted job {target.job_id} (pid {target.pid}, {format_size(target.rss_bytes)} RSS, "
                f"{target.elapsed_ms} ms, query {target.query_hash})",
            )
        return None  # a hold: described by holds_of

    def relax(self, values: dict[str, float]) -> list[str]:
        """Lift the holds of rules whose value is now under their resolve mark; the rules lifted."""
        lifted = []
        for name, rule in list(self.held.items()):
            value = values.get(rule.metric, 0.0)
            if (-value if rule.below else value) < rule.resolve_below:
                self.lift(name)
                lifted.append(name)
        return lifted

    def lift(self, name: str) -> None:
        if self.held.pop(name, None) is not None:
            self.holds.pop(name, None)
            self.levers.lift(name)
            log.warning("remediation for %s lifted: its value cleared", name)
