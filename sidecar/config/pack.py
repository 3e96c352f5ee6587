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

import sidecar.config.rules as rules
from sidecar.config.diagnostics import Diagnostic, Severity
from sidecar.config.flags import Flags, build_flags
from sidecar.config.hand_off import read_hand_off
from sidecar.config.schema import (
    CliIntegration,
    FeatureFlagsFile,
    MemoryTemplates,
    Profile,
    ResourceThresholds,
)
from sidecar.config.validate import INFO, MISSING, Ctx, Ignore, Section, walk, yaml_kind
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

# What happens without each file. The two files that declare flags have no built-in fallback: without
# the flags file `duckdb_analytics` is undeclared and every data method is refused; without the CLI
# file the CLI's own flags are undeclared and every `bmad-data` command that needs them is refused,
# with nothing pointing at the missing file. So a missing or empty one is an error that names it.
_WITHOUT: dict[str, tuple[Severity, str]] = {
    "memory_templates": ("warning", "only the built-in `auto` profile exists"),
    "thresholds": ("warning", "the built-in monitoring thresholds apply"),
    "cli": (
        "error",
        "the CLI's feature flags (duckdb_cli_integration, ...) are undeclared, so `bmad-data` commands "
        "needing them would be refused",
    ),
    "feature_flags": (
        "error",
        "`duckdb_analytics`, which every data method needs, is undeclared, so every query is refused",
    ),
}
MANIFEST = "config.yaml"
"""The pack's BMad manifest: the sidecar applies nothing from it, but checks it parses (BMad reads it)."""


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
        if candidate.exists():  # a directory in its place is reported by the loader, not taken as missing
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
                "Point BMAD_DATA_CONFIG_DIR (or initialize's config_dir, or config.validate's path) at the "
                "expansion pack directory, the one holding config/ and data/.",
            )
        )
    else:
        for role, rel in PACK_FILES.items():
            found = find_pack_file(config_dir, role)
            if found is None:
                severity, without = _WITHOUT[role]
                diagnostics.append(
                    Diagnostic(
                        severity,
                        str(config_dir / rel),
                        None,
                        None,
                        "",
                        f"file not found; {without}",
                        f"Restore {rel} from the bmad-data expansion pack (see docs/configuration.md).",
                    )
                )
                continue
            paths[role] = str(found)
            parsed[role] = _load_file(role, found, env, diagnostics)
        _check_manifest(config_dir / MANIFEST, env, diagnostics)
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
        severity, without = _WITHOUT[role]
        ctx.add(
            severity,
            None,
            "",
            f"file is empty; {without}",
            f"Restore {PACK_FILES[role]} from the bmad-data expansion pack (see docs/configuration.md).",
        )
        if severity == "error":
            diagnostics.extend(ctx.diagnostics)
            return None
    if not isinstance(doc, MarkedDict):
        ctx.add(
            "error",
            (1, 1),
            "",
            f"expected a mapping of sections at the top level, got {yaml_kind(doc)}",
            f"Restore {PACK_FILES[role]} from the bmad-data expansion pack (see docs/configuration.md).",
        )
        diagnostics.extend(ctx.diagnostics)
        return None
    if role == "memory_templates":
        value = _walk_templates(doc, ctx)
    else:
        value = walk(_FILE_SPECS[role], doc, ctx, "", None)
    if role == "thresholds" and value is not MISSING:  # the one group of scaling_triggers the runner reads
        value = msgspec.structs.replace(value, hand_off=read_hand_off(doc.get("scaling_triggers"), ctx))
    diagnostics.extend(ctx.diagnostics)
    if value is MISSING:
        return None
    return msgspec.structs.replace(value, path=str(path), positions=dict(ctx.positions))


def _check_manifest(path: Path, env: Mapping[str, str], diagnostics: list[Diagnostic]) -> None:
    """config.yaml, when present, must be a mapping with a string `name` (BMad's installer needs it).

    A flat pack (the four files side by side) has none; that is not a problem for the sidecar.
    """
    if not path.exists():
        return
    doc, diags = load_yaml(path)
    diagnostics.extend(diags)
    if any(d.severity == "error" for d in diags):
        return
    hint = "Restore config.yaml from the bmad-data expansion pack (it starts with `name: bmad-data-duckdb`)."
    if not isinstance(doc, MarkedDict):
        got = "nothing (the file is empty)" if doc is None else yaml_kind(doc)
        line = None if doc is None else 1
        diagnostics.append(
            Diagnostic("error", str(path), line, line, "", f"expected a mapping with `name`, got {got}", hint)
        )
        return
    if not isinstance(doc.get("name"), str) or not doc["name"]:
        line, col = doc.value_pos.get("name", doc.pos)
        diagnostics.append(
            Diagnostic("error", str(path), line, col, "name", "`name` must be the pack's name as text", hint)
        )


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
