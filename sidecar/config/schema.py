"""Typed shapes of the expansion pack's four config files, after validation.

Values are normalised at the edge: sizes are bytes, thresholds are fractions of 1, durations
are milliseconds. Each file Struct keeps its `path` and the (line, column) of every applied
value under its dotted key path, so the resolver can say "file:42" for each setting it uses.
Sections the sidecar does not apply are either absent here (they produce warnings) or kept as
plain data marked informational.
"""

from __future__ import annotations

from typing import Any

import msgspec

from sidecar.config.settings import HandOff

__all__ = [
    "MemoryLimit",
    "DuckDBConfig",
    "SpillingConfig",
    "ProfileMonitoring",
    "ExecutionConfig",
    "Profile",
    "MemoryTemplates",
    "DuckDBMemoryThresholds",
    "SystemMemoryThresholds",
    "GrowthRate",
    "SpillActivity",
    "MemoryThresholds",
    "QueryExecution",
    "PerformanceThresholds",
    "CpuUsage",
    "SystemThresholds",
    "EnvironmentOverride",
    "ResourceThresholds",
    "CliOption",
    "CliSubcommand",
    "CliCommand",
    "FeatureDecl",
    "CliSection",
    "CliIntegration",
    "FeatureFlagsFile",
    "Positions",
]

Positions = dict[str, tuple[int, int]]


class _Shape(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class MemoryLimit(_Shape):
    """Either absolute bytes or a share of the effective memory ("60%")."""

    text: str
    bytes: int | None = None
    share: float | None = None


# duckdb-memory-config-templates.yaml -------------------------------------------------------


class DuckDBConfig(_Shape):
    memory_limit: MemoryLimit | None = None
    threads: int | None = None
    temp_directory: str | None = None
    max_temp_directory_size: int | None = None
    database_path: str | None = None
    checkpoint_threshold: int | None = None
    preserve_insertion_order: bool | None = None


class SpillingConfig(_Shape):
    enabled: bool | None = None
    spill_directory: str | None = None
    max_spill_size: int | None = None


class ProfileMonitoring(_Shape):
    memory_threshold_warning: float | None = None
    memory_threshold_critical: float | None = None
    log_level: str | None = None


class OutputConfig(_Shape):
    compression: str | None = None


class ExecutionConfig(_Shape):
    executor: str | None = None
    """Where split parts run when a request names no `executor`: "local", "ray" or "ray:<address>"."""


class Profile(_Shape):
    description: str | None = None
    system_requirements: Any = None
    duckdb_config: DuckDBConfig = DuckDBConfig()
    spilling_config: SpillingConfig = SpillingConfig()
    output: OutputConfig = OutputConfig()
    execution: ExecutionConfig = ExecutionConfig()
    monitoring: ProfileMonitoring = ProfileMonitoring()


class MemoryTemplates(_Shape):
    path: str = ""
    positions: Positions = {}
    profiles: dict[str, Profile] = {}
    configuration_selection: Any = None


# resource-thresholds-config.yaml -------------------------------------------------------------


class DuckDBMemoryThresholds(_Shape):
    """Fractions of DuckDB's memory limit."""

    info: float | None = None
    warning: float | None = None
    critical: float | None = None
    emergency: float | None = None


class SystemMemoryThresholds(_Shape):
    """Fractions of the effective memory (physical, or the cgroup limit)."""

    warning: float | None = None
    critical: float | None = None
    emergency: float | None = None


class GrowthRate(_Shape):
    """Bytes per minute of RSS growth."""

    warning: int | None = None
    critical: int | None = None


class SpillActivity(_Shape):
    """Bytes in the spill directory."""

    normal: int | None = None
    warning: int | None = None
    critical: int | None = None


class MemoryThresholds(_Shape):
    duckdb_memory: DuckDBMemoryThresholds = DuckDBMemoryThresholds()
    system_memory: SystemMemoryThresholds = SystemMemoryThresholds()
    memory_growth_rate: GrowthRate = GrowthRate()
    spill_activity: SpillActivity = SpillActivity()


class QueryExecution(_Shape):
    """Milliseconds. `timeout_threshold` is applied as the default timeout; the rest are informational."""

    simple_query_warning: int | None = None
    simple_query_critical: int | None = None
    complex_query_warning: int | None = None
    complex_query_critical: int | None = None
    timeout_threshold: int | None = None


class PerformanceThresholds(_Shape):
    query_execution: QueryExecution = QueryExecution()


class CpuUsage(_Shape):
    warning: float | None = None
    critical: float | None = None
    sustained_duration: int | None = None


class SystemThresholds(_Shape):
    cpu_usage: CpuUsage = CpuUsage()


class EnvironmentOverride(_Shape):
    """Applied when the resolved profile has this name."""

    memory_thresholds: MemoryThresholds | None = None


class ResourceThresholds(_Shape):
    path: str = ""
    positions: Positions = {}
    memory_thresholds: MemoryThresholds = MemoryThresholds()
    performance_thresholds: PerformanceThresholds = PerformanceThresholds()
    system_thresholds: SystemThresholds = SystemThresholds()
    monitoring_config: Any = None
    alerting_rules: Any = None
    """Plain data here; sidecar.monitor.rules re-reads it with its lines."""
    notification_channels: Any = None
    scaling_triggers: Any = None
    """Plain data here; sidecar.monitor.triggers re-reads it (and degradation_procedures) with its lines."""
    hand_off: HandOff | None = None
    """`scaling_triggers.executor_scaling`, read by sidecar.config.hand_off: a rule for the job
    runner, not an alert."""
    degradation_procedures: Any = None
    environment_overrides: dict[str, EnvironmentOverride] = {}


# duckdb-cli-integration-config.yaml ----------------------------------------------------------


class CliOption(_Shape):
    name: str
    short: str | None = None
    description: str | None = None
    default: Any = None
    type: str | None = None


class CliSubcommand(_Shape):
    enabled: bool = True
    description: str | None = None
    options: list[CliOption] = []


class CliCommand(_Shape):
    enabled: bool = True
    description: str | None = None
    subcommands: dict[str, CliSubcommand] = {}


class FeatureDecl(_Shape):
    enabled: bool
    description: str = ""
    dependencies: list[str] = []


class CliSection(_Shape):
    commands: dict[str, CliCommand] = {}
    patterns: Any = None
    feature_dependencies: dict[str, FeatureDecl] = {}


class CliIntegration(_Shape):
    path: str = ""
    positions: Positions = {}
    cli_integration: CliSection = CliSection()
    workflows: Any = None
    security: Any = None


# config/feature-flags.yaml -------------------------------------------------------------------


class FeatureFlagsFile(_Shape):
    path: str = ""
    positions: Positions = {}
    features: dict[str, FeatureDecl] = {}
    metadata: Any = None
