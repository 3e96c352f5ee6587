"""Loading an expansion pack's config directory into a `Pack`, with every problem as a diagnostic.

`load_pack` never raises for content problems: a broken file is reported and left out (None),
so a caller (the server, or the hot-reload watcher) can keep its last good Pack and show the user
every problem at once rather than the first one.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Mapping

import msgspec

from sidecar.config import rules
from sidecar.config.diagnostics import Diagnostic
from sidecar.config.flags import Flags, build_flags
from sidecar.config.schema import (
    CliIntegration,
    FeatureFlagsFile,
    MemoryTemplates,
    Profile,
    ResourceThresholds,
)
from sidecar.config.validate import INFO, MISSING, Ctx, Ignore, Section, walk
from sidecar.config.yamlload import MarkedDict, load_yaml, plain
from sidecar.layout import default_pack_dir

__all__ = [
    "Pack",
    "PACK_FILES",
    "load_pack",
    "validate_dir",
    "default_config_dir",
    "find_pack_file",
    "REPO_ROOT",
]

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]  # kept for importers; sidecar.layout knows checkout vs installed

# role -> path inside the pack. The original pack kept all four side by side, so each file is also
# looked up directly in the config dir (the "flat" layout).
PACK_FILES: dict[str, str] = {
    "memory_templates": "data/duckdb-memory-config-templates.yaml",
    "thresholds": "data/resource-thresholds-config.yaml",
    "cli": "data/duckdb-cli-integration-config.yaml",
    "feature_flags": "config/feature-flags.yaml",
}


class Pack(msgspec.Struct, frozen=True, kw_only=True):
    """The four parsed files (None when missing or unreadable), the flags, and all diagnostics."""

    config_dir: str
    paths: dict[str, str]
    memory_templates: MemoryTemplates | None
    thresholds: ResourceThresholds | None
    cli: CliIntegration | None
    feature_flags: FeatureFlagsFile | None
    flags: Flags
    diagnostics: list[Diagnostic]

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings and info do not make a pack unusable)."""
        return not any(d.severity == "error" for d in self.diagnostics)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    def profile_names(self) -> list[str]:
        return sorted(self.memory_templates.profiles) if self.memory_templates is not None else []

    def profile(self, name: str) -> Profile | None:
        return self.memory_templates.profiles.get(name) if self.memory_templates is not None else None


def default_config_dir(env: Mapping[str, str] | None = None) -> Path:
    """BMAD_DATA_CONFIG_DIR when set, else the repo's own expansion-pack/ (the wheel's built-in copy
    when installed)."""
    env = os.environ if env is None else env
    given = env.get("BMAD_DATA_CONFIG_DIR")
    return Path(given) if given else default_pack_dir()


def find_pack_file(config_dir: Path, role: str) -> Path | None:
    rel = PACK_FILES[role]
    for candidate in (config_dir / rel, config_dir / Path(rel).name):
        if candidate.is_file():
            return candidate
    return None


def validate_dir(config_dir: Path, env: Mapping[str, str] | None = None) -> list[Diagnostic]:
    """Every diagnostic of every file in the pack."""
    return load_pack(config_dir, env).diagnostics


def load_pack(config_dir: Path, env: Mapping[str, str] | None = None) -> Pack:
    """Read and validate the pack's four files; content problems become diagnostics, never exceptions."""
    env = dict(os.environ) if env is None else env
    config_dir = Path(config_dir)
    diagnostics: list[Diagnostic] = []
    paths: dict[str, str] = {}
    parsed: dict[str, Any] = {}
    if not config_dir.is_dir():
        diagnostics.append(
            Diagnostic(
                "error",
                str(config_dir),
                None,
                None,
                "",
                "config directory not found",
                "Point BMAD_DATA_CONFIG_DIR (or the server's config_dir) at the expansion pack directory.",
            )
        )
    else:
        for role, rel in PACK_FILES.items():
            found = find_pack_file(config_dir, role)
            if found is None:
                diagnostics.append(
                    Diagnostic(
                        "warning",
                        str(config_dir / rel),
                        None,
                        None,
                        "",
                        "file not found; built-in defaults apply",
                        f"Create {rel} (see docs/configuration.md) if you want to configure this part.",
                    )
                )
                continue
            paths[role] = str(found)
            parsed[role] = _load_file(role, found, env, diagnostics)
    flags = build_flags(parsed.get("feature_flags"), parsed.get("cli"), diagnostics)
    pack = Pack(
        config_dir=str(config_dir),
        paths=paths,
        memory_templates=parsed.get("memory_templates"),
        thresholds=parsed.get("thresholds"),
        cli=parsed.get("cli"),
        feature_flags=parsed.get("feature_flags"),
        flags=flags,
        diagnostics=diagnostics,
    )
    logger.debug("loaded pack %s: %d diagnostics", config_dir, len(diagnostics))
    return pack


_FILE_SPECS: dict[str, Section] = {
    "thresholds": rules.THRESHOLDS_FILE,
    "cli": rules.CLI_FILE,
    "feature_flags": rules.FLAGS_FILE,
}


def _load_file(role: str, path: Path, env: Mapping[str, str], diagnostics: list[Diagnostic]) -> Any:
    doc, diags = load_yaml(path)
    diagnostics.extend(diags)
    if any(d.severity == "error" for d in diags):
        return None
    ctx = Ctx(file=str(path), env=env)
    if doc is None:
        doc = MarkedDict()
        ctx.add("warning", None, "", "file is empty; built-in defaults apply")
    if not isinstance(doc, MarkedDict):
        ctx.add(
            "error", (1, 1), "", f"expected a mapping of sections at the top level, got {type(doc).__name__}"
        )
        diagnostics.extend(ctx.diagnostics)
        return None
    if role == "memory_templates":
        value = _walk_templates(doc, ctx)
    else:
        value = walk(_FILE_SPECS[role], doc, ctx, "", None)
    diagnostics.extend(ctx.diagnostics)
    if value is MISSING:
        return None
    return msgspec.structs.replace(value, path=str(path), positions=dict(ctx.positions))


def _walk_templates(doc: MarkedDict, ctx: Ctx) -> MemoryTemplates:
    """Top-level keys are profile names, except the two known non-profile sections."""
    profiles: dict[str, Profile] = {}
    selection: Any = None
    for key, raw in doc.items():
        section = rules.MEMORY_TEMPLATE_SECTIONS.get(key)
        if isinstance(section, Ignore):
            ctx.add("warning", doc.key_pos[key], key, f"'{key}' is not applied: {section.reason}")
        elif section is INFO:
            selection = plain(raw)
        elif key == "auto":
            ctx.add(
                "error",
                doc.key_pos[key],
                key,
                "'auto' is the built-in profile sized from the machine; it cannot be redefined",
                "Give this profile another name.",
            )
        else:
            ctx.positions[key] = doc.key_pos[key]
            profile = walk(rules.PROFILE, raw, ctx, key, doc.value_pos[key])
            if profile is not MISSING:
                profiles[key] = profile
    return MemoryTemplates(profiles=profiles, configuration_selection=selection)
