"""Equi-join splitting (sidecar/partition/joins.py): every join type, composite keys, NULL keys,
duplicates and empty sides, run whole and as parts in real DuckDB and compared as multisets."""

from __future__ import annotations

from collections import Counter
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidecar.partition import Bucket, Plan, Unsplittable, plan_partitioned
from sidecar.partition.answer import CannotSplit, HashSplit, how_to_split
from sidecar.partition.joins import check_key_types, key_types_sql

KINDS = ["JOIN", "LEFT JOIN", "RIGHT JOIN", "FULL OUTER JOIN", "SEMI JOIN", "ANTI JOIN"]
CONDITIONS = [
    "ON a.k1 = b.k1",
    "ON b.k1 = a.k1 AND a.k2 = b.k2",  # composite, one pair written right-to-left
    "USING (k1, k2)",
    "ON a.k1 = b.k1 AND b.w > 0",  # a residual condition on one side
    "ON a.k1 IS NOT DISTINCT FROM b.k1",  # NULL keys match each other
    "ON a.k2 = lower(b.k2)",  # a key expression, hashed as written
]


def load(con: duckdb.DuckDBPyConnection, a: list[tuple[Any, ...]], b: list[tuple[Any, ...]]) -> None:
    con.execute("CREATE OR REPLACE TABLE a (k1 INTEGER, k2 VARCHAR, v INTEGER)")
    con.execute("CREATE OR REPLACE TABLE b (k1 INTEGER, k2 VARCHAR, w INTEGER)")
    if a:
        con.executemany("INSERT INTO a VALUES (?, ?, ?)", a)
    if b:
        con.executemany("INSERT INTO b VALUES (?, ?, ?)", b)


def run_parts(con: duckdb.DuckDBPyConnection, plan: Plan) -> Counter[tuple[Any, ...]]:
    """The union of the parts' rows (the combine of an unordered join passes them through)."""
    assert plan.combine.sql == "SELECT * FROM _parts", plan.combine.sql
    rows: Counter[tuple[Any, ...]] = Counter()
    for part in plan.parts:
        rows.update(con.execute(part.sql).fetchall())
    return rows


def same_as_whole(con: duckdb.DuckDBPyConnection, sql: str, parts: int) -> Plan:
    plan = plan_partitioned(sql, parts)
    assert plan.shape == "join" and len(plan.parts) == parts
    types = [row[1] for row in con.execute(key_types_sql(sql)).fetchall()]
    check_key_types(sql, types)
    assert run_parts(con, plan) == Counter(con.execute(sql).fetchall()), plan.parts[0].sql
    return plan


# duplicates, NULL in either key column, keys only one side has, "Y" that only lower() matches
ROWS_A = [(1, "x", 10), (1, "x", 11), (2, "y", 2), (None, "x", 3), (3, None, 4), (None, None, 5), (7, "z", 7)]
ROWS_B = [(1, "x", 1), (1, "x", -2), (2, "Y", 3), (None, "x", 4), (3, None, 5), (None, None, 6), (8, "q", 8)]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("condition", CONDITIONS)
def test_every_join_type_and_key_form_equals_the_whole_join(kind: str, condition: str) -> None:
    con = duckdb.connect()
    load(con, ROWS_A, ROWS_B)
    for parts in (1, 2, 3, 5):
        same_as_whole(con, f"SELECT * FROM a {kind} b {condition}", parts)


@pytest.mark.parametrize("kind", KINDS)
def test_empty_sides(kind: str) -> None:
    con = duckdb.connect()
    for a, b in ((ROWS_A, []), ([], ROWS_B), ([], [])):
        load(con, a, b)
        same_as_whole(con, f"SELECT * FROM a {kind} b ON a.k1 = b.k1", 3)


def test_null_keyed_rows_of_a_preserved_side_come_out_exactly_once() -> None:
    con = duckdb.connect()
    load(con, [(None, None, i) for i in range(5)], [(None, None, 100 + i) for i in range(5)])
    plan = same_as_whole(con, "SELECT * FROM a FULL JOIN b ON a.k1 = b.k1 AND a.k2 = b.k2", 4)
    assert sum(run_parts(con, plan).values()) == 10  # five unmatched rows of each side, once each


def test_a_salted_resplit_of_one_part_gives_that_parts_rows() -> None:
    con = duckdb.connect()
    load(con, [(i % 7, str(i % 3), i) for i in range(60)], [(i % 5, str(i % 3), i) for i in range(40)])
    sql = "SELECT a.v, b.w FROM a LEFT JOIN b USING (k1, k2)"
    whole = plan_partitioned(sql, 3)
    for part in whole.parts:
        sub = plan_partitioned(sql, 4, salt=1, within=[Bucket(3, part.index)])
        assert run_parts(con, sub) == Counter(con.execute(part.sql).fetchall())


def test_the_outer_query_filters_projects_and_orders_the_joined_rows() -> None:
    con = duckdb.connect()
    load(con, [(i % 9, str(i % 4), i) for i in range(80)], [(i % 6, str(i % 4), i) for i in range(50)])
    sql = (
        "SELECT a.v + coalesce(b.w, 0) AS s, b.k2 FROM a LEFT JOIN b USING (k1) WHERE a.v % 3 <> 0 "
        "ORDER BY s DESC, b.k2 LIMIT 10"
    )
    plan = plan_partitioned(sql, 3)
    con.execute("CREATE TABLE _parts AS " + " UNION ALL ".join(f"({p.sql})" for p in plan.parts))
    assert plan.combine.sql is not None
    assert con.execute(plan.combine.sql).fetchall() == con.execute(sql).fetchall()


KEY = st.one_of(st.none(), st.integers(-3, 3))
ROW = st.tuples(KEY, st.sampled_from([None, "p", "q"]), st.integers(-5, 5))


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    a=st.lists(ROW, max_size=25),
    b=st.lists(ROW, max_size=25),
    kind=st.sampled_from(KINDS),
    condition=st.sampled_from(CONDITIONS[:5]),
    parts=st.integers(1, 6),
)
def test_random_sides_split_to_the_whole_join(a, b, kind, condition, parts) -> None:
    con = duckdb.connect()
    load(con, a, b)
    same_as_whole(con, f"SELECT * FROM a {kind} b {condition}", parts)


def test_keys_of_different_types_are_refused_with_a_cast_hint() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE a AS SELECT -1::INTEGER AS k")
    con.execute("CREATE TABLE b AS SELECT -1::BIGINT AS k")
    sql = "SELECT * FROM a JOIN b ON a.k = b.k"
    # the reason: split anyway, the matching pair lands in different parts and the answer loses it
    whole = Counter(con.execute(sql).fetchall())
    assert any(run_parts(con, plan_partitioned(sql, n)) != whole for n in range(2, 6))
    types = [row[1] for row in con.execute(key_types_sql(sql)).fetchall()]
    with pytest.raises(Unsplittable) as refused:
        check_key_types(sql, types)
    assert refused.value.details["shape"] == "join_key_types"
    assert "CAST(b.k AS INTEGER)" in (refused.value.hint or "")
    fixed = "SELECT * FROM a JOIN b ON a.k = CAST(b.k AS INTEGER)"
    check_key_types(fixed, [row[1] for row in con.execute(key_types_sql(fixed)).fetchall()])
    assert run_parts(con, plan_partitioned(fixed, 2)) == Counter(con.execute(fixed).fetchall())


@pytest.mark.parametrize(
    ("sql", "shape"),
    [
        ("SELECT * FROM a JOIN b ON a.k1 = b.k1 JOIN c ON c.k1 = a.k1", "join_many"),
        ("SELECT * FROM a CROSS JOIN b", "join_kind"),
        ("SELECT * FROM a ASOF JOIN b ON a.k1 = b.k1 AND a.v >= b.w", "join_kind"),
        ("SELECT * FROM a POSITIONAL JOIN b", "join_kind"),
        ("SELECT * FROM a NATURAL JOIN b", "join_kind"),
        ("SELECT * FROM a JOIN b ON a.k1 < b.k1", "join_without_key"),
        ("SELECT * FROM a JOIN b ON k1 = w", "join_without_key"),  # unqualified: which side is which?
        ("SELECT * FROM a JOIN b ON a.k1 = b.k1 OR a.k2 = b.k2", "join_without_key"),
        ("SELECT * FROM read_parquet('a.parquet') JOIN b USING (k1)", "join_unnamed"),
        ("SELECT * FROM a JOIN a USING (k1)", "join_unnamed"),
        ("SELECT * FROM a JOIN b ON a.k1 = b.k1 LIMIT 5", "limit_without_order"),
    ],
)
def test_joins_that_do_not_split_say_why(sql: str, shape: str) -> None:
    answer = how_to_split(sql, 2)
    assert isinstance(answer, CannotSplit) and answer.shape == shape, answer
    assert answer.hint


def test_a_grouped_join_still_splits_by_its_group_keys_and_a_sorted_one_by_ranges() -> None:
    grouped = how_to_split("SELECT a.k2, count(*) FROM a JOIN b USING (k1) GROUP BY a.k2", 2)
    assert isinstance(grouped, HashSplit) and grouped.plan.shape == "group_by"
    assert type(how_to_split("SELECT * FROM a JOIN b USING (k1) ORDER BY a.v", 2)).__name__ == "RangeSplit"
