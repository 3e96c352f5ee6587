"""The one resolver: request > environment > overrides (project config) > profile > auto.

Each field is taken from the highest layer that gives it and `sources` records which one, so
`config.get` can explain every value. "Not given" is the NOT_GIVEN sentinel, never a falsy
value: `threads: 0` is an error to report and `preserve_insertion_order: false` is a real choice.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Mapping

from sidecar.config.budget import auto_budget, job_budget, job_threads, memory_origin, warn_at
from sidecar.config.diagnostics import Diagnostic
from sidecar.config.hand_off import HAND_OFF_PATH
from sidecar.config.pack import Pack
from sidecar.config.profile_layer import ProfileFields, find_profile
from sidecar.config.settings import (
    ALLOWED_DIRS_ENV,
    DEFAULT_CHECKPOINT_THRESHOLD_BYTES,
    DEFAULT_MAX_ROWS,
    DEFAULT_STALL_TIMEOUT_MS,
    DEFAULT_TIMEOUT_MS,
    MACHINE_BUDGET_SHARE,
    MIN_THREAD_MEMORY_BYTES,
    RESERVE_BYTES,
    RSS_PER_LIMIT_BYTE,
    SPILL_RESERVE_MIN_BYTES,
    SPILL_RESERVE_SHARE,
    STATE_DIR_ENV,
    Settings,
    duckdb_limit_for,
    steady_spill_size,
)
from sidecar.config.thresholds import merge_thresholds
from sidecar.config.user_settings import (
    NOT_GIVEN,
    SETTING_EXAMPLES,
    SETTING_PARSERS,
    Candidate,
    env_layer,
    first_given,
    parse_user_settings,
)
from sidecar.layout import default_state_dir
from sidecar.resources import Resources, disk_space, effective_memory_bytes
from sidecar.units import format_size

# NOT_GIVEN, parse_user_settings and the SETTING_* tables live in user_settings; they stay
# importable from here, where callers have always found them.
__all__ = ["resolve_settings", "NOT_GIVEN", "parse_user_settings", "SETTING_PARSERS", "SETTING_EXAMPLES"]


def resolve_settings(
    pack: Pack,
    resources: Resources,
    *,
    profile: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    request: Mapping[str, Any] | None = None,
    previous: Settings | None = None,
) -> Settings:
    """Build one job's frozen Settings; InvalidParams for a bad request/override, ConfigInvalid
    for an unknown profile or a bad environment variable. `previous`, the settings in force, keeps
    an auto spill size steady while the free disk moves a little (`steady_spill_size`)."""
    env = os.environ if env is None else env
    req = parse_user_settings(request, "request")
    ovr = parse_user_settings(overrides, "overrides")
    envl = env_layer(env)
    diags: list[Diagnostic] = []
    effective = effective_memory_bytes(resources)

    def layers(key: str, file_value: Candidate = ("", NOT_GIVEN)) -> list[Candidate]:
        env_hit = envl.get(key)
        return [
            ("request", req.get(key, NOT_GIVEN)),
            (f"env:{env_hit[0]}" if env_hit else "env", env_hit[1] if env_hit else NOT_GIVEN),
            ("overrides", ovr.get(key, NOT_GIVEN)),
            file_value,
        ]

    argument: Candidate = ("argument", profile if profile is not None else NOT_GIVEN)
    profile_src, profile_name = first_given(layers("profile", argument))
    if profile_name is NOT_GIVEN:
        profile_src, profile_name = "auto", "auto"
    prof = find_profile(pack, profile_name)
    pf = ProfileFields(pack, profile_name, prof)
    sources: dict[str, str] = {"profile": profile_src}

    def pick(field: str, key: str, auto: Callable[[], tuple[str, Any]]) -> Any:
        src, value = first_given(layers(key, pf.get(key)))
        if value is NOT_GIVEN:
            src, value = auto()
        sources[field] = src
        return value

    # the machine budget and the jobs sharing it first: a job's auto budget is its share -------
    machine = pick(
        "machine_budget_bytes",
        "machine_budget",
        lambda: (
            f"auto: {MACHINE_BUDGET_SHARE:.0%} of effective memory {format_size(effective)}",
            int(effective * MACHINE_BUDGET_SHARE),
        ),
    )
    if machine > effective:
        warn_at(
            diags,
            sources["machine_budget_bytes"],
            "machine_budget",
            f"machine budget {format_size(machine)} exceeds the effective memory "
            f"{format_size(effective)}; clamped",
        )
        machine = effective
        sources["machine_budget_bytes"] += "; clamped to the effective memory"
    max_jobs = pick(
        "max_concurrent_jobs",
        "max_concurrent_jobs",
        lambda: (
            f"auto: {max(2, resources.usable_cpus)} (usable CPUs, at least 2)",
            max(2, resources.usable_cpus),
        ),
    )

    # budget: what one job's process gets (the engine starts every job at exactly this) ---------
    limit = pick("memory_budget_bytes", "memory_limit", lambda: auto_budget(resources, effective))
    auto_sized = sources["memory_budget_bytes"].startswith("auto")
    budget, note = job_budget(limit, sources["memory_budget_bytes"], effective, machine, max_jobs, diags)
    sources["memory_budget_bytes"] += note
    duck_limit = duckdb_limit_for(budget)
    sources["duckdb_memory_limit_bytes"] = (
        f"derived: max(budget / 2, (budget - {format_size(RESERVE_BYTES)}) / {RSS_PER_LIMIT_BYTE}), "
        "measured in docs/performance/headroom.md"
    )

    # threads --------------------------------------------------------------------------------
    def auto_threads() -> tuple[str, Any]:
        # An auto-sized job starts at its share but grows in place while no job waits: size its
        # threads for the auto budget before the share cap, as a job running alone uses it.
        basis = duckdb_limit_for(max(budget, limit.bytes or 0)) if auto_sized else duck_limit
        by_memory = max(1, basis // MIN_THREAD_MEMORY_BYTES)
        n = max(1, min(resources.usable_cpus, by_memory))
        return (
            f"auto: {resources.usable_cpus} usable CPUs, at most one per "
            f"{format_size(MIN_THREAD_MEMORY_BYTES)} of DuckDB memory limit {format_size(basis)}"
        ), n

    threads = pick("threads", "threads", auto_threads)
    threads, sources["threads"] = job_threads(threads, sources["threads"], resources.usable_cpus, diags)
    if duck_limit // threads < MIN_THREAD_MEMORY_BYTES and not sources["threads"].startswith("auto"):
        warn_at(
            diags,
            sources["threads"],
            "threads",
            f"{threads} threads leave {format_size(duck_limit // threads)} of DuckDB memory per thread "
            f"(below {format_size(MIN_THREAD_MEMORY_BYTES)}); expect more spilling",
        )

    # directories ----------------------------------------------------------------------------
    if env.get(STATE_DIR_ENV):
        state_dir, state_src = Path(env[STATE_DIR_ENV]), f"env:{STATE_DIR_ENV}"
    else:
        state_dir, state_src = default_state_dir()
    temp = pick(
        "temp_directory", "temp_directory", lambda: ("auto: <state dir>/spill", str(state_dir / "spill"))
    )
    temp = _absolute(temp, sources["temp_directory"], pf.root)

    def auto_spill_size() -> tuple[str, Any]:
        if temp == "":
            return "auto: spilling disabled", 0
        total, free = disk_space(Path(temp))
        reserve = max(int(total * SPILL_RESERVE_SHARE), SPILL_RESERVE_MIN_BYTES)
        src = (
            f"auto: free disk {format_size(free)} minus reserve {format_size(reserve)} "
            f"(max of {SPILL_RESERVE_SHARE:.0%} of disk, {format_size(SPILL_RESERVE_MIN_BYTES)}), rounded"
        )
        kept = None
        if previous is not None and previous.temp_directory == temp:
            if previous.sources.get("max_temp_directory_size_bytes", "").startswith("auto: free disk"):
                kept = previous.max_temp_directory_size_bytes
        return src, steady_spill_size(free - reserve, previous=kept)

    spill_size = pick("max_temp_directory_size_bytes", "max_temp_directory_size", auto_spill_size)
    database = pick("database_path", "database_path", lambda: ("auto", ":memory:"))
    database = _absolute(database, sources["database_path"], pf.root)

    settings_thresholds, t_src = merge_thresholds(pack, profile_name, prof, spill_size, diags)
    sources["thresholds"] = t_src
    allowed = _allowed_dirs(env, state_dir, temp, database)
    sources["allowed_directories"] = "auto: cwd, state dir, temp dir, database dir" + (
        f" + env:{ALLOWED_DIRS_ENV}" if env.get(ALLOWED_DIRS_ENV) else ""
    )
    hand_off = pack.thresholds.hand_off if pack.thresholds is not None else None
    sources["hand_off"] = (
        f"file:{pack.thresholds.path}:{pack.thresholds.positions[HAND_OFF_PATH][0]}"
        if pack.thresholds is not None and hand_off is not None
        else "auto: off (no scaling_triggers.executor_scaling in the thresholds file)"
    )
    sources["state_directory"] = state_src
    sources["effective_memory_bytes"] = memory_origin(resources)
    return Settings(
        profile=profile_name,
        memory_budget_bytes=budget,
        duckdb_memory_limit_bytes=duck_limit,
        threads=threads,
        temp_directory=temp,
        max_temp_directory_size_bytes=spill_size,
        preserve_insertion_order=pick(
            "preserve_insertion_order",
            "preserve_insertion_order",
            lambda: ("auto: results keep no order unless ORDER BY asks", False),
        ),
        timeout_ms=pick("timeout_ms", "timeout_ms", lambda: ("auto", DEFAULT_TIMEOUT_MS)),
        max_rows=pick("max_rows", "max_rows", lambda: ("auto", DEFAULT_MAX_ROWS)),
        database_path=database,
        checkpoint_threshold_bytes=pick(
            "checkpoint_threshold_bytes",
            "checkpoint_threshold",
            lambda: ("auto: DuckDB's default", DEFAULT_CHECKPOINT_THRESHOLD_BYTES),
        ),
        log_level=pick("log_level", "log_level", lambda: ("auto", "info")),
        thresholds=settings_thresholds,
        allowed_directories=allowed,
        state_directory=str(state_dir),
        effective_memory_bytes=effective,
        machine_budget_bytes=machine,
        max_concurrent_jobs=max_jobs,
        stall_timeout_ms=pick(
            "stall_timeout_ms", "stall_timeout_ms", lambda: ("auto", DEFAULT_STALL_TIMEOUT_MS)
        ),
        output_compression=pick("output_compression", "output_compression", lambda: ("auto", "snappy")),
        executor=pick("executor", "executor", lambda: ("auto: this machine's workers", "local")),
        hand_off=hand_off,
        sources=sources,
        diagnostics=diags,
    )


def _absolute(path: str, source: str, project_root: Path) -> str:
    """File-layer paths are relative to the project (the pack's parent); others to the cwd."""
    if path in ("", ":memory:") or os.path.isabs(path):
        return path
    base = project_root if source.startswith("file:") else Path.cwd()
    return str((base / path).absolute())


def _allowed_dirs(env: Mapping[str, str], state_dir: Path, temp: str, database: str) -> list[str]:
    dirs = [Path.cwd(), state_dir]
    if temp:
        dirs.append(Path(temp))
    if database != ":memory:":
        dirs.append(Path(database).parent)
    dirs.extend(Path(p) for p in env.get(ALLOWED_DIRS_ENV, "").split(os.pathsep) if p)
    out: list[str] = []
    for d in dirs:
        text = str(d.absolute())
        if text not in out:
            out.append(text)
    return out
