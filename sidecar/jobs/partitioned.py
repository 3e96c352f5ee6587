"""Partitioned execution of one query on the local worker pool: the first executor of a `Plan`.

The planner (`sidecar.partition`) says what to run; this module runs it step by step through
the `StepRunner` it is handed (`sidecar.jobs.steps`), so every step gets admission, the memory
ceiling, the retry ladder's whole-query rungs and the database's turn like any other job. First a `DESCRIBE` of the query
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
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec
from sqlglot import exp, parse_one

from sidecar.engine.concat import concat_files
from sidecar.engine.outputs import atomic_target
from sidecar.errors import InternalError, InvalidParams, SidecarError
from sidecar.jobs.kept import (
    PART_PREFIX,
    PLAN_TABLE,
    JobKey,
    anonymous_name,
    job_directory,
    job_plan,
    kept_tables_sql,
    mismatch,
    schema_plan_sql,
    scratch_schema,
)
from sidecar.jobs.part_stores import (
    FileStore,
    ParquetStore,
    RowStore,
    SplitAgain,
    TableStore,
    bucketed,
    quoted,
)
from sidecar.jobs.executors import SERIAL, PartExecutor
from sidecar.jobs.statements import reads_only_files
from sidecar.jobs.steps import CleanupCall, SplitRun, Steps
from sidecar.jobs.types import Attempt, NodeParts, OutputInfo, QueryResult
from sidecar.partition import PARTS_RELATION, Bucket, Plan, Unsplittable, plan_partitioned
from sidecar.partition.answer import CannotSplit, HashSplit, RangeSplit, how_to_split
from sidecar.partition.joins import check_key_types, key_types_sql

__all__ = ["RESPLIT_PARTS", "hash_plan", "run_partitioned", "split_again"]

log = logging.getLogger(__name__)

RESPLIT_PARTS = 4
"""A part that runs out of memory is split again into this many parts."""


# -- planning -------------------------------------------------------------------------------


def hash_plan(sql: str, parts: int) -> Plan | None:
    """The hash plan for `sql`, or None for a full ORDER BY (split by sampled ranges instead);
    the planner's refusal (SQL_ERROR naming the shape) for a query that does not split this way."""
    answer = how_to_split(sql, parts)
    if isinstance(answer, HashSplit):
        return answer.plan
    if isinstance(answer, RangeSplit):
        return None
    if isinstance(answer, CannotSplit):
        raise answer.error()
    raise Unsplittable("global_aggregate", "a global median/quantile query runs in exact passes", sql=sql)


def _passes_through(plan: Plan) -> bool:
    """Whether the combine hands the part rows on unchanged: then the parts are the output's rows."""
    plain = exp.select("*").from_(plan.combine.relation).sql("duckdb")
    return plan.combine.kind == "union_then" and plan.combine.sql == plain


def _within(parts: int, path: tuple[int, ...]) -> list[Bucket]:
    """The hash buckets of part `path` (its index, then its sub-part index at each re-split)."""
    return [
        Bucket(parts, path[0], 0),
        *(Bucket(RESPLIT_PARTS, i, level) for level, i in enumerate(path[1:], 1)),
    ]


# -- the three ways to run a plan -----------------------------------------------------------


@dataclass
class _Ran:
    result: QueryResult
    partitions: int
    reused: int
    resplit: int
    at_once: int = 1
    nodes: dict[str, NodeParts] | None = None


def split_again(jobs: Steps, plan: Plan, parts: int) -> SplitAgain:
    """How a part of `plan` that ran out of memory is split: finer sampled ranges, or a salted sub-hash."""
    if plan.shape == "sorted_ranges":
        return lambda path, sql: jobs.sampled_plan(sql, RESPLIT_PARTS)
    sql = jobs.spec.sql
    return lambda path, _: plan_partitioned(sql, RESPLIT_PARTS, salt=len(path), within=_within(parts, path))


def _run_to_files(
    jobs: Steps, hashed: Plan | None, parts: int, names: list[str], executor: PartExecutor
) -> _Ran:
    """Parts straight to files in the output's format, joined into the output by copying bytes."""
    spec, settings = jobs.spec, jobs.settings
    output = spec.output
    if output is None:
        raise InternalError("file parts need an output")
    own = jobs.request.own_database
    key = JobKey(spec.sql, parts, None if own else jobs.database, output.format, spec.params)
    name = spec.job_id or anonymous_name()
    directory = job_directory(settings.state_directory, name)
    journal = Path(settings.state_directory) / "pending-outputs"
    succeeded = False
    try:
        allowed = list(settings.allowed_directories)
        with atomic_target(output.path, overwrite=output.overwrite, allowed=allowed, journal=journal) as temp:
            plan = job_plan(directory, key, spec.job_id, lambda: hashed or jobs.sampled_plan(spec.sql, parts))
            sorted_parquet = plan.shape == "sorted_ranges" and output.format == "parquet"
            apart = executor.apart and reads_only_files(spec.sql)
            store = FileStore(
                jobs, directory, output, names, jobs.nullable() if sorted_parquet else None, apart
            )
            done = set(store.done)
            reading = bucketed(jobs, store, plan, len(plan.parts), directory)
            ran, resplit, at_once, nodes = executor.run_parts(jobs, reading, plan, split_again(jobs, plan, parts))
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
    return _Ran(result, len(plan.parts), sum(1 for n in ran if n in done), len(resplit), at_once, nodes)


def _run_in_order(jobs: Steps, parts: int, names: list[str]) -> _Ran:
    """A full ORDER BY answered inline: its range parts in order, until `max_rows` rows."""
    plan = jobs.sampled_plan(jobs.spec.sql, parts)
    store = RowStore(jobs, names, jobs.spec.max_rows)
    resplit = SERIAL.run_parts(jobs, store, plan, split_again(jobs, plan, parts)).resplit  # rows in order
    if jobs.stats is None:
        raise InternalError("a split run finished without running a step")
    result = QueryResult(store.columns, store.rows, len(store.rows), store.truncated, jobs.stats)
    jobs.done()
    return _Ran(result, len(plan.parts), 0, len(resplit))


def _run_in_schema(jobs: Steps, plan: Plan, parts: int, names: list[str], executor: PartExecutor) -> _Ran:
    """Parts as tables of a scratch schema, and the combine over a view of their union as the last job."""
    spec = jobs.spec
    schema = scratch_schema(spec.job_id or secrets.token_hex(4))
    combine, rename_view = _combine_sql(plan, schema, names)
    done = _prepare_schema(jobs.run, schema, plan.to_json().decode(), spec.job_id)
    directory = job_directory(jobs.settings.state_directory, spec.job_id or anonymous_name())
    succeeded = False
    try:
        kept: TableStore | ParquetStore = TableStore(jobs, schema, done)
        if executor.apart and reads_only_files(spec.sql):
            kept = _parquet_parts(jobs, plan, parts, directory)
            done = kept.done
        store = bucketed(jobs, kept, plan, parts, directory)
        tables, resplit, at_once, nodes = executor.run_parts(jobs, store, plan, split_again(jobs, plan, parts))
        union = " UNION ALL ".join(f"SELECT * FROM {kept.relation(t)}" for t in tables)
        aliases = f" AS u({', '.join(quoted(n) for n in names)})" if rename_view else " AS u"
        jobs.run(
            f"CREATE OR REPLACE VIEW {quoted(schema)}.{PARTS_RELATION} AS SELECT * FROM ({union}){aliases}"
        )
        params = jobs.params_for(combine)
        result = jobs.run(combine, final=True, params=params, output=spec.output, max_rows=spec.max_rows)
        succeeded = True
    finally:
        # A job with a job_id keeps its finished parts after a failure, so the same request resumes.
        if succeeded or spec.job_id is None:
            shutil.rmtree(directory, ignore_errors=True)
            try:
                jobs.run(f"DROP SCHEMA IF EXISTS {quoted(schema)} CASCADE", on=CleanupCall(jobs.call))
            except SidecarError:
                log.warning(
                    "could not drop the scratch schema %s in %s", schema, jobs.database, exc_info=True
                )
    return _Ran(result, len(plan.parts), sum(1 for t in tables if t in done), len(resplit), at_once, nodes)


def _parquet_parts(jobs: Steps, plan: Plan, parts: int, directory: Path) -> ParquetStore:
    """Parts kept as Parquet files in the job directory (they run apart from the database), with
    the part query's column types; the directory records the request, so a resume reuses them
    only for the same one."""
    spec, request = jobs.spec, jobs.request
    key = JobKey(spec.sql, parts, None if request.own_database else jobs.database, "parts", spec.params)
    job_plan(directory, key, spec.job_id, lambda: plan)
    first = plan.parts[0].sql
    columns = jobs.run(f"SELECT * FROM ({first}) LIMIT 0", params=jobs.params_for(first), max_rows=0).columns
    return ParquetStore(jobs, directory, columns)


def _body(sql: str) -> str:
    return sql.strip().rstrip(";")


def run_partitioned(
    request: SplitRun, parts: int, plan: Plan | None, executor: PartExecutor = SERIAL
) -> tuple[QueryResult, Attempt]:
    """Run the request's query as `parts` parts plus a combine; the final result and one Attempt for it all.

    `plan` is its hash plan, or None for a full ORDER BY (split by ranges of sampled bounds);
    `executor` runs the parts (sidecar.jobs.executors), the combine is the same whichever does.
    """
    spec = request.spec
    jobs = Steps(request)
    described = jobs.run(f"SELECT column_name FROM (DESCRIBE {_body(spec.sql)})", params=spec.params)
    names = [row[0] for row in described.rows]
    if plan is not None and plan.shape == "join":
        probe = key_types_sql(spec.sql)  # equal keys of different types would hash apart
        check_key_types(spec.sql, [row[1] for row in jobs.run(probe, params=jobs.params_for(probe)).rows])
    if spec.output is not None and (plan is None or _passes_through(plan)):
        ran = _run_to_files(jobs, plan, parts, names, executor)
    elif plan is None:
        ran = _run_in_order(jobs, parts, names)
    else:
        ran = _run_in_schema(jobs, plan, parts, names, executor)
    stats = msgspec.structs.replace(
        ran.result.stats,
        partitions=ran.partitions,
        reused_parts=ran.reused,
        resplit_parts=ran.resplit,
        parts_at_once=ran.at_once,
        nodes=ran.nodes,
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
    existing = job(kept_tables_sql(), params=[schema]).rows
    tables = {row[0] for row in existing}
    if not tables:
        job(f"CREATE SCHEMA IF NOT EXISTS {quoted(schema)}")
        job(f"CREATE TABLE {quoted(schema)}.{PLAN_TABLE} AS SELECT $1::VARCHAR AS plan", params=[fingerprint])
        return set()
    recorded = job(schema_plan_sql(schema)).rows if PLAN_TABLE in tables else []
    if not recorded or recorded[0][0] != fingerprint:
        raise mismatch(job_id)
    return {t for t in tables if t.startswith(PART_PREFIX)}
