"""The in-process engine: how a worker process runs DuckDB for one job.

Only the worker (`sidecar.workers.child`) uses `Engine`: it hands it a `QuerySpec`, the
`EngineSettings` the supervisor chose for this attempt and a job context (cancellation), and
gets back a `QueryResult` or a `SidecarError`. The sidecar itself never runs DuckDB for a
request: its methods go through the job runner (`sidecar.jobs.runner`), which retries, splits
and supervises; the two are not interchangeable.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import duckdb

from sidecar.engine.database import MEMORY, Database, EngineSettings
from sidecar.engine.encode import execute_encoded
from sidecar.engine.errors import map_duckdb_error
from sidecar.engine.guard import checked_statements
from sidecar.engine.monitor import JobContext, JobWatch, Sample, Sampler
from sidecar.engine.outputs import atomic_target, copy_options, inside
from sidecar.errors import AccessDenied, InputError, InvalidParams, SidecarError
from sidecar.jobs.types import Column, OutputInfo, OutputSpec, QueryResult, QuerySpec, QueryStats

__all__ = ["WRAPPABLE", "WRITES", "Engine"]

log = logging.getLogger(__name__)


class Engine:
    """Opens databases on demand and runs work in them under a job's settings."""

    def __init__(self) -> None:
        self._databases: dict[str, Database] = {}
        self._resolved: dict[str, str] = {}
        """Database names as requests give them -> their resolved paths (resolving costs a job ~0.05 ms)."""
        self._lock = threading.Lock()
        self.sampler = Sampler()

    # -- databases -----------------------------------------------------------------------

    def database(self, name: str | None, settings: EngineSettings) -> Database:
        if not name or name == MEMORY:
            key = MEMORY
        else:
            key = self._resolved.get(name) or str(Path(name).expanduser().resolve())
            self._resolved[name] = key
        with self._lock:
            db = self._databases.get(key)
            if db is not None:
                return db
            if key != MEMORY and not inside(Path(key), list(settings.allowed_directories)):
                raise AccessDenied(
                    f"database {name!r} is outside the allowed directories",
                    details={"database": key, "allowed_directories": list(settings.allowed_directories)},
                )
            if key != MEMORY and not Path(key).parent.is_dir():
                raise InputError(
                    f"the directory of database {name!r} does not exist", hint="Create it first."
                )
            if key != MEMORY and not _is_duckdb_file(Path(key)):
                # DuckDB would open a CSV (say) as an empty database: tables "created" there would
                # vanish, and the user's file would look like a database it is not.
                raise InputError(
                    f"{name!r} is not a DuckDB database file",
                    hint="Name a .duckdb file (a new one is created), or read data files with "
                    "read_csv/read_parquet/read_json in the SQL instead.",
                    details={"database": key},
                )
            try:
                db = Database(key, settings)
            except duckdb.Error as exc:
                raise map_duckdb_error(exc) from exc
            self._databases[key] = db
            log.info("opened database %s", key)
            return db

    def set_memory_limit(self, limit_bytes: int) -> None:
        """Grow (or give back) DuckDB's limit on every open database, running queries included."""
        with self._lock:
            databases = list(self._databases.values())
        for db in databases:
            db.set_memory_limit(limit_bytes)

    def idle(self) -> None:
        """Between jobs: let every open database give its cached memory back (see Database.idle)."""
        with self._lock:
            databases = list(self._databases.values())
        for db in databases:
            db.idle()

    def retune(self, settings: EngineSettings) -> None:
        with self._lock:
            databases = list(self._databases.values())
        for db in databases:
            db.retune(settings)

    # -- queries -------------------------------------------------------------------------

    @contextmanager
    def _job(
        self,
        database: str | None,
        settings: EngineSettings,
        job: JobContext,
        on_sample: Callable[[Sample], None] | None,
        timeout_ms: int | None,
        sql: str | None,
    ) -> Iterator[_Run]:
        """A cursor under the job's settings, watched, interruptible, errors mapped at one place."""
        if job.cancel_event.is_set():
            raise _interrupted(job)
        db = self.database(database, settings)
        with db.lease(settings):
            cursor = db.acquire_cursor()
            deadline = time.monotonic() + timeout_ms / 1000 if timeout_ms else None
            watch = JobWatch(job, db.memory, cursor, on_sample, deadline, limit=settings.memory_limit_bytes)
            run = _Run(db, cursor, watch)
            self.sampler.watch(run.watch)
            unregister = job.on_cancel(cursor.interrupt)
            try:
                yield run
            except duckdb.Error as exc:
                raise map_duckdb_error(
                    exc, sql=sql, settings=settings.instance_values(), cancel_reason=job.cancel_reason
                ) from exc
            finally:
                unregister()
                run.watch.set_phase("done")
                run.final = self.sampler.unwatch(run.watch)
                run.watch.report(run.final)
                db.release_cursor(cursor, healthy=run.healthy and not job.cancel_event.is_set())
        if job.cancel_event.is_set():  # cancelled after the last row arrived: still a cancellation
            raise _interrupted(job)

    def run_query(
        self,
        spec: QuerySpec,
        settings: EngineSettings,
        job: JobContext,
        on_sample: Callable[[Sample], None] | None = None,
    ) -> QueryResult:
        started = time.perf_counter()
        with self._job(spec.database, settings, job, on_sample, spec.timeout_ms, spec.sql) as run:
            columns, rows, truncated, output, count, run.healthy = self._execute(
                run.cursor, spec, settings, run.watch, persistent=run.db.path != MEMORY
            )
        stats = QueryStats(
            elapsed_ms=round((time.perf_counter() - started) * 1000, 3),
            peak_rss_bytes=run.peak_rss,
            peak_buffer_bytes=run.watch.peak_buffer,
            peak_spill_bytes=run.watch.peak_spill,
            statements=count,
            settings={**settings.instance_values(), "database": run.db.path},
        )
        return QueryResult(
            columns, rows, len(rows) if output is None else output.rows, truncated, stats, output
        )  # type: ignore[arg-type]

    def analyze(
        self,
        path: str,
        *,
        sample_rows: int | None,
        exact: bool,
        settings: EngineSettings,
        job: JobContext,
        on_sample: Callable[[Sample], None] | None = None,
        timeout_ms: int | None = None,
        union_by_name: bool = False,
        csv: Any = None,
    ) -> Any:
        """Profile a dataset file, glob or directory (see sidecar.engine.analyze)."""
        from sidecar.engine.analyze import analyze_dataset

        with self._job(None, settings, job, on_sample, timeout_ms, None) as run:
            run.watch.set_phase("running")
            result = analyze_dataset(
                run.cursor, path, sample_rows=sample_rows, exact=exact, union_by_name=union_by_name, csv=csv
            )
            run.healthy = True
        return result

    def _execute(
        self,
        cursor: duckdb.DuckDBPyConnection,
        spec: QuerySpec,
        settings: EngineSettings,
        watch: JobWatch,
        *,
        persistent: bool,
    ) -> tuple[list[Column], Any, bool, OutputInfo | None, int, bool]:
        statements = checked_statements(cursor, spec.sql)
        if spec.params is not None and len(statements) > 1:
            raise InvalidParams("`params` can only be used with a single SQL statement")
        kinds = {s.type.name for s in statements}
        if persistent and kinds & WRITES and kinds <= WRAPPABLE:
            # All of the job's writes or none: a failure, a cancel or a killed worker leaves the
            # database as it was (DuckDB never replays an uncommitted transaction).
            cursor.execute("BEGIN TRANSACTION")
            try:
                outcome = self._statements(cursor, statements, spec, settings, watch)
                cursor.execute("COMMIT")
            except BaseException:
                try:
                    cursor.execute("ROLLBACK")
                except duckdb.Error:
                    log.debug("rollback after a failed job failed", exc_info=True)
                raise
            return outcome
        return self._statements(cursor, statements, spec, settings, watch)

    def _statements(
        self,
        cursor: duckdb.DuckDBPyConnection,
        statements: Any,
        spec: QuerySpec,
        settings: EngineSettings,
        watch: JobWatch,
    ) -> tuple[list[Column], Any, bool, OutputInfo | None, int, bool]:
        healthy = all(s.type.name != "TRANSACTION" for s in statements)
        watch.set_phase("running")
        for statement in statements[:-1]:
            _check(watch.job)
            cursor.execute(statement)
        _check(watch.job)
        last = statements[-1]
        if spec.output is not None:
            return (
                *self._write_output(cursor, last, spec, spec.output, settings, watch),
                len(statements),
                healthy,
            )
        encoding = execute_encoded(cursor, last, spec.params)
        description = cursor.description or []
        columns = [Column(d[0], t) for d, t in zip(description, encoding.type_names)]
        raw = cursor.fetchmany(spec.max_rows + 1) if description else []
        truncated = len(raw) > spec.max_rows
        if truncated:
            raw = raw[: spec.max_rows]
            healthy = False  # the rest of the result is still pending on this cursor: drop it
        watch.set_phase("fetching")
        rows = encoding.rows(raw)
        return columns, rows, truncated, None, len(statements), healthy

    def _write_output(
        self,
        cursor: duckdb.DuckDBPyConnection,
        last: duckdb.Statement,
        spec: QuerySpec,
        output: OutputSpec,
        settings: EngineSettings,
        watch: JobWatch,
    ) -> tuple[list[Column], list[Any], bool, OutputInfo]:
        if last.type.name != "SELECT":
            raise InvalidParams(
                f"`output` needs the last statement to be a query (SELECT, FROM, WITH ...), got {last.type.name}",
            )
        query = last.query.strip().rstrip(";")
        allowed = list(settings.allowed_directories)
        journal = Path(settings.state_directory) / "pending-outputs"
        with atomic_target(output.path, overwrite=output.overwrite, allowed=allowed, journal=journal) as temp:
            description = cursor.execute(f"SELECT * FROM ({query}) LIMIT 0", spec.params).description or []
            watch.set_phase("writing")
            target = str(temp).replace("'", "''")
            written = cursor.execute(
                f"COPY ({query}) TO '{target}' ({copy_options(output)})", spec.params
            ).fetchone()
            rows = int(written[0]) if written else 0
            size = temp.stat().st_size if temp.exists() else 0
        columns = [Column(d[0], str(d[1])) for d in description]
        final = str(Path(output.path).expanduser().resolve())
        return columns, [], False, OutputInfo(final, output.format, size, rows)

    # -- housekeeping --------------------------------------------------------------------

    def forget(self, name: str) -> None:
        """Close database `name` and remove its files (a daemon client's default database)."""
        key = str(Path(name).expanduser().resolve())
        with self._lock:
            db = self._databases.pop(key, None)
        if db is not None:
            try:
                db.close()
            except (duckdb.Error, SidecarError):
                log.warning("closing database %s failed", db.path, exc_info=True)
        for leftover in Path(key).parent.glob(Path(key).name + "*"):
            leftover.unlink(missing_ok=True)

    def close(self) -> None:
        self.sampler.close()
        with self._lock:
            databases, self._databases = list(self._databases.values()), {}
        for db in databases:
            try:
                db.close()
            except (duckdb.Error, SidecarError):
                log.warning("closing database %s failed", db.path, exc_info=True)


WRITES = frozenset({"INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "ALTER", "COPY", "MERGE_INTO"})
WRAPPABLE = WRITES | {"SELECT", "EXPLAIN", "SET", "PRAGMA"}
"""Statement types a job may mix inside the one transaction that makes its writes atomic."""


class _Run:
    """The state of one job while its cursor is held."""

    def __init__(self, db: Database, cursor: duckdb.DuckDBPyConnection, watch: JobWatch) -> None:
        self.db = db
        self.cursor = cursor
        self.watch = watch
        self.healthy = False
        self.final: Sample | None = None

    @property
    def peak_rss(self) -> int:
        return max(self.watch.peak_rss, self.final.rss_bytes if self.final else 0)


def _is_duckdb_file(path: Path) -> bool:
    """A missing or empty file becomes a new database; an existing one must carry DuckDB's magic."""
    if not path.exists() or path.stat().st_size == 0:
        return True
    if path.is_dir():
        return True  # DuckDB's own error says it is a directory
    with open(path, "rb") as handle:
        return handle.read(12)[8:12] == b"DUCK"


def _check(job: JobContext) -> None:
    if job.cancel_event.is_set():
        raise _interrupted(job)


def _interrupted(job: JobContext) -> SidecarError:
    return map_duckdb_error(
        duckdb.InterruptException("INTERRUPT Error: Interrupted!"), cancel_reason=job.cancel_reason
    )
