"""The up-front estimate: DuckDB's own EXPLAIN cardinalities, a sampled distinct count where DuckDB
has no statistics, and the number of parts chosen from them; end to end, a query that would run
out of memory is split before it runs (one attempt, no failed whole run), and one that fits is not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from sidecar.client import RpcError, SidecarProcess
from sidecar.jobs.estimate import estimate
from sidecar.jobs.statements import holistic
from sidecar.partition import plan_partitioned
from sidecar.partition.answer import HashSplit, QuantilePasses, SplitAnswer, how_to_split
from sidecar.partition.memory_model import (
    Cardinalities,
    chao1,
    choose_parts,
    read_explain,
    row_width,
    sample_sql,
)

MiB = 1024**2


def _explain(con: duckdb.DuckDBPyConnection, sql: str) -> str:
    return con.execute(f"EXPLAIN (FORMAT JSON) {sql}").fetchall()[0][1]


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE t AS SELECT i AS id, i % 1000 AS k, 's' || (i % 50000) AS s, hash(i) % 100 AS v "
        "FROM range(200000) r(i)"
    )
    return con


def test_explain_gives_the_input_rows_and_groups_of_the_first_grouping(
    con: duckdb.DuckDBPyConnection,
) -> None:
    cards = read_explain(_explain(con, "SELECT k, sum(v) FROM t GROUP BY k ORDER BY k"))
    assert cards is not None and cards.operator == "group_by"
    assert cards.input_rows == 200_000
    assert 0 < cards.output_rows < 200_000  # DuckDB's distinct statistics of a table's column

    window = read_explain(_explain(con, "SELECT id, row_number() OVER (PARTITION BY k ORDER BY v) FROM t"))
    assert window is not None and window.operator == "window" and window.input_rows == 200_000
    assert read_explain(_explain(con, "SELECT id FROM t WHERE v > 3")) is None


def test_chao1_reads_a_sample_frequency_profile() -> None:
    assert chao1(0, 0, 0, 0, 10**8) == 0
    assert chao1(10_000, 0, 0, 10**6, 10**8) == 10_000  # every group seen many times: saturated
    assert chao1(10**6, 10**6, 0, 10**6, 10**8) == 10**8  # all unique: as many groups as rows
    # 1e6 uniform groups sampled 1e6 times (Poisson 1): d, f1, f2 as measured on H2O's id3
    assert abs(chao1(632_128, 367_967, 183_745, 10**6, 10**8) - 10**6) < 10_000


def test_a_sample_of_string_keys_estimates_their_groups(con: duckdb.DuckDBPyConnection) -> None:
    plan = plan_partitioned("SELECT s, count(*) FROM t WHERE v >= 0 GROUP BY s", 2)
    query = sample_sql(plan)
    assert query is not None and "LIMIT" in query
    d, f1, f2, n = con.execute(query).fetchall()[0]
    groups = chao1(d, f1, f2, n, 200_000)
    assert 40_000 <= groups <= 60_000, (d, f1, f2, n, groups)  # 50,000 distinct strings
    joined = plan_partitioned("SELECT t.s, count(*) FROM t JOIN t AS u USING (id) GROUP BY t.s", 2)
    assert sample_sql(joined) is None  # sampling a join would compute the join


def test_parts_grow_with_the_need_and_only_past_each_shapes_threshold() -> None:
    group_by = plan_partitioned("SELECT k, sum(v) FROM t GROUP BY k", 2)
    window = plan_partitioned("SELECT id, row_number() OVER (PARTITION BY k ORDER BY v) FROM t", 2)
    limit = 100 * MiB
    fits = choose_parts(group_by.shape, False, Cardinalities("group_by", 10**8, 10**6), 40, limit)
    assert fits.parts == 0 and fits.basis == "groups"
    many = choose_parts(group_by.shape, False, Cardinalities("group_by", 10**8, 10**8), 40, limit)
    assert many.parts == -(-many.bytes // (4 * limit)) >= 2
    held = choose_parts(group_by.shape, True, Cardinalities("group_by", 10**8, 100), 40, limit)
    assert held.parts > many.parts // 4 and held.basis.startswith("values held")
    rows = choose_parts(window.shape, False, Cardinalities("window", 10**8, 10**8), 16, limit)
    assert rows.parts >= 2 and rows.groups is None
    assert choose_parts(window.shape, False, Cardinalities("window", 10**5, 10**5), 16, limit).parts == 0
    few = choose_parts(group_by.shape, True, Cardinalities("group_by", 10**8, 3), 40, limit)
    assert few.parts == 0  # three groups of 3e7 values each: no split makes one fit
    assert (
        choose_parts(group_by.shape, True, Cardinalities("group_by", 10**8, 6), 40, 1024 * MiB).parts == 6
    )  # one group a part
    # DuckDB rewrites `row_number() ... QUALIFY rn <= 2` into a top-n aggregate, whose states do not spill
    top = Cardinalities("group_by", 10**8, 10**6, "arg_max_nulls_last(#1, #2, #3)")
    assert choose_parts(window.shape, False, top, 16, limit, threads=2).parts >= 2
    assert choose_parts(window.shape, False, top, 16, limit, groups=10**4, threads=2).parts == 0


def test_a_qualified_row_number_is_read_as_a_top_n_aggregate(con: duckdb.DuckDBPyConnection) -> None:
    sql = "SELECT k, v, row_number() OVER (PARTITION BY k ORDER BY v DESC) AS rn FROM t QUALIFY rn <= 2"
    cards = read_explain(_explain(con, sql))
    assert cards is not None and cards.operator == "group_by", cards
    top = choose_parts(plan_partitioned(sql, 2).shape, False, cards, 16, 1024, groups=1000, threads=2)
    assert top.basis.startswith("top-n") and top.parts >= 2


def test_a_global_quantile_query_is_split_into_exact_passes_when_its_values_would_not_fit(
    con: duckdb.DuckDBPyConnection,
) -> None:
    cards = read_explain(_explain(con, "SELECT median(v) AS m, count(DISTINCT k) FROM t"))
    assert cards is not None and cards.operator == "global" and cards.input_rows == 200_000
    held = Cardinalities("global", 10**8, 1)
    assert choose_parts("global_quantiles", True, held, 0, 100 * MiB).parts == 2
    assert choose_parts("global_quantiles", True, Cardinalities("global", 10**5, 1), 0, 100 * MiB).parts == 0
    assert choose_parts("global_aggregate", True, held, 0, 100 * MiB).parts == 0  # a split would not help it


def test_row_width_counts_types() -> None:
    assert row_width(["INTEGER", "BIGINT", "DOUBLE"]) == 20
    assert row_width(["DECIMAL(18,3)", "TIMESTAMP WITH TIME ZONE", "VARCHAR"]) == 48
    assert row_width(["INTEGER[]", "STRUCT(a INTEGER)"]) == 96


def test_estimate_samples_only_when_duckdb_has_no_statistics(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    path = tmp_path / "u.parquet"
    con.execute(f"COPY (SELECT 'k' || id AS u, 'c' || (id % 7) AS c, v FROM t) TO '{path}'")
    seen: list[str] = []

    def probe(sql: str, params: Any) -> list[list[Any]]:
        seen.append(sql.split(" ", 1)[0])
        return [list(row) for row in con.execute(sql, params).fetchall()]

    unique = f"SELECT u, sum(v) FROM '{path}' GROUP BY u"
    tiny = 1 * MiB  # small enough that 200,000 groups need a split, and 7 do not
    got = estimate(probe, plan_partitioned(unique, 2), False, unique, None, tiny)
    assert got is not None and got.sampled and got.groups == 200_000 and got.parts >= 2
    assert seen == ["EXPLAIN", "DESCRIBE", "SELECT"]

    seen.clear()
    few = f"SELECT c, sum(v) FROM '{path}' GROUP BY c"
    got = estimate(probe, plan_partitioned(few, 2), False, few, None, tiny)
    assert got is not None and got.sampled and got.groups == 7 and got.parts == 0

    seen.clear()
    roomy = 10 * 1024 * MiB  # fits even at the widest row: neither DESCRIBE nor a sample is run
    got = estimate(probe, plan_partitioned(unique, 2), False, unique, None, roomy)
    assert got is not None and got.parts == 0 and seen == ["EXPLAIN"]


# -- end to end over stdio ---------------------------------------------------------------

HELD = "SELECT g, median(v) AS m, count(*) AS n FROM big GROUP BY g"


@pytest.fixture
def database(sidecar: SidecarProcess, data_dir: Path) -> str:
    path = str(data_dir / "est.duckdb")
    sidecar.request(
        "query.run",
        {
            "sql": "CREATE TABLE big AS SELECT i % 100 AS g, hash(i) % 100000 AS v FROM range(3000000) t(i)",
            "database": path,
        },
    )
    return path


@pytest.mark.timeout(90)
def test_a_holistic_query_too_big_for_its_budget_is_split_before_it_runs(
    sidecar: SidecarProcess, database: str
) -> None:
    budget = {"memory_limit": "256MiB"}  # a hard ceiling: growing in place cannot help
    result = sidecar.request("query.run", {"sql": HELD, "database": database, "settings": budget}, timeout=80)
    stats = result["stats"]
    assert stats["estimate"]["parts"] >= 2 and stats["estimate"]["input_rows"] == 3_000_000, stats
    assert [a["rung"] for a in stats["attempts"]] == ["partition"], stats["attempts"]  # no failed whole run
    assert stats["partitions"] == stats["estimate"]["parts"]
    whole = sidecar.request(
        "query.run", {"sql": HELD, "database": database}, timeout=80
    )  # the machine's budget
    assert whole["stats"]["estimate"]["parts"] == 0 and "partitions" not in whole["stats"]
    assert sorted(result["rows"]) == sorted(whole["rows"])


def test_a_query_that_fits_runs_whole_and_a_plain_one_is_not_estimated(
    sidecar: SidecarProcess, database: str
) -> None:
    result = sidecar.request(
        "query.run", {"sql": "SELECT g, sum(v) FROM big GROUP BY g", "database": database}
    )
    assert result["stats"]["estimate"]["parts"] == 0 and result["stats"]["estimate"]["groups"] <= 200
    assert [a["rung"] for a in result["stats"]["attempts"]] == ["first"]
    plain = sidecar.request("query.run", {"sql": "SELECT v FROM big LIMIT 3", "database": database})
    assert "estimate" not in plain["stats"]


@pytest.mark.timeout(120)
def test_a_named_job_resumes_with_the_parts_it_started_with_whatever_the_estimate_says(
    sidecar: SidecarProcess, database: str
) -> None:
    # a group whose rows fall in the last of 3 parts fails while `flag` has a row
    with duckdb.connect() as con:  # never the module's default connection: other tests share it
        last = con.execute("SELECT g FROM range(100) t(g) WHERE hash(g) % 3 = 2 LIMIT 1").fetchall()[0][0]
    sidecar.request("query.run", {"sql": "CREATE TABLE flag AS SELECT 1 AS x", "database": database})
    sql = (
        "SELECT g, median(v) AS m, count(*) AS n, "
        f"max(CASE WHEN g = {last} AND (SELECT count(*) FROM flag) > 0 THEN error('boom') ELSE 0 END) AS e "
        "FROM big GROUP BY g"
    )
    request = {
        "sql": sql,
        "database": database,
        "job_id": "resume-me",
        "settings": {"memory_limit": "256MiB"},
    }
    with pytest.raises(RpcError, match="boom"):
        sidecar.request("query.run", {**request, "partition": {"parts": 3}}, timeout=100)
    sidecar.request("query.run", {"sql": "DELETE FROM flag", "database": database})
    resumed = sidecar.request("query.run", request, timeout=100)  # no `partition`: the estimate alone
    stats = resumed["stats"]
    assert stats["estimate"]["parts"] == 3 and stats["partitions"] == 3, stats
    assert stats["reused_parts"] >= 1 and resumed["row_count"] == 100


@pytest.mark.timeout(90)
def test_a_global_median_too_big_for_its_budget_runs_in_passes_from_the_start(
    sidecar: SidecarProcess, database: str
) -> None:
    sql = "SELECT median(v) AS m, quantile_cont(v, 0.9) AS q, count(*) AS n FROM big"
    budget = {"memory_limit": "256MiB"}
    result = sidecar.request("query.run", {"sql": sql, "database": database, "settings": budget}, timeout=80)
    stats = result["stats"]
    assert stats["estimate"]["parts"] == 2 and stats["estimate"]["basis"].startswith("values held"), stats
    assert [a["rung"] for a in stats["attempts"]] == ["partition"], stats["attempts"]
    whole = sidecar.request("query.run", {"sql": sql, "database": database}, timeout=80)
    assert whole["stats"]["estimate"]["parts"] == 0
    assert result["rows"] == whole["rows"] and result["columns"] == whole["columns"]


def test_parts_zero_skips_the_estimate_and_one_part_is_refused(
    sidecar: SidecarProcess, database: str
) -> None:
    budget = {"memory_limit": "256MiB"}
    request = {"sql": HELD, "database": database, "settings": budget, "max_rows": 1}
    with pytest.raises(RpcError) as err:
        sidecar.request("query.run", {**request, "partition": {"parts": 1}})
    assert err.value.code == "INVALID_PARAMS" and "parts: 0" in err.value.hint
    result = sidecar.request("query.run", {**request, "partition": {"parts": 0}}, timeout=80)
    assert "estimate" not in result["stats"]
    assert result["stats"]["attempts"][0]["rung"] == "first", result["stats"]["attempts"]


def test_the_row_width_counts_every_column_of_a_wide_query(sidecar: SidecarProcess, database: str) -> None:
    columns = ", ".join(f"v + {i} AS c{i}" for i in range(14))
    sql = f"SELECT g, {columns}, count(*) AS n FROM big GROUP BY ALL"
    budget = {"memory_limit": "256MiB"}
    result = sidecar.request(
        "query.run", {"sql": sql, "database": database, "settings": budget, "max_rows": 1}, timeout=80
    )
    guess = result["stats"]["estimate"]
    described = sidecar.request("query.run", {"sql": f"DESCRIBE {sql}", "database": database})
    types = [row[1] for row in described["rows"]]
    assert len(types) == 16
    assert guess["bytes"] == guess["groups"] * (row_width(types) + 32), guess


def test_a_query_split_through_a_cte_or_subquery_is_sampled_in_its_keys_scope(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    """The keys of a GROUP BY inside a CTE, or of a window under a filter, are sampled where they
    are defined; the sample runs on DuckDB and counts the right groups."""
    path = tmp_path / "s.parquet"
    con.execute(f"COPY (SELECT 'c' || (id % 7) AS c, v FROM t) TO '{path}'")
    through = plan_partitioned(f"WITH g AS (SELECT c, sum(v) AS s FROM '{path}' GROUP BY c) SELECT * FROM g WHERE s > 0", 2)
    top_n = plan_partitioned(f"SELECT c, v FROM (SELECT c, v, row_number() OVER (PARTITION BY c ORDER BY v DESC) "
                             f"AS r FROM '{path}' WHERE v IS NOT NULL) q WHERE r <= 2", 2)  # fmt: skip
    outer = plan_partitioned(f"WITH w AS (SELECT c, v FROM '{path}') SELECT c, sum(v) FROM w GROUP BY c", 2)
    for plan in (through, top_n, outer):
        query = sample_sql(plan)
        assert query is not None, plan.sql
        d, f1, f2, n = con.execute(query).fetchone()
        assert (d, n) == (7, 200_000), plan.sql  # 7 keys seen, over every row (fewer than the sample's cap)


def test_the_top_n_written_over_a_windowed_subquery_is_not_split_when_its_groups_fit(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    # DuckDB turns it into a grouped top-n and, for a string key, puts the groups at the input rows:
    # without a sample the estimate split it at 1e7 H2O rows where it ran whole in 162 MiB
    # (docs/performance/held-out-shapes.md)
    path = tmp_path / "w.parquet"
    con.execute(f"COPY (SELECT 'id' || (id % 1000) AS id6, v::DOUBLE AS v3 FROM t) TO '{path}'")
    sql = (f"SELECT id6, largest2_v3 FROM (SELECT id6, v3 AS largest2_v3, row_number() OVER (PARTITION BY id6 "
           f"ORDER BY v3 DESC) AS order_v3 FROM '{path}' WHERE v3 IS NOT NULL) sub_query WHERE order_v3 <= 2")  # fmt: skip
    probe = _probe(con, seen := [])
    got = estimate(probe, how_to_split(sql, 2).plan, False, sql, None, 64 * MiB, threads=2)
    assert got is not None and got.sampled and got.groups == 1000 and got.parts == 0, got
    assert seen == ["EXPLAIN", "DESCRIBE", "SELECT"]


# -- the planner is asked only when a split could be needed (issue 15) -----------------------
# On TPC-H the sqlglot planner cost more than the EXPLAIN, and no query there needs a split.

LAZY_QUERIES = [
    "SELECT k, sum(v) FROM t GROUP BY k",
    "SELECT s, count(*) FROM t GROUP BY s",
    "SELECT k, median(v) FROM t GROUP BY k",
    "SELECT DISTINCT s, k FROM t",
    "SELECT id, row_number() OVER (PARTITION BY k ORDER BY v) AS rn FROM t",
    "SELECT median(v), count(*) FROM t",
    "SELECT sum(v) FROM t",
    "SELECT * FROM t ORDER BY v",
]
LIMITS = [1 * MiB, 10 * 1024 * MiB]  # one that splits the big shapes, one that fits them all


def _probe(con: duckdb.DuckDBPyConnection, seen: list[str]) -> Any:
    def probe(sql: str, params: Any) -> list[list[Any]]:
        seen.append(sql.split(" ", 1)[0])
        return [list(row) for row in con.execute(sql, params).fetchall()]

    return probe


@pytest.mark.parametrize("limit", LIMITS)
@pytest.mark.parametrize("sql", LAZY_QUERIES)
def test_a_lazy_plan_chooses_what_the_plan_up_front_chose(
    con: duckdb.DuckDBPyConnection, sql: str, limit: int
) -> None:
    answer = how_to_split(sql, 2)
    asked: list[SplitAnswer] = []

    def plan() -> SplitAnswer:
        asked.append(answer)
        return answer

    lazy = estimate(_probe(con, []), plan, holistic(sql), sql, None, limit)
    if isinstance(answer, (HashSplit, QuantilePasses)):
        eager = estimate(_probe(con, []), answer.plan if isinstance(answer, HashSplit) else None, holistic(sql), sql,
                         None, limit)  # fmt: skip
        assert lazy == eager
    elif lazy is not None:  # no hash split: the estimate may report its figures, never a split
        assert lazy.parts == 0 and not asked
    if lazy is not None and lazy.parts > 0:
        assert asked, "a split was chosen without asking the planner"


def test_the_planner_is_not_asked_when_no_split_could_be_needed(con: duckdb.DuckDBPyConnection) -> None:
    sql = "SELECT s, count(*) FROM t GROUP BY s"

    def plan() -> SplitAnswer:
        raise AssertionError("the planner was asked although the EXPLAIN said the query fits")

    seen: list[str] = []
    got = estimate(_probe(con, seen), plan, False, sql, None, 10 * 1024 * MiB)
    assert got is not None and got.parts == 0 and got.input_rows == 200_000 and seen == ["EXPLAIN"]

    asked: list[str] = []

    def asking() -> SplitAnswer:
        asked.append(sql)
        return how_to_split(sql, 2)

    seen.clear()
    tiny = estimate(_probe(con, seen), asking, False, sql, None, MiB // 4)
    assert tiny is not None and tiny.parts >= 2 and asked == [sql]
    assert seen == ["EXPLAIN", "DESCRIBE", "SELECT"]



@pytest.mark.timeout(90)
def test_a_select_over_files_far_smaller_than_the_limit_takes_no_look(sidecar: SidecarProcess, data_dir: Path) -> None:
    """The looks were a third of a 1 MB file's GROUP BY (1.2-2.3 ms of 3.4-6.0): a file whose size
    on disk, times 64, stays under DuckDB's limit gets none; under a small budget it does."""
    path = data_dir / "small.parquet"
    duckdb.connect().execute(
        f"COPY (SELECT i % 1000 AS k, hash(i) AS v FROM range(1500000) t(i)) TO '{path}' (FORMAT parquet)"
    )
    assert 64 * path.stat().st_size > 256 * 1024**2 // 2  # over the small budget's DuckDB limit
    sql = f"SELECT k, count(*) AS n, sum(v % 7) AS s FROM read_parquet('{data_dir}/*.parquet') GROUP BY k"
    roomy = sidecar.request("query.run", {"sql": sql, "max_rows": 5000}, timeout=80)
    assert "estimate" not in roomy["stats"] and [a["rung"] for a in roomy["stats"]["attempts"]] == ["first"]
    tight = sidecar.request("query.run", {"sql": sql, "max_rows": 5000, "settings": {"memory_limit": "256MiB"}}, timeout=80)
    assert tight["stats"]["estimate"]["input_rows"] == 1_500_000, tight["stats"]
    assert sorted(map(tuple, tight["rows"])) == sorted(map(tuple, roomy["rows"]))
