"""A worker process: `python -m sidecar.workers.child`, spawned and supervised by the sidecar.

It runs one job at a time with the in-process engine (sidecar.engine), on a thread of its
own, while its main thread keeps reading commands, so an interrupt or a new memory limit
reaches a running query at once. Whatever happens to this process, the sidecar survives it.
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
from typing import IO, Any

import msgspec
import psutil

from sidecar.engine.executor import Engine
from sidecar.engine.monitor import Cancellation, Sample
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
        self._process = psutil.Process()
        # One job thread for the worker's life: the sidecar sends one job at a time, and a
        # thread kept ready starts it without the cost of a new one.
        self._queue: queue.SimpleQueue[tuple[Run, _Job] | None] = queue.SimpleQueue()
        self._runner = threading.Thread(target=self._jobs_loop, name="jobs", daemon=True)
        self._runner.start()

    def _jobs_loop(self) -> None:
        while (item := self._queue.get()) is not None:
            self._run(*item)

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
        while True:
            payload = read_frame(self.commands)
            if payload is None:
                break
            message = self._decoder.decode(payload)
            if isinstance(message, Run):
                job = _Job(message.job)
                self.jobs[message.job] = job
                self._queue.put((message, job))
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
        for job in list(self.jobs.values()):
            job.cancel("shutdown")
        self._queue.put(None)
        self._runner.join(timeout=10)
        self.engine.close()

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
            self.send(Done(message.job, msgspec.to_builtins(result)))
        except SidecarError as err:
            self.send(Failed(message.job, err.code, err.message, err.hint, _plain(err.details)))
        except Exception as exc:  # a bug in the engine: report it, keep the worker serving
            log.exception("job %d failed unexpectedly", message.job)
            self.send(
                Failed(message.job, "INTERNAL", f"{type(exc).__name__}: {exc}", InternalError.default_hint)
            )
        finally:
            self.jobs.pop(message.job, None)
            # An idle worker should hold next to nothing: admission control counts only running
            # jobs. Reading RSS costs microseconds; shrinking DuckDB's limit costs a little more,
            # so it happens only when there is something to give back.
            if self._process.memory_info().rss > IDLE_RSS_BYTES:
                try:
                    self.engine.idle()
                except Exception:
                    log.warning("could not release cached memory after job %d", message.job, exc_info=True)


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
