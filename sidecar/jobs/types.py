"""The values a job is made of, shared by every layer: what to run, what it cost, what came back.

They cross the worker boundary (msgpack) and the protocol (JSON), so they are plain msgspec
Structs and this module depends on msgspec alone. The worker's `Done` carries a `QueryResult`;
the supervisor and the job runner add what they know (attempts, the estimate, the parts) with
`msgspec.structs.replace`, never by mutating a dict.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

__all__ = [
    "Attempt",
    "Column",
    "Estimate",
    "ExecutorSpec",
    "NodeParts",
    "OutputInfo",
    "OutputSpec",
    "ParquetCompression",
    "QueryResult",
    "QuerySpec",
    "QueryStats",
]


ParquetCompression = Literal["snappy", "zstd", "gzip", "lz4", "lz4_raw", "brotli", "uncompressed"]


class OutputSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    path: str
    format: Literal["parquet", "csv", "json"] = "parquet"
    overwrite: bool = False
    compression: ParquetCompression | None = None
    """Parquet's codec; None: the config's `output_compression` (default snappy, DuckDB's own). CSV and
    JSON take theirs from the file name (`.gz`, `.zst`), as DuckDB's COPY does. See
    docs/performance/output-options.md for what each costs."""
    compression_level: Annotated[int, msgspec.Meta(ge=1, le=22)] | None = None
    """Parquet with zstd only: the zstd level (DuckDB's default 3)."""
    row_group_size: Annotated[int, msgspec.Meta(ge=2048)] | None = None
    """Parquet only: rows per row group (DuckDB's default 122,880)."""

    def __post_init__(self) -> None:
        given = [n for n in ("compression", "compression_level", "row_group_size") if getattr(self, n) is not None]
        if self.format != "parquet" and given:
            raise ValueError(
                f"{', '.join(given)} apply to parquet output only; a {self.format} file takes its compression "
                f"from its name (e.g. out.{self.format}.gz)"
            )
        if self.compression_level is not None and self.compression != "zstd":
            raise ValueError("compression_level applies to zstd only: add compression: 'zstd', or drop the level")


class ExecutorSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where a split query's parts run (docs/architecture/distributed-execution.md)."""

    kind: Literal["local", "ray"] = "local"
    """local: this machine's workers (parts that only read files run at once); ray: each part a Ray
    task (needs the optional extra `ray`); the combine runs here either way."""
    address: str | None = None
    """Ray only: the cluster to join ("auto", "host:6379", "ray://host:10001"); None: a local Ray
    head this sidecar starts and stops."""


class NodeParts(msgspec.Struct, frozen=True):
    """Parts of one split run on one node: finished, running now, failed (then retried or re-split)."""

    done: int = 0
    running: int = 0
    failed: int = 0


class QuerySpec(msgspec.Struct, frozen=True):
    sql: str
    database: str | None = None
    params: list[Any] | dict[str, Any] | None = None
    max_rows: int = 10_000
    output: OutputSpec | None = None
    timeout_ms: int | None = None
    job_id: str | None = None
    """Names a partitioned job so that re-sending the same request resumes it."""


class Column(msgspec.Struct, frozen=True):
    name: str
    type: str


class OutputInfo(msgspec.Struct, frozen=True):
    path: str
    format: str
    bytes: int
    rows: int


class Attempt(msgspec.Struct, frozen=True):
    """One try at a job: the ceiling and settings it ran with, and how it ended."""

    number: int
    rung: str
    """"first", or the retry ladder's rung: retry, grow, insertion_order, fewer_threads, partition, smaller_limit."""
    ceiling_bytes: int
    """The memory ceiling the attempt started with."""
    duckdb_memory_limit_bytes: int
    """DuckDB's limit at the end of the attempt (raised with the ceiling when it grew in place)."""
    threads: int
    outcome: str
    """"ok", or the failure: OUT_OF_MEMORY, MEMORY_CEILING, MEMORY_EMERGENCY, WORKER_CRASHED, ..."""
    elapsed_ms: int
    peak_rss_bytes: int
    grown_to_bytes: int | None = None
    """Set when the watchdog grew the ceiling in place during this attempt."""
    skipped: dict[str, str] = {}
    """After a failure: why each rung of the retry ladder it passed over could not help."""
    executor: str | None = None
    """A split attempt under a hand-off rule (`scaling_triggers.executor_scaling`): where its parts
    ran, "local", "ray" (a local head) or "ray:<address>"; None when no rule was in force."""
    hand_off: str | None = None
    """Why the rule sent the parts to Ray ("split_parts 8 > 4"), and, when they stayed here all
    the same, why they did (no `ray` package, parts that read tables of the database)."""


class Estimate(msgspec.Struct, frozen=True, omit_defaults=True):
    """What the sidecar expected a query to need before running it (`stats.estimate`)."""

    bytes: int
    """Working memory the query's heaviest operator is expected to need."""
    limit_bytes: int
    """DuckDB's memory limit for the most this job may get."""
    parts: int
    """Parts it was split into up front (0: it ran whole)."""
    basis: str
    """How `bytes` was reckoned: groups, held values (holistic), window rows or a join's build side."""
    input_rows: int
    groups: int | None = None
    sampled: bool = False
    """Whether the groups come from a sample of the keys rather than DuckDB's statistics."""


class QueryStats(msgspec.Struct, frozen=True, omit_defaults=True):
    """What the job cost. Peaks are sampled every 100 ms (and once at the end); a job shorter
    than that reports its end-of-job RSS and the buffer and spill bytes last sampled (0 if none)."""

    elapsed_ms: float
    peak_rss_bytes: int
    peak_buffer_bytes: int
    peak_spill_bytes: int
    statements: int
    settings: dict[str, str]
    attempts: list[Attempt] = []
    """Every attempt the supervisor made (one, unless the retry ladder stepped in)."""
    partitions: int | None = None
    """The number of parts, present only when the query ran partitioned."""
    reused_parts: int | None = None
    """Parts a resumed job took from an earlier run instead of recomputing them."""
    resplit_parts: int | None = None
    """Parts that ran out of memory and were split again by a salted sub-hash."""
    parts_at_once: int | None = None
    """The most parts that ran in their workers at the same instant (1: one after another)."""
    nodes: dict[str, NodeParts] | None = None
    """Ray: the parts each node ran (by Ray node id); failed ones were retried or re-split."""
    estimate: Estimate | None = None
    """What a splittable query was expected to need before it ran, and the parts chosen for it."""


class QueryResult(msgspec.Struct, frozen=True):
    columns: list[Column]
    rows: list[list[Any]]
    row_count: int
    truncated: bool
    stats: QueryStats
    output: OutputInfo | None = None
