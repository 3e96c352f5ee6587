"""One connection's view of the daemon's shared engine: its own default database.

A stdio sidecar gives a query without `database` a fresh database of its own, removed when the
sidecar ends. In a daemon every client would otherwise share one, see each other's tables, and
wait for each other (one job at a time per database). So each connection gets its own default
database, `default-<daemon pid>.c<number>.duckdb` in the client's state directory (the name the
engine's cleanup already sweeps once that pid is gone), removed when the client leaves; the worker that
held it goes back to the pool warm (`WorkerPool.retire`), so the next client starts no process.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import msgspec

from sidecar.config import Settings
from sidecar.jobs.runner import JobRunner, Listener
from sidecar.jobs.types import QueryResult, QuerySpec

__all__ = ["ConnectionEngine"]

_DEFAULT = (None, "", ":memory:")


class ConnectionEngine:
    """What a daemon's session calls `engine`: the shared `JobRunner`, with a private default database."""

    def __init__(self, shared: JobRunner, number: int) -> None:
        self.shared = shared
        self.name = f"default-{os.getpid()}.c{number}.duckdb"
        self.used: set[str] = set()
        """The default databases this client ran in (one per state directory its settings named)."""

    def default_database(self, settings: Settings) -> str:
        state = Path(settings.state_directory)
        state.mkdir(parents=True, exist_ok=True)
        path = str(state / self.name)
        self.used.add(path)
        return path

    @property
    def supervisor(self) -> Any:
        return self.shared.supervisor

    @property
    def settings(self) -> Settings:
        return self.shared.settings

    def run_query(
        self, spec: QuerySpec, settings: Settings, call: Any, on_sample: Listener, **options: Any
    ) -> QueryResult:
        """JobRunner.run_query on this client's default database; `options` (parts, executor, ...)
        pass through unchanged, so a new one needs no edit here (a missing `executor` broke it once)."""
        if spec.database in _DEFAULT:
            spec = msgspec.structs.replace(spec, database=self.default_database(settings))
        return self.shared.run_query(spec, settings, call, on_sample, **options)

    def analyze(self, spec: Any, settings: Settings, call: Any, on_sample: Listener) -> Any:
        return self.shared.analyze(spec, settings, call, on_sample)

    def worker_pid(self, call: Any) -> int | None:
        return self.shared.worker_pid(call)

    def cleanup(self, *, aggressive: bool) -> tuple[int, int]:
        return self.shared.cleanup(aggressive=aggressive)

    def close(self) -> None:
        """The client left: its default database's files go, and its worker waits warm for the next."""
        for database in self.used:
            if self.shared.supervisor.pool.retire(database):
                continue  # its worker closed it and removed its files, and waits for the next client
            path = Path(database)
            for leftover in path.parent.glob(path.name + "*"):
                leftover.unlink(missing_ok=True)
