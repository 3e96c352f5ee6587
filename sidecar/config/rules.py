"""Key-by-key rules for the four pack files: what is applied, informational, or ignored and why.

The reasons are written for the person who copied the original BMad data-practitioner pack:
each says what the key meant there and what this sidecar uses instead.
"""

from __future__ import annotations

from typing import Any

import sidecar.config.schema as s
from sidecar.config.settings import to_executor
from sidecar.config.validate import (
    INFO,
    Ctx,
    Entries,
    Ignore,
    Leaf,
    ListOf,
    Section,
    to_bool,
    to_choice,
    to_int,
    to_mb_or_size,
    to_path,
    to_percent,
    to_size,
    to_str,
)
from sidecar.config.yamlload import MarkedDict

__all__ = [
    "MEMORY_TEMPLATE_SECTIONS",
    "PROFILE",
    "THRESHOLDS_FILE",
    "CLI_FILE",
    "FLAGS_FILE",
    "MIN_MEMORY_LIMIT",
    "LOG_LEVELS",
    "PARQUET_CODECS",
    "to_memory_limit",
    "to_log_level",
    "to_compression",
    "check_order",
]

MIN_MEMORY_LIMIT = 64 * 1024**2  # below this DuckDB cannot run a join; a smaller number is a missing unit
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
to_log_level = to_choice(*LOG_LEVELS, aliases={"warn": "warning", "fatal": "critical", "trace": "debug"})
PARQUET_CODECS = ("snappy", "zstd", "gzip", "lz4", "lz4_raw", "brotli", "uncompressed")
"""The Parquet codecs DuckDB writes (sidecar.jobs.types.ParquetCompression; tests/test_output_config.py
checks they are the same)."""
to_compression = to_choice(*PARQUET_CODECS)


def to_memory_limit(value: Any) -> s.MemoryLimit:
    """A size ("2GB", "2GiB") or a share of the effective memory ("60%").

    >>> to_memory_limit("60%").share, to_memory_limit("1GiB").bytes
    (0.6, 1073741824)
    """
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            pct = float(value.strip()[:-1])
        except ValueError:
            raise ValueError("expected a size such as '4GB' or a share such as '60%'") from None
        if not 0 < pct <= 100:
            raise ValueError(f"a share of memory must be above 0% and at most 100%, got {pct:g}%")
        return s.MemoryLimit(text=value.strip(), share=pct / 100)
    # a bare number is bytes, so a tiny one is a forgotten unit; a size with a unit below the
    # minimum job budget is refused (or raised) by the resolver, which names that minimum
    with_unit = isinstance(value, str) and any(c.isalpha() for c in value)
    try:
        n = to_size(0 if with_unit else MIN_MEMORY_LIMIT)(value)
    except ValueError as exc:
        raise ValueError(f"{exc}; expected a size such as '4GB', '4GiB' or a share such as '60%'") from None
    return s.MemoryLimit(text=str(value), bytes=n)


def check_order(*keys: str, strict: bool = True) -> Any:
    """A Section check: the present keys must rise in the given order (info < warning < ...)."""

    def check(values: dict[str, Any], raw: MarkedDict, ctx: Ctx, path: str) -> None:
        present = [(k, values[k]) for k in keys if values.get(k) is not None]
        for (low_key, low), (high_key, high) in zip(present, present[1:]):
            if high < low or (strict and high == low):
                ctx.add(
                    "error",
                    raw.value_pos.get(high_key),
                    f"{path}.{high_key}",
                    f"{high_key} ({raw[high_key]}) must be above {low_key} ({raw[low_key]})",
                    f"order the levels {' < '.join(keys)}",
                )

    return check


def _check_spill_dirs(values: dict[str, Any], raw: MarkedDict, ctx: Ctx, path: str) -> None:
    """Both files' spill locations mean DuckDB's temp_directory; two different ones is a slip."""
    duck, spill = values.get("duckdb_config"), values.get("spilling_config")
    if duck is None or spill is None or duck.temp_directory is None or spill.spill_directory is None:
        return
    if duck.temp_directory != spill.spill_directory:
        spill_raw = raw["spilling_config"]
        ctx.add(
            "warning",
            spill_raw.value_pos.get("spill_directory"),
            f"{path}.spilling_config.spill_directory",
            f"spill_directory {spill.spill_directory!r} differs from duckdb_config.temp_directory "
            f"{duck.temp_directory!r}; DuckDB has one spill directory and temp_directory wins",
            "Set the same directory in both, or remove spill_directory.",
        )


_NO_POOL = (
    "the sidecar has no connection pool: it admits concurrent jobs itself, each in its own worker "
    "with its own memory budget — remove it"
)

DUCKDB_CONFIG = Section(
    s.DuckDBConfig,
    {
        "memory_limit": Leaf(to_memory_limit),
        "threads": Leaf(to_int(1, 1024)),
        "temp_directory": Leaf(to_path),
        "max_temp_directory_size": Leaf(to_size()),
        "database_path": Leaf(to_path),
        "checkpoint_threshold": Leaf(to_size(1024)),
        "enable_profiling": Ignore(
            "the sidecar records no profiles; to see where a query spends its time, run it as "
            "EXPLAIN ANALYZE <query> through query.run — remove it"
        ),
        "preserve_insertion_order": Leaf(to_bool),
        "max_connections": Ignore(_NO_POOL),
        "cache_size": Ignore(
            "not a DuckDB setting (pages of the original pack); DuckDB sizes its buffer pool from "
            "memory_limit — remove it"
        ),
        "wal_autocheckpoint": Ignore(
            "DuckDB's wal_autocheckpoint is a size ('16MB'), not a count of pages or commits; "
            "use checkpoint_threshold: '16MB'"
        ),
        "enable_object_cache": Ignore(
            "not a DuckDB 2.0.1 setting (absent from duckdb_settings()); DuckDB caches Parquet metadata "
            "on its own — remove it"
        ),
    },
)

PROFILE = Section(
    s.Profile,
    {
        "description": Leaf(to_str),
        "system_requirements": INFO,
        "duckdb_config": DUCKDB_CONFIG,
        "spilling_config": Section(
            s.SpillingConfig,
            {
                "enabled": Leaf(to_bool),
                "spill_directory": Leaf(to_path),
                "max_spill_size": Leaf(to_size()),
                "cleanup_interval": Ignore(
                    "DuckDB deletes its spill files when a query ends; there is nothing to clean on a "
                    "timer — remove it"
                ),
            },
        ),
        "output": Section(s.OutputConfig, {"compression": Leaf(to_compression)}),
        "execution": Section(s.ExecutionConfig, {"executor": Leaf(to_executor)}),
        "monitoring": Section(
            s.ProfileMonitoring,
            {
                "memory_threshold_warning": Leaf(to_percent),
                "memory_threshold_critical": Leaf(to_percent),
                "log_level": Leaf(to_log_level),
                "performance_logging": Ignore(
                    "to see where a query spends its time, run it as EXPLAIN ANALYZE <query> "
                    "through query.run — remove it"
                ),
            },
            check=check_order("memory_threshold_warning", "memory_threshold_critical"),
        ),
        "auto_scaling": Ignore(
            "the sidecar never changes a running job's memory limit; each job gets a fixed budget, and "
            "a job that runs out fails with OUT_OF_MEMORY for the retry ladder to handle — remove it"
        ),
        "container_specific": Ignore(
            "the sidecar always reads the cgroup (v1 or v2) limits and sizes from them; use memory_limit: "
            "'60%' for a share of the container's memory — remove it"
        ),
    },
    check=_check_spill_dirs,
)

MEMORY_TEMPLATE_SECTIONS: dict[str, Any] = {
    "configuration_selection": INFO,
    "validation_rules": Ignore(
        "the sidecar validates with its own rules (see docs/configuration.md); this section's "
        "limits are not applied — remove it"
    ),
}

_DUCKDB_MEMORY = Section(
    s.DuckDBMemoryThresholds,
    {k: Leaf(to_percent) for k in ("info", "warning", "critical", "emergency")},
    check=check_order("info", "warning", "critical", "emergency"),
)
_SYSTEM_MEMORY = Section(
    s.SystemMemoryThresholds,
    {k: Leaf(to_percent) for k in ("warning", "critical", "emergency")},
    check=check_order("warning", "critical", "emergency"),
)
_NOT_SAMPLED = "the sidecar's monitor does not sample this; remove it"

MEMORY_THRESHOLDS = Section(
    s.MemoryThresholds,
    {
        "duckdb_memory": _DUCKDB_MEMORY,
        "system_memory": _SYSTEM_MEMORY,
        "memory_growth_rate": Section(
            s.GrowthRate,
            {
                "warning": Leaf(to_mb_or_size),
                "critical": Leaf(to_mb_or_size),
            },
            check=check_order("warning", "critical"),
        ),
        "spill_activity": Section(
            s.SpillActivity,
            {
                "normal": Leaf(to_mb_or_size),
                "warning": Leaf(to_mb_or_size),
                "critical": Leaf(to_mb_or_size),
            },
            check=check_order("normal", "warning", "critical"),
        ),
    },
)

_CLIENT_SIDE = (
    "per-profile alerting overrides are not applied; the top-level alerting_rules apply to every "
    "profile (docs/monitoring-setup.md) — edit those instead"
)

THRESHOLDS_FILE = Section(
    s.ResourceThresholds,
    {
        "memory_thresholds": MEMORY_THRESHOLDS,
        "performance_thresholds": Section(
            s.PerformanceThresholds,
            {
                "query_execution": Section(
                    s.QueryExecution,
                    {
                        k: Leaf(to_int(1))
                        for k in (
                            "simple_query_warning",
                            "simple_query_critical",
                            "complex_query_warning",
                            "complex_query_critical",
                            "timeout_threshold",
                        )
                    },
                    check=check_order(
                        "simple_query_warning", "simple_query_critical", "timeout_threshold", strict=False
                    ),
                ),
                "connections": Ignore(_NO_POOL),
                "throughput": Ignore(_NOT_SAMPLED),
            },
        ),
        "system_thresholds": Section(
            s.SystemThresholds,
            {
                "cpu_usage": Section(
                    s.CpuUsage,
                    {
                        "warning": Leaf(to_percent),
                        "critical": Leaf(to_percent),
                        "sustained_duration": Leaf(to_int(0)),
                    },
                    check=check_order("warning", "critical"),
                ),
                "disk_io": Ignore(_NOT_SAMPLED),
                "network": Ignore("the sidecar is local (stdio); there is no network to watch — remove it"),
            },
        ),
        "alerting_rules": INFO,  # walked, with its lines, by sidecar/monitor/rules.py
        "notification_channels": INFO,
        "scaling_triggers": INFO,  # walked, with its lines, by sidecar/monitor/triggers.py
        "degradation_procedures": INFO,
        "bmad_integration": Ignore(
            "feature flags are read from config/feature-flags.yaml and the CLI file directly, and the "
            "bmad-method/tools/lib scripts named here are not part of this product — remove it"
        ),
        "monitoring_config": INFO,
        "environment_overrides": Entries(
            Section(
                s.EnvironmentOverride,
                {
                    "memory_thresholds": MEMORY_THRESHOLDS,
                    "alerting_rules": Ignore(_CLIENT_SIDE),
                    "monitoring_config": Ignore(
                        "monitoring_config is informational; per-profile overrides of it are not applied"
                    ),
                },
            )
        ),
    },
)

FEATURE = Section(
    s.FeatureDecl,
    {
        "enabled": Leaf(to_bool, required=True),
        "description": Leaf(to_str),
        "dependencies": ListOf(Leaf(to_str)),
    },
)

CLI_FILE = Section(
    s.CliIntegration,
    {
        "cli_integration": Section(
            s.CliSection,
            {
                "commands": Entries(
                    Section(
                        s.CliCommand,
                        {
                            "enabled": Leaf(to_bool),
                            "description": Leaf(to_str),
                            "subcommands": Entries(
                                Section(
                                    s.CliSubcommand,
                                    {
                                        "enabled": Leaf(to_bool),
                                        "description": Leaf(to_str),
                                        "options": ListOf(
                                            Section(
                                                s.CliOption,
                                                {
                                                    "name": Leaf(to_str, required=True),
                                                    "short": Leaf(to_str),
                                                    "description": Leaf(to_str),
                                                    "default": INFO,
                                                    "type": Leaf(to_choice("boolean", "string", "number")),
                                                },
                                            )
                                        ),
                                    },
                                )
                            ),
                        },
                    )
                ),
                "patterns": INFO,
                "feature_dependencies": Entries(FEATURE),
            },
        ),
        "workflows": INFO,
        "security": INFO,
        "tool_integration": Ignore(
            "names the original pack's bmad-method/scripts and tools/lib files, which this product does "
            "not ship; the bridge (bmad_bridge/) is the integration — remove it"
        ),
    },
)

FLAGS_FILE = Section(
    s.FeatureFlagsFile,
    {
        "features": Entries(FEATURE),
        "metadata": INFO,
        "safety": Ignore(
            "the sidecar never flips a flag by itself; a flag changes only when this file changes "
            "(it is reloaded live) — remove it"
        ),
        "rollback_triggers": Ignore(
            "the sidecar never flips a flag by itself; memory and time limits are enforced per job — remove it"
        ),
    },
)
