"""DuckDB instances: opened locked down, shared by the requests that name them.

One instance per database: the default is one in-memory database for the sidecar's
life; a path names a DuckDB file. Requests on the same database see each other's tables.
DuckDB's `memory_limit`, `threads` and spill settings belong to the instance, not to a
connection, so a request that asks for different values takes the instance exclusively
while it runs, and the instance's own values come back afterwards.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import duckdb
import msgspec

from sidecar.units import duckdb_size

__all__ = ["EngineSettings", "Database", "MEMORY", "IDLE_MEMORY_LIMIT"]

log = logging.getLogger(__name__)

MEMORY = ":memory:"
IDLE_MEMORY_LIMIT = 64 * 1024 * 1024


class EngineSettings(msgspec.Struct, frozen=True):
    """What an instance is opened and run with. Sizes are bytes."""

    memory_limit_bytes: int
    """DuckDB's own buffer-manager limit, derived below the job's memory budget."""
    threads: int
    temp_directory: str
    max_temp_directory_size_bytes: int
    preserve_insertion_order: bool
    allowed_directories: tuple[str, ...]
    state_directory: str
    """Where the sidecar keeps its own files: extensions (none are fetched), the output journal."""
    checkpoint_threshold_bytes: int = 16 * 1024 * 1024
    """DuckDB's `checkpoint_threshold`: WAL size that triggers a checkpoint (its default, 16 MiB)."""

    def instance_values(self) -> dict[str, str]:
        return {
            "memory_limit": duckdb_size(self.memory_limit_bytes),
            "threads": str(self.threads),
            "max_temp_directory_size": duckdb_size(self.max_temp_directory_size_bytes),
            "preserve_insertion_order": "true" if self.preserve_insertion_order else "false",
            "checkpoint_threshold": duckdb_size(self.checkpoint_threshold_bytes),
        }


class _SharedExclusiveLock:
    """Many shared holders or one exclusive holder; a waiting exclusive blocks new shared ones."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0
        self._exclusive = False
        self._waiting_exclusive = 0

    @contextmanager
    def hold(self, exclusive: bool) -> Iterator[None]:
        with self._cond:
            if exclusive:
                self._waiting_exclusive += 1
                self._cond.wait_for(lambda: not self._exclusive and self._shared == 0)
                self._waiting_exclusive -= 1
                self._exclusive = True
            else:
                self._cond.wait_for(lambda: not self._exclusive and self._waiting_exclusive == 0)
                self._shared += 1
        try:
            yield
        finally:
            with self._cond:
                if exclusive:
                    self._exclusive = False
                else:
                    self._shared -= 1
                self._cond.notify_all()


def _temp_dir_for(root: str, path: str) -> str:
    key = "memory" if path == MEMORY else hashlib.sha1(str(Path(path).resolve()).encode()).hexdigest()[:12]
    return str(Path(root) / f"{key}-{os.getpid()}")


class Database:
    """One DuckDB instance and a pool of cursors configured for jobs."""

    def __init__(self, path: str, settings: EngineSettings) -> None:
        self.path = path
        self.settings = settings
        self.temp_directory = _temp_dir_for(settings.temp_directory, path)
        Path(settings.temp_directory).mkdir(parents=True, exist_ok=True)  # DuckDB creates only the leaf
        extension_directory = Path(settings.state_directory) / "extensions"
        extension_directory.mkdir(parents=True, exist_ok=True)
        config = {
            "autoinstall_known_extensions": "false",
            "autoload_known_extensions": "false",
            "allow_community_extensions": "false",
            "extension_directory": str(extension_directory),
            "temp_directory": self.temp_directory,
            **settings.instance_values(),
        }
        self._con = duckdb.connect(path, config=config)
        # Order matters: allowed_directories cannot change once external access is off, and
        # nothing can turn external access back on while the database runs.
        directories = ", ".join("'" + d.replace("'", "''") + "'" for d in self._allowed_with_slash())
        self._con.execute(f"SET allowed_directories = [{directories}]")
        self._con.execute("SET enable_external_access = false")
        self._monitor = self._con.cursor()
        self._monitor_lock = threading.Lock()
        self._idle: list[duckdb.DuckDBPyConnection] = []
        self._pool_lock = threading.Lock()
        self._lease = _SharedExclusiveLock()
        self.closed = False

    def _allowed_with_slash(self) -> list[str]:
        # DuckDB matches allowed directories as path prefixes; a trailing slash keeps
        # /data from also allowing /data-other.
        return [str(Path(d).resolve()).rstrip("/") + "/" for d in self.settings.allowed_directories]

    @contextmanager
    def lease(self, settings: EngineSettings) -> Iterator[None]:
        """Run under `settings`: shared when they match the instance, exclusive otherwise."""
        wanted = settings.instance_values()
        current = self.settings.instance_values()
        if wanted == current:
            with self._lease.hold(exclusive=False):
                yield
            return
        with self._lease.hold(exclusive=True):
            self._apply(wanted)
            try:
                yield
            finally:
                self._apply(current)

    def _apply(self, values: dict[str, str]) -> None:
        for name, value in values.items():
            self._con.execute(f"SET {name} = '{value}'")

    def retune(self, settings: EngineSettings) -> None:
        """Adopt new base settings (after a config reload) for work that starts from now on."""
        with self._lease.hold(exclusive=True):
            self._apply(settings.instance_values())
            self.settings = msgspec.structs.replace(
                settings,
                allowed_directories=self.settings.allowed_directories,
                temp_directory=self.settings.temp_directory,
                state_directory=self.settings.state_directory,
            )

    def set_memory_limit(self, limit_bytes: int) -> None:
        """Change DuckDB's limit on the running instance (it applies to running queries too)."""
        self._con.execute(f"SET memory_limit = '{duckdb_size(limit_bytes)}'")

    def idle(self, limit_bytes: int = IDLE_MEMORY_LIMIT) -> None:
        """Between jobs: shrink DuckDB's limit so it evicts its cached buffers and RSS falls back.

        Measured here: a worker at 975 MiB after a large aggregate fell to 162 MiB within a
        second of its limit being lowered to 64 MB. The next job's lease applies its own limit.
        """
        with self._lease.hold(exclusive=True):
            self.set_memory_limit(limit_bytes)
            self.settings = msgspec.structs.replace(self.settings, memory_limit_bytes=limit_bytes)

    def acquire_cursor(self) -> duckdb.DuckDBPyConnection:
        with self._pool_lock:
            if self._idle:
                return self._idle.pop()
        cursor = self._con.cursor()
        cursor.execute(
            "SET enable_progress_bar = true; SET enable_progress_bar_print = false; "
            "SET progress_bar_time = 0; SET errors_as_json = true"
        )
        return cursor

    def release_cursor(self, cursor: duckdb.DuckDBPyConnection, *, healthy: bool) -> None:
        """Return a cursor to the pool, or close it when its state cannot be trusted."""
        if healthy and not self.closed:
            with self._pool_lock:
                if len(self._idle) < 16:
                    self._idle.append(cursor)
                    return
        try:
            cursor.close()
        except duckdb.Error:
            log.debug("closing a cursor failed", exc_info=True)

    def drop_idle_cursors(self) -> int:
        """Close pooled cursors (each holds a little memory); new ones are made on demand."""
        with self._pool_lock:
            idle, self._idle = self._idle, []
        for cursor in idle:
            cursor.close()
        return len(idle)

    def memory(self) -> tuple[int, int]:
        """(bytes held by DuckDB's buffer manager, bytes spilled to its temp files)."""
        with self._monitor_lock:
            row = self._monitor.execute(
                "SELECT coalesce(sum(memory_usage_bytes), 0)::BIGINT, "
                "(SELECT coalesce(sum(size), 0)::BIGINT FROM duckdb_temporary_files()) FROM duckdb_memory()"
            ).fetchone()
        return (int(row[0]), int(row[1])) if row else (0, 0)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        with self._pool_lock:
            idle, self._idle = self._idle, []
        for cursor in idle:
            cursor.close()
        self._monitor.close()
        self._con.close()
        shutil.rmtree(self.temp_directory, ignore_errors=True)
