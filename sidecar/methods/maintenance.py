"""`cleanup`: remove what failed or killed work left behind."""

from __future__ import annotations

import shutil
import time
from collections.abc import Collection
from typing import Annotated

import msgspec

from sidecar.bench.suite.data import remove_cache
from sidecar.engine.outputs import pid_alive
from sidecar.methods import registry
from sidecar.protocol.dispatcher import Call
from sidecar.jobs.kept import anonymous_owner, jobs_root

DEFAULT_JOB_MAX_AGE_MS = 7 * 24 * 3600 * 1000


class CleanupParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    aggressive: bool = False
    """Also drop idle pooled connections and their caches, and the benchmarks' cached data."""
    job_max_age_ms: Annotated[int, msgspec.Meta(ge=0)] = DEFAULT_JOB_MAX_AGE_MS
    """Remove the directories of named partitioned jobs untouched for this long (default 7 days)."""


class CleanupResult(msgspec.Struct, frozen=True):
    bytes_freed: int
    files_removed: int
    spill_directory: str


def remove_stale_job_directories(
    state_directory: str, max_age_ms: int, running: Collection[str]
) -> tuple[int, int]:
    """Remove job directories nobody will resume: (bytes freed, files removed).

    A named job's directory goes once untouched for `max_age_ms` (the newest file counts, so a
    job resumed lately stays), never while a request with its job_id runs. A request without a
    job_id removes its own; one left by a sidecar that died goes at once.
    """
    root = jobs_root(state_directory)
    if not root.is_dir():
        return 0, 0
    freed = removed = 0
    now = time.time()
    for directory in root.iterdir():
        if not directory.is_dir() or directory.name in running:
            continue
        try:
            sizes = [(f.stat().st_mtime, f.stat().st_size) for f in directory.rglob("*") if f.is_file()]
            owner = anonymous_owner(directory)
            if owner is not None:
                stale = not pid_alive(owner)
            else:
                newest = max([directory.stat().st_mtime, *(mtime for mtime, _ in sizes)])
                stale = (now - newest) * 1000 >= max_age_ms
        except FileNotFoundError:  # another sidecar (or the job itself) removed it while we looked
            continue
        if stale:
            freed += sum(size for _, size in sizes)
            removed += len(sizes)
            shutil.rmtree(directory, ignore_errors=True)
    return freed, removed


@registry.method("cleanup", params=CleanupParams, result=CleanupResult)
def cleanup(call: Call, p: CleanupParams) -> CleanupResult:
    """Remove orphaned spill directories, temporary output files and stale job directories; report what was freed."""
    session = call.session
    freed, removed = session.engine.cleanup(aggressive=p.aggressive)
    job_bytes, job_files = remove_stale_job_directories(
        session.settings.state_directory, p.job_max_age_ms, set(session.running_jobs)
    )
    if p.aggressive:
        bench_bytes, bench_files = remove_cache(session.settings.state_directory)
        job_bytes, job_files = job_bytes + bench_bytes, job_files + bench_files
    return CleanupResult(freed + job_bytes, removed + job_files, session.settings.temp_directory)
