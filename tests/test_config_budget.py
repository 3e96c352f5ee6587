"""What config.get (and so `bmad-data status`) shows is what a job gets, through a real sidecar.

It used to show 50% of the memory as the budget while every job ran at its share of the machine
budget, and BMAD_DATA_MACHINE_BUDGET changed nothing it showed; a request for more than the
machine budget ran at a ceiling above it, and 64 threads ran on 2 CPUs.
"""

from __future__ import annotations

from typing import Any, Callable

import pytest

from sidecar.client import RpcError, SidecarProcess

MiB = 1024**2


def shown_and_used(sidecar: SidecarProcess, **request: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config.get's settings, the stats of a real job run with `request` settings)."""
    shown = sidecar.request("config.get")["settings"]
    result = sidecar.request(
        "query.run",
        {"sql": "SELECT current_setting('memory_limit') AS m, current_setting('threads') AS t", **request},
    )
    return shown, result["stats"]


@pytest.mark.parametrize(
    "env",
    [
        {},  # auto: whatever this machine has
        {"BMAD_DATA_MACHINE_BUDGET": "1GiB", "BMAD_DATA_MAX_CONCURRENT_JOBS": "2"},
        {"BMAD_DATA_MACHINE_BUDGET": "3GiB", "BMAD_DATA_MAX_CONCURRENT_JOBS": "3"},
        {"BMAD_DATA_MEMORY_LIMIT": "700MiB"},
    ],
    ids=["auto", "machine-1GiB-2-jobs", "machine-3GiB-3-jobs", "explicit-700MiB"],
)
def test_the_budget_shown_is_the_ceiling_a_job_runs_at(
    start_sidecar: Callable[..., SidecarProcess], env: dict[str, str]
) -> None:
    sidecar = start_sidecar(**env)
    shown, stats = shown_and_used(sidecar)
    (attempt,) = stats["attempts"]
    assert attempt["ceiling_bytes"] == shown["memory_budget_bytes"]
    assert attempt["duckdb_memory_limit_bytes"] == shown["duckdb_memory_limit_bytes"]
    assert stats["settings"]["memory_limit"] == f"{shown['duckdb_memory_limit_bytes']}B"  # DuckDB's own
    assert int(stats["settings"]["threads"]) == shown["threads"] == attempt["threads"]
    assert shown["memory_budget_bytes"] <= shown["machine_budget_bytes"]
    if "BMAD_DATA_MACHINE_BUDGET" in env:
        jobs = int(env["BMAD_DATA_MAX_CONCURRENT_JOBS"])
        machine = int(env["BMAD_DATA_MACHINE_BUDGET"][:-3]) * 1024**3
        assert shown["machine_budget_bytes"] == machine
        assert shown["memory_budget_bytes"] == machine // jobs
        assert "a job's share of the machine budget" in shown["sources"]["memory_budget_bytes"]
    if "BMAD_DATA_MEMORY_LIMIT" in env:
        assert shown["memory_budget_bytes"] == 700 * MiB


def test_asking_for_more_than_the_machine_is_refused_with_the_most_it_can_give(
    sidecar: SidecarProcess,
) -> None:
    machine = sidecar.request("config.get")["settings"]["machine_budget_bytes"]
    with pytest.raises(RpcError) as err:
        sidecar.request("query.run", {"sql": "SELECT 1", "settings": {"memory_limit": "1TB"}})
    assert err.value.code == "INVALID_PARAMS"
    assert "is above the machine budget" in str(err.value)
    most = err.value.data["details"]["most_bytes"]
    assert most <= machine
    offered = f"{most // MiB}MiB"
    assert offered in err.value.hint
    _, stats = shown_and_used(sidecar, settings={"memory_limit": offered})  # the hint's figure runs
    assert stats["attempts"][0]["ceiling_bytes"] == most // MiB * MiB <= machine


def test_more_threads_than_cpus_are_refused_and_50mb_names_the_minimum(sidecar: SidecarProcess) -> None:
    cpus = sidecar.request("system.resources")["usable_cpus"]
    with pytest.raises(RpcError) as err:
        sidecar.request("query.run", {"sql": "SELECT 1", "settings": {"threads": cpus + 62}})
    assert err.value.code == "INVALID_PARAMS"
    assert f"more than the {cpus} usable CPUs" in str(err.value) and f"at most {cpus}" in err.value.hint
    with pytest.raises(RpcError) as err:
        sidecar.request("query.run", {"sql": "SELECT 1", "settings": {"memory_limit": "50MB"}})
    assert err.value.code == "INVALID_PARAMS"
    assert "did you forget a unit" not in str(err.value)  # it had one
    assert "below the minimum job budget 128.00 MiB" in str(err.value)
    assert "128MiB or more" in err.value.hint
    _, stats = shown_and_used(sidecar, settings={"memory_limit": "128MiB"})  # the minimum runs
    assert stats["attempts"][0]["ceiling_bytes"] == 128 * MiB


def test_a_bare_number_below_the_minimum_still_asks_for_a_unit(sidecar: SidecarProcess) -> None:
    with pytest.raises(RpcError) as err:
        sidecar.request("query.run", {"sql": "SELECT 1", "settings": {"memory_limit": 4096}})
    assert "did you forget a unit" in str(err.value)


def test_a_clamped_environment_value_is_named_in_config_get(
    start_sidecar: Callable[..., SidecarProcess],
) -> None:
    sidecar = start_sidecar(BMAD_DATA_THREADS="64", BMAD_DATA_MEMORY_LIMIT="1TB")
    settings = sidecar.request("config.get")["settings"]
    cpus = sidecar.request("system.resources")["usable_cpus"]
    assert settings["threads"] == min(64, cpus)
    if cpus < 64:
        assert f"clamped to the {cpus} usable CPUs: asked for 64" in settings["sources"]["threads"]
    assert settings["memory_budget_bytes"] <= settings["machine_budget_bytes"]
    assert "clamped to" in settings["sources"]["memory_budget_bytes"]
    assert {d["path"] for d in settings["diagnostics"]} >= {"memory_limit"}
    _, stats = shown_and_used(sidecar)
    assert stats["attempts"][0]["ceiling_bytes"] == settings["memory_budget_bytes"]
