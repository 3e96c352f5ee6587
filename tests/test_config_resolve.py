"""resolve_settings: precedence with provenance, sizes, auto-sizing, clamping, bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.config import Pack, load_pack, resolve_settings
from sidecar.config.settings import duckdb_limit_for
from sidecar.config.settings import MAX_BUDGET_SHARE, MIN_THREAD_MEMORY_BYTES
from sidecar.errors import ConfigInvalid, InvalidParams
from sidecar.resources import Resources, detect_resources

GiB = 1024**3
MiB = 1024**2
REPO = Path(__file__).parents[1]
ORIGINALS = Path(__file__).resolve().parent / "fixtures" / "original-pack"  # copied from ../shared/reference

PROFILES = """\
small:
  duckdb_config:
    memory_limit: "700MiB"
    threads: 5
    temp_directory: "spill-here"
    preserve_insertion_order: true
  monitoring:
    memory_threshold_warning: 65
    log_level: warn
huge:
  duckdb_config:
    memory_limit: "64GB"
share:
  duckdb_config:
    memory_limit: "25%"
nospill:
  spilling_config:
    enabled: false
production_small:
  duckdb_config:
    memory_limit: "1GB"
"""
THRESHOLDS = """\
memory_thresholds:
  duckdb_memory:
    info: 40
    warning: 60
    critical: 80
    emergency: 90
performance_thresholds:
  query_execution:
    timeout_threshold: 120000
"""


def machine(
    *,
    total: int = 16 * GiB,
    limit: int | None = 4 * GiB,
    available: int = 3 * GiB,
    cpus: int = 8,
    temp: str = "/tmp",
) -> Resources:
    """A machine description: resolve_settings is a pure function of it (plus the temp disk)."""
    return Resources(
        total_memory_bytes=total,
        available_memory_bytes=available,
        cgroup_version=2 if limit else None,
        cgroup_memory_limit_bytes=limit,
        cgroup_memory_usage_bytes=0 if limit else None,
        cgroup_cpu_quota=None,
        logical_cpus=cpus,
        usable_cpus=cpus,
        temp_directory=temp,
        temp_total_bytes=0,
        temp_free_bytes=0,
    )


@pytest.fixture(scope="module")
def pack(tmp_path_factory: pytest.TempPathFactory) -> Pack:
    root = tmp_path_factory.mktemp("proj") / "pack"
    (root / "data").mkdir(parents=True)
    (root / "data" / "duckdb-memory-config-templates.yaml").write_text(PROFILES)
    (root / "data" / "resource-thresholds-config.yaml").write_text(THRESHOLDS)
    (root / "config").mkdir()
    (root / "config" / "feature-flags.yaml").write_text("features:\n  duckdb_analytics:\n    enabled: true\n")
    (root / "data" / "duckdb-cli-integration-config.yaml").write_text("cli_integration:\n  commands: {}\n")
    loaded = load_pack(root, env={})
    assert loaded.ok, loaded.diagnostics
    return loaded


def test_auto_sizes_from_the_cgroup_limit(pack: Pack) -> None:
    s = resolve_settings(pack, machine(available=10 * GiB), env={})
    assert s.profile == "auto" and s.sources["profile"] == "auto"
    # 50% of the 4 GiB cgroup limit (not of 16 GiB) is 2 GiB, but a job starts at its share of the
    # machine budget: 80% of 4 GiB over 8 concurrent jobs (8 CPUs)
    assert s.memory_budget_bytes == int(4 * GiB * 0.8) // 8
    assert s.duckdb_memory_limit_bytes == duckdb_limit_for(s.memory_budget_bytes)
    assert "cgroup v2 limit" in s.sources["memory_budget_bytes"]
    assert "a job's share of the machine budget" in s.sources["memory_budget_bytes"]
    # threads are sized for the 2 GiB a job running alone grows to: 1.6 GiB of DuckDB limit allows
    # 6 threads of 256 MiB, fewer than the 8 CPUs
    assert s.threads == duckdb_limit_for(2 * GiB) // MIN_THREAD_MEMORY_BYTES == 6
    assert s.preserve_insertion_order is False and s.max_rows == 10_000 and s.database_path == ":memory:"
    assert s.timeout_ms == 120000 and "resource-thresholds-config.yaml:9" in s.sources["timeout_ms"]
    assert s.thresholds.duckdb_memory_warning == 0.60
    assert s.temp_directory.endswith("/spill") and s.max_temp_directory_size_bytes >= 0
    assert str(Path.cwd()) in s.allowed_directories and s.temp_directory in s.allowed_directories


def test_auto_budget_never_above_what_is_free(pack: Pack) -> None:
    s = resolve_settings(pack, machine(available=1 * GiB), env={"BMAD_DATA_MAX_CONCURRENT_JOBS": "1"})
    assert s.memory_budget_bytes == int(1 * GiB * 0.9)
    assert "available memory" in s.sources["memory_budget_bytes"]


def test_profile_values_cite_file_and_line(pack: Pack) -> None:
    s = resolve_settings(pack, machine(), profile="small", env={})
    src = s.sources["memory_budget_bytes"]
    assert src.startswith("file:") and src.endswith("duckdb-memory-config-templates.yaml:3 (profile small)")
    assert s.memory_budget_bytes == 700 * MiB and s.threads == 5
    assert s.preserve_insertion_order is True and s.log_level == "warning"
    assert s.temp_directory == str(Path(pack.config_dir).parent / "spill-here")
    assert s.thresholds.duckdb_memory_warning == 0.65 and s.thresholds.duckdb_memory_info == 0.40
    assert any(d.path == "threads" for d in s.diagnostics)  # 490 MiB over 5 threads is under 256 MiB each


def test_profile_larger_than_the_machine_is_clamped(pack: Pack) -> None:
    s = resolve_settings(pack, machine(), profile="huge", env={})
    assert s.memory_budget_bytes == s.machine_budget_bytes == int(4 * GiB * 0.8)
    assert "clamped to the machine budget" in s.sources["memory_budget_bytes"]
    (warn,) = [d for d in s.diagnostics if d.path == "memory_limit"]
    assert warn.severity == "warning" and warn.line == 12
    assert warn.file.endswith("duckdb-memory-config-templates.yaml")
    # a machine budget of all the memory: the 90% cap binds first
    whole = resolve_settings(pack, machine(), profile="huge", env={"BMAD_DATA_MACHINE_BUDGET": "4GiB"})
    assert whole.memory_budget_bytes == int(4 * GiB * MAX_BUDGET_SHARE)
    assert "clamped to 90% of effective memory" in whole.sources["memory_budget_bytes"]


def test_a_request_for_more_than_the_machine_can_give_is_refused(pack: Pack) -> None:
    """`--memory-limit 1TB` used to run at a ceiling above the machine budget; now it says the most."""
    with pytest.raises(InvalidParams) as err:
        resolve_settings(pack, machine(), env={}, request={"memory_limit": "1TB"})
    assert "above the machine budget 3.20 GiB" in str(err.value)
    assert "at most 3276MiB" in err.value.hint
    most = resolve_settings(pack, machine(), env={}, request={"memory_limit": "3276MiB"})
    assert most.memory_budget_bytes == 3276 * MiB  # the figure the hint offers is accepted
    with pytest.raises(InvalidParams) as err:
        resolve_settings(pack, machine(cpus=2), env={}, request={"threads": 64})
    assert "threads 64 is more than the 2 usable CPUs" in str(err.value) and "at most 2" in err.value.hint
    with pytest.raises(InvalidParams) as err:
        resolve_settings(pack, machine(), env={}, overrides={"threads": 9})
    assert err.value.details["layer"] == "overrides"


def test_files_and_environment_asking_too_much_are_clamped_and_say_so(pack: Pack) -> None:
    s = resolve_settings(pack, machine(cpus=2), profile="small", env={})  # small asks for 5 threads
    assert s.threads == 2 and "clamped to the 2 usable CPUs: asked for 5" in s.sources["threads"]
    (warn,) = [d for d in s.diagnostics if d.path == "threads" and "usable CPUs" in d.message]
    assert warn.file.endswith("duckdb-memory-config-templates.yaml") and warn.line is not None
    env = resolve_settings(pack, machine(), env={"BMAD_DATA_MEMORY_LIMIT": "1TB", "BMAD_DATA_THREADS": "64"})
    assert env.memory_budget_bytes == env.machine_budget_bytes and env.threads == 8
    assert env.sources["threads"].startswith("env:BMAD_DATA_THREADS; clamped")


def test_the_machine_budget_sizes_the_auto_budget(pack: Pack) -> None:
    """BMAD_DATA_MACHINE_BUDGET used to change nothing that config.get showed."""
    env = {"BMAD_DATA_MACHINE_BUDGET": "1GiB", "BMAD_DATA_MAX_CONCURRENT_JOBS": "2"}
    s = resolve_settings(pack, machine(), env=env)
    assert s.memory_budget_bytes == 512 * MiB
    assert s.duckdb_memory_limit_bytes == duckdb_limit_for(512 * MiB)


def test_percent_limit_is_a_share_of_effective_memory(pack: Pack) -> None:
    s = resolve_settings(pack, machine(), profile="share", env={})
    assert s.memory_budget_bytes == GiB and "25% of effective memory" in s.sources["memory_budget_bytes"]


def test_disabled_spilling(pack: Pack) -> None:
    s = resolve_settings(pack, machine(), profile="nospill", env={})
    assert s.temp_directory == "" and s.max_temp_directory_size_bytes == 0


@pytest.mark.parametrize(("text", "expected"), [("1GB", 10**9), ("1GiB", GiB), (1500000000, 1500000000)])
def test_sizes_decimal_and_binary(pack: Pack, text: Any, expected: int) -> None:
    s = resolve_settings(pack, machine(), env={}, request={"memory_limit": text})
    assert s.memory_budget_bytes == expected and s.sources["memory_budget_bytes"] == "request"


def test_zero_and_false_are_values_not_absence(pack: Pack) -> None:
    s = resolve_settings(
        pack,
        machine(),
        profile="small",
        env={},
        request={"preserve_insertion_order": False, "max_rows": 0, "timeout_ms": 0},
    )
    assert s.preserve_insertion_order is False and s.sources["preserve_insertion_order"] == "request"
    assert s.max_rows == 0 and s.timeout_ms == 0


def test_unknown_and_invalid_request_keys(pack: Pack) -> None:
    expected = "unknown setting 'memroy_limit' in request; did you mean 'memory_limit'"
    with pytest.raises(InvalidParams, match=expected):
        resolve_settings(pack, machine(), env={}, request={"memroy_limit": "1GB"})
    with pytest.raises(InvalidParams, match="invalid value for 'memory_limit' in overrides") as info:
        resolve_settings(pack, machine(), env={}, overrides={"memory_limit": "lots"})
    assert info.value.details["key"] == "memory_limit"
    with pytest.raises(InvalidParams, match="'threads'"):
        resolve_settings(pack, machine(), env={}, request={"threads": 0})
    with pytest.raises(InvalidParams, match="'threads'"):
        resolve_settings(pack, machine(), env={}, request={"threads": True})


def test_unknown_profile_suggests(pack: Pack) -> None:
    expected = r"unknown profile 'prodution_small'; did you mean 'production_small'\?"
    with pytest.raises(ConfigInvalid, match=expected):
        resolve_settings(pack, machine(), profile="prodution_small", env={})


def test_bad_environment_variable(pack: Pack) -> None:
    with pytest.raises(ConfigInvalid, match="BMAD_DATA_THREADS='many'"):
        resolve_settings(pack, machine(), env={"BMAD_DATA_THREADS": "many"})


def test_profile_selection_precedence(pack: Pack) -> None:
    s = resolve_settings(
        pack,
        machine(),
        profile="huge",
        overrides={"profile": "share"},
        env={"BMAD_DATA_PROFILE": "small"},
        request={},
    )
    assert s.profile == "small" and s.sources["profile"] == "env:BMAD_DATA_PROFILE"
    s = resolve_settings(
        pack,
        machine(),
        profile="huge",
        overrides={"profile": "share"},
        env={},
        request={"profile": "nospill"},
    )
    assert s.profile == "nospill" and s.sources["profile"] == "request"


LAYER_VALUES = {
    "request": ({"threads": 4, "memory_limit": "1GiB"}, 4, GiB),
    "env": ({"BMAD_DATA_THREADS": "3", "BMAD_DATA_MEMORY_LIMIT": "900MiB"}, 3, 900 * MiB),
    "overrides": ({"threads": 2, "memory_limit": 800 * MiB}, 2, 800 * MiB),
    "profile": ({}, 5, 700 * MiB),
}


@settings(max_examples=60, deadline=None)
@given(present=st.sets(st.sampled_from(sorted(LAYER_VALUES))))
def test_highest_layer_present_wins_and_is_named(pack: Pack, present: set[str]) -> None:
    kwargs: dict[str, Any] = {"env": {}}
    if "request" in present:
        kwargs["request"] = LAYER_VALUES["request"][0]
    if "env" in present:
        kwargs["env"] = LAYER_VALUES["env"][0]
    if "overrides" in present:
        kwargs["overrides"] = LAYER_VALUES["overrides"][0]
    if "profile" in present:
        kwargs["profile"] = "small"
    s = resolve_settings(pack, machine(cpus=8), **kwargs)
    winner = next((layer for layer in ("request", "env", "overrides", "profile") if layer in present), None)
    if winner is None:
        assert s.sources["threads"].startswith("auto") and s.sources["memory_budget_bytes"].startswith("auto")
        return
    _, threads, budget = LAYER_VALUES[winner]
    assert (s.threads, s.memory_budget_bytes) == (threads, budget)
    expected = {
        "request": ("request", "request"),
        "env": ("env:BMAD_DATA_THREADS", "env:BMAD_DATA_MEMORY_LIMIT"),
        "overrides": ("overrides", "overrides"),
    }.get(winner)
    if expected is None:
        assert "(profile small)" in s.sources["threads"]
        assert "(profile small)" in s.sources["memory_budget_bytes"]
    else:
        assert (s.sources["threads"], s.sources["memory_budget_bytes"]) == expected


def test_on_this_machine_with_the_repo_pack(tmp_path: Path) -> None:
    res = detect_resources(tmp_path)
    repo_pack = load_pack(REPO / "expansion-pack", env={})
    s = resolve_settings(repo_pack, res, env={"BMAD_DATA_STATE_DIR": str(tmp_path / "state")})
    assert 0 < s.duckdb_memory_limit_bytes < s.memory_budget_bytes <= res.total_memory_bytes
    assert 1 <= s.threads <= res.usable_cpus
    assert s.temp_directory == str(tmp_path / "state" / "spill")
    assert set(s.sources) >= {"memory_budget_bytes", "threads", "temp_directory", "timeout_ms", "thresholds"}
    for name in repo_pack.profile_names():
        resolve_settings(repo_pack, res, profile=name, env={})


def test_original_container_profile_uses_the_env_share(tmp_path: Path) -> None:
    originals = load_pack(ORIGINALS, env={"CONTAINER_MEMORY_LIMIT_PCT": "40"})
    s = resolve_settings(originals, machine(), profile="container", env={})
    assert s.memory_budget_bytes == int(4 * GiB * 0.40)
    assert "(profile container) (40% of effective memory" in s.sources["memory_budget_bytes"]


def test_bad_settings_hints_say_what_to_send() -> None:
    from sidecar.config.user_settings import SETTING_EXAMPLES, SETTING_PARSERS, parse_user_settings

    assert set(SETTING_EXAMPLES) == set(SETTING_PARSERS)  # every setting has an example for its hint
    with pytest.raises(InvalidParams) as err:
        parse_user_settings({"memory": "4GB"}, "request")
    assert "memory_limit" in err.value.hint and "threads" in err.value.hint
    with pytest.raises(InvalidParams) as err:
        parse_user_settings({"threads": "many"}, "request")
    assert err.value.hint == "Give threads as a whole number of at least 1, such as 2."


def test_bad_environment_and_unknown_profile_hints_name_the_fix(pack: Pack) -> None:
    with pytest.raises(ConfigInvalid) as err:
        resolve_settings(pack, machine(), env={"BMAD_DATA_MEMORY_LIMIT": "lots"})
    assert err.value.hint.startswith("Set BMAD_DATA_MEMORY_LIMIT to a size with a unit such as '4GB'")
    with pytest.raises(ConfigInvalid) as err:
        resolve_settings(pack, machine(), profile="smal", env={})
    assert "did you mean 'small'" in str(err.value)
    assert pack.paths["memory_templates"] in err.value.hint and "add a profile named 'smal'" in err.value.hint


def test_a_threshold_crossing_after_merging_names_a_real_file_and_line(tmp_path: Path) -> None:
    root = tmp_path / "pack"
    (root / "data").mkdir(parents=True)
    (root / "config").mkdir()
    (root / "config" / "feature-flags.yaml").write_text("features:\n  duckdb_analytics:\n    enabled: true\n")
    (root / "data" / "duckdb-cli-integration-config.yaml").write_text("cli_integration:\n  commands: {}\n")
    (root / "data" / "resource-thresholds-config.yaml").write_text(THRESHOLDS)  # critical 80, emergency 90
    templates = root / "data" / "duckdb-memory-config-templates.yaml"
    templates.write_text(
        "hot:\n  monitoring:\n    memory_threshold_warning: 70\n    memory_threshold_critical: 95\n"
    )
    s = resolve_settings(load_pack(root, env={}), machine(), profile="hot", env={})
    (warn,) = [d for d in s.diagnostics if d.path == "thresholds.duckdb_memory_emergency"]
    # `file` used to be the source text "file:...:3 (profile hot monitoring)", with no line
    assert warn.file == str(templates) and warn.line == 3, warn
