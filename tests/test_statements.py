"""The job's shape read by DuckDB's parser: statement types, holistic aggregates, and whether the
query aggregates at all (what decides that the estimate looks); each SQL text is parsed once."""

from __future__ import annotations

import duckdb
import pytest

from sidecar.bench.suite.tpch import TPCH_QUERIES
from sidecar.jobs import statements
from sidecar.jobs.estimate import estimate
from sidecar.jobs.statements import holistic, may_split, shape_of
from sidecar.partition.answer import HashSplit, QuantilePasses, how_to_split


def test_statement_types_and_read_only() -> None:
    shape = shape_of("CREATE TABLE a AS SELECT 1; SELECT * FROM a")
    assert shape.statement_types == ("CREATE", "SELECT") and not shape.read_only
    assert shape_of("SELECT 1; EXPLAIN SELECT 2").read_only
    broken = shape_of("SELEC 1")
    assert broken.statement_types == () and not broken.read_only


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT g, median(v) FROM t GROUP BY g", True),
        ("SELECT g, string_agg(s, ',') FROM t GROUP BY g", True),
        ("SELECT list(v) OVER (PARTITION BY g) FROM t", True),
        ("SELECT g, sum(v) FROM t GROUP BY g", False),
        ("INSERT INTO t SELECT median(v) FROM u", False),  # only SELECTs are read
    ],
)
def test_holistic_aggregates(sql: str, expected: bool) -> None:
    assert holistic(sql) is expected


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT g FROM t GROUP BY g",
        "SELECT g, v FROM t GROUP BY ALL",
        "SELECT DISTINCT g FROM t",
        "SELECT DISTINCT ON (g) g, v FROM t",
        "SELECT g, row_number() OVER (PARTITION BY g ORDER BY v) FROM t",
        "SELECT * FROM t QUALIFY row_number() OVER (PARTITION BY g ORDER BY v) = 1",
        "SELECT * FROM (SELECT g, max(v) AS m FROM t GROUP BY g) WHERE m > 1",
        "WITH s AS (SELECT g, sum(v) AS v FROM t GROUP BY g) SELECT * FROM s",
        "SELECT median(v) FROM t",
        "SELECT count(*) FROM (SELECT DISTINCT g FROM t)",
        "SELECT sum(t.v) FROM t JOIN u USING (g)",
    ],
)
def test_grouping_windowed_distinct_joined_or_holistic_queries_may_split(sql: str) -> None:
    assert may_split(sql)


@pytest.mark.parametrize(
    "sql",
    ["SELECT count(*) FROM t", "SELECT * FROM t WHERE v > (SELECT avg(v) FROM t)",
     "SELECT approx_count_distinct(v), arg_max(g, v) FROM t", "SELECT count(DISTINCT g), sum(v) FROM t"],  # fmt: skip
)
def test_a_global_aggregate_of_no_holistic_function_is_not_looked_at(sql: str) -> None:
    # the estimate gives such a query no memory of its own (choose_parts, operator "global"): an
    # EXPLAIN job for it is pure cost (3.8 ms on a 1 MB TPC-H q6 that plain DuckDB answers in 2.4 ms)
    assert not may_split(sql)
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT i % 7 AS g, i AS v FROM range(100000) r(i)")
    answer = how_to_split(sql, 2)
    plan = answer.plan if isinstance(answer, HashSplit) else None
    probe = lambda q, params: [list(r) for r in con.execute(q, params).fetchall()]  # noqa: E731
    got = estimate(probe, plan, holistic(sql), sql, None, limit=1024)  # a 1 KiB limit: anything that splits would
    assert got is None or got.parts == 0


@pytest.mark.parametrize(
    "sql",
    ["SELECT 42", "SELECT * FROM t WHERE v > 1 ORDER BY g", "SELECT upper(s), v + 1 FROM t LIMIT 10",
     "CREATE TABLE a AS SELECT count(*) FROM t"],  # fmt: skip
)
def test_queries_without_aggregates_never_split(sql: str) -> None:
    assert not may_split(sql)


CORPUS = [
    *TPCH_QUERIES,
    "SELECT id1, sum(v1) FROM x GROUP BY id1",
    "SELECT id3, median(v3) FROM x GROUP BY id3",
    "SELECT DISTINCT id1, id2 FROM x",
    "SELECT count(DISTINCT id1) FROM x",
    "SELECT *, row_number() OVER (PARTITION BY id3 ORDER BY v1) AS rn FROM x",
    "SELECT * FROM x ORDER BY v1",
    "SELECT id1 FROM x WHERE v1 > 3",
    "SELECT 42",
]


@pytest.mark.parametrize("sql", CORPUS)
def test_every_query_the_estimate_could_split_may_split(sql: str) -> None:
    """The pre-check never hides a query from the estimate: every query the planner splits by its
    groups, windows, DISTINCT, joins or in quantile passes may split (a full ORDER BY's range split
    is never made up front; a global aggregate's split only after a memory failure: the test above)."""
    sql = sql.format_map({k: k for k in ("lineitem", "orders", "customer", "part", "partsupp", "supplier",
                                         "nation", "region")})  # fmt: skip
    answer = how_to_split(sql, 2)
    if isinstance(answer, QuantilePasses) or (isinstance(answer, HashSplit) and answer.plan.shape != "global_aggregate"):
        assert may_split(sql), sql


def test_one_sql_text_is_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    sql = "SELECT g, quantile_cont(v, 0.9) FROM t GROUP BY g -- parsed once"
    calls: list[str] = []
    con = statements._connection()

    class Counting:
        """The real parser connection, counting what it is asked."""

        def extract_statements(self, text: str) -> list[duckdb.Statement]:
            calls.append("extract")
            return con.extract_statements(text)

        def execute(self, query: str, params: list[str]) -> duckdb.DuckDBPyConnection:
            calls.append("serialize")
            return con.execute(query, params)

    monkeypatch.setattr(statements, "_connection", Counting)
    for _ in range(3):
        assert shape_of(sql).statement_types == ("SELECT",)
        assert shape_of(sql).holistic and holistic(sql) and may_split(sql)
    assert calls == ["extract", "serialize"]
