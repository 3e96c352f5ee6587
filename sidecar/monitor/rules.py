"""Alert rules built from the pack's thresholds file, every key honoured or refused at file:line.

Threshold levels come from the already validated `memory_thresholds`, `performance_thresholds`
and `system_thresholds`; `alerting_rules` (severity levels, alert configs with message templates)
is walked here. A rule is one level of one threshold (`duckdb_memory_warning`); the original
pack's alert names `system_memory_low`, `high_cpu_usage` and `query_timeout_warning` name the
rules `system_memory_critical`, `cpu_usage_warning` and `query_execution_warning`.
"""

from __future__ import annotations

import string
from typing import Any

import msgspec

from sidecar.config.schema import ResourceThresholds
from sidecar.config.validate import Ctx, Entries, Leaf, ListOf, Section, to_bool, to_int, to_str, walk
from sidecar.config.yamlload import MarkedDict
from sidecar.monitor.actions import ActionSpec, action_specs
from sidecar.errors import did_you_mean

__all__ = [
    "SeverityLevel",
    "AlertRule",
    "RuleSet",
    "build_rules",
    "ALERTING_RULES",
    "PLACEHOLDERS",
    "SEVERITIES",
    "HYSTERESIS_POINTS",
]

SEVERITIES = ("info", "warning", "critical", "emergency")
HYSTERESIS_POINTS = 5.0
"""A percentage alert resolves only 5 points under its level (half the level, for a level under
10%); a byte/time alert 5% under it."""
PLACEHOLDERS = frozenset(
    {
        "memory_percent", "memory_usage_mb", "threshold", "query_hash", "free_memory_gb",
        "system_memory_percent", "cpu_percent", "duration_minutes", "growth_mb_per_min", "spill_mb",
        "jobs_running",
    }
)
CHANNELS = ("log", "console", "webhook", "email", "sms")
DELIVERED_CHANNELS = frozenset({"log", "console", "webhook", "email"})
"""`console` is the protocol subscriber and stderr; `log` a JSON-lines file; `webhook` a POST;
`email` SMTP (sidecar.monitor.channels)."""


class SeverityLevel(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    description: str = ""
    notification_channels: list[str] = msgspec.field(default_factory=lambda: ["log", "console"])
    cooldown_ms: int = 0
    auto_resolve: bool = True
    escalation_delay_ms: int | None = None
    auto_remediation: bool = True
    force_cleanup: bool = False
    """An alert of this severity also runs an aggressive cleanup when it fires."""


class AlertRule(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    metric: str
    threshold: float
    """In the metric's unit: percent points, bytes, bytes per minute, or milliseconds."""
    resolve_below: float
    severity: str
    message_template: str
    remediation_actions: list[str]
    sustained_ms: int = 0
    display_threshold: float | int = 0
    """{threshold} in a message: percent, MB or ms, as the file wrote it."""
    where: str = ""
    actions: list[ActionSpec] = []
    """The honoured remediation actions (sidecar.monitor.actions), in the file's order."""
    below: bool = False
    """Fires when the metric falls under the level (a scale-down trigger): the engine compares the
    negated value against the negated `threshold` and `resolve_below`."""


class RuleSet(msgspec.Struct, frozen=True, kw_only=True):
    rules: list[AlertRule]
    levels: dict[str, SeverityLevel]


class _Level(msgspec.Struct, frozen=True, kw_only=True):
    description: str = ""
    notification_channels: list[str] | None = None
    cooldown_minutes: int | None = None
    auto_resolve: bool | None = None
    escalation_delay_minutes: int | None = None
    auto_remediation: bool | None = None
    force_cleanup: bool | None = None


class _AlertConfig(msgspec.Struct, frozen=True, kw_only=True):
    severity: str | None = None
    message_template: str | None = None
    remediation_actions: list[str] | None = None


class _AlertingRules(msgspec.Struct, frozen=True, kw_only=True):
    severity_levels: dict[str, _Level] = {}
    alert_configs: dict[str, _AlertConfig] = {}


ALERTING_RULES = Section(
    _AlertingRules,
    {
        "severity_levels": Entries(
            Section(
                _Level,
                {
                    "description": Leaf(to_str),
                    "notification_channels": ListOf(Leaf(to_str)),
                    "cooldown_minutes": Leaf(to_int(0)),
                    "auto_resolve": Leaf(to_bool),
                    "escalation_delay_minutes": Leaf(to_int(1)),
                    "auto_remediation": Leaf(to_bool),
                    "force_cleanup": Leaf(to_bool),
                },
            )
        ),
        "alert_configs": Entries(
            Section(
                _AlertConfig,
                {
                    "severity": Leaf(to_str),
                    "message_template": Leaf(to_str),
                    "remediation_actions": ListOf(Leaf(to_str)),
                },
            )
        ),
    },
)

_ALIASES = {
    "system_memory_low": "system_memory_critical",
    "high_cpu_usage": "cpu_usage_warning",
    "query_timeout_warning": "query_execution_warning",
}
_DEFAULT_TEMPLATES = {
    "duckdb_memory": "DuckDB memory usage at {memory_percent}% of limit ({memory_usage_mb}MB)",
    "system_memory": "System memory at {system_memory_percent}% used ({free_memory_gb}GB free)",
    "memory_growth_rate": "Memory growing at {growth_mb_per_min}MB/min (level {threshold}MB/min)",
    "spill_activity": "{spill_mb}MB spilled to disk (level {threshold}MB)",
    "query_execution": "Query running {duration_minutes} minutes, over {threshold}ms: {query_hash}",
    "cpu_usage": "High CPU usage: {cpu_percent}% for {duration_minutes} minutes",
}
_DEFAULT_COOLDOWN_MIN = {"info": 60, "warning": 30, "critical": 15, "emergency": 5}
_MB = 1000**2  # the pack's MB, as sidecar.config.validate.to_mb_or_size reads bare numbers


def _threshold_levels(th: ResourceThresholds) -> list[tuple[str, str, str, float, float | int, bool]]:
    """(group, level, metric, threshold in metric units, threshold as written, is_percent)."""
    out: list[tuple[str, str, str, float, float | int, bool]] = []
    mt = th.memory_thresholds
    for level in SEVERITIES:
        v = getattr(mt.duckdb_memory, level)
        if v is not None:
            out.append(("duckdb_memory", level, "duckdb_memory_percent", v * 100, round(v * 100, 1), True))
    for level in SEVERITIES[1:]:
        v = getattr(mt.system_memory, level)
        if v is not None:
            out.append(("system_memory", level, "system_memory_percent", v * 100, round(v * 100, 1), True))
    for level in ("warning", "critical"):
        g = getattr(mt.memory_growth_rate, level)
        if g is not None:
            out.append(("memory_growth_rate", level, "memory_growth_bytes_per_min", g, round(g / _MB), False))
        s = getattr(mt.spill_activity, level)
        if s is not None:
            out.append(("spill_activity", level, "spill_bytes", s, round(s / _MB), False))
        q = getattr(th.performance_thresholds.query_execution, f"simple_query_{level}")
        if q is not None:
            out.append(("query_execution", level, "longest_job_ms", q, q, False))
        c = getattr(th.system_thresholds.cpu_usage, level)
        if c is not None:
            out.append(("cpu_usage", level, "cpu_percent", c * 100, round(c * 100, 1), True))
    return out


def _check_template(template: str, ctx: Ctx, path: str, pos: Any) -> bool:
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        ctx.add("error", pos, path, f"message_template is not a valid template: {exc}", "Balance the { } braces.")
        return False
    for name in fields:
        if name not in PLACEHOLDERS:
            ctx.add(
                "error",
                pos,
                path,
                f"unknown placeholder {{{name}}} in message_template{did_you_mean(name, PLACEHOLDERS)}",
                f"known placeholders: {', '.join('{' + p + '}' for p in sorted(PLACEHOLDERS))}",
            )
            return False
    return True


def _levels(parsed: _AlertingRules, ctx: Ctx, keys: dict[str, Any]) -> dict[str, SeverityLevel]:
    levels = {
        name: SeverityLevel(name=name, cooldown_ms=_DEFAULT_COOLDOWN_MIN[name] * 60_000) for name in SEVERITIES
    }
    for name, lv in parsed.severity_levels.items():
        path = f"alerting_rules.severity_levels.{name}"
        if name not in SEVERITIES:
            ctx.add(
                "warning", keys.get(path), path,
                f"unknown severity level '{name}' is ignored{did_you_mean(name, SEVERITIES)}",
                f"the levels are {', '.join(SEVERITIES)}",
            )
            continue
        channels = lv.notification_channels if lv.notification_channels is not None else ["log", "console"]
        for i, channel in enumerate(channels):
            cpath = f"{path}.notification_channels[{i}]"
            if channel == "sms":
                ctx.add("warning", ctx.positions.get(cpath), cpath,
                        "sms has no provider in this sidecar: alerts are NOT delivered by SMS",
                        "route SMS through the webhook channel (an SMS gateway's HTTP endpoint)")
            elif channel not in CHANNELS:
                ctx.add("error", ctx.positions.get(cpath), cpath,
                        f"unknown notification channel '{channel}'{did_you_mean(channel, CHANNELS)}",
                        f"the channels are {', '.join(CHANNELS)}")
        base = levels[name]
        levels[name] = SeverityLevel(
            name=name,
            description=lv.description,
            notification_channels=[c for c in channels if c in DELIVERED_CHANNELS],
            cooldown_ms=base.cooldown_ms if lv.cooldown_minutes is None else lv.cooldown_minutes * 60_000,
            auto_resolve=True if lv.auto_resolve is None else lv.auto_resolve,
            escalation_delay_ms=None if lv.escalation_delay_minutes is None else lv.escalation_delay_minutes * 60_000,
            auto_remediation=True if lv.auto_remediation is None else lv.auto_remediation,
            force_cleanup=bool(lv.force_cleanup),
        )
    return levels


def build_rules(th: ResourceThresholds | None, alerting: MarkedDict | None, ctx: Ctx) -> RuleSet:
    """The rules of one thresholds file; problems go to `ctx` as diagnostics at their line."""
    th = th if th is not None else ResourceThresholds()
    parsed = _AlertingRules()
    keys: dict[str, Any] = {}
    if alerting is not None:
        walked = walk(ALERTING_RULES, alerting, ctx, "alerting_rules", alerting.pos)
        if isinstance(walked, _AlertingRules):
            parsed = walked
        for section in ("severity_levels", "alert_configs"):
            raw = alerting.get(section)
            if isinstance(raw, MarkedDict):
                keys.update({f"alerting_rules.{section}.{n}": raw.key_pos[n] for n in raw})
    levels = _levels(parsed, ctx, keys)
    for level in ("warning", "critical"):
        key = f"performance_thresholds.query_execution.complex_query_{level}"
        if key in th.positions:
            ctx.add("warning", th.positions[key], key,
                    "not applied: the monitor does not tell simple from complex queries; the "
                    "simple_query levels apply to every job", "remove it, or raise simple_query_* instead")
    found = _threshold_levels(th)
    names = [f"{group}_{level}" for group, level, *_ in found]
    configs: dict[str, tuple[_AlertConfig, str]] = {}
    for name, cfg in parsed.alert_configs.items():
        path = f"alerting_rules.alert_configs.{name}"
        target = _ALIASES.get(name, name)
        if target not in names:
            ctx.add("warning", keys.get(path), path,
                    f"alert '{name}' matches no threshold level and is ignored{did_you_mean(name, names)}",
                    "name an alert <threshold>_<level>, e.g. duckdb_memory_warning")
            continue
        configs[target] = (cfg, path)
    rules = []
    for (group, level, metric, threshold, shown, is_percent), name in zip(found, names):
        cfg, path = configs.get(name, (_AlertConfig(), ""))
        template = cfg.message_template or _DEFAULT_TEMPLATES[group]
        if cfg.message_template is not None:
            tpath = f"{path}.message_template"
            if not _check_template(template, ctx, tpath, ctx.positions.get(tpath)):
                template = _DEFAULT_TEMPLATES[group]
        severity = cfg.severity or level
        if severity not in SEVERITIES:
            spath = f"{path}.severity"
            ctx.add("error", ctx.positions.get(spath), spath,
                    f"unknown severity '{severity}'{did_you_mean(severity, SEVERITIES)}",
                    f"the levels are {', '.join(SEVERITIES)}")
            severity = level
        actions = cfg.remediation_actions if cfg.remediation_actions is not None else ["monitor"]
        specs = action_specs(actions, ctx, f"{path}.remediation_actions")
        margin = min(HYSTERESIS_POINTS, threshold / 2) if is_percent else threshold * HYSTERESIS_POINTS / 100
        rules.append(
            AlertRule(
                name=name,
                metric=metric,
                threshold=float(threshold),
                resolve_below=float(threshold) - margin,
                severity=severity,
                message_template=template,
                remediation_actions=[a.name for a in specs],
                actions=specs,
                sustained_ms=(th.system_thresholds.cpu_usage.sustained_duration or 0) if group == "cpu_usage" else 0,
                display_threshold=shown,
                where=f"{th.path}:{(th.positions.get(_source_key(group, level)) or (0, 0))[0]}",
            )
        )
    return RuleSet(rules=rules, levels=levels)


def _source_key(group: str, level: str) -> str:
    if group == "query_execution":
        return f"performance_thresholds.query_execution.simple_query_{level}"
    if group == "cpu_usage":
        return f"system_thresholds.cpu_usage.{level}"
    return f"memory_thresholds.{group}.{level}"
