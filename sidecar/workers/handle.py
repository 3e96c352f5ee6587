"""The sidecar's side of one worker process: spawn it, talk to it, watch it die.

A reader thread turns the worker's frames into callbacks; when the pipe closes, the
handle learns how the process ended (exit code or signal) and fails the job it was
running with WORKER_CRASHED, unless the watchdog killed it on purpose and said why.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
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
        self.job: int | None = None
        self.future: Future[JobOutcome] | None = None
        self.on_progress: Callable[[Sample], None] | None = None
        self.killed_for: str | None = None
        self.peak_rss = 0
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._decoder = msgspec.msgpack.Decoder(FromWorker)
        self._reader = threading.Thread(target=self._read, name=f"worker-{self.pid}", daemon=True)
        self._reader.start()

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

    def start(self, run: Run, on_progress: Callable[[Sample], None] | None) -> Future[JobOutcome]:
        future: Future[JobOutcome] = Future()
        self.job, self.future, self.on_progress = run.job, future, on_progress
        self.peak_rss = 0
        self.killed_for = None
        if not self._send(run):
            self._died()
        return future

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
        self._reader.join(timeout=5)
        if self.proc.stdout:
            self.proc.stdout.close()

    # -- events --------------------------------------------------------------------------

    def _read(self) -> None:
        assert self.proc.stdout is not None
        while True:
            payload = read_frame(self.proc.stdout)
            if payload is None:
                break
            message = self._decoder.decode(payload)
            if isinstance(message, Ready):
                self.ready.set()
            elif isinstance(message, Progress):
                listener = self.on_progress
                if listener is not None and message.job == self.job:
                    listener(message.sample)
            elif isinstance(message, (Done, Failed)):
                self._finish(
                    message.job,
                    JobOutcome(result=message.result)
                    if isinstance(message, Done)
                    else JobOutcome(error=message),
                )
        self._died()

    def _finish(self, job: int, outcome: JobOutcome) -> None:
        with self._lock:
            future = self.future if self.job == job else None
            if future is not None:
                self.job, self.future, self.on_progress = None, None, None
        if future is not None and not future.done():
            future.set_result(outcome)

    def _died(self) -> None:
        self.proc.wait()
        self.ready.set()
        with self._lock:
            future, self.job, self.future = self.future, None, None
        if future is not None and not future.done():
            future.set_exception(WorkerDied(self.proc.returncode, self.peak_rss, self.killed_for))
