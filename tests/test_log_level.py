"""`log_level` reaches the sidecar's logging: the profile's `monitoring.log_level` sets what a real
sidecar writes on stderr, and `--log-level` / BMAD_DATA_LOG_LEVEL rank above it. Worker processes
(lines tagged `worker[pid]`) log at the same resolved level: a reload that changes it reaches the
workers already running and those started later."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from sidecar.client import RpcError, SidecarProcess

TEMPLATES = "data/duckdb-memory-config-templates.yaml"
WORKER_JOB = re.compile(r" DEBUG worker\[(\d+)\] sidecar\.worker: job \d+: ")
INTERRUPTED = re.compile(r" DEBUG worker\[(\d+)\] sidecar\.worker: job \d+: interrupted")
SLOW = "SELECT count(*) AS n FROM range(3000000000) t(i) WHERE hash(i) % 7 = 1"


def _quiet_env(sidecar_env: dict[str, str]) -> dict[str, str]:
    """The test sidecar's env without the BMAD_DATA_LOG_LEVEL=debug every other test runs with."""
    return {k: v for k, v in sidecar_env.items() if k != "BMAD_DATA_LOG_LEVEL"}


def _lines_after_initialize(start: Callable[..., SidecarProcess], env: dict[str, str], profile: str,
                            *args: str) -> tuple[dict[str, Any], list[str]]:  # fmt: skip
    """Start a sidecar, initialize it with `profile`, run a query, stop it: its settings and the
    stderr lines written after the initialize answer."""
    sc = start(*args, env=env)
    settings = sc.request("initialize", {"profile": profile})["settings"]
    mark = len(sc.stderr_tail)
    assert mark < 150, "the tail would drop lines before the mark"
    sc.request("query.run", {"sql": "SELECT 42 AS answer"})
    assert sc.close() == 0
    return settings, list(sc.stderr_tail)[mark:]


def test_the_profiles_log_level_decides_what_the_sidecar_logs(start_sidecar, sidecar_env):
    env = _quiet_env(sidecar_env)
    loud, loud_lines = _lines_after_initialize(start_sidecar, env, "development")  # log_level: "debug"
    assert loud["log_level"] == "debug" and "development" in loud["sources"]["log_level"]
    assert any(" DEBUG sidecar." in line for line in loud_lines), loud_lines
    assert any(" INFO sidecar: stopped" in line for line in loud_lines), loud_lines

    quiet, quiet_lines = _lines_after_initialize(start_sidecar, env, "edge")  # log_level: "error"
    assert quiet["log_level"] == "error" and "edge" in quiet["sources"]["log_level"]
    assert not [line for line in quiet_lines if " DEBUG " in line or " INFO " in line], quiet_lines


def test_the_command_line_log_level_ranks_above_the_profile(start_sidecar, sidecar_env):
    env = _quiet_env(sidecar_env)
    settings, lines = _lines_after_initialize(start_sidecar, env, "edge", "--log-level", "info")
    assert settings["log_level"] == "info" and "BMAD_DATA_LOG_LEVEL" in settings["sources"]["log_level"]
    assert any(" INFO sidecar: stopped" in line for line in lines), lines
    assert not [line for line in lines if " DEBUG " in line and "worker[" not in line], lines


def _set_development_log_level(pack_dir: Path, level: str) -> None:
    path = pack_dir / TEMPLATES
    text = path.read_text()
    current = re.search(r'^development:.*?log_level: "(\w+)"', text, flags=re.MULTILINE | re.DOTALL)
    assert current is not None, "the development profile sets monitoring.log_level"
    path.write_text(text[: current.start(1)] + level + text[current.end(1) :])


def _worker_lines(sc: SidecarProcess, pattern: re.Pattern[str], timeout: float = 20.0) -> list[str]:
    """Wait for a worker's line matching `pattern` (stderr lags the answers a little); the lines so far."""
    deadline = time.monotonic() + timeout
    while not any(pattern.search(line) for line in sc.stderr_tail):
        assert time.monotonic() < deadline, list(sc.stderr_tail)[-10:]
        time.sleep(0.05)
    return list(sc.stderr_tail)


def _pids(lines: list[str]) -> set[int]:
    return {int(m.group(1)) for line in lines if (m := WORKER_JOB.search(line))}


def test_a_reload_that_changes_log_level_reaches_running_and_new_workers(
    start_sidecar, sidecar_env, pack_dir, data_dir
):
    sc = start_sidecar(env=_quiet_env(sidecar_env))
    assert sc.request("initialize", {"profile": "development"})["settings"]["log_level"] == "debug"
    sc.request("query.run", {"sql": "SELECT 1"})
    (owner,) = _pids(_worker_lines(sc, WORKER_JOB))  # the default database's worker, which stays

    _set_development_log_level(pack_dir, "error")
    assert sc.request("config.reload")["settings"]["log_level"] == "error"
    sc.stderr_tail.clear()
    sc.request("query.run", {"sql": "SELECT 2"})  # the same worker, between jobs
    sc.request("query.run", {"sql": "SELECT 3", "database": str(data_dir / "b.duckdb")})  # the spare
    _, slow = sc.call("query.run", {"sql": SLOW, "job_id": "slow", "partition": {"parts": 0}})
    _wait_running(sc, "slow")
    quiet = len(sc.stderr_tail)

    # mid-job: the reload reaches the worker running `slow`, which logs the interrupt that follows
    _set_development_log_level(pack_dir, "debug")
    assert sc.request("config.reload")["settings"]["log_level"] == "debug"
    sc.request("jobs.cancel", {"job_id": "slow"}, timeout=60)
    with pytest.raises(RpcError):
        slow.result(timeout=60)
    loud = _worker_lines(sc, INTERRUPTED)
    first_loud = next(i for i, line in enumerate(loud) if " DEBUG worker[" in line or " INFO worker[" in line)
    assert first_loud >= quiet and INTERRUPTED.search(loud[first_loud]), loud  # nothing while "error"
    assert int(INTERRUPTED.search(loud[first_loud]).group(1)) == owner  # type: ignore[union-attr]

    sc.request("query.run", {"sql": "SELECT 4"})  # between jobs, as at the start
    assert owner in _pids(_worker_lines(sc, WORKER_JOB))
    sc.stderr_tail.clear()  # a spare started while the level was "error" logs at debug now
    sc.request("query.run", {"sql": "SELECT 5", "database": str(data_dir / "c.duckdb")})
    assert _pids(_worker_lines(sc, WORKER_JOB)) - {owner}
    assert any(" INFO worker[" in line and "opened database" in line for line in sc.stderr_tail)
    assert sc.close() == 0


def _wait_running(sc: SidecarProcess, job_id: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while sc.request("jobs.status", {"job_id": job_id})["worker_pid"] is None:
        assert time.monotonic() < deadline, f"job {job_id} never reached a worker"
        time.sleep(0.05)
