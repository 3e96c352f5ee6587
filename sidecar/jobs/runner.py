"""The job runner: one request, attempt by attempt, until it succeeds or nothing can help.

The methods hand it a `QuerySpec` (or an `AnalyzeSpec`); it runs the one retry loop. Each
attempt runs the job whole, as one supervised job (`sidecar.workers.supervisor`), or split, by
an executor behind `sidecar.jobs.split`; the retry ladder (`sidecar.jobs.ladder`) decides which
after every failure, and the up-front estimate (`sidecar.jobs.estimate`) or an explicit
`partition.parts` can make the first attempt a split one. Every attempt is recorded in
`stats.attempts`. The split executors run their steps back through `run_step`, whole attempts
only, so a step gets admission, the ceiling and the ladder's whole-query rungs like any job.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import msgspec

from sidecar.config import Settings
from sidecar.config.settings import duckdb_limit_for
from sidecar.engine.executor import WRAPPABLE
from sidecar.engine.guard import names_no_table
from sidecar.engine.monitor import Sample
from sidecar.engine.outputs import pid_alive
from sidecar.errors import SidecarError
from sidecar.jobs.estimate import estimate
from sidecar.jobs.executors import ParallelParts
from sidecar.jobs.hand_off import hand_off_split
from sidecar.jobs.kept import job_directory, read_record, schema_plan_sql, scratch_schema
from sidecar.jobs.ladder import MEMORY_FAILURES, Failure, JobState, RetryLadder
from sidecar.jobs.ray_executor import RayCluster, RayParts, import_ray
from sidecar.jobs.retry import Tried, climb
from sidecar.jobs.split import LocalSplit, SplitExecutor, split_refusal
from sidecar.jobs.statements import JobShape, holistic, input_bytes, shape_of
from sidecar.jobs.steps import SplitRun
from sidecar.jobs.types import Attempt, Estimate, ExecutorSpec, QueryResult, QuerySpec
from sidecar.partition import Plan
from sidecar.partition.answer import how_to_split
from sidecar.workers.protocol import AnalyzeSpec
from sidecar.workers.supervisor import Job, Limits, Supervisor

__all__ = ["JobRunner"]

log = logging.getLogger(__name__)

SMALL_INPUT_FACTOR = 64
"""A SELECT reading only files whose bytes on disk, times this, stay under DuckDB's limit gets no
up-front estimate: Parquet decompresses 2-10x and a hash table adds a few times more."""

PROBE_ROWS = 100_000
"""Rows a look before the query may return: DESCRIBE of a wide query has a row per column."""

Listener = Callable[[Sample], None] | None


class JobRunner:
    """Runs the methods' jobs on the supervisor's workers, with the retry ladder and the split executors."""

    def __init__(self, settings: Settings, env: Mapping[str, str]) -> None:
        self.settings = settings
        self.ladder = RetryLadder()
        self.supervisor = Supervisor(settings, env)
        self.split: SplitExecutor = LocalSplit(ParallelParts())
        """What runs a split attempt: parts that only read files at once on free workers, others one
        after another (another SplitExecutor may replace it)."""
        self.ray = RayCluster()
        """The connection to Ray, made when a request first asks for `executor: {kind: ray}`."""
        Path(settings.state_directory).mkdir(parents=True, exist_ok=True)
        self.default_database = str(Path(settings.state_directory) / f"default-{os.getpid()}.duckdb")

    def retune(self, settings: Settings) -> None:
        self.settings = settings
        self.supervisor.retune(settings)

    # -- the methods' entry points -------------------------------------------------------

    def run_query(
        self,
        spec: QuerySpec,
        settings: Settings,
        call: Any,
        on_sample: Listener,
        parts: int | None = None,
        executor: ExecutorSpec | None = None,
    ) -> QueryResult:
        """Run a query; `parts` >= 2 splits it from the first attempt, 0 skips the up-front estimate;
        `executor` says where a split run's parts run (default: this machine's workers)."""
        split = self._split_for(executor)
        database = spec.database if spec.database not in (None, "", ":memory:") else self.default_database
        output = spec.output
        if output is not None and output.format == "parquet" and output.compression is None:
            output = msgspec.structs.replace(output, compression=settings.output_compression)
        spec = msgspec.structs.replace(spec, database=database, output=output)
        cheap = names_no_table(spec.sql)  # one SELECT naming no table: nothing to parse, split or estimate
        shape = JobShape(spec.sql, True, ("SELECT",)) if cheap else shape_of(spec.sql)
        # Safe to repeat: reads, atomic outputs, and writes that run in one transaction (a failed or
        # killed attempt leaves the database as it was).
        # COPY may write a file outside the database, which no transaction can take back.
        idempotent = shape.read_only or (
            bool(shape.statement_types) and set(shape.statement_types) <= WRAPPABLE - {"COPY"}
        )
        guess: Estimate | None = None
        # parts 0: the caller said no; a SELECT that names no table has nothing to split (the planner
        # answers CannotSplit for every one: tests/test_guard_cheap.py), so it skips the planner's parse
        if parts is None and shape.statement_types == ("SELECT",) and not cheap:
            guess = self._estimate(spec, settings, call, database, shape)
        if guess is not None and guess.parts > 0 and spec.job_id is not None:
            # a named job resumes with the parts it was started with, whatever the estimate says now
            guess = msgspec.structs.replace(
                guess, parts=self._recorded_parts(spec, settings, call, database) or guess.parts
            )
        if guess is not None and guess.parts > 0:
            log.info("job %s: split up front into %d parts (%s)", call.id, guess.parts, guess.basis)
        up_front = parts if parts else guess.parts if guess is not None else 0
        if executor is None:  # the request named none and the config's is local: the hand-off rule may apply
            split = hand_off_split(settings, guess.bytes if guess is not None else None, self.split, self.ray)
        result = self._run(
            "query",
            spec,
            settings,
            call,
            on_sample,
            database,
            idempotent=idempotent,
            holistic=lambda: shape.holistic,
            refusal=lambda: (
                split_refusal(spec.sql)
                if shape.statement_types == ("SELECT",)
                else f"only one read-only SELECT splits, not {' + '.join(shape.statement_types) or 'this'}"
            ),
            parts=up_front,
            split=split,
        )
        if guess is None:
            return result
        return msgspec.structs.replace(result, stats=msgspec.structs.replace(result.stats, estimate=guess))

    def analyze(self, spec: AnalyzeSpec, settings: Settings, call: Any, on_sample: Listener) -> Any:
        """Profile a dataset in a worker (see sidecar.engine.analyze); the analysis as builtins."""
        return self._run("analyze", spec, settings, call, on_sample, None, idempotent=True, holistic=lambda: False)

    def run_step(
        self, spec: QuerySpec, settings: Settings, call: Any, on_sample: Listener, database: str | None
    ) -> QueryResult:
        """One step of a split run, run whole (the `StepRunner` the split executors are handed)."""
        return self._whole(spec, settings, call, on_sample, database, holistic=lambda: holistic(spec.sql))

    # -- looks before the query ----------------------------------------------------------

    def _probe(
        self, spec: QuerySpec, settings: Settings, call: Any, database: str, sql: str, params: Any = None
    ) -> list[list[Any]]:
        """The rows of one small read-only look (EXPLAIN, DESCRIBE, a sample) taken before the query
        runs, as a supervised job on its database; no progress, and never the query's `output`."""
        sub = msgspec.structs.replace(
            spec, sql=sql, params=params, output=None, max_rows=PROBE_ROWS, job_id=None
        )
        return self._whole(sub, settings, call, None, database, holistic=lambda: False).rows

    def _recorded_parts(self, spec: QuerySpec, settings: Settings, call: Any, database: str) -> int | None:
        """The number of parts a named job's kept parts were made for (its job directory's record, or
        its scratch schema's plan); None when it kept nothing."""
        record = read_record(job_directory(settings.state_directory, spec.job_id or ""))
        if record is not None:
            return record.key.parts
        try:
            rows = self._probe(spec, settings, call, database, schema_plan_sql(scratch_schema(spec.job_id or "")))
        except SidecarError:
            return None  # no such schema: the job kept nothing
        try:
            return len(Plan.from_json(rows[0][0]).parts) if rows else None
        except msgspec.DecodeError:  # not a plan this version wrote: the run itself will refuse the job_id
            return None

    def _estimate(
        self, spec: QuerySpec, settings: Settings, call: Any, database: str, shape: JobShape
    ) -> Estimate | None:
        """How many parts a splittable SELECT needs before it runs (sidecar.jobs.estimate); None for
        a query that cannot need a split (no aggregate, grouping, window, DISTINCT or join: no look is
        taken), one the planner cannot split, or when the looks themselves fail (it then runs whole).
        The planner is asked only when the EXPLAIN says a split could be needed."""
        if not shape.may_split:
            return None
        limit = duckdb_limit_for(_most(settings))
        size = input_bytes(
            spec.sql, Path.cwd(), list(settings.allowed_directories), enough=limit // SMALL_INPUT_FACTOR
        )
        if size is not None and size * SMALL_INPUT_FACTOR < limit:
            # nothing to look at: the looks cost a 1 MB file's GROUP BY 1.2-2.3 ms of its 3.4-6.0
            # (docs/performance/benchmarks.md); a wrong guess costs one attempt, then the ladder splits
            return None

        def probe(sql: str, params: Any) -> list[list[Any]]:
            return self._probe(spec, settings, call, database, sql, params)

        try:
            plan = functools.partial(how_to_split, spec.sql, 2)
            return estimate(probe, plan, shape.holistic, spec.sql, spec.params, limit, settings.threads)
        except SidecarError as error:
            if call.cancel_event.is_set():
                raise
            log.info("job %s: no estimate (%s: %s); running it whole", call.id, error.code, error)
            return None

    # -- one job, attempt by attempt -----------------------------------------------------

    def _whole(
        self,
        spec: QuerySpec,
        settings: Settings,
        call: Any,
        on_sample: Listener,
        database: str | None,
        *,
        holistic: Callable[[], bool],
    ) -> QueryResult:
        """A read-only query run whole: a look, or a split run's step (database None: any free worker)."""
        result: QueryResult = self._run(
            "query", spec, settings, call, on_sample, database, idempotent=True, holistic=holistic
        )
        return result

    def _run(
        self,
        kind: str,
        spec: Any,
        settings: Settings,
        call: Any,
        on_sample: Listener,
        database: str | None,
        *,
        idempotent: bool,
        holistic: Callable[[], bool],
        refusal: Callable[[], str] = lambda: "not a query",
        parts: int = 0,
        split: SplitExecutor | None = None,
    ) -> Any:
        """The one retry loop: each attempt runs whole or split (`state.parts`), and after a failure
        the ladder picks the next attempt, or nothing (then the last error, with what was tried)."""
        most = _most(settings)
        # resolve_settings sized it (sidecar.config.budget.job_budget): an auto budget is already one
        # job's share of the machine budget, so config.get shows the ceiling every job starts at
        start = settings.memory_budget_bytes
        state = JobState(
            ceiling=start,
            most=most,
            threads=settings.threads,
            preserve_insertion_order=settings.preserve_insertion_order,
            idempotent=idempotent,
            exports=getattr(spec, "output", None) is not None,
            holistic=False,
            duckdb_limit=duckdb_limit_for(start),
        )
        if parts > 0:  # split up front (the estimate, or the request's `partition.parts`)
            state = replace(state, parts=parts, splittable=True)

        def attempt(state: JobState, rung: str, number: int) -> Tried:
            if state.parts > 0 and kind == "query":
                return self._split_attempt(
                    spec, settings, call, on_sample, database or self.default_database, state, number, rung, split
                )
            job = Job(kind, spec, database, settings, number, rung)  # type: ignore[arg-type]
            limits = Limits(
                state.ceiling,
                state.most,
                state.threads,
                state.preserve_insertion_order,
                state.idempotent,
                state.duckdb_share,
            )
            outcome = self.supervisor.attempt(job, limits, call, on_sample)
            failure = Failure(outcome.failure, outcome.machine_room) if outcome.failure else None
            return Tried(outcome.attempt, outcome.result, outcome.error, failure)

        def refine(state: JobState) -> JobState:
            why_not = "" if state.splittable else refusal()
            return replace(state, holistic=holistic(), splittable=not why_not, unsplittable=why_not)

        def retrying(rung: str, why: str) -> None:
            log.info("job %s: retrying with rung %r (%s)", call.id, rung, why)
            if on_sample is not None:
                on_sample(Sample("retrying", None, 0, 0, 0, 0))

        result, attempts = climb(
            self.ladder, state, attempt, refine=refine, job_id=getattr(spec, "job_id", None), on_retry=retrying
        )
        return _finish(result, attempts)

    def _split_attempt(
        self,
        spec: QuerySpec,
        settings: Settings,
        call: Any,
        on_sample: Listener,
        database: str,
        state: JobState,
        number: int,
        rung: str,
        split: SplitExecutor | None,
    ) -> Tried:
        """One attempt run split in `state.parts` parts. Its steps already climbed the whole-query
        rungs, and a part that alone ran out of memory was split again, so only a memory failure
        is the ladder's to answer (with more parts); any other error is the request's."""
        request = SplitRun(
            self, spec, settings, call, on_sample, database, number, rung, database == self.default_database
        )
        try:
            result, attempt = (split or self.split)(request, state.parts)
        except SidecarError as error:
            if error.code not in MEMORY_FAILURES:
                raise
            failed = Attempt(number, rung, state.ceiling, state.duckdb_limit, state.threads, error.code, 0, 0)
            return Tried(failed, None, error, Failure(error.code))
        return Tried(attempt, result)

    def _split_for(self, executor: ExecutorSpec | None) -> SplitExecutor | None:
        """The split executor a request asked for (None: the runner's own); asking for Ray without
        the `ray` package is refused here, before anything runs."""
        if executor is None or executor.kind == "local":
            return None
        import_ray()
        return LocalSplit(RayParts(self.ray, executor.address))

    # -- housekeeping --------------------------------------------------------------------

    def worker_pid(self, call_id: Any) -> int | None:
        """The pid of the worker running a step of request `call_id` right now (None between steps)."""
        return self.supervisor.worker_pid(call_id)

    def cleanup(self, *, aggressive: bool) -> tuple[int, int]:
        """Remove what dead processes left (see Supervisor.cleanup), and the default databases of
        sidecars that are gone. Returns (bytes freed, files removed)."""
        freed, removed = self.supervisor.cleanup(aggressive=aggressive)
        for leftover in Path(self.settings.state_directory).glob("default-*.duckdb*"):
            pid = leftover.name.split("-", 1)[1].split(".", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
                freed += leftover.stat().st_size
                removed += 1
                leftover.unlink(missing_ok=True)
        return freed, removed

    def close(self) -> None:
        self.ray.close()
        self.supervisor.close()
        for leftover in Path(self.default_database).parent.glob(Path(self.default_database).name + "*"):
            leftover.unlink(missing_ok=True)


def _explicit_budget(settings: Settings) -> bool:
    """Whether the job's memory budget was set (request, env, overrides, profile): then it is a hard ceiling."""
    return not settings.sources.get("memory_budget_bytes", "auto").startswith("auto")


def _most(settings: Settings) -> int:
    """The most a job may ever get: its own budget when set, or the machine budget (growing in place)."""
    return settings.memory_budget_bytes if _explicit_budget(settings) else settings.machine_budget_bytes


def _finish(result: Any, attempts: list[Attempt]) -> Any:
    """A query's result with every attempt in `stats.attempts` (an analysis is returned as it came)."""
    if not isinstance(result, QueryResult):
        return result
    stats = msgspec.structs.replace(
        result.stats,
        peak_rss_bytes=max(result.stats.peak_rss_bytes, attempts[-1].peak_rss_bytes),
        attempts=list(attempts),
    )
    return msgspec.structs.replace(result, stats=stats)
