"""Both sides of a benchmark run DuckDB with the same settings that matter to speed: threads,
preserve_insertion_order (the sidecar's `auto` false; DuckDB's own default is true), and, asked
for one, the same value; each side reports what DuckDB itself says is in force (issue 15)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.bench.suite.plain import run
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


def test_plain_duckdb_times_its_second_run_of_the_question(tmp_path: Path) -> None:
    """Like the sidecar's worker after the warm-up, the plain process has run the question once
    before the timed run: a statement that cannot run twice shows it."""
    spec = {"sql": "CREATE TABLE once AS SELECT 1 AS x", "threads": 1, "memory_limit": None,
            "temp_directory": str(tmp_path / "spill")}  # fmt: skip
    assert run({**spec, "warm": False})["status"] == "ok"
    twice = run(spec)
    assert twice["status"] == "SQL_ERROR" and "already exists" in twice["error"]
