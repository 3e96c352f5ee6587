"""`query.run`: SQL in, rows (or an atomic output file) out."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from sidecar.jobs.types import ExecutorSpec, OutputSpec, QueryResult, QuerySpec
from sidecar.methods import registry
from sidecar.methods.progress import progress_listener
from sidecar.errors import InvalidParams
from sidecar.protocol.dispatcher import Call

__all__ = ["PartitionSpec", "QueryParams", "executor_from"]


class PartitionSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Run the query as independent parts plus an exact combine (see docs/architecture/partitioning-strategies.md)."""

    parts: Annotated[int, msgspec.Meta(ge=0, le=256)]
    """How many parts (2..256): rows are shared out by a hash of the query's keys. 0: never split up
    front, whatever the estimate says (the retry ladder may still split after a memory failure)."""


class QueryParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    sql: str
    """One or more statements; the last one's result is returned (or written to `output`)."""
    database: str | None = None
    """A DuckDB file inside the allowed directories; default: the sidecar's own database, a private
    file in the state directory shared by all requests and removed when the sidecar exits."""
    params: list[Any] | dict[str, Any] | None = None
    """Values for `$1`/`?` or `$name` placeholders (single statement only)."""
    max_rows: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] | None = None
    """Rows returned inline (default from settings, 10,000); more sets `truncated`. Big results belong in `output`."""
    output: OutputSpec | None = None
    """Write the full result to a file, atomically."""
    timeout_ms: Annotated[int, msgspec.Meta(gt=0)] | None = None
    """Stop the query after this long (default: the thresholds file's timeout_threshold)."""
    settings: dict[str, Any] | None = None
    """Per-request settings: memory_limit (the job's whole budget), threads, ... (see config.get)."""
    job_id: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")] | None = None
    """Names a partitioned job: if it fails or the sidecar dies, the same request with the same
    job_id resumes it, reusing the parts already finished (part files in its job directory under the
    state directory, or tables in a scratch schema of the query's database) with the same number of parts."""
    partition: PartitionSpec | None = None
    """Run partitioned in `parts` parts; a query whose shape cannot be split is a SQL_ERROR naming it."""
    executor: ExecutorSpec | None = None
    """Where a split run's parts run: `{kind: "local"}` (this machine) or `{kind: "ray", address?}`
    (a Ray cluster; needs the extra `ray`). Default: the config's `execution.executor`."""


def executor_from(setting: str) -> ExecutorSpec | None:
    """The `executor` setting as a request's `executor` (None: this machine's workers).

    >>> executor_from("local"), executor_from("ray:head:6379")
    (None, ExecutorSpec(kind='ray', address='head:6379'))
    """
    kind, _, address = setting.partition(":")
    return None if kind == "local" else ExecutorSpec("ray", address or None)


def _claim_job_id(call: Call, p: QueryParams) -> None:
    """A named job is running from the moment its request is read, before it is queued: a
    `jobs.status` sent right after it sees it running instead of reading (and waiting for) its
    database, and a second request with the same job_id is refused at once."""
    if p.job_id is not None and call.session.running_jobs.setdefault(p.job_id, call) is not call:
        raise InvalidParams(
            f"job_id '{p.job_id}' is running already",
            hint="Wait for it, or stop it with jobs.cancel; a job_id names one run at a time.",
        )


@registry.method("query.run", params=QueryParams, result=QueryResult, claim=_claim_job_id)
def run(call: Call, p: QueryParams) -> QueryResult:
    """Run SQL against a database and return its rows, or write them to a file atomically."""
    try:
        return _run(call, p)
    finally:
        if p.job_id is not None and call.session.running_jobs.get(p.job_id) is call:
            call.session.running_jobs.pop(p.job_id, None)  # claimed by _claim_job_id


def _run(call: Call, p: QueryParams) -> QueryResult:
    session = call.session
    session.require()
    settings = session.settings_for(p.settings)
    spec = QuerySpec(
        sql=p.sql,
        database=p.database if p.database is not None else settings.database_path,
        params=p.params,
        max_rows=p.max_rows if p.max_rows is not None else settings.max_rows,
        output=p.output,
        timeout_ms=p.timeout_ms if p.timeout_ms is not None else settings.timeout_ms,
        job_id=p.job_id,
    )
    parts = p.partition.parts if p.partition is not None else None
    if parts == 1:
        raise InvalidParams(
            "partition.parts must be 0 (no split up front) or 2..256",
            hint="One part is the whole query: send no `partition`, or `{parts: 0}` to skip the estimate.",
        )
    executor = p.executor if p.executor is not None else executor_from(settings.executor)
    return session.engine.run_query(spec, settings, call, progress_listener(call), parts=parts, executor=executor)
