"""A query nothing can split, whose process nears its ceiling while DuckDB keeps inside its own
limit, completes on the ladder's `smaller_limit` rung with plain DuckDB's answer (issue 11: never
fail where plain DuckDB succeeds). Before the rung it failed after `first` and `fewer_threads`."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from sidecar.client import SidecarProcess

ROWS = 6_000_000
SORT = "SELECT v, id FROM read_parquet('{x}') ORDER BY v, id LIMIT 3 OFFSET 3000000"


@pytest.mark.timeout(180)
def test_a_top_n_with_a_large_offset_at_a_small_ceiling_completes_on_a_smaller_duckdb_limit(
    sidecar: SidecarProcess, data_dir: Path
) -> None:
    x = data_dir / "s.parquet"
    duckdb.connect().execute(
        f"COPY (SELECT round((hash(r * 3) % 1000000) / 1000.0, 3) AS v, printf('id%010d', hash(r * 7) % 200000) AS id "
        f"FROM range({ROWS}) t(r)) TO '{x}' (FORMAT parquet)"
    )
    plain = duckdb.connect(config={"memory_limit": "200MB", "threads": 2}).execute(SORT.format(x=x)).fetchall()
    sidecar.request("initialize", {"client": {"name": "test"}})
    answer = sidecar.request(
        "query.run", {"sql": SORT.format(x=x), "settings": {"memory_limit": "200MB", "threads": 2}}, timeout=150
    )
    assert [tuple(row) for row in answer["rows"]] == plain
    attempts = answer["stats"]["attempts"]
    rungs = [(a["rung"], a["outcome"]) for a in attempts]
    assert rungs[-1] == ("smaller_limit", "ok"), rungs
    assert all(a["outcome"] in ("MEMORY_EMERGENCY", "MEMORY_CEILING") for a in attempts[:-1]), rungs
    assert attempts[-1]["duckdb_memory_limit_bytes"] < attempts[0]["duckdb_memory_limit_bytes"]
    assert all(a["peak_rss_bytes"] <= 200_000_000 for a in attempts)
