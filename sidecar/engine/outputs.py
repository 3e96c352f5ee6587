"""Atomic result files: all of the output or none of it, never a partial file.

DuckDB writes to a temporary name in the target's own directory (so the final rename is
atomic, never a cross-device copy); the sidecar fsyncs it, renames it over the target and
fsyncs the directory. On any failure the temporary file is removed and a file already at
the target is untouched. Temporary names start with `.bmad-tmp-` so `cleanup` can find
what a killed process left behind: each write in progress is also journaled in the state
directory (`pending-outputs/<pid>-<id>` holding the temporary path), so a cleanup after a
crash finds the leftovers wherever they are, without scanning the disk.
"""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Literal

from sidecar.errors import AccessDenied, InputError
from sidecar.jobs.types import OutputSpec

__all__ = [
    "TEMP_PREFIX",
    "OutputFormat",
    "atomic_target",
    "copy_options",
    "inside",
    "require_inside",
    "remove_orphaned_outputs",
    "pid_alive",
]

TEMP_PREFIX = ".bmad-tmp-"
OutputFormat = Literal["parquet", "csv", "json"]


def copy_options(output: OutputSpec) -> str:
    """The COPY options for an output, written so DuckDB produces one plain file; what the request
    leaves out is DuckDB's own default (Parquet: snappy, 122,880-row row groups).

    >>> copy_options(OutputSpec("a.parquet"))
    'FORMAT parquet'
    >>> copy_options(OutputSpec("a.parquet", compression="zstd", compression_level=9, row_group_size=100000))
    'FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 9, ROW_GROUP_SIZE 100000'
    >>> copy_options(OutputSpec("a.csv", format="csv"))
    'FORMAT csv, HEADER true'
    """
    options = [{"parquet": "FORMAT parquet", "csv": "FORMAT csv, HEADER true", "json": "FORMAT json"}[output.format]]
    if output.compression is not None:
        options.append(f"COMPRESSION {output.compression}")
    if output.compression_level is not None:
        options.append(f"COMPRESSION_LEVEL {output.compression_level}")
    if output.row_group_size is not None:
        options.append(f"ROW_GROUP_SIZE {output.row_group_size}")
    return ", ".join(options)


def inside(path: Path, directories: list[str]) -> bool:
    """Whether `path` (resolved, symlinks followed) lies inside one of `directories`."""
    resolved = path.resolve()
    for directory in directories:
        base = Path(directory).resolve()
        if resolved == base or base in resolved.parents:
            return True
    return False


OUTSIDE_HINT = (
    "Use a path inside one of the allowed directories (config.get -> settings.allowed_directories), "
    "or add its directory to BMAD_DATA_ALLOWED_DIRECTORIES (separated by ':') and restart the sidecar."
)


def require_inside(path: Path, directories: list[str], what: str) -> None:
    """ACCESS_DENIED naming `what` (e.g. "output path '/x/y.parquet'") unless `path` lies inside `directories`."""
    if not inside(path, directories):
        raise AccessDenied(
            f"{what} is outside the allowed directories",
            hint=OUTSIDE_HINT,
            details={"path": str(path), "allowed_directories": [str(d) for d in directories]},
        )


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_target(path_text: str, *, overwrite: bool, allowed: list[str], journal: Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `path_text` atomically."""
    target = Path(path_text).expanduser()
    if not target.is_absolute():
        target = Path.cwd() / target
    require_inside(target, allowed, f"output path {str(target)!r}")
    if target.is_dir():
        raise InputError(
            f"output path {str(target)!r} is a directory", hint="Give a file path, e.g. out/result.parquet."
        )
    if not target.parent.is_dir():
        raise InputError(
            f"the directory of output path {str(target)!r} does not exist",
            hint=f"Create {str(target.parent)!r} first.",
        )
    if target.exists() and not overwrite:
        raise InputError(
            f"output path {str(target)!r} already exists",
            hint="Pass `overwrite: true` in `output` to replace it, or choose another path.",
        )
    token = uuid.uuid4().hex
    temp = target.parent / f"{TEMP_PREFIX}{token}-{target.name}"
    journal.mkdir(parents=True, exist_ok=True)
    entry = journal / f"{os.getpid()}-{token}"
    entry.write_text(str(temp))
    try:
        yield temp
        if not temp.exists():
            raise InputError(f"the query wrote no output to {str(temp)!r}")
        with open(temp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temp, target)
        _fsync_dir(target.parent)
    finally:
        if temp.exists():
            temp.unlink()
        entry.unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid runs (a zombie, dead but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rpartition(b")")[2].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def remove_orphaned_outputs(journal: Path) -> tuple[int, int]:
    """Remove temporary outputs whose writing process is gone: (bytes freed, files removed)."""
    freed = removed = 0
    if not journal.is_dir():
        return 0, 0
    for entry in journal.iterdir():
        pid, _, _ = entry.name.partition("-")
        if pid.isdigit() and pid_alive(int(pid)):
            continue
        try:
            temp = Path(entry.read_text().strip())
        except OSError:
            temp = None
        if temp is not None and temp.name.startswith(TEMP_PREFIX) and temp.is_file():
            freed += temp.stat().st_size
            removed += 1
            temp.unlink(missing_ok=True)
        entry.unlink(missing_ok=True)
    return freed, removed
