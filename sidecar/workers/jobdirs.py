"""Job directories: where a partitioned job keeps its part files, its plan and its buckets.

`<state>/jobs/<job_id>/` for a named job, `<state>/jobs/anon.<sidecar pid>.<hex>/` for one without
a `job_id` (a job_id cannot hold a dot, and `cleanup` can tell whether the sidecar that made it is
gone). `plan.json` records the request the parts belong to, so a re-sent request reuses them only
when it is the same request.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from sidecar.errors import InvalidParams
from sidecar.partition import Plan

__all__ = [
    "ANONYMOUS",
    "PLAN_FILE",
    "JobKey",
    "JobRecord",
    "anonymous_owner",
    "finished_parts",
    "job_directory",
    "job_plan",
    "jobs_root",
    "mismatch",
    "read_record",
    "write_atomic",
]

PLAN_FILE = "plan.json"
ANONYMOUS = "anon"
"""Job directories of requests without a job_id are `anon.<sidecar pid>.<hex>`: a job_id cannot hold a dot."""


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
    return {p.name.removesuffix(".rows") for p in directory.glob("part_*.rows")}


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
