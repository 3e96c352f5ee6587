"""Agents write SQL: after the sidecar applies its settings, SQL cannot undo them or escape."""

from __future__ import annotations

import pytest

from sidecar.client import RpcError


@pytest.mark.parametrize(
    ("sql", "why"),
    [
        ("SET memory_limit = '100GB'", "changes a setting"),
        ("PRAGMA memory_limit = '100GB'", "changes a setting"),
        ("SELECT 1; SET threads = 64", "changes a setting"),
        ("RESET memory_limit", "changes a setting"),
        ("SET temp_directory = '/tmp/elsewhere'", "changes a setting"),
        ("SET enable_external_access = true", "changes a setting"),
        ("USE memory", "changes a setting"),
        ("INSTALL tpch", "extension"),
        ("LOAD parquet", "extension"),
        ("ATTACH '{data}/other.duckdb' AS other", "attaches another database"),
        ("DETACH memory", "detaches"),
        ("PRAGMA enable_profiling", "PRAGMA enable_profiling"),
        ("IMPORT DATABASE '{data}'", "database-level"),
        ("UPDATE EXTENSIONS", "UPDATE EXTENSIONS is not served by the sidecar"),
    ],
)
def test_statements_that_escape_control_are_refused_and_say_why(sidecar, data_dir, sql, why):
    with pytest.raises(RpcError) as err:
        sidecar.request("query.run", {"sql": sql.format(data=data_dir)})
    assert err.value.code == "ACCESS_DENIED"
    assert why in str(err.value)
    assert "settings" in err.value.hint or "allowed" in err.value.hint
    limit = sidecar.request("query.run", {"sql": "SELECT current_setting('memory_limit') AS m"})["rows"][0][0]
    assert "GiB" in limit or "MiB" in limit


@pytest.mark.parametrize(
    "sql",
    [
        "COPY (SELECT 1) TO '/etc/bmad-x.csv'",
        "SELECT * FROM read_text('/etc/passwd')",
        "SELECT * FROM read_csv('{data}/../outside.csv')",
        "SELECT * FROM glob('/etc/*')",
        "CREATE TABLE t AS SELECT * FROM read_csv('/etc/hostname')",
        # a path written as a table (a replacement scan), which DuckDB answered with
        # "Table ... does not exist! Did you mean sqlite_schema" when it has no known extension
        "SELECT * FROM '/etc/hostname'",
        "FROM '/etc/hostname'",
        'SELECT * FROM "/etc/hostname"',
        "SELECT * FROM '/etc/*.conf'",
        "SELECT * FROM '{data}/../../../../etc/hostname'",
        "SELECT * FROM '../outside.csv'",
        "SELECT * FROM '{data}/hostlink'",  # a symlink inside, leading out
        "SELECT * FROM '{data}/link.csv'",
        "SELECT * FROM '~/.bashrc'",
        "WITH c AS (SELECT * FROM '/etc/hostname') SELECT * FROM c",
        "SELECT 1 AS a UNION ALL SELECT * FROM (SELECT * FROM '/etc/hostname')",
        "CREATE TABLE t AS FROM '/etc/hostname'",
        "CREATE TABLE t (a VARCHAR); INSERT INTO t SELECT * FROM '/etc/hostname'",
        "CREATE TABLE t (a VARCHAR); COPY t FROM '/etc/hostname'",
        "COPY (FROM '/etc/hostname') TO '{data}/x.csv'",
        "SELECT * FROM read_parquet('/etc/x.parquet')",
        "SELECT * FROM read_json('/etc/x.json')",
        "SELECT * FROM read_csv(['{data}/../outside.csv'])",
        "SELECT * FROM sniff_csv('/etc/hostname')",
        "SELECT * FROM read_blob('/etc/hostname')",
        "ATTACH '/etc/x.duckdb'",
    ],
)
def test_files_outside_the_allowed_directories_are_refused(sidecar, data_dir, tmp_path, sql):
    (tmp_path / "outside.csv").write_text("a\n1\n")
    (data_dir / "hostlink").symlink_to("/etc/hostname")
    (data_dir / "link.csv").symlink_to(tmp_path / "outside.csv")
    with pytest.raises(RpcError) as err:
        sidecar.request("query.run", {"sql": sql.format(data=data_dir)})
    assert err.value.code == "ACCESS_DENIED", err.value
    assert "does not exist" not in str(err.value)
    assert "BMAD_DATA_ALLOWED_DIRECTORIES" in err.value.hint or "databases" in err.value.hint, err.value.hint


def test_files_inside_the_allowed_directories_are_served(sidecar, data_dir):
    (data_dir / "in.csv").write_text("a,b\n1,x\n2,y\n")
    (data_dir / "sub").mkdir()
    (data_dir / "sub" / "in.csv").write_text("a\n5\n")
    result = sidecar.request("query.run", {"sql": f"SELECT sum(a) AS s FROM '{data_dir / 'in.csv'}'"})
    assert result["rows"] == [[3]]
    # relative paths, `..` that stays inside and a quoted identifier are all still served
    inside = ("FROM 'sub/in.csv'", "FROM 'sub/../sub/in.csv'", 'FROM "sub/in.csv"', "FROM './in.csv' LIMIT 0")
    for sql in inside:
        assert sidecar.request("query.run", {"sql": sql})["columns"], sql


def test_harmless_statements_still_work(sidecar):
    sidecar.request("query.run", {"sql": "SET VARIABLE answer = 42"})
    assert sidecar.request("query.run", {"sql": "SELECT getvariable('answer') AS a"})["rows"] == [[42]]
    assert sidecar.request("query.run", {"sql": "PRAGMA version"})["row_count"] == 1
    assert sidecar.request("query.run", {"sql": "SHOW TABLES"})["rows"] == []


def test_databases_outside_the_allowed_directories_are_refused(sidecar, tmp_path):
    with pytest.raises(RpcError) as err:
        sidecar.request("query.run", {"sql": "SELECT 1", "database": str(tmp_path / "x.duckdb")})
    assert err.value.code == "ACCESS_DENIED"
    assert not (tmp_path / "x.duckdb").exists()


def test_no_extension_is_fetched_and_nothing_lands_in_home(sidecar, tmp_path):
    with pytest.raises(RpcError):
        sidecar.request("query.run", {"sql": "INSTALL spatial"})
    state = tmp_path / "state" / "extensions"
    assert state.is_dir() and not any(state.rglob("*.duckdb_extension*"))


def test_a_file_that_is_not_a_duckdb_database_is_refused_and_left_alone(sidecar, data_dir):
    csv = data_dir / "sales.csv"
    csv.write_text("a,b\n1,2\n")
    with pytest.raises(RpcError) as err:
        sidecar.request("query.run", {"sql": "CREATE TABLE t AS SELECT 1", "database": str(csv)})
    assert err.value.code == "INPUT_ERROR" and "not a DuckDB database" in str(err.value)
    assert "read_csv" in err.value.hint
    assert csv.read_text() == "a,b\n1,2\n"
    new = data_dir / "fresh.duckdb"  # a new file is still created on demand
    assert sidecar.request("query.run", {"sql": "SELECT 1 AS one", "database": str(new)})["rows"] == [[1]]


def test_the_path_check_applies_only_to_confined_connections(tmp_path):
    """The guard's path check follows DuckDB's own confinement: a connection with external access on
    (not one of the sidecar's) is not refused; a confined one is, and one inside its directories is not."""
    import duckdb

    from sidecar.engine import guard
    from sidecar.errors import AccessDenied

    con = duckdb.connect()
    try:
        guard.checked_statements(con, "FROM '/etc/hostname'")
        con.execute(f"SET allowed_directories = ['{tmp_path}/']")
        con.execute("SET enable_external_access = false")
        with pytest.raises(AccessDenied) as err:
            guard.checked_statements(con, "FROM '/etc/hostname'")
        assert err.value.details["resolved"] == "/etc/hostname"
        guard.checked_statements(con, f"FROM '{tmp_path}/in.csv'")
    finally:
        con.close()
