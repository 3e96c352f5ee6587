"""`jobs.status` and `jobs.cancel`: the partitioned jobs a client named with a `job_id`.

A named job keeps its finished parts until it succeeds, so a failed or interrupted job can be
resumed by re-sending the same `query.run`: as files in its job directory
(`<state>/jobs/<job_id>/`) when its answer is an output file made of the parts' rows, otherwise
as tables in a scratch schema of its database. These methods show how far such a job got, and
discard it.
"""

from __future__ import annotations

import shutil
from typing import Annotated, Any

import msgspec

from sidecar.jobs.types import QuerySpec
from sidecar.methods import registry
from sidecar.protocol.dispatcher import Call
from sidecar.jobs.kept import (
    PART_PREFIX,
    PLAN_TABLE,
    finished_parts,
    job_directory,
    kept_tables_sql,
    read_record,
    scratch_schema,
)

__all__ = ["JobParams", "JobStatus"]

JobId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class JobParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    job_id: JobId
    database: str | None = None
    """The database the job ran in (default: the sidecar's own database)."""


class JobStatus(msgspec.Struct, frozen=True):
    job_id: str
    running: bool
    """A request with this job_id is in flight right now."""
    exists: bool
    """Finished parts are kept for a resume."""
    parts_done: int
    parts_total: int | None
    cancelled: bool = False
    worker_pid: int | None = None
    """The pid of the worker process running the job's current step; None when the job does not
    run, or is between two steps. What to watch, or to kill, to see what happens to this job."""


def _run(call: Call, sql: str, database: str | None, params: Any = None) -> list[list[Any]]:
    session = call.session
    spec = QuerySpec(sql=sql, database=database, params=params, max_rows=10_000)
    return session.engine.run_query(spec, session.settings, call, None).rows


def _status(call: Call, p: JobParams) -> JobStatus:
    """What the job kept, in its scratch schema and in its job directory, and where it runs now.

    While the job runs it holds its database's turn, so its scratch schema is not read then (that
    would wait for the job): a running job's `parts_done` counts its job directory's parts only.
    """
    running_call = call.session.running_jobs.get(p.job_id)
    schema = scratch_schema(p.job_id)
    tables: set[str] = set()
    total = None
    if running_call is None:
        tables = {r[0] for r in _run(call, kept_tables_sql(), p.database, [schema])}
    if PLAN_TABLE in tables:
        plan = _run(
            call,
            f"SELECT json_array_length(json_extract(plan, '$.parts')) FROM \"{schema}\".{PLAN_TABLE}",
            p.database,
        )
        total = int(plan[0][0]) if plan and plan[0][0] is not None else None
    directory = job_directory(call.session.settings.state_directory, p.job_id)
    record = read_record(directory)
    if record is not None:
        total = len(record.plan.parts)
    pid = call.session.engine.worker_pid(running_call) if running_call is not None else None
    done = sum(1 for t in tables if t.startswith(PART_PREFIX)) + len(finished_parts(directory))
    exists = bool(tables) or directory.exists()
    return JobStatus(p.job_id, running_call is not None, exists, done, total, worker_pid=pid)


@registry.method("jobs.status", params=JobParams, result=JobStatus)
def status(call: Call, p: JobParams) -> JobStatus:
    """How far a named partitioned job got: parts finished and kept, and whether it runs now."""
    call.session.require()
    return _status(call, p)


@registry.method("jobs.cancel", params=JobParams, result=JobStatus)
def cancel(call: Call, p: JobParams) -> JobStatus:
    """Stop a named job if it runs, and discard the parts it kept (its next run starts afresh)."""
    session = call.session
    session.require()
    running = session.running_jobs.get(p.job_id)
    if running is not None:
        running.cancel("cancelled")
        running.finished.wait(30)
    before = _status(call, p)
    _run(call, f'DROP SCHEMA IF EXISTS "{scratch_schema(p.job_id)}" CASCADE', p.database)
    shutil.rmtree(job_directory(session.settings.state_directory, p.job_id), ignore_errors=True)
    return JobStatus(p.job_id, False, False, 0, before.parts_total, cancelled=before.exists or before.running)
