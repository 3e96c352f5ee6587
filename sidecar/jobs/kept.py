"""What a split job keeps between runs, and where: the one owner of that layout.

- The job directory `<state>/jobs/<job_id>/` for a named job, `<state>/jobs/anon.<sidecar pid>.<hex>/`
  for one without a `job_id` (a job_id cannot hold a dot, and `cleanup` can tell whether the
  sidecar that made it is gone): part files, their row counts, buckets, and `plan.json`, which
  records the request the parts belong to, so a re-sent request reuses them only when it is
  the same request.
- The scratch schema `"__bmad_job_<job_id>"` in the query's database: part tables `part_<i>` and
  `__plan`, the plan they follow.

The runner, the executors, `jobs.status`/`jobs.cancel` and `cleanup` all go through these names.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from sidecar.errors import InvalidParams
from sidecar.partition import Plan

__all__ = [
    "ANONYMOUS",
    "PART_PREFIX",
    "PLAN_FILE",
    "PLAN_TABLE",
    "SCHEMA_PREFIX",
    "JobKey",
    "JobRecord",
    "anonymous_name",
    "anonymous_owner",
    "finished_parts",
    "job_directory",
    "job_plan",
    "jobs_root",
    "kept_tables_sql",
    "mismatch",
    "read_record",
    "schema_plan_sql",
    "scratch_schema",
    "write_atomic",
]

PLAN_FILE = "plan.json"
ANONYMOUS = "anon"
"""Job directories of requests without a job_id are `anon.<sidecar pid>.<hex>`: a job_id cannot hold a dot."""
SCHEMA_PREFIX = "__bmad_job_"
PLAN_TABLE = "__plan"
PART_PREFIX = "part_"


class JobKey(msgspec.Struct, frozen=True):
    """What a job directory's parts were computed for; a re-sent request must match it to reuse them."""

    sql: str
    parts: int
    database: str | None
    """None: the sidecar's own database (a new file after a restart, so not part of the key)."""
    format: str
    params: Any = None


class JobRecord(msgspec.Struct, frozen=True):
    """`plan.json`: the request a job directory belongs to and the plan its parts follow."""

    key: JobKey
    plan: Plan


def jobs_root(state_directory: str) -> Path:
    return Path(state_directory) / "jobs"


def job_directory(state_directory: str, job_id: str) -> Path:
    return jobs_root(state_directory) / job_id


def anonymous_name() -> str:
    """A fresh name for the job directory (or scratch schema) of a request without a job_id."""
    return f"{ANONYMOUS}.{os.getpid()}.{secrets.token_hex(4)}"


def scratch_schema(job_id: str) -> str:
    """The name of a job's scratch schema (quote it in SQL).

    >>> scratch_schema("nightly_totals")
    '__bmad_job_nightly_totals'
    """
    return SCHEMA_PREFIX + job_id


def kept_tables_sql() -> str:
    """SQL listing the tables of the scratch schema named by its one parameter."""
    return "SELECT table_name FROM duckdb_tables() WHERE schema_name = $1"


def schema_plan_sql(schema: str) -> str:
    """SQL reading the plan (JSON) a scratch schema's parts follow.

    >>> schema_plan_sql("__bmad_job_a")
    'SELECT plan FROM "__bmad_job_a".__plan'
    """
    return f'SELECT plan FROM "{schema}".{PLAN_TABLE}'


def anonymous_owner(directory: Path) -> int | None:
    """The pid of the sidecar that made an anonymous job directory (None for a named job's)."""
    kind, _, rest = directory.name.partition(".")
    pid = rest.partition(".")[0]
    return int(pid) if kind == ANONYMOUS and pid.isdigit() else None


def read_record(directory: Path) -> JobRecord | None:
    try:
        return msgspec.json.decode((directory / PLAN_FILE).read_bytes(), type=JobRecord)
    except FileNotFoundError:
        return None


def finished_parts(directory: Path) -> set[str]:
    """Parts whose file is complete and whose row count was recorded after it."""
    return {p.name.removesuffix(".rows") for p in directory.glob(f"{PART_PREFIX}*.rows")}


def write_atomic(path: Path, data: bytes) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_bytes(data)
    os.replace(temp, path)


def mismatch(job_id: str | None) -> InvalidParams:
    return InvalidParams(
        f"job_id '{job_id}' belongs to another query or another number of parts",
        hint="Use a new job_id, or `jobs.cancel` this one to discard its finished parts.",
        details={"job_id": job_id},
    )


def job_plan(directory: Path, key: JobKey, job_id: str | None, make: Callable[[], Plan]) -> Plan:
    """The plan recorded in the job directory (sampled bounds are reused, not re-sampled), or a new one."""
    record = read_record(directory)
    if record is not None:
        if record.key != key:
            raise mismatch(job_id)
        return record.plan
    plan = make()
    directory.mkdir(parents=True, exist_ok=True)
    write_atomic(directory / PLAN_FILE, msgspec.json.encode(JobRecord(key, plan)))
    return plan
