"""Differential tests: a plan's parts and combine, run in real DuckDB, equal the single query.

Every part writes its result to its own DuckDB file in tmp_path (the local executor's way:
it keeps HUGEINT, which Parquet would turn into DOUBLE); the combine reads their union
as `_parts`. Results compare as multisets (floats within tolerance, list() results as
sorted lists, string_agg results as sets); ORDER BY results compare as sequences.
"""

from __future__ import annotations

import ast
import decimal
import functools
import math
import random
import re
import tempfile
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import pytest
import sqlglot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidecar.partition import PARTS_RELATION, Bucket, Plan, plan_partitioned
from sidecar.partition.answer import CannotSplit, how_to_split
from sidecar.partition.shapes import AGGREGATE_NAMES
from conftest import examples

DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture" / "partitioning-strategies.md"


# ---------------------------------------------------------------- data and an executor for tests


def make_data(con: duckdb.DuckDBPyConnection, *, seed: int = 7, rows: int = 240) -> None:
    """t: skewed keys with NULLs; u: a small dimension for joins; empty: no rows at all."""
    rng = random.Random(seed)

    def maybe(value: Any, p: float = 0.12) -> Any:
        return None if rng.random() < p else value

    data = []
    for i in range(rows):
        g1 = 1 if rng.random() < 0.4 else rng.randint(0, 9)  # one heavy key
        data.append(
            (
                maybe(g1),
                maybe(rng.choice(["a", "b", "c", "dd", "é"])),
                maybe(round(rng.uniform(-50, 50), 3)),
                maybe(rng.randint(-(2**40), 2**40)),
                maybe(f"s{rng.randint(0, 30)}"),
                maybe(decimal.Decimal(rng.randint(-9999, 9999)) / 100),
                i,
            )
        )
    con.execute(
        "CREATE TABLE t (g1 INTEGER, g2 VARCHAR, v DOUBLE, n BIGINT, s VARCHAR, d DECIMAL(10, 2), id INTEGER)"
    )
    con.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?)", data)
    con.execute("CREATE TABLE u AS SELECT range::INTEGER AS g1, (range * 10)::INTEGER AS w FROM range(6)")
    con.execute("INSERT INTO u VALUES (1, 11), (NULL, 99)")
    con.execute("CREATE TABLE empty AS SELECT * FROM t WHERE false")


@functools.cache
def shared_connection() -> duckdb.DuckDBPyConnection:
    """One read-only-by-convention database for the property test (built on first use)."""
    con = duckdb.connect()
    make_data(con)
    return con


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    make_data(con)
    return con


def run_plan(
    con: duckdb.DuckDBPyConnection, plan: Plan, workdir: Path
) -> tuple[list[tuple[Any, ...]], list[str]]:
    """Run each part into its own DuckDB file, then the combine over their union."""
    workdir.mkdir(parents=True, exist_ok=True)
    names = []
    for part in plan.parts:
        name = f"part_{part.index}"
        con.execute(f"ATTACH '{workdir / name}.duckdb' AS {name}")
        con.execute(f"CREATE TABLE {name}.result AS {part.sql}")
        con.execute(f"DETACH {name}")
        names.append(name)
    for name in names:
        con.execute(f"ATTACH '{workdir / name}.duckdb' AS {name} (READ_ONLY)")
    try:
        if plan.combine.kind == "concat_in_order":
            rows: list[tuple[Any, ...]] = []
            for name in names:
                rows.extend(con.execute(f"SELECT * FROM {name}.result").fetchall())
            types = [str(t) for t in con.sql(f"SELECT * FROM {names[0]}.result").types]
            return rows, types
        union = " UNION ALL ".join(f"SELECT * FROM {name}.result" for name in names)
        con.execute(f"CREATE OR REPLACE TEMP VIEW {PARTS_RELATION} AS {union}")
        assert plan.combine.sql is not None
        relation = con.sql(plan.combine.sql)
        return relation.fetchall(), [str(t) for t in relation.types]
    finally:
        for name in names:
            con.execute(f"DETACH {name}")


def run_single(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[list[tuple[Any, ...]], list[str]]:
    relation = con.sql(sql)
    return relation.fetchall(), [str(t) for t in relation.types]


def _norm(value: Any, column: str) -> Any:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else float(f"{value:.9g}")
    if isinstance(value, list):
        return tuple(sorted((_norm(v, column) for v in value), key=repr))
    if isinstance(value, str) and column.startswith("sa_"):
        return tuple(sorted(value.split(",")))
    if isinstance(value, decimal.Decimal):
        return value.normalize()
    return value


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    return bool(a == b)


def assert_same(
    expected: list[tuple[Any, ...]], got: list[tuple[Any, ...]], columns: list[str], *, ordered: bool
) -> None:
    norm_e = [tuple(_norm(v, c) for v, c in zip(row, columns)) for row in expected]
    norm_g = [tuple(_norm(v, c) for v, c in zip(row, columns)) for row in got]
    if not ordered:
        norm_e.sort(key=repr)
        norm_g.sort(key=repr)
    assert len(norm_e) == len(norm_g), f"{len(norm_g)} rows, expected {len(norm_e)}"
    for e, g in zip(norm_e, norm_g):
        assert _close(e, g), f"row {g!r} != expected {e!r}"


def check(con: duckdb.DuckDBPyConnection, sql: str, parts: int, workdir: Path, **kwargs: Any) -> Plan:
    """Plan `sql`, run it whole and as parts plus combine, and compare (types too)."""
    plan = plan_partitioned(sql, parts, **kwargs)
    expected, expected_types = run_single(con, sql)
    got, got_types = run_plan(con, plan, workdir)
    assert got_types == expected_types, plan.combine.sql
    columns = con.sql(sql).columns
    ordered = sqlglot.parse_one(sql, read="duckdb").args.get("order") is not None
    assert_same(expected, got, columns, ordered=ordered)
    return plan


# ---------------------------------------------------------------- every supported shape

SHAPES = [
    "SELECT g1, count(*), sum(v), min(s), max(n), avg(d) FROM t GROUP BY g1",
    "SELECT g1, g2, median(v), quantile_cont(v, 0.9), quantile_disc(n, 0.5) FROM t GROUP BY g1, g2",
    "SELECT g2, list(id) AS l, string_agg(s, ',') AS sa_s, count(DISTINCT s) FROM t GROUP BY ALL",
    "SELECT g1 % 3 AS k, sum(n), count(v) FROM t WHERE v > 0 GROUP BY k HAVING count(*) > 2",
    "SELECT g1, g2, sum(n) AS total FROM t GROUP BY 1, 2 ORDER BY total DESC NULLS LAST, g1, g2 LIMIT 7",
    "SELECT g1, count(*) FROM t GROUP BY g1 ORDER BY count(*) DESC, g1 LIMIT 3 OFFSET 1",
    "SELECT g2, sum(v) FROM t GROUP BY g2 ORDER BY max(id)",
    "SELECT t.g1, sum(u.w), count(*) FROM t JOIN u ON t.g1 = u.g1 GROUP BY t.g1",
    "SELECT g2, sum(n) FROM t LEFT JOIN u USING (g1) GROUP BY g2",
    "WITH c AS (SELECT g1, v FROM t WHERE v IS NOT NULL) SELECT g1, median(v), list(v) FROM c GROUP BY g1",
    "SELECT g1, g2, sum(v), sum(sum(v)) OVER (PARTITION BY g1) FROM t GROUP BY g1, g2",
    "SELECT g1, count(*) FROM empty GROUP BY g1",
    "SELECT DISTINCT g1, g2 FROM t",
    "SELECT DISTINCT g2, s FROM t ORDER BY s, g2",
    "SELECT DISTINCT * FROM u",
    "SELECT DISTINCT ON (g1) g1, id, v FROM t ORDER BY g1, id DESC",
    "SELECT g1, id, row_number() OVER (PARTITION BY g1 ORDER BY id) AS rn FROM t",
    "SELECT g1, id, sum(v) OVER (PARTITION BY g1 ORDER BY id), lag(s) OVER (PARTITION BY g1 ORDER BY id) FROM t",
    "SELECT g1, g2, id FROM t QUALIFY row_number() OVER (PARTITION BY g1, g2 ORDER BY id) <= 2 ORDER BY g1, g2, id",
    "SELECT count(DISTINCT g2) FROM t",
    "SELECT count(DISTINCT s), count(*), sum(v), min(n), max(d), avg(v), count(v) FILTER (WHERE v > 0) FROM t",
    "SELECT sum(n), count(*), avg(d), bool_or(v > 40), bit_xor(id) FROM t",
    "SELECT count(*) FROM t",
    "SELECT sum(DISTINCT g1), avg(DISTINCT g1), count(DISTINCT g1) FROM t",
    "SELECT sum(v) / count(*) AS mean, max(v) - min(v) AS spread FROM t WHERE g1 <> 1",
    "SELECT count(*), sum(v) FROM empty",
    "SELECT count(*) AS n FROM t JOIN u USING (g1) HAVING count(*) > 0",
]


# A row-wise outer query over a subquery or CTE that splits by keys: split by the same keys (issue 11).
THROUGH = [
    # top-2 per group as a filter over a windowed subquery, how db-benchmark writes it
    "SELECT g1, v, r FROM (SELECT g1, v, row_number() OVER (PARTITION BY g1 ORDER BY v DESC, id) AS r "
    "FROM t WHERE v IS NOT NULL) WHERE r <= 2",
    # a window by two keys under a projection and a filter, ordered outside
    "SELECT g1, g2, id, s * 2 AS twice FROM (SELECT g1, g2, id, sum(v) OVER (PARTITION BY g1, g2) AS s FROM t) sub "
    "WHERE s > 0 ORDER BY g1 NULLS FIRST, g2 NULLS FIRST, id",
    # a GROUP BY inside a CTE the outer query only filters and orders (top-N pushed into the parts)
    "WITH g AS (SELECT g1, g2, sum(n) AS total, count(*) AS c FROM t GROUP BY g1, g2) "
    "SELECT g2, total FROM g WHERE c > 1 ORDER BY total DESC NULLS LAST, g2 LIMIT 5",
    # the same through two row-wise levels, and a GROUP BY with HAVING in a FROM subquery
    "SELECT k, c FROM (SELECT * FROM (SELECT g1 % 3 AS k, count(*) AS c FROM t GROUP BY k HAVING count(*) > 2)) x "
    "WHERE c < 1000",
    # DISTINCT in a CTE, joined inside the CTE, filtered outside
    "WITH d AS (SELECT DISTINCT t.g1, u.w FROM t JOIN u ON t.g1 = u.g1) SELECT * FROM d WHERE w > 5",
]


@pytest.mark.parametrize("parts", [2, 5])
@pytest.mark.parametrize("sql", THROUGH)
def test_a_row_wise_query_over_a_splittable_subquery_or_cte_splits_by_its_keys(con, tmp_path, sql, parts):
    plan = check(con, sql, parts, tmp_path)
    assert plan.shape in ("window", "group_by", "distinct")
    assert all(part.predicate in part.sql for part in plan.parts)
    assert any("split through a subquery or CTE" in note for note in plan.notes)


@pytest.mark.parametrize(
    ("sql", "shape"),
    [
        # the CTE is read twice: filtering it for one reader would filter it for the other
        ("WITH g AS (SELECT g1, count(*) AS c FROM t GROUP BY g1) SELECT * FROM g WHERE c > (SELECT avg(c) FROM g)",
         "plain_select"),
        # a LIMIT inside the source picks rows of the whole source
        ("SELECT * FROM (SELECT g1, count(*) AS c FROM t GROUP BY g1 ORDER BY c LIMIT 3) WHERE c > 1",
         "plain_select"),
        # nothing under the outer query splits by keys: a plain SELECT over a plain subquery
        ("SELECT * FROM (SELECT g1, v FROM t) WHERE v > 0", "plain_select"),
    ],
)
def test_what_is_not_seen_through_is_refused_by_its_outer_shape(sql, shape):
    answer = how_to_split(sql, 2)
    assert isinstance(answer, CannotSplit) and answer.shape == shape, answer


@pytest.mark.parametrize("parts", [2, 3, 7])
@pytest.mark.parametrize("sql", SHAPES)
def test_every_supported_shape_matches_the_single_query(con, tmp_path, sql, parts):
    check(con, sql, parts, tmp_path)


@pytest.mark.parametrize("salt", [1, 5])
def test_a_salted_plan_and_a_resplit_part_stay_exact(con, tmp_path, salt):
    sql = "SELECT g1, g2, median(v), count(*) FROM t GROUP BY g1, g2"
    check(con, sql, 3, tmp_path / "salted", salt=salt)
    # Part 1 of a 3-way plan, split again 4 ways with a salt: together with parts 0 and 2 it is the answer.
    outer = plan_partitioned(sql, 3)
    inner = plan_partitioned(sql, 4, salt=salt, within=[Bucket(modulus=3, remainder=1)])
    assert inner.combine == outer.combine, "the combine does not depend on how many part results there are"
    parts = (outer.parts[0], *inner.parts, outer.parts[2])
    mixed = msgspec.structs.replace(
        outer, parts=tuple(msgspec.structs.replace(p, index=i) for i, p in enumerate(parts))
    )
    got, _ = run_plan(con, mixed, tmp_path / "mixed")
    assert_same(run_single(con, sql)[0], got, con.sql(sql).columns, ordered=False)


@pytest.mark.parametrize(
    ("sql", "key"),
    [
        ("SELECT id, g1, v FROM t ORDER BY v, id", "v"),
        ("SELECT id, g1, v FROM t ORDER BY v DESC, id", "v"),
        ("SELECT id, s, g2 FROM t ORDER BY s NULLS FIRST, id", "s"),
        ("SELECT id, v * 2 AS twice FROM t WHERE g1 > 2 ORDER BY twice DESC NULLS FIRST, id", "v * 2"),
        ("SELECT id, n FROM t ORDER BY 2, 1", "n"),
    ],
)
@pytest.mark.parametrize("fractions", [[0.5], [0.2, 0.4, 0.9], [0.0, 0.5, 1.0]])
def test_a_full_order_by_splits_by_ranges_and_concatenates_in_order(con, tmp_path, sql, key, fractions):
    bounds = con.execute(f"SELECT quantile_disc({key}, {fractions}) FROM t").fetchall()[0][0]
    plan = check(con, sql, len(bounds) + 1, tmp_path, bounds=bounds)
    assert plan.combine.kind == "concat_in_order"


def test_bounds_outside_the_data_leave_empty_parts(con, tmp_path):
    plan = check(con, "SELECT id, g1 FROM t ORDER BY g1 DESC, id", 4, tmp_path, bounds=[-100, 50, 60])
    sizes = [con.execute(f"SELECT count(*) FROM ({p.sql})").fetchall()[0][0] for p in plan.parts]
    assert sizes[0] == 0 and sizes[1] == 0 and sum(sizes) == 240


def test_null_keys_hash_to_a_value_so_the_null_group_lands_in_one_part(con):
    assert con.execute("SELECT hash(NULL) IS NOT NULL, hash(NULL) = hash(NULL::INTEGER)").fetchall()[0] == (
        True,
        True,
    )
    plan = plan_partitioned("SELECT g1, count(*) FROM t GROUP BY g1", 5)
    holding = [
        p.index
        for p in plan.parts
        if con.execute(f"SELECT count(*) FROM ({p.sql}) WHERE g1 IS NULL").fetchall()[0][0]
    ]
    assert len(holding) == 1


def test_empty_parts_are_harmless(con, tmp_path):
    plan = check(con, "SELECT g2, count(*), list(v) FROM t GROUP BY g2", 7, tmp_path)  # 6 keys, 7 parts
    sizes = [con.execute(f"SELECT count(*) FROM ({p.sql})").fetchall()[0][0] for p in plan.parts]
    assert 0 in sizes


def test_parquet_part_files_work_but_turn_hugeint_into_double(con, tmp_path):
    """Why the local executor keeps part results in DuckDB files: sum(BIGINT) is HUGEINT."""
    plan = plan_partitioned("SELECT g1, sum(n) AS total, count(*) FROM t GROUP BY g1", 3)
    files = []
    for part in plan.parts:
        path = tmp_path / f"part-{part.index}.parquet"
        con.execute(f"COPY ({part.sql}) TO '{path}' (FORMAT parquet)")
        files.append(str(path))
    con.execute(f"CREATE TEMP VIEW {PARTS_RELATION} AS SELECT * FROM read_parquet({files!r})")
    relation = con.sql(plan.combine.sql)
    assert [str(t) for t in relation.types] == ["INTEGER", "DOUBLE", "BIGINT"]
    assert con.sql("SELECT g1, sum(n) FROM t GROUP BY g1").types[1] == duckdb.sqltype("HUGEINT")


def test_the_embedded_aggregate_names_are_duckdbs():
    con = duckdb.connect()
    names = {
        r[0]
        for r in con.execute(
            "SELECT function_name FROM duckdb_functions() WHERE function_type = 'aggregate'"
        ).fetchall()
    }
    assert names == set(AGGREGATE_NAMES)


# ---------------------------------------------------------------- the documented examples run


def doc_examples() -> list[dict[str, Any]]:
    text = DOC.read_text(encoding="utf-8")
    examples = []
    for block in re.findall(r"<!-- example -->(.*?)<!-- /example -->", text, flags=re.DOTALL):
        fields = dict(re.findall(r"```sql (\w+)\n(.*?)```", block, flags=re.DOTALL))
        params = dict(re.findall(r"^- (\w+): `(.*?)`$", block, flags=re.MULTILINE))
        examples.append({"fields": {k: v.strip() for k, v in fields.items()}, "params": params})
    return examples


@pytest.mark.parametrize("index", range(len(doc_examples())) if DOC.exists() else [])
def test_each_documented_example_runs_to_the_single_querys_answer(con, tmp_path, index):
    example = doc_examples()[index]
    params = {k: ast.literal_eval(v) for k, v in example["params"].items()}
    sql = example["fields"]["input"]
    if "within" not in params:
        check(con, sql, workdir=tmp_path, **params)
        return
    # A re-split: its sub-parts together must give exactly the part they replace.
    within = msgspec.convert(params.pop("within"), list[Bucket])
    (bucket,) = within
    replaced = plan_partitioned(sql, bucket.modulus).parts[bucket.remainder]
    got, _ = run_plan(con, plan_partitioned(sql, within=within, **params), tmp_path)
    assert_same(run_single(con, replaced.sql)[0], got, con.sql(sql).columns, ordered=False)


# ---------------------------------------------------------------- property-generated queries

KEYS = ["g1", "g2", "g1 % 3", "lower(g2)"]
AGGREGATES = {
    "sum": "sum(v)",
    "count": "count(n)",
    "count_star": "count(*)",
    "min": "min(s)",
    "max": "max(n)",
    "avg": "avg(v)",
    "median": "median(v)",
    "count_distinct": "count(DISTINCT s)",
    "list": "list(id)",
    "string_agg": "string_agg(s, ',')",
}
GLOBAL_OK = ["sum", "count", "count_star", "min", "max", "avg", "count_distinct"]


@st.composite
def grouped_queries(draw: st.DrawFn) -> tuple[str, int, int]:
    keys = draw(st.lists(st.sampled_from(KEYS), min_size=0, max_size=2, unique=True))
    pool = sorted(AGGREGATES) if keys else GLOBAL_OK
    aggs = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=4, unique=True))
    select = [f"{k} AS k{i}" for i, k in enumerate(keys)]
    select += [f"{AGGREGATES[a]} AS {'sa_' if a == 'string_agg' else ''}a{i}" for i, a in enumerate(aggs)]
    table = draw(st.sampled_from(["t", "t", "t", "empty", "t JOIN u USING (g1)"]))
    where = draw(st.sampled_from(["", " WHERE v > -20", " WHERE g2 IS NOT NULL OR n > 0"]))
    sql = f"SELECT {', '.join(select)} FROM {table}{where}"
    if keys:
        sql += " GROUP BY " + ", ".join(f"k{i}" for i in range(len(keys)))
        if draw(st.booleans()):
            sql += " HAVING count(*) > 3"
        if draw(st.booleans()):
            order = ", ".join(f"k{i}" for i in range(len(keys)))
            sql += f" ORDER BY {order}" + (f" LIMIT {draw(st.integers(0, 6))}" if draw(st.booleans()) else "")
    return sql, draw(st.integers(2, 7)), draw(st.integers(0, 3))


@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(grouped_queries())
def test_property_generated_queries_match_the_single_query(query):
    sql, parts, salt = query
    con = shared_connection().cursor()
    with tempfile.TemporaryDirectory() as tmp:
        check(con, sql, parts, Path(tmp), salt=salt)
