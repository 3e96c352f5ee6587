"""The guard remembers which tables of a statement text are paths (its sqlglot parse, 1-3 ms for
a TPC-H query), never whether they are allowed: that is decided on each connection, every time."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from sidecar.engine import guard
from sidecar.errors import AccessDenied


def test_a_repeated_statement_is_parsed_once_and_still_refused(tmp_path: Path) -> None:
    sql = f"SELECT count(*) FROM '/etc/hostname' -- {tmp_path.name}"
    served = f"SELECT count(*) FROM read_csv('{tmp_path}/in.csv') -- {tmp_path.name}"
    (tmp_path / "in.csv").write_text("a\n1\n")
    confined = duckdb.connect()
    confined.execute(f"SET allowed_directories = ['{tmp_path}/']")
    confined.execute("SET enable_external_access = false")
    free = duckdb.connect()
    try:
        before = guard._parsed_path_tables.cache_info()
        for _ in range(3):
            with pytest.raises(AccessDenied) as err:
                guard.checked_statements(confined, sql)
            assert err.value.details["resolved"] == "/etc/hostname"
            guard.checked_statements(free, sql)  # the same text on an unconfined connection is served
            assert len(guard.checked_statements(confined, served)) == 1
        after = guard._parsed_path_tables.cache_info()
        assert after.misses - before.misses == 2  # each text parsed once
        assert after.hits - before.hits == 7
    finally:
        confined.close()
        free.close()


def test_a_very_long_statement_is_checked_without_being_kept(tmp_path: Path) -> None:
    padding = " " * guard.CACHED_SQL_CHARS
    sql = f"SELECT count(*) FROM '/etc/hostname'{padding}"
    con = duckdb.connect()
    con.execute(f"SET allowed_directories = ['{tmp_path}/']")
    con.execute("SET enable_external_access = false")
    try:
        before = guard._parsed_path_tables.cache_info()
        with pytest.raises(AccessDenied):
            guard.checked_statements(con, sql)
        assert guard._parsed_path_tables.cache_info().currsize == before.currsize
    finally:
        con.close()
