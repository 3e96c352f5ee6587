"""The resolved settings of one job, the sizing constants, and the names users may set.

Every sizing constant lives here, once, so the engineer who measures RSS against DuckDB's
limit (sidecar/bench/headroom.py) tunes `duckdb_limit_for` and everything derived from it follows.
"""

from __future__ import annotations

import msgspec

from sidecar.config.diagnostics import Diagnostic
from sidecar.errors import did_you_mean

__all__ = [
    "HandOff",
    "Settings",
    "Thresholds",
    "RESERVE_BYTES",
    "RSS_PER_LIMIT_BYTE",
    "AUTO_BUDGET_SHARE",
    "AVAILABLE_SHARE",
    "MAX_BUDGET_SHARE",
    "MIN_BUDGET_BYTES",
    "MIN_THREAD_MEMORY_BYTES",
    "SPILL_RESERVE_SHARE",
    "SPILL_RESERVE_MIN_BYTES",
    "DEFAULT_TIMEOUT_MS",
    "DEFAULT_MAX_ROWS",
    "DEFAULT_CHECKPOINT_THRESHOLD_BYTES",
    "USER_KEYS",
    "ENV_VARS",
    "STATE_DIR_ENV",
    "ALLOWED_DIRS_ENV",
    "duckdb_limit_for",
    "to_executor",
    "steady_spill_size",
    "MACHINE_BUDGET_SHARE",
    "DEFAULT_STALL_TIMEOUT_MS",
    "SIDECAR_WIDE_KEYS",
]

MiB = 1024**2
GiB = 1024**3

# DuckDB's memory_limit bounds its buffer manager only; the process (Python, DuckDB's code, state
# outside the buffer manager, allocator slack) sits on top. Measured here on ten query shapes at
# 256 MiB-4 GiB limits (docs/performance/headroom.md): whenever DuckDB's buffer is full, peak RSS
# <= 175 MiB + 1.04 x limit; an idle connected process holds 84 MiB. So a job's budget gets a fixed
# reserve off the top and DuckDB gets the rest divided by a factor with margin; below ~512 MiB no
# reserve fits, and DuckDB gets half. The worker's RSS ceiling catches what escapes the model
# (list() state grows outside the buffer manager with the data).
RESERVE_BYTES = 256 * MiB
RSS_PER_LIMIT_BYTE = 1.10
MIN_DUCKDB_LIMIT_BYTES = 16 * MiB


def to_executor(value: object) -> str:
    """The `executor` setting: "local", "ray", or "ray:<address>" of a Ray cluster.

    >>> to_executor(" Ray "), to_executor("ray:ray://head:10001")
    ('ray', 'ray:ray://head:10001')
    """
    text = str(value).strip()
    kind, _, address = text.partition(":")
    if kind.lower() in ("local", "ray") and not (kind.lower() == "local" and address):
        return kind.lower() + (f":{address}" if address else "")
    raise ValueError(f"expected local, ray, or ray:<address>{did_you_mean(kind.lower(), ('local', 'ray'))}")


def steady_spill_size(room: int, previous: int | None = None) -> int:
    """The auto `max_temp_directory_size` for `room` bytes of free disk beyond the reserve, rounded
    down to a whole GiB (64 MiB below 4 GiB), so it does not change with every file written on the
    disk: a request's settings that differ from its database's take the database exclusively and
    set every DuckDB setting twice (issue 15: 2 ms per job, on every benchmark request).

    Rounding alone still flips at a step's edge, so a `previous` auto size is kept while the room
    stays within a step below it and two steps above it; the reserve (at least 2 GiB) covers the
    step below.

    >>> [steady_spill_size(n) // MiB for n in (-5, 100 * MiB + 5, 5 * GiB + 300 * MiB)]
    [0, 64, 5120]
    >>> [steady_spill_size(n, previous=18 * GiB) // GiB for n in (17 * GiB + 1, 19 * GiB, 20 * GiB, 16 * GiB)]
    [18, 18, 20, 16]
    """
    step = GiB if room >= 4 * GiB else 64 * MiB
    if previous is not None and previous - step < room < previous + 2 * step:
        return previous
    return max(0, room) // step * step


def duckdb_limit_for(budget: int, share: float = 1.0) -> int:
    """DuckDB's memory_limit for a job whose whole process may take `budget` bytes; `share` below
    1 leaves more of it to the memory DuckDB does not count (the ladder's `smaller_limit` rung).

    >>> [duckdb_limit_for(b * MiB) // MiB for b in (512, 1024, 6144)]
    [256, 698, 5352]
    >>> duckdb_limit_for(240 * MiB, share=2 / 3) // MiB, duckdb_limit_for(24 * MiB, share=0.1) // MiB
    (80, 16)
    """
    full = max(MIN_DUCKDB_LIMIT_BYTES, budget // 2, int((budget - RESERVE_BYTES) / RSS_PER_LIMIT_BYTE))
    return max(MIN_DUCKDB_LIMIT_BYTES, int(full * share))


# auto budget: half the effective memory leaves the other half to the OS, page cache, the client
# (editor, Node bridge) and a second job; never more than 90% of what was free at start.
AUTO_BUDGET_SHARE = 0.50
AVAILABLE_SHARE = 0.90
# an explicit budget above this share of the effective memory is clamped (and a warning says so):
# a budget the machine cannot give ends in the kernel's OOM killer, not in DuckDB's clean error.
MAX_BUDGET_SHARE = 0.90
MIN_BUDGET_BYTES = 128 * MiB
# DuckDB gives each thread its own partitions for aggregates and sorts; below ~256 MiB of the
# buffer-manager limit per thread, extra threads mostly add spilling, so auto lowers the count.
MIN_THREAD_MEMORY_BYTES = 256 * MiB
# spill may use the free disk minus a reserve for everything else on that disk.
SPILL_RESERVE_SHARE = 0.10
SPILL_RESERVE_MIN_BYTES = 2 * GiB
# the machine budget: what all running jobs together may take. The rest is for the OS, the page
# cache, the sidecar itself and the client (Node, an editor).
MACHINE_BUDGET_SHARE = 0.80
# a job that stops making progress and burns no CPU for this long is treated as hung
DEFAULT_STALL_TIMEOUT_MS = 120_000
# settings that hold for the whole sidecar, not for one request
SIDECAR_WIDE_KEYS: tuple[str, ...] = (
    "temp_directory",
    "machine_budget",
    "max_concurrent_jobs",
    "stall_timeout_ms",
)
DEFAULT_TIMEOUT_MS = 300_000
DEFAULT_MAX_ROWS = 10_000
DEFAULT_CHECKPOINT_THRESHOLD_BYTES = 16 * MiB  # DuckDB's own default

# keys a request's `settings` or the client's initialize `overrides` may carry
USER_KEYS: tuple[str, ...] = (
    "memory_limit",
    "threads",
    "temp_directory",
    "max_temp_directory_size",
    "preserve_insertion_order",
    "timeout_ms",
    "max_rows",
    "profile",
    "machine_budget",
    "max_concurrent_jobs",
    "stall_timeout_ms",
    "output_compression",
    "executor",
)

# environment variable -> setting key (the env layer; see docs/configuration.md)
ENV_VARS: dict[str, str] = {
    "BMAD_DATA_PROFILE": "profile",
    "BMAD_DATA_MEMORY_LIMIT": "memory_limit",
    "BMAD_DATA_THREADS": "threads",
    "BMAD_DATA_TEMP_DIRECTORY": "temp_directory",
    "BMAD_DATA_MAX_TEMP_DIRECTORY_SIZE": "max_temp_directory_size",
    "BMAD_DATA_PRESERVE_INSERTION_ORDER": "preserve_insertion_order",
    "BMAD_DATA_TIMEOUT_MS": "timeout_ms",
    "BMAD_DATA_MAX_ROWS": "max_rows",
    "BMAD_DATA_LOG_LEVEL": "log_level",
    "BMAD_DATA_DATABASE_PATH": "database_path",
    "BMAD_DATA_CHECKPOINT_THRESHOLD": "checkpoint_threshold",
    "BMAD_DATA_MACHINE_BUDGET": "machine_budget",
    "BMAD_DATA_MAX_CONCURRENT_JOBS": "max_concurrent_jobs",
    "BMAD_DATA_STALL_TIMEOUT_MS": "stall_timeout_ms",
    "BMAD_DATA_OUTPUT_COMPRESSION": "output_compression",
    "BMAD_DATA_EXECUTOR": "executor",
}
STATE_DIR_ENV = "BMAD_DATA_STATE_DIR"
ALLOWED_DIRS_ENV = "BMAD_DATA_ALLOWED_DIRECTORIES"


class Thresholds(msgspec.Struct, frozen=True, kw_only=True):
    """Monitoring levels as fractions of 1, and spill levels in bytes."""

    duckdb_memory_info: float = 0.50
    duckdb_memory_warning: float = 0.75
    duckdb_memory_critical: float = 0.90
    duckdb_memory_emergency: float = 0.95
    system_memory_warning: float = 0.80
    system_memory_critical: float = 0.90
    system_memory_emergency: float = 0.95
    spill_warning_bytes: int = 0
    spill_critical_bytes: int = 0


class HandOff(msgspec.Struct, frozen=True, kw_only=True):
    """When a split job leaves this machine for Ray: the thresholds file's
    `scaling_triggers.executor_scaling.hand_off_triggers` (docs/architecture/distributed-execution.md)."""

    max_local_parts: int | None = None
    """`split_parts > N`: an attempt split into more than N parts runs its parts on Ray."""
    max_machine_percent: float | None = None
    """`estimate_machine_percent > P`: a job whose estimate needs more than P% of the machine budget
    runs its parts on Ray."""
    address: str | None = None
    """The Ray cluster to join ("head:6379", "ray://head:10001"); None: a local head this sidecar starts."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything one job runs with, and where each value came from (`sources`)."""

    profile: str
    memory_budget_bytes: int
    duckdb_memory_limit_bytes: int
    threads: int
    temp_directory: str
    max_temp_directory_size_bytes: int
    preserve_insertion_order: bool
    timeout_ms: int
    max_rows: int
    database_path: str
    checkpoint_threshold_bytes: int
    log_level: str
    thresholds: Thresholds
    allowed_directories: list[str]
    state_directory: str
    effective_memory_bytes: int
    machine_budget_bytes: int
    """What all running jobs together may take (admission control shares it)."""
    max_concurrent_jobs: int
    stall_timeout_ms: int
    """A job with no progress and no CPU for this long is treated like a timeout (0: never)."""
    output_compression: str
    """The Parquet codec of an `output` whose request names none (DuckDB's own default: snappy)."""
    sources: dict[str, str]
    diagnostics: list[Diagnostic] = []
    executor: str = "local"
    """`execution.executor`: where split parts run when a request names no `executor`: "local",
    "ray" (a local Ray head) or "ray:<address>" (docs/architecture/distributed-execution.md)."""
    hand_off: HandOff | None = None
    """When a job the local executor would run goes to Ray instead; None: never (the default)."""
