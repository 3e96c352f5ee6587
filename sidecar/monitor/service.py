"""The monitor of one sidecar: one thread samples, the threshold engine judges, channels deliver.

One thread does all the monitor's work (metrics, alerts, history, the log channel), at the
pack's `monitoring_config.intervals.resource_check` (1 s by default) or faster when a
subscriber asks for it. The watchdog's own 50 Hz thread stays free of it: a slow disk under
the alert log must never delay a memory kill.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from typing import Callable, Protocol

import msgspec

from sidecar.config.diagnostics import Diagnostic
from sidecar.monitor.actions import Remedies
from sidecar.monitor.alert_log import AlertLog
from sidecar.monitor.alerts import ThresholdEngine
from sidecar.monitor.events import AlertEvent, MetricsNotice
from sidecar.monitor.config import MonitorConfig
from sidecar.monitor.metrics import MetricsSample, metric_values, placeholders
from sidecar.monitor.prometheus import PrometheusExporter
from sidecar.monitor.channels import ConsoleWriter, EmailSender
from sidecar.monitor.webhook import WebhookSender

__all__ = ["MetricSource", "Subscription", "MonitorService", "MIN_INTERVAL_MS"]

log = logging.getLogger(__name__)

MIN_INTERVAL_MS = 100


class MetricSource(Protocol):
    def sample(self) -> MetricsSample: ...


class Subscription(msgspec.Struct, kw_only=True):
    id: str
    interval_ms: int
    alerts_only: bool
    last_sent: float = 0.0


class Sink(Protocol):
    def send(self, record: msgspec.Struct) -> None: ...

    def close(self) -> None: ...


def _sinks(config: MonitorConfig, alerting: bool) -> dict[str, Sink]:
    """The channels a config turns on (none while alerting is off)."""
    if not alerting:
        return {}
    sinks: dict[str, Sink] = {}
    if config.log.enabled:
        sinks["log"] = AlertLog(config.log)
    if config.webhook_url:
        sinks["webhook"] = WebhookSender(config.webhook, config.webhook_url)
    if config.email_target is not None:
        sinks["email"] = EmailSender(config.email, config.email_target)
    if config.console.enabled:
        sinks["console"] = ConsoleWriter(config.console)
    return sinks


class MonitorService:
    """Started on the first `monitor.*` call; `notify(method, params)` writes a notification."""

    def __init__(
        self,
        source: MetricSource,
        config: MonitorConfig,
        notify: Callable[[str, msgspec.Struct], None],
        *,
        alerting: bool,
        refresh: Callable[[], tuple[MonitorConfig, bool] | None] | None = None,
        remedies: Remedies | None = None,
    ) -> None:
        self.source = source
        self.config = config
        self.notify = notify
        self.alerting = alerting
        self.refresh = refresh
        """Called before each sample: a new (config, alerting) after a config reload, else None."""
        self.remedies = remedies
        self.exporter: PrometheusExporter | None = None
        self.startup_diagnostics: list[Diagnostic] = []
        """Problems of the monitor's environment (a bad BMAD_DATA_PROMETHEUS_PORT)."""
        """Serves /metrics when BMAD_DATA_PROMETHEUS_PORT is set (sidecar.methods.monitor starts it)."""
        """Runs a firing alert's remediation actions; None: alerts only name them."""
        self.engine = ThresholdEngine(config.rules)
        self.sinks = _sinks(config, alerting)
        """The alert channels on now, by the name severity levels use (log, webhook, email, console)."""
        self.samples: deque[MetricsSample] = deque(maxlen=config.history)
        self.alerts: deque[AlertEvent] = deque(maxlen=config.alert_history)
        self.active: dict[str, AlertEvent] = {}
        self._subs: dict[str, Subscription] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._engine_lock = threading.Lock()
        """The threshold engine's state: the monitor thread's samples and a client's acknowledgement."""
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="monitor", daemon=True)
        self._thread.start()

    # -- what the methods ask ------------------------------------------------------------

    def subscribe(self, interval_ms: int | None, alerts_only: bool) -> Subscription:
        with self._lock:
            sub = Subscription(
                id=f"monitor-{next(self._ids)}",
                interval_ms=max(interval_ms or self.config.interval_ms, MIN_INTERVAL_MS),
                alerts_only=alerts_only,
            )
            self._subs[sub.id] = sub
        self._wake.set()
        return sub

    def unsubscribe(self, subscription: str) -> bool:
        with self._lock:
            return self._subs.pop(subscription, None) is not None

    def reconfigure(self, config: MonitorConfig, alerting: bool) -> None:
        """A config reload (on the monitor thread, between two samples): new rules (alert state
        kept by rule name), channels and cadence."""
        with self._engine_lock:
            events = self.engine.replace_rules(config.rules, int(time.time() * 1000)) if alerting else []
        if self.remedies is not None:
            for event in events:
                self.remedies.lift(event.rule)
        with self._lock:
            self.config = config
            self.alerting = alerting
            old = self.sinks
            self.sinks = _sinks(config, alerting)
        for closing in old.values():
            closing.close()
        self._deliver(events)

    def acknowledge(self, alert_id: str) -> tuple[bool, AlertEvent | None]:
        """(whether the alert fires now, its resolved event when the acknowledgement resolved it:
        its value had cleared; else it resolves when the value clears)."""
        with self._lock:
            known = alert_id in self.active
        if not known:
            return False, None
        with self._engine_lock:
            event = self.engine.acknowledge(alert_id, int(time.time() * 1000))
        if event is not None:
            if self.remedies is not None:
                self.remedies.lift(event.rule)
            self._deliver([event])
        return True, event

    def latest(self) -> MetricsSample:
        with self._lock:
            if self.samples:
                return self.samples[-1]
        return self.tick()

    def history(self, since_ms: int | None, metric: str | None) -> tuple[list[MetricsSample], list[tuple[int, float]]]:
        """Samples kept at or after `since_ms`, and the points of one metric when asked."""
        with self._lock:
            kept = [s for s in self.samples if since_ms is None or s.at_ms >= since_ms]
        points = []
        if metric is not None:
            for s in kept:
                value = metric_values(s).get(metric)
                points.append((s.at_ms, value if value is not None else 0.0))
        return kept, points

    # -- the thread ----------------------------------------------------------------------

    def _interval_s(self) -> float:
        with self._lock:
            fastest = min((s.interval_ms for s in self._subs.values()), default=self.config.interval_ms)
        return min(fastest, self.config.interval_ms) / 1000

    def _loop(self) -> None:
        while not self._stopped.is_set():
            try:
                self.tick()
            except Exception:  # the monitor must keep sampling; report and count on
                log.exception("monitor sample failed")
            self._wake.wait(self._interval_s())
            self._wake.clear()

    def tick(self) -> MetricsSample:
        """Take one sample, judge it, deliver it; the thread calls this, and so may a test."""
        change = self.refresh() if self.refresh is not None else None
        if change is not None:
            self.reconfigure(*change)
        sample = self.source.sample()
        values = metric_values(sample)
        with self._engine_lock:
            events = self.engine.feed(values, placeholders(sample), sample.at_ms) if self.alerting else []
        if self.remedies is not None:
            events = [self._remedy(self.remedies, event, sample) for event in events]
            self.remedies.relax(values)
        now = time.monotonic()
        with self._lock:
            self.samples.append(sample)
            for event in events:
                self.alerts.append(event)
                if event.state == "firing":
                    self.active[event.id] = event
                else:
                    self.active.pop(event.id, None)
            due = [s for s in self._subs.values() if not s.alerts_only and (now - s.last_sent) * 1000 >= s.interval_ms * 0.9]
            for s in due:
                s.last_sent = now
            anyone = bool(self._subs)
        self._deliver(events, anyone)
        for s in due:
            self.notify("monitor/metrics", MetricsNotice(subscription=s.id, sample=sample))
        return sample

    def _remedy(self, remedies: Remedies, event: AlertEvent, sample: MetricsSample) -> AlertEvent:
        """Run the actions of an alert that just fired (not of an escalation); lift its holds
        when it resolves."""
        if event.state == "resolved":
            remedies.lift(event.rule)
            return event
        rule = next((r for r in self.engine.rules.rules if r.name == event.rule), None)
        level = self.engine.rules.levels[event.severity]
        if rule is None or event.escalated or not level.auto_remediation:
            return event
        results = remedies.act(rule, event.message, sample, level.force_cleanup)
        return msgspec.structs.replace(
            event, actions_taken=[r.action for r in results if r.done], remediation=results
        )

    def _deliver(self, events: list[AlertEvent], anyone: bool | None = None) -> None:
        if anyone is None:
            with self._lock:
                anyone = bool(self._subs)
                for event in events:
                    self.alerts.append(event)
                    self.active.pop(event.id, None)
        for event in events:
            log.info("alert %s %s: %s", event.state, event.rule, event.message)
            if self.exporter is not None and event.state == "firing" and not event.escalated:
                self.exporter.on_alert(event.severity)
            for name, sink in self.sinks.items():
                if name in event.channels:
                    sink.send(event)
            if anyone:
                self.notify("monitor/alert", event)

    def firing(self) -> dict[str, int]:
        """How many alerts fire now, by severity (every severity, 0 when none)."""
        with self._lock:
            active = list(self.active.values())
        counts = dict.fromkeys(("info", "warning", "critical", "emergency"), 0)
        for event in active:
            counts[event.severity] = counts.get(event.severity, 0) + 1
        return counts

    def close(self) -> None:
        if self.exporter is not None:
            self.exporter.close()
        self._stopped.set()
        self._wake.set()
        self._thread.join(timeout=5)
        for sink in self.sinks.values():
            sink.close()


