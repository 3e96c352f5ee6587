"""Expansion-pack configuration: loading, validation, feature flags, settings resolution, hot reload.

Public API:
    load_pack(config_dir, env=None) -> Pack           never raises for content problems
    validate_dir(config_dir, env=None) -> list[Diagnostic]
    resolve_settings(pack, resources, *, profile, overrides, env, request) -> Settings
    require_feature(flags, name)                       raises FeatureDisabled
    ConfigWatcher(config_dir, on_change, on_error)     hot reload in a daemon thread

See docs/configuration.md for the files, the keys applied and ignored, and the precedence.
"""

from __future__ import annotations

from sidecar.config.diagnostics import Diagnostic, format_diagnostics
from sidecar.config.flags import FlagState, Flags, require_feature
from sidecar.config.pack import PACK_FILES, Pack, default_config_dir, load_pack, validate_dir
from sidecar.config.resolve import NOT_GIVEN, parse_user_settings, resolve_settings
from sidecar.config.settings import ENV_VARS, USER_KEYS, Settings, Thresholds, duckdb_limit_for
from sidecar.config.watch import ConfigWatcher

__all__ = [
    "Diagnostic",
    "format_diagnostics",
    "FlagState",
    "Flags",
    "require_feature",
    "PACK_FILES",
    "Pack",
    "default_config_dir",
    "load_pack",
    "validate_dir",
    "NOT_GIVEN",
    "parse_user_settings",
    "resolve_settings",
    "ENV_VARS",
    "duckdb_limit_for",
    "USER_KEYS",
    "Settings",
    "Thresholds",
    "ConfigWatcher",
]
