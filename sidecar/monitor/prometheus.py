"""`/metrics` for Prometheus on 127.0.0.1, from the monitor's latest sample and its counters.

Naming follows Prometheus: one prefix `bmad_data_`, base units as suffixes (bytes, seconds,
ratio), counters ending `_total`, and no per-job labels (a job id would make a new series per
query): worker figures are summed over the running attempts. A private registry, so nothing of
the process's own (or another library's) default registry leaks in. Enabled by
`BMAD_DATA_PROMETHEUS_PORT` (0 picks a free port; `monitor.subscribe` answers with the URL).
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterator, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from sidecar.monitor.metrics import MetricsSample

__all__ = ["PrometheusExporter", "EXPORTED", "PORT_ENV", "DURATION_BUCKETS_S"]

log = logging.getLogger(__name__)

PORT_ENV = "BMAD_DATA_PROMETHEUS_PORT"
DURATION_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600)
EXPORTED = (
    "bmad_data_memory_bytes",
    "bmad_data_worker_rss_bytes",
    "bmad_data_ceiling_bytes",
    "bmad_data_duckdb_limit_bytes",
    "bmad_data_machine_budget_bytes",
    "bmad_data_effective_memory_bytes",
    "bmad_data_used_memory_bytes",
    "bmad_data_spill_bytes",
    "bmad_data_spill_free_bytes",
    "bmad_data_cpu_usage_ratio",
    "bmad_data_memory_growth_bytes_per_second",
    "bmad_data_longest_job_seconds",
    "bmad_data_jobs",
    "bmad_data_alerts_firing",
    "bmad_data_query_duration_seconds",
    "bmad_data_alerts_total",
    "bmad_data_ladder_attempts_total",
    "bmad_data_worker_restarts_total",
)
"""Every family `/metrics` serves (tests/test_monitor_prometheus.py checks the list and that the
shipped alert rules and dashboard use only these)."""


class AttemptLike(Protocol):
    """What the exporter reads of a finished attempt (sidecar.jobs.types.Attempt)."""

    rung: str
    outcome: str
    elapsed_ms: int


class _SampleCollector:
    """Gauges read from the latest sample at scrape time."""

    def __init__(self, latest: Callable[[], MetricsSample], firing: Callable[[], dict[str, int]],
                 restarts: Callable[[], int]) -> None:
        self.latest = latest
        self.firing = firing
        self.restarts = restarts

    def describe(self) -> list[Metric]:
        return []  # no describe-time scrape: the registry calls collect lazily

    def collect(self) -> Iterator[Metric]:
        s = self.latest()
        w = s.workers
        memory = GaugeMetricFamily("bmad_data_memory_bytes", "Worker memory by kind, summed over running jobs: "
                                   "managed (DuckDB's buffer), unmanaged (RSS minus managed), spilled (temp files)",
                                   labels=["kind"])
        memory.add_metric(["managed"], sum(x.managed_bytes for x in w))
        memory.add_metric(["unmanaged"], sum(x.unmanaged_bytes for x in w))
        memory.add_metric(["spilled"], sum(x.spilled_bytes for x in w))
        yield memory
        m = s.machine
        plain = [
            ("worker_rss_bytes", "Resident memory of the workers running jobs", sum(x.rss_bytes for x in w)),
            ("ceiling_bytes", "Memory ceilings of the running jobs, summed", sum(x.ceiling_bytes for x in w)),
            ("duckdb_limit_bytes", "DuckDB memory_limit of the running jobs, summed", sum(x.duckdb_limit_bytes for x in w)),
            ("machine_budget_bytes", "What all running jobs together may reserve", m.machine_budget_bytes),
            ("effective_memory_bytes", "Physical RAM, or the cgroup limit when lower", m.effective_memory_bytes),
            ("used_memory_bytes", "Memory in use on the machine (or in the cgroup)", m.used_memory_bytes),
            ("spill_bytes", "Bytes in DuckDB's temporary files of the running jobs", sum(x.spilled_bytes for x in w)),
            ("spill_free_bytes", "Free disk under the spill directory", m.spill_free_bytes),
            ("cpu_usage_ratio", "The machine's CPU use since the previous sample, 0 to 1", m.cpu_percent / 100),
            ("memory_growth_bytes_per_second", "Fastest RSS growth of a running job over the last minute",
             s.memory_growth_bytes_per_min / 60),
            ("longest_job_seconds", "How long the longest running job has run", max((x.elapsed_ms for x in w), default=0) / 1000),
        ]
        for name, doc, value in plain:
            yield GaugeMetricFamily(f"bmad_data_{name}", doc, value=value)
        jobs = GaugeMetricFamily("bmad_data_jobs", "Jobs by admission state", labels=["state"])
        jobs.add_metric(["running"], s.jobs_running)
        jobs.add_metric(["queued"], s.jobs_queued)
        yield jobs
        firing = GaugeMetricFamily("bmad_data_alerts_firing", "Alerts firing now, by severity", labels=["severity"])
        for severity, count in self.firing().items():
            firing.add_metric([severity], count)
        yield firing
        yield CounterMetricFamily("bmad_data_worker_restarts", "Worker processes that died and were replaced",
                                  value=self.restarts())


class PrometheusExporter:
    """The registry, its counters, and the HTTP server on 127.0.0.1."""

    def __init__(self, latest: Callable[[], MetricsSample], firing: Callable[[], dict[str, int]],
                 restarts: Callable[[], int]) -> None:
        # `_created` series are a second family per counter in the text format, and a timestamp
        # nobody charts; the sidecar's process has no other Prometheus user to keep them for
        disable_created_metrics()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_SampleCollector(latest, firing, restarts))  # type: ignore[arg-type]
        self.durations = Histogram(
            "bmad_data_query_duration_seconds", "One attempt of a job, from admission to its end",
            buckets=DURATION_BUCKETS_S, registry=self.registry,
        )
        self.alerts = Counter("bmad_data_alerts", "Alerts fired, by severity", ["severity"], registry=self.registry)
        self.attempts = Counter("bmad_data_ladder_attempts", "Attempts by retry-ladder rung and outcome",
                                ["rung", "outcome"], registry=self.registry)
        self.url: str | None = None
        self._server: Any = None

    def on_attempt(self, attempt: AttemptLike) -> None:
        self.durations.observe(attempt.elapsed_ms / 1000)
        self.attempts.labels(attempt.rung, "ok" if attempt.outcome == "ok" else "failed").inc()

    def on_alert(self, severity: str) -> None:
        self.alerts.labels(severity).inc()

    def serve(self, port: int) -> str:
        """Serve `/metrics` on 127.0.0.1:`port` (0: a free one); the URL."""
        server, _thread = start_http_server(port, addr="127.0.0.1", registry=self.registry)
        self._server = server
        self.url = f"http://127.0.0.1:{server.server_port}/metrics"
        log.info("Prometheus metrics at %s", self.url)
        return self.url

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server: Any = None
