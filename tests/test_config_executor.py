"""`execution.executor` in a profile feeds the `executor` setting, with its `file:path:line (profile)`
source; a value that is not local, ray or ray:<address> is an error at its file and line."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from sidecar.client import SidecarProcess
from sidecar.config import load_pack, resolve_settings
from sidecar.resources import detect_resources

TEMPLATES = "data/duckdb-memory-config-templates.yaml"
PROFILE = "\nto_ray:\n  duckdb_config:\n    threads: 1\n  execution:\n    executor: {value}\n"


def _add_profile(pack_dir: Path, value: str) -> int:
    """Append a profile `to_ray` whose execution.executor is `value`; the line of that key."""
    path = pack_dir / TEMPLATES
    path.write_text(path.read_text() + PROFILE.format(value=value))
    return len(path.read_text().splitlines())  # the profile's last line


def test_a_profiles_executor_is_the_setting_with_its_line(
    pack_dir: Path, start_sidecar: Callable[..., SidecarProcess]
) -> None:
    line = _add_profile(pack_dir, "ray")
    sidecar = start_sidecar(BMAD_DATA_PROFILE="to_ray")
    settings = sidecar.request("config.get")["settings"]
    assert settings["executor"] == "ray"
    assert settings["sources"]["executor"] == f"file:{pack_dir / TEMPLATES}:{line} (profile to_ray)"
    sidecar.close()


def test_the_environment_beats_the_profile_and_an_address_is_kept(pack_dir: Path, tmp_path: Path) -> None:
    _add_profile(pack_dir, "ray:head:6379")
    pack = load_pack(pack_dir, env={})
    assert pack.ok, pack.errors
    resources = detect_resources(tmp_path)
    profile = resolve_settings(pack, resources, profile="to_ray", env={})
    assert profile.executor == "ray:head:6379" and profile.sources["executor"].endswith("(profile to_ray)")
    env = resolve_settings(pack, resources, profile="to_ray", env={"BMAD_DATA_EXECUTOR": "local"})
    assert (env.executor, env.sources["executor"]) == ("local", "env:BMAD_DATA_EXECUTOR")
    auto = resolve_settings(pack, resources, env={})
    assert auto.executor == "local" and auto.sources["executor"].startswith("auto")


def test_a_bad_executor_is_refused_at_its_file_and_line(pack_dir: Path) -> None:
    line = _add_profile(pack_dir, "rya")
    errors = load_pack(pack_dir, env={}).errors
    assert len(errors) == 1, errors
    error = errors[0]
    assert error.file.endswith(TEMPLATES) and error.line == line and error.column == 15
    assert error.path == "to_ray.execution.executor"
    assert "expected local, ray, or ray:<address>; did you mean 'ray'?" in error.message
