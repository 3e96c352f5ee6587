"""Config through the sidecar: flags gate methods, profiles and overrides, validation, hot reload."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from sidecar.client import REPO_ROOT, RpcError

ORIGINALS = Path(__file__).resolve().parent / "fixtures" / "original-pack"  # copied from ../shared/reference
FLAGS = "config/feature-flags.yaml"


def set_flag(pack: Path, name: str, enabled: bool) -> int:
    """Flip a flag in the pack's flags file; returns the line of its `enabled:`."""
    path = pack / FLAGS
    lines = path.read_text().splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.strip() == f"{name}:")
    at = next(i for i in range(start, len(lines)) if lines[i].strip().startswith("enabled:"))
    lines[at] = lines[at].split("enabled:")[0] + f"enabled: {'true' if enabled else 'false'}\n"
    path.write_text("".join(lines))
    return at + 1


def test_a_disabled_flag_names_itself_and_the_file_to_edit(start_sidecar, pack_dir):
    line = set_flag(pack_dir, "duckdb_analytics", False)
    sc = start_sidecar()
    with pytest.raises(RpcError) as err:
        sc.request("query.run", {"sql": "SELECT 1"})
    assert err.value.code == "FEATURE_DISABLED"
    details = err.value.data["details"]
    assert details["flag"] == "duckdb_analytics"
    assert details["file"].endswith(FLAGS) and details["line"] == line  # the very line to edit
    assert "duckdb_analytics" in str(err.value)
    assert sc.request("system.resources")["usable_cpus"] >= 1  # non-data methods still serve
    flags = sc.request("config.get")["flags"]
    assert flags["duckdb_analytics"]["enabled"] is False
    assert flags["duckdb_monitoring"]["enabled"] is False  # its dependency is off, and it says why
    assert "duckdb_analytics" in flags["duckdb_monitoring"]["reason"]


def test_initialize_applies_profile_and_overrides_with_sources(sidecar):
    init = sidecar.request("initialize", {"profile": "testing", "overrides": {"threads": 1}})
    settings = init["settings"]
    assert settings["profile"] == "testing"
    assert settings["threads"] == 1 and settings["sources"]["threads"] == "overrides"
    assert "profile testing" in settings["sources"]["memory_budget_bytes"]
    assert settings["duckdb_memory_limit_bytes"] < settings["memory_budget_bytes"]
    assert "query.run" in init["methods"] and "$/cancelRequest" in init["methods"]
    used = sidecar.request("query.run", {"sql": "SELECT current_setting('threads') AS t"})
    assert used["rows"] == [[1]]
    request_level = sidecar.request("query.run", {"sql": "SELECT 1", "settings": {"threads": 2}})
    assert request_level["stats"]["settings"]["threads"] == "2"


def test_unknown_profile_suggests_the_closest(sidecar):
    with pytest.raises(RpcError) as err:
        sidecar.request("initialize", {"profile": "testng"})
    assert err.value.code == "CONFIG_INVALID"
    assert "did you mean 'testing'" in str(err.value)
    assert sidecar.request("query.run", {"sql": "SELECT 1 AS ok"})["rows"] == [[1]]


def test_bad_request_settings_are_invalid_params(sidecar):
    for settings, needle in [
        ({"memory_limit": "lots"}, "memory_limit"),
        ({"thread": 2}, "did you mean 'threads'"),
        ({"temp_directory": "/tmp"}, "temp_directory"),
    ]:
        with pytest.raises(RpcError) as err:
            sidecar.request("query.run", {"sql": "SELECT 1", "settings": settings})
        assert err.value.code == "INVALID_PARAMS", settings
        assert needle in str(err.value)


def test_validate_the_original_pack_lists_warnings_with_file_and_line(sidecar, tmp_path):
    pack = tmp_path / "original"
    shutil.copytree(ORIGINALS, pack)
    result = sidecar.request("config.validate", {"path": str(pack)})
    assert result["ok"] is True and result["warnings"] > 0
    cache = [d for d in result["diagnostics"] if d["path"].endswith("duckdb_config.cache_size")]
    assert cache and all(
        d["file"].endswith("duckdb-memory-config-templates.yaml") and d["line"] for d in cache
    )
    assert any("not a DuckDB setting" in d["message"] or "pages" in d["message"] for d in cache)


def test_validate_reports_bad_yaml_with_line_and_column(sidecar, tmp_path, pack_dir):
    (pack_dir / FLAGS).write_text("features:\n  duckdb_analytics:\n    enabled: [true\n")
    result = sidecar.request("config.validate", {"path": str(pack_dir)})
    assert result["ok"] is False
    (err,) = [d for d in result["diagnostics"] if d["severity"] == "error"]
    assert err["file"].endswith(FLAGS) and err["line"] >= 3 and err["column"]


def wait_note(sc, method, timeout=10.0):
    return sc.wait_for(lambda n: n.get("method") == method, timeout=timeout)


def test_hot_reload_applies_good_edits_and_keeps_the_last_good_config(sidecar, pack_dir):
    sidecar.request("query.run", {"sql": "SELECT 1"})
    time.sleep(0.5)  # let the watcher settle
    set_flag(pack_dir, "duckdb_analytics", False)
    changed = wait_note(sidecar, "config/changed")
    assert changed["params"]["config_dir"] == str(pack_dir)
    with pytest.raises(RpcError) as err:
        sidecar.request("query.run", {"sql": "SELECT 1"})
    assert err.value.code == "FEATURE_DISABLED"

    (pack_dir / FLAGS).write_text("features:\n  duckdb_analytics: {enabled: maybe\n")
    broken = wait_note(sidecar, "config/error")
    assert broken["params"]["diagnostics"][0]["file"].endswith(FLAGS)
    with pytest.raises(RpcError) as err:  # the last good config (analytics off) stays in force
        sidecar.request("query.run", {"sql": "SELECT 1"})
    assert err.value.code == "FEATURE_DISABLED"
    with pytest.raises(RpcError) as err:
        sidecar.request("config.reload")
    assert err.value.code == "CONFIG_INVALID"
    assert err.value.data["details"]["diagnostics"]

    shutil.copy(REPO_ROOT / "expansion-pack" / FLAGS, pack_dir / FLAGS)
    deadline = time.monotonic() + 10
    while True:
        try:
            assert sidecar.request("query.run", {"sql": "SELECT 1 AS ok"})["rows"] == [[1]]
            break
        except RpcError:
            assert time.monotonic() < deadline, "the repaired config was never applied"
            time.sleep(0.1)
