"""One sample of everything the monitor watches, and the flat metric values the rules compare.

The sampler (sidecar/engine/monitor.py) fills a `MetricsSample`; the threshold engine only sees
`metric_values` and `placeholders`, so it stays a pure function of the numbers.
"""

from __future__ import annotations

import msgspec

__all__ = ["WorkerMetrics", "MachineMetrics", "MetricsSample", "METRICS", "metric_values", "placeholders"]

MB = 1024**2
GB = 1024**3


class WorkerMetrics(msgspec.Struct, frozen=True, kw_only=True):
    """One running job's worker, with its memory split as Dask does: managed + unmanaged = RSS."""

    job_id: str
    pid: int | None
    rss_bytes: int
    managed_bytes: int
    """DuckDB's buffer manager (`duckdb_memory()` summed over tags)."""
    unmanaged_bytes: int
    """RSS minus managed: allocator, Python, result encoding."""
    spilled_bytes: int
    """Bytes in DuckDB's temporary files."""
    ceiling_bytes: int
    duckdb_limit_bytes: int
    elapsed_ms: int
    query_hash: str


class MachineMetrics(msgspec.Struct, frozen=True, kw_only=True):
    effective_memory_bytes: int
    """Physical RAM, or the cgroup limit when lower (as system.resources reports)."""
    used_memory_bytes: int
    cpu_percent: float
    spill_free_bytes: int
    machine_budget_bytes: int


class MetricsSample(msgspec.Struct, frozen=True, kw_only=True):
    at_ms: int
    """Wall-clock milliseconds since the epoch."""
    machine: MachineMetrics
    workers: list[WorkerMetrics] = []
    jobs_running: int = 0
    jobs_queued: int = 0
    memory_growth_bytes_per_min: float = 0.0
    """Growth of the workers' summed RSS over the last minute (or since the first sample)."""


METRICS = (
    "duckdb_memory_percent",
    "system_memory_percent",
    "memory_growth_bytes_per_min",
    "spill_bytes",
    "longest_job_ms",
    "cpu_percent",
)


def _busiest(sample: MetricsSample) -> WorkerMetrics | None:
    """The worker nearest its DuckDB limit: the one a memory alert is about."""
    return max(
        sample.workers, key=lambda w: w.managed_bytes / w.duckdb_limit_bytes if w.duckdb_limit_bytes else 0.0,
        default=None,
    )


def metric_values(sample: MetricsSample) -> dict[str, float]:
    """The numbers the rules compare; memory and time metrics are absent while no job runs.

    >>> m = MachineMetrics(effective_memory_bytes=100, used_memory_bytes=25, cpu_percent=3.0,
    ...     spill_free_bytes=0, machine_budget_bytes=80)
    >>> w = WorkerMetrics(job_id="j", pid=1, rss_bytes=60, managed_bytes=40, unmanaged_bytes=20,
    ...     spilled_bytes=5, ceiling_bytes=70, duckdb_limit_bytes=50, elapsed_ms=9, query_hash="h")
    >>> metric_values(MetricsSample(at_ms=0, machine=m, workers=[w]))["duckdb_memory_percent"]
    80.0
    """
    machine = sample.machine
    values: dict[str, float] = {
        "system_memory_percent": 100.0 * machine.used_memory_bytes / max(machine.effective_memory_bytes, 1),
        "cpu_percent": machine.cpu_percent,
        "memory_growth_bytes_per_min": sample.memory_growth_bytes_per_min,
        "spill_bytes": float(sum(w.spilled_bytes for w in sample.workers)),
    }
    busiest = _busiest(sample)
    if busiest is not None:
        values["duckdb_memory_percent"] = 100.0 * busiest.managed_bytes / max(busiest.duckdb_limit_bytes, 1)
        values["longest_job_ms"] = float(max(w.elapsed_ms for w in sample.workers))
    return values


def placeholders(sample: MetricsSample) -> dict[str, object]:
    """Values for the message templates' placeholders (besides the per-rule {threshold} and
    {duration_minutes}, which the engine adds)."""
    values = metric_values(sample)
    busiest = _busiest(sample)
    longest = max(sample.workers, key=lambda w: w.elapsed_ms, default=None)
    machine = sample.machine
    return {
        "memory_percent": round(values.get("duckdb_memory_percent", 0.0), 1),
        "memory_usage_mb": round(busiest.managed_bytes / MB) if busiest is not None else 0,
        "query_hash": longest.query_hash if longest is not None else "-",
        "free_memory_gb": round(max(machine.effective_memory_bytes - machine.used_memory_bytes, 0) / GB, 2),
        "system_memory_percent": round(values["system_memory_percent"], 1),
        "cpu_percent": round(machine.cpu_percent, 1),
        "growth_mb_per_min": round(sample.memory_growth_bytes_per_min / MB, 1),
        "spill_mb": round(values["spill_bytes"] / MB),
        "jobs_running": sample.jobs_running,
    }
