"""A value inside a UNION encodes as the same value in a column of its own (docs/protocol.md's
value table), for every leaf type that DuckDB hands to Python as text, at every depth.

DuckDB hands a UNION's member over untagged, so the encoder tells the one text-valued member
by its Python class; these tests hold it to the top-level encoding of the same literal.
"""

from __future__ import annotations

from typing import Any, Callable

import duckdb
import msgspec
import pytest

from sidecar.engine.encode import execute_encoded

TEXT_VALUED = [
    ("BIGNUM", "'0'::BIGNUM"),
    ("BIGNUM", "'-9007199254740991'::BIGNUM"),
    ("BIGNUM", "'123456789012345678901234567890'::BIGNUM"),
    ("VARCHAR", "'12'"),
    ("JSON", "'{\"k\": 1}'::JSON"),
    ("ENUM('a', 'b')", "'b'::ENUM('a', 'b')"),
    ("BIT", "'0101'::BIT"),
    ("DATE", "DATE 'infinity'"),
    ("TIME", "TIME '12:30:00.25'"),
    ("TIMETZ", "TIMETZ '12:00:00+01:00'"),
    ("TIMESTAMP", "TIMESTAMP '2024-02-29 12:00:00.5'"),
    ("TIMESTAMP_S", "TIMESTAMP_S '2024-02-29 12:00:00'"),
    ("TIMESTAMP_MS", "TIMESTAMP_MS '2024-02-29 12:00:00.123'"),
    ("TIMESTAMP_NS", "TIMESTAMP_NS '2024-02-29 12:00:00.123456789'"),
    ("TIMESTAMPTZ", "TIMESTAMPTZ '2019-12-31 19:00:00.25-05'"),
    ("INTERVAL", "(to_months(14) + to_days(-3) + to_microseconds(6789000))"),
]

# (SQL around a UNION expression, the same shape around its encoded value); depth 0 to 3.
WRAPPERS: list[tuple[str, Callable[[str], str], Callable[[Any], Any]]] = [
    ("bare", lambda u: u, lambda v: v),
    ("list", lambda u: f"[{u}]", lambda v: [v]),
    ("struct", lambda u: f"{{'f': {u}}}", lambda v: {"f": v}),
    ("map value", lambda u: f"MAP {{1: {u}}}", lambda v: {"1": v}),
    ("array of struct of list", lambda u: f"[{{'f': [{u}, NULL]}}]::STRUCT(f {{}}[])[1]", lambda v: [{"f": [v, None]}]),
]


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'Asia/Kolkata'")  # TIMESTAMPTZ must still come out in UTC
    return con


def encoded(con: duckdb.DuckDBPyConnection, expr: str) -> Any:
    """The JSON a query.run row would carry for `SELECT expr`."""
    (statement,) = con.extract_statements(f"SELECT {expr} AS v")
    encoding = execute_encoded(con, statement, None)
    (row,) = msgspec.json.decode(msgspec.json.encode(encoding.rows(con.fetchall())))
    return row[0]


def test_the_bignum_in_a_union_that_the_property_test_found_is_a_number(con):
    sql = """CAST(union_value("a" := '0'::BIGNUM)::UNION("a" BIGNUM) AS UNION("a" BIGNUM))"""
    assert encoded(con, sql) == 0
    assert encoded(con, "'0'::BIGNUM") == 0


@pytest.mark.parametrize("wrapper", WRAPPERS, ids=[w[0] for w in WRAPPERS])
@pytest.mark.parametrize("type_sql, literal", TEXT_VALUED, ids=[f"{t}={l}" for t, l in TEXT_VALUED])
def test_a_text_valued_member_encodes_as_it_does_at_top_level(con, type_sql, literal, wrapper):
    _, around, shaped = wrapper
    union_type = f"UNION(m {type_sql}, n INTEGER, o DOUBLE)"
    member = f"union_value(m := {literal})::{union_type}"
    sql = around(member).replace("{}", union_type)
    assert encoded(con, sql) == shaped(encoded(con, literal))


@pytest.mark.parametrize("type_sql, literal", TEXT_VALUED[:1] + TEXT_VALUED[7:8])
def test_the_other_members_of_such_a_union_keep_their_own_encoding(con, type_sql, literal):
    union_type = f"UNION(m {type_sql}, n BIGINT, o DOUBLE)"
    assert encoded(con, f"[union_value(n := 9007199254740993)::{union_type}]") == ["9007199254740993"]
    assert encoded(con, f"[union_value(o := 'nan'::DOUBLE)::{union_type}]") == ["NaN"]


def test_a_union_with_two_text_valued_members_gives_duckdbs_text_as_the_value_table_says(con):
    union_type = "UNION(m BIGNUM, t VARCHAR, d DATE)"
    assert encoded(con, f"[union_value(m := '5'::BIGNUM)::{union_type}]") == ["5"]
    assert encoded(con, f"[union_value(d := DATE 'infinity')::{union_type}]") == ["infinity"]
