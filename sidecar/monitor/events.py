"""The monitor's two notifications, as they go over the wire (msgspec only: the protocol's
message module re-exports them for the schemas)."""

from __future__ import annotations

from typing import Literal

import msgspec

from sidecar.monitor.metrics import MetricsSample

__all__ = ["AlertEvent", "MetricsNotice", "ActionResult", "HeldAction"]


class ActionResult(msgspec.Struct, frozen=True, kw_only=True):
    """What one remediation action did when its alert fired."""

    action: str
    """The action's name as the thresholds file writes it (`kill_queries`)."""
    done: bool
    """False when it had nothing to act on (no job running) or failed."""
    detail: str


class AlertEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One `monitor/alert` notification."""

    id: str
    rule: str
    severity: str
    state: Literal["firing", "resolved"]
    metric: str
    value: float
    threshold: float
    message: str
    actions_taken: list[str]
    at: int
    """Wall-clock milliseconds since the epoch."""
    channels: list[str] = []
    escalated: bool = False
    remediation: list[ActionResult] = []
    """What each action in `actions_taken` did (sidecar.monitor.actions)."""


class MetricsNotice(msgspec.Struct, frozen=True, kw_only=True):
    """`monitor/metrics`: one sample, for one subscription."""

    subscription: str
    sample: MetricsSample


class HeldAction(msgspec.Struct, frozen=True, kw_only=True):
    """What a firing rule holds on admission control now (`monitor.snapshot`'s `holds`)."""

    rule: str
    pause: bool
    """No new job starts."""
    max_jobs: int | None
    """At most this many jobs run at once."""
    scale: float | None
    """A new attempt's memory ceiling (and so DuckDB's limit) is multiplied by this."""
