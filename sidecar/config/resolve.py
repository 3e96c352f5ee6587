"""The one resolver: request > environment > overrides (project config) > profile > auto.

Each field is taken from the highest layer that gives it and `sources` records which one, so
`config.get` can explain every value. "Not given" is the NOT_GIVEN sentinel, never a falsy
value: `threads: 0` is an error to report and `preserve_insertion_order: false` is a real choice.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Mapping

from sidecar.config import rules
from sidecar.config.budget import auto_budget, job_budget, job_threads, memory_origin, warn_at
from sidecar.config.diagnostics import Diagnostic
from sidecar.config.pack import Pack
from sidecar.config.schema import Profile
from sidecar.config.settings import (
    ALLOWED_DIRS_ENV,
    DEFAULT_CHECKPOINT_THRESHOLD_BYTES,
    DEFAULT_MAX_ROWS,
    DEFAULT_TIMEOUT_MS,
    ENV_VARS,
    MIN_THREAD_MEMORY_BYTES,
    MACHINE_BUDGET_SHARE,
    DEFAULT_STALL_TIMEOUT_MS,
    RESERVE_BYTES,
    RSS_PER_LIMIT_BYTE,
    duckdb_limit_for,
    steady_spill_size,
    SPILL_RESERVE_MIN_BYTES,
    SPILL_RESERVE_SHARE,
    STATE_DIR_ENV,
    USER_KEYS,
    Settings,
)
from sidecar.config.thresholds import merge_thresholds
from sidecar.config.validate import to_int, to_path, to_size
from sidecar.errors import ConfigInvalid, InvalidParams, did_you_mean
from sidecar.layout import default_state_dir, project_root_of
from sidecar.resources import Resources, disk_space, effective_memory_bytes
from sidecar.units import format_size

__all__ = ["resolve_settings", "NOT_GIVEN", "parse_user_settings"]


class _NotGiven:
    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN: Any = _NotGiven()
_Candidate = tuple[str, Any]  # (source text, value or NOT_GIVEN)

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError("expected true or false")


def _int_from(minimum: int) -> Callable[[Any], int]:
    check = to_int(minimum)

    def convert(value: Any) -> int:
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value.strip())
        return check(value)

    return convert


SETTING_PARSERS: dict[str, Callable[[Any], Any]] = {
    "memory_limit": rules.to_memory_limit,
    "threads": _int_from(1),
    "temp_directory": to_path,
    "max_temp_directory_size": to_size(),
    "preserve_insertion_order": _to_bool,
    "timeout_ms": _int_from(0),
    "max_rows": _int_from(0),
    "profile": lambda v: v if isinstance(v, str) and v else _raise("expected a profile name"),
    "log_level": rules.to_log_level,
    "database_path": to_path,
    "checkpoint_threshold": to_size(1024),
    "machine_budget": to_size(1024 * 1024),
    "max_concurrent_jobs": _int_from(1),
    "stall_timeout_ms": _int_from(0),
}


SETTING_EXAMPLES: dict[str, str] = {
    "memory_limit": "a size with a unit such as '4GB' or '4GiB', or a share of memory such as '60%'",
    "threads": "a whole number of at least 1, such as 2",
    "temp_directory": "a directory path (or '' to turn spilling off)",
    "max_temp_directory_size": "a size with a unit such as '20GB'",
    "preserve_insertion_order": "true or false",
    "timeout_ms": "whole milliseconds, such as 60000 (0: no timeout)",
    "max_rows": "a whole number of rows, such as 10000",
    "profile": "a profile name such as 'development' (config.get lists them)",
    "log_level": "one of debug, info, warning, error, critical",
    "database_path": "a file path or ':memory:'",
    "checkpoint_threshold": "a size with a unit such as '16MiB'",
    "machine_budget": "a size with a unit such as '8GB'",
    "max_concurrent_jobs": "a whole number of at least 1, such as 2",
    "stall_timeout_ms": "whole milliseconds, such as 120000 (0: never)",
}
"""A valid value of each setting, for hints: one per key of SETTING_PARSERS (tests/test_config_resolve.py::test_bad_settings_hints_say_what_to_send checks they match)."""


def _raise(message: str) -> Any:
    raise ValueError(message)


def parse_user_settings(values: Mapping[str, Any] | None, layer: str) -> dict[str, Any]:
    """Validate a request's `settings` or the initialize `overrides`; InvalidParams names the bad key."""
    out: dict[str, Any] = {}
    for key, value in (values or {}).items():
        if key not in USER_KEYS:
            raise InvalidParams(
                f"unknown setting '{key}' in {layer}{did_you_mean(key, USER_KEYS)}",
                hint=f"The settings a {layer} may carry: {', '.join(USER_KEYS)} (docs/configuration.md).",
                details={"key": key, "layer": layer, "known": list(USER_KEYS)},
            )
        try:
            out[key] = SETTING_PARSERS[key](value)
        except ValueError as exc:
            raise InvalidParams(
                f"invalid value for '{key}' in {layer}: {exc}",
                hint=f"Give {key} as {SETTING_EXAMPLES[key]}.",
                details={"key": key, "layer": layer, "value": value},
            ) from None
    return out


def _env_layer(env: Mapping[str, str]) -> dict[str, tuple[str, Any]]:
    out: dict[str, tuple[str, Any]] = {}
    for var, key in ENV_VARS.items():
        if var not in env:
            continue
        try:
            out[key] = (var, SETTING_PARSERS[key](env[var]))
        except ValueError as exc:
            raise ConfigInvalid(
                f"environment variable {var}={env[var]!r} is invalid: {exc}",
                hint=f"Set {var} to {SETTING_EXAMPLES.get(key, 'a valid value')}, or unset it.",
                details={"variable": var, "value": env[var]},
            ) from None
    return out


def resolve_settings(
    pack: Pack,
    resources: Resources,
    *,
    profile: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    request: Mapping[str, Any] | None = None,
) -> Settings:
    """Build one job's frozen Settings; InvalidParams for a bad request/override, ConfigInvalid
    for an unknown profile or a bad environment variable."""
    env = os.environ if env is None else env
    req = parse_user_settings(request, "request")
    ovr = parse_user_settings(overrides, "overrides")
    envl = _env_layer(env)
    diags: list[Diagnostic] = []
    effective = effective_memory_bytes(resources)

    def layers(key: str, file_value: _Candidate = ("", NOT_GIVEN)) -> list[_Candidate]:
        env_hit = envl.get(key)
        return [
            ("request", req.get(key, NOT_GIVEN)),
            (f"env:{env_hit[0]}" if env_hit else "env", env_hit[1] if env_hit else NOT_GIVEN),
            ("overrides", ovr.get(key, NOT_GIVEN)),
            file_value,
        ]

    argument: _Candidate = ("argument", profile if profile is not None else NOT_GIVEN)
    profile_src, profile_name = _first(layers("profile", argument))
    if profile_name is NOT_GIVEN:
        profile_src, profile_name = "auto", "auto"
    prof = _find_profile(pack, profile_name)
    pf = _ProfileFields(pack, profile_name, prof)
    sources: dict[str, str] = {"profile": profile_src}

    def pick(field: str, key: str, auto: Callable[[], tuple[str, Any]]) -> Any:
        src, value = _first(layers(key, pf.get(key)))
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
        return src, steady_spill_size(free - reserve)

    spill_size = pick("max_temp_directory_size_bytes", "max_temp_directory_size", auto_spill_size)
    database = pick("database_path", "database_path", lambda: ("auto", ":memory:"))
    database = _absolute(database, sources["database_path"], pf.root)

    settings_thresholds, t_src = merge_thresholds(pack, profile_name, prof, spill_size, diags)
    sources["thresholds"] = t_src
    allowed = _allowed_dirs(env, state_dir, temp, database)
    sources["allowed_directories"] = "auto: cwd, state dir, temp dir, database dir" + (
        f" + env:{ALLOWED_DIRS_ENV}" if env.get(ALLOWED_DIRS_ENV) else ""
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
        sources=sources,
        diagnostics=diags,
    )


def _first(candidates: list[_Candidate]) -> _Candidate:
    for src, value in candidates:
        if value is not NOT_GIVEN:
            return src, value
    return "", NOT_GIVEN


def _find_profile(pack: Pack, name: str) -> Profile | None:
    if name == "auto":
        return None
    found = pack.profile(name)
    if found is None:
        names = ["auto", *pack.profile_names()]
        raise ConfigInvalid(
            f"unknown profile '{name}'{did_you_mean(name, names)}",
            hint=(
                f"Pick one of: {', '.join(names)}"
                + (f" (defined in {pack.paths['memory_templates']})" if pack.memory_templates else "")
                + f", or add a profile named '{name}' there."
            ),
            details={"profile": name, "known": names, "file": pack.paths.get("memory_templates")},
        )
    return found


class _ProfileFields:
    """The profile layer: values from the memory templates (and the thresholds file), each with
    its `file:path:line (profile name)` source."""

    def __init__(self, pack: Pack, name: str, prof: Profile | None) -> None:
        self.root = project_root_of(pack.config_dir)  # relative paths in the pack are project-relative
        self.values: dict[str, _Candidate] = {}
        tmpl = pack.memory_templates
        if prof is not None and tmpl is not None:
            duck, spill, mon = prof.duckdb_config, prof.spilling_config, prof.monitoring

            def add(key: str, path: str, value: Any) -> None:
                self._add(tmpl.path, tmpl.positions, name, key, path, value)

            add("memory_limit", "duckdb_config.memory_limit", duck.memory_limit)
            add("threads", "duckdb_config.threads", duck.threads)
            if spill.enabled is False:
                add("temp_directory", "spilling_config.enabled", "")
                add("max_temp_directory_size", "spilling_config.enabled", 0)
            else:  # the first one given wins: duckdb_config's, then spilling_config's
                add("temp_directory", "duckdb_config.temp_directory", duck.temp_directory)
                add("temp_directory", "spilling_config.spill_directory", spill.spill_directory)
                add(
                    "max_temp_directory_size",
                    "duckdb_config.max_temp_directory_size",
                    duck.max_temp_directory_size,
                )
                add("max_temp_directory_size", "spilling_config.max_spill_size", spill.max_spill_size)
            for key in (
                "database_path",
                "checkpoint_threshold",
                "preserve_insertion_order",
            ):
                add(key, f"duckdb_config.{key}", getattr(duck, key))
            add("log_level", "monitoring.log_level", mon.log_level)
        th = pack.thresholds
        if th is not None and th.performance_thresholds.query_execution.timeout_threshold is not None:
            key_path = "performance_thresholds.query_execution.timeout_threshold"
            line = th.positions.get(key_path, (0, 0))[0]
            timeout = th.performance_thresholds.query_execution.timeout_threshold
            self.values["timeout_ms"] = (f"file:{th.path}:{line}", timeout)

    def _add(
        self, file: str, positions: dict[str, tuple[int, int]], profile: str, key: str, path: str, value: Any
    ) -> None:
        if value is None or key in self.values:
            return
        line = positions.get(f"{profile}.{path}", (0, 0))[0]
        self.values[key] = (f"file:{file}:{line} (profile {profile})", value)

    def get(self, key: str) -> _Candidate:
        return self.values.get(key, ("", NOT_GIVEN))


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
