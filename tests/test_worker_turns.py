"""A worker process's two threads take turns reading commands and running jobs
(sidecar/workers/child.py): whichever reads a job runs it, the other reads on, so a command
still reaches the worker while a job runs, even in the case the sidecar never creates, two
jobs sent to one worker at once."""

from __future__ import annotations

import os
import threading

import pytest

from sidecar.bench.hop import engine_settings
from sidecar.jobs.types import QuerySpec
from sidecar.workers.handle import WorkerHandle
from sidecar.workers.protocol import Run

FOREVER = "SELECT count(*) FROM range(1000000000000) WHERE hash(range) % 7 = 1"


@pytest.fixture
def worker():
    handle = WorkerHandle(env=dict(os.environ, BMAD_DATA_LOG_LEVEL="warning"))
    assert handle.wait_ready(60)
    yield handle
    handle.kill("test over")
    handle.stop(timeout=5)


def run(tmp_path, job, sql):
    spec = QuerySpec(sql=sql, database=str(tmp_path / f"w{job}.duckdb"), max_rows=100)
    return Run(job=job, kind="query", settings=engine_settings(tmp_path), query=spec)


def outcomes(handle, jobs, timeout):
    """Each job's outcome, read on a thread that gives up after `timeout` seconds."""
    found: dict[int, object] = {}

    def read():
        for job in jobs:
            found[job] = handle.wait(job, None)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    return found


def test_jobs_one_after_another_alternate_threads_and_all_answer(worker, tmp_path):
    for job in range(1, 21):
        worker.start(run(tmp_path, job, f"SELECT {job} AS n"))
        outcome = worker.wait(job, None)
        assert outcome.error is None and outcome.result["rows"] == [[job]]


def test_an_interrupt_reaches_a_running_job(worker, tmp_path):
    worker.start(run(tmp_path, 1, FOREVER))
    worker.interrupt(1, "cancelled")
    found = outcomes(worker, [1], timeout=30)
    assert found[1].error is not None and found[1].error.code == "CANCELLED"


def test_two_jobs_at_once_still_leave_a_reader_for_their_interrupts(worker, tmp_path):
    worker.start(run(tmp_path, 1, FOREVER))
    worker.start(run(tmp_path, 2, FOREVER))
    worker.interrupt(1, "cancelled")
    worker.interrupt(2, "cancelled")
    found = outcomes(worker, [2], timeout=30)  # job 1's frames, read while waiting for 2, are skipped
    assert 2 in found, "the second job's interrupt was never read: no thread was left reading"
    assert found[2].error.code == "CANCELLED"
    worker.start(run(tmp_path, 3, "SELECT 3 AS n"))  # and the worker serves on
    assert outcomes(worker, [3], timeout=30)[3].result["rows"] == [[3]]


def test_a_frame_that_does_not_decode_ends_the_worker_so_the_sidecar_replaces_it(worker):
    # whichever of the two threads reads it, the worker stops (exit code 0) rather than
    # serving on with one thread, where nobody would read an interrupt while a job runs
    from sidecar.workers.protocol import write_frame

    with worker._lock:
        write_frame(worker.proc.stdin, b"\xc1 not msgpack")  # a raw frame no decoder accepts
    assert worker.proc.wait(timeout=30) == 0
