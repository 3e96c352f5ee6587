"""The user-facing settings: one parser and one example per key, and the layers that carry them.

A request's `settings`, the initialize `overrides` and the BMAD_DATA_* environment variables all
name settings by the keys of SETTING_PARSERS; adding a setting means one parser and one example
here, one field in settings.Settings and one `pick` in resolve.resolve_settings.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import sidecar.config.rules as rules
from sidecar.config.settings import ENV_VARS, USER_KEYS, to_executor
from sidecar.config.validate import to_int, to_path, to_size
from sidecar.errors import ConfigInvalid, InvalidParams, did_you_mean

__all__ = [
    "NOT_GIVEN",
    "Candidate",
    "SETTING_PARSERS",
    "SETTING_EXAMPLES",
    "parse_user_settings",
    "env_layer",
    "first_given",
]


class NotGiven:
    """The type of NOT_GIVEN: "this layer says nothing", distinct from every real value."""

    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN: Any = NotGiven()
Candidate = tuple[str, Any]  # (source text, value or NOT_GIVEN)

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
    "output_compression": rules.to_compression,
    "executor": to_executor,
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
    "output_compression": f"one of {', '.join(rules.PARQUET_CODECS)}",
    "executor": "local, ray, or ray:<address> such as ray:head:6379",
}
"""A valid value of each setting, for hints: one per key of SETTING_PARSERS
(tests/test_config_resolve.py::test_bad_settings_hints_say_what_to_send checks they match)."""


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


def env_layer(env: Mapping[str, str]) -> dict[str, tuple[str, Any]]:
    """{setting key: (variable name, parsed value)} for each BMAD_DATA_* variable set in env."""
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


def first_given(candidates: list[Candidate]) -> Candidate:
    """The first candidate that gives a value, highest layer first.

    >>> first_given([("request", NOT_GIVEN), ("env", 0), ("overrides", 4)])
    ('env', 0)
    >>> first_given([("request", NOT_GIVEN)])
    ('', NOT_GIVEN)
    """
    for src, value in candidates:
        if value is not NOT_GIVEN:
            return src, value
    return "", NOT_GIVEN
