"""Cheap statements skip what cannot matter to them (the guard's sqlglot parse, the up-front
estimate), and the guard still refuses every path written as a table, whatever word names it."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
import sqlglot
from sqlglot import exp

from sidecar.engine import guard
from sidecar.errors import AccessDenied
from sidecar.jobs.statements import shape_of
from sidecar.partition.answer import CannotSplit, how_to_split

NO_TABLE = [
    "SELECT 42",
    "select 1 AS a, 'x' AS b",
    "SELECT '/etc/hostname' AS path",
    "SELECT '~/x', 'a\\\\b', now(), current_date + 1",
    "(SELECT 1) UNION ALL (SELECT 2)",
    "SELECT median(42), quantile_cont(1, 0.5), count(*)",
    "SELECT 1 GROUP BY 1 ORDER BY 1",
    "SELECT list_sum(range(10))",
    "SELECT (VALUES (1))",
    "SELECT getvariable('a')",
]

TABLE_AS_PATH = [
    "SELECT * FROM '/etc/hostname'",
    "SELECT 1 WHERE EXISTS (FROM '/etc/hostname')",
    "SELECT 1 AS x FROM range(1) JOIN '/etc/hostname' ON true",
    "SELECT (SELECT count(*) FROM '/etc/hostname')",
]

READ_WITHOUT_FROM = [
    "SELECT (TABLE t)",
    "SELECT EXISTS (TABLE t)",
    "SELECT 1 IN (TABLE t)",
    "SELECT (PIVOT t ON a)",
    "SELECT (SHOW TABLES)",
    "TABLE t",
]
"""DuckDB reads a table in these without FROM: they are never taken for cheap."""


@pytest.mark.parametrize("sql", NO_TABLE)
def test_a_statement_that_names_no_table_has_none_to_check_or_split(sql):
    assert guard.names_no_table(sql)
    assert not [t for tree in sqlglot.parse(sql, read="duckdb") if tree for t in tree.find_all(exp.Table)]
    assert isinstance(how_to_split(sql, 2), CannotSplit)  # the estimate it skips would answer nothing


@pytest.fixture
def confined(tmp_path: Path):
    con = duckdb.connect()
    con.execute(f"SET allowed_directories = ['{tmp_path}/']")
    con.execute("SET enable_external_access = false")
    yield con
    con.close()


@pytest.mark.parametrize("sql", TABLE_AS_PATH)
def test_the_guard_still_refuses_a_path_named_as_a_table_by_any_word(confined, sql):
    assert not guard.names_no_table(sql)
    with pytest.raises(AccessDenied) as err:
        guard.checked_statements(confined, sql)
    assert err.value.details["resolved"] == "/etc/hostname"
    assert "BMAD_DATA_ALLOWED_DIRECTORIES" in err.value.hint


@pytest.mark.parametrize("sql", NO_TABLE)
def test_cheap_statements_pass_the_guard(confined, sql):
    assert len(guard.checked_statements(confined, sql)) == 1


@pytest.mark.parametrize("sql", READ_WITHOUT_FROM)
def test_a_select_reading_a_table_without_from_is_not_taken_for_cheap(sql):
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT 1 AS a")
    con.execute(sql).fetchall()  # it really reads t
    assert not guard.names_no_table(sql)


def test_every_table_word_makes_a_select_worth_checking():
    for word in guard.TABLE_WORDS:
        assert not guard.names_no_table(f"SELECT 1 {word.lower()} x"), word


@pytest.mark.parametrize("sql", NO_TABLE)
def test_the_shape_a_cheap_statement_is_given_is_the_one_duckdb_parses(sql):
    """The job runner takes a SELECT that names no table for one read-only SELECT without parsing it."""
    shape = shape_of(sql)
    assert (shape.read_only, shape.statement_types) == (True, ("SELECT",))
