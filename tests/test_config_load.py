"""Loading pack files: positions, syntax errors, the originals' warnings, invalid values, env substitution."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sidecar.config import Diagnostic, load_pack, validate_dir
from sidecar.config.yamlload import MarkedDict, load_yaml

REPO = Path(__file__).parents[1]
ORIGINALS = Path(__file__).resolve().parent / "fixtures" / "original-pack"  # copied from ../shared/reference
TEMPLATES = "duckdb-memory-config-templates.yaml"
THRESHOLDS = "resource-thresholds-config.yaml"
CLI = "duckdb-cli-integration-config.yaml"
FLAGS = "feature-flags.yaml"



MIN_FLAGS = "features:\n  duckdb_analytics:\n    enabled: true\n"
MIN_CLI = "cli_integration:\n  feature_dependencies:\n    duckdb_cli_integration:\n      enabled: true\n"


def write_pack(root: Path, **files: str) -> Path:
    """A flat pack directory holding the given files (name without .yaml -> text); minimal flags and
    CLI files unless given (without them their flags are undeclared: an error)."""
    root.mkdir(parents=True, exist_ok=True)
    files.setdefault("flags", MIN_FLAGS)
    files.setdefault("cli", MIN_CLI)
    names = {"templates": TEMPLATES, "thresholds": THRESHOLDS, "cli": CLI, "flags": FLAGS}
    for key, text in files.items():
        (root / names[key]).write_text(text)
    return root


def find(
    diags: list[Diagnostic], *, file: str, line: int, path_end: str, severity: str = "warning"
) -> Diagnostic:
    hits = [
        d
        for d in diags
        if d.file.endswith(file) and d.line == line and d.path.endswith(path_end) and d.severity == severity
    ]
    assert hits, f"no {severity} at {file}:{line} for {path_end}; got:\n" + "\n".join(map(str, diags))
    return hits[0]


def test_loader_records_key_and_value_positions(tmp_path: Path) -> None:
    f = tmp_path / "a.yaml"
    f.write_text("top:\n  key: 12\n  list:\n    - x\n    - y\n")
    doc, diags = load_yaml(f)
    assert diags == []
    assert isinstance(doc, MarkedDict)
    inner = doc["top"]
    assert inner.key_pos["key"] == (2, 3)
    assert inner.value_pos["key"] == (2, 8)
    assert inner["list"].item_pos == [(4, 7), (5, 7)]


def test_yaml_syntax_error_has_file_line_column(tmp_path: Path) -> None:
    broken = "development:\n  duckdb_config:\n    memory_limit: [2GB\n  x: 1\n"
    pack = write_pack(tmp_path / "p", templates=broken)
    diags = validate_dir(pack)
    err = [d for d in diags if d.severity == "error"]
    assert len(err) == 1
    assert err[0].file == str(pack / TEMPLATES)
    assert err[0].line == 4 and err[0].column is not None
    assert "YAML syntax error" in err[0].message and "expected ','" in err[0].message
    assert str(err[0]).startswith(f"{pack / TEMPLATES}:4:")


def test_duplicate_keys_are_warned(tmp_path: Path) -> None:
    pack = write_pack(tmp_path / "p", templates="dev:\n  description: a\n  description: b\n")
    d = find(load_pack(pack).diagnostics, file=TEMPLATES, line=3, path_end="description")
    assert "duplicate key" in d.message and "line 2" in d.message


def test_repo_pack_is_clean() -> None:
    pack = load_pack(REPO / "expansion-pack", env={})
    bad = [d for d in pack.diagnostics if d.severity in ("error", "warning")]
    assert bad == [], "\n".join(map(str, bad))
    assert pack.ok
    assert set(pack.paths) == {"memory_templates", "thresholds", "cli", "feature_flags"}
    for name in ("duckdb_analytics", "duckdb_monitoring", "duckdb_cli_integration", "duckdb_cli_monitoring"):
        assert pack.flags.state(name).enabled, pack.flags.state(name).reason


def test_originals_load_with_precise_warnings() -> None:
    pack = load_pack(ORIGINALS, env={})
    diags = pack.diagnostics
    d = find(diags, file=TEMPLATES, line=18, path_end="development.duckdb_config.cache_size")
    assert "not a DuckDB setting" in d.message and "memory_limit" in d.message and d.column == 5
    d = find(diags, file=TEMPLATES, line=13, path_end="development.duckdb_config.max_connections")
    assert "concurrent jobs" in d.message
    d = find(diags, file=TEMPLATES, line=17, path_end="development.duckdb_config.wal_autocheckpoint")
    assert "checkpoint_threshold" in d.message and "'16MB'" in d.message
    find(diags, file=TEMPLATES, line=19, path_end="development.duckdb_config.enable_object_cache")
    find(diags, file=TEMPLATES, line=25, path_end="development.spilling_config.cleanup_interval")
    find(diags, file=TEMPLATES, line=143, path_end="cloud_auto.auto_scaling")
    find(diags, file=TEMPLATES, line=206, path_end="container.container_specific")
    find(diags, file=TEMPLATES, line=235, path_end="validation_rules")
    find(diags, file=THRESHOLDS, line=41, path_end="performance_thresholds.connections")
    find(diags, file=THRESHOLDS, line=234, path_end="bmad_integration")  # scaling_triggers: the monitor reads it
    find(diags, file=CLI, line=106, path_end="tool_integration")
    find(diags, file=FLAGS, line=61, path_end="safety")
    # the CLI file depends on flags the original flags file never declares
    e = find(diags, file=CLI, line=98, path_end="duckdb_cli_monitoring.dependencies", severity="warning")
    assert "unknown flag 'duckdb_monitoring'" in e.message and e.column == 48
    assert pack.errors == []  # unknown flag dependencies turn only those flags off
    # applied values are normalised
    tmpl = pack.memory_templates
    assert tmpl is not None and pack.thresholds is not None
    dev = tmpl.profiles["development"]
    assert dev.duckdb_config.memory_limit is not None and dev.duckdb_config.memory_limit.bytes == 2 * 10**9
    assert dev.monitoring.memory_threshold_warning == 0.70 and dev.monitoring.log_level == "debug"
    container_limit = tmpl.profiles["container"].duckdb_config.memory_limit
    assert container_limit is not None and container_limit.share == pytest.approx(0.60)
    assert pack.thresholds.memory_thresholds.duckdb_memory.emergency == 0.95
    assert pack.thresholds.memory_thresholds.spill_activity.critical == 1000 * 10**6
    assert pack.thresholds.performance_thresholds.query_execution.timeout_threshold == 300000
    assert tmpl.positions["development.duckdb_config.memory_limit"] == (12, 19)


def test_missing_dir_and_missing_files(tmp_path: Path) -> None:
    pack = load_pack(tmp_path / "nope")
    assert not pack.ok and pack.errors[0].message == "config directory not found"
    empty = load_pack(write_pack(tmp_path / "empty"))
    assert empty.ok and empty.memory_templates is None
    assert len([d for d in empty.diagnostics if "file not found" in d.message]) == 2


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("memory_limit: lots", "expected a size"),
        ("memory_limit: 2048", "below the minimum"),
        ("memory_limit: '140%'", "at most 100%"),
        ("threads: 0", "at least 1"),
        ("preserve_insertion_order: maybe", "true or false"),
        ("checkpoint_threshold: 5XB", "unknown size unit"),
    ],
)
def test_invalid_duckdb_values_are_errors_at_their_position(tmp_path: Path, line: str, fragment: str) -> None:
    pack = write_pack(tmp_path / "p", templates=f"dev:\n  duckdb_config:\n    {line}\n")
    errors = load_pack(pack).errors
    assert len(errors) == 1, errors
    key, _, value = line.partition(": ")
    assert errors[0].line == 3 and errors[0].column == 5 + len(key) + 2
    assert errors[0].path == f"dev.duckdb_config.{key}"
    assert fragment in errors[0].message


def test_threshold_range_order_and_ambiguity(tmp_path: Path) -> None:
    text = (
        "memory_thresholds:\n"
        "  duckdb_memory:\n"
        "    info: 50\n"
        "    warning: 140\n"
        "  system_memory:\n"
        "    warning: 90\n"
        "    critical: 85\n"
        "    emergency: 0.97\n"
    )
    errors = load_pack(write_pack(tmp_path / "p", thresholds=text)).errors
    by_line = {e.line: e for e in errors}
    assert "at most 100" in by_line[4].message and by_line[4].column == 14
    assert "critical (85) must be above warning (90)" in by_line[7].message
    assert "ambiguous" in by_line[8].message and "write 97" in by_line[8].message


def test_percent_strings_and_the_one_percent_guess(tmp_path: Path) -> None:
    text = "memory_thresholds:\n  duckdb_memory:\n    info: 1\n    warning: '60.5%'\n"
    pack = load_pack(write_pack(tmp_path / "p", thresholds=text))
    assert pack.ok
    assert pack.thresholds is not None
    assert pack.thresholds.memory_thresholds.duckdb_memory.warning == pytest.approx(0.605)
    find(pack.diagnostics, file=THRESHOLDS, line=3, path_end="duckdb_memory.info")


def test_unknown_key_suggests_the_closest(tmp_path: Path) -> None:
    pack = write_pack(tmp_path / "p", templates="dev:\n  duckdb_config:\n    memroy_limit: 2GB\n")
    d = find(load_pack(pack).diagnostics, file=TEMPLATES, line=3, path_end="memroy_limit")
    assert "did you mean 'memory_limit'?" in d.message


def test_auto_is_reserved(tmp_path: Path) -> None:
    pack = write_pack(tmp_path / "p", templates="auto:\n  duckdb_config:\n    memory_limit: 2GB\n")
    assert "built-in profile" in load_pack(pack).errors[0].message


def test_env_substitution(tmp_path: Path) -> None:
    text = (
        "dev:\n"
        "  duckdb_config:\n"
        "    memory_limit: '${MEM:-1GB}'\n"
        "    threads: '${THREADS:-3}'\n"
        "    preserve_insertion_order: '${PROF:-false}'\n"
        "    temp_directory: '${NO_DEFAULT}'\n"
    )
    pack_dir = write_pack(tmp_path / "p", templates=text)
    pack = load_pack(pack_dir, env={"MEM": "3GiB"})
    assert pack.memory_templates is not None
    duck = pack.memory_templates.profiles["dev"].duckdb_config
    assert duck.memory_limit is not None and duck.memory_limit.bytes == 3 * 1024**3
    assert duck.threads == 3 and duck.preserve_insertion_order is False
    infos = [d for d in pack.diagnostics if d.severity == "info"]
    assert {d.line for d in infos} == {4, 5} and "THREADS is not set" in infos[0].message
    (err,) = pack.errors
    assert err.line == 6 and "NO_DEFAULT is not set" in err.message


def test_a_copy_of_the_originals_in_the_repo_layout(tmp_path: Path) -> None:
    """data/ and config/ subfolders are found as well as the flat layout."""
    root = tmp_path / "pack"
    (root / "data").mkdir(parents=True)
    (root / "config").mkdir()
    for name in (TEMPLATES, THRESHOLDS, CLI):
        shutil.copy(ORIGINALS / name, root / "data" / name)
    shutil.copy(ORIGINALS / FLAGS, root / "config" / FLAGS)
    pack = load_pack(root, env={})
    assert pack.paths["feature_flags"] == str(root / "config" / FLAGS)
    assert pack.errors == []  # unknown flag dependencies turn only those flags off


def test_enable_profiling_is_ignored_with_a_warning_that_names_explain_analyze(tmp_path: Path) -> None:
    templates = "dev:\n  duckdb_config:\n    enable_profiling: true\n"
    pack = load_pack(write_pack(tmp_path / "p", templates=templates))
    d = find(pack.diagnostics, file=TEMPLATES, line=3, path_end="dev.duckdb_config.enable_profiling")
    assert "EXPLAIN ANALYZE" in d.message and "query.run" in d.message
    assert pack.errors == []
