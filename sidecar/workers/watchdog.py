"""The watchdog: samples every busy worker's RSS fifty times a second and acts on it.

- RSS above the job's ceiling: SIGKILL the worker (the ladder decides what comes next).
- RSS above the emergency fraction of the ceiling: first try to grow the job in place (the
  machine has room, nobody waits); otherwise interrupt the query before the ceiling is hit.
- DuckDB's buffers near its limit and room on the machine: grow in place, before it spills
  or fails; the extra memory is given back when the job ends.
- Past the deadline plus a grace period, or stalled (no CPU and no progress for the stall
  timeout), interrupt, then kill after the grace period.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from sidecar.workers.admission import Admission, Reservation
from sidecar.workers.handle import WorkerHandle

__all__ = ["Watch", "Watchdog", "INTERVAL_S", "GRACE_S", "ALERT_REASON"]

log = logging.getLogger(__name__)

INTERVAL_S = 0.02
GRACE_S = 3.0
GROW_AT_BUFFER_FRACTION = 0.90
ALERT_REASON = "alert:"
"""An interrupt reason `alert:<rule>:<sentence>` comes from a monitor alert's `kill_queries`; the
job's error carries the sentence and names the rule (sidecar.workers.supervisor maps it)."""


@dataclass
class Watch:
    handle: WorkerHandle
    job: int
    reservation: Reservation
    duckdb_limit_for: Callable[[int], int]
    emergency_fraction: float
    deadline: float | None
    stall_s: float | None
    growable: bool
    interrupted_for: str | None = None
    interrupted_at: float | None = None
    buffer_bytes: int = 0
    spill_bytes: int = 0
    """DuckDB's temporary files, from the worker's last sample (the monitor reports it)."""
    query: str = ""
    started: float = field(default_factory=time.monotonic)
    grown: list[int] = field(default_factory=list)
    last_cpu: float = -1.0
    last_active: float = field(default_factory=time.monotonic)


class Watchdog:
    def __init__(self, admission: Admission) -> None:
        self.admission = admission
        self._watches: dict[int, Watch] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="watchdog", daemon=True)
        self._thread.start()

    def watch(self, watch: Watch) -> None:
        with self._lock:
            self._watches[watch.job] = watch

    def watches(self) -> list[Watch]:
        """The attempts running now (what the monitor samples)."""
        with self._lock:
            return list(self._watches.values())

    def unwatch(self, job: int) -> Watch | None:
        with self._lock:
            return self._watches.pop(job, None)

    def interrupt(self, job: int, reason: str) -> bool:
        """Interrupt a running attempt from outside (a monitor alert); killed after the grace
        period if it does not stop. False when the job is not running or already interrupted."""
        with self._lock:
            watch = self._watches.get(job)
        if watch is None or watch.interrupted_for is not None or not watch.handle.alive:
            return False
        self._interrupt(watch, reason, time.monotonic())
        return True

    def _loop(self) -> None:
        while not self._stopped.wait(INTERVAL_S):
            with self._lock:
                watches = list(self._watches.values())
            now = time.monotonic()
            for watch in watches:
                try:
                    self._check(watch, now)
                except Exception:  # the watchdog must keep watching the others
                    log.exception("watchdog check failed for job %d", watch.job)

    def _check(self, w: Watch, now: float) -> None:
        handle = w.handle
        if not handle.alive:
            return
        rss = handle.rss()
        ceiling = w.reservation.bytes
        if rss > ceiling:
            log.warning(
                "job %d: worker %d RSS %d above its ceiling %d; killing it", w.job, handle.pid, rss, ceiling
            )
            handle.kill("memory_ceiling")
            return
        if w.growable and (
            rss > w.emergency_fraction * ceiling
            or w.buffer_bytes > GROW_AT_BUFFER_FRACTION * w.duckdb_limit_for(ceiling)
        ):
            if self._grow(w, ceiling):
                return
        if rss > w.emergency_fraction * ceiling and w.interrupted_for is None:
            log.warning(
                "job %d: RSS %d at %.0f%% of its ceiling; interrupting", w.job, rss, 100 * rss / ceiling
            )
            self._interrupt(w, "memory_emergency", now)
        if w.deadline is not None and now > w.deadline + GRACE_S and w.interrupted_for is None:
            self._interrupt(w, "timeout", now)
        if w.stall_s is not None:
            cpu = handle.cpu_seconds()
            if cpu > w.last_cpu + 0.01:
                w.last_cpu, w.last_active = cpu, now
            elif now - w.last_active > w.stall_s and w.interrupted_for is None:
                log.warning("job %d: no CPU for %.1f s; treating it as hung", w.job, now - w.last_active)
                self._interrupt(w, "stalled", now)
        if w.interrupted_at is not None and now - w.interrupted_at > GRACE_S:
            log.warning(
                "job %d: worker %d did not stop within %.0f s of an interrupt; killing it",
                w.job,
                handle.pid,
                GRACE_S,
            )
            handle.kill(w.interrupted_for or "unresponsive")
            w.interrupted_at = None

    def _grow(self, w: Watch, ceiling: int) -> bool:
        grown = self.admission.grow(w.reservation, min(w.reservation.most, ceiling * 2))
        if grown <= ceiling:
            return False
        log.info("job %d: growing its ceiling in place from %d to %d", w.job, ceiling, grown)
        w.grown.append(grown)
        w.handle.set_memory_limit(w.duckdb_limit_for(grown))
        return True

    def _interrupt(self, w: Watch, reason: str, now: float) -> None:
        w.interrupted_for, w.interrupted_at = reason, now
        w.handle.interrupt(w.job, reason)

    def close(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=2)
