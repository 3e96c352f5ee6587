"""`config.get`, `config.validate`, `config.reload`: what is in force, and why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from sidecar.config import Diagnostic, FlagState, Settings, validate_dir
from sidecar.methods import registry
from sidecar.protocol.dispatcher import Call

__all__ = ["ConfigView", "ValidateParams", "ValidateResult"]


class ConfigView(msgspec.Struct, frozen=True):
    config_dir: str
    files: dict[str, str]
    profile: str
    settings: Settings
    """Every resolved value; `settings.sources` says where each came from."""
    flags: dict[str, FlagState]
    diagnostics: list[Diagnostic]
    ok: bool


class ValidateParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    path: str | None = None
    """A config directory to check (default: the one in use). Nothing is applied."""


class ValidateResult(msgspec.Struct, frozen=True):
    config_dir: str
    ok: bool
    errors: int
    warnings: int
    diagnostics: list[Diagnostic]


def view(session: Any) -> ConfigView:
    pack = session.pack
    return ConfigView(
        config_dir=pack.config_dir,
        files=dict(pack.paths),
        profile=session.settings.profile,
        settings=session.settings,
        flags=dict(pack.flags.states),
        diagnostics=list(pack.diagnostics),
        ok=pack.ok,
    )


@registry.method("config.get", params=None, result=ConfigView, inline=True)
def get(call: Call, _: None) -> ConfigView:
    """The config in force: resolved settings with the source of each, flags with reasons, diagnostics."""
    return view(call.session)


@registry.method("config.validate", params=ValidateParams, result=ValidateResult)
def validate(call: Call, p: ValidateParams) -> ValidateResult:
    """Check a config directory and list every diagnostic with file, line and column."""
    directory = Path(p.path).expanduser().resolve() if p.path else call.session.config_dir
    diagnostics = validate_dir(directory, call.session.env)
    errors = sum(d.severity == "error" for d in diagnostics)
    warnings = sum(d.severity == "warning" for d in diagnostics)
    return ValidateResult(str(directory), errors == 0, errors, warnings, diagnostics)


@registry.method("config.reload", params=None, result=ConfigView)
def reload(call: Call, _: None) -> ConfigView:
    """Re-read the config files now; on errors the last good config stays in force (CONFIG_INVALID)."""
    call.session.reload()
    return view(call.session)
