"""A worker process: `python -m sidecar.workers.child`, spawned and supervised by the sidecar.

It runs one job at a time with the in-process engine (sidecar.engine) while another thread
keeps reading commands, so an interrupt or a new memory limit reaches a running query at once.
Two threads take turns (leader/follower): the one reading when a job arrives runs it, and the
other, waiting for its turn, becomes the reader. The job starts on the thread that read it, with
no hand-off between threads on its way (a hand-off costs a wake-up, ~0.05 ms on an idle machine;
docs/performance/latency.md). Whatever happens to this process, the sidecar survives it.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import IO, Any

import msgspec

from sidecar.engine.executor import Engine
from sidecar.engine.monitor import Cancellation, Sample, own_rss_reader
from sidecar.errors import InternalError, SidecarError
from sidecar.protocol.framing import claim_stdout
from sidecar.workers.protocol import (
    Done,
    Failed,
    Forget,
    Interrupt,
    Progress,
    Ready,
    Run,
    SetLogLevel,
    SetMemoryLimit,
    Stop,
    ToWorker,
    read_frame,
    write_frame,
)

log = logging.getLogger("sidecar.worker")

IDLE_RSS_BYTES = 192 * 1024 * 1024
"""Above this RSS after a job, the worker makes DuckDB give its cached buffers back."""


class _Job(Cancellation):
    """The engine's view of a job run on behalf of the sidecar."""

    def __init__(self, number: int) -> None:
        super().__init__()
        self.number = number


class Worker:
    def __init__(self, commands: IO[bytes], events: IO[bytes]) -> None:
        self.commands = commands
        self.events = events
        self.engine = Engine()
        self.jobs: dict[int, _Job] = {}
        self.current_settings: Any = None
        self._send_lock = threading.Lock()
        self._decoder = msgspec.msgpack.Decoder(ToWorker)
        self._rss = own_rss_reader()
        self._reading = threading.Lock()
        """Held by the thread whose turn it is to read commands."""
        self._stopping = False

    def send(self, message: Any) -> None:
        with self._send_lock:
            try:
                write_frame(self.events, message)
            except (BrokenPipeError, ValueError, OSError):
                # The sidecar is gone (killed): nobody reads the answer. Stop the job quietly;
                # the main thread sees EOF on the command pipe and shuts the worker down.
                for job in list(self.jobs.values()):
                    job.cancel("shutdown")

    def serve(self) -> None:
        self.send(Ready(os.getpid()))
        follower = threading.Thread(target=self._take_turns, name="jobs", daemon=True)
        follower.start()
        self._take_turns()
        for job in list(self.jobs.values()):
            job.cancel("shutdown")
        follower.join(timeout=10)
        self.engine.close()

    def _take_turns(self) -> None:
        """Read commands while it is this thread's turn; run the job that ends the turn; repeat."""
        while True:
            with self._reading:
                try:
                    item = None if self._stopping else self._read_until_job()
                except Exception:  # a frame that does not decode: the stream is broken, end the
                    # worker (both threads) so the sidecar sees it die and starts another
                    log.exception("unreadable command; stopping")
                    self._stopping, item = True, None
                    for running in list(self.jobs.values()):
                        running.cancel("shutdown")
            if item is None:
                return
            message, job = item
            if len(self.jobs) > 1:  # the sidecar sends one job at a time; a second one gets a
                # thread of its own, so that one of these two is always reading
                threading.Thread(target=self._run, args=item, daemon=True).start()
            else:
                self._run(message, job)

    def _read_until_job(self) -> tuple[Run, _Job] | None:
        """Serve commands until a job arrives (returned, registered so an interrupt finds it) or
        the sidecar says stop or goes away (None; the other thread stops at its turn)."""
        while True:
            payload = read_frame(self.commands)
            if payload is None:
                break
            message = self._decoder.decode(payload)
            if isinstance(message, Run):
                job = _Job(message.job)
                self.jobs[message.job] = job
                return message, job
            elif isinstance(message, Interrupt):
                log.debug("job %d: interrupted (%s)", message.job, message.reason)
                target = self.jobs.get(message.job)
                if target is not None:
                    target.cancel(message.reason)
            elif isinstance(message, SetMemoryLimit):
                self.engine.set_memory_limit(message.limit_bytes)
            elif isinstance(message, Forget):  # sent to idle workers only: no job uses the database
                self.engine.forget(message.database)
            elif isinstance(message, SetLogLevel):
                logging.getLogger().setLevel(message.level.upper())  # as main's basicConfig set it
            elif isinstance(message, Stop):
                break
        self._stopping = True
        for job in list(self.jobs.values()):
            job.cancel("shutdown")
        return None

    def _run(self, message: Run, job: _Job) -> None:
        log.debug("job %d: %s", message.job, message.kind)
        def listener(sample: Sample) -> None:
            # Periodic samples always go back (the watchdog grows jobs from their buffer use);
            # the final one only when the client asked for progress.
            if message.progress or sample.phase != "done":
                self.send(Progress(message.job, sample))

        try:
            if message.kind == "query" and message.query is not None:
                result: Any = self.engine.run_query(message.query, message.settings, job, listener)
            elif message.kind == "analyze" and message.analyze is not None:
                spec = message.analyze
                result = self.engine.analyze(
                    spec.path,
                    sample_rows=spec.sample_rows,
                    exact=spec.exact,
                    union_by_name=spec.union_by_name,
                    csv=spec.csv,
                    settings=message.settings,
                    job=job,
                    on_sample=listener,
                    timeout_ms=spec.timeout_ms,
                )
            else:
                raise InternalError(f"a {message.kind} job arrived without its spec")
            answer: Done | Failed = Done(message.job, msgspec.to_builtins(result))
        except SidecarError as err:
            answer = Failed(message.job, err.code, err.message, err.hint, _plain(err.details))
        except Exception as exc:  # a bug in the engine: report it, keep the worker serving
            log.exception("job %d failed unexpectedly", message.job)
            answer = Failed(message.job, "INTERNAL", f"{type(exc).__name__}: {exc}", InternalError.default_hint)
        # Done before the answer goes: the sidecar sends the next job as soon as it has it, and
        # that job must find this one gone (else it would run on a thread of its own) and the
        # memory given back (else the release could shrink DuckDB's limit under it).
        self.jobs.pop(message.job, None)
        self._give_back(message.job)
        self.send(answer)

    def _give_back(self, number: int) -> None:
        """An idle worker should hold next to nothing: admission control counts only running jobs.
        Reading RSS costs microseconds; shrinking DuckDB's limit costs a little more, so it
        happens only when there is something to give back."""
        if self._rss() > IDLE_RSS_BYTES:
            try:
                self.engine.idle()
            except Exception:
                log.warning("could not release cached memory after job %d", number, exc_info=True)


def _plain(details: dict[str, Any]) -> dict[str, Any]:
    return msgspec.to_builtins(details, builtin_types=None, str_keys=True, enc_hook=str)


def main() -> int:
    level = os.environ.get("BMAD_DATA_LOG_LEVEL", "info").upper()
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format=f"%(asctime)s %(levelname)s worker[{os.getpid()}] %(name)s: %(message)s",
    )
    events = claim_stdout()
    Worker(sys.stdin.buffer, events).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
