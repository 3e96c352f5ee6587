"""Both sides of a benchmark run DuckDB with the same settings that matter to speed: threads,
preserve_insertion_order (the sidecar's `auto` false; DuckDB's own default is true), and, asked
for one, the same value; each side reports what DuckDB itself says is in force (issue 15)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.bench.suite.runner import RunContext, measure_side
from sidecar.bench.suite.sides import fingerprint
from sidecar.client import SidecarProcess

SETTINGS_SQL = "SELECT current_setting('threads') AS t, current_setting('preserve_insertion_order') AS p"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("preserve", [False, True])
def test_both_sides_run_with_the_same_duckdb_settings(
    sidecar: SidecarProcess, tmp_path: Path, preserve: bool
) -> None:
    sidecar.request("initialize", {"client": {"name": "test"}})
    ctx = RunContext(state_directory=tmp_path / "state", temp_directory=tmp_path / "temp", threads=1,
                     budget_bytes=None, extra_settings={}, preserve_insertion_order=preserve)  # fmt: skip
    ours = measure_side(ctx, sidecar, "sidecar", SETTINGS_SQL, None)
    plain = measure_side(ctx, sidecar, "plain", SETTINGS_SQL, None)
    assert ours.status == plain.status == "ok", (ours.error, plain.error)
    assert ours.fingerprint == plain.fingerprint == fingerprint([[1, preserve]])
