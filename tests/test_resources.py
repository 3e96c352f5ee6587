"""detect_resources on fake cgroup v1/v2 trees made of real files, and on this machine."""

from __future__ import annotations

import math
import os
from pathlib import Path

import psutil
import pytest

from sidecar.resources import ResourceReader, detect_resources, disk_space, effective_memory_bytes

GiB = 1024**3


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


def _v2_tree(
    tmp_path: Path, *, leaf_max: str, parent_max: str, cpu_max: str, current: str = "1048576"
) -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    _write(root / "cgroup.controllers", "cpu io memory pids")
    _write(root / "kubepods" / "memory.max", parent_max)
    _write(root / "kubepods" / "cpu.max", "max 100000")
    _write(root / "kubepods" / "pod1" / "memory.max", leaf_max)
    _write(root / "kubepods" / "pod1" / "memory.current", current)
    _write(root / "kubepods" / "pod1" / "cpu.max", cpu_max)
    proc = tmp_path / "proc_self_cgroup"
    _write(proc, "0::/kubepods/pod1")
    return root, proc


def test_v2_limit_quota_and_usage(tmp_path: Path) -> None:
    root, proc = _v2_tree(tmp_path, leaf_max=str(2 * GiB), parent_max="max", cpu_max="150000 100000")
    res = detect_resources(tmp_path, cgroup_root=root, proc_self_cgroup=proc)
    assert res.cgroup_version == 2
    assert res.cgroup_memory_limit_bytes == 2 * GiB
    assert res.cgroup_memory_usage_bytes == 1048576
    assert res.cgroup_cpu_quota == pytest.approx(1.5)
    affinity = len(os.sched_getaffinity(0))
    assert res.usable_cpus == min(affinity, 2)
    assert effective_memory_bytes(res) == min(res.total_memory_bytes, 2 * GiB)
    assert res.available_memory_bytes <= 2 * GiB - 1048576


def test_v2_parent_limit_binds_the_child(tmp_path: Path) -> None:
    root, proc = _v2_tree(tmp_path, leaf_max="max", parent_max=str(GiB), cpu_max="max 100000")
    res = detect_resources(tmp_path, cgroup_root=root, proc_self_cgroup=proc)
    assert res.cgroup_memory_limit_bytes == GiB
    assert res.cgroup_cpu_quota is None


def test_v2_unlimited(tmp_path: Path) -> None:
    root, proc = _v2_tree(tmp_path, leaf_max="max", parent_max="max", cpu_max="max 100000")
    res = detect_resources(tmp_path, cgroup_root=root, proc_self_cgroup=proc)
    assert res.cgroup_version == 2
    assert res.cgroup_memory_limit_bytes is None
    assert effective_memory_bytes(res) == res.total_memory_bytes
    assert res.usable_cpus == len(os.sched_getaffinity(0))


def test_v2_namespaced_path_falls_back_to_root(tmp_path: Path) -> None:
    """In a cgroup namespace /proc/self/cgroup names a path the container cannot see."""
    root = tmp_path / "cgroup"
    _write(root / "cgroup.controllers", "memory")
    _write(root / "memory.max", str(3 * GiB))
    proc = tmp_path / "proc_self_cgroup"
    _write(proc, "0::/../../host/slice")
    res = detect_resources(tmp_path, cgroup_root=root, proc_self_cgroup=proc)
    assert res.cgroup_memory_limit_bytes == 3 * GiB


def _v1_tree(tmp_path: Path, *, limit: int, quota: int, period: int = 100000) -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    mem = root / "memory"
    _write(mem / "memory.limit_in_bytes", "9223372036854771712")
    _write(mem / "docker" / "abc" / "memory.limit_in_bytes", str(limit))
    _write(mem / "docker" / "abc" / "memory.usage_in_bytes", str(300 * 1024**2))
    cpu = root / "cpu,cpuacct"
    _write(cpu / "cpu.cfs_quota_us", "-1")
    _write(cpu / "cpu.cfs_period_us", "100000")
    _write(cpu / "docker" / "abc" / "cpu.cfs_quota_us", str(quota))
    _write(cpu / "docker" / "abc" / "cpu.cfs_period_us", str(period))
    proc = tmp_path / "proc_self_cgroup"
    _write(
        proc,
        "12:pids:/docker/abc\n4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n"
        "1:name=systemd:/docker/abc\n0::/",
    )
    return root, proc


def test_v1_limit_and_quota(tmp_path: Path) -> None:
    root, proc = _v1_tree(tmp_path, limit=GiB, quota=50000)
    res = detect_resources(tmp_path, cgroup_root=root, proc_self_cgroup=proc)
    assert res.cgroup_version == 1
    assert res.cgroup_memory_limit_bytes == GiB
    assert res.cgroup_memory_usage_bytes == 300 * 1024**2
    assert res.cgroup_cpu_quota == pytest.approx(0.5)
    assert res.usable_cpus == 1
    assert res.available_memory_bytes <= GiB - 300 * 1024**2


def test_v1_sentinel_means_unlimited(tmp_path: Path) -> None:
    root, proc = _v1_tree(tmp_path, limit=9223372036854771712, quota=-1)
    res = detect_resources(tmp_path, cgroup_root=root, proc_self_cgroup=proc)
    assert res.cgroup_memory_limit_bytes is None
    assert res.cgroup_cpu_quota is None


def test_no_cgroup_at_all(tmp_path: Path) -> None:
    res = detect_resources(tmp_path, cgroup_root=tmp_path / "absent", proc_self_cgroup=tmp_path / "absent2")
    assert res.cgroup_version is None
    assert res.cgroup_memory_limit_bytes is None
    assert effective_memory_bytes(res) == res.total_memory_bytes


def test_this_machine() -> None:
    """The real /sys/fs/cgroup of whatever runs the tests, checked against psutil and os."""
    res = detect_resources()
    assert res.total_memory_bytes == psutil.virtual_memory().total
    assert 0 < res.available_memory_bytes <= res.total_memory_bytes
    assert res.cgroup_version in (1, 2, None)
    if res.cgroup_memory_limit_bytes is not None:
        assert res.cgroup_memory_limit_bytes > 0
    assert 0 < effective_memory_bytes(res) <= res.total_memory_bytes
    affinity = len(os.sched_getaffinity(0))
    quota = res.cgroup_cpu_quota
    expected = affinity if quota is None else max(1, min(affinity, math.ceil(quota)))
    assert res.usable_cpus == expected
    assert 0 <= res.temp_free_bytes <= res.temp_total_bytes


def test_disk_space_of_a_path_not_yet_created(tmp_path: Path) -> None:
    total, free = disk_space(tmp_path / "not" / "yet" / "there")
    assert (total, free) != (0, 0)
    assert free <= total


def test_the_reader_reads_fixed_facts_once_and_changing_ones_after_their_ttl(tmp_path: Path) -> None:
    root, proc = _v2_tree(tmp_path, leaf_max=str(2 * GiB), parent_max="max", cpu_max="150000 100000")
    now = [100.0]
    reader = ResourceReader(ttl_s=0.25, cgroup_root=root, proc_self_cgroup=proc, clock=lambda: now[0])
    first = reader.read(tmp_path)
    assert first.cgroup_memory_usage_bytes == 1048576 and first.cgroup_memory_limit_bytes == 2 * GiB
    _write(root / "kubepods" / "pod1" / "memory.current", str(GiB))
    _write(root / "kubepods" / "pod1" / "memory.max", str(4 * GiB))
    now[0] += 0.2
    assert reader.read(tmp_path) is first  # within the TTL: the same snapshot
    other = tmp_path / "elsewhere"
    assert reader.read(other).temp_directory == str(other)  # another temp directory is measured at once
    now[0] += 0.3
    later = reader.read(tmp_path)
    assert later.cgroup_memory_usage_bytes == GiB  # usage changes: re-read after the TTL
    assert later.cgroup_memory_limit_bytes == 2 * GiB  # the limit was read once
    assert later.available_memory_bytes <= 2 * GiB - GiB
    assert later.cgroup_cpu_quota == first.cgroup_cpu_quota and later.usable_cpus == first.usable_cpus


def test_detect_resources_agrees_with_a_fresh_reader(tmp_path: Path) -> None:
    root, proc = _v2_tree(tmp_path, leaf_max=str(GiB), parent_max="max", cpu_max="max 100000")
    fresh = ResourceReader(cgroup_root=root, proc_self_cgroup=proc).read(tmp_path)
    detected = detect_resources(tmp_path, cgroup_root=root, proc_self_cgroup=proc)
    assert (fresh.cgroup_memory_limit_bytes, fresh.cgroup_memory_usage_bytes, fresh.usable_cpus) == (
        detected.cgroup_memory_limit_bytes,
        detected.cgroup_memory_usage_bytes,
        detected.usable_cpus,
    )
