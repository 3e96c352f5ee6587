"""The monitor's two notifications, as they go over the wire (msgspec only: the protocol's
message module re-exports them for the schemas)."""

from __future__ import annotations

from typing import Literal

import msgspec

from sidecar.monitor.metrics import MetricsSample

__all__ = ["AlertEvent", "MetricsNotice"]


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


class MetricsNotice(msgspec.Struct, frozen=True, kw_only=True):
    """`monitor/metrics`: one sample, for one subscription."""

    subscription: str
    sample: MetricsSample
