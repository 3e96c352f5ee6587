"""How much memory and how many threads one job gets, and why.

The budget in `Settings.memory_budget_bytes` is the ceiling the engine starts a job at, so what
`config.get` (and `bmad-data status`) shows is what a job gets: the auto budget is capped at a
job's share of the machine budget (machine budget / max_concurrent_jobs), the share admission
control gives each of the jobs that may run at once. An explicit budget above what the machine
can give, or threads above the usable CPUs, are refused when a request or a client's overrides
ask for them (the caller can ask again), and clamped with a warning when a file or an
environment variable sets them (the sidecar must still start).
"""

from __future__ import annotations

from typing import Any

from sidecar.config.diagnostics import Diagnostic
from sidecar.config.schema import MemoryLimit
from sidecar.config.settings import (
    AUTO_BUDGET_SHARE,
    AVAILABLE_SHARE,
    MAX_BUDGET_SHARE,
    MIN_BUDGET_BYTES,
)
from sidecar.errors import InvalidParams
from sidecar.resources import Resources
from sidecar.units import format_size

__all__ = [
    "auto_budget",
    "job_budget",
    "job_threads",
    "memory_origin",
    "file_of",
    "warn_at",
    "REFUSING_LAYERS",
]

REFUSING_LAYERS = ("request", "overrides")
"""Layers whose impossible values are refused rather than clamped: their sender can ask again."""


def file_of(source: str) -> tuple[str, int | None]:
    """(file, line) from a `file:/path:42 (profile x)` source, or (layer name, None).

    >>> file_of("file:/p/t.yaml:12 (profile dev)"), file_of("request")
    (('/p/t.yaml', 12), ('<request>', None))
    """
    if not source.startswith("file:"):
        return f"<{source}>", None
    path, _, rest = source[len("file:") :].rpartition(":")
    line = rest.split(" ", 1)[0]
    return path, int(line) if line.isdigit() else None


def warn_at(diags: list[Diagnostic], source: str, key: str, message: str) -> None:
    """A warning at the file and line the value came from (or the layer's name)."""
    file, line = file_of(source)
    diags.append(Diagnostic("warning", file, line, None, key, message))


def memory_origin(res: Resources) -> str:
    if res.cgroup_memory_limit_bytes is not None and res.cgroup_memory_limit_bytes < res.total_memory_bytes:
        return f"cgroup v{res.cgroup_version} limit {format_size(res.cgroup_memory_limit_bytes)}"
    cg = "no cgroup limit" if res.cgroup_memory_limit_bytes is None else "cgroup limit above physical"
    return f"physical {format_size(res.total_memory_bytes)}; {cg}"


def auto_budget(res: Resources, effective: int) -> tuple[str, Any]:
    """Half the effective memory, never more than 90% of what was free at start."""
    share = int(effective * AUTO_BUDGET_SHARE)
    from_available = int(res.available_memory_bytes * AVAILABLE_SHARE)
    origin = memory_origin(res)
    if from_available < share:
        src = (
            f"auto: {AVAILABLE_SHARE:.0%} of available memory "
            f"{format_size(res.available_memory_bytes)} at start "
            f"(less than {AUTO_BUDGET_SHARE:.0%} of effective memory {format_size(effective)}, {origin})"
        )
        value = from_available
    else:
        src = f"auto: {AUTO_BUDGET_SHARE:.0%} of effective memory {format_size(effective)} ({origin})"
        value = share
    return src, MemoryLimit(text="auto", bytes=max(value, min(MIN_BUDGET_BYTES, effective)))


def job_budget(
    limit: MemoryLimit, source: str, effective: int, machine: int, max_jobs: int, diags: list[Diagnostic]
) -> tuple[int, str]:
    """(bytes a job starts with, note for its source); refuses or clamps what cannot be given."""
    asked = limit.bytes if limit.bytes is not None else int(effective * (limit.share or 0))
    note = f" ({limit.text} of effective memory {format_size(effective)})" if limit.share is not None else ""
    if source.startswith("auto"):
        share = machine // max(1, max_jobs)
        if asked > share:
            note += (
                f"; capped at a job's share of the machine budget: {format_size(machine)} / {max_jobs} "
                "concurrent jobs (a running job may grow in place toward the machine budget while none waits)"
            )
            asked = max(share, min(MIN_BUDGET_BYTES, effective))
        return asked, note
    ceiling, what = min(
        (
            int(effective * MAX_BUDGET_SHARE),
            f"{MAX_BUDGET_SHARE:.0%} of effective memory {format_size(effective)}",
        ),
        (machine, f"the machine budget {format_size(machine)} (what all running jobs together may take)"),
    )
    if asked > ceiling:
        if source in REFUSING_LAYERS:
            raise InvalidParams(
                f"memory_limit {format_size(asked)} is above {what}",
                hint=(
                    f"Ask for at most {_size_arg(ceiling)}, or leave memory_limit unset (auto). The machine "
                    "budget itself is the `machine_budget` setting (BMAD_DATA_MACHINE_BUDGET)."
                ),
                details={
                    "key": "memory_limit",
                    "layer": source,
                    "asked_bytes": asked,
                    "most_bytes": ceiling,
                },
            )
        note += f"; clamped to {what}: asked for {format_size(asked)}"
        warn_at(diags, source, "memory_limit", note.strip(" ;"))
        asked = ceiling
    if asked < MIN_BUDGET_BYTES:
        # a worker process alone holds ~85 MiB: a smaller budget could not run even SELECT 1
        below = (
            f"memory_limit {format_size(asked)} is below the minimum job budget "
            f"{format_size(MIN_BUDGET_BYTES)}"
        )
        if source in REFUSING_LAYERS:
            raise InvalidParams(
                below,
                hint=(
                    "A job's process needs about 85 MiB before DuckDB holds any data: ask for "
                    f"{_size_arg(MIN_BUDGET_BYTES)} or more (256MiB leaves DuckDB room to work)."
                ),
                details={"key": "memory_limit", "layer": source, "asked_bytes": asked},
            )
        warn_at(diags, source, "memory_limit", f"{below}; raised to the minimum")
        note += f"; raised to the minimum {format_size(MIN_BUDGET_BYTES)}"
        asked = MIN_BUDGET_BYTES
    return asked, note


def job_threads(threads: int, source: str, usable_cpus: int, diags: list[Diagnostic]) -> tuple[int, str]:
    """(threads, source); more threads than usable CPUs only contend for them and split memory thinner."""
    if threads <= usable_cpus or source.startswith("auto"):
        return threads, source
    if source in REFUSING_LAYERS:
        raise InvalidParams(
            f"threads {threads} is more than the {usable_cpus} usable CPUs of this machine",
            hint=(
                f"Ask for at most {usable_cpus} threads, or leave threads unset "
                f"(auto uses up to {usable_cpus})."
            ),
            details={"key": "threads", "layer": source, "asked": threads, "usable_cpus": usable_cpus},
        )
    message = f"threads {threads} is more than the {usable_cpus} usable CPUs; clamped"
    warn_at(diags, source, "threads", message)
    return usable_cpus, f"{source}; clamped to the {usable_cpus} usable CPUs: asked for {threads}"


def _size_arg(n: int) -> str:
    """A size the user can paste back as memory_limit, rounded down to whole MiB.

    >>> _size_arg(20 * 1024**3 + 5)
    '20480MiB'
    """
    return f"{n // 1024**2}MiB"
