"""The up-front estimate of an ungrouped join: DuckDB's build side (the smaller one, whichever side it
is written on) decides the parts, so a join whose build side would not fit is split before it runs."""

from __future__ import annotations

from typing import Any

import duckdb
import pytest

from sidecar.jobs.estimate import estimate
from sidecar.partition import plan_partitioned
from sidecar.partition.join_size import JOIN_FACTOR, read_build_side

MiB = 1024**2


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("CREATE TABLE big AS SELECT i AS k, i % 7 AS v, 'b' || i AS s FROM range(400000) t(i)")
    con.execute("CREATE TABLE small AS SELECT i AS k, i::VARCHAR AS w FROM range(3000) t(i)")
    return con


def _plan_json(con: duckdb.DuckDBPyConnection, sql: str) -> str:
    return con.execute(f"EXPLAIN (FORMAT JSON) {sql}").fetchall()[0][1]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM big JOIN small ON big.k = small.k",
        "SELECT * FROM small LEFT JOIN big ON big.k = small.k",  # DuckDB flips it to build on small
    ],
)
def test_the_build_side_is_the_smaller_one_wherever_it_is_written(con, sql: str) -> None:
    build = read_build_side(_plan_json(con, sql))
    assert build is not None and build.rows == 3000 and build.columns == 2


def test_a_join_with_a_build_side_past_the_factor_is_split_and_one_below_is_not(con) -> None:
    def probe(sql: str, params: Any) -> list[list[Any]]:
        return [list(row) for row in con.execute(sql, params).fetchall()]

    sql = "SELECT a.*, b.v AS bv, b.s AS bs FROM big AS a JOIN big AS b ON a.k = b.k"
    plan = plan_partitioned(sql, 2)
    roomy = estimate(probe, plan, False, sql, None, 512 * MiB)
    assert roomy is not None and roomy.parts == 0 and roomy.input_rows == 400_000
    tight = estimate(probe, plan, False, sql, None, 2 * MiB)
    assert tight is not None and tight.parts >= 2 and "build side" in tight.basis
    assert tight.bytes > JOIN_FACTOR * 2 * MiB
