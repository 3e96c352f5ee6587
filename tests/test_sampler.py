"""The per-job sampler thread (sidecar/engine/monitor.py) outlives the jobs it watches."""

from __future__ import annotations

import threading

import duckdb

from sidecar.engine.monitor import Cancellation, JobWatch, Sampler


def test_a_cancelled_job_whose_cursor_closed_does_not_stop_the_sampling():
    """The fuzzer found it: a job cancelled and finished between the loop's listing and its interrupt
    closed its cursor, the interrupt raised ConnectionException, and the sampler thread died with a
    traceback, so no later job of that worker was sampled or stopped at its deadline."""
    sampler = Sampler()
    try:
        closed = duckdb.connect()
        closed.close()
        gone = Cancellation()
        gone.cancel()
        sampler.watch(JobWatch(gone, lambda: (0, 0), closed, None, None))

        sampled = threading.Event()
        alive = JobWatch(Cancellation(), lambda: (0, 0), None, lambda sample: sampled.set(), None)
        sampler.watch(alive)
        assert sampled.wait(5), "the sampler stopped sampling after the closed cursor"
    finally:
        sampler.close()
