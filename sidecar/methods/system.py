"""`system.resources`: what the machine (or container) really has, right now, and the named jobs
running on it with the worker process each runs in."""

from __future__ import annotations

import time

import msgspec

from sidecar.methods import registry
from sidecar.protocol.dispatcher import Call
from sidecar.resources import Resources

__all__ = ["RunningJob", "SystemResources"]


class RunningJob(msgspec.Struct, frozen=True, kw_only=True):
    """A `query.run` that named a `job_id` and is in flight."""

    job_id: str
    request_id: int | str | None
    """The id of the `query.run` request running it (what `$/cancelRequest` takes)."""
    elapsed_ms: int
    """Since the request arrived."""
    worker_pid: int | None
    """The pid of the worker process running the job's current step; None while it waits for a
    worker or is between two steps (as in `jobs.status`)."""


class SystemResources(Resources, frozen=True, kw_only=True):
    running_jobs: list[RunningJob] = []
    """The named jobs in flight, oldest first. Requests without a `job_id` are not listed."""


@registry.method("system.resources", params=None, result=SystemResources, inline=True)
def resources(call: Call, _: None) -> SystemResources:
    """Memory (physical, available, cgroup limit), CPUs (usable, quota), spill disk space, running jobs."""
    session = call.session
    machine = session.refresh_resources()
    now = time.monotonic()
    running = sorted(dict(session.running_jobs).items(), key=lambda item: item[1].started)
    jobs = [
        RunningJob(
            job_id=job_id,
            request_id=job_call.id,
            elapsed_ms=int((now - job_call.started) * 1000),
            worker_pid=session.engine.worker_pid(job_call),
        )
        for job_id, job_call in running
    ]
    return SystemResources(**msgspec.structs.asdict(machine), running_jobs=jobs)
