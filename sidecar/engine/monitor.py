"""Watching running jobs: memory, spill, progress and deadlines, from one thread.

A single sampler thread visits every running job about ten times a second: it records
peaks (process RSS, DuckDB buffer memory, spill bytes), reads DuckDB's progress for the
job's cursor, hands a sample to the job's listener a few times a second, and stops a job
whose deadline has passed. Short queries never wait for it: each job takes one sample of
its own when it ends.

Reading DuckDB's memory tables is a query of its own, which wakes DuckDB's threads; ten of them
a second put the Node bridge's event-loop delay at 1.4-1.8x the in-process anchor's p99
(docs/performance/latency.md). DuckDB's buffers live in the process's memory, so while the
process's RSS holds steady and under half of DuckDB's limit they cannot have moved much, nor be
near that limit: they are read once a second and the samples between reuse the figures. When
the RSS moves by 16 MiB or more since the last read, or reaches half the limit, every sample
reads them (the watchdog grows a job from its buffer use; the monitor's duckdb_memory alerts
read them too).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Callable, Protocol

import duckdb
import msgspec
import psutil

__all__ = ["JobContext", "Cancellation", "Sample", "JobWatch", "Sampler"]

log = logging.getLogger(__name__)

SAMPLE_INTERVAL_S = 0.1
REPORT_INTERVAL_S = 0.25
FULL_SAMPLE_EVERY_S = 1.0
"""DuckDB's memory tables are read at least this often..."""
FULL_SAMPLE_RSS_SHARE = 0.5
"""...and at every sample once the process's RSS reaches this share of DuckDB's limit..."""
FULL_SAMPLE_RSS_MOVE = 16 * 1024**2
"""...or has moved by this much since the last read."""


class JobContext(Protocol):
    """What the engine needs from whoever asked for the work (a JSON-RPC call, a worker job)."""

    cancel_event: threading.Event
    cancel_reason: str | None

    def cancel(self, reason: str = "cancelled") -> None: ...

    def on_cancel(self, callback: Callable[[], None]) -> Callable[[], None]: ...


class Cancellation:
    """A JobContext's cancellation: a reason, an event, and callbacks run once when it is set.

    Both a JSON-RPC call (in the sidecar) and a job (in a worker) are one of these.
    """

    def __init__(self) -> None:
        self.cancel_event = threading.Event()
        self.cancel_reason: str | None = None
        self._cancel_lock = threading.Lock()
        self._on_cancel: list[Callable[[], None]] = []

    def cancel(self, reason: str = "cancelled") -> None:
        """Ask the work to stop: `reason` is "cancelled", "timeout", "shutdown", ..."""
        with self._cancel_lock:
            if self.cancel_event.is_set():
                return
            self.cancel_reason = reason
            self.cancel_event.set()
            callbacks = list(self._on_cancel)
        for callback in callbacks:
            try:
                callback()
            except Exception:  # an interrupt racing the end of a query is harmless; report it
                log.warning("a cancel callback failed (%s)", reason, exc_info=True)

    def on_cancel(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Run `callback` on cancellation (now, if already cancelled); returns an unregister function."""
        with self._cancel_lock:
            already = self.cancel_event.is_set()
            if not already:
                self._on_cancel.append(callback)
        if already:
            callback()

        def unregister() -> None:
            with self._cancel_lock:
                if callback in self._on_cancel:
                    self._on_cancel.remove(callback)

        return unregister


class Sample(msgspec.Struct, frozen=True):
    phase: str
    percent: float | None
    elapsed_ms: int
    rss_bytes: int
    buffer_bytes: int
    spill_bytes: int
    part: int | None = None
    """In a split run: the part running (1-based) of `parts`."""
    parts: int | None = None
    nodes: dict[str, dict[str, int]] | None = None
    """In a split run on Ray: parts done, running and failed per node id."""


class JobWatch:
    """The sampler's record of one running job."""

    def __init__(
        self,
        job: JobContext,
        memory: Callable[[], tuple[int, int]],
        cursor: duckdb.DuckDBPyConnection | None,
        listener: Callable[[Sample], None] | None,
        deadline: float | None,
        limit: int | None = None,
    ) -> None:
        self.job = job
        self.memory = memory
        self.limit = limit
        """DuckDB's memory limit at the job's start (the watchdog only grows it, so reading the
        tables from half of it on is never late); None: read them at every sample."""
        self.cursor = cursor
        self.listener = listener
        self.deadline = deadline
        self.started = time.monotonic()
        self.phase = "starting"
        self.percent: float | None = None
        self.best_percent = 0.0
        self.peak_rss = 0
        self.peak_buffer = 0
        self.peak_spill = 0
        self.last_report = 0.0
        self.last_buffer = 0
        self.last_spill = 0
        self.last_full = 0.0
        self.last_full_rss = 0
        self.lock = threading.Lock()

    def set_phase(self, phase: str) -> None:
        self.phase = phase
        self.percent = None
        self.best_percent = 0.0

    def _progress(self) -> float | None:
        if self.cursor is None or self.phase != "running":
            return None
        try:
            value = self.cursor.query_progress()
        except duckdb.Error:
            return None
        if not 0.0 <= value <= 100.0:
            return None  # DuckDB says -1 when it cannot tell
        # DuckDB's estimate is per pipeline and can move backwards; never show a lie that moves back.
        self.best_percent = max(self.best_percent, value)
        return self.best_percent

    def sample(self, rss_bytes: Callable[[], int], *, light: bool = False, now: float | None = None) -> Sample:
        """Take a sample; `light` skips DuckDB's memory tables (about 0.5 ms) and reuses the last
        figures; with `now`, the sampler's periodic sample, they are skipped while `needs_full` says so."""
        rss = rss_bytes()
        if now is not None:
            light = not self.needs_full(rss, now)
        if light:
            buffer, spill = self.last_buffer, self.last_spill
        else:
            self.last_full, self.last_full_rss = time.monotonic(), rss
            try:
                buffer, spill = self.memory()
            except duckdb.Error:
                buffer, spill = 0, 0
            self.last_buffer, self.last_spill = buffer, spill
        percent = self._progress()
        with self.lock:
            self.peak_rss = max(self.peak_rss, rss)
            self.peak_buffer = max(self.peak_buffer, buffer)
            self.peak_spill = max(self.peak_spill, spill)
            self.percent = percent
        elapsed = int((time.monotonic() - self.started) * 1000)
        return Sample(self.phase, percent, elapsed, rss, buffer, spill)

    def needs_full(self, rss: int, now: float) -> bool:
        """Whether a periodic sample at `now`, the process at `rss` bytes, must read DuckDB's memory tables.

        >>> MiB = 1024**2
        >>> watch = JobWatch(None, lambda: (0, 0), None, None, None, limit=1000 * MiB)
        >>> watch.last_full, watch.last_full_rss = 10.0, 400 * MiB
        >>> watch.needs_full(410 * MiB, 10.5), watch.needs_full(500 * MiB, 10.5), watch.needs_full(400 * MiB, 11.0)
        (False, True, True)
        >>> watch.needs_full(417 * MiB, 10.5), watch.needs_full(383 * MiB, 10.5)
        (True, True)
        """
        if self.limit is None or now - self.last_full >= FULL_SAMPLE_EVERY_S:
            return True
        if abs(rss - self.last_full_rss) >= FULL_SAMPLE_RSS_MOVE:
            return True
        return rss >= FULL_SAMPLE_RSS_SHARE * self.limit

    def report(self, sample: Sample) -> None:
        if self.listener is not None:
            try:
                self.listener(sample)
            except Exception:  # a listener's failure must not stop the sampling
                log.warning("progress listener failed", exc_info=True)


def own_rss_reader() -> Callable[[], int]:
    """A function giving this process's resident set size in bytes.

    On Linux it reads `/proc/self/statm` through a descriptor kept open (about 1.5 us, where
    `psutil.Process().memory_info()` opens the file each time: about 12 us); every job reads it
    twice. Elsewhere, or after a fork (the descriptor names the process that opened it), psutil.

    >>> read = own_rss_reader()
    >>> abs(read() - psutil.Process().memory_info().rss) < 16 * 1024 * 1024
    True
    """
    process = psutil.Process()
    try:
        fd = os.open("/proc/self/statm", os.O_RDONLY)
    except OSError:
        return lambda: process.memory_info().rss
    pid, page = os.getpid(), os.sysconf("SC_PAGE_SIZE")

    def rss() -> int:
        if os.getpid() != pid:
            return psutil.Process().memory_info().rss
        return int(os.pread(fd, 128, 0).split()[1]) * page

    return rss


class Sampler:
    """One daemon thread sampling every watched job."""

    def __init__(self) -> None:
        self._jobs: set[JobWatch] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._rss = own_rss_reader()
        self._thread = threading.Thread(target=self._loop, name="sampler", daemon=True)
        self._thread.start()

    def watch(self, watch: JobWatch) -> JobWatch:
        with self._lock:
            self._jobs.add(watch)
        return watch

    def unwatch(self, watch: JobWatch) -> Sample:
        """Stop watching; the job's final sample (taken now) completes its peaks.

        A job shorter than the sampling interval gets a light final sample (RSS only): reading
        DuckDB's memory tables would double the cost of a trivial query, and such a job holds
        next to nothing in DuckDB's buffers anyway.
        """
        with self._lock:
            self._jobs.discard(watch)
        light = time.monotonic() - watch.started < SAMPLE_INTERVAL_S
        return watch.sample(self._rss, light=light)

    def _loop(self) -> None:
        while not self._stopped.wait(SAMPLE_INTERVAL_S):
            with self._lock:
                jobs = list(self._jobs)
            now = time.monotonic()
            for watch in jobs:
                if watch.job.cancel_event.is_set() and watch.cursor is not None:
                    # An interrupt that lands between two statements, or just before one starts,
                    # is lost by DuckDB; repeat it until the job has stopped.
                    try:
                        watch.cursor.interrupt()
                    except duckdb.ConnectionException:
                        pass  # the job closed its cursor after this loop listed it: it has stopped
                if (
                    watch.deadline is not None
                    and now >= watch.deadline
                    and not watch.job.cancel_event.is_set()
                ):
                    log.info("job ran past its deadline; stopping it")
                    watch.job.cancel("timeout")
                sample = watch.sample(self._rss, now=now)
                if watch.listener is not None and now - watch.last_report >= REPORT_INTERVAL_S:
                    watch.last_report = now
                    watch.report(sample)

    def close(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=2)
