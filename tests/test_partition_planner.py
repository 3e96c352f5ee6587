"""The planner: shapes recognised and refused, plans as values, and how rows are shared out.

The planner is pure; DuckDB appears here only to evaluate the row filters it writes.
"""

from __future__ import annotations

import ast
import pickle
import re
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.errors import InvalidParams, SqlError
from sidecar.partition import Bucket, Plan, Unsplittable, plan_partitioned
from conftest import examples

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture" / "partitioning-strategies.md"

RECOGNISED = [
    ("SELECT k, count(*) FROM t GROUP BY k", "group_by", ["k"]),
    ("SELECT a + 1 AS x, b, median(v) FROM t GROUP BY ALL", "group_by", ["a + 1", "b"]),
    ("SELECT a + 1 AS x, sum(v) FROM t GROUP BY 1", "group_by", ["a + 1"]),
    ("SELECT x, sum(v) FROM (SELECT a AS x, v FROM t) GROUP BY x ORDER BY 2 LIMIT 4", "group_by", ["x"]),
    ("SELECT sum(v) FROM t GROUP BY ()", "global_aggregate", ["v"]),
    ("SELECT a, b, sum(sum(v)) OVER (PARTITION BY a) FROM t GROUP BY a, b", "group_by", ["a"]),
    ("WITH c AS (SELECT * FROM t) SELECT k, string_agg(s, ',') FROM c GROUP BY k", "group_by", ["k"]),
    ("SELECT t.k, sum(u.w) FROM t JOIN u ON t.k = u.k GROUP BY t.k", "group_by", ["t.k"]),
    ("SELECT DISTINCT a, lower(b) FROM t", "distinct", ["a", "LOWER(b)"]),
    ("SELECT DISTINCT * FROM t", "distinct", ["*COLUMNS(*)"]),
    ("SELECT DISTINCT ON (a) a, b FROM t ORDER BY a, b DESC", "distinct_on", ["a"]),
    ("SELECT a, rank() OVER (PARTITION BY a, b ORDER BY c) FROM t", "window", ["a", "b"]),
    ("SELECT a FROM t QUALIFY lag(c) OVER (PARTITION BY b ORDER BY c) > 1", "window", ["b"]),
    ("SELECT count(DISTINCT x), sum(v), avg(v) FROM t", "global_aggregate", ["x"]),
    ("SELECT sum(v), max(w) FROM t", "global_aggregate", ["v", "w"]),
    ("SELECT count(*) FROM t", "global_aggregate", ["*COLUMNS(*)"]),
]


@pytest.mark.parametrize(("sql", "shape", "keys"), RECOGNISED)
def test_shapes_are_recognised_with_their_split_keys(sql, shape, keys):
    plan = plan_partitioned(sql, 4)
    assert plan.shape == shape
    if keys is not None:
        assert list(plan.key_exprs) == keys
    assert [p.index for p in plan.parts] == [0, 1, 2, 3]
    assert plan.combine.kind == "union_then" and "_parts" in (plan.combine.sql or "")


REFUSED = [
    ("SELECT median(v) FROM t", "global_aggregate", "MEDIAN(v) cannot be re-combined"),
    ("SELECT count(DISTINCT a), count(DISTINCT b) FROM t", "global_aggregate_distinct", "different splits"),
    ("SELECT a FROM t GROUP BY ROLLUP (a)", "grouping_sets", "ROLLUP"),
    ("SELECT a FROM t GROUP BY GROUPING SETS ((a), ())", "grouping_sets", "GROUPING SETS"),
    ("SELECT sum(v) OVER () FROM t", "window_without_partition", "no PARTITION BY"),
    (
        "SELECT sum(v) OVER (PARTITION BY a), sum(v) OVER (PARTITION BY b) FROM t",
        "window_mixed_partitions",
        "different",
    ),
    (
        "SELECT a, sum(v), rank() OVER (PARTITION BY c) FROM t GROUP BY a",
        "group_by_window",
        "not made of group keys",
    ),
    ("SELECT k, count(*) FROM t GROUP BY k LIMIT 3", "limit_without_order", "LIMIT/OFFSET without ORDER BY"),
    ("SELECT a FROM t", "plain_select", "plain SELECT"),
    ("SELECT a FROM t ORDER BY a LIMIT 5", "limit_without_aggregate", "LIMIT"),
    ("SELECT 1; SELECT 2", "several_statements", "2 statements"),
    ("SELECT a FROM t UNION SELECT a FROM u", "set_operation", "UNION"),
    ("PIVOT t ON a USING sum(v)", "pivot", "PIVOT"),
    ("CREATE TABLE x AS SELECT 1", "not_select", "CREATE"),
    (
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT * FROM r",
        "recursive_cte",
        "RECURSIVE",
    ),
    ("SELECT sum(v) OVER w FROM t WINDOW w AS (PARTITION BY a)", "named_window", "WINDOW"),
    ("SELECT a, count(*) FROM t USING SAMPLE 10% GROUP BY a", "sample", "samples"),
    ("SELECT random() AS r, count(*) FROM t GROUP BY 1", "nondeterministic", "different values"),
    ("SELECT 42", "no_from", "no FROM"),
    ("SELECT FROM WHERE", "unparsed", "could not be parsed"),
]


@pytest.mark.parametrize(("sql", "shape", "words"), REFUSED)
def test_unsplittable_shapes_are_refused_with_what_and_how_to_rewrite(sql, shape, words):
    with pytest.raises(Unsplittable) as caught:
        plan_partitioned(sql, 4)
    err = caught.value
    assert isinstance(err, SqlError) and err.code == "SQL_ERROR"
    assert err.details["shape"] == shape
    assert words in err.message, err.message
    assert err.message.startswith("cannot split this query into parts: ")
    assert err.hint and err.hint != SqlError.default_hint


def test_unsplittable_survives_the_worker_boundary():
    with pytest.raises(Unsplittable) as caught:
        plan_partitioned("SELECT median(v) FROM t", 2)
    again = pickle.loads(pickle.dumps(caught.value))
    assert type(again) is Unsplittable and again.to_data() == caught.value.to_data()


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"parts": 0}, "parts must be"),
        ({"parts": True}, "parts must be"),
        ({"parts": 2, "salt": -1}, "salt must be"),
        ({"parts": 2, "within": [Bucket(modulus=4, remainder=1)]}, "new salt"),
        ({"parts": 2, "salt": 1, "within": [Bucket(modulus=4, remainder=4)]}, "outside"),
        ({"parts": 3, "bounds": [1]}, "need 2 bounds"),
        ({"parts": 3, "bounds": [5, 1]}, "ascending"),
    ],
)
def test_bad_parameters_are_invalid_params(kwargs, words):
    with pytest.raises(InvalidParams, match=words):
        plan_partitioned("SELECT a, b FROM t ORDER BY a", **kwargs)


def test_a_full_order_by_needs_bounds_and_bounds_need_a_full_order_by():
    with pytest.raises(InvalidParams, match="pass `bounds`"):
        plan_partitioned("SELECT a FROM t ORDER BY a", 3)
    with pytest.raises(InvalidParams, match="only for"):
        plan_partitioned("SELECT a, count(*) FROM t GROUP BY a ORDER BY a", 2, bounds=[1])


def test_the_range_filter_keeps_an_existing_where_clause_intact():
    plan = plan_partitioned("SELECT a FROM t WHERE b = 1 OR c = 2 ORDER BY a", 2, bounds=[10])
    assert plan.parts[1].sql == "SELECT a FROM t WHERE (b = 1 OR c = 2) AND (a >= 10 OR a IS NULL) ORDER BY a"


def test_plans_round_trip_through_json():
    plans = [plan_partitioned(sql, 3) for sql, _, _ in RECOGNISED]
    plans.append(plan_partitioned("SELECT a FROM t ORDER BY a DESC", 3, bounds=["m", "t"]))
    plans.append(plan_partitioned("SELECT a, count(*) FROM t GROUP BY a", 2, salt=3, within=[Bucket(4, 1)]))
    for plan in plans:
        assert Plan.from_json(plan.to_json()) == plan
        assert msgspec.json.decode(plan.to_json())["combine"]["relation"] == "_parts"


def test_salt_changes_the_assignment():
    con = duckdb.connect()
    sql = "SELECT k, count(*) FROM t GROUP BY k"
    plain, salted = plan_partitioned(sql, 4), plan_partitioned(sql, 4, salt=1)
    assert plain.parts[0].predicate == "HASH(k) % 4 = 0" and salted.parts[0].predicate == "HASH(k, 1) % 4 = 0"
    where = {
        name: con.sql(
            f"SELECT list(k ORDER BY k) FROM range(200) r(k) WHERE {plan.parts[0].predicate}"
        ).fetchall()[0][0]
        for name, plan in (("plain", plain), ("salted", salted))
    }
    assert where["plain"] != where["salted"]


def _holds(con: duckdb.DuckDBPyConnection, predicates: list[str], values: dict[str, Any]) -> list[bool]:
    columns = ", ".join(f"${name} AS {name}" for name in values)
    tests = ", ".join(f"coalesce({p}, false)" for p in predicates)
    return list(con.execute(f"SELECT {tests} FROM (SELECT {columns})", values).fetchall()[0])


KEY_VALUES = st.one_of(st.none(), st.integers(-(2**62), 2**62))
TEXT_VALUES = st.one_of(st.none(), st.text(max_size=8))


@settings(max_examples=examples(150), deadline=None)
@given(a=KEY_VALUES, b=TEXT_VALUES, parts=st.integers(1, 9), salt=st.integers(0, 5))
def test_every_row_goes_to_exactly_one_part(a, b, parts, salt):
    con = duckdb.connect()
    plan = plan_partitioned("SELECT a, b, count(*) FROM t GROUP BY a, b", parts, salt=salt)
    assert sum(_holds(con, [p.predicate for p in plan.parts], {"a": a, "b": b})) == 1


@settings(max_examples=examples(100), deadline=None)
@given(a=KEY_VALUES, b=TEXT_VALUES, outer=st.integers(2, 5), inner=st.integers(2, 5), pick=st.integers(0, 4))
def test_a_resplit_shares_out_exactly_the_rows_of_the_part_it_replaces(a, b, outer, inner, pick):
    con = duckdb.connect()
    sql = "SELECT a, b, count(*) FROM t GROUP BY a, b"
    parent = plan_partitioned(sql, outer).parts[pick % outer]
    children = plan_partitioned(
        sql, inner, salt=1, within=[Bucket(modulus=outer, remainder=pick % outer)]
    ).parts
    in_parent = _holds(con, [parent.predicate], {"a": a, "b": b})[0]
    assert sum(_holds(con, [c.predicate for c in children], {"a": a, "b": b})) == int(in_parent)


def test_a_salted_resplit_really_spreads_the_part():
    con = duckdb.connect()
    children = plan_partitioned(
        "SELECT k, count(*) FROM t GROUP BY k", 4, salt=1, within=[Bucket(4, 2)]
    ).parts
    counts = [
        con.sql(f"SELECT count(*) FROM range(4000) r(k) WHERE {c.predicate}").fetchall()[0][0]
        for c in children
    ]
    assert sum(counts) > 800 and min(counts) > 0.15 * sum(counts), counts


@settings(max_examples=examples(100), deadline=None)
@given(
    value=st.one_of(st.none(), st.integers(-20, 20)),
    bounds=st.lists(st.integers(-15, 15), min_size=1, max_size=5).map(sorted),
    desc=st.booleans(),
    nulls_first=st.booleans(),
)
def test_every_row_goes_to_exactly_one_range_and_ranges_follow_the_order(value, bounds, desc, nulls_first):
    con = duckdb.connect()
    order = f"a {'DESC' if desc else 'ASC'} NULLS {'FIRST' if nulls_first else 'LAST'}"
    plan = plan_partitioned(f"SELECT a FROM t ORDER BY {order}", len(bounds) + 1, bounds=bounds)
    holds = _holds(con, [p.predicate for p in plan.parts], {"a": value})
    assert sum(holds) == 1
    if value is None:
        assert holds.index(True) == (0 if nulls_first else len(bounds))


def test_the_planner_does_no_io_and_imports_no_execution_layer():
    allowed = {
        "__future__",
        "typing",
        "collections",
        "dataclasses",
        "datetime",
        "decimal",
        "re",
        "msgspec",
        "sqlglot",
        "json",  # memory_model parses EXPLAIN's text, handed to it
        "math",
        "sidecar.errors",
        "sidecar.jobs.types",  # values only: test_house checks it depends on msgspec alone
    }
    for path in (ROOT / "sidecar" / "partition").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            else:
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                    assert node.func.id != "open", f"{path.name} opens a file"
                continue
            for module in modules:
                root = module.split(".")[0]
                assert module in allowed or root in allowed or module.startswith("sidecar.partition"), (
                    f"{path.name} imports {module}"
                )


# ---------------------------------------------------------------- the documented examples, text for text


def doc_examples() -> list[tuple[dict[str, str], dict[str, Any]]]:
    text = DOC.read_text(encoding="utf-8")
    found = []
    for block in re.findall(r"<!-- example -->(.*?)<!-- /example -->", text, flags=re.DOTALL):
        fields = {k: v.strip() for k, v in re.findall(r"```sql (\w+)\n(.*?)```", block, flags=re.DOTALL)}
        params = {
            k: ast.literal_eval(v) for k, v in re.findall(r"^- (\w+): `(.*?)`$", block, flags=re.MULTILINE)
        }
        if "within" in params:
            params["within"] = msgspec.convert(params["within"], list[Bucket])
        found.append((fields, params))
    return found


def test_the_strategies_page_has_an_example_for_every_shape():
    shapes = {plan_partitioned(fields["input"], **params).shape for fields, params in doc_examples()}
    assert shapes >= {"group_by", "distinct", "window", "global_aggregate", "sorted_ranges"}


@pytest.mark.parametrize("index", range(len(doc_examples())))
def test_each_documented_example_plans_to_exactly_the_documented_sql(index):
    fields, params = doc_examples()[index]
    plan = plan_partitioned(fields["input"], **params)
    shown = [name for name in fields if name.startswith("part_")]
    assert shown, "an example shows at least one part"
    for name in shown:
        assert plan.parts[int(name.removeprefix("part_"))].sql == fields[name]
    assert (plan.combine.sql or "none") == fields["combine"]
