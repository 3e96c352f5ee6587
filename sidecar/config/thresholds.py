"""Monitoring thresholds for one job: built-in defaults, then the thresholds file, then its
`environment_overrides.<profile>`, then the profile's own monitoring levels.

Each file is checked for order on load (info < warning < critical < emergency). Merging layers
can still produce a crossing (a profile's critical 95 against the file's emergency 90); then the
later level is raised to the earlier one and a warning says so, because a monitor whose
emergency fires before its critical is worse than one that fires both at once.
"""

from __future__ import annotations

from typing import Any

import msgspec

from sidecar.config.budget import file_of
from sidecar.config.diagnostics import Diagnostic
from sidecar.config.pack import Pack
from sidecar.config.schema import MemoryThresholds, Profile
from sidecar.config.settings import Thresholds

__all__ = ["merge_thresholds", "SPILL_WARNING_SHARE", "SPILL_CRITICAL_SHARE"]

# without a file, spill levels are shares of the job's spill allowance
SPILL_WARNING_SHARE = 0.50
SPILL_CRITICAL_SHARE = 0.80

_CHAINS = (
    ("duckdb_memory_info", "duckdb_memory_warning", "duckdb_memory_critical", "duckdb_memory_emergency"),
    ("system_memory_warning", "system_memory_critical", "system_memory_emergency"),
    ("spill_warning_bytes", "spill_critical_bytes"),
)


def _apply(values: dict[str, Any], mt: MemoryThresholds | None) -> bool:
    if mt is None:
        return False
    before = dict(values)
    for level in ("info", "warning", "critical", "emergency"):
        value = getattr(mt.duckdb_memory, level)
        if value is not None:
            values[f"duckdb_memory_{level}"] = value
    for level in ("warning", "critical", "emergency"):
        value = getattr(mt.system_memory, level)
        if value is not None:
            values[f"system_memory_{level}"] = value
    for level in ("warning", "critical"):
        value = getattr(mt.spill_activity, level)
        if value is not None:
            values[f"spill_{level}_bytes"] = value
    return values != before


def merge_thresholds(
    pack: Pack, profile_name: str, prof: Profile | None, spill_allowance: int, diagnostics: list[Diagnostic]
) -> tuple[Thresholds, str]:
    """(thresholds, source text naming every layer that contributed)."""
    values: dict[str, Any] = msgspec.structs.asdict(Thresholds())
    values["spill_warning_bytes"] = int(spill_allowance * SPILL_WARNING_SHARE)
    values["spill_critical_bytes"] = int(spill_allowance * SPILL_CRITICAL_SHARE)
    parts = [
        f"defaults (spill levels {SPILL_WARNING_SHARE:.0%}/{SPILL_CRITICAL_SHARE:.0%} "
        "of max_temp_directory_size)"
    ]
    th = pack.thresholds
    if th is not None:
        if _apply(values, th.memory_thresholds):
            line = th.positions.get("memory_thresholds", (0, 0))[0]
            parts.append(f"file:{th.path}:{line}")
        override = th.environment_overrides.get(profile_name)
        if override is not None and _apply(values, override.memory_thresholds):
            line = th.positions.get(f"environment_overrides.{profile_name}", (0, 0))[0]
            parts.append(f"file:{th.path}:{line} (environment_overrides.{profile_name})")
    tmpl = pack.memory_templates
    if prof is not None and tmpl is not None:
        mon = prof.monitoring
        changed = False
        for level in ("warning", "critical"):
            value = getattr(mon, f"memory_threshold_{level}")
            if value is not None:
                values[f"duckdb_memory_{level}"] = value
                changed = True
        if changed:
            line = tmpl.positions.get(f"{profile_name}.monitoring", (0, 0))[0]
            parts.append(f"file:{tmpl.path}:{line} (profile {profile_name} monitoring)")
    for chain in _CHAINS:
        for low, high in zip(chain, chain[1:]):
            if values[high] < values[low]:
                file, line = file_of(parts[-1])  # the last layer merged, where the crossing arose
                diagnostics.append(
                    Diagnostic(
                        "warning",
                        file,
                        line,
                        None,
                        f"thresholds.{high}",
                        f"{high} ({values[high]}) fell below {low} ({values[low]}) after merging "
                        f"{' then '.join(parts)}; raised to {values[low]}",
                        "Keep the profile's monitoring levels below the thresholds file's higher levels.",
                    )
                )
                values[high] = values[low]
    return Thresholds(**values), " then ".join(parts)
