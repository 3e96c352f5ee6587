"""`system.resources` through a real sidecar: the machine, and the named jobs running on it with
the worker process each runs in."""

from __future__ import annotations

import time

import psutil
import pytest

from sidecar.client import RpcError, SidecarProcess

SLOW_READ = "SELECT count(*) AS n FROM range(3000000000) t(i) WHERE hash(i) % 7 = 1"


def running_on_a_worker(sc: SidecarProcess, timeout: float = 20.0) -> list[dict]:
    """`running_jobs` once every listed job runs on a worker."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = sc.request("system.resources")["running_jobs"]
        if jobs and all(job["worker_pid"] is not None for job in jobs):
            return jobs
        time.sleep(0.05)
    raise AssertionError(f"no job ran on a worker; stderr: {list(sc.stderr_tail)[-5:]}")


def test_system_resources_lists_the_named_jobs_running_with_their_worker_pid(sidecar, data_dir):
    idle = sidecar.request("system.resources")
    assert idle["running_jobs"] == [] and idle["usable_cpus"] >= 1
    # in a database of its own: one job at a time runs in a database, and this one must not wait
    other = str(data_dir / "other.duckdb")
    whole = {"sql": SLOW_READ, "partition": {"parts": 0}}
    unnamed_id, unnamed = sidecar.call("query.run", {**whole, "database": other})
    named_id, named = sidecar.call("query.run", {**whole, "job_id": "slow"})

    (job,) = running_on_a_worker(sidecar)  # the request without a job_id is not listed
    assert job["job_id"] == "slow" and job["request_id"] == named_id and job["elapsed_ms"] >= 0
    worker = psutil.Process(job["worker_pid"])
    assert worker.ppid() == sidecar.pid and worker.pid != sidecar.pid  # a worker process of this sidecar
    assert sidecar.request("jobs.status", {"job_id": "slow"})["worker_pid"] == job["worker_pid"]

    for request_id, future in ((named_id, named), (unnamed_id, unnamed)):
        sidecar.cancel(request_id)
        with pytest.raises(RpcError) as err:
            future.result(timeout=60)
        assert err.value.code == "CANCELLED"
    assert sidecar.request("system.resources")["running_jobs"] == []
