"""The supervisor: one attempt of one job in a worker process, under a memory ceiling.

`Supervisor.attempt` is the one entry of this package. It takes the database's turn, asks
admission control for the attempt's ceiling, hands the job to a worker, lets the watchdog
enforce the ceiling (growing it in place when allowed), and says how the attempt ended: a
result, or an error classified for whoever decides what to try next (`sidecar.jobs`). It
knows nothing of retries, splits or estimates; this package never imports job policy.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import msgspec

from sidecar.config import Settings
from sidecar.config.settings import duckdb_limit_for
from sidecar.engine.database import EngineSettings
from sidecar.engine.monitor import Sample
from sidecar.engine.outputs import pid_alive, remove_orphaned_outputs
from sidecar.errors import (
    ERROR_CLASSES, Cancelled, InternalError, OutOfMemory, SidecarError, Timeout, WorkerCrashed,
)
from sidecar.jobs.types import Attempt, QueryResult, QuerySpec
from sidecar.units import format_size
from sidecar.workers.admission import Admission, Reservation
from sidecar.workers.handle import JobOutcome, WorkerDied, WorkerHandle
from sidecar.workers.pool import WorkerPool
from sidecar.workers.protocol import AnalyzeSpec, Run
from sidecar.workers.watchdog import ALERT_REASON, Watch, Watchdog

__all__ = ["OOM_KILL_HINT_FRACTION", "Job", "Limits", "Outcome", "Supervisor"]

log = logging.getLogger(__name__)

_BY_CODE = {cls.code: cls for cls in ERROR_CLASSES}
OOM_KILL_HINT_FRACTION = 0.5


@dataclass(frozen=True)
class Job:
    """What one attempt runs, where, and under which request settings."""

    kind: Literal["query", "analyze"]
    spec: QuerySpec | AnalyzeSpec
    database: str | None
    """The database whose worker runs it (one job at a time per database); None: any free worker."""
    settings: Settings
    number: int = 1
    """The attempt's number within its request (recorded in its `Attempt`)."""
    rung: str = "first"
    """Why this attempt runs: "first", or the retry ladder's rung (recorded in its `Attempt`)."""


@dataclass(frozen=True)
class Limits:
    """The memory and threads one attempt runs with."""

    ceiling: int
    """The worker's memory ceiling at the start (bytes)."""
    most: int
    """The most the watchdog may grow it to in place."""
    threads: int
    preserve_insertion_order: bool
    growable: bool
    """Whether the watchdog may grow the ceiling in place (only for work that is safe to repeat)."""
    duckdb_share: float = 1.0
    """The part of `duckdb_limit_for(ceiling)` DuckDB gets (the ladder's `smaller_limit` rung)."""


@dataclass(frozen=True)
class Outcome:
    """How one attempt ended: a result, or an error and, for a memory failure or a crash, its code."""

    attempt: Attempt
    result: Any = None
    """A `QueryResult` for a query, the analysis for an analyze; None when the attempt failed."""
    error: SidecarError | None = None
    failure: str | None = None
    """MEMORY_CEILING, MEMORY_EMERGENCY, OUT_OF_MEMORY or WORKER_CRASHED: a failure a retry may
    rescue; None for one no retry can help (a SQL error, a timeout, a cancel)."""
    machine_room: int = 0
    """Bytes the machine budget could still give the job when it failed."""

    @property
    def ok(self) -> bool:
        return self.error is None


class Supervisor:
    """Worker processes, admission control and the watchdog, behind `attempt`."""

    def __init__(self, settings: Settings, env: Mapping[str, str]) -> None:
        self.settings = settings
        self.admission = Admission(settings.machine_budget_bytes, settings.max_concurrent_jobs)
        self.pool = WorkerPool(env, self._after_death, log_level=settings.log_level)
        self.watchdog = Watchdog(self.admission)
        self._jobs = itertools.count(1)
        self._workers: dict[Any, int] = {}
        self._workers_lock = threading.Lock()
        self.attempt_listeners: list[Callable[[Attempt], None]] = []
        """Told of every attempt as it ends (the monitor's Prometheus counters)."""
        self.worker_deaths = 0
        self.pool.prewarm()

    def retune(self, settings: Settings) -> None:
        self.settings = settings
        self.admission.configure(settings.machine_budget_bytes, settings.max_concurrent_jobs)
        self.pool.set_log_level(settings.log_level)

    def worker_pid(self, call: Any) -> int | None:
        """The pid of the worker running a step of request `call` right now (None between steps).
        Keyed by the call itself, not its id: a daemon's clients each number their requests from 1."""
        with self._workers_lock:
            return self._workers.get(id(call))

    def attempt(
        self, job: Job, limits: Limits, call: Any, on_sample: Callable[[Sample], None] | None
    ) -> Outcome:
        """Run one attempt; the worker's 'done' sample reaches `on_sample` only when it succeeded."""
        started = time.monotonic()
        finals: list[Sample] = []

        def queued() -> None:
            if on_sample is not None:
                on_sample(Sample("queued", None, 0, 0, 0, 0))

        # The database's turn first, then memory: a job waiting for its database holds no share of
        # the machine budget, so it never keeps jobs on other databases queued.
        lock = self.pool.database_lock(job.database) if job.database is not None else None
        if lock is not None and not lock.acquire(cancelled=call.cancel_event.is_set, on_wait=queued):
            raise call.cancelled_error()
        reservation = self.admission.admit(
            limits.ceiling, limits.most, cancelled=call.cancel_event.is_set, on_wait=queued
        )
        if reservation is None:
            if lock is not None:
                lock.release()
            raise call.cancelled_error()
        handle: WorkerHandle | None = None
        try:
            handle = self.pool.acquire(job.database)
            number = next(self._jobs)
            limit_for = functools.partial(duckdb_limit_for, share=limits.duckdb_share)
            engine_settings = self._engine_settings(job.settings, limits, reservation, limit_for)
            run = Run(
                job=number,
                kind=job.kind,
                settings=engine_settings,
                # the worker sends its final sample only when someone takes it: one frame less a job
                progress=on_sample is not None,
                query=job.spec if isinstance(job.spec, QuerySpec) else None,
                analyze=job.spec if isinstance(job.spec, AnalyzeSpec) else None,
            )
            timeout = job.spec.timeout_ms or None
            watch = Watch(
                handle,
                number,
                reservation,
                limit_for,
                job.settings.thresholds.duckdb_memory_emergency,
                deadline=None if not timeout else time.monotonic() + timeout / 1000,
                stall_s=job.settings.stall_timeout_ms / 1000 if job.settings.stall_timeout_ms else None,
                growable=reservation.bytes < reservation.most and limits.growable,
                query=job.spec.sql if isinstance(job.spec, QuerySpec) else "",
            )

            def relay(sample: Sample) -> None:
                watch.buffer_bytes, watch.spill_bytes = sample.buffer_bytes, sample.spill_bytes
                if sample.phase == "done":  # only the request's last attempt ends it
                    finals[:] = [sample]
                elif on_sample is not None:
                    on_sample(sample)

            handle.start(run)
            self.watchdog.watch(watch)
            unregister = call.on_cancel(lambda: self._cancel(watch, call))
            with self._workers_lock:
                self._workers[id(call)] = handle.pid
            try:
                outcome_or_error = _wait(handle, number, relay)
            finally:
                with self._workers_lock:
                    self._workers.pop(id(call), None)
                unregister()
                self.watchdog.unwatch(number)
            grown = max(watch.grown) if watch.grown else None
            attempt = Attempt(
                job.number,
                job.rung,
                limits.ceiling if grown is None else min(limits.ceiling, grown),
                limit_for(grown) if grown is not None else engine_settings.memory_limit_bytes,
                limits.threads,
                "ok",
                int((time.monotonic() - started) * 1000),
                handle.peak_rss,
                grown,
            )
            if isinstance(outcome_or_error, JobOutcome) and outcome_or_error.error is None:
                if on_sample is not None and finals:
                    on_sample(finals[0])
                result = outcome_or_error.result
                self._tell(attempt)
                return Outcome(attempt, msgspec.convert(result, QueryResult) if job.kind == "query" else result)
            failure, error = self._classify(outcome_or_error, watch, call, reservation)
            room = max(0, self.admission.machine_budget - self.admission.reserved)
            attempt = msgspec.structs.replace(attempt, outcome=failure or error.code)
            self._tell(attempt)
            return Outcome(attempt, None, error, failure, room)
        finally:
            self.admission.release(reservation)
            if handle is not None:
                self.pool.release(handle)
            if lock is not None:
                lock.release()

    def _tell(self, attempt: Attempt) -> None:
        for listener in list(self.attempt_listeners):
            try:
                listener(attempt)
            except Exception:  # a listener's failure must not fail the job; report it
                log.warning("an attempt listener failed", exc_info=True)

    def _cancel(self, watch: Watch, call: Any) -> None:
        watch.interrupted_for = call.cancel_reason or "cancelled"
        watch.interrupted_at = time.monotonic()
        watch.handle.interrupt(watch.job, watch.interrupted_for)

    def _engine_settings(
        self, settings: Settings, limits: Limits, reservation: Reservation, limit_for: Callable[[int], int]
    ) -> EngineSettings:
        spill_cap = settings.max_temp_directory_size_bytes
        if settings.sources.get("max_temp_directory_size_bytes", "auto").startswith("auto"):
            # the disk's spill allowance is shared: each of the jobs that may run at once gets its part
            spill_cap //= max(1, settings.max_concurrent_jobs)
        return EngineSettings(
            memory_limit_bytes=limit_for(reservation.bytes),
            threads=limits.threads,
            temp_directory=settings.temp_directory,
            max_temp_directory_size_bytes=spill_cap,
            preserve_insertion_order=limits.preserve_insertion_order,
            allowed_directories=tuple(settings.allowed_directories),
            state_directory=settings.state_directory,
            checkpoint_threshold_bytes=settings.checkpoint_threshold_bytes,
        )

    def _classify(
        self, outcome: JobOutcome | WorkerDied, watch: Watch, call: Any, reservation: Reservation
    ) -> tuple[str | None, SidecarError]:
        """The failure code a retry may rescue (or None), and the error the user sees if nothing does."""
        if watch.interrupted_for is not None and watch.interrupted_for.startswith(ALERT_REASON):
            rule, _, sentence = watch.interrupted_for[len(ALERT_REASON):].partition(":")
            return None, Cancelled(
                f"stopped by the monitor: {sentence}",
                hint="The alert's remediation_actions include kill_queries (data/resource-thresholds-config.yaml); "
                "give the job less to hold (a split, a file output), or remove kill_queries there.",
                details={"stopped_by": "monitor", "rule": rule},
            )
        if isinstance(outcome, WorkerDied):
            why = outcome.killed_for
            if why == "memory_emergency":  # interrupted near the ceiling, did not stop, was killed
                return "MEMORY_EMERGENCY", OutOfMemory(
                    f"the job neared its memory ceiling of {format_size(reservation.bytes)}, did not stop when "
                    "interrupted, and its worker was stopped",
                    details={"ceiling_bytes": reservation.bytes, "peak_rss_bytes": outcome.peak_rss},
                )
            if why == "memory_ceiling":
                return "MEMORY_CEILING", OutOfMemory(
                    f"the job went over its memory ceiling of {format_size(reservation.bytes)} and its worker was stopped",
                    details={"ceiling_bytes": reservation.bytes, "peak_rss_bytes": outcome.peak_rss},
                )
            if why in ("timeout", "stalled"):
                seen: dict[str, Any] = {"reason": why, "peak_rss_bytes": outcome.peak_rss}
                if watch.stall_s is not None:
                    seen["cpu_seconds"] = round(max(0.0, watch.last_cpu), 2)
                    seen["seconds_without_cpu"] = round(time.monotonic() - watch.last_active, 1)
                return None, Timeout(
                    f"the job {'stalled' if why == 'stalled' else 'ran past its timeout'} and did not "
                    f"stop when interrupted; its worker was killed",
                    details=seen,
                )
            if why in ("cancelled", "shutdown") or call.cancel_event.is_set():
                return None, call.cancelled_error()
            likely = ""
            if (
                outcome.signal_name == "SIGKILL"
                and outcome.peak_rss >= OOM_KILL_HINT_FRACTION * reservation.bytes
            ):
                likely = " (likely killed by the OS for memory)"
            return "WORKER_CRASHED", WorkerCrashed(
                f"the worker running the job died with {outcome.signal_name or outcome.returncode}{likely}",
                details={
                    "signal": outcome.signal_name,
                    "returncode": outcome.returncode,
                    "peak_rss_bytes": outcome.peak_rss,
                },
            )
        failed = outcome.error
        if failed is None:  # a finished job reaches here only with an error
            return None, InternalError("a worker reported a failure without an error")
        error = _BY_CODE.get(failed.code, InternalError)(
            failed.message, hint=failed.hint, details=failed.details
        )
        if failed.code in ("CANCELLED", "TIMEOUT") and watch.interrupted_for == "memory_emergency":
            return "MEMORY_EMERGENCY", OutOfMemory(
                f"the job neared its memory ceiling of {format_size(reservation.bytes)} and was interrupted",
                details={"ceiling_bytes": reservation.bytes},
            )
        if failed.code == "CANCELLED" and watch.interrupted_for == "stalled":
            return None, Timeout(
                "the job made no progress and used no CPU for the stall timeout; it was stopped"
            )
        if failed.code == "OUT_OF_MEMORY":
            return "OUT_OF_MEMORY", error
        return None, error

    # -- housekeeping --------------------------------------------------------------------

    def _after_death(self, handle: WorkerHandle) -> None:
        """A worker died: its spill directory and half-written outputs go (its database stays)."""
        self.worker_deaths += 1
        freed, removed = remove_orphaned_outputs(Path(self.settings.state_directory) / "pending-outputs")
        spill = Path(self.settings.temp_directory)
        if spill.is_dir():
            for entry in spill.glob(f"*-{handle.pid}"):
                shutil.rmtree(entry, ignore_errors=True)
        log.info("worker %d died; removed %d leftover file(s), %d bytes", handle.pid, removed, freed)

    def cleanup(self, *, aggressive: bool) -> tuple[int, int]:
        """Remove what dead processes left: spill directories, temporary outputs, default databases.

        Returns (bytes freed, files removed); `aggressive` also stops idle workers, whose caches
        go with them.
        """
        settings = self.settings
        freed, removed = remove_orphaned_outputs(Path(settings.state_directory) / "pending-outputs")
        live = {h.pid for h in self.pool.all_workers() if h.alive} | {os.getpid()}
        spill = Path(settings.temp_directory)
        if spill.is_dir():
            for entry in spill.iterdir():
                pid = entry.name.rpartition("-")[2]
                if entry.is_dir() and pid.isdigit() and int(pid) not in live and not pid_alive(int(pid)):
                    files = [f for f in entry.rglob("*") if f.is_file()]
                    freed += sum(f.stat().st_size for f in files)
                    removed += len(files)
                    shutil.rmtree(entry, ignore_errors=True)
        state = Path(settings.state_directory)
        for leftover in state.glob("default-*.duckdb*"):
            pid = leftover.name.split("-", 1)[1].split(".", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
                freed += leftover.stat().st_size
                removed += 1
                leftover.unlink(missing_ok=True)
        if aggressive:
            self.pool.stop_idle()
        return freed, removed

    def close(self) -> None:
        self.watchdog.close()
        self.pool.close()


def _wait(handle: WorkerHandle, job: int, relay: Callable[[Sample], None]) -> JobOutcome | WorkerDied:
    """The job's outcome, read on this thread (WorkerHandle.wait), or how its worker died."""
    try:
        return handle.wait(job, relay)
    except WorkerDied as died:
        return died
