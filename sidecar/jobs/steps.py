"""What a split executor is handed: the request, and a runner for its steps.

An executor of a plan (`sidecar.jobs.partitioned`, `sidecar.jobs.quantile_passes`, later one on
Ray) runs a query as many steps: looks, parts, a combine. It gets a `SplitRun`, whose `steps`
is any `StepRunner`: an object that runs one statement as one supervised job with the retry
ladder's whole-query rungs. The local runner (`sidecar.jobs.runner.JobRunner`) is one; a test
may hand an in-process DuckDB instead. `Steps` keeps the peaks of every step, so the whole split
run counts as one `Attempt`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import msgspec
from sqlglot import exp, parse_one

from sidecar.engine.database import MEMORY
from sidecar.engine.monitor import Cancellation, Sample
from sidecar.errors import SidecarError
from sidecar.jobs.types import Attempt, OutputSpec, QueryResult, QuerySpec, QueryStats
from sidecar.partition import Plan, plan_partitioned
from sidecar.partition.ranges import column_stats_sql, decode_bounds, sort_key_sample_sql

if TYPE_CHECKING:
    from sidecar.config import Settings

__all__ = ["CleanupCall", "SplitRun", "StepRunner", "Steps", "has_placeholders", "without_done"]


class StepRunner(Protocol):
    """Runs one statement of a split run as one supervised job (admission, the ceiling, the ladder's
    whole-query rungs, the database's turn) and returns its result, or raises its SidecarError."""

    def run_step(
        self,
        spec: QuerySpec,
        settings: Settings,
        call: Any,
        on_sample: Callable[[Sample], None] | None,
        database: str | None,
    ) -> QueryResult: ...
    """`database` None: any free worker, the step's own `spec.database` (":memory:" for a part that
    only reads files) opened there."""


class CleanupCall(Cancellation):
    """Runs the scratch schema's DROP even after the request was cancelled: it is never cancelled itself."""

    def __init__(self, call: Any) -> None:
        super().__init__()
        self.id = call.id
        self._call = call

    def cancelled_error(self) -> SidecarError:
        return self._call.cancelled_error()  # type: ignore[no-any-return]


@dataclass(frozen=True)
class SplitRun:
    """One request to run split, as every executor of a plan takes it: the query, where its steps
    run (the step runner, the database) and report (the call, its progress), and the attempt it counts as."""

    steps: StepRunner
    spec: QuerySpec
    settings: Settings
    call: Any
    on_sample: Callable[[Sample], None] | None
    database: str
    number: int = 1
    rung: str = "partition"
    own_database: bool = False
    """`database` is the sidecar's own (a new file after a restart: a job directory does not name it)."""

    def attempt(self, steps: Steps) -> Attempt:
        """The one Attempt the whole split run counts as, with the peaks its steps reached."""
        return Attempt(
            self.number,
            self.rung,
            steps.ceiling,
            steps.duckdb_limit,
            steps.threads,
            "ok",
            steps.elapsed_ms,
            steps.peak,
        )


class Steps:
    """Runs the steps of one partitioned request as supervised jobs, and keeps their peaks."""

    def __init__(self, request: SplitRun) -> None:
        self.request = request
        self.spec, self.settings, self.call = request.spec, request.settings, request.call
        self.on_sample, self.database = request.on_sample, request.database
        settings = request.settings
        self.started = time.monotonic()
        self.peak = self.buffer = self.spill = 0
        self.ceiling, self.duckdb_limit, self.threads = 0, 0, settings.threads
        self.stats: QueryStats | None = None
        """The stats of the last step run."""
        self.current: tuple[int | None, int | None] = (None, None)
        self.apart_threads = settings.threads
        """Threads of a step run apart from the database's worker (a part executor running several
        at once shares the request's threads out among them)."""
        self.apart_runs: list[tuple[float, float]] = []
        """When each step run apart ran in its worker (monotonic start, end): how many overlapped."""

    def run(
        self,
        sql: str,
        *,
        params: Any = None,
        output: OutputSpec | None = None,
        max_rows: int = 100_000,
        final: bool = False,
        on: Any = None,
        apart: bool = False,
    ) -> QueryResult:
        """Run one step; `apart`: on any free worker in an in-memory database (a part that only
        reads files), not on the database's worker, so several such steps may run at once."""
        sub = msgspec.structs.replace(self.spec, sql=sql, params=params, output=output, max_rows=max_rows)
        settings, database = self.settings, self.database
        if apart:
            sub = msgspec.structs.replace(sub, database=MEMORY)
            settings, database = msgspec.structs.replace(settings, threads=self.apart_threads), None
        result = self.request.steps.run_step(
            sub, settings, on or self.call, self.on_sample if final else self._relay(), database
        )
        if apart:  # when it ran in its worker: it ended now, after running `elapsed_ms` there
            ended = time.monotonic()
            self.apart_runs.append((ended - result.stats.elapsed_ms / 1000, ended))
        stats = self.stats = result.stats
        self.peak = max(self.peak, stats.peak_rss_bytes)
        self.buffer = max(self.buffer, stats.peak_buffer_bytes)
        self.spill = max(self.spill, stats.peak_spill_bytes)
        for attempt in stats.attempts[-1:]:
            self.ceiling = max(self.ceiling, attempt.ceiling_bytes)
            self.duckdb_limit = max(self.duckdb_limit, attempt.duckdb_memory_limit_bytes)
            self.threads = min(self.threads, attempt.threads)
        return result

    @property
    def elapsed_ms(self) -> int:
        return int((time.monotonic() - self.started) * 1000)

    def progress(self, part: int, parts: int, nodes: dict[str, dict[str, int]] | None = None) -> None:
        """Part `part` (0-based) of `parts` starts; the samples of its jobs carry its number until the
        next. `nodes`: parts done, running and failed per node, for parts that run on a cluster."""
        self.current = (part + 1, parts)
        if self.on_sample is not None:
            self.on_sample(
                Sample("partition", 100.0 * part / parts, self.elapsed_ms, 0, 0, 0, part + 1, parts, nodes)
            )

    def _relay(self) -> Callable[[Sample], None] | None:
        """A step's samples, minus its 'done' (only the request's last step ends it), tagged with the part."""
        listener = self.on_sample
        if listener is None:
            return None

        def relay(sample: Sample) -> None:
            if sample.phase != "done":
                listener(msgspec.structs.replace(sample, part=self.current[0], parts=self.current[1]))

        return relay

    def done(self) -> None:
        """The request's one 'done', when its last step was not a worker job's own final step."""
        if self.on_sample is not None:
            self.on_sample(Sample("done", 100.0, self.elapsed_ms, self.peak, self.buffer, self.spill))

    def params_for(self, sql: str) -> Any:
        """The request's params, for SQL derived from its query that still holds placeholders."""
        return self.spec.params if has_placeholders(sql) else None

    def nullable(self) -> list[bool] | None:
        """Which output columns the whole query may fill with NULLs, by DuckDB's statistics (None: no rows)."""
        probe = column_stats_sql(self.spec.sql)
        rows = self.run(probe, params=self.params_for(probe), max_rows=1).rows
        return [not isinstance(s, dict) or s.get("has_null") is not False for s in rows[0]] if rows else None

    def sampled_plan(self, sql: str, parts: int) -> Plan:
        """A range plan for a full ORDER BY: bounds sampled from the data, equal ones merged."""
        sample = sort_key_sample_sql(sql, parts)
        answer = self.run(sample, params=self.params_for(sample))
        bounds = decode_bounds(answer.rows[0][0], answer.columns[0].type, sql)
        return plan_partitioned(sql, len(bounds) + 1, bounds=bounds)


def without_done(on_sample: Callable[[Sample], None] | None) -> Callable[[Sample], None] | None:
    """A step's samples, minus its 'done': only the request's last step ends it for the client."""
    if on_sample is None:
        return None
    listener = on_sample
    return lambda sample: None if sample.phase == "done" else listener(sample)


def has_placeholders(sql: str) -> bool:
    """Whether `sql` still holds `$1`/`?`/`$name` placeholders.

    >>> has_placeholders("SELECT * FROM t WHERE x = $1"), has_placeholders("SELECT 1")
    (True, False)
    """
    return any(parse_one(sql, read="duckdb").find_all(exp.Placeholder, exp.Parameter))
