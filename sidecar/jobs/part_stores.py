"""Where the parts of a split run go, and how a part that runs out of memory is split again.

A `PartStore` computes a part under a name and says which parts an earlier run of the same job
finished: as tables of a scratch schema (`TableStore`, exact types for a combine), as files of the
output's format in the job directory (`FileStore`), or as rows fetched in order (`RowStore`).
`BucketStore` makes another store's parts read the buckets of one pass over the input.
`run_part` computes one part through a store, re-splitting it when it runs out of memory; a part
executor (`sidecar.jobs.executors`) decides where and when each part runs.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import msgspec

from sidecar.errors import InternalError, SidecarError
from sidecar.jobs.kept import finished_parts, write_atomic
from sidecar.jobs.ladder import MEMORY_FAILURES
from sidecar.jobs.steps import Steps
from sidecar.jobs.types import Column, OutputSpec
from sidecar.partition import Plan
from sidecar.partition.prepass import BUCKET_COLUMN, Prepass, bucket_sql, needed_columns, part_reads_bucket, prepass_for

__all__ = [
    "MAX_RESPLIT_DEPTH",
    "BucketStore",
    "FileStore",
    "PartStore",
    "PartTask",
    "ParquetStore",
    "RowStore",
    "SplitAgain",
    "TableStore",
    "TaskStore",
    "bucketed",
    "literal",
    "quoted",
    "renamed",
    "run_part",
]

log = logging.getLogger(__name__)

MAX_RESPLIT_DEPTH = 3


def renamed(sql: str, names: list[str], nullable: list[bool] | None = None) -> str:
    """The part query with the original query's column names (sqlglot may rename unaliased ones).

    `nullable` marks the columns the whole query may fill with NULLs: those pass through a CASE
    DuckDB cannot fold, so a part whose range filter proves them NULL-free still writes them as
    OPTIONAL Parquet columns, as the whole query does.
    """
    columns = "*"
    if nullable is not None:
        columns = ", ".join(
            f"CASE WHEN random() < 0 THEN NULL ELSE u.{quoted(n)} END AS {quoted(n)}"
            if null
            else f"u.{quoted(n)}"
            for n, null in zip(names, nullable)
        )
    return f"SELECT {columns} FROM ({sql}) AS u({', '.join(quoted(n) for n in names)})"


def quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# -- where the parts go ---------------------------------------------------------------------


class PartTask(msgspec.Struct, frozen=True):
    """One part of a file store as a value: what to run and where its file goes. A local worker or a
    Ray task runs it; `rows_path` is written after the file, with its row count, and marks it done."""

    name: str
    sql: str
    params: Any
    output: OutputSpec
    rows_path: str


class PartStore(Protocol):
    done: set[str]
    """Parts an earlier run of the same job finished."""
    isolated: bool
    """Its parts touch nothing of the database (they read files, write files): they may run apart."""

    def compute(self, name: str, sql: str) -> None: ...

    def sub_plan(self, name: str, make: Callable[[], Plan]) -> Plan: ...


@runtime_checkable
class TaskStore(PartStore, Protocol):
    """A store whose parts are files: each part is a `PartTask` value that any process (a local
    worker, a Ray task on another node) can run, given the job directory."""

    def task(self, name: str, sql: str) -> PartTask: ...


SplitAgain = Callable[[tuple[int, ...], str], Plan]


def run_part(
    store: PartStore, path: tuple[int, ...], sql: str, split_again: SplitAgain, resplit: list[str]
) -> list[str]:
    """Compute one part, or, when it runs out of memory, its sub-parts in order.

    A re-split shares the part's rows out again (recursively, up to MAX_RESPLIT_DEPTH), so a
    part that drew more than its share does not sink the job. A single huge group, or a single
    sort key value, cannot be split: its part fails with the memory error.
    """
    name = "part_" + "_".join(map(str, path))
    if name in store.done:  # finished by an earlier run of the same job_id
        return [name]
    failed: SidecarError | None = None
    if not any(done.startswith(name + "_") for done in store.done):
        try:
            store.compute(name, sql)
            return [name]
        except SidecarError as error:
            if error.code != "OUT_OF_MEMORY" or len(path) > MAX_RESPLIT_DEPTH:
                raise
            failed = error
    sub = store.sub_plan(name, lambda: split_again(path, sql))
    if len(sub.parts) < 2 and failed is not None:
        raise failed
    log.info("%s ran out of memory; split again in %d", name, len(sub.parts))
    resplit.append(name)
    names: list[str] = []
    for part in sub.parts:
        names.extend(run_part(store, (*path, part.index), part.sql, split_again, resplit))
    return names


class TableStore:
    """Parts as tables of a scratch schema in the query's database: exact types for the combine."""

    def __init__(self, jobs: Steps, schema: str, done: set[str]) -> None:
        self.jobs, self.schema, self.done = jobs, schema, done

    isolated = False

    def compute(self, name: str, sql: str) -> None:
        self.jobs.run(f"CREATE TABLE {quoted(self.schema)}.{name} AS {sql}", params=self.jobs.spec.params)

    def relation(self, name: str) -> str:
        return f"{quoted(self.schema)}.{name}"

    def sub_plan(self, name: str, make: Callable[[], Plan]) -> Plan:
        return make()  # hash re-splits are deterministic: nothing to record


class FileStore:
    """Parts as files of the output's format in the job directory; `<part>.rows` holds the count.

    `isolated`: the query reads only files, so its parts may run apart from the database's worker.
    """

    def __init__(
        self,
        jobs: Steps,
        directory: Path,
        output: OutputSpec,
        names: list[str],
        nullable: list[bool] | None,
        isolated: bool = False,
    ) -> None:
        self.jobs, self.directory, self.fmt, self.names = jobs, directory, output.format, names
        self.output = output
        """The request's output: each part file is written with its options (compression, row groups)."""
        self.nullable = nullable
        self.isolated = isolated
        self.done = finished_parts(directory)

    def path(self, name: str) -> Path:
        return self.directory / f"{name}.{self.fmt}"

    def rows(self, name: str) -> int:
        return int((self.directory / f"{name}.rows").read_text())

    def select(self, sql: str) -> str:
        """The SELECT whose rows the part file holds."""
        return renamed(sql, self.names, self.nullable)

    def task(self, name: str, sql: str) -> PartTask:
        output = msgspec.structs.replace(self.output, path=str(self.path(name)), overwrite=True)
        rows = str(self.directory / f"{name}.rows")
        return PartTask(name, self.select(sql), self.jobs.spec.params, output, rows)

    def compute(self, name: str, sql: str) -> None:
        task = self.task(name, sql)
        result = self.jobs.run(task.sql, params=task.params, output=task.output, max_rows=0, apart=self.isolated)
        write_atomic(Path(task.rows_path), str(result.row_count).encode())

    def sub_plan(self, name: str, make: Callable[[], Plan]) -> Plan:
        """A re-split's plan is recorded: sampled bounds differ between runs, its finished sub-parts must not."""
        record = self.directory / f"{name}.split.json"
        if record.exists():
            return Plan.from_json(record.read_bytes())
        plan = make()
        write_atomic(record, plan.to_json())
        return plan


LOSSY_IN_PARQUET = re.compile(r"\b(U?HUGEINT|ENUM|BIT|UNION|VARINT|BIGNUM|TIME WITH TIME ZONE)\b")
"""Types Parquet does not keep (DuckDB 2.0 writes a HUGEINT as DOUBLE): a part file holds them as text."""


class ParquetStore(FileStore):
    """A combine's parts as Parquet files in the job directory, for parts that run apart from the
    database (at once on free workers, or on Ray); `relation` reads one back with the part's exact
    types, so the combine over them is the same as over the scratch schema's tables."""

    def __init__(self, jobs: Steps, directory: Path, columns: list[Column], isolated: bool = True) -> None:
        super().__init__(jobs, directory, OutputSpec("part.parquet"), [c.name for c in columns], None, isolated)
        self.columns = columns

    def select(self, sql: str) -> str:
        kept = ", ".join(
            f"CAST({quoted(c.name)} AS VARCHAR) AS {quoted(c.name)}" if LOSSY_IN_PARQUET.search(c.type) else quoted(c.name)
            for c in self.columns
        )
        return f"SELECT {kept} FROM ({sql}) AS u"

    def relation(self, name: str) -> str:
        typed = ", ".join(f"CAST({quoted(c.name)} AS {c.type}) AS {quoted(c.name)}" for c in self.columns)
        return f"(SELECT {typed} FROM read_parquet({literal(str(self.path(name)))}))"


@dataclass
class RowStore:
    """Parts fetched inline in order, until `max_rows` rows are in hand (then one more tells `truncated`)."""

    jobs: Steps
    names: list[str]
    max_rows: int
    done: set[str] = field(default_factory=set)
    rows: list[list[Any]] = field(default_factory=list)
    columns: list[Column] = field(default_factory=list)
    truncated: bool = False
    isolated: bool = False

    def compute(self, name: str, sql: str) -> None:
        if self.truncated:
            return
        result = self.jobs.run(
            renamed(sql, self.names), params=self.jobs.spec.params, max_rows=self.max_rows - len(self.rows)
        )
        self.columns = self.columns or result.columns
        self.rows.extend(result.rows)
        self.truncated = result.truncated

    def sub_plan(self, name: str, make: Callable[[], Plan]) -> Plan:
        return make()


class BucketStore:
    """Another store's parts, each reading its own bucket of the bucketing pass instead of the input."""

    def __init__(self, inner: PartStore, pre: Prepass, directory: Path, columns: list[str]) -> None:
        self.inner, self.pre, self.directory, self.columns = inner, pre, directory, columns
        self.done = inner.done
        self.isolated = inner.isolated

    def reading_bucket(self, name: str, sql: str) -> str:
        """The part's SQL reading its bucket of the pass instead of the input."""
        bucket = self.directory / f"{BUCKET_COLUMN}={name.split('_')[1]}"
        files = str(bucket / "*.parquet") if bucket.is_dir() else None
        return part_reads_bucket(sql, self.pre, files, self.columns)

    def compute(self, name: str, sql: str) -> None:
        self.inner.compute(name, self.reading_bucket(name, sql))

    def task(self, name: str, sql: str) -> PartTask:
        if not isinstance(self.inner, TaskStore):
            raise InternalError("only a file store's parts are tasks")
        return self.inner.task(name, self.reading_bucket(name, sql))

    def sub_plan(self, name: str, make: Callable[[], Plan]) -> Plan:
        return self.inner.sub_plan(name, make)


def bucketed(jobs: Steps, store: PartStore, plan: Plan | None, parts: int, directory: Path) -> PartStore:
    """`store`, its parts reading buckets written by one pass over the input when that applies and
    pays (sidecar.partition.prepass); otherwise `store` itself, its parts re-scanning the input.

    The pass writes `<job directory>/buckets` whole or not at all (a temporary directory renamed
    into place), so a resumed job reuses it. A pass that fails for want of memory (DuckDB keeps a
    writer per bucket) is not an error: the parts re-scan the input instead.
    """
    spec = jobs.spec
    pre = prepass_for(plan, parts, spec.params is not None) if plan is not None else None
    if pre is None:
        return store
    prefix = f"{pre.with_sql} " if pre.with_sql else ""
    described = jobs.run(f"DESCRIBE {prefix}SELECT * FROM {pre.relation}")
    relation_columns = [(row[0], row[1]) for row in described.rows]
    columns = needed_columns(spec.sql, relation_columns, pre.alias)
    if columns is None:
        return store
    buckets = directory / "buckets"
    if buckets.is_dir():
        log.info("reusing the buckets an earlier run of this job wrote in %s", buckets)
    else:
        temp = directory / ".buckets.tmp"
        shutil.rmtree(temp, ignore_errors=True)
        directory.mkdir(parents=True, exist_ok=True)
        copy = f"COPY ({bucket_sql(pre, columns, [n for n, _ in relation_columns])}) TO {literal(str(temp))} (FORMAT parquet, PARTITION_BY ({BUCKET_COLUMN}))"
        jobs.progress(0, parts)
        try:
            jobs.run(copy)
        except SidecarError as error:
            shutil.rmtree(temp, ignore_errors=True)
            if jobs.call.cancel_event.is_set():
                raise
            # an optimisation only: whatever stopped it (memory, a shape it got wrong), the parts re-scan
            level = logging.INFO if error.code in MEMORY_FAILURES else logging.WARNING
            log.log(
                level, "the bucketing pass failed (%s: %s); the parts re-scan the input", error.code, error
            )
            return store
        if not temp.is_dir():  # no row passed the query's WHERE: every bucket is empty
            temp.mkdir()
        os.replace(temp, buckets)
    log.info(
        "the %d parts read buckets of one pass over %s (columns %s)", parts, pre.relation, ", ".join(columns)
    )
    return BucketStore(store, pre, buckets, columns)


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
