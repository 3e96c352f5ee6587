"""dataset.partition over stdio: Hive layouts in bounded memory, nothing half-visible, resumable."""

from __future__ import annotations

import duckdb
import pytest

from sidecar.client import RpcError


@pytest.fixture
def events(data_dir):
    raw = data_dir / "raw"
    raw.mkdir()
    for day in range(3):
        duckdb.execute(
            f"COPY (SELECT range AS id, ['eu', 'us', 'apac'][1 + range % 3] AS region, {day} AS day, "
            f"hash(range) % 1000 AS v FROM range(20000)) TO '{raw / f'day{day}.csv'}'"
        )
    return raw


def test_by_columns_gives_a_hive_layout_with_every_row(sidecar, data_dir, events):
    out = data_dir / "lake"
    result = sidecar.request("dataset.partition", {"input": str(events), "output_dir": str(out), "by": ["region"]})
    assert result["inputs"] == 3 and result["written"] == 3 and result["rows"] == 60000
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["region=apac", "region=eu", "region=us"]
    counted = duckdb.execute(
        f"SELECT region, count(*) FROM read_parquet('{out}/*/*.parquet', hive_partitioning = true) GROUP BY 1 ORDER BY 1"
    ).fetchall()
    expected = duckdb.execute(f"SELECT region, count(*) FROM '{events}/*.csv' GROUP BY 1 ORDER BY 1").fetchall()
    assert counted == expected and sum(n for _, n in counted) == 60000


def test_hash_buckets_and_rows_per_file(sidecar, data_dir, events):
    hashed = sidecar.request("dataset.partition", {"input": str(events), "output_dir": str(data_dir / "h"),
                                                    "hash_by": ["id"], "buckets": 4})
    assert len([p for p in (data_dir / "h").iterdir() if p.name.startswith("bucket=")]) == 4
    total = duckdb.execute(f"SELECT count(*) FROM read_parquet('{data_dir / 'h'}/*/*.parquet')").fetchall()
    assert total == [(hashed["rows"],)] == [(60000,)]
    sized = sidecar.request("dataset.partition", {"input": str(events / "day0.csv"), "output_dir": str(data_dir / "s"),
                                                   "rows_per_file": 5000})
    assert sized["files"] >= 3 and sized["rows"] == 20000


def test_a_rerun_resumes_and_bad_requests_are_clear(sidecar, data_dir, events):
    out = data_dir / "lake"
    sidecar.request("dataset.partition", {"input": str(events), "output_dir": str(out), "by": ["day"]})
    again = sidecar.request("dataset.partition", {"input": str(events), "output_dir": str(out), "by": ["day"]})
    assert again["written"] == 0 and again["skipped"] == 3 and again["files"] == 3
    for params, code in [
        ({"by": ["day"], "hash_by": ["id"]}, "INVALID_PARAMS"),
        ({}, "INVALID_PARAMS"),
        ({"by": ["day; DROP TABLE x"]}, "INVALID_PARAMS"),
        ({"by": ["nope"]}, "SQL_ERROR"),
    ]:
        with pytest.raises(RpcError) as err:
            sidecar.request("dataset.partition", {"input": str(events), "output_dir": str(data_dir / "bad"), **params})
        assert err.value.code == code, params
    assert not [p for p in (data_dir / "bad").glob(".bmad-staging-*")]
    (data_dir / "a-file").write_text("x")
    with pytest.raises(RpcError) as err:
        sidecar.request("dataset.partition", {"input": str(events), "output_dir": str(data_dir / "a-file"), "by": ["day"]})
    assert err.value.code == "INPUT_ERROR"
