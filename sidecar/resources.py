"""What the machine really has: RAM, cgroup v1/v2 limits, CPUs and temp disk.

A container sees the host's RAM in /proc/meminfo and the host's CPUs in os.cpu_count(); sizing
DuckDB from those gets the process OOM-killed by its cgroup. So the limits are read from the
process's own cgroup (walking up to the root, taking the tightest one) and combined with what
the kernel reports. The cgroup root and /proc/self/cgroup are parameters so tests can point
them at fake v1 and v2 trees built from real files.

`ResourceReader` serves `system.resources`: what does not change while the process runs (total RAM,
the cgroup's limits and CPU quota, the CPUs) is read once; what does (available memory, cgroup usage,
free disk) is re-read when older than a short TTL, so the method costs about a dispatch.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

import msgspec
import psutil

__all__ = [
    "CHANGING_TTL_S",
    "Resources",
    "ResourceReader",
    "detect_resources",
    "effective_memory_bytes",
    "disk_space",
    "V1_UNLIMITED_THRESHOLD",
]

logger = logging.getLogger(__name__)

_T = TypeVar("_T", int, float)

# cgroup v1 reports "no limit" as LONG_MAX rounded down to a page (9223372036854771712); any
# value this large is a sentinel, not a limit anyone set.
V1_UNLIMITED_THRESHOLD = 2**60


class Resources(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of the machine as this process may use it."""

    total_memory_bytes: int
    available_memory_bytes: int
    cgroup_version: int | None
    cgroup_memory_limit_bytes: int | None
    cgroup_memory_usage_bytes: int | None
    cgroup_cpu_quota: float | None
    logical_cpus: int
    usable_cpus: int
    temp_directory: str
    temp_total_bytes: int
    temp_free_bytes: int


def effective_memory_bytes(res: Resources) -> int:
    """The memory this process can really get: physical RAM, or the cgroup limit when lower.

    >>> r = Resources(total_memory_bytes=8, available_memory_bytes=8, cgroup_version=2,
    ...     cgroup_memory_limit_bytes=4, cgroup_memory_usage_bytes=1, cgroup_cpu_quota=None,
    ...     logical_cpus=1, usable_cpus=1, temp_directory="/tmp", temp_total_bytes=0, temp_free_bytes=0)
    >>> effective_memory_bytes(r)
    4
    """
    if res.cgroup_memory_limit_bytes is None:
        return res.total_memory_bytes
    return min(res.total_memory_bytes, res.cgroup_memory_limit_bytes)


def disk_space(path: Path) -> tuple[int, int]:
    """(total, free) bytes of the filesystem that holds `path`, or would hold it once created."""
    probe = path.absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    usage = shutil.disk_usage(probe)
    return usage.total, usage.free


CHANGING_TTL_S = 0.25
"""How long `ResourceReader` serves the same available memory, cgroup usage and free disk."""


@dataclass(frozen=True)
class _Fixed:
    """What stays the same while the process runs."""

    total_memory: int
    cgroup_version: int | None
    cgroup_limit: int | None
    cgroup_usage_file: Path | None
    cgroup_quota: float | None
    logical_cpus: int
    usable_cpus: int


def _fixed(cgroup_root: Path, proc_self_cgroup: Path) -> _Fixed:
    version, limit, usage_file, quota = _read_cgroup(cgroup_root, proc_self_cgroup)
    logical = os.cpu_count() or 1
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        affinity = logical
    usable = affinity if quota is None else max(1, min(affinity, math.ceil(quota)))
    return _Fixed(int(psutil.virtual_memory().total), version, limit, usage_file, quota, logical, usable)


class ResourceReader:
    """`detect_resources`, with the fixed facts read once and the changing ones kept for `ttl_s`
    (tests/test_resources.py holds it to both)."""

    def __init__(
        self,
        *,
        ttl_s: float = CHANGING_TTL_S,
        cgroup_root: Path = Path("/sys/fs/cgroup"),
        proc_self_cgroup: Path = Path("/proc/self/cgroup"),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self._fixed = _fixed(cgroup_root, proc_self_cgroup)
        self._clock = clock
        self._lock = threading.Lock()
        self._last: tuple[float, Path, Resources] | None = None

    def read(self, temp_dir: Path | None = None) -> Resources:
        """The machine now (or at most `ttl_s` ago), with the free space where spill files would go."""
        temp = temp_dir if temp_dir is not None else Path(tempfile.gettempdir())
        now = self._clock()
        with self._lock:
            last = self._last
            if last is not None and last[1] == temp and now - last[0] < self.ttl_s:
                return last[2]
        fixed = self._fixed
        usage = _read_int(fixed.cgroup_usage_file) if fixed.cgroup_usage_file is not None else None
        available = int(psutil.virtual_memory().available)
        if fixed.cgroup_limit is not None and usage is not None:
            # Inside a limited cgroup the host's free memory is not ours to take.
            available = min(available, max(0, fixed.cgroup_limit - usage))
        disk_total, disk_free = disk_space(temp)
        res = Resources(
            total_memory_bytes=fixed.total_memory,
            available_memory_bytes=available,
            cgroup_version=fixed.cgroup_version,
            cgroup_memory_limit_bytes=fixed.cgroup_limit,
            cgroup_memory_usage_bytes=usage,
            cgroup_cpu_quota=fixed.cgroup_quota,
            logical_cpus=fixed.logical_cpus,
            usable_cpus=fixed.usable_cpus,
            temp_directory=str(temp),
            temp_total_bytes=disk_total,
            temp_free_bytes=disk_free,
        )
        with self._lock:
            self._last = (now, temp, res)
        return res


def detect_resources(
    temp_dir: Path | None = None,
    *,
    cgroup_root: Path = Path("/sys/fs/cgroup"),
    proc_self_cgroup: Path = Path("/proc/self/cgroup"),
) -> Resources:
    """Measure RAM, cgroup limits, CPUs and the free space where spill files would go."""
    return ResourceReader(ttl_s=0, cgroup_root=cgroup_root, proc_self_cgroup=proc_self_cgroup).read(temp_dir)


def _read_cgroup(
    root: Path, proc_self_cgroup: Path
) -> tuple[int | None, int | None, Path | None, float | None]:
    """(version, memory limit, the file of its memory usage, cpu quota); Nones where there is no
    cgroup or no limit."""
    memberships = _parse_proc_cgroup(proc_self_cgroup)
    if (root / "cgroup.controllers").is_file():
        own = _own_dir(root, memberships.get("", "/"))
        return (
            2,
            _min_up(own, root, "memory.max", _parse_v2_memory_max),
            own / "memory.current",
            (_min_up(own, root, "cpu.max", _parse_v2_cpu_max)),
        )
    memory_root = root / "memory"
    if memory_root.is_dir():
        own = _own_dir(memory_root, memberships.get("memory", "/"))
        limit = _min_up(own, memory_root, "memory.limit_in_bytes", _parse_v1_limit)
        usage = own / "memory.usage_in_bytes"
        quota = None
        for name in ("cpu,cpuacct", "cpu", "cpuacct,cpu"):
            cpu_root = root / name
            if (cpu_root / "cpu.cfs_quota_us").is_file():
                cpu_own = _own_dir(cpu_root, memberships.get("cpu", "/"))
                quota = _min_up(cpu_own, cpu_root, "", _v1_cpu_quota)
                break
        return 1, limit, usage, quota
    return None, None, None, None


def _parse_proc_cgroup(path: Path) -> dict[str, str]:
    """Controller name -> cgroup path; "" is the v2 unified hierarchy (`0::/path`)."""
    try:
        text = path.read_text()
    except OSError:
        return {}
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, cg_path = parts
        if controllers == "":
            out[""] = cg_path
        for controller in controllers.split(","):
            if controller:
                out[controller] = cg_path
    return out


def _own_dir(root: Path, cg_path: str) -> Path:
    """The process's cgroup directory; in a cgroup namespace the path may not exist, so use the root."""
    candidate = root / cg_path.lstrip("/")
    return candidate if candidate.is_dir() else root


def _min_up(start: Path, root: Path, filename: str, parse: Callable[[Path], _T | None]) -> _T | None:
    """The tightest limit from `start` up to `root`: a parent's limit binds its children too."""
    best: _T | None = None
    current = start
    while True:
        value = parse(current / filename if filename else current)
        if value is not None and (best is None or value < best):
            best = value
        if current == root or current == current.parent:
            return best
        current = current.parent


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _read_int(path: Path) -> int | None:
    text = _read_text(path)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        logger.warning("unexpected content in %s: %r", path, text)
        return None


def _parse_v2_memory_max(path: Path) -> int | None:
    return None if _read_text(path) == "max" else _read_int(path)


def _parse_v1_limit(path: Path) -> int | None:
    value = _read_int(path)
    if value is None or value >= V1_UNLIMITED_THRESHOLD:
        return None
    return value


def _parse_v2_cpu_max(path: Path) -> float | None:
    """`cpu.max` is "<quota> <period>" or "max <period>"; the quota in CPUs."""
    text = _read_text(path)
    if text is None:
        return None
    parts = text.split()
    if not parts or parts[0] == "max":
        return None
    try:
        quota = int(parts[0])
        period = int(parts[1]) if len(parts) > 1 else 100_000
    except ValueError:
        logger.warning("unexpected content in %s: %r", path, text)
        return None
    return quota / period if quota > 0 and period > 0 else None


def _v1_cpu_quota(directory: Path) -> float | None:
    """cfs_quota_us / cfs_period_us; a quota of -1 means unlimited."""
    quota = _read_int(directory / "cpu.cfs_quota_us")
    period = _read_int(directory / "cpu.cfs_period_us")
    if quota is None or period is None or quota <= 0 or period <= 0:
        return None
    return quota / period
