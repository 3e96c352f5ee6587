"""Partitioned execution over real stdio: the parts plus the combine give the single query's answer.

Differential: each query runs once whole and once with `partition: {parts: 3}` in the same real
sidecar and database; rows (a multiset, floats within tolerance; a sequence under ORDER BY),
column names and types must match. And end to end: a real OUT_OF_MEMORY under a hard budget is
recovered by the ladder's `partition` rung.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import pytest

from sidecar.engine.executor import QuerySpec
from sidecar.partition import plan_partitioned

from sidecar.client import RpcError, SidecarProcess

SETUP = """
CREATE OR REPLACE TABLE t AS
SELECT i AS id,
       CASE WHEN i % 17 = 0 THEN NULL ELSE i % 23 END AS g1,
       CASE WHEN i % 13 = 0 THEN NULL ELSE 's' || (i % 7) END AS g2,
       CASE WHEN i % 11 = 0 THEN NULL ELSE (hash(i) % 1000) / 7.0 END AS v,
       hash(i) % 50 AS n
FROM range(2000) r(i)
"""

ORDERED = [
    "SELECT g1, count(*) AS c, median(v) AS m FROM t GROUP BY g1 HAVING count(*) > 50 ORDER BY c DESC, g1 LIMIT 7",
    "SELECT g2, g1, sum(n) FROM t GROUP BY ALL ORDER BY g2 NULLS FIRST, g1 NULLS FIRST",
]
UNORDERED = [
    "SELECT g1, median(v), list(n ORDER BY id), string_agg(g2, ',' ORDER BY id), count(DISTINCT n) FROM t GROUP BY g1",
    "SELECT DISTINCT g2, n % 5 AS k FROM t",
    "SELECT id, g1, row_number() OVER (PARTITION BY g1 ORDER BY id) AS rn, sum(n) OVER (PARTITION BY g1) FROM t",
    "SELECT count(DISTINCT n) AS dn FROM t",
]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return bool(a == b)


def _key(row: list[Any]) -> str:
    return repr([round(x, 6) if isinstance(x, float) else x for x in row])


def _schemas_left(sc: SidecarProcess, database: str) -> list[Any]:
    rows = sc.request(
        "query.run",
        {
            "sql": "SELECT schema_name FROM duckdb_schemas() WHERE schema_name LIKE '\\_\\_bmad\\_job\\_%' ESCAPE '\\'",
            "database": database,
        },
    )["rows"]
    return list(rows)


@pytest.fixture
def database(sidecar: SidecarProcess, data_dir: Path) -> str:
    path = str(data_dir / "p.duckdb")
    sidecar.request("query.run", {"sql": SETUP, "database": path})
    return path


@pytest.mark.timeout(120)
@pytest.mark.parametrize("sql", ORDERED + UNORDERED)
def test_partitioned_equals_the_single_query(sidecar: SidecarProcess, database: str, sql: str) -> None:
    whole = sidecar.request("query.run", {"sql": sql, "database": database})
    split = sidecar.request(
        "query.run", {"sql": sql, "database": database, "partition": {"parts": 3}, "progress_token": "p"}
    )
    assert split["columns"] == whole["columns"]
    assert split["row_count"] == whole["row_count"] > 0
    if sql in ORDERED:
        assert _same(split["rows"], whole["rows"])
    else:
        assert Counter(map(_key, split["rows"])) == Counter(map(_key, whole["rows"]))
    assert split["stats"]["partitions"] == 3 and "partitions" not in whole["stats"]
    (attempt,) = split["stats"]["attempts"]
    assert attempt["rung"] == "partition" and attempt["outcome"] == "ok"
    assert _schemas_left(sidecar, database) == []
    phases = [n["params"]["value"]["phase"] for n in sidecar.notifications if n.get("method") == "$/progress"]
    assert phases.count("partition") == 3 and phases.count("done") == 1 and phases[-1] == "done"


@pytest.mark.timeout(60)
def test_an_unsplittable_query_is_a_sql_error_naming_its_shape(
    sidecar: SidecarProcess, database: str
) -> None:
    with pytest.raises(RpcError) as err:
        sidecar.request(
            "query.run", {"sql": "SELECT id, v FROM t", "database": database, "partition": {"parts": 2}}
        )
    assert err.value.code == "SQL_ERROR"
    assert "cannot split" in str(err.value.data) and err.value.data["details"]["shape"]
    with pytest.raises(RpcError) as err:
        sidecar.request(
            "query.run",
            {"sql": "SELECT id FROM t ORDER BY v", "database": database, "partition": {"parts": 2}},
        )
    assert err.value.code == "SQL_ERROR" and err.value.data["details"]["shape"] == "sorted_ranges"
    for bad in ({"parts": 1}, {"parts": 257}, {"parts": 2, "salt": 1}):
        with pytest.raises(RpcError) as err:
            sidecar.request("query.run", {"sql": "SELECT DISTINCT g1 FROM t", "partition": bad})
        assert err.value.code == "INVALID_PARAMS"
    assert _schemas_left(sidecar, database) == []


@pytest.mark.timeout(60)
def test_a_failing_part_leaves_no_scratch_schema(sidecar: SidecarProcess, database: str) -> None:
    sql = "SELECT g1, sum(CASE WHEN id = 1999 THEN error('boom') ELSE n END) FROM t GROUP BY g1"
    with pytest.raises(RpcError) as err:
        sidecar.request("query.run", {"sql": sql, "database": database, "partition": {"parts": 3}})
    assert "boom" in str(err.value.data) or "boom" in str(err.value)
    assert _schemas_left(sidecar, database) == []


HOLISTIC = (
    "SELECT g, median(v) AS m, list(v) AS l FROM "
    "(SELECT i % 100000 AS g, hash(i) % 1000 AS v FROM range(1000000) t(i)) GROUP BY g"
)


@pytest.mark.timeout(120)
def test_a_real_out_of_memory_is_recovered_by_partitioning(sidecar: SidecarProcess) -> None:
    budget = {"memory_limit": "128MiB"}  # an explicit budget: a hard ceiling, `grow` cannot help
    result = sidecar.request("query.run", {"sql": HOLISTIC, "settings": budget, "max_rows": 3}, timeout=100)
    first, *_, last = result["stats"]["attempts"]
    assert first["outcome"] in ("OUT_OF_MEMORY", "MEMORY_CEILING", "MEMORY_EMERGENCY"), result["stats"][
        "attempts"
    ]
    assert last["rung"] == "partition" and last["outcome"] == "ok"
    assert result["stats"]["partitions"] == 8
    assert result["row_count"] == 3 and result["truncated"] is True
    assert all(len(row[2]) == 10 for row in result["rows"])  # every group whole: 1e6 rows / 1e5 groups
    assert [c["name"] for c in result["columns"]] == ["g", "m", "l"]


BIG_HOLISTIC = HOLISTIC.replace("range(1000000)", "range(2000000)")


def test_a_part_that_runs_out_of_memory_is_split_again_exactly() -> None:
    """The re-split orchestration, with a fault hook: part 1 (and then its first sub-part) 'run out
    of memory'; every statement runs for real in DuckDB, and the union of what was kept is exactly
    the single query's answer."""
    from sidecar.errors import OutOfMemory
    from sidecar.partition import Bucket
    from sidecar.workers.partitioned import _run_part

    con = duckdb.connect()
    con.execute("CREATE SCHEMA s")
    sql = "SELECT g, median(v) AS m, count(*) AS n FROM (SELECT i % 997 AS g, hash(i) % 100 AS v FROM range(50000) t(i)) GROUP BY g"
    failing = {"s.part_1", "s.part_1_0"}

    def job(statement: str, params: object = None) -> dict:
        target = statement.split(" AS ", 1)[0].removeprefix("CREATE TABLE ").replace('"', "")
        if target in failing:
            failing.discard(target)
            raise OutOfMemory("injected: this part needs more memory than its ceiling")
        con.execute(statement)
        return {"rows": []}

    spec = QuerySpec(sql=sql)
    plan = plan_partitioned(sql, 3)
    resplit: list[str] = []
    tables = []
    for part in plan.parts:
        tables += _run_part(job, spec, "s", f"part_{part.index}", part.sql, [Bucket(3, part.index, 0)], set(), resplit)
    assert resplit == ["part_1", "part_1_0"]
    assert "part_1" not in tables and "part_1_0" not in tables and "part_1_0_3" in tables
    union = " UNION ALL ".join(f"SELECT * FROM s.{t}" for t in tables)
    assert sorted(con.execute(union).fetchall()) == sorted(con.execute(sql).fetchall())
