"""The bucketing pass: the input written once as hash buckets, each part reading its own bucket,
gives exactly the single query's answer (real DuckDB, real files; the plan is split in 8 parts,
most of them empty for the queries with few keys)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import duckdb
import pytest

from sidecar.client import RpcError
from sidecar.partition import Bucket, plan_partitioned
from sidecar.partition.prepass import (
    BUCKET_COLUMN,
    bucket_sql,
    needed_columns,
    part_reads_bucket,
    prepass_for,
)

PARTS = 8


@pytest.fixture(scope="module")
def con(tmp_path_factory: pytest.TempPathFactory) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE t AS SELECT i AS id, CASE WHEN i % 17 = 0 THEN NULL ELSE i % 23 END AS g, "
        "'s' || (i % 7) AS s, (hash(i) % 1000) / 7.0 AS v, i % 2 AS two, "
        "i::HUGEINT * 1000000000000 AS huge FROM range(5000) r(i)"
    )
    path = tmp_path_factory.mktemp("csv") / "t.csv"
    con.execute(f"COPY (SELECT id, g, s, v, two FROM t) TO '{path}' (HEADER true)")
    con.execute(f"SET VARIABLE csv = '{path}'")
    return con


def _csv(con: duckdb.DuckDBPyConnection) -> str:
    return str(con.execute("SELECT getvariable('csv')").fetchall()[0][0])


QUERIES = [
    "SELECT g, count(*) AS n, median(v) AS m FROM t WHERE id > 100 GROUP BY g",
    "SELECT DISTINCT s, two FROM t",
    "SELECT id, g, row_number() OVER (PARTITION BY g ORDER BY id) AS rn FROM t",
    "SELECT count(DISTINCT g) AS dg, sum(id) AS total FROM t",
    "SELECT x.two, list(x.id ORDER BY x.id) AS ids FROM t AS x GROUP BY x.two",
    "WITH c AS (SELECT * FROM t WHERE s <> 's3') SELECT g, max(v) FROM c GROUP BY g",
    "SELECT DISTINCT id, g, s, v FROM t",
    "SELECT g, avg(v) FROM (SELECT g, v FROM t WHERE two = 1) GROUP BY g",
    "SELECT s, count(*) FROM '{csv}' GROUP BY s",
    "SELECT id % 3 AS k3, list(id ORDER BY id) FROM t GROUP BY k3",
    "SELECT round(v) AS rv, count(*) FROM t WHERE rv > 10 GROUP BY rv",
    "SELECT g * 2 AS g, count(*) FROM t WHERE g > 3 GROUP BY 1",
    "SELECT f.g, sum(f.id) FROM read_csv('{csv}') AS f GROUP BY f.g",
]


def _run_split(con: duckdb.DuckDBPyConnection, sql: str, directory: Path) -> list[tuple[object, ...]]:
    plan = plan_partitioned(sql, PARTS)
    pre = prepass_for(plan, PARTS, has_params=False)
    assert pre is not None, sql
    prefix = f"{pre.with_sql} " if pre.with_sql else ""
    columns = [(r[0], r[1]) for r in con.execute(f"DESCRIBE {prefix}SELECT * FROM {pre.relation}").fetchall()]
    chosen = needed_columns(sql, columns, pre.alias)
    assert chosen is not None, columns
    con.execute(
        f"COPY ({bucket_sql(pre, chosen, [c for c, _ in columns])}) TO '{directory}' (FORMAT parquet, PARTITION_BY ({BUCKET_COLUMN}))"
    )
    parts = []
    for part in plan.parts:
        bucket = directory / f"{BUCKET_COLUMN}={part.index}"
        files = str(bucket / "*.parquet") if bucket.is_dir() else None
        parts.append(part_reads_bucket(part.sql, pre, files, chosen))
    if sql.endswith("GROUP BY x.two"):  # two keys: at least six buckets are empty and read nothing
        assert sum(1 for p in parts if "LIMIT 0" in p) >= PARTS - 2
    union = " UNION ALL ".join(f"({p})" for p in parts)
    if plan.combine.sql in (None, "SELECT * FROM _parts"):
        return con.execute(union).fetchall()
    con.execute(f"CREATE OR REPLACE TEMP TABLE _parts AS {union}")
    return con.execute(plan.combine.sql).fetchall()


def _multiset(rows: list[tuple[object, ...]]) -> Counter[str]:
    return Counter(repr([round(x, 9) if isinstance(x, float) else x for x in row]) for row in rows)


@pytest.mark.parametrize("sql", QUERIES)
def test_parts_reading_their_buckets_give_the_single_answer(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, sql: str
) -> None:
    sql = sql.format(csv=_csv(con))
    assert _multiset(_run_split(con, sql, tmp_path / "buckets")) == _multiset(con.execute(sql).fetchall())


def test_only_the_columns_the_query_names_are_written(con: duckdb.DuckDBPyConnection) -> None:
    columns = [(r[0], r[1]) for r in con.execute("DESCRIBE t").fetchall()]
    assert needed_columns("SELECT g, count(*) FROM t GROUP BY g", columns, "t") == ["g"]
    assert needed_columns("SELECT count(*) FROM t WHERE v > 1 GROUP BY s", columns, "t") == ["s", "v"]
    assert needed_columns("SELECT g, sum(huge) FROM t GROUP BY g", columns, "t") is None  # HUGEINT -> DOUBLE
    assert needed_columns("SELECT DISTINCT * FROM t", columns, "t") is None
    assert needed_columns("SELECT DISTINCT t FROM t", columns, "t") is None  # the whole row, as a struct


def test_the_pass_is_skipped_where_it_is_not_exact_or_would_not_pay(con: duckdb.DuckDBPyConnection) -> None:
    group = "SELECT g, count(*) FROM t GROUP BY g"
    assert (
        prepass_for(plan_partitioned(group, 4), 4, has_params=False) is None
    )  # few parts over a table: re-scan
    csv = f"SELECT g, count(*) FROM '{_csv(con)}' GROUP BY g"
    assert (
        prepass_for(plan_partitioned(csv, 2), 2, has_params=False) is not None
    )  # text input: parsing dominates
    assert prepass_for(plan_partitioned(group, PARTS), PARTS, has_params=True) is None
    joined = "SELECT t.g, count(*) FROM t JOIN t AS u USING (id) GROUP BY t.g"
    assert prepass_for(plan_partitioned(joined, PARTS), PARTS, has_params=False) is None
    resplit = plan_partitioned(group, 4, salt=1, within=[Bucket(8, 3, 0)])
    assert prepass_for(resplit, 4, has_params=False) is None


# -- end to end over stdio ---------------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("output", [None, "parquet"])
def test_a_split_over_a_csv_reads_buckets_of_one_pass(
    sidecar, data_dir: Path, tmp_path: Path, output: str | None
) -> None:
    source = data_dir / "events.csv"
    with duckdb.connect() as con:  # never the module's default connection: other tests share it
        con.execute(
            f"COPY (SELECT i AS id, 'u' || (i % 997) AS user_id, (hash(i) % 1000) / 10.0 AS amount "
            f"FROM range(60000) t(i)) TO '{source}' (HEADER true)"
        )
    sql = f"SELECT user_id, count(*) AS n, median(amount) AS m, sum(amount) AS total FROM '{source}' GROUP BY user_id"
    request: dict[str, object] = {"sql": sql, "partition": {"parts": 3}, "max_rows": 100_000}
    if output is not None:
        request["output"] = {"path": str(data_dir / "out.parquet"), "format": output}
    split = sidecar.request("query.run", request, timeout=50)
    whole = sidecar.request("query.run", {"sql": sql, "max_rows": 100_000}, timeout=50)
    assert any("read buckets of one pass" in line for line in sidecar.stderr_tail), list(sidecar.stderr_tail)[
        -10:
    ]
    assert split["stats"]["partitions"] == 3
    with duckdb.connect() as con:
        rows = (
            split["rows"]
            if output is None
            else con.execute(f"SELECT * FROM '{data_dir / 'out.parquet'}'").fetchall()
        )
    assert _multiset([tuple(r) for r in rows]) == _multiset([tuple(r) for r in whole["rows"]])
    assert not list((tmp_path / "state").glob("jobs/*/buckets"))  # the pass's buckets go with the job


def _events(data_dir: Path) -> Path:
    source = data_dir / "events.csv"
    with duckdb.connect() as con:
        con.execute(
            f"COPY (SELECT i AS id, 'u' || (i % 997) AS user_id, (hash(i) % 1000) / 10.0 AS amount "
            f"FROM range(60000) t(i)) TO '{source}' (HEADER true)"
        )
    return source


@pytest.mark.timeout(60)
def test_a_bucketing_pass_that_fails_leaves_the_parts_to_re_scan(
    sidecar, data_dir: Path, tmp_path: Path
) -> None:
    source = _events(data_dir)
    sql = f"SELECT user_id, count(*) AS n, sum(amount) AS total FROM '{source}' GROUP BY user_id"
    blocker = tmp_path / "state" / "jobs" / "blocked" / ".buckets.tmp"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("a file where the pass writes its directory")  # the pass's COPY fails for real
    request = {"sql": sql, "partition": {"parts": 3}, "job_id": "blocked", "max_rows": 100_000}
    split = sidecar.request("query.run", request, timeout=50)
    whole = sidecar.request("query.run", {"sql": sql, "max_rows": 100_000}, timeout=50)
    assert any("bucketing pass failed" in line for line in sidecar.stderr_tail), list(sidecar.stderr_tail)[
        -10:
    ]
    assert _multiset([tuple(r) for r in split["rows"]]) == _multiset([tuple(r) for r in whole["rows"]])
    assert not blocker.parent.exists()  # the job succeeded: its directory went with it


@pytest.mark.timeout(90)
def test_a_named_job_resumes_with_the_buckets_its_first_run_wrote(
    sidecar, data_dir: Path, tmp_path: Path
) -> None:
    source = _events(data_dir)
    sidecar.request("query.run", {"sql": "CREATE TABLE flag AS SELECT 1 AS x"})
    sql = (
        f"SELECT user_id, count(*) AS n, max(CASE WHEN user_id = 'u7' AND (SELECT count(*) FROM flag) > 0 "
        f"THEN error('boom') ELSE 0 END) AS e FROM '{source}' GROUP BY user_id"
    )
    request = {"sql": sql, "partition": {"parts": 3}, "job_id": "bucketed", "max_rows": 100_000}
    with pytest.raises(RpcError, match="boom"):
        sidecar.request("query.run", request, timeout=50)
    buckets = tmp_path / "state" / "jobs" / "bucketed" / "buckets"
    assert list(buckets.rglob("*.parquet")), "the failed run keeps its buckets for the resume"
    sidecar.request("query.run", {"sql": "DELETE FROM flag"})
    resumed = sidecar.request("query.run", request, timeout=50)
    assert any("reusing the buckets an earlier run" in line for line in sidecar.stderr_tail)
    whole = sidecar.request("query.run", {"sql": sql, "max_rows": 100_000}, timeout=50)
    assert _multiset([tuple(r) for r in resumed["rows"]]) == _multiset([tuple(r) for r in whole["rows"]])
    assert resumed["row_count"] == 997 and not buckets.parent.exists()
