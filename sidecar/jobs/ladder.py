"""The retry ladder: what to try next when a job fails, as data tests can reason about.

Measured on this machine (DuckDB 2.0.1, 1 GB limit): fewer threads and
`preserve_insertion_order=false` rescued none of the failing shapes and each failed attempt
cost 15-50 s, while more memory or splitting the work did. So the ladder climbs cheaply:
- `retry`: a worker crash that was not ours (a segfault, the kernel's OOM killer) on work
  that is safe to repeat: run it again on a fresh worker, once;
- `grow`: more memory, within the job's own budget and never above the machine's, when the
  machine has room (the watchdog also grows a job in place before it fails);
- `insertion_order`: a large export with `preserve_insertion_order` on, turned off;
- `fewer_threads`: only when memory per thread is what ran out (under 256 MiB per thread),
  and never for shapes it is known not to help (holistic aggregates);
- `partition`: run a read-only SELECT the planner can split as independent parts and an exact
  combine (sidecar.jobs.split): 8 parts, then 4x as many when that still failed.
The first four adjust a whole attempt. An attempt that ran split (`parts` > 0) already ran each
step with them, and re-split a part that alone ran out, so after it fails only more parts can help.
The ladder never answers with an approximation. A shape recognised as one that will not fit
skips the rungs that cannot help.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

__all__ = ["JobState", "Failure", "Rung", "RetryLadder", "DEFAULT_LADDER", "MEMORY_FAILURES"]

MEMORY_FAILURES = frozenset({"OUT_OF_MEMORY", "MEMORY_CEILING", "MEMORY_EMERGENCY"})
MIN_MEMORY_PER_THREAD = 256 * 1024**2
FIRST_PARTS = 8


@dataclass(frozen=True)
class JobState:
    """What the next attempt runs with."""

    ceiling: int
    """The worker's memory ceiling for this attempt (bytes)."""
    most: int
    """The most this job may ever get: its own budget, or the machine budget when it set none."""
    threads: int
    preserve_insertion_order: bool
    idempotent: bool
    """Safe to run again: reads, or writes that are atomic (outputs, one-transaction writes)."""
    exports: bool
    """Writes a large output file."""
    holistic: bool
    """Holds whole groups at once (median, quantile, list, string_agg, ...): cannot spill well."""
    duckdb_limit: int = 0
    splittable: bool = False
    """A read-only SELECT whose shape the planner can split (asked for the estimate, or parsed after a memory failure)."""
    parts: int = 0
    """Run split in this many parts (0: run whole); set up front (estimate, `partition.parts`) or by the `partition` rung."""


@dataclass(frozen=True)
class Failure:
    code: str
    """OUT_OF_MEMORY, MEMORY_CEILING (killed at the ceiling), MEMORY_EMERGENCY (interrupted
    near it), WORKER_CRASHED, SPILL_LIMIT, TIMEOUT, ..."""
    machine_room: int = 0
    """Bytes the machine budget could still give this job right now."""


@dataclass(frozen=True)
class Rung:
    name: str
    why: str
    applies: Callable[[Failure, JobState, tuple[str, ...]], bool]
    adjust: Callable[[Failure, JobState], JobState]


def _grow(failure: Failure, state: JobState) -> JobState:
    target = min(state.most, max(state.ceiling * 2, state.ceiling + failure.machine_room // 2))
    target = min(target, state.ceiling + failure.machine_room)
    return replace(state, ceiling=target)


DEFAULT_LADDER: tuple[Rung, ...] = (
    Rung(
        "retry",
        "the worker died for a reason of its own; the work is safe to repeat on a fresh worker",
        lambda f, s, tried: (
            f.code == "WORKER_CRASHED" and s.parts == 0 and s.idempotent and tried.count("retry") < 1
        ),
        lambda f, s: s,
    ),
    Rung(
        "grow",
        "more memory rescues what spilling cannot; the machine has room within the job's budget",
        lambda f, s, tried: (
            f.code in MEMORY_FAILURES
            and s.parts == 0
            and s.idempotent
            and s.ceiling < s.most
            and f.machine_room > 0
        ),
        _grow,
    ),
    Rung(
        "insertion_order",
        "a large export need not keep insertion order; dropping it frees the order buffers",
        lambda f, s, tried: (
            f.code in MEMORY_FAILURES
            and s.parts == 0
            and s.idempotent
            and s.exports
            and s.preserve_insertion_order
        ),
        lambda f, s: replace(s, preserve_insertion_order=False),
    ),
    Rung(
        "fewer_threads",
        "each thread keeps its own partitions; under 256 MiB per thread, fewer threads spill less",
        lambda f, s, tried: (
            f.code in MEMORY_FAILURES
            and s.parts == 0
            and s.idempotent
            and not s.holistic
            and s.threads > 1
            and s.duckdb_limit // s.threads < MIN_MEMORY_PER_THREAD
        ),
        lambda f, s: replace(s, threads=max(1, s.threads // 2)),
    ),
    Rung(
        "partition",
        "the query splits into independent parts that combine exactly; each part needs a fraction of the memory",
        lambda f, s, tried: (
            f.code in MEMORY_FAILURES and s.idempotent and s.splittable and tried.count("partition") < 2
        ),
        lambda f, s: replace(s, parts=FIRST_PARTS if s.parts == 0 else s.parts * 4),
    ),
)


class RetryLadder:
    """Picks the first rung that applies to a failure; None when nothing can help."""

    def __init__(self, rungs: tuple[Rung, ...] = DEFAULT_LADDER, max_attempts: int = 5) -> None:
        self.rungs = rungs
        self.max_attempts = max_attempts

    def next(self, failure: Failure, state: JobState, tried: tuple[str, ...]) -> tuple[Rung, JobState] | None:
        if len(tried) + 1 >= self.max_attempts:
            return None
        for rung in self.rungs:
            if rung.applies(failure, state, tried):
                adjusted = rung.adjust(failure, state)
                if adjusted != state or rung.name == "retry":
                    return rung, adjusted
        return None

    def advice(self, failure: Failure, state: JobState) -> str:
        """What the user can do when the ladder has nothing left to try."""
        if failure.code not in MEMORY_FAILURES:
            return ""
        parts = []
        if state.ceiling >= state.most:
            parts.append("raise `memory_limit` in the request's settings if the machine has room")
        if state.holistic:
            parts.append(
                "this query holds whole groups in memory (median, quantile, list, string_agg...): "
                "split it by a key (e.g. WHERE hash(key) % 4 = 0, 1, 2, 3) and combine the parts"
            )
        else:
            parts.append("filter or aggregate earlier, or split the work by a key and combine the parts")
        return "; ".join(parts) + "."
