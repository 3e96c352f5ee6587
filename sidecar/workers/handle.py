"""The sidecar's side of one worker process: spawn it, talk to it, watch it die.

`run` sends a job and reads the worker's frames on the calling thread until the job's end:
progress goes to its listener as it arrives, and the answer is read by the thread that waits
for it, with no reader thread in between (a handoff between threads costs the hop about a
tenth of a millisecond; docs/performance/latency.md). When the pipe closes, the handle learns
how the process ended (exit code or signal) and the job fails with WorkerDied, unless the
watchdog killed it on purpose and said why. Nothing is read between jobs: the worker sends
nothing then.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import msgspec
import psutil

from sidecar.engine.monitor import Sample
from sidecar.workers.protocol import (
    Done,
    Failed,
    Forget,
    FromWorker,
    Interrupt,
    Progress,
    Ready,
    Run,
    SetLogLevel,
    SetMemoryLimit,
    Stop,
    read_frame,
    write_frame,
)

__all__ = ["WorkerHandle", "WorkerDied", "JobOutcome"]

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]


class WorkerDied(Exception):
    """The worker process ended while running a job."""

    def __init__(self, returncode: int | None, peak_rss: int, killed_for: str | None) -> None:
        self.returncode = returncode
        self.peak_rss = peak_rss
        self.killed_for = killed_for
        self.signal = -returncode if returncode is not None and returncode < 0 else None
        name = signal.Signals(self.signal).name if self.signal else None
        super().__init__(f"worker exited with {name or returncode}")
        self.signal_name = name


class JobOutcome(msgspec.Struct):
    """What a finished job sent back: its result, or its error fields."""

    result: Any = None
    error: Failed | None = None


class WorkerHandle:
    def __init__(self, *, env: dict[str, str] | None = None) -> None:
        full_env = dict(os.environ if env is None else env)
        self.log_level = full_env.get("BMAD_DATA_LOG_LEVEL", "info")
        """The level the worker logs at: BMAD_DATA_LOG_LEVEL at its start, then `set_log_level`'s."""
        full_env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(REPO_ROOT), full_env.get("PYTHONPATH", "")])
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sidecar.workers.child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=full_env,
        )
        self.pid = self.proc.pid
        self.ps = psutil.Process(self.pid)
        self.ready = threading.Event()
        self.database: str | None = None
        """The database this worker has open (it owns it: no other worker may open it)."""
        self.killed_for: str | None = None
        self.peak_rss = 0
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._decoder = msgspec.msgpack.Decoder(FromWorker)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def rss(self) -> int:
        try:
            value = self.ps.memory_info().rss
        except psutil.Error:
            return 0
        self.peak_rss = max(self.peak_rss, value)
        return value

    def cpu_seconds(self) -> float:
        try:
            times = self.ps.cpu_times()
        except psutil.Error:
            return 0.0
        return times.user + times.system

    # -- commands ------------------------------------------------------------------------

    def _send(self, message: Any) -> bool:
        try:
            assert self.proc.stdin is not None
            with self._lock:
                write_frame(self.proc.stdin, message)
            return True
        except (BrokenPipeError, OSError, ValueError):
            return False

    def wait_ready(self, timeout: float) -> bool:
        """Read the worker's Ready frame, waiting at most `timeout` seconds for it to arrive; False
        when it did not (then `wait` takes it before the job's frames) or the worker died starting."""
        if self.ready.is_set():
            return True
        assert self.proc.stdout is not None
        try:
            arrived, _, _ = select.select([self.proc.stdout], [], [], timeout)
        except (OSError, ValueError):
            return False
        if arrived:
            payload = read_frame(self.proc.stdout)
            if payload is not None and isinstance(self._decoder.decode(payload), Ready):
                self.ready.set()
        return self.ready.is_set()

    def start(self, run: Run) -> None:
        """Send a job; `wait` reads its answer (a worker whose pipe is broken is dying: `wait` says how)."""
        self.peak_rss = 0
        self.killed_for = None
        self._send(run)

    def wait(self, job: int, on_progress: Callable[[Sample], None] | None) -> JobOutcome:
        """Read the worker's frames on this thread until job `job` ends: its progress goes to
        `on_progress`; raises WorkerDied when the process ends first."""
        return self._read_until_done(job, on_progress)

    def interrupt(self, job: int, reason: str) -> None:
        self._send(Interrupt(job, reason))

    def forget(self, database: str) -> bool:
        """Have the worker close `database` and remove its files; it then serves any job."""
        sent = self._send(Forget(database))
        if sent:
            self.database = None
        return sent

    def set_memory_limit(self, limit_bytes: int) -> None:
        self._send(SetMemoryLimit(limit_bytes))

    def set_log_level(self, level: str) -> None:
        self.log_level = level
        self._send(SetLogLevel(level))

    def kill(self, why: str) -> None:
        """SIGKILL the worker; the job it ran fails with `why` (e.g. "memory_ceiling")."""
        self.killed_for = why
        try:
            self.proc.kill()
        except ProcessLookupError:
            pass

    def pause(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def stop(self, timeout: float = 5.0) -> None:
        self._send(Stop())
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()

    # -- events --------------------------------------------------------------------------

    def _read_until_done(self, job: int, on_progress: Callable[[Sample], None] | None) -> JobOutcome:
        assert self.proc.stdout is not None
        while True:
            payload = read_frame(self.proc.stdout)
            if payload is None:
                raise self._died()
            message = self._decoder.decode(payload)
            if isinstance(message, Ready):
                self.ready.set()
            elif isinstance(message, Progress):
                if on_progress is not None and message.job == job:
                    try:
                        on_progress(message.sample)
                    except Exception:  # a listener's failure must not lose the job's answer
                        log.exception("progress listener of job %d failed", job)
            elif message.job == job:  # Done or Failed
                return JobOutcome(result=message.result) if isinstance(message, Done) else JobOutcome(error=message)

    def _died(self) -> WorkerDied:
        self.proc.wait()
        self.ready.set()
        return WorkerDied(self.proc.returncode, self.peak_rss, self.killed_for)
