"""Feature flags: declared in two files, effective only when every dependency is on.

The flags file declares most flags; the CLI file's `cli_integration.feature_dependencies` adds
the CLI ones (duckdb_cli_integration, ...). A flag is effectively on when it is declared on and
all its dependencies, transitively, are on. When it is off, `reason` names the flag to flip and
the file:line where to flip it, so a FEATURE_DISABLED error tells the user exactly what to edit.
"""

from __future__ import annotations

import msgspec

from sidecar.config.diagnostics import Diagnostic
from sidecar.config.schema import CliIntegration, FeatureDecl, FeatureFlagsFile, Positions
from sidecar.errors import FeatureDisabled, did_you_mean

__all__ = ["FlagDecl", "FlagState", "Flags", "build_flags", "require_feature"]


class FlagDecl(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    declared_enabled: bool
    description: str
    dependencies: list[str]
    file: str
    line: int | None


class FlagState(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    enabled: bool
    declared_enabled: bool
    reason: str
    file: str | None
    line: int | None


class Flags(msgspec.Struct, frozen=True, kw_only=True):
    """Effective flag states, computed once when the pack is loaded."""

    states: dict[str, FlagState] = {}
    fixes: dict[str, str] = {}
    """For each flag that is off, the one edit that turns it on (the root of its chain of causes)."""

    def state(self, name: str) -> FlagState:
        """The flag's effective state; an undeclared flag is off, with a suggestion."""
        found = self.states.get(name)
        if found is not None:
            return found
        return FlagState(
            name=name,
            enabled=False,
            declared_enabled=False,
            file=None,
            line=None,
            reason=(
                f"no flag named '{name}' is declared in the feature flags files"
                f"{did_you_mean(name, self.states)}"
            ),
        )

    def enabled(self, name: str) -> bool:
        return self.state(name).enabled

    def names(self) -> list[str]:
        return sorted(self.states)


def require_feature(flags: Flags, name: str) -> None:
    """Raise FeatureDisabled, naming the flag, why it is off and where to turn it on."""
    st = flags.state(name)
    if st.enabled:
        return
    fix = flags.fixes.get(name) or (
        f"Declare '{name}' under `features:` in config/feature-flags.yaml"
        if name not in flags.states
        else f"Set `enabled: true` for '{name}' at {st.file}:{st.line}"
    )
    raise FeatureDisabled(
        f"feature '{name}' is disabled: {st.reason}",
        hint=f"{fix}, then retry; the file is reloaded live.",
        details={"flag": name, "file": st.file, "line": st.line, "reason": st.reason},
    )


def _decls(
    features: dict[str, FeatureDecl], positions: Positions, prefix: str, path: str
) -> dict[str, FlagDecl]:
    out = {}
    for name, decl in features.items():
        pos = positions.get(f"{prefix}.{name}.enabled") or positions.get(f"{prefix}.{name}")
        out[name] = FlagDecl(
            name=name,
            declared_enabled=decl.enabled,
            description=decl.description,
            dependencies=list(decl.dependencies),
            file=path,
            line=pos[0] if pos else None,
        )
    return out


def build_flags(
    flags_file: FeatureFlagsFile | None, cli_file: CliIntegration | None, diagnostics: list[Diagnostic]
) -> Flags:
    """Merge both files' declarations and resolve dependencies; problems go to `diagnostics`."""
    decls: dict[str, FlagDecl] = {}
    positions: dict[str, tuple[str, Positions, str]] = {}
    if flags_file is not None:
        decls.update(_decls(flags_file.features, flags_file.positions, "features", flags_file.path))
        for name in flags_file.features:
            positions[name] = (flags_file.path, flags_file.positions, f"features.{name}")
    if cli_file is not None:
        prefix = "cli_integration.feature_dependencies"
        for name, decl in _decls(
            cli_file.cli_integration.feature_dependencies, cli_file.positions, prefix, cli_file.path
        ).items():
            if name in decls:
                other = decls[name]
                diagnostics.append(
                    Diagnostic(
                        "warning",
                        cli_file.path,
                        decl.line,
                        None,
                        f"{prefix}.{name}",
                        f"flag '{name}' is also declared at {other.file}:{other.line}; that declaration wins",
                        "Declare each flag in one file.",
                    )
                )
                continue
            decls[name] = decl
            positions[name] = (cli_file.path, cli_file.positions, f"{prefix}.{name}")

    states: dict[str, FlagState] = {}
    fixes: dict[str, str] = {}
    resolving: list[str] = []

    def resolve(name: str) -> FlagState:
        if name in states:
            return states[name]
        decl = decls[name]
        if name in resolving:  # a cycle: every member is off
            cycle = resolving[resolving.index(name) :] + [name]
            text = " -> ".join(cycle)
            diagnostics.append(
                Diagnostic(
                    "error",
                    decl.file,
                    decl.line,
                    None,
                    f"{positions[name][2]}.dependencies",
                    f"dependency cycle: {text}",
                    "Remove one of these dependencies.",
                )
            )
            for member in cycle:
                fixes[member] = f"Remove one dependency of the cycle {text} ({decl.file}:{decl.line})"
                d = decls[member]
                states[member] = FlagState(
                    name=member,
                    enabled=False,
                    declared_enabled=d.declared_enabled,
                    reason=f"dependency cycle {text}",
                    file=d.file,
                    line=d.line,
                )
            return states[name]
        resolving.append(name)
        reason = ""
        if not decl.declared_enabled:
            reason = f"'{name}' is disabled at {decl.file}:{decl.line}"
            fixes[name] = f"Set `enabled: true` for '{name}' at {decl.file}:{decl.line}"
        for i, dep in enumerate(decl.dependencies):
            if dep not in decls:
                file, pos_table, key = positions[name]
                pos = pos_table.get(f"{key}.dependencies[{i}]")
                others = [n for n in decls if n != name]
                # A warning, not an error: the damage is local (this flag stays off), and an
                # unrelated method should not stop working because of it.
                diagnostics.append(
                    Diagnostic(
                        "warning",
                        file,
                        pos[0] if pos else decl.line,
                        pos[1] if pos else None,
                        f"{key}.dependencies",
                        f"flag '{name}' depends on unknown flag '{dep}'{did_you_mean(dep, others)}; '{name}' stays off",
                        "Declare the flag in config/feature-flags.yaml or fix the name.",
                    )
                )
                if not reason:
                    reason = f"depends on '{dep}', which is not declared in any flags file"
                    fixes[name] = (
                        f"Declare '{dep}' in config/feature-flags.yaml, or fix the dependency of '{name}' "
                        f"at {file}:{pos[0] if pos else decl.line}"
                    )
                continue
            dep_state = resolve(dep)
            if name in states:  # became part of a cycle while resolving the dependency
                resolving.remove(name)
                return states[name]
            if not dep_state.enabled and not reason:
                reason = f"depends on '{dep}', which is off: {dep_state.reason}"
                if dep in fixes:
                    fixes[name] = fixes[dep]
        resolving.remove(name)
        states[name] = FlagState(
            name=name,
            enabled=decl.declared_enabled and not reason,
            declared_enabled=decl.declared_enabled,
            reason=reason or "enabled",
            file=decl.file,
            line=decl.line,
        )
        return states[name]

    for flag in decls:
        resolve(flag)
    return Flags(
        states=dict(sorted(states.items())),
        fixes={n: f for n, f in fixes.items() if not states[n].enabled},
    )
