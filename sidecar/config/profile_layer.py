"""The profile layer: a named profile's values from the memory templates (and the thresholds
file), each with the `file:path:line (profile name)` source that config.get shows."""

from __future__ import annotations

from typing import Any

from sidecar.config.pack import Pack
from sidecar.config.schema import Profile
from sidecar.config.user_settings import NOT_GIVEN, Candidate
from sidecar.errors import ConfigInvalid, did_you_mean
from sidecar.layout import project_root_of

__all__ = ["find_profile", "ProfileFields"]


def find_profile(pack: Pack, name: str) -> Profile | None:
    """The profile called name (None for "auto"); ConfigInvalid with the close names if unknown."""
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


class ProfileFields:
    """The profile layer: values from the memory templates (and the thresholds file), each with
    its `file:path:line (profile name)` source."""

    def __init__(self, pack: Pack, name: str, prof: Profile | None) -> None:
        self.root = project_root_of(pack.config_dir)  # relative paths in the pack are project-relative
        self.values: dict[str, Candidate] = {}
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
            add("output_compression", "output.compression", prof.output.compression)
            add("executor", "execution.executor", prof.execution.executor)
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

    def get(self, key: str) -> Candidate:
        return self.values.get(key, ("", NOT_GIVEN))
