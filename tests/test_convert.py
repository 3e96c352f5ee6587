"""dataset.convert over stdio: CSV/JSON to Parquet, one output per input, atomic and resumable."""

from __future__ import annotations

import duckdb
import pytest

from sidecar.client import RpcError


def test_a_csv_becomes_parquet_with_the_same_rows(sidecar, data_dir):
    source = data_dir / "orders.csv"
    duckdb.execute(f"COPY (SELECT range AS id, 'r' || range % 5 AS region FROM range(50000)) TO '{source}'")
    result = sidecar.request("dataset.convert", {"input": str(source), "output": str(data_dir / "orders.parquet")})
    assert result["converted"] == 1 and result["rows"] == 50000 and result["skipped"] == 0
    out = result["files"][0]["output"]
    assert duckdb.execute(f"SELECT count(*), count(DISTINCT region) FROM '{out}'").fetchall() == [(50000, 5)]


def test_a_directory_converts_file_by_file_and_a_rerun_resumes(sidecar, data_dir):
    raw = data_dir / "raw" / "2024"
    raw.mkdir(parents=True)
    for month in range(1, 4):
        duckdb.execute(f"COPY (SELECT range AS id, {month} AS month FROM range(1000)) TO '{raw / f'm{month}.csv'}'")
    duckdb.execute(f"COPY (SELECT 1 AS id, 4 AS month) TO '{raw / 'm4.json'}'")
    target = data_dir / "lake"
    first = sidecar.request("dataset.convert", {"input": str(data_dir / "raw"), "output": str(target)})
    assert first["converted"] == 4 and first["rows"] == 3001
    (target / "m2.parquet").unlink()  # as if the run had been killed before this file
    again = sidecar.request("dataset.convert", {"input": str(data_dir / "raw"), "output": str(target)})
    assert again["converted"] == 1 and again["skipped"] == 3
    assert [f["input"].rsplit("/", 1)[1] for f in again["files"] if not f["skipped"]] == ["m2.csv"]
    assert duckdb.execute(f"SELECT count(*) FROM '{target}/*.parquet'").fetchall() == [(3001,)]


def test_convert_errors_are_clear(sidecar, data_dir, tmp_path):
    with pytest.raises(RpcError) as err:
        sidecar.request("dataset.convert", {"input": str(data_dir / "nope.csv"), "output": str(data_dir / "x.parquet")})
    assert err.value.code == "INPUT_ERROR"
    (tmp_path / "outside.csv").write_text("a\n1\n")
    with pytest.raises(RpcError) as err:
        sidecar.request("dataset.convert", {"input": str(tmp_path / "outside.csv"), "output": str(data_dir / "x.parquet")})
    assert err.value.code == "ACCESS_DENIED"
    (data_dir / "broken.parquet").write_bytes(b"PAR1 not really parquet")
    with pytest.raises(RpcError) as err:
        sidecar.request("dataset.convert", {"input": str(data_dir / "broken.parquet"), "output": str(data_dir / "b.parquet")})
    assert err.value.code == "INPUT_ERROR"
    assert not (data_dir / "b.parquet").exists()  # nothing partial became visible
