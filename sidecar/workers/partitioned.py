"""Partitioned execution of one query on the local worker pool: the first executor of a `Plan`.

The planner (`sidecar.partition`) says what to run; this module runs it through the
supervised engine's own job loop, so every step gets admission, the memory ceiling, the
retry ladder and the database's turn like any other job. First a `DESCRIBE` of the query
gives the names the answer must have; then the parts run one after another, kept in one of
three places:

- **files** in the job directory `<state>/jobs/<job_id>/`, when the answer is an `output` file
  and the parts' rows are its rows: a combine that passes them through (`SELECT * FROM _parts`)
  or sorted ranges. Each part is an ordinary job writing `part_<i>.<format>` atomically (the
  file, with its row count recorded after it in `part_<i>.rows`, marks it done), and the parts
  are joined into the output by copying bytes
  (`sidecar.engine.concat`), with the same atomic rename as any output. The types are those an
  unsplit `COPY` writes, since each part is the query itself plus a filter.
- **tables** in a scratch schema `"__bmad_job_<id>"` of the query's database, when the combine
  computes (ORDER BY + LIMIT, global aggregates) or the answer is inline: tables keep exact types
  (Parquet would store a HUGEINT sum as DOUBLE). A view over their union feeds the combine.
- **rows** returned inline, for a full ORDER BY without `output`: parts in order until `max_rows`.

A full ORDER BY is split by ranges of its first sort key, bounds sampled from the data.
A part that runs out of memory is split again (hash shapes: a salted sub-hash; sorted ranges:
finer sampled bounds). With a `job_id` the finished parts and the plan are kept until the job
succeeds, so re-sending the request resumes it.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import msgspec
from sqlglot import exp, parse_one

from sidecar.engine.concat import concat_files
from sidecar.jobs.types import Attempt, Column, OutputInfo, OutputSpec, QueryResult, QuerySpec, QueryStats
from sidecar.engine.monitor import Cancellation, Sample
from sidecar.engine.outputs import atomic_target
from sidecar.errors import InternalError, InvalidParams, SidecarError
from sidecar.partition import PARTS_RELATION, Bucket, Plan, plan_partitioned
from sidecar.partition.planner import column_stats_sql, decode_bounds, sort_key_sample_sql
from sidecar.partition.prepass import (
    BUCKET_COLUMN,
    Prepass,
    bucket_sql,
    needed_columns,
    part_reads_bucket,
    prepass_for,
)
from sidecar.workers.jobdirs import (
    ANONYMOUS,
    JobKey,
    finished_parts,
    job_directory,
    job_plan,
    mismatch,
    write_atomic,
)
from sidecar.workers.ladder import MEMORY_FAILURES
from sidecar.workers.shape import holistic

if TYPE_CHECKING:
    from sidecar.config import Settings
    from sidecar.workers.engine import SupervisedEngine

__all__ = ["SCHEMA_PREFIX", "SplitRun", "run_partitioned", "splittable"]

log = logging.getLogger(__name__)

SCHEMA_PREFIX = "__bmad_job_"
RESPLIT_PARTS = 4
"""A part that runs out of memory is split again into this many parts."""
MAX_RESPLIT_DEPTH = 3


# -- planning -------------------------------------------------------------------------------


def hash_plan(sql: str, parts: int) -> Plan | None:
    """The hash plan for `sql`, or None for a full ORDER BY (split by sampled ranges instead)."""
    try:
        return plan_partitioned(sql, parts)
    except InvalidParams as exc:
        if exc.details.get("shape") != "sorted_ranges":
            raise
    sort_key_sample_sql(sql, parts)  # refuses a first sort key that cannot be range-split
    return None


def splittable(sql: str) -> bool:
    """Whether the planner can split `sql` (asked only after a memory failure, by the ladder)."""
    try:
        hash_plan(sql, 2)
    except SidecarError as exc:
        log.debug("not splittable (%s): %s", exc.code, exc)
        return False
    return True


def _passes_through(plan: Plan) -> bool:
    """Whether the combine hands the part rows on unchanged: then the parts are the output's rows."""
    plain = exp.select("*").from_(plan.combine.relation).sql("duckdb")
    return plan.combine.kind == "union_then" and plan.combine.sql == plain


def _has_placeholders(sql: str) -> bool:
    return any(parse_one(sql, read="duckdb").find_all(exp.Placeholder, exp.Parameter))


def _within(parts: int, path: tuple[int, ...]) -> list[Bucket]:
    """The hash buckets of part `path` (its index, then its sub-part index at each re-split)."""
    return [
        Bucket(parts, path[0], 0),
        *(Bucket(RESPLIT_PARTS, i, level) for level, i in enumerate(path[1:], 1)),
    ]


# -- running steps --------------------------------------------------------------------------


class _CleanupCall(Cancellation):
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
    run (the engine, the database) and report (the call, its progress), and the attempt it counts as."""

    engine: SupervisedEngine
    spec: QuerySpec
    settings: Settings
    call: Any
    on_sample: Callable[[Sample], None] | None
    database: str
    number: int = 1
    rung: str = "partition"

    def attempt(self, steps: _Jobs) -> Attempt:
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


class _Jobs:
    """Runs the steps of one partitioned request as supervised jobs, and keeps their peaks."""

    def __init__(self, request: SplitRun) -> None:
        self.request = request
        self.engine, self.spec, self.settings, self.call = (
            request.engine,
            request.spec,
            request.settings,
            request.call,
        )
        self.on_sample, self.database = request.on_sample, request.database
        settings = request.settings
        self.started = time.monotonic()
        self.peak = self.buffer = self.spill = 0
        self.ceiling, self.duckdb_limit, self.threads = 0, 0, settings.threads
        self.stats: QueryStats | None = None
        """The stats of the last step run."""
        self.current: tuple[int | None, int | None] = (None, None)

    def run(
        self,
        sql: str,
        *,
        params: Any = None,
        output: OutputSpec | None = None,
        max_rows: int = 100_000,
        final: bool = False,
        on: Any = None,
    ) -> QueryResult:
        sub = msgspec.structs.replace(self.spec, sql=sql, params=params, output=output, max_rows=max_rows)
        result: QueryResult = self.engine._run(
            "query",
            sub,
            self.settings,
            on or self.call,
            self.on_sample if final else self._relay(),
            self.database,
            idempotent=True,
            exports=output is not None,
            holistic=lambda: holistic(sql),
        )
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

    def progress(self, part: int, parts: int) -> None:
        """Part `part` (0-based) of `parts` starts; the samples of its jobs carry its number until the next."""
        self.current = (part + 1, parts)
        if self.on_sample is not None:
            self.on_sample(
                Sample("partition", 100.0 * part / parts, self.elapsed_ms, 0, 0, 0, part + 1, parts)
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
        return self.spec.params if _has_placeholders(sql) else None

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


def _without_done(on_sample: Callable[[Sample], None] | None) -> Callable[[Sample], None] | None:
    """A step's samples, minus its 'done': only the request's last step ends it for the client."""
    if on_sample is None:
        return None
    listener = on_sample
    return lambda sample: None if sample.phase == "done" else listener(sample)


def _renamed(sql: str, names: list[str], nullable: list[bool] | None = None) -> str:
    """The part query with the original query's column names (sqlglot may rename unaliased ones).

    `nullable` marks the columns the whole query may fill with NULLs: those pass through a CASE
    DuckDB cannot fold, so a part whose range filter proves them NULL-free still writes them as
    OPTIONAL Parquet columns, as the whole query does.
    """
    columns = "*"
    if nullable is not None:
        columns = ", ".join(
            f"CASE WHEN random() < 0 THEN NULL ELSE u.{_quoted(n)} END AS {_quoted(n)}"
            if null
            else f"u.{_quoted(n)}"
            for n, null in zip(names, nullable)
        )
    return f"SELECT {columns} FROM ({sql}) AS u({', '.join(_quoted(n) for n in names)})"


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# -- where the parts go ---------------------------------------------------------------------


class _Store(Protocol):
    done: set[str]
    """Parts an earlier run of the same job finished."""

    def compute(self, name: str, sql: str) -> None: ...

    def sub_plan(self, name: str, make: Callable[[], Plan]) -> Plan: ...


SplitAgain = Callable[[tuple[int, ...], str], Plan]


def _run_parts(
    jobs: _Jobs, store: _Store, plan: Plan, split_again: SplitAgain
) -> tuple[list[str], list[str]]:
    """Every part of `plan` in order; returns the names holding the rows, in order, and the re-split ones."""
    names: list[str] = []
    resplit: list[str] = []
    for part in plan.parts:
        jobs.progress(part.index, len(plan.parts))
        names.extend(_run_part(store, (part.index,), part.sql, split_again, resplit))
    return names, resplit


def _run_part(
    store: _Store, path: tuple[int, ...], sql: str, split_again: SplitAgain, resplit: list[str]
) -> list[str]:
    """Compute one part, or, when it runs out of memory, its sub-parts in order.

    A re-split shares the part's rows out again (recursively, up to MAX_RESPLIT_DEPTH), so a
    part that drew more than its share does not sink the job. A single huge group, or a single
    sort key value, cannot be split: its part fails with the memory error.
    """
    name = "part_" + "_".join(map(str, path))
    if name in store.done:  # finished by an earlier run of the same job_id
        return [name]
    failed: SidecarError | None = None
    if not any(done.startswith(name + "_") for done in store.done):
        try:
            store.compute(name, sql)
            return [name]
        except SidecarError as error:
            if error.code != "OUT_OF_MEMORY" or len(path) > MAX_RESPLIT_DEPTH:
                raise
            failed = error
    sub = store.sub_plan(name, lambda: split_again(path, sql))
    if len(sub.parts) < 2 and failed is not None:
        raise failed
    log.info("%s ran out of memory; split again in %d", name, len(sub.parts))
    resplit.append(name)
    names: list[str] = []
    for part in sub.parts:
        names.extend(_run_part(store, (*path, part.index), part.sql, split_again, resplit))
    return names


class _TableStore:
    """Parts as tables of a scratch schema in the query's database: exact types for the combine."""

    def __init__(self, jobs: _Jobs, schema: str, done: set[str]) -> None:
        self.jobs, self.schema, self.done = jobs, schema, done

    def compute(self, name: str, sql: str) -> None:
        self.jobs.run(f"CREATE TABLE {_quoted(self.schema)}.{name} AS {sql}", params=self.jobs.spec.params)

    def sub_plan(self, name: str, make: Callable[[], Plan]) -> Plan:
        return make()  # hash re-splits are deterministic: nothing to record


class _FileStore:
    """Parts as files of the output's format in the job directory; `<part>.rows` holds the count."""

    def __init__(
        self, jobs: _Jobs, directory: Path, fmt: str, names: list[str], nullable: list[bool] | None
    ) -> None:
        self.jobs, self.directory, self.fmt, self.names = jobs, directory, fmt, names
        self.nullable = nullable
        self.done = finished_parts(directory)

    def path(self, name: str) -> Path:
        return self.directory / f"{name}.{self.fmt}"

    def rows(self, name: str) -> int:
        return int((self.directory / f"{name}.rows").read_text())

    def compute(self, name: str, sql: str) -> None:
        output = OutputSpec(path=str(self.path(name)), format=self.fmt, overwrite=True)  # type: ignore[arg-type]
        renamed = _renamed(sql, self.names, self.nullable)
        result = self.jobs.run(renamed, params=self.jobs.spec.params, output=output, max_rows=0)
        write_atomic(self.directory / f"{name}.rows", str(result.row_count).encode())

    def sub_plan(self, name: str, make: Callable[[], Plan]) -> Plan:
        """A re-split's plan is recorded: sampled bounds differ between runs, its finished sub-parts must not."""
        record = self.directory / f"{name}.split.json"
        if record.exists():
            return Plan.from_json(record.read_bytes())
        plan = make()
        write_atomic(record, plan.to_json())
        return plan


@dataclass
class _RowStore:
    """Parts fetched inline in order, until `max_rows` rows are in hand (then one more tells `truncated`)."""

    jobs: _Jobs
    names: list[str]
    max_rows: int
    done: set[str] = field(default_factory=set)
    rows: list[list[Any]] = field(default_factory=list)
    columns: list[Column] = field(default_factory=list)
    truncated: bool = False

    def compute(self, name: str, sql: str) -> None:
        if self.truncated:
            return
        result = self.jobs.run(
            _renamed(sql, self.names), params=self.jobs.spec.params, max_rows=self.max_rows - len(self.rows)
        )
        self.columns = self.columns or result.columns
        self.rows.extend(result.rows)
        self.truncated = result.truncated

    def sub_plan(self, name: str, make: Callable[[], Plan]) -> Plan:
        return make()


class _BucketStore:
    """Another store's parts, each reading its own bucket of the bucketing pass instead of the input."""

    def __init__(self, inner: _Store, pre: Prepass, directory: Path, columns: list[str]) -> None:
        self.inner, self.pre, self.directory, self.columns = inner, pre, directory, columns
        self.done = inner.done

    def compute(self, name: str, sql: str) -> None:
        bucket = self.directory / f"{BUCKET_COLUMN}={name.split('_')[1]}"
        files = str(bucket / "*.parquet") if bucket.is_dir() else None
        self.inner.compute(name, part_reads_bucket(sql, self.pre, files, self.columns))

    def sub_plan(self, name: str, make: Callable[[], Plan]) -> Plan:
        return self.inner.sub_plan(name, make)


def _bucketed(jobs: _Jobs, store: _Store, plan: Plan | None, parts: int, directory: Path) -> _Store:
    """`store`, its parts reading buckets written by one pass over the input when that applies and
    pays (sidecar.partition.prepass); otherwise `store` itself, its parts re-scanning the input.

    The pass writes `<job directory>/buckets` whole or not at all (a temporary directory renamed
    into place), so a resumed job reuses it. A pass that fails for want of memory (DuckDB keeps a
    writer per bucket) is not an error: the parts re-scan the input instead.
    """
    spec = jobs.spec
    pre = prepass_for(plan, parts, spec.params is not None) if plan is not None else None
    if pre is None:
        return store
    prefix = f"{pre.with_sql} " if pre.with_sql else ""
    described = jobs.run(f"DESCRIBE {prefix}SELECT * FROM {pre.relation}")
    relation_columns = [(row[0], row[1]) for row in described.rows]
    columns = needed_columns(spec.sql, relation_columns, pre.alias)
    if columns is None:
        return store
    buckets = directory / "buckets"
    if buckets.is_dir():
        log.info("reusing the buckets an earlier run of this job wrote in %s", buckets)
    else:
        temp = directory / ".buckets.tmp"
        shutil.rmtree(temp, ignore_errors=True)
        directory.mkdir(parents=True, exist_ok=True)
        copy = f"COPY ({bucket_sql(pre, columns, [n for n, _ in relation_columns])}) TO {_literal(str(temp))} (FORMAT parquet, PARTITION_BY ({BUCKET_COLUMN}))"
        jobs.progress(0, parts)
        try:
            jobs.run(copy)
        except SidecarError as error:
            shutil.rmtree(temp, ignore_errors=True)
            if jobs.call.cancel_event.is_set():
                raise
            # an optimisation only: whatever stopped it (memory, a shape it got wrong), the parts re-scan
            level = logging.INFO if error.code in MEMORY_FAILURES else logging.WARNING
            log.log(
                level, "the bucketing pass failed (%s: %s); the parts re-scan the input", error.code, error
            )
            return store
        if not temp.is_dir():  # no row passed the query's WHERE: every bucket is empty
            temp.mkdir()
        os.replace(temp, buckets)
    log.info(
        "the %d parts read buckets of one pass over %s (columns %s)", parts, pre.relation, ", ".join(columns)
    )
    return _BucketStore(store, pre, buckets, columns)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# -- the three ways to run a plan -----------------------------------------------------------


@dataclass
class _Ran:
    result: QueryResult
    partitions: int
    reused: int
    resplit: int


def _split_again(jobs: _Jobs, plan: Plan, parts: int) -> SplitAgain:
    """How a part of `plan` that ran out of memory is split: finer sampled ranges, or a salted sub-hash."""
    if plan.shape == "sorted_ranges":
        return lambda path, sql: jobs.sampled_plan(sql, RESPLIT_PARTS)
    sql = jobs.spec.sql
    return lambda path, _: plan_partitioned(sql, RESPLIT_PARTS, salt=len(path), within=_within(parts, path))


def _run_to_files(jobs: _Jobs, hashed: Plan | None, parts: int, names: list[str]) -> _Ran:
    """Parts straight to files in the output's format, joined into the output by copying bytes."""
    spec, settings = jobs.spec, jobs.settings
    output = spec.output
    if output is None:
        raise InternalError("file parts need an output")
    own = jobs.database == jobs.engine.default_database
    key = JobKey(spec.sql, parts, None if own else jobs.database, output.format, spec.params)
    name = spec.job_id or f"{ANONYMOUS}.{os.getpid()}.{secrets.token_hex(4)}"
    directory = job_directory(settings.state_directory, name)
    journal = Path(settings.state_directory) / "pending-outputs"
    succeeded = False
    try:
        allowed = list(settings.allowed_directories)
        with atomic_target(output.path, overwrite=output.overwrite, allowed=allowed, journal=journal) as temp:
            plan = job_plan(directory, key, spec.job_id, lambda: hashed or jobs.sampled_plan(spec.sql, parts))
            sorted_parquet = plan.shape == "sorted_ranges" and output.format == "parquet"
            store = _FileStore(
                jobs, directory, output.format, names, jobs.nullable() if sorted_parquet else None
            )
            done = set(store.done)
            bucketed = _bucketed(jobs, store, plan, len(plan.parts), directory)
            ran, resplit = _run_parts(jobs, bucketed, plan, _split_again(jobs, plan, parts))
            described = jobs.run(f"SELECT * FROM ({_body(spec.sql)}) LIMIT 0", params=spec.params, max_rows=0)
            counts = {n: store.rows(n) for n in ran}
            # An empty part may have a schema of its own (DuckDB proved it empty and dropped its
            # statistics): it adds no rows, so it is left out.
            sources = [store.path(n) for n in ran if counts[n]] or [store.path(ran[0])]
            joined = concat_files(output.format, sources, temp)
            rows = sum(counts.values())
            if joined.rows is not None and joined.rows != rows:
                raise InternalError(f"the joined parts hold {joined.rows} rows, the parts reported {rows}")
        succeeded = True
    finally:
        if succeeded or spec.job_id is None:
            shutil.rmtree(directory, ignore_errors=True)
    info = OutputInfo(str(Path(output.path).expanduser().resolve()), output.format, joined.bytes_written, rows)
    result = msgspec.structs.replace(described, rows=[], row_count=rows, truncated=False, output=info)
    jobs.done()
    return _Ran(result, len(plan.parts), sum(1 for n in ran if n in done), len(resplit))


def _run_in_order(jobs: _Jobs, parts: int, names: list[str]) -> _Ran:
    """A full ORDER BY answered inline: its range parts in order, until `max_rows` rows."""
    plan = jobs.sampled_plan(jobs.spec.sql, parts)
    store = _RowStore(jobs, names, jobs.spec.max_rows)
    _, resplit = _run_parts(jobs, store, plan, _split_again(jobs, plan, parts))
    if jobs.stats is None:
        raise InternalError("a split run finished without running a step")
    result = QueryResult(store.columns, store.rows, len(store.rows), store.truncated, jobs.stats)
    jobs.done()
    return _Ran(result, len(plan.parts), 0, len(resplit))


def _run_in_schema(jobs: _Jobs, plan: Plan, parts: int, names: list[str]) -> _Ran:
    """Parts as tables of a scratch schema, and the combine over a view of their union as the last job."""
    spec = jobs.spec
    schema = f"{SCHEMA_PREFIX}{spec.job_id or secrets.token_hex(4)}"
    combine, rename_view = _combine_sql(plan, schema, names)
    done = _prepare_schema(jobs.run, schema, plan.to_json().decode(), spec.job_id)
    name = spec.job_id or f"{ANONYMOUS}.{os.getpid()}.{secrets.token_hex(4)}"
    directory = job_directory(jobs.settings.state_directory, name)
    succeeded = False
    try:
        store = _bucketed(jobs, _TableStore(jobs, schema, done), plan, parts, directory)
        tables, resplit = _run_parts(jobs, store, plan, _split_again(jobs, plan, parts))
        union = " UNION ALL ".join(f"SELECT * FROM {_quoted(schema)}.{t}" for t in tables)
        aliases = f" AS u({', '.join(_quoted(n) for n in names)})" if rename_view else " AS u"
        jobs.run(
            f"CREATE OR REPLACE VIEW {_quoted(schema)}.{PARTS_RELATION} AS SELECT * FROM ({union}){aliases}"
        )
        params = jobs.params_for(combine)
        result = jobs.run(combine, final=True, params=params, output=spec.output, max_rows=spec.max_rows)
        succeeded = True
    finally:
        # A job with a job_id keeps its finished parts after a failure, so the same request resumes.
        if succeeded or spec.job_id is None:
            shutil.rmtree(directory, ignore_errors=True)
            try:
                jobs.run(f"DROP SCHEMA IF EXISTS {_quoted(schema)} CASCADE", on=_CleanupCall(jobs.call))
            except SidecarError:
                log.warning(
                    "could not drop the scratch schema %s in %s", schema, jobs.database, exc_info=True
                )
    return _Ran(result, len(plan.parts), sum(1 for t in tables if t in done), len(resplit))


def _body(sql: str) -> str:
    return sql.strip().rstrip(";")


def run_partitioned(request: SplitRun, parts: int) -> tuple[QueryResult, Attempt]:
    """Run the request's query as `parts` parts plus a combine; the final result and one Attempt for it all."""
    spec = request.spec
    plan = hash_plan(spec.sql, parts)
    jobs = _Jobs(request)
    described = jobs.run(f"SELECT column_name FROM (DESCRIBE {_body(spec.sql)})", params=spec.params)
    names = [row[0] for row in described.rows]
    if spec.output is not None and (plan is None or _passes_through(plan)):
        ran = _run_to_files(jobs, plan, parts, names)
    elif plan is None:
        ran = _run_in_order(jobs, parts, names)
    else:
        ran = _run_in_schema(jobs, plan, parts, names)
    stats = msgspec.structs.replace(
        ran.result.stats,
        partitions=ran.partitions,
        reused_parts=ran.reused,
        resplit_parts=ran.resplit,
        elapsed_ms=float(jobs.elapsed_ms),
        peak_rss_bytes=jobs.peak,
        peak_buffer_bytes=jobs.buffer,
        peak_spill_bytes=jobs.spill,
    )
    return msgspec.structs.replace(ran.result, stats=stats), request.attempt(jobs)


# -- the scratch schema ---------------------------------------------------------------------


def _combine_sql(plan: Plan, schema: str, names: list[str]) -> tuple[str, bool]:
    """The combine reading `"<schema>"._parts`, its output columns named `names`.

    Returns the SQL and whether the view must rename the part columns instead: a combine that
    selects `*` passes the part columns through (the planner appends its own `__bmad_order_*`
    columns after the user's), so those are renamed in the view; a combine that computes its
    columns (global aggregates) gets an alias on each.
    """
    tree = parse_one(plan.combine.sql or "", read="duckdb")
    for table in tree.find_all(exp.Table):
        if table.name == plan.combine.relation and not table.args.get("db"):
            table.set("db", exp.to_identifier(schema, quoted=True))
    projections = tree.expressions if isinstance(tree, exp.Select) else []
    if any(isinstance(p, exp.Star) or (isinstance(p, exp.Column) and p.is_star) for p in projections):
        return tree.sql("duckdb"), True
    if len(projections) != len(names):
        raise InvalidParams(
            f"the partitioned combine has {len(projections)} columns but the query has {len(names)}",
            details={"combine": plan.combine.sql, "columns": names},
        )
    tree.set(
        "expressions",
        [
            exp.alias_(p.unalias() if isinstance(p, exp.Alias) else p, n, quoted=True)
            for p, n in zip(projections, names)
        ],
    )
    return tree.sql("duckdb"), False


def _prepare_schema(
    job: Callable[..., QueryResult], schema: str, fingerprint: str, job_id: str | None
) -> set[str]:
    """Create the job's scratch schema, or find the parts an earlier run of the same job finished.

    The schema records the plan it was made for; a job_id reused for another query or another
    number of parts is refused rather than mixing parts of two plans.
    """
    existing = job("SELECT table_name FROM duckdb_tables() WHERE schema_name = $1", params=[schema]).rows
    tables = {row[0] for row in existing}
    if not tables:
        job(f"CREATE SCHEMA IF NOT EXISTS {_quoted(schema)}")
        job(f"CREATE TABLE {_quoted(schema)}.__plan AS SELECT $1::VARCHAR AS plan", params=[fingerprint])
        return set()
    recorded = job(f"SELECT plan FROM {_quoted(schema)}.__plan").rows if "__plan" in tables else []
    if not recorded or recorded[0][0] != fingerprint:
        raise mismatch(job_id)
    return {t for t in tables if t.startswith("part_")}
