"""`scaling_triggers` and `degradation_procedures` of the thresholds file, turned into alert rules.

Each trigger or stage becomes one rule of the threshold engine, so it fires, resolves (with the
same hysteresis), is delivered and acts like any alert, its actions named in `actions_taken`:

- `scaling_triggers.<group>.<scale_up|scale_down|optimization>_triggers[i]` (`condition`, `action`,
  `scale_factor`, `max/min_memory`, `max/min_connections`): rule `<group>_<kind>_<i+1>`, severity
  info. Scaling up a sidecar means new jobs start with `scale_factor` times their memory ceiling
  (up to `max_memory` and the machine budget) or more of them run at once (up to
  `max_connections`); the watchdog already grows a running job in place when the machine has room.
- `scaling_triggers.executor_scaling` is skipped: it hands jobs to Ray (sidecar.config.hand_off).
- `degradation_procedures.memory_pressure.stage_<n>_<pct>_percent` (`actions`, `message`): rule
  `memory_pressure_stage_<n>` on the machine's used memory (`system_memory_percent`) at `<pct>`,
  severity warning, critical, emergency by stage.
- `degradation_procedures.<group>.<name>` with a `trigger`: rule `<group>_<name>`, severity warning.

A condition is `<measure> <op> <number>[unit]`, optionally `AND sustained_duration > <seconds>`.
A measure the sidecar does not take, an OR, or an action without a lever is refused with a
warning at its line saying why; nothing is silently ignored.
"""

from __future__ import annotations

import re
from typing import Any

from sidecar.config.hand_off import HAND_OFF_GROUP
from sidecar.config.validate import Ctx
from sidecar.config.yamlload import MarkedDict, MarkedList
from sidecar.errors import did_you_mean
from sidecar.monitor.actions import action_specs
from sidecar.monitor.rules import HYSTERESIS_POINTS, AlertRule
from sidecar.units import parse_size

__all__ = ["MEASURES", "build_triggers", "parse_condition"]

MEASURES = {
    "memory_percent": "duckdb_memory_percent",
    "duckdb_memory_percent": "duckdb_memory_percent",
    "system_memory_percent": "system_memory_percent",
    "cpu_usage": "cpu_percent",
    "cpu_percent": "cpu_percent",
    "spill_activity": "spill_bytes",
    "memory_growth_rate": "memory_growth_bytes_per_min",
    "query_time": "longest_job_ms",
}
"""A condition's measure -> the metric it compares (docs/monitoring-setup.md#metrics)."""
_PERCENT = {"duckdb_memory_percent", "system_memory_percent", "cpu_percent"}
_NOT_MEASURED = {
    "connection_usage": "the sidecar has no connection pool; jobs are admitted by memory (jobs_running, jobs_queued)",
    "queue_wait_time": "the sidecar does not time the admission queue; jobs_queued counts who waits",
    "performance_degradation": "the sidecar keeps no performance baseline; bench.run measures against one",
    "throughput_degradation": "the sidecar keeps no throughput baseline; bench.run measures against one",
    "query_time_avg": "the sidecar does not average query times; query_time is the longest running job",
    "average_query_time": "the sidecar does not average query times; query_time is the longest running job",
    "system_memory": "ambiguous (used or free?); write system_memory_percent, the used share",
    "disk_space": "free disk is a metric (spill_free_bytes) but not a rule; watch it on the dashboard",
}
_TERM = re.compile(r"^\s*([a-z_]+)\s*(<=|>=|<|>)\s*([0-9.]+)\s*([A-Za-z%]*)\s*$")
_STAGE = re.compile(r"^stage_(\d+)_(\d+)_percent$")
_SEVERITY_BY_STAGE = ("warning", "critical", "emergency")


def parse_condition(text: str) -> tuple[str, bool, float, int] | str:
    """(metric, below, threshold in metric units, sustained ms), or why the condition is refused.

    >>> parse_condition("memory_percent > 80 AND sustained_duration > 300")
    ('duckdb_memory_percent', False, 80.0, 300000)
    >>> parse_condition("spill_activity > 500MB")
    ('spill_bytes', False, 500000000.0, 0)
    >>> parse_condition("connection_usage > 80%")[:40]
    "measure 'connection_usage' is not taken:"
    """
    if re.search(r"\bOR\b", text):
        return "OR is not supported; write one trigger per condition"
    found: tuple[str, bool, float] | None = None
    sustained = 0
    for term in re.split(r"\bAND\b", text):
        first = term.split()[0] if term.split() else ""
        if first in _NOT_MEASURED:
            return f"measure '{first}' is not taken: {_NOT_MEASURED[first]}"
        m = _TERM.match(term)
        if m is None:
            return f"'{term.strip()}' is not '<measure> <op> <number>[unit]'"
        name, op, number, unit = m.groups()
        value = float(number)
        if name == "sustained_duration":
            sustained = int(value * {"ms": 1, "s": 1000, "": 1000, "min": 60_000}.get(unit, 1000))
            continue
        if name in _NOT_MEASURED:
            return f"measure '{name}' is not taken: {_NOT_MEASURED[name]}"
        if name not in MEASURES:
            return f"unknown measure '{name}'{did_you_mean(name, [*MEASURES, *_NOT_MEASURED])}"
        if found is not None:
            return "only one measure per condition (plus sustained_duration); write one trigger per measure"
        metric = MEASURES[name]
        if metric in ("spill_bytes", "memory_growth_bytes_per_min") and unit and unit != "%":
            value = float(parse_size(f"{number}{unit}"))
        elif metric in ("spill_bytes", "memory_growth_bytes_per_min"):
            value *= 1000**2  # the pack's bare MB
        elif metric == "longest_job_ms" and unit == "s":
            value *= 1000
        found = (metric, op.startswith("<"), value)
    if found is None:
        return "no measure to compare"
    return (*found, sustained)


def _rule(name: str, parsed: tuple[str, bool, float, int], severity: str, message: str, actions: Any,
          where: str) -> AlertRule:
    metric, below, threshold, sustained = parsed
    margin = min(HYSTERESIS_POINTS, threshold / 2) if metric in _PERCENT else threshold * HYSTERESIS_POINTS / 100
    sign = -1.0 if below else 1.0
    return AlertRule(
        name=name,
        metric=metric,
        threshold=sign * threshold,
        resolve_below=sign * threshold - margin,
        severity=severity,
        message_template=message.replace("{", "{{").replace("}", "}}"),
        remediation_actions=[a.name for a in actions],
        actions=actions,
        sustained_ms=sustained,
        display_threshold=threshold,
        where=where,
        below=below,
    )


def _size(raw: Any) -> int | None:
    if raw is None:
        return None
    return int(raw) if isinstance(raw, int) else parse_size(str(raw))


def _scaling(raw: MarkedDict, ctx: Ctx, file: str) -> list[AlertRule]:
    rules = []
    for group, kinds in raw.items():
        if group == HAND_OFF_GROUP:
            # the hand-off to Ray is a rule for the job runner, read (and checked at its lines) with
            # the thresholds file by sidecar.config.hand_off: no alert rule, and no warning here
            continue
        if not isinstance(kinds, MarkedDict):
            ctx.add("warning", raw.value_pos[group], f"scaling_triggers.{group}", "expected a mapping of *_triggers lists")
            continue
        for kind, items in kinds.items():
            if not isinstance(items, MarkedList):
                ctx.add("warning", kinds.value_pos[kind], f"scaling_triggers.{group}.{kind}", "expected a list of triggers")
                continue
            for i, item in enumerate(items):
                path = f"scaling_triggers.{group}.{kind}[{i}]"
                pos = items.item_pos[i]
                if not isinstance(item, MarkedDict) or "condition" not in item or "action" not in item:
                    ctx.add("warning", pos, path, "a trigger needs a condition and an action", "see docs/monitoring-setup.md#triggers")
                    continue
                parsed = parse_condition(str(item["condition"]))
                if isinstance(parsed, str):
                    ctx.add("warning", item.value_pos["condition"], f"{path}.condition", f"trigger not applied: {parsed}",
                            "conditions the monitor evaluates are listed in docs/monitoring-setup.md#triggers")
                    continue
                memory = str(item["action"]).endswith("memory_limit")
                try:
                    low = _size(item.get("min_memory")) if memory else item.get("min_connections")
                    high = _size(item.get("max_memory")) if memory else item.get("max_connections")
                except ValueError as exc:
                    ctx.add("warning", pos, path, f"trigger not applied: {exc}", "write sizes as \"32GB\"")
                    continue
                factor = item.get("scale_factor")
                ctx.positions.setdefault(f"{path}.action[0]", item.value_pos["action"])
                specs = action_specs([str(item["action"])], ctx, f"{path}.action",
                                     factor=float(factor) if isinstance(factor, (int, float)) else None, low=low, high=high)
                if not specs:
                    continue
                name = f"{group}_{kind.removesuffix('_triggers')}_{i + 1}"
                message = f"{path}: {item['condition']} -> {item['action']}"
                rules.append(_rule(name, parsed, "info", message, specs, f"{file}:{pos[0]}"))
    return rules


def _degradation(raw: MarkedDict, ctx: Ctx, file: str) -> list[AlertRule]:
    rules = []
    for group, stages in raw.items():
        if not isinstance(stages, MarkedDict):
            ctx.add("warning", raw.value_pos[group], f"degradation_procedures.{group}", "expected a mapping of stages")
            continue
        for stage, body in stages.items():
            path = f"degradation_procedures.{group}.{stage}"
            pos = stages.key_pos[stage]
            if not isinstance(body, MarkedDict):
                ctx.add("warning", pos, path, "expected actions (and a trigger or a stage_<n>_<pct>_percent name)")
                continue
            m = _STAGE.match(stage)
            if "trigger" in body:
                parsed = parse_condition(str(body["trigger"]))
                severity, name = "warning", f"{group}_{stage}"
                why_pos = body.value_pos["trigger"]
            elif m is not None:
                parsed = ("system_memory_percent", False, float(m.group(2)), 0)
                severity = _SEVERITY_BY_STAGE[min(max(int(m.group(1)), 1), 3) - 1]
                name, why_pos = f"{group}_stage_{m.group(1)}", pos
            else:
                parsed, why_pos = "no trigger: name the stage stage_<n>_<pct>_percent or give it a trigger", pos
                name, severity = "", ""
            if isinstance(parsed, str):
                ctx.add("warning", why_pos, path, f"stage not applied: {parsed}",
                        "conditions the monitor evaluates are listed in docs/monitoring-setup.md#triggers")
                continue
            actions = body.get("actions")
            if isinstance(actions, MarkedList):
                for i, p in enumerate(actions.item_pos):
                    ctx.positions.setdefault(f"{path}.actions[{i}]", p)
            specs = action_specs([str(a) for a in actions] if isinstance(actions, list) else [], ctx, f"{path}.actions")
            message = str(body.get("message") or f"{path}: {body.get('trigger', stage)}")
            rules.append(_rule(name, parsed, severity, message, specs, f"{file}:{pos[0]}"))
    return rules


def build_triggers(scaling: Any, degradation: Any, ctx: Ctx, file: str) -> list[AlertRule]:
    """The rules of both sections (either may be None); refusals go to `ctx` at their line."""
    rules = []
    if isinstance(scaling, MarkedDict):
        rules += _scaling(scaling, ctx, file)
    if isinstance(degradation, MarkedDict):
        rules += _degradation(degradation, ctx, file)
    return rules
