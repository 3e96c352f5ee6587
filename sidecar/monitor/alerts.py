"""The threshold engine: feed it metric values, get firing and resolved alert events.

Pure: no clock, no I/O. Each rule fires when its metric reaches the level (for `sustained_ms`
when set), resolves only below a lower mark (hysteresis, so a value hovering on the line does
not flap), never fires again within its severity's cooldown, escalates once to the next
severity after `escalation_delay`, and, when its severity does not auto-resolve, waits for an
acknowledgement once the value has cleared.
"""

from __future__ import annotations

import math
from typing import Literal

from sidecar.monitor.events import AlertEvent
from sidecar.monitor.rules import SEVERITIES, AlertRule, RuleSet

__all__ = ["ThresholdEngine"]


class _State:
    __slots__ = ("above_since", "alert_id", "fired_at", "last_fired", "escalated", "cleared", "acked", "value")

    def __init__(self) -> None:
        self.above_since: int | None = None
        self.alert_id: str | None = None
        self.fired_at = 0
        self.last_fired: int | None = None
        self.escalated = False
        self.cleared = False
        self.acked = False
        self.value = 0.0


class ThresholdEngine:
    """Alert state for one rule set; `feed` is called once per sample, in time order."""

    def __init__(self, rules: RuleSet) -> None:
        self.rules = rules
        self._states = {rule.name: _State() for rule in rules.rules}
        self._counter = 0

    def replace_rules(self, rules: RuleSet, now_ms: int) -> list[AlertEvent]:
        """Take new rules (a config reload): a rule kept by name keeps its state (a firing alert
        stays firing, its cooldown holds); an alert of a rule that is gone is resolved now."""
        gone = [r for r in self.rules.rules if r.name not in {n.name for n in rules.rules}]
        events = [
            self._resolve(rule, self._states[rule.name], self._states[rule.name].value, {}, now_ms)
            for rule in gone
            if self._states[rule.name].alert_id is not None
        ]
        self._states = {rule.name: self._states.get(rule.name) or _State() for rule in rules.rules}
        self.rules = rules
        return events

    def active(self) -> list[str]:
        """Ids of the alerts firing now."""
        return [s.alert_id for s in self._states.values() if s.alert_id is not None]

    def feed(self, values: dict[str, float], fill: dict[str, object], now_ms: int) -> list[AlertEvent]:
        events: list[AlertEvent] = []
        for rule in self.rules.rules:
            value = values.get(rule.metric)
            if rule.below:  # a scale-down trigger: an absent metric (no job running) is not low
                value = -value if value is not None else -math.inf
            elif value is None:
                value = 0.0  # a metric that is absent (no job running) is at rest
            event = self._step(rule, self._states[rule.name], value, fill, now_ms)
            if event is not None:
                events.append(event)
        return events

    def acknowledge(self, alert_id: str, now_ms: int) -> AlertEvent | None:
        """Acknowledge an alert whose severity does not auto-resolve: resolved now if its value has
        cleared, else when it clears."""
        for rule in self.rules.rules:
            state = self._states[rule.name]
            if state.alert_id == alert_id:
                state.acked = True
                if state.cleared:
                    return self._resolve(rule, state, state.value, {}, now_ms)
        return None

    def _step(self, rule: AlertRule, state: _State, value: float, fill: dict[str, object], now: int) -> AlertEvent | None:
        level = self.rules.levels[rule.severity]
        state.value = value
        if state.alert_id is None:
            if value < rule.threshold:
                state.above_since = None
                return None
            if state.above_since is None:
                state.above_since = now
            if now - state.above_since < rule.sustained_ms:
                return None
            if state.last_fired is not None and now - state.last_fired < level.cooldown_ms:
                return None
            self._counter += 1
            state.alert_id = f"{rule.name}-{self._counter}"
            state.fired_at = state.last_fired = now
            state.escalated = state.cleared = state.acked = False
            return self._event(rule, state, "firing", rule.severity, value, fill, now)
        if value < rule.resolve_below:
            state.cleared = True
            if level.auto_resolve or state.acked:
                return self._resolve(rule, state, value, fill, now)
            return None
        state.cleared = False
        delay = level.escalation_delay_ms
        if delay is not None and not state.escalated and now - state.fired_at >= delay:
            state.escalated = True
            higher = SEVERITIES[min(SEVERITIES.index(rule.severity) + 1, len(SEVERITIES) - 1)]
            return self._event(rule, state, "firing", higher, value, fill, now, escalated=True)
        return None

    def _resolve(self, rule: AlertRule, state: _State, value: float, fill: dict[str, object], now: int) -> AlertEvent:
        event = self._event(rule, state, "resolved", rule.severity, value, fill, now)
        state.alert_id = None
        state.above_since = None
        return event

    def _event(
        self,
        rule: AlertRule,
        state: _State,
        status: Literal["firing", "resolved"],
        severity: str,
        value: float,
        fill: dict[str, object],
        now: int,
        *,
        escalated: bool = False,
    ) -> AlertEvent:
        level = self.rules.levels[severity]
        since = state.above_since if state.above_since is not None else now
        minutes = (now - since) / 60_000 if rule.metric != "longest_job_ms" else value / 60_000
        values = {**_BLANK, **fill, "threshold": rule.display_threshold, "duration_minutes": round(minutes, 1)}
        message = rule.message_template.format_map(values)
        if status == "resolved":
            message = f"resolved: {message}"
        return AlertEvent(
            id=state.alert_id or rule.name,
            rule=rule.name,
            severity=severity,
            state=status,
            metric=rule.metric,
            value=round(_shown(rule, value), 3),
            threshold=-rule.threshold if rule.below else rule.threshold,
            message=message,
            actions_taken=list(rule.remediation_actions) if status == "firing" and level.auto_remediation else [],
            at=now,
            channels=list(level.notification_channels),
            escalated=escalated,
        )


def _shown(rule: AlertRule, value: float) -> float:
    """The value as the metric reads (a below-rule's value is negated inside the engine; an
    absent one is shown as 0)."""
    if not rule.below:
        return value
    return -value if math.isfinite(value) else 0.0


_BLANK: dict[str, object] = {
    "memory_percent": 0, "memory_usage_mb": 0, "query_hash": "-", "free_memory_gb": 0,
    "system_memory_percent": 0, "cpu_percent": 0, "growth_mb_per_min": 0, "spill_mb": 0, "jobs_running": 0,
}
