"""At 1e7 rows over real stdio: a top-2 per group written as a filter over a windowed subquery runs
out of memory whole under a small budget, and the ladder splits it through the subquery by the
window's keys to plain DuckDB's answer (issue 11; at 1e8 rows see sidecar.bench)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from sidecar.client import SidecarProcess

ROWS = 10_000_000
TOP_TWO = (
    "SELECT k, v, r FROM (SELECT k, v, row_number() OVER (PARTITION BY k ORDER BY v DESC, id) AS r "
    "FROM x WHERE v >= 0) WHERE r <= 2"
)
CHECKSUM = "SELECT count(*), sum(k), sum(v), sum(r), sum(hash(k, v, r)) FROM {}"


@pytest.mark.timeout(180)
def test_a_top_n_over_a_windowed_subquery_is_split_after_it_runs_out_of_memory(
    sidecar: SidecarProcess, data_dir: Path
) -> None:
    path = data_dir / "x.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(
            f"CREATE TABLE x AS SELECT i % 1000000 AS k, hash(i) % 100000 AS v, i AS id FROM range({ROWS}) t(i)"
        )
        expected = con.execute(CHECKSUM.format(f"({TOP_TWO})")).fetchone()
    output = data_dir / "top2.parquet"
    request = {
        "sql": TOP_TWO,
        "database": str(path),
        "settings": {"memory_limit": "192MiB", "threads": 1},  # DuckDB gets 96 MiB: the whole query fails
        "partition": {"parts": 0},  # no split up front: the ladder's answer to a real failure is tested
        "output": {"path": str(output)},
    }
    result = sidecar.request("query.run", request, timeout=170)
    attempts = result["stats"]["attempts"]
    assert attempts[0]["outcome"] in ("OUT_OF_MEMORY", "MEMORY_CEILING", "MEMORY_EMERGENCY"), attempts
    assert attempts[-1]["rung"] == "partition" and attempts[-1]["outcome"] == "ok"
    assert "partition" not in attempts[0]["skipped"]
    assert result["stats"]["partitions"] >= 8
    assert duckdb.connect().execute(CHECKSUM.format(f"read_parquet('{output}')")).fetchone() == expected
