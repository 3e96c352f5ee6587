"""The supervised engine: every job runs in a worker process under a memory ceiling.

The methods call this engine exactly as they called the in-process one. For each job it
asks admission control for a ceiling, hands the job to a worker, lets the watchdog enforce
the ceiling, and, when an attempt fails for want of memory or because its worker died,
asks the retry ladder what to try next. Every attempt is recorded in `stats.attempts`.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path
from typing import Any

import msgspec

from sidecar.config import Settings
from sidecar.config.settings import duckdb_limit_for
from sidecar.engine.database import EngineSettings
from sidecar.engine.executor import WRAPPABLE
from sidecar.jobs.types import Attempt, QueryResult, QueryStats, QuerySpec
from sidecar.engine.monitor import Sample
from sidecar.engine.outputs import pid_alive, remove_orphaned_outputs
from sidecar.errors import ERROR_CLASSES, InternalError, OutOfMemory, SidecarError, Timeout, WorkerCrashed
from sidecar.partition import Plan, plan_partitioned
from sidecar.units import format_size
from sidecar.workers.admission import Admission, Reservation
from sidecar.workers.estimate import Estimate, estimate
from sidecar.workers.handle import JobOutcome, WorkerDied, WorkerHandle
from sidecar.workers.jobdirs import job_directory, read_record
from sidecar.workers.ladder import MEMORY_FAILURES, Failure, JobState, RetryLadder
from sidecar.workers.partitioned import SCHEMA_PREFIX
from sidecar.workers.pool import WorkerPool
from sidecar.workers.protocol import AnalyzeSpec, Run
from sidecar.workers.shape import holistic, shape_of
from sidecar.workers.split import SplitRun, can_split, run_split
from sidecar.workers.watchdog import Watch, Watchdog

__all__ = ["Attempt", "SupervisedEngine"]

log = logging.getLogger(__name__)

_BY_CODE = {cls.code: cls for cls in ERROR_CLASSES}
OOM_KILL_HINT_FRACTION = 0.5
PROBE_ROWS = 100_000
"""Rows a look before the query may return: DESCRIBE of a wide query has a row per column."""


class SupervisedEngine:
    def __init__(self, settings: Settings, env: Mapping[str, str]) -> None:
        self.settings = settings
        self.admission = Admission(settings.machine_budget_bytes, settings.max_concurrent_jobs)
        self.ladder = RetryLadder()
        self.pool = WorkerPool(env, self._after_death)
        self.watchdog = Watchdog(self.admission)
        Path(settings.state_directory).mkdir(parents=True, exist_ok=True)
        self.default_database = str(Path(settings.state_directory) / f"default-{os.getpid()}.duckdb")
        self._jobs = itertools.count(1)
        self.pool.prewarm()

    def retune(self, settings: Settings) -> None:
        self.settings = settings
        self.admission.configure(settings.machine_budget_bytes, settings.max_concurrent_jobs)

    # -- the methods' entry points -------------------------------------------------------

    def run_query(
        self,
        spec: QuerySpec,
        settings: Settings,
        call: Any,
        on_sample: Callable[[Sample], None] | None,
        parts: int | None = None,
    ) -> QueryResult:
        database = spec.database if spec.database not in (None, "", ":memory:") else self.default_database
        spec = msgspec.structs.replace(spec, database=database)
        # -- split execution (sidecar.workers.split) --------------------------
        if parts:
            result, attempt = run_split(SplitRun(self, spec, settings, call, on_sample, database), parts)
            return self._finish(result, [attempt])
        # ------------------------------------------------------------------------------------
        shape = shape_of(spec.sql)
        # Safe to repeat: reads, atomic outputs, and writes that run in one transaction (a failed or
        # killed attempt leaves the database as it was).
        # COPY may write a file outside the database, which no transaction can take back.
        idempotent = shape.read_only or (
            bool(shape.statement_types) and set(shape.statement_types) <= WRAPPABLE - {"COPY"}
        )
        estimated = shape.statement_types == ("SELECT",) and parts is None  # parts 0: the caller said no
        guess = self._estimate(spec, settings, call, database) if estimated else None
        if guess is not None and guess.parts > 0 and spec.job_id is not None:
            # a named job resumes with the parts it was started with, whatever the estimate says now
            guess = msgspec.structs.replace(
                guess, parts=self._recorded_parts(spec, settings, call, database) or guess.parts
            )
        if guess is not None and guess.parts > 0:
            log.info("job %s: split up front into %d parts (%s)", call.id, guess.parts, guess.basis)
        return _with_estimate(
            self._run(
                "query",
                spec,
                settings,
                call,
                on_sample,
                database,
                idempotent=idempotent,
                exports=spec.output is not None,
                holistic=lambda: shape.holistic,
                splittable=lambda: shape.statement_types == ("SELECT",) and can_split(spec.sql),
                parts=guess.parts if guess is not None else 0,
            ),
            guess,
        )

    def _probe(
        self, spec: QuerySpec, settings: Settings, call: Any, database: str, sql: str, params: Any = None
    ) -> list[list[Any]]:
        """The rows of one small read-only look (EXPLAIN, DESCRIBE, a sample) taken before the query
        runs, as a supervised job on its database; no progress, and never the query's `output`."""
        sub = msgspec.structs.replace(
            spec, sql=sql, params=params, output=None, max_rows=PROBE_ROWS, job_id=None
        )
        result = self._run(
            "query",
            sub,
            settings,
            call,
            None,
            database,
            idempotent=True,
            exports=False,
            holistic=lambda: False,
        )
        return result.rows

    def _recorded_parts(self, spec: QuerySpec, settings: Settings, call: Any, database: str) -> int | None:
        """The number of parts a named job's kept parts were made for (its job directory's record, or
        its scratch schema's plan); None when it kept nothing."""
        record = read_record(job_directory(settings.state_directory, spec.job_id or ""))
        if record is not None:
            return record.key.parts
        try:
            rows = self._probe(
                spec, settings, call, database, f'SELECT plan FROM "{SCHEMA_PREFIX}{spec.job_id}".__plan'
            )
        except SidecarError:
            return None  # no such schema: the job kept nothing
        try:
            return len(Plan.from_json(rows[0][0]).parts) if rows else None
        except msgspec.DecodeError:  # not a plan this version wrote: the run itself will refuse the job_id
            return None

    def _estimate(self, spec: QuerySpec, settings: Settings, call: Any, database: str) -> Estimate | None:
        """How many parts a splittable SELECT needs before it runs (sidecar.workers.estimate); None
        for a query the planner cannot split, or when the looks themselves fail (it then runs whole)."""
        plan: Plan | None
        try:
            plan = plan_partitioned(spec.sql, 2)
        except SidecarError as refused:
            # a global quantile query (refused as a global aggregate) is split by exact passes instead
            if refused.details.get("shape") != "global_aggregate" or not can_split(spec.sql):
                return None
            plan = None

        def probe(sql: str, params: Any) -> list[list[Any]]:
            return self._probe(spec, settings, call, database, sql, params)

        try:
            limit = duckdb_limit_for(_most(settings))
            return estimate(probe, plan, holistic(spec.sql), spec.sql, spec.params, limit, settings.threads)
        except SidecarError as error:
            if call.cancel_event.is_set():
                raise
            log.info("job %s: no estimate (%s: %s); running it whole", call.id, error.code, error)
            return None

    def analyze(
        self, spec: AnalyzeSpec, settings: Settings, call: Any, on_sample: Callable[[Sample], None] | None
    ) -> Any:
        return self._run(
            "analyze",
            spec,
            settings,
            call,
            on_sample,
            None,
            idempotent=True,
            exports=False,
            holistic=lambda: False,
        )

    # -- one job, attempt by attempt -----------------------------------------------------

    def _run(
        self,
        kind: str,
        spec: Any,
        settings: Settings,
        call: Any,
        on_sample: Callable[[Sample], None] | None,
        database: str | None,
        *,
        idempotent: bool,
        exports: bool,
        holistic: Callable[[], bool],
        splittable: Callable[[], bool] = lambda: False,
        parts: int = 0,
    ) -> Any:
        explicit = _explicit_budget(settings)
        most = _most(settings)
        start = (
            settings.memory_budget_bytes
            if explicit
            else min(settings.memory_budget_bytes, self.admission.share())
        )
        state = JobState(
            ceiling=start,
            most=most,
            threads=settings.threads,
            preserve_insertion_order=settings.preserve_insertion_order,
            idempotent=idempotent,
            exports=exports,
            holistic=False,
            duckdb_limit=duckdb_limit_for(start),
        )
        attempts: list[Attempt] = []
        tried: tuple[str, ...] = ()
        rung = "first"
        if parts > 0:  # split up front (sidecar.workers.estimate): the first attempt is the partition rung's
            state, tried, rung = replace(state, parts=parts, splittable=True), ("partition",), "partition"
        while True:
            if state.parts > 0 and kind == "query":
                return self._split(spec, settings, call, on_sample, database, state, tried, attempts, rung)
            outcome, attempt, failure = self._attempt(
                kind, spec, settings, state, call, on_sample, database, rung, len(attempts) + 1
            )
            attempts.append(attempt)
            if outcome is not None:
                return self._finish(outcome, attempts)
            if failure[0] is not None and failure[0].code in MEMORY_FAILURES and not state.holistic:
                state = replace(state, holistic=holistic(), splittable=splittable())  # parsed only now
            step = self.ladder.next(failure[0], state, tried) if failure[0] is not None else None
            if step is None:
                raise self._final_error(failure[1], failure[0], state, attempts)
            next_rung, state = step
            state = replace(state, duckdb_limit=duckdb_limit_for(state.ceiling))
            tried += (next_rung.name,)
            rung = next_rung.name
            log.info("job %s: retrying with rung %r (%s)", call.id, rung, next_rung.why)
            if on_sample is not None:
                on_sample(Sample("retrying", None, 0, 0, 0, 0))

    def _split(
        self,
        spec: Any,
        settings: Settings,
        call: Any,
        on_sample: Callable[[Sample], None] | None,
        database: str | None,
        state: JobState,
        tried: tuple[str, ...],
        attempts: list[Attempt],
        rung: str,
    ) -> Any:
        """Run the query split in `state.parts` parts; after a memory failure, with more parts while
        the partition rung still applies (each part is already re-split when it alone runs out)."""
        while True:
            try:
                request = SplitRun(
                    self,
                    spec,
                    settings,
                    call,
                    on_sample,
                    database or self.default_database,
                    len(attempts) + 1,
                    rung,
                )
                result, attempt = run_split(request, state.parts)
            except SidecarError as error:
                if error.code not in MEMORY_FAILURES:
                    raise
                failed = Failure(error.code)
                attempts.append(
                    Attempt(
                        len(attempts) + 1,
                        rung,
                        state.ceiling,
                        state.duckdb_limit,
                        state.threads,
                        error.code,
                        0,
                        0,
                    )
                )
                again = [
                    r for r in self.ladder.rungs if r.name == "partition" and r.applies(failed, state, tried)
                ]
                if spec.job_id is not None:  # its kept parts belong to this number of parts: do not change it
                    final = self._final_error(error, failed, state, attempts)
                    final.hint = (final.hint or "") + (
                        f" The job's finished parts are kept: re-send the request to resume them, or `jobs.cancel` "
                        f"'{spec.job_id}' and ask for more than {state.parts} parts with `partition: {{parts: N}}`."
                    )
                    raise final from None
                if not again or len(attempts) >= self.ladder.max_attempts:
                    raise self._final_error(error, failed, state, attempts) from None
                state, tried, rung = again[0].adjust(failed, state), (*tried, "partition"), "partition"
                log.info("job %s: the split ran out of memory; trying %d parts", call.id, state.parts)
                continue
            return self._finish(result, [*attempts, attempt])

    def _attempt(
        self,
        kind: str,
        spec: Any,
        settings: Settings,
        state: JobState,
        call: Any,
        on_sample: Callable[[Sample], None] | None,
        database: str | None,
        rung: str,
        number: int,
    ) -> tuple[Any, Attempt, tuple[Failure | None, SidecarError | None]]:
        started = time.monotonic()
        finals: list[Sample] = []

        def queued() -> None:
            if on_sample is not None:
                on_sample(Sample("queued", None, 0, 0, 0, 0))

        # The database's turn first, then memory: a job waiting for its database holds no share of
        # the machine budget, so it never keeps jobs on other databases queued.
        lock = self.pool.database_lock(database) if database is not None else None
        if lock is not None and not lock.acquire(cancelled=call.cancel_event.is_set, on_wait=queued):
            raise call.cancelled_error()
        reservation = self.admission.admit(
            state.ceiling, state.most, cancelled=call.cancel_event.is_set, on_wait=queued
        )
        if reservation is None:
            if lock is not None:
                lock.release()
            raise call.cancelled_error()
        handle: WorkerHandle | None = None
        watch: Watch | None = None
        try:
            handle = self.pool.acquire(database)
            job = next(self._jobs)
            engine_settings = self._engine_settings(settings, state, reservation)
            run = Run(
                job=job,
                kind=kind,
                settings=engine_settings,
                progress=True,  # type: ignore[arg-type]
                query=spec if kind == "query" else None,
                analyze=spec if kind == "analyze" else None,
            )
            watch = Watch(
                handle,
                job,
                reservation,
                duckdb_limit_for,
                settings.thresholds.duckdb_memory_emergency,
                deadline=None if not _timeout(spec) else time.monotonic() + _timeout(spec) / 1000,
                stall_s=settings.stall_timeout_ms / 1000 if settings.stall_timeout_ms else None,
                growable=reservation.bytes < reservation.most and state.idempotent,
            )

            def relay(sample: Sample) -> None:
                watch.buffer_bytes = sample.buffer_bytes  # type: ignore[union-attr]
                if sample.phase == "done":  # only the job's last attempt ends it (see _run)
                    finals[:] = [sample]
                elif on_sample is not None:
                    on_sample(sample)

            future: Future[JobOutcome] = handle.start(run, relay)
            self.watchdog.watch(watch)
            unregister = call.on_cancel(lambda: self._cancel(watch, call))
            try:
                outcome_or_error = _wait(future)
            finally:
                unregister()
                self.watchdog.unwatch(job)
            elapsed = int((time.monotonic() - started) * 1000)
            grown = max(watch.grown) if watch.grown else None
            attempt = Attempt(
                number,
                rung,
                state.ceiling if grown is None else min(state.ceiling, grown),
                duckdb_limit_for(grown) if grown is not None else engine_settings.memory_limit_bytes,
                state.threads,
                "ok",
                elapsed,
                handle.peak_rss,
                grown,
            )
            if isinstance(outcome_or_error, JobOutcome) and outcome_or_error.error is None:
                if on_sample is not None and finals:
                    on_sample(finals[0])
                result = outcome_or_error.result
                return (msgspec.convert(result, QueryResult) if kind == "query" else result), attempt, (None, None)
            failure, error = self._classify(outcome_or_error, watch, call, reservation)
            return (
                None,
                msgspec.structs.replace(attempt, outcome=failure.code if failure else error.code),
                (failure, error),
            )
        finally:
            self.admission.release(reservation)
            if handle is not None:
                self.pool.release(handle)
            if lock is not None:
                lock.release()

    def _cancel(self, watch: Watch, call: Any) -> None:
        watch.interrupted_for = call.cancel_reason or "cancelled"
        watch.interrupted_at = time.monotonic()
        watch.handle.interrupt(watch.job, watch.interrupted_for)

    def _engine_settings(
        self, settings: Settings, state: JobState, reservation: Reservation
    ) -> EngineSettings:
        spill_cap = settings.max_temp_directory_size_bytes
        if settings.sources.get("max_temp_directory_size_bytes", "auto").startswith("auto"):
            # the disk's spill allowance is shared: each of the jobs that may run at once gets its part
            spill_cap //= max(1, settings.max_concurrent_jobs)
        return EngineSettings(
            memory_limit_bytes=duckdb_limit_for(reservation.bytes),
            threads=state.threads,
            temp_directory=settings.temp_directory,
            max_temp_directory_size_bytes=spill_cap,
            preserve_insertion_order=state.preserve_insertion_order,
            allowed_directories=tuple(settings.allowed_directories),
            state_directory=settings.state_directory,
        )

    def _classify(
        self, outcome: JobOutcome | WorkerDied, watch: Watch, call: Any, reservation: Reservation
    ) -> tuple[Failure | None, SidecarError]:
        room = max(0, self.admission.machine_budget - self.admission.reserved)
        if isinstance(outcome, WorkerDied):
            why = outcome.killed_for
            if why == "memory_emergency":  # interrupted near the ceiling, did not stop, was killed
                return Failure("MEMORY_EMERGENCY", room), OutOfMemory(
                    f"the job neared its memory ceiling of {format_size(reservation.bytes)}, did not stop when "
                    "interrupted, and its worker was stopped",
                    details={"ceiling_bytes": reservation.bytes, "peak_rss_bytes": outcome.peak_rss},
                )
            if why == "memory_ceiling":
                return Failure("MEMORY_CEILING", room), OutOfMemory(
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
            return Failure("WORKER_CRASHED", room), WorkerCrashed(
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
            return Failure("MEMORY_EMERGENCY", room), OutOfMemory(
                f"the job neared its memory ceiling of {format_size(reservation.bytes)} and was interrupted",
                details={"ceiling_bytes": reservation.bytes},
            )
        if failed.code == "CANCELLED" and watch.interrupted_for == "stalled":
            return None, Timeout(
                "the job made no progress and used no CPU for the stall timeout; it was stopped"
            )
        if failed.code == "OUT_OF_MEMORY":
            return Failure("OUT_OF_MEMORY", room), error
        return None, error

    def _finish(self, result: Any, attempts: list[Attempt]) -> Any:
        """A query's result with every attempt in `stats.attempts` (an analysis is returned as it came)."""
        if not isinstance(result, QueryResult):
            return result
        stats = msgspec.structs.replace(
            result.stats,
            peak_rss_bytes=max(result.stats.peak_rss_bytes, attempts[-1].peak_rss_bytes),
            attempts=list(attempts),
        )
        return msgspec.structs.replace(result, stats=stats)

    def _final_error(
        self, error: SidecarError | None, failure: Failure | None, state: JobState, attempts: list[Attempt]
    ) -> SidecarError:
        if error is None:
            error = InternalError("the job failed without an error")
        if failure is not None or len(attempts) > 1:  # what the supervisor tried, when it tried anything
            error.details["attempts"] = msgspec.to_builtins(attempts)
        if failure is not None and failure.code in MEMORY_FAILURES:
            tried = ", ".join(a.rung for a in attempts)
            advice = self.ladder.advice(failure, state)
            error.hint = f"Tried: {tried}. {advice[:1].upper()}{advice[1:]}"
        return error

    # -- housekeeping --------------------------------------------------------------------

    def _after_death(self, handle: WorkerHandle) -> None:
        """A worker died: its spill directory and half-written outputs go (its database stays)."""
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
        for leftover in Path(self.default_database).parent.glob(Path(self.default_database).name + "*"):
            leftover.unlink(missing_ok=True)


def _timeout(spec: Any) -> int | None:
    return getattr(spec, "timeout_ms", None) or None


def _wait(future: Future[JobOutcome]) -> JobOutcome | WorkerDied:
    try:
        return future.result()
    except WorkerDied as died:
        return died


def _explicit_budget(settings: Settings) -> bool:
    """Whether the job's memory budget was set (request, env, overrides, profile): then it is a hard ceiling."""
    return not settings.sources.get("memory_budget_bytes", "auto").startswith("auto")


def _most(settings: Settings) -> int:
    """The most a job may ever get: its own budget when set, or the machine budget (growing in place)."""
    return settings.memory_budget_bytes if _explicit_budget(settings) else settings.machine_budget_bytes


def _with_estimate(result: QueryResult, guess: Estimate | None) -> QueryResult:
    """Report the up-front estimate in `stats.estimate`, whether or not it split the query."""
    if guess is None:
        return result
    return msgspec.structs.replace(result, stats=msgspec.structs.replace(result.stats, estimate=guess))
