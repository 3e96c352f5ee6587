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


def test_duckdbs_memory_tables_are_read_once_a_second_while_the_process_is_far_below_the_limit():
    """Each read is a query that wakes DuckDB's threads: ten a second put the bridge's event-loop
    p99 at 1.4-1.8x the in-process anchor's (docs/performance/latency.md). Near the limit every
    sample still reads them, for the watchdog's grow-in-place."""
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT range AS i FROM range(1000000)")
    reads = {"far": 0, "near": 0}
    reports = {"far": 0, "near": 0}

    def memory_of(name: str):
        def read() -> tuple[int, int]:
            reads[name] += 1
            row = con.cursor().execute("SELECT sum(memory_usage_bytes)::BIGINT FROM duckdb_memory()").fetchone()
            return int(row[0] or 0), 0
        return read

    def report_to(name: str, seen: list[int]):
        def listener(sample) -> None:
            reports[name] += 1
            seen.append(sample.buffer_bytes)
        return listener

    buffers: dict[str, list[int]] = {"far": [], "near": []}
    sampler = Sampler()
    try:
        far = JobWatch(Cancellation(), memory_of("far"), None, report_to("far", buffers["far"]), None, limit=1 << 40)
        near = JobWatch(Cancellation(), memory_of("near"), None, report_to("near", buffers["near"]), None, limit=1 << 20)
        sampler.watch(far)
        sampler.watch(near)
        threading.Event().wait(3.0)
    finally:
        sampler.close()
    assert reports["far"] >= 4 and reports["near"] >= 4, reports
    assert reads["far"] < reports["far"], (reads, reports)  # reports every 0.25 s, reads once a second
    assert reads["near"] >= reports["near"], (reads, reports)  # every 0.1 s sample reads
    assert min(buffers["far"]) > 0, "a sample between reads carries the last figures, not zero"
