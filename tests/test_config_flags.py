"""Feature flags: dependency chains, cycles, unknown dependencies, CLI flags, require_feature."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from sidecar.config import load_pack, require_feature
from sidecar.errors import FeatureDisabled

FLAGS = "feature-flags.yaml"
CLI = "duckdb-cli-integration-config.yaml"


def flags_pack(tmp_path: Path, flags: str, cli: str = "cli_integration:\n  commands: {}\n") -> Path:
    """A pack with these flags and CLI files (a CLI file declaring no flag unless given)."""
    root = tmp_path / "pack"
    (root / "config").mkdir(parents=True)
    (root / "config" / FLAGS).write_text(flags)
    (root / "data").mkdir()
    (root / "data" / CLI).write_text(cli)
    return root


CHAIN = """\
features:
  base:
    enabled: false
    dependencies: []
  middle:
    enabled: true
    dependencies: [base]
  top:
    enabled: true
    dependencies:
      - middle
  free:
    enabled: true
"""


def test_transitive_dependency_names_the_root_cause(tmp_path: Path) -> None:
    pack = load_pack(flags_pack(tmp_path, CHAIN))
    assert pack.ok
    flags_file = str(tmp_path / "pack" / "config" / FLAGS)
    top = pack.flags.state("top")
    assert top.declared_enabled and not top.enabled
    assert (top.file, top.line) == (flags_file, 9)
    assert "'middle'" in top.reason and f"'base' is disabled at {flags_file}:3" in top.reason
    assert pack.flags.state("free").enabled
    assert pack.flags.state("base").reason == f"'base' is disabled at {flags_file}:3"


def test_require_feature_raises_with_details(tmp_path: Path) -> None:
    pack = load_pack(flags_pack(tmp_path, CHAIN))
    require_feature(pack.flags, "free")
    with pytest.raises(FeatureDisabled) as info:
        require_feature(pack.flags, "top")
    err = info.value
    assert "feature 'top' is disabled" in err.message and "'base' is disabled" in err.message
    assert err.details["flag"] == "top" and err.details["line"] == 9
    assert err.details["file"].endswith(FLAGS) and err.details["reason"] == pack.flags.state("top").reason
    again = pickle.loads(pickle.dumps(err))
    assert again.details == err.details


def test_undeclared_flag_suggests_a_name(tmp_path: Path) -> None:
    pack = load_pack(flags_pack(tmp_path, CHAIN))
    with pytest.raises(FeatureDisabled, match="did you mean 'middle'"):
        require_feature(pack.flags, "midle")


def test_cycle_is_an_error_and_all_members_are_off(tmp_path: Path) -> None:
    text = (
        "features:\n"
        "  a:\n    enabled: true\n    dependencies: [b]\n"
        "  b:\n    enabled: true\n    dependencies: [c]\n"
        "  c:\n    enabled: true\n    dependencies: [a]\n"
        "  d:\n    enabled: true\n    dependencies: [a]\n"
    )
    pack = load_pack(flags_pack(tmp_path, text))
    (err,) = pack.errors
    assert "dependency cycle: a -> b -> c -> a" in err.message
    for name in "abc":
        assert not pack.flags.state(name).enabled
        assert "cycle" in pack.flags.state(name).reason
    assert not pack.flags.state("d").enabled and "'a'" in pack.flags.state("d").reason


def test_unknown_dependency_is_a_warning_at_its_item_and_keeps_the_flag_off(tmp_path: Path) -> None:
    text = (
        "features:\n  a:\n    enabled: true\n    dependencies:\n      - duckdb_analytcs\n"
        "  duckdb_analytics:\n    enabled: true\n"
    )
    pack = load_pack(flags_pack(tmp_path, text))
    assert pack.ok  # the damage is local: other flags and methods keep working
    (err,) = [d for d in pack.diagnostics if "unknown flag" in d.message]
    assert err.severity == "warning"
    assert (err.line, err.column) == (5, 9)
    assert "unknown flag 'duckdb_analytcs'; did you mean 'duckdb_analytics'?" in err.message
    assert not pack.flags.state("a").enabled


def test_cli_feature_dependencies_fold_in(tmp_path: Path) -> None:
    flags = "features:\n  duckdb_analytics:\n    enabled: true\n  duckdb_monitoring:\n    enabled: false\n"
    cli = (
        "cli_integration:\n  feature_dependencies:\n"
        "    duckdb_cli_integration:\n      enabled: true\n      dependencies: [duckdb_analytics]\n"
        "    duckdb_cli_monitoring:\n      enabled: true\n"
        "      dependencies: [duckdb_cli_integration, duckdb_monitoring]\n"
    )
    pack = load_pack(flags_pack(tmp_path, flags, cli))
    assert pack.ok, pack.diagnostics
    assert pack.flags.state("duckdb_cli_integration").enabled
    mon = pack.flags.state("duckdb_cli_monitoring")
    assert not mon.enabled and mon.file is not None and mon.file.endswith(CLI) and mon.line == 7
    assert "'duckdb_monitoring' is disabled" in mon.reason and f"{FLAGS}:5" in mon.reason


def test_flag_declared_twice_keeps_the_flags_file(tmp_path: Path) -> None:
    flags = "features:\n  x:\n    enabled: false\n"
    cli = "cli_integration:\n  feature_dependencies:\n    x:\n      enabled: true\n"
    pack = load_pack(flags_pack(tmp_path, flags, cli))
    assert not pack.flags.state("x").enabled
    assert any("also declared" in d.message and d.severity == "warning" for d in pack.diagnostics)


def test_enabled_is_required_and_must_be_boolean(tmp_path: Path) -> None:
    text = "features:\n  a:\n    description: no enabled key\n  b:\n    enabled: 'yes please'\n"
    pack = load_pack(flags_pack(tmp_path, text))
    messages = sorted(e.message for e in pack.errors)
    assert any("required key 'enabled' is missing" in m for m in messages)
    assert any("expected true or false" in m for m in messages)
    assert "a" not in pack.flags.states and "b" not in pack.flags.states


def test_the_hint_names_the_one_edit_that_turns_a_flag_on(tmp_path: Path) -> None:
    """The hint used to say "the flag named in the reason" at the requested flag's own line (9),
    while the edit that helps is `base` at line 3."""
    pack = load_pack(flags_pack(tmp_path, CHAIN))
    flags_file = str(tmp_path / "pack" / "config" / FLAGS)
    for name in ("top", "middle", "base"):
        with pytest.raises(FeatureDisabled) as info:
            require_feature(pack.flags, name)
        hint = info.value.hint
        assert hint.startswith(f"Set `enabled: true` for 'base' at {flags_file}:3"), hint
    with pytest.raises(FeatureDisabled) as info:
        require_feature(pack.flags, "nowhere")
    assert "Declare 'nowhere'" in info.value.hint
    ghost = "features:\n  a:\n    enabled: true\n    dependencies: [ghost]\n"
    unknown = load_pack(flags_pack(tmp_path / "u", ghost))
    with pytest.raises(FeatureDisabled) as info:
        require_feature(unknown.flags, "a")
    assert "Declare 'ghost'" in info.value.hint and ":4" in info.value.hint
