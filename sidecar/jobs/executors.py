"""The executor seam: "run these parts" as one small interface, and the local executors behind it.

A split run (`sidecar.jobs.partitioned`) decides where the parts go (a `PartStore`) and how a
part that ran out of memory is split again; a `PartExecutor` decides where and when the parts
run, and hands back their names in plan order. The combine that follows is the same code
whichever executor ran the parts.

- `SerialParts`: one part after another through the store (the database's worker, or any worker
  for parts that only read files); what every split ran with before this seam.
- `ParallelParts`: parts that only read files run at once, each as its own supervised job on a
  free worker; admission (`sidecar.workers.admission`) grants each its ceiling, so no more run at
  once than the machine budget and `max_concurrent_jobs` allow. The combine waits for all.
- `sidecar.jobs.ray_executor.RayParts`: each part a Ray task on a cluster.
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from collections.abc import Callable
from typing import NamedTuple, Protocol

from sidecar.errors import InternalError
from sidecar.jobs.part_stores import PartStore, SplitAgain, run_part
from sidecar.jobs.steps import Steps
from sidecar.jobs.types import NodeParts
from sidecar.partition import Plan

__all__ = [
    "SERIAL",
    "ParallelParts",
    "PartExecutor",
    "PartResults",
    "SerialParts",
    "most_at_once",
    "parallel_width",
]

log = logging.getLogger(__name__)


class PartResults(NamedTuple):
    """What a part executor hands the combine: the parts holding the rows, in plan order, the parts
    that ran out of memory and were split again, and the most parts that really ran at once."""

    names: list[str]
    resplit: list[str]
    at_once: int = 1
    nodes: dict[str, NodeParts] | None = None
    """Parts per node, for an executor that spans nodes (Ray)."""


class PartExecutor(Protocol):
    """Runs every part of `plan` through `store` (re-splitting with `split_again` a part that alone
    ran out of memory); raises the first part's error no retry here could absorb."""

    apart: bool
    """Runs parts away from the database's worker when it can: a query that reads only files then
    keeps its parts as files (`ParquetStore`) rather than tables of the database."""

    def run_parts(self, jobs: Steps, store: PartStore, plan: Plan, split_again: SplitAgain) -> PartResults: ...


class SerialParts:
    """One part after another, in plan order."""

    apart = False

    def run_parts(self, jobs: Steps, store: PartStore, plan: Plan, split_again: SplitAgain) -> PartResults:
        names: list[str] = []
        resplit: list[str] = []
        for part in plan.parts:
            jobs.progress(part.index, len(plan.parts))
            names.extend(run_part(store, (part.index,), part.sql, split_again, resplit))
        return PartResults(names, resplit)


SERIAL = SerialParts()


def most_at_once(runs: list[tuple[float, float]]) -> int:
    """The most intervals (start, end) that overlap at one instant (0 for none).

    >>> most_at_once([(0, 2), (1, 3), (2.5, 4)]), most_at_once([(0, 1), (1, 2)]), most_at_once([])
    (2, 1, 0)
    """
    edges = sorted([(start, 1) for start, _ in runs] + [(end, -1) for _, end in runs])
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


class PartStopped(InternalError):
    """A part not started (or not re-split further) because another part of the run failed."""


class _Stopping:
    """A store whose next step fails once `stop` is set: a failed part ends the others' re-splits."""

    def __init__(self, inner: PartStore) -> None:
        self.inner, self.stop = inner, threading.Event()
        self.done, self.isolated = inner.done, inner.isolated

    def compute(self, name: str, sql: str) -> None:
        if self.stop.is_set():
            raise PartStopped(f"{name} was not run: another part failed")
        self.inner.compute(name, sql)

    def sub_plan(self, name: str, make: Callable[[], Plan]) -> Plan:
        return self.inner.sub_plan(name, make)


def parallel_width(parts: int, max_jobs: int, cpus: int | None) -> int:
    """How many parts may run at once: no more than the parts, the jobs admission lets run at once,
    or the CPUs (a part that waits for a core only holds its share of the memory budget longer).

    >>> parallel_width(8, 2, 2), parallel_width(8, 4, 64), parallel_width(3, 16, 64), parallel_width(8, 4, None)
    (2, 4, 3, 1)
    """
    return max(1, min(parts, max_jobs, cpus or 1))


class ParallelParts:
    """Parts that only read files, several at once on free workers; others one after another.

    A store says whether its parts may leave the database's worker (`isolated`): only then do
    they run at once. Each part is an ordinary supervised job, so admission decides how many
    really run together, each under its own ceiling, with `threads` shared out among them.
    """

    apart = True

    def __init__(self, width: int | None = None) -> None:
        self.width = width
        """Parts at once; None: `parallel_width` of the request's settings and this machine's CPUs."""

    def run_parts(self, jobs: Steps, store: PartStore, plan: Plan, split_again: SplitAgain) -> PartResults:
        settings = jobs.settings
        width = self.width or parallel_width(len(plan.parts), settings.max_concurrent_jobs, os.cpu_count())
        if width < 2 or not store.isolated:
            return SERIAL.run_parts(jobs, store, plan, split_again)
        jobs.apart_threads = max(1, settings.threads // width)
        log.info("running %d parts, %d at once", len(plan.parts), width)
        resplit: list[str] = []
        finished = [0]
        lock = threading.Lock()
        stopping = _Stopping(store)

        def one(index: int, sql: str) -> list[str]:
            if jobs.call.cancel_event.is_set():
                raise jobs.call.cancelled_error()
            try:
                names = run_part(stopping, (index,), sql, split_again, resplit)
            except BaseException:
                stopping.stop.set()  # the others stop at their next step, as a serial run would
                raise
            with lock:
                finished[0] += 1
                jobs.progress(finished[0] - 1, len(plan.parts))
            return names

        with ThreadPoolExecutor(max_workers=width, thread_name_prefix="part") as pool:
            futures: list[Future[list[str]]] = [pool.submit(one, p.index, p.sql) for p in plan.parts]
            _, pending = wait(futures, return_when=FIRST_EXCEPTION)
            if pending and stopping.stop.is_set():
                for future in pending:  # parts not started yet never start; running ones stop soon
                    future.cancel()
                wait(pending)
        errors = [f.exception() for f in futures if not f.cancelled() and f.exception() is not None]
        if errors:
            raise next((e for e in errors if not isinstance(e, PartStopped)), errors[0])
        return PartResults([n for f in futures for n in f.result()], resplit, most_at_once(jobs.apart_runs))
