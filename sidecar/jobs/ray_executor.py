"""The Ray executor: each part of a split query a Ray task, the combine here, with the same code.

Only a query that reads files (not its database's tables) has parts a Ray task can run: each
task runs the sidecar's own in-process engine (`sidecar.engine.executor.Engine`) in an in-memory
DuckDB, under `memory_limit` derived from the part's memory (Ray's `memory=` only schedules, it
enforces nothing) and with as many threads as it has CPUs. It writes the part file atomically
into the job directory, which every node must see (the state directory on a shared filesystem),
then its row count beside it: that marks the part done, so a retry or a resumed `job_id` skips it.

- A part that runs out of memory is sent again with twice the memory, up to the largest node's;
  then it is split again like a local part (`run_part`'s re-split, the same sub-plans).
- A Ray worker that dies (killed, the node lost) is retried by Ray itself (`max_retries`).
- `$/cancelRequest` cancels the running tasks (`ray.cancel(force=True)`).
- Ray is imported only when a request asks for it, in the request's thread (never the reader's);
  a local head is started with its logs in Ray's session directory and none sent to the driver,
  so nothing reaches the sidecar's stdout (the JSON-RPC channel).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec
import psutil

from sidecar.config.settings import duckdb_limit_for
from sidecar.engine.database import MEMORY, EngineSettings
from sidecar.engine.monitor import Cancellation
from sidecar.errors import ERROR_CLASSES, FeatureDisabled, InternalError, InvalidParams, OutOfMemory, WorkerCrashed
from sidecar.jobs.executors import PartResults, most_at_once
from sidecar.jobs.kept import write_atomic
from sidecar.jobs.part_stores import MAX_RESPLIT_DEPTH, PartStore, PartTask, SplitAgain, TaskStore
from sidecar.jobs.steps import Steps
from sidecar.jobs.types import NodeParts, QuerySpec
from sidecar.partition import Plan

__all__ = ["RAY_HINT", "PartOutcome", "RayCluster", "RayParts", "import_ray", "run_part_task"]

log = logging.getLogger(__name__)

RAY_HINT = "Install the optional extra: pip install 'bmad-data[ray]' (in a checkout: scripts/bootstrap.sh ray)."
TASK_RETRIES = 3
"""Times Ray reruns a part whose worker died (killed, out of memory by the OS, node lost)."""
FAULT_ENV = "BMAD_DATA_TEST_RAY_FAULT"
"""Test-only fault hook: `kill_once:<part name>:<mark file>` makes that part's first task write its
pid to the mark file and kill its own worker (SIGKILL); the retry finds the mark and runs."""


def import_ray() -> ModuleType:
    """The `ray` module, or FEATURE_DISABLED naming the extra that brings it."""
    try:
        import ray
    except ImportError as exc:
        raise FeatureDisabled(
            "the ray executor needs the optional `ray` package, which is not installed",
            hint=RAY_HINT,
            details={"extra": "ray", "import_error": str(exc)},
        ) from exc
    return ray


class PartOutcome(msgspec.Struct, frozen=True):
    """How one part task ended, on which node, and when it ran there (wall clock, seconds)."""

    name: str
    node: str
    started: float
    ended: float
    rows: int = 0
    code: str = "ok"
    message: str = ""
    hint: str | None = None


def run_part_task(task: PartTask, engine: EngineSettings, fault: str | None) -> PartOutcome:
    """The body of one Ray task: the part's COPY in the sidecar's engine, its file renamed into
    place, then its row count written beside it."""
    import ray

    node = ray.get_runtime_context().get_node_id()
    started = time.time()
    directory = Path(task.rows_path).parent
    write_atomic(directory / f"{task.name}.running", f"{node} {os.getpid()}".encode())
    kind, _, rest = (fault or "").partition(":")
    part, _, mark = rest.partition(":")
    if kind == "kill_once" and part == task.name and mark and not Path(mark).exists():
        Path(mark).write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    from sidecar.engine.executor import Engine
    from sidecar.errors import SidecarError

    spec = QuerySpec(task.sql, database=MEMORY, params=task.params, max_rows=0, output=task.output)
    engine_here = Engine()
    try:
        result = engine_here.run_query(spec, engine, Cancellation())
    except SidecarError as error:
        return PartOutcome(task.name, node, started, time.time(), code=error.code, message=error.message, hint=error.hint)
    finally:
        engine_here.close()
        (directory / f"{task.name}.running").unlink(missing_ok=True)
    write_atomic(Path(task.rows_path), str(result.row_count).encode())
    return PartOutcome(task.name, node, started, time.time(), rows=result.row_count)


class RayCluster:
    """The sidecar's one connection to Ray (Ray allows one per process): made on first use, from the
    request's thread, and left at close (a local head this sidecar started stops with it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.address: str | None = None
        self.started = False
        self.ray: ModuleType | None = None
        self._processes: dict[int, psutil.Process] = {}

    def remember(self) -> None:
        """Note the processes of a local head this sidecar started while they are its children: a
        signal to the sidecar's process group may end the raylet first, orphaning its agents."""
        if self.started:
            for process in psutil.Process().children(recursive=True):
                if _is_ray(process):
                    self._processes.setdefault(process.pid, process)

    def connect(self, address: str | None) -> ModuleType:
        ray = import_ray()
        with self._lock:
            if self.ray is not None:
                if address != self.address:
                    raise InvalidParams(
                        f"this sidecar is joined to Ray at {self.address or 'its own local head'}, not {address}",
                        hint="One sidecar joins one Ray cluster: restart it to use another address.",
                    )
                return ray
            root = str(Path(__file__).resolve().parents[2])  # where `sidecar` is importable from
            ray.init(
                address=address,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.WARNING,
                namespace="bmad-data",
                runtime_env={"env_vars": {"PYTHONPATH": root}},
            )
            self.ray, self.address, self.started = ray, address, address is None
            self.remember()
            log.info("joined Ray (%s): %s", address or "a local head", ray.cluster_resources())
            return ray

    def close(self) -> None:
        """Leave Ray; a local head this sidecar started goes, with the agents its raylet leaves
        behind for a minute or more after `ray.shutdown()` (seen here: the dashboard and
        runtime-env agents; tests/test_ray_executor.py checks that none outlives the sidecar)."""
        with self._lock:
            if self.ray is None:
                return
            self.remember()
            ours = list(self._processes.values())
            self.ray.shutdown()
            self.ray = None
        _, alive = psutil.wait_procs(ours, timeout=5)
        for process in alive:
            log.info("stopping Ray's %s (%d), left after shutdown", process.name(), process.pid)
            process.kill()
        psutil.wait_procs(alive, timeout=5)


def _is_ray(process: psutil.Process) -> bool:
    try:
        return "ray" in " ".join(process.cmdline()[:3]).lower()
    except psutil.Error:
        return False


@dataclass
class _Run:
    """The state of one `run_parts`: what is pending, what finished, how each part was split."""

    jobs: Steps
    store: TaskStore
    split_again: SplitAgain
    pending: dict[Any, tuple[tuple[int, ...], str, int, str]] = field(default_factory=dict)
    """Each running task's part path, SQL, memory, and the `.running` mark it writes on its node."""
    children: dict[tuple[int, ...], list[tuple[int, ...]]] = field(default_factory=dict)
    resplit: list[str] = field(default_factory=list)
    outcomes: list[PartOutcome] = field(default_factory=list)
    failed: dict[str, int] = field(default_factory=dict)


def _name(path: tuple[int, ...]) -> str:
    return "part_" + "_".join(map(str, path))


class RayParts:
    """A `PartExecutor` whose parts are Ray tasks; see the module's docstring."""

    apart = True

    def __init__(self, cluster: RayCluster, address: str | None = None) -> None:
        self.cluster, self.address = cluster, address
        self.fault = os.environ.get(FAULT_ENV)

    def run_parts(self, jobs: Steps, store: PartStore, plan: Plan, split_again: SplitAgain) -> PartResults:
        if not store.isolated or not isinstance(store, TaskStore):
            raise InvalidParams(
                "the ray executor runs only queries that read files (Parquet, CSV, JSON), not tables "
                "of a database or rows returned in order",
                hint="Read the data with read_parquet()/read_csv() in the SQL, write a full ORDER BY to an "
                "output file, or run it on this machine's workers (the local executor).",
            )
        ray = self.cluster.connect(self.address)
        run = _Run(jobs, store, split_again)
        alive = [n["Resources"] for n in ray.nodes() if n["Alive"]]
        node_memory = max(int(r.get("memory", 0)) for r in alive)
        node_cpus = max(int(r.get("CPU", 1)) for r in alive)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        threads = max(1, min(jobs.settings.threads, node_cpus, cpus // max(1, len(plan.parts))))
        # a part's share of a node, by its CPUs; never more than the job's own budget
        memory = min(jobs.settings.memory_budget_bytes, node_memory * threads // node_cpus)
        remote = ray.remote(run_part_task)
        tops = [(p.index,) for p in plan.parts]

        def submit(path: tuple[int, ...], sql: str, memory: int) -> None:
            name = _name(path)
            if name in store.done:
                return
            if any(done.startswith(name + "_") for done in store.done):  # re-split by an earlier run
                return expand(path, sql, None)
            task = store.task(name, sql)
            ref = remote.options(
                memory=memory,
                num_cpus=threads,
                max_retries=TASK_RETRIES,
                retry_exceptions=False,
                scheduling_strategy="SPREAD",  # parts over every node, not packed onto the first
            ).remote(task, self._engine(jobs, memory, threads), self.fault)
            run.pending[ref] = (path, sql, memory, str(Path(task.rows_path).with_suffix(".running")))

        def expand(path: tuple[int, ...], sql: str, error: OutOfMemory | None) -> None:
            sub = store.sub_plan(_name(path), lambda: split_again(path, sql))
            if len(sub.parts) < 2 and error is not None:
                raise error
            log.info("%s ran out of memory; split again in %d", _name(path), len(sub.parts))
            run.resplit.append(_name(path))
            run.children[path] = [(*path, p.index) for p in sub.parts]
            for part in sub.parts:
                submit((*path, part.index), part.sql, memory)

        for part in plan.parts:
            submit((part.index,), part.sql, memory)
        unregister = jobs.call.on_cancel(lambda: self._cancel(ray, run))
        self.cluster.remember()
        try:
            while run.pending:
                if jobs.call.cancel_event.is_set():
                    self._cancel(ray, run)
                    raise jobs.call.cancelled_error()
                ready, _ = ray.wait(list(run.pending), num_returns=1, timeout=0.2)
                for ref in ready:
                    path, sql, given, _ = run.pending.pop(ref)
                    try:
                        outcome = self._outcome(ray, ref, path)
                    except ray.exceptions.TaskCancelledError:  # cancelled before the loop saw it
                        self._cancel(ray, run)
                        raise jobs.call.cancelled_error() from None
                    run.outcomes.append(outcome)
                    if outcome.code == "ok":
                        self._progress(jobs, run, len(plan.parts))
                        continue
                    run.failed[outcome.node] = run.failed.get(outcome.node, 0) + 1
                    error = _error(outcome)
                    if not isinstance(error, OutOfMemory):
                        self._cancel(ray, run)
                        raise error
                    if given < node_memory:
                        log.info("%s ran out of memory at %d bytes; again with more", outcome.name, given)
                        submit(path, sql, min(node_memory, given * 2))
                    elif len(path) > MAX_RESPLIT_DEPTH:
                        self._cancel(ray, run)
                        raise error
                    else:
                        expand(path, sql, error)
        finally:
            unregister()
        names = [name for top in tops for name in self._flatten(run, top)]
        ran = [(o.started, o.ended) for o in run.outcomes if o.code == "ok"]
        return PartResults(names, run.resplit, most_at_once(ran) or 1, self._nodes(run))

    @staticmethod
    def _engine(jobs: Steps, memory: int, threads: int) -> EngineSettings:
        """What the task's DuckDB runs with: the limit a local worker of that ceiling gets."""
        settings = jobs.settings
        state = settings.state_directory
        return EngineSettings(
            memory_limit_bytes=duckdb_limit_for(memory),
            threads=threads,
            temp_directory=settings.temp_directory,
            max_temp_directory_size_bytes=settings.max_temp_directory_size_bytes,
            preserve_insertion_order=settings.preserve_insertion_order,
            allowed_directories=(*settings.allowed_directories, state),
            state_directory=state,
        )

    @staticmethod
    def _outcome(ray: ModuleType, ref: Any, path: tuple[int, ...]) -> PartOutcome:
        try:
            outcome: PartOutcome = ray.get(ref)
            return outcome
        except ray.exceptions.OutOfMemoryError as exc:  # Ray's own memory monitor killed it, every retry
            return PartOutcome(_name(path), "", 0, 0, code="OUT_OF_MEMORY", message=str(exc).splitlines()[0])
        except ray.exceptions.RayTaskError as exc:  # the task's Python failed outside the engine
            raise InternalError(
                f"the Ray task for {_name(path)} failed: {str(exc).splitlines()[-1]}",
                hint="Every node needs the same bmad-data (and DuckDB) as the sidecar; see "
                "docs/architecture/distributed-execution.md.",
            ) from exc
        except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError) as exc:
            raise WorkerCrashed(
                f"the Ray worker running {_name(path)} died {TASK_RETRIES + 1} times",
                details={"part": _name(path), "ray": str(exc).splitlines()[0]},
            ) from exc

    @staticmethod
    def _cancel(ray: ModuleType, run: _Run) -> None:
        for ref in list(run.pending):
            ray.cancel(ref, force=True)

    def _flatten(self, run: _Run, path: tuple[int, ...]) -> list[str]:
        if path not in run.children:
            return [_name(path)]
        return [n for child in run.children[path] for n in self._flatten(run, child)]

    def _nodes(self, run: _Run) -> dict[str, NodeParts]:
        """Parts done and failed per node, and those running now (from the tasks' `.running` marks)."""
        done: dict[str, int] = {}
        for outcome in run.outcomes:
            if outcome.code == "ok":
                done[outcome.node] = done.get(outcome.node, 0) + 1
        running: dict[str, int] = {}
        for _, _, _, mark in run.pending.values():
            try:
                node = Path(mark).read_text().split()[0]
            except (OSError, IndexError):
                continue
            running[node] = running.get(node, 0) + 1
        nodes = set(done) | set(running) | set(run.failed)
        return {n: NodeParts(done.get(n, 0), running.get(n, 0), run.failed.get(n, 0)) for n in sorted(nodes)}

    def _progress(self, jobs: Steps, run: _Run, parts: int) -> None:
        """A 'partition' sample after each part, with the parts per node (the log has them too)."""
        finished = sum(1 for o in run.outcomes if o.code == "ok")
        nodes = {n: msgspec.to_builtins(p) for n, p in self._nodes(run).items()}
        jobs.progress(min(finished, parts) - 1 if finished else 0, parts, nodes)
        log.info("ray parts: %s", nodes)


_BY_CODE = {cls.code: cls for cls in ERROR_CLASSES}


def _error(outcome: PartOutcome) -> Exception:
    cls = _BY_CODE.get(outcome.code, InternalError)
    return cls(outcome.message, hint=outcome.hint, details={"part": outcome.name, "node": outcome.node})
