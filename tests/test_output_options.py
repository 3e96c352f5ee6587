"""Output options over real stdio: Parquet's codec, zstd level and row group size reach the file
DuckDB writes (whole, and joined from part files), defaults are DuckDB's own (snappy), and options
a format does not take are refused with what to do instead (issue 11)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from sidecar.client import RpcError, SidecarProcess

SQL = "SELECT i % 1000 AS k, sum(i) AS s, count(*) AS c FROM range(300000) t(i) GROUP BY k"


def _metadata(path: Path) -> tuple[set[str], int, list[Any]]:
    """The codecs of a Parquet file's column chunks, its row groups, and its rows sorted."""
    con = duckdb.connect()
    codecs = {r[0] for r in con.execute(f"SELECT DISTINCT compression FROM parquet_metadata('{path}')").fetchall()}
    groups = con.execute(f"SELECT count(DISTINCT row_group_id) FROM parquet_metadata('{path}')").fetchone()
    rows = con.execute(f"SELECT * FROM read_parquet('{path}') ORDER BY ALL").fetchall()
    return codecs, int(groups[0]) if groups else 0, rows


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("options", "codec"),
    [({}, "SNAPPY"), ({"compression": "zstd", "compression_level": 9}, "ZSTD"), ({"compression": "uncompressed"}, "UNCOMPRESSED")],
)
@pytest.mark.parametrize("parts", [0, 3])
def test_parquet_options_reach_the_file_whole_and_split(
    sidecar: SidecarProcess, data_dir: Path, options: dict[str, Any], codec: str, parts: int
) -> None:
    path = data_dir / "out.parquet"
    output = {"path": str(path), **options, "row_group_size": 4096}
    result = sidecar.request("query.run", {"sql": SQL, "output": output, "partition": {"parts": parts}})
    assert result["output"]["rows"] == 1000
    codecs, groups, rows = _metadata(path)
    assert codecs == {codec}
    assert 1 <= groups <= max(parts, 1)  # 1000 rows fit one row group per file, and a part adds at most one
    assert rows == duckdb.connect().execute(f"{SQL} ORDER BY ALL").fetchall()


@pytest.mark.timeout(60)
def test_the_row_group_size_splits_a_big_output(sidecar: SidecarProcess, data_dir: Path) -> None:
    path = data_dir / "rg.parquet"
    output = {"path": str(path), "row_group_size": 10_000}
    sidecar.request("query.run", {"sql": "SELECT i FROM range(100000) t(i)", "output": output})
    assert _metadata(path)[1] >= 10  # DuckDB may cut at thread boundaries too, never fewer


@pytest.mark.parametrize(
    ("output", "says"),
    [
        ({"format": "csv", "compression": "zstd"}, "apply to parquet output only"),
        ({"format": "json", "row_group_size": 10000}, "apply to parquet output only"),
        ({"compression_level": 5}, "compression_level applies to zstd only"),
        ({"compression": "zip"}, "Invalid enum value 'zip' - at `$.output.compression`"),
    ],
)
def test_options_a_format_does_not_take_are_refused_with_what_to_do(
    sidecar: SidecarProcess, data_dir: Path, output: dict[str, Any], says: str
) -> None:
    with pytest.raises(RpcError) as err:
        sidecar.request("query.run", {"sql": "SELECT 1", "output": {"path": str(data_dir / "x.out"), **output}})
    assert err.value.code == "INVALID_PARAMS"
    assert says in str(err.value), str(err.value)


def test_the_output_options_benchmark_prints_a_row_per_codec(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from sidecar.bench.output_options import main

    assert main(["--rows", "20000", "--repeat", "1", "--threads", "1", "--dir", str(tmp_path)]) == 0
    table = capsys.readouterr().out
    for name in ("snappy (default)", "zstd", "gzip", "lz4", "uncompressed", "zstd level 9", "snappy, 1M-row groups"):
        assert f"| {name}" in table
    assert "brotli" not in table  # only with --brotli
    assert "| snappy (default) | " in table and " | 1.00 | " in table
