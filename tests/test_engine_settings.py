"""Resolved settings reach DuckDB: what config.get reports is what the worker's instance runs with."""

from __future__ import annotations

from pathlib import Path

from sidecar.engine.database import Database, EngineSettings

MiB = 1024**2


def test_checkpoint_threshold_reaches_the_instance(tmp_path: Path) -> None:
    settings = EngineSettings(
        memory_limit_bytes=256 * MiB,
        threads=1,
        temp_directory=str(tmp_path / "spill"),
        max_temp_directory_size_bytes=64 * MiB,
        preserve_insertion_order=False,
        allowed_directories=(str(tmp_path),),
        state_directory=str(tmp_path / "state"),
        checkpoint_threshold_bytes=32 * MiB,
    )
    db = Database(str(tmp_path / "w.duckdb"), settings)
    try:
        cursor = db.acquire_cursor()
        assert cursor.execute("SELECT current_setting('checkpoint_threshold')").fetchone() == ("32.0 MiB",)
    finally:
        db.close()


def test_the_configured_checkpoint_threshold_is_the_one_a_query_runs_with(start_sidecar) -> None:
    sc = start_sidecar(BMAD_DATA_CHECKPOINT_THRESHOLD="48MiB")
    configured = sc.request("config.get")["settings"]["checkpoint_threshold_bytes"]
    result = sc.request("query.run", {"sql": "SELECT current_setting('checkpoint_threshold') AS t"})
    assert configured == 48 * MiB and result["rows"] == [["48.0 MiB"]]
    assert result["stats"]["settings"]["checkpoint_threshold"] == f"{48 * MiB}B"
    assert sc.close() == 0
