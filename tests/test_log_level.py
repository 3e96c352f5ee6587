"""`log_level` reaches the sidecar's logging: the profile's `monitoring.log_level` sets what a real
sidecar writes on stderr, and `--log-level` / BMAD_DATA_LOG_LEVEL rank above it. Worker processes
(lines tagged `worker[pid]`) take their level from BMAD_DATA_LOG_LEVEL when they start."""

from __future__ import annotations

from typing import Any, Callable

from sidecar.client import SidecarProcess


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
    own = [line for line in quiet_lines if "worker[" not in line]  # workers: BMAD_DATA_LOG_LEVEL only
    assert not [line for line in own if " DEBUG " in line or " INFO " in line], quiet_lines


def test_the_command_line_log_level_ranks_above_the_profile(start_sidecar, sidecar_env):
    env = _quiet_env(sidecar_env)
    settings, lines = _lines_after_initialize(start_sidecar, env, "edge", "--log-level", "info")
    assert settings["log_level"] == "info" and "BMAD_DATA_LOG_LEVEL" in settings["sources"]["log_level"]
    assert any(" INFO sidecar: stopped" in line for line in lines), lines
    assert not [line for line in lines if " DEBUG " in line and "worker[" not in line], lines
