"""The sidecar side of the H2O benchmark: a sidecar per mode, one sampled `query.run` per question,
and the worker sampling that checks the ceilings."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from sidecar.bench.headroom import GiB
from sidecar.bench.suite.sides import TreeSampler
from sidecar.units import duckdb_size

__all__ = ["MACHINE_FACTOR", "TIMEOUT_MS", "WorkerSampler", "run_sidecar", "sampled_request", "start_sidecar"]

MACHINE_FACTOR = 4
TIMEOUT_MS = 900_000


class WorkerSampler(TreeSampler):
    """A sidecar's tree every 20 ms; kills a worker past `guard` (a bug); `worst` is the worst worker's peak."""

    def __init__(self, sidecar_pid: int, guard: int) -> None:
        super().__init__(sidecar_pid, guard_each=guard)

    @property
    def worst(self) -> int:
        return self.worst_descendant

    @property
    def sidecar_peak(self) -> int:
        return self.peaks.get(self.root.pid, 0)


def start_sidecar(root: Path, mode: str, budget: int) -> Any:
    from sidecar.client import SidecarProcess

    env = dict(os.environ, BMAD_DATA_STATE_DIR=str(root / f"state-{mode}"), BMAD_DATA_ALLOWED_DIRECTORIES=str(root),
               BMAD_DATA_TEMP_DIRECTORY=str(root / f"spill-{mode}"), BMAD_DATA_LOG_LEVEL="warning")  # fmt: skip
    if mode == "machine":
        env.update(BMAD_DATA_MACHINE_BUDGET=duckdb_size(MACHINE_FACTOR * budget),
                   BMAD_DATA_MAX_CONCURRENT_JOBS=str(MACHINE_FACTOR))  # fmt: skip
    sc = SidecarProcess(env=env, cwd=root)
    sc.request("initialize", {"client": {"name": "h2o-bench"}})
    return sc


def sampled_request(sc: Any, params: dict[str, Any], guard: int, timeout_s: float) -> dict[str, Any]:
    """One query.run with the sidecar's workers sampled by this process: its status or error, wall
    time, attempts, peaks (stats' and sampled) and the result's `stats`; never raises for the query."""
    from sidecar.client import RpcError

    report: dict[str, Any] = {"status": "ok", "error": "", "attempts": [], "stats_peak": 0, "stats": {}}
    with WorkerSampler(sc.pid, guard=guard) as sampler:
        started = time.perf_counter()
        try:
            stats = sc.request("query.run", params, timeout=timeout_s)["stats"]
            report.update(attempts=stats.get("attempts", []), stats_peak=stats.get("peak_rss_bytes", 0), stats=stats)
        except RpcError as err:
            report.update(status=err.code or str(err.rpc_code), error=str(err).splitlines()[0][:300],
                          attempts=err.data.get("details", {}).get("attempts", []))  # fmt: skip
        except (EOFError, TimeoutError) as err:
            report.update(status="NO_ANSWER", error=f"{type(err).__name__}: {err}")
        report["wall"] = time.perf_counter() - started
    report["stats_peak"] = max([report["stats_peak"], *(a.get("peak_rss_bytes", 0) for a in report["attempts"])])
    report["sampled_peak"] = sampler.worst
    report["sidecar_rss"] = sampler.sidecar_peak
    report["guard_kills"] = sampler.guard_kills
    report["sidecar_alive"] = sc.proc.poll() is None
    return report


def run_sidecar(
    sc: Any, mode: str, sql: str, budget: int, threads: int, output: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One query.run (writing `output` when given); wall time on the client's side, the workers
    sampled by this process."""
    settings: dict[str, Any] = {"threads": threads}
    if mode == "budget":
        settings["memory_limit"] = duckdb_size(budget)
    most = budget if mode == "budget" else MACHINE_FACTOR * budget
    params: dict[str, Any] = {"sql": sql, "timeout_ms": TIMEOUT_MS, "settings": settings}
    if output is not None:
        params["output"] = output
    report = sampled_request(sc, params, most + 1 * GiB, TIMEOUT_MS / 1000 + 60)
    report["duckdb_settings"] = report.pop("stats").get("settings", {})
    attempts = report["attempts"]
    report["ceiling"] = (
        max([0, *(max(a["ceiling_bytes"], a.get("grown_to_bytes") or 0) for a in attempts)]) or most
    )
    return report
