"""`monitor.subscribe`, `monitor.unsubscribe`, `monitor.snapshot`, `monitor.history`.

The monitor starts with the first of these calls (sidecar.monitor.service): a live stream of
`monitor/metrics` samples and `monitor/alert` events, raised and resolved by the pack's
thresholds file. Gated by the pack's flags: `duckdb_monitoring` for the methods and
`duckdb_alerting` for the alerts (and the alert log).
"""

from __future__ import annotations

import logging
import threading
from typing import Annotated, Any, Callable

import msgspec

from sidecar.config.diagnostics import Diagnostic
from sidecar.errors import InvalidParams, did_you_mean
from sidecar.methods import registry
from sidecar.methods.maintenance import DEFAULT_JOB_MAX_AGE_MS, remove_stale_job_directories
from sidecar.monitor.actions import Remedies
from sidecar.monitor.events import AlertEvent, HeldAction
from sidecar.monitor.config import MonitorConfig, monitor_config
from sidecar.monitor.metrics import METRICS, MetricsSample
from sidecar.monitor.service import MIN_INTERVAL_MS, MonitorService
from sidecar.monitor.prometheus import PORT_ENV, PrometheusExporter
from sidecar.monitor.source import SupervisorLevers, SupervisorSource
from sidecar.protocol.dispatcher import Call

__all__ = [
    "SubscribeParams",
    "SubscribeResult",
    "UnsubscribeParams",
    "UnsubscribeResult",
    "Snapshot",
    "HistoryParams",
    "HistoryResult",
    "HistoryPoint",
    "AcknowledgeParams",
    "AcknowledgeResult",
    "MONITORING_FEATURE",
    "ALERTING_FEATURE",
    "start_if_configured",
]

MONITORING_FEATURE = "duckdb_monitoring"
ALERTING_FEATURE = "duckdb_alerting"
_start_lock = threading.Lock()
log = logging.getLogger(__name__)


class SubscribeParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    interval_ms: Annotated[int, msgspec.Meta(ge=MIN_INTERVAL_MS, le=3_600_000)] | None = None
    """How often `monitor/metrics` comes (default: monitoring_config.intervals.resource_check, 1 s)."""
    alerts_only: bool = False
    """Only `monitor/alert` notifications, no metrics."""


class SubscribeResult(msgspec.Struct, frozen=True):
    subscription: str
    interval_ms: int
    alerting: bool
    """False when the `duckdb_alerting` flag is off: metrics flow, no alert is raised."""
    diagnostics: list[Diagnostic]
    """What the monitor refused in the thresholds file's alerting_rules/notification_channels."""
    prometheus_url: str | None = None
    """Where `/metrics` is served (BMAD_DATA_PROMETHEUS_PORT), or None."""


class UnsubscribeParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    subscription: str


class UnsubscribeResult(msgspec.Struct, frozen=True):
    unsubscribed: bool
    """False when no such subscription was open."""


class Snapshot(msgspec.Struct, frozen=True):
    metrics: MetricsSample
    alerts: list[AlertEvent]
    """The alerts firing now."""
    holds: list[HeldAction] = []
    """What firing rules hold on admission control now (pause, narrow, resize new jobs)."""


class HistoryParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    since_ms: int | None = None
    """Only samples at or after this wall-clock time (ms since the epoch)."""
    metric: str | None = None
    """One of the rules' metrics: answer `points` of it as well."""


class HistoryPoint(msgspec.Struct, frozen=True, array_like=True):
    at_ms: int
    value: float


class HistoryResult(msgspec.Struct, frozen=True):
    samples: list[MetricsSample]
    points: list[HistoryPoint]
    alerts: list[AlertEvent]
    capacity: int
    """How many samples the ring keeps (monitoring_config.retention.memory_metrics)."""


class AcknowledgeParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: str
    """The alert's `id`, as in `monitor/alert` and `monitor.snapshot`."""


class AcknowledgeResult(msgspec.Struct, frozen=True):
    resolved: AlertEvent | None
    """The alert's resolved event when its value had cleared (also sent as `monitor/alert`);
    None while it is still above its resolve mark: it resolves when the value clears."""


def _configure(session: Any, pack: Any) -> tuple[MonitorConfig, bool]:
    config = monitor_config(pack, session.settings.state_directory, session.env)
    for diagnostic in config.diagnostics:
        log.warning("monitor config: %s", diagnostic)
    return config, pack.flags.enabled(ALERTING_FEATURE)


def _refresher(session: Any) -> Callable[[], tuple[MonitorConfig, bool] | None]:
    """New monitor config when the session's pack was reloaded (config.reload, a file edit)."""
    seen = [session.pack]

    def refresh() -> tuple[MonitorConfig, bool] | None:
        pack = session.pack
        if pack is seen[0]:
            return None
        seen[0] = pack
        return _configure(session, pack)

    return refresh


def _service(call: Call) -> MonitorService:
    call.session.require(MONITORING_FEATURE)
    return _start(call.session)


def _start(session: Any) -> MonitorService:
    """The session's monitor, started now if it is not running yet."""
    with _start_lock:
        if session.monitor is None:
            refresh = _refresher(session)
            config, alerting = _configure(session, session.pack)
            supervisor = session.engine.supervisor
            source = SupervisorSource(supervisor, lambda: session.settings.temp_directory)
            state = session.settings.state_directory

            def sweep() -> tuple[int, int]:  # what the `cleanup` method sweeps besides the supervisor
                return remove_stale_job_directories(state, DEFAULT_JOB_MAX_AGE_MS, set(session.running_jobs))

            remedies = Remedies(SupervisorLevers(supervisor, sweep))
            service = MonitorService(
                source, config, session.notify, alerting=alerting, refresh=refresh, remedies=remedies
            )
            _export(service, supervisor, session.env)
            session.monitor = service
        started: MonitorService = session.monitor
    return started


def start_if_configured(session: Any) -> bool:
    """At the sidecar's start: run the monitor now when BMAD_DATA_PROMETHEUS_PORT is set (a scraper
    expects /metrics before any client asks) or `monitoring_config.autostart` is true; otherwise
    it waits for the first monitor.* call, and costs nothing until then."""
    if not session.pack.flags.enabled(MONITORING_FEATURE):
        return False
    th = session.pack.thresholds
    info = th.monitoring_config if th is not None else None
    autostart = isinstance(info, dict) and info.get("autostart") is True
    if not autostart and not (session.env or {}).get(PORT_ENV):
        return False
    _start(session)
    log.info("monitor started with the sidecar (%s)", "monitoring_config.autostart" if autostart else PORT_ENV)
    return True


def _export(service: MonitorService, supervisor: Any, env: Any) -> None:
    """Serve /metrics when BMAD_DATA_PROMETHEUS_PORT is set; a bad value is a diagnostic."""
    raw = (env or {}).get(PORT_ENV)
    if raw is None or raw == "":
        return
    try:
        port = int(raw)
        if not 0 <= port <= 65535:
            raise ValueError(raw)
        exporter = PrometheusExporter(service.latest, service.firing, lambda: supervisor.worker_deaths)
        exporter.serve(port)
    except (ValueError, OSError) as exc:
        why = f"'{raw}' is not a port number" if isinstance(exc, ValueError) else f"cannot listen on 127.0.0.1:{raw}: {exc}"
        service.startup_diagnostics.append(
            Diagnostic("warning", "", None, None, PORT_ENV, f"Prometheus metrics are off: {why}",
                       "set it to a free port from 1024 to 65535, or 0 for any free port")
        )
        log.warning("Prometheus metrics are off: %s", why)
        return
    supervisor.attempt_listeners.append(exporter.on_attempt)
    service.exporter = exporter


@registry.method("monitor.subscribe", params=SubscribeParams, result=SubscribeResult)
def subscribe(call: Call, p: SubscribeParams) -> SubscribeResult:
    """Stream `monitor/metrics` and `monitor/alert` notifications until `monitor.unsubscribe`."""
    service = _service(call)
    sub = service.subscribe(p.interval_ms, p.alerts_only)
    diagnostics = [*service.config.diagnostics, *service.startup_diagnostics]
    url = service.exporter.url if service.exporter is not None else None
    return SubscribeResult(sub.id, sub.interval_ms, service.alerting, diagnostics, url)


@registry.method("monitor.unsubscribe", params=UnsubscribeParams, result=UnsubscribeResult)
def unsubscribe(call: Call, p: UnsubscribeParams) -> UnsubscribeResult:
    """Stop one subscription's notifications."""
    return UnsubscribeResult(_service(call).unsubscribe(p.subscription))


@registry.method("monitor.snapshot", params=None, result=Snapshot)
def snapshot(call: Call, _: None) -> Snapshot:
    """The latest sample (every worker, the machine, the jobs) and the alerts firing now."""
    service = _service(call)
    holds = list(service.remedies.holds.values()) if service.remedies is not None else []
    return Snapshot(
        service.latest(),
        list(service.active.values()),
        [HeldAction(rule=h.rule, pause=h.pause, max_jobs=h.max_jobs, scale=h.scale) for h in holds],
    )


@registry.method("monitor.history", params=HistoryParams, result=HistoryResult)
def history(call: Call, p: HistoryParams) -> HistoryResult:
    """The samples and alerts the monitor kept (a bounded ring), optionally one metric's points."""
    if p.metric is not None and p.metric not in METRICS:
        raise InvalidParams(
            f"unknown metric '{p.metric}'{did_you_mean(p.metric, METRICS)}",
            hint=f"metrics: {', '.join(METRICS)}",
        )
    service = _service(call)
    samples, points = service.history(p.since_ms, p.metric)
    alerts = [a for a in list(service.alerts) if p.since_ms is None or a.at >= p.since_ms]
    return HistoryResult(samples, [HistoryPoint(t, v) for t, v in points], alerts, service.config.history)




@registry.method("monitor.acknowledge", params=AcknowledgeParams, result=AcknowledgeResult)
def acknowledge(call: Call, p: AcknowledgeParams) -> AcknowledgeResult:
    """Acknowledge a firing alert of a severity that does not auto-resolve (`auto_resolve: false`)."""
    service = _service(call)
    known, event = service.acknowledge(p.id)
    if not known:
        firing = list(service.active)
        raise InvalidParams(
            f"no alert '{p.id}' is firing{did_you_mean(p.id, firing)}",
            hint="monitor.snapshot lists the alerts firing now" + (f": {', '.join(firing)}" if firing else " (none)"),
        )
    return AcknowledgeResult(event)
