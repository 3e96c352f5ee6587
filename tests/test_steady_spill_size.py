"""The auto spill size does not follow every file written on the disk: a request that carries
settings resolves to the same DuckDB settings as its database's, and so shares it instead of
taking it exclusively and setting every DuckDB setting twice (issue 15)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.client import SidecarProcess
from sidecar.config import load_pack, resolve_settings
from sidecar.config.settings import GiB, MiB, steady_spill_size
from sidecar.resources import detect_resources


def test_a_few_megabytes_written_do_not_change_the_auto_spill_size(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pack = load_pack(tmp_path / "no-config")
    resources = detect_resources(tmp_path)
    free = [50 * GiB + 700 * MiB]
    monkeypatch.setattr("sidecar.config.resolve.disk_space", lambda path: (100 * GiB, free[0]))
    first = resolve_settings(pack, resources, env={}).max_temp_directory_size_bytes
    free[0] -= 5 * MiB  # another process wrote a file
    assert resolve_settings(pack, resources, env={}).max_temp_directory_size_bytes == first
    assert first == steady_spill_size(50 * GiB + 700 * MiB - 10 * GiB) == 40 * GiB
    free[0] -= 2 * GiB  # a real change is still seen
    assert resolve_settings(pack, resources, env={}).max_temp_directory_size_bytes == 38 * GiB


def test_at_a_steps_edge_the_auto_spill_size_keeps_the_one_in_force(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """CI found it: the disk's room sat 1 MiB above a whole GiB, other tests wrote a few files, and a
    request's spill size came out a GiB below its database's."""
    pack = load_pack(tmp_path / "no-config")
    resources = detect_resources(tmp_path)
    free = [28 * GiB + 1 * MiB + 10 * GiB]  # room beyond the 10 GiB reserve: 28 GiB + 1 MiB
    monkeypatch.setattr("sidecar.config.resolve.disk_space", lambda path: (100 * GiB, free[0]))
    first = resolve_settings(pack, resources, env={})
    assert first.max_temp_directory_size_bytes == 28 * GiB
    free[0] -= 5 * MiB
    assert resolve_settings(pack, resources, env={}).max_temp_directory_size_bytes == 27 * GiB  # no memory
    again = resolve_settings(pack, resources, env={}, previous=first)
    assert again.max_temp_directory_size_bytes == 28 * GiB
    elsewhere = resolve_settings(
        pack, resources, env={}, request={"temp_directory": str(tmp_path / "other")}, previous=first
    )
    assert elsewhere.max_temp_directory_size_bytes == 27 * GiB  # another directory owes nothing to it
    free[0] += 2 * GiB + 5 * MiB  # room grows by two steps: the new size is taken
    assert resolve_settings(pack, resources, env={}, previous=first).max_temp_directory_size_bytes == 30 * GiB
    free[0] -= 4 * GiB  # room falls more than a step below the size in force: the size falls with it
    assert resolve_settings(pack, resources, env={}, previous=first).max_temp_directory_size_bytes == 26 * GiB


@pytest.mark.timeout(60)
def test_a_request_with_settings_runs_with_the_databases_own(sidecar: SidecarProcess, data_dir: Path) -> None:
    sidecar.request("initialize", {"client": {"name": "test"}})
    own = sidecar.request("query.run", {"sql": "SELECT 42"})["stats"]["settings"]
    threads = int(own["threads"])
    (data_dir / "churn.bin").write_bytes(b"x" * (3 * 1024 * 1024))  # the disk's free space moves
    asked = sidecar.request("query.run", {"sql": "SELECT 42", "settings": {"threads": threads}})
    assert asked["stats"]["settings"] == own
