"""dataset.analyze through the sidecar: real files, real pipes."""

from __future__ import annotations

import duckdb
import pytest

from sidecar.client import RpcError


def test_analyze_a_parquet_file(sidecar, data_dir):
    path = data_dir / "orders.parquet"
    duckdb.execute(
        f"COPY (SELECT range AS id, CASE WHEN range % 10 = 0 THEN NULL ELSE range * 1.5 END AS amount "
        f"FROM range(50000)) TO '{path}'"
    )
    result = sidecar.request("dataset.analyze", {"path": str(path), "progress_token": 1})
    assert (
        result["format"] == "parquet" and result["row_count"] == 50000 and result["row_count_exact"] is True
    )
    amount = {c["name"]: c for c in result["columns"]}["amount"]
    assert amount["null_count"] == 5000 and amount["null_count_exact"] is True
    assert amount["max"] == "74998.5"  # a DECIMAL, as query.run encodes it
    assert any(n.get("method") == "$/progress" for n in sidecar.notifications)


def test_analyze_errors_are_clear(sidecar, data_dir, tmp_path):
    with pytest.raises(RpcError) as err:
        sidecar.request("dataset.analyze", {"path": str(data_dir / "missing.csv")})
    assert err.value.code == "INPUT_ERROR" and err.value.hint
    (tmp_path / "outside.csv").write_text("a\n1\n")
    with pytest.raises(RpcError) as err:
        sidecar.request("dataset.analyze", {"path": str(tmp_path / "outside.csv")})
    assert err.value.code == "ACCESS_DENIED"
    assert "position" not in err.value.data["details"]  # positions in the sidecar's own SQL mean nothing
    with pytest.raises(RpcError) as err:
        sidecar.request("dataset.analyze", {"path": str(data_dir), "sample_rows": 0})
    assert err.value.code == "INVALID_PARAMS"
