"""What the sidecar's monitor samples: every running attempt's worker, the machine, admission.

Per worker: RSS (read now), DuckDB's managed memory and spill (from the worker's own last
sample, `duckdb_memory()` and `duckdb_temporary_files()`), the ceiling and DuckDB's limit.
The machine: effective memory (cgroup-aware, as `system.resources`), CPU, free disk under the
spill root.
"""

from __future__ import annotations

import hashlib
import time
from collections import deque
from pathlib import Path
from typing import Callable

import psutil

from sidecar.resources import detect_resources, effective_memory_bytes
from sidecar.workers.admission import Hold
from sidecar.workers.supervisor import Supervisor
from sidecar.monitor.metrics import MachineMetrics, MetricsSample, WorkerMetrics

__all__ = ["SupervisorSource", "SupervisorLevers", "GROWTH_WINDOW_S"]

GROWTH_WINDOW_S = 60.0


class SupervisorSource:
    """Builds one `MetricsSample` from the supervisor's running attempts; called by the monitor thread."""

    def __init__(self, supervisor: Supervisor, temp_directory: Callable[[], str]) -> None:
        self.supervisor = supervisor
        self.temp_directory = temp_directory
        self._rss: dict[str, deque[tuple[float, int]]] = {}
        psutil.cpu_percent(interval=None)  # the first reading is meaningless; prime it

    def sample(self) -> MetricsSample:
        now = time.monotonic()
        workers = []
        for watch in self.supervisor.watchdog.watches():
            handle = watch.handle
            if not handle.alive:
                continue
            rss = handle.rss()
            ceiling = watch.reservation.bytes
            workers.append(
                WorkerMetrics(
                    job_id=str(watch.job),
                    pid=handle.pid,
                    rss_bytes=rss,
                    managed_bytes=watch.buffer_bytes,
                    unmanaged_bytes=max(rss - watch.buffer_bytes, 0),
                    spilled_bytes=watch.spill_bytes,
                    ceiling_bytes=ceiling,
                    duckdb_limit_bytes=watch.duckdb_limit_for(ceiling),
                    elapsed_ms=int((now - watch.started) * 1000),
                    query_hash=hashlib.sha256(watch.query.encode()).hexdigest()[:12] if watch.query else "-",
                )
            )
        res = detect_resources(Path(self.temp_directory()))
        effective = effective_memory_bytes(res)
        if res.cgroup_memory_usage_bytes is not None and effective < res.total_memory_bytes:
            used = res.cgroup_memory_usage_bytes
        else:
            used = res.total_memory_bytes - res.available_memory_bytes
        admission = self.supervisor.admission
        return MetricsSample(
            at_ms=int(time.time() * 1000),
            machine=MachineMetrics(
                effective_memory_bytes=effective,
                used_memory_bytes=used,
                cpu_percent=psutil.cpu_percent(interval=None),
                spill_free_bytes=res.temp_free_bytes,
                machine_budget_bytes=admission.machine_budget,
            ),
            workers=workers,
            jobs_running=len(admission.running),
            jobs_queued=admission.waiting(),
            memory_growth_bytes_per_min=self._growth(now, workers),
        )

    def _growth(self, now: float, workers: list[WorkerMetrics]) -> float:
        """The fastest RSS growth of a running job over the last minute, in bytes per minute (0 for
        a job watched for less than a second). Per job: a worker joining is not growth."""
        for gone in set(self._rss) - {w.job_id for w in workers}:
            del self._rss[gone]
        fastest = 0.0
        for w in workers:
            seen = self._rss.setdefault(w.job_id, deque())
            seen.append((now, w.rss_bytes))
            while now - seen[0][0] > GROWTH_WINDOW_S:
                seen.popleft()
            then, before = seen[0]
            if now - then >= 1.0:
                fastest = max(fastest, (w.rss_bytes - before) / (now - then) * 60)
        return fastest


class SupervisorLevers:
    """The remediation actions' levers (sidecar.monitor.actions.Levers) on a real supervisor."""

    def __init__(self, supervisor: Supervisor, sweep: Callable[[], tuple[int, int]] | None = None) -> None:
        self.supervisor = supervisor
        self.sweep = sweep
        """Also run by a cleanup: stale job directories (sidecar.methods.maintenance), as `cleanup` does."""

    @property
    def max_jobs(self) -> int:
        return self.supervisor.admission.max_jobs

    def cleanup(self, *, aggressive: bool) -> tuple[int, int]:
        freed, removed = self.supervisor.cleanup(aggressive=aggressive)
        if self.sweep is not None:
            more, files = self.sweep()
            freed, removed = freed + more, removed + files
        return freed, removed

    def hold(self, hold: Hold) -> None:
        self.supervisor.admission.hold(hold)

    def lift(self, rule: str) -> bool:
        return self.supervisor.admission.lift(rule)

    def interrupt(self, job: int, reason: str) -> bool:
        return self.supervisor.watchdog.interrupt(job, reason)
