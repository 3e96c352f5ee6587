"""Worker processes: a warm spare for quick starts, and one owner per open database.

A DuckDB database file has one writer process at a time (DuckDB's own lock), so every job
on a database goes to the worker that owns it, one job at a time, in order. Jobs that need
no database (dataset.analyze) run on any free worker. A dead worker is dropped and its spill
directory removed; the next job gets a fresh one.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Callable, Mapping

from sidecar.workers.handle import WorkerHandle

__all__ = ["WorkerPool", "FairLock"]

log = logging.getLogger(__name__)


class FairLock:
    """A lock granted in arrival order, whose waiting can be abandoned (a cancelled request)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: deque[object] = deque()
        self._held = False

    def acquire(self, *, cancelled: Callable[[], bool], on_wait: Callable[[], None] | None = None) -> bool:
        ticket = object()
        with self._cond:
            self._queue.append(ticket)
            told = False
            while self._held or self._queue[0] is not ticket:
                if cancelled():
                    self._queue.remove(ticket)
                    self._cond.notify_all()
                    return False
                if not told and on_wait is not None:
                    told = True
                    on_wait()
                self._cond.wait(0.1)
            self._queue.popleft()
            self._held = True
            return True

    def release(self) -> None:
        with self._cond:
            self._held = False
            self._cond.notify_all()


class WorkerPool:
    def __init__(
        self,
        env: Mapping[str, str],
        after_death: Callable[[WorkerHandle], None],
        *,
        spares: int = 1,
        log_level: str = "info",
    ) -> None:
        self._env = dict(env)
        self._log_level = log_level
        self._after_death = after_death
        self._spares_wanted = spares
        self._spares: list[WorkerHandle] = []
        self._owners: dict[str, WorkerHandle] = {}
        self._db_locks: dict[str, FairLock] = {}
        self._busy: set[WorkerHandle] = set()
        self._lock = threading.Lock()
        self._closed = False
        self.keep_returned = False
        """A daemon sets it: a worker back from a job waits warm as a spare even beyond the spares
        wanted (the spare its job took was replaced already), so the next job starts no process."""

    def _spawn(self) -> WorkerHandle:
        with self._lock:
            env = {**self._env, "BMAD_DATA_LOG_LEVEL": self._log_level}
        handle = WorkerHandle(env=env)
        log.debug("started worker %d", handle.pid)
        return handle

    def prewarm(self) -> None:
        """Keep a spare worker started, so a job never waits for Python and DuckDB to load."""
        with self._lock:
            missing = self._spares_wanted - len([h for h in self._spares if h.alive])
            if self._closed or missing <= 0:
                return
        spawned = [self._spawn() for _ in range(missing)]
        with self._lock:
            self._spares.extend(spawned)

    def _take_spare(self) -> WorkerHandle:
        with self._lock:
            while self._spares:
                handle = self._spares.pop()
                if handle.alive:
                    break
            else:
                handle = None
        if handle is None:
            handle = self._spawn()
        threading.Thread(target=self.prewarm, daemon=True).start()
        handle.wait_ready(30)
        return handle

    def database_lock(self, database: str) -> FairLock:
        """Jobs on one database run one at a time, in the order they arrived."""
        with self._lock:
            return self._db_locks.setdefault(database, FairLock())

    def acquire(self, database: str | None) -> WorkerHandle:
        """A worker for a job: the database's owner (hold `database_lock` first), or a free one."""
        if database is None:
            handle = self._take_spare()
        else:
            with self._lock:
                handle = self._owners.get(database)
                if handle is not None and not handle.alive:
                    del self._owners[database]
                    handle = None
            if handle is None:
                handle = self._take_spare()
                handle.database = database
                with self._lock:
                    self._owners[database] = handle
        with self._lock:
            self._busy.add(handle)
            self._tune(handle)  # a spare started before the last set_log_level
        return handle

    def set_log_level(self, level: str) -> None:
        """Every worker logs at `level` from now on: the running ones at once, new ones from their start."""
        with self._lock:
            self._log_level = level
            for handle in {*self._spares, *self._owners.values(), *self._busy}:
                self._tune(handle)

    def _tune(self, handle: WorkerHandle) -> None:
        """Tell a worker the level if it has another (under self._lock, so the last level sent wins)."""
        if handle.log_level != self._log_level and handle.alive:
            handle.set_log_level(self._log_level)

    def release(self, handle: WorkerHandle) -> None:
        with self._lock:
            self._busy.discard(handle)
            dead = not handle.alive
            if dead and handle.database is not None and self._owners.get(handle.database) is handle:
                del self._owners[handle.database]
            keep_as_spare = not dead and handle.database is None and not self._closed
            if keep_as_spare and len(self._spares) < self._spares_wanted + int(self.keep_returned):
                self._spares.append(handle)
                return
        if dead:
            self.forget(handle)
        elif handle.database is None:
            handle.stop()

    def forget(self, handle: WorkerHandle) -> None:
        """After a worker died: remove what it left behind (spill, temporary outputs)."""
        try:
            self._after_death(handle)
        except OSError:
            log.warning("cleaning up after worker %d failed", handle.pid, exc_info=True)

    def all_workers(self) -> list[WorkerHandle]:
        with self._lock:
            return [*self._spares, *self._owners.values(), *self._busy]

    def retire(self, database: str) -> bool:
        """The idle worker owning `database` closes it and removes its files (a daemon's client
        left, and its default database with it), then waits warm as a spare (see `keep_returned`);
        False when it is busy or there is none."""
        with self._lock:
            handle = self._owners.get(database)
            if handle is None or handle in self._busy:
                return False
            del self._owners[database]
            self._db_locks.pop(database, None)
        if not handle.forget(database):
            return False
        with self._lock:
            if not self._closed and handle.alive and len(self._spares) < self._spares_wanted + int(self.keep_returned):
                self._spares.append(handle)
                return True
        handle.stop()
        return True

    def stop_idle(self) -> int:
        """Stop idle database owners and spares (cleanup --aggressive): their caches go with them."""
        with self._lock:
            idle = [h for h in [*self._owners.values(), *self._spares] if h not in self._busy]
            self._owners = {k: h for k, h in self._owners.items() if h in self._busy}
            self._spares = []
        for handle in idle:
            handle.stop()
        return len(idle)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers = {*self._spares, *self._owners.values(), *self._busy}
            self._spares, self._owners = [], {}
        for handle in workers:
            handle.stop()
