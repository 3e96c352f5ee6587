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
  combine (sidecar.jobs.split): 8 parts, then 4x as many when that still failed;
- `smaller_limit`: for what cannot split, when the process neared its ceiling (not when DuckDB ran
  out of its own limit): DuckDB's limit cut to 2/3, twice at most, so it spills sooner and leaves
  room for the memory it does not count. A top-N whose offset is half a 1 GB table, at a 250 MB
  ceiling on a worker warm from earlier jobs, failed on `first` and `fewer_threads` and completes
  on this rung (docs/performance/benchmarks.md).
The others adjust a whole attempt. An attempt that ran split (`parts` > 0) already ran each
step with them, and re-split a part that alone ran out, so after it fails only more parts can help.
The ladder never answers with an approximation. A shape recognised as one that will not fit
skips the rungs that cannot help.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

from sidecar.config.settings import MIN_DUCKDB_LIMIT_BYTES

__all__ = ["JobState", "Failure", "Rung", "RetryLadder", "DEFAULT_LADDER", "MEMORY_FAILURES"]

MEMORY_FAILURES = frozenset({"OUT_OF_MEMORY", "MEMORY_CEILING", "MEMORY_EMERGENCY"})
MIN_MEMORY_PER_THREAD = 256 * 1024**2
FIRST_PARTS = 8
SMALLER_SHARE = 2 / 3
"""The `smaller_limit` rung's cut of DuckDB's share of the ceiling, each time it runs."""
NEAR_CEILING = frozenset({"MEMORY_CEILING", "MEMORY_EMERGENCY"})


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
    unsplittable: str = ""
    """Why the planner refuses to split it ("" when it can, or before it was asked)."""
    parts: int = 0
    """Run split in this many parts (0: run whole); set up front (estimate, `partition.parts`) or by the `partition` rung."""
    duckdb_share: float = 1.0
    """The part of `duckdb_limit_for(ceiling)` DuckDB gets (cut by the `smaller_limit` rung)."""


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
    why_not: Callable[[Failure, JobState, tuple[str, ...]], str]
    """Why the rung cannot help this failure ("" when it applies): recorded in `stats.attempts`
    and the final error's "Tried:" so a user sees why the ladder stopped where it did."""
    adjust: Callable[[Failure, JobState], JobState]

    def applies(self, failure: Failure, state: JobState, tried: tuple[str, ...]) -> bool:
        return not self.why_not(failure, state, tried)


def _grow(failure: Failure, state: JobState) -> JobState:
    target = min(state.most, max(state.ceiling * 2, state.ceiling + failure.machine_room // 2))
    target = min(target, state.ceiling + failure.machine_room)
    return replace(state, ceiling=target)


def _first(*checks: tuple[bool, str]) -> str:
    """The reason of the first check that holds ("" when none does: the rung applies).

    >>> _first((False, "never"), (True, "this one"), (True, "not reached"))
    'this one'
    >>> _first((False, "never"))
    ''
    """
    return next((reason for failed, reason in checks if failed), "")


def _not_memory(f: Failure) -> tuple[bool, str]:
    return f.code not in MEMORY_FAILURES, f"{f.code} is not a memory failure"


def _split_already(s: JobState) -> tuple[bool, str]:
    return s.parts > 0, "the attempt ran split; only more parts can help"


def _not_repeatable(s: JobState) -> tuple[bool, str]:
    return not s.idempotent, "the work is not safe to repeat (it writes outside one transaction)"


def _retry_why_not(f: Failure, s: JobState, tried: tuple[str, ...]) -> str:
    return _first(
        (f.code != "WORKER_CRASHED", f"{f.code} is not a worker crash"),
        _split_already(s),
        _not_repeatable(s),
        (tried.count("retry") >= 1, "a crash is retried once"),
    )


def _grow_why_not(f: Failure, s: JobState, tried: tuple[str, ...]) -> str:
    return _first(
        _not_memory(f),
        _split_already(s),
        _not_repeatable(s),
        (s.ceiling >= s.most, f"the job is at its budget ({s.most // 1024**2} MiB)"),
        (f.machine_room <= 0, "the machine budget has no room left"),
    )


def _insertion_order_why_not(f: Failure, s: JobState, tried: tuple[str, ...]) -> str:
    return _first(
        _not_memory(f),
        _split_already(s),
        _not_repeatable(s),
        (not s.exports, "the query writes no output file"),
        (not s.preserve_insertion_order, "insertion order is already off"),
    )


def _fewer_threads_why_not(f: Failure, s: JobState, tried: tuple[str, ...]) -> str:
    return _first(
        _not_memory(f),
        _split_already(s),
        _not_repeatable(s),
        (s.holistic, "a holistic aggregate holds whole groups whatever the threads"),
        (s.threads <= 1, "it already runs on one thread"),
        (
            s.duckdb_limit // s.threads >= MIN_MEMORY_PER_THREAD,
            "each thread already has at least 256 MiB",
        ),
    )


def _partition_why_not(f: Failure, s: JobState, tried: tuple[str, ...]) -> str:
    return _first(
        _not_memory(f),
        _not_repeatable(s),
        (not s.splittable, f"the planner cannot split it ({s.unsplittable or 'not a read-only SELECT'})"),
        (tried.count("partition") >= 2, "it already ran split twice (8, then 32 parts)"),
    )


def _smaller_limit_why_not(f: Failure, s: JobState, tried: tuple[str, ...]) -> str:
    return _first(
        _not_memory(f),
        (f.code not in NEAR_CEILING, "DuckDB ran out of its own limit; a smaller one runs out sooner"),
        _split_already(s),
        _not_repeatable(s),
        (s.holistic, "a holistic aggregate holds whole groups; a smaller limit cannot hold them"),
        (tried.count("smaller_limit") >= 2, "DuckDB's limit was already cut twice"),
        (s.duckdb_limit * SMALLER_SHARE < MIN_DUCKDB_LIMIT_BYTES, "DuckDB's limit is at its minimum"),
    )


DEFAULT_LADDER: tuple[Rung, ...] = (
    Rung(
        "retry",
        "the worker died for a reason of its own; the work is safe to repeat on a fresh worker",
        _retry_why_not,
        lambda f, s: s,
    ),
    Rung(
        "grow",
        "more memory rescues what spilling cannot; the machine has room within the job's budget",
        _grow_why_not,
        _grow,
    ),
    Rung(
        "insertion_order",
        "a large export need not keep insertion order; dropping it frees the order buffers",
        _insertion_order_why_not,
        lambda f, s: replace(s, preserve_insertion_order=False),
    ),
    Rung(
        "fewer_threads",
        "each thread keeps its own partitions; under 256 MiB per thread, fewer threads spill less",
        _fewer_threads_why_not,
        lambda f, s: replace(s, threads=max(1, s.threads // 2)),
    ),
    Rung(
        "partition",
        "the query splits into independent parts that combine exactly; each part needs a fraction of the memory",
        _partition_why_not,
        lambda f, s: replace(s, parts=FIRST_PARTS if s.parts == 0 else s.parts * 4),
    ),
    Rung(
        "smaller_limit",
        "the process neared its ceiling with DuckDB inside its limit; a smaller limit spills sooner "
        "and leaves room for the memory DuckDB does not count",
        _smaller_limit_why_not,
        lambda f, s: replace(s, duckdb_share=s.duckdb_share * SMALLER_SHARE),
    ),
)


class RetryLadder:
    """Picks the first rung that applies to a failure; None when nothing can help."""

    def __init__(self, rungs: tuple[Rung, ...] = DEFAULT_LADDER, max_attempts: int = 5) -> None:
        self.rungs = rungs
        self.max_attempts = max_attempts

    def next(self, failure: Failure, state: JobState, tried: tuple[str, ...]) -> tuple[Rung, JobState] | None:
        step, _ = self.decide(failure, state, tried)
        return step

    def decide(
        self, failure: Failure, state: JobState, tried: tuple[str, ...]
    ) -> tuple[tuple[Rung, JobState] | None, dict[str, str]]:
        """The next step (None when nothing can help), and why each rung before it was skipped
        (every rung, when none was chosen)."""
        skipped: dict[str, str] = {}
        made = len(tried) + 1  # the first attempt is not in `tried`
        # A job that can split keeps its last attempts for the split (8, then 32 parts): the
        # whole-query rungs may repeat (grow, fewer threads) but never use up the attempts first.
        split = next((r for r in self.rungs if r.name == "partition"), None)
        kept = 2 - tried.count("partition") if split and not split.why_not(failure, state, tried) else 0
        for rung in self.rungs:
            reason = rung.why_not(failure, state, tried)
            if not reason and made >= self.max_attempts:
                reason = f"the attempt limit ({self.max_attempts}) is reached"
            if not reason and kept and rung.name not in ("partition", "retry") and made + 1 + kept > self.max_attempts:
                reason = f"the last {kept} attempts are kept for a split"
            if not reason:
                adjusted = rung.adjust(failure, state)
                if adjusted != state or rung.name == "retry":
                    return (rung, adjusted), skipped
                reason = "it would change nothing"
            skipped[rung.name] = reason
        return None, skipped

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
