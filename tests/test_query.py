"""query.run end to end over stdio: values, state, params, outputs, databases, errors."""

from __future__ import annotations


import duckdb
import pytest

from sidecar.client import RpcError


def run(sc, sql, **params):
    return sc.request("query.run", {"sql": sql, **params})


def test_values_encode_faithfully(sidecar):
    result = run(
        sidecar,
        "SELECT 42 AS i, 12.30::DECIMAL(10,2) AS d, 9007199254740993::HUGEINT AS big, 9007199254740991::BIGINT AS safe,"
        " 'nan'::DOUBLE AS n, 'inf'::DOUBLE AS pinf, '-inf'::DOUBLE AS ninf, 1.5::DOUBLE AS f,"
        " DATE '2024-01-02' AS dt, TIMESTAMP '2024-01-02 03:04:05.123456' AS ts, TIME '12:30:00' AS tm,"
        " INTERVAL 1 DAY + INTERVAL 3 SECOND AS iv, 'ab'::BLOB AS b, [1.5, 'inf'::DOUBLE] AS l,"
        " {'k': 1::HUGEINT, 'd': 0.5::DECIMAL(3,2)} AS s, MAP {'a': 1} AS m, NULL AS z, true AS t,"
        " '6e9d1c1e-7f4c-4bd6-9d62-7c3c9e1f2a3b'::UUID AS u, 18446744073709551615::UBIGINT AS ub",
    )
    names = [c["name"] for c in result["columns"]]
    row = dict(zip(names, result["rows"][0]))
    assert row == {
        "i": 42,
        "d": "12.30",
        "big": "9007199254740993",
        "safe": 9007199254740991,
        "n": "NaN",
        "pinf": "Infinity",
        "ninf": "-Infinity",
        "f": 1.5,
        "dt": "2024-01-02",
        "ts": "2024-01-02T03:04:05.123456",
        "tm": "12:30:00",
        "iv": "P1DT3S",
        "b": "YWI=",
        "l": [1.5, "Infinity"],
        "s": {"k": 1, "d": "0.50"},
        "m": {"a": 1},
        "z": None,
        "t": True,
        "u": "6e9d1c1e-7f4c-4bd6-9d62-7c3c9e1f2a3b",
        "ub": "18446744073709551615",
    }
    types = {c["name"]: c["type"] for c in result["columns"]}
    assert types["d"] == "DECIMAL(10,2)" and types["big"] == "HUGEINT"


def test_requests_on_the_default_database_share_tables(sidecar):
    run(sidecar, "CREATE TABLE t AS SELECT range AS i FROM range(10)")
    assert run(sidecar, "SELECT count(*), sum(i) FROM t")["rows"] == [[10, 45]]
    result = run(sidecar, "INSERT INTO t VALUES (100); SELECT max(i) AS m FROM t")
    assert result["rows"] == [[100]] and result["stats"]["statements"] == 2


def test_params_positional_and_named(sidecar):
    assert run(sidecar, "SELECT $1::INT + $2::INT AS s", params=[2, 3])["rows"] == [[5]]
    assert run(sidecar, "SELECT $a::VARCHAR || $b::VARCHAR AS s", params={"a": "x", "b": "y"})["rows"] == [
        ["xy"]
    ]
    with pytest.raises(RpcError) as err:
        run(sidecar, "SELECT 1; SELECT $1", params=[1])
    assert err.value.code == "INVALID_PARAMS"


def test_max_rows_truncates_and_says_so(sidecar):
    result = run(sidecar, "SELECT * FROM range(25)", max_rows=10)
    assert result["row_count"] == 10 and result["truncated"] is True and result["rows"][-1] == [9]
    result = run(sidecar, "SELECT * FROM range(10)", max_rows=10)
    assert result["truncated"] is False
    assert run(sidecar, "SELECT 1")["truncated"] is False


def test_stats_report_memory_and_settings(sidecar):
    stats = run(sidecar, "SELECT sum(i) FROM range(10000000) t(i)", settings={"memory_limit": "1GiB"})[
        "stats"
    ]
    assert stats["elapsed_ms"] > 0
    assert stats["peak_rss_bytes"] > 10_000_000
    # the user's memory_limit is the job's whole budget: DuckDB's own limit sits below it
    duckdb_limit = int(stats["settings"]["memory_limit"].rstrip("B"))
    assert 0 < duckdb_limit < 2**30
    assert run(sidecar, "SELECT 1")["stats"]["settings"]["memory_limit"] != stats["settings"]["memory_limit"]


@pytest.mark.parametrize("fmt", ["parquet", "csv", "json"])
def test_outputs_are_written_whole(sidecar, data_dir, fmt):
    target = data_dir / f"out.{fmt}"
    result = run(
        sidecar,
        "SELECT range AS i, 'v' || range AS s FROM range(1000)",
        output={"path": str(target), "format": fmt},
    )
    assert result["output"]["rows"] == 1000 and result["row_count"] == 1000
    assert result["output"]["bytes"] == target.stat().st_size > 0
    assert [c["name"] for c in result["columns"]] == ["i", "s"]
    reader = {"parquet": "read_parquet", "csv": "read_csv", "json": "read_json"}[fmt]
    assert duckdb.execute(f"SELECT count(*), sum(i) FROM {reader}('{target}')").fetchall() == [(1000, 499500)]
    assert [p.name for p in data_dir.iterdir()] == [target.name]


def test_a_failing_output_leaves_the_existing_file_untouched_and_no_temp(sidecar, data_dir):
    target = data_dir / "out.parquet"
    run(sidecar, "SELECT 1 AS first", output={"path": str(target)})
    before = target.read_bytes()
    with pytest.raises(RpcError) as err:
        run(sidecar, "SELECT 2 AS second", output={"path": str(target)})
    assert err.value.code == "INPUT_ERROR" and "overwrite" in err.value.hint
    with pytest.raises(RpcError) as err:
        run(
            sidecar,
            "SELECT CASE WHEN i = 900000 THEN error('boom at row 900000') ELSE i END AS i FROM range(1000000) t(i)",
            output={"path": str(target), "overwrite": True},
        )
    assert "boom" in str(err.value)
    assert target.read_bytes() == before
    assert sorted(p.name for p in data_dir.iterdir()) == ["out.parquet"]
    run(sidecar, "SELECT 3 AS third", output={"path": str(target), "overwrite": True})
    assert duckdb.execute(f"SELECT * FROM '{target}'").fetchall() == [(3,)]


def test_outputs_outside_the_allowed_directories_are_refused(sidecar, tmp_path):
    with pytest.raises(RpcError) as err:
        run(sidecar, "SELECT 1", output={"path": str(tmp_path / "elsewhere.parquet")})
    assert err.value.code == "ACCESS_DENIED"
    assert not (tmp_path / "elsewhere.parquet").exists()


def test_a_database_file_persists_across_restarts(start_sidecar, data_dir):
    db = str(data_dir / "warehouse.duckdb")
    first = start_sidecar()
    run(first, "CREATE TABLE sales AS SELECT range AS id, range * 2 AS amount FROM range(100)", database=db)
    assert first.close() == 0
    second = start_sidecar()
    assert run(second, "SELECT count(*), sum(amount) FROM sales", database=db)["rows"] == [[100, 9900]]
    with pytest.raises(
        RpcError
    ) as err:  # the default in-memory database did not survive, and is not this one
        run(second, "SELECT * FROM sales")
    assert err.value.code == "SQL_ERROR"
    assert second.close() == 0


@pytest.mark.parametrize(
    ("sql", "code", "needle"),
    [
        ("SELEC 1", "SQL_ERROR", "syntax error"),
        ("SELECT nope FROM range(3)", "SQL_ERROR", "nope"),
        ("SELECT 'a'::INT", "SQL_ERROR", "Could not convert"),
        ("SELECT * FROM 'missing.parquet'", "INPUT_ERROR", "missing.parquet"),
        ("", "SQL_ERROR", "empty"),
    ],
)
def test_sql_errors_are_clear(sidecar, sql, code, needle):
    with pytest.raises(RpcError) as err:
        run(sidecar, sql)
    assert err.value.code == code
    assert needle in str(err.value)
    assert err.value.hint
    assert run(sidecar, "SELECT 1 AS ok")["rows"] == [[1]]


def test_sql_error_carries_position_and_context(sidecar):
    with pytest.raises(RpcError) as err:
        run(sidecar, "SELECT 1,\n  nope FROM range(3)")
    details = err.value.data["details"]
    assert details["position"] == 12
    assert details["context"].startswith("LINE 2:   nope FROM range(3)")


def test_a_corrupt_parquet_file_is_an_input_error(sidecar, data_dir):
    (data_dir / "bad.parquet").write_bytes(b"PAR1 this is not really parquet")
    with pytest.raises(RpcError) as err:
        run(sidecar, f"SELECT * FROM '{data_dir / 'bad.parquet'}'")
    assert err.value.code == "INPUT_ERROR"


def test_out_of_memory_is_reported_with_what_to_do(sidecar):
    with pytest.raises(RpcError) as err:
        run(
            sidecar,
            "SELECT list(i) AS l FROM range(60000000) t(i)",  # one group: no rung can help, so it fails fast
            settings={"memory_limit": "256MiB", "threads": 1},
        )
    assert err.value.code == "OUT_OF_MEMORY"
    assert err.value.data["retryable"] is True
    assert "memory_limit" in err.value.hint
    assert "SET memory_limit" not in str(err.value)  # DuckDB's advice would be refused here
    assert run(sidecar, "SELECT 1 AS ok")["rows"] == [[1]]


def test_a_budget_too_small_for_a_worker_is_refused_up_front(sidecar):
    with pytest.raises(RpcError) as err:
        run(sidecar, "SELECT 1", settings={"memory_limit": "64MiB"})
    assert err.value.code == "INVALID_PARAMS"
    assert "minimum job budget" in str(err.value) and "256MiB" in err.value.hint


def test_spill_cap_is_spill_limit_not_out_of_memory(sidecar):
    with pytest.raises(RpcError) as err:
        run(
            sidecar,
            "SELECT max(rn) FROM (SELECT row_number() OVER (ORDER BY r) AS rn FROM (SELECT random() AS r FROM range(30000000)))",
            settings={"memory_limit": "256MiB", "max_temp_directory_size": "16MiB", "threads": 1},
        )
    assert err.value.code == "SPILL_LIMIT"
