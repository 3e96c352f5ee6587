"""Value encoding of query.run results: nested values encode as top-level ones do, and DuckDB's
temporal values (infinities, months of an INTERVAL, nanoseconds) are never invented by Python.
The property test over generated types is tests/test_encode_property.py."""

from __future__ import annotations

import duckdb

from sidecar.engine.encode import execute_encoded


def run(sc, sql, **params):
    return sc.request("query.run", {"sql": sql, **params})


def row_of(result):
    return dict(zip([c["name"] for c in result["columns"]], result["rows"][0]))


def test_a_decimal_in_a_list_is_its_digits_not_a_python_repr(sidecar):
    result = run(sidecar, "SELECT [1.50::DECIMAL(10,2), 2.25::DECIMAL(10,2)] AS l")
    assert result["rows"] == [[["1.50", "2.25"]]]
    assert result["columns"] == [{"name": "l", "type": "DECIMAL(10,2)[]"}]


def test_nested_values_of_every_kind_encode_as_top_level_ones(sidecar):
    row = row_of(
        run(
            sidecar,
            "SELECT [9007199254740993::BIGINT, NULL] AS big, [170141183460469231731687303715884105727::HUGEINT] AS huge,"
            " [340282366920938463463374607431768211455::UHUGEINT] AS uhuge, [0::DECIMAL(18,10)] AS zero,"
            " [12345678901234567890123::BIGNUM, 5::BIGNUM] AS bignum, ['ab'::BLOB] AS blob,"
            " ['6e9d1c1e-7f4c-4bd6-9d62-7c3c9e1f2a3b'::UUID] AS uuid, ['101'::BIT] AS bit,"
            " ['b'::ENUM('a', 'b')] AS enum, ['{\"k\": 1}'::JSON] AS json, [INTERVAL '1 month 2 days'] AS iv,"
            " [TIME '12:30:00.25'] AS tm, [TIMESTAMP '2024-01-02 03:04:05'] AS ts,"
            " {'l': [[NULL, 1.5::DECIMAL(3,1)]], 'n': NULL::INTEGER} AS deep,"
            " MAP {1.5::DECIMAL(2,1): [DATE '2024-01-02']} AS m, [1.25::DECIMAL(4,2), 2]::DECIMAL(4,2)[2] AS arr,"
            " union_value(d := 1.5::DECIMAL(3,1))::UNION(d DECIMAL(3,1), s VARCHAR) AS u,"
            " ['nan'::DOUBLE, 'inf'::FLOAT] AS floats, [NULL]::INTEGER[][] AS nulls",
        )
    )
    assert row == {
        "big": ["9007199254740993", None],
        "huge": ["170141183460469231731687303715884105727"],
        "uhuge": ["340282366920938463463374607431768211455"],
        "zero": ["0.0000000000"],
        "bignum": ["12345678901234567890123", 5],
        "blob": ["YWI="],
        "uuid": ["6e9d1c1e-7f4c-4bd6-9d62-7c3c9e1f2a3b"],
        "bit": ["101"],
        "enum": ["b"],
        "json": ['{"k": 1}'],
        "iv": ["P1M2D"],
        "tm": ["12:30:00.25"],
        "ts": ["2024-01-02T03:04:05"],
        "deep": {"l": [[None, "1.5"]], "n": None},
        "m": {"1.5": ["2024-01-02"]},
        "arr": ["1.25", "2.00"],
        "u": "1.5",
        "floats": ["NaN", "Infinity"],
        "nulls": [None],
    }


def test_infinite_dates_and_timestamps_stay_infinite_at_every_level(sidecar):
    row = row_of(
        run(
            sidecar,
            "SELECT DATE 'infinity' AS d, TIMESTAMP '-infinity' AS t, TIMESTAMPTZ 'infinity' AS tz,"
            " TIMESTAMP_NS '-infinity' AS ns, [DATE '-infinity', DATE '9999-12-31'] AS l,"
            " {'t': TIMESTAMP 'infinity'} AS s, MAP {'k': DATE 'infinity'} AS m",
        )
    )
    assert row == {
        "d": "infinity",
        "t": "-infinity",
        "tz": "infinity",
        "ns": "-infinity",
        "l": ["-infinity", "9999-12-31"],
        "s": {"t": "infinity"},
        "m": {"k": "infinity"},
    }


def test_intervals_keep_months_and_timestamps_keep_nanoseconds(sidecar):
    row = row_of(
        run(
            sidecar,
            "SELECT INTERVAL '1 month 2 days' AS a, INTERVAL '-1 day -01:00:00' AS b, INTERVAL '1 month -2 days' AS c,"
            " TIMESTAMP_NS '2024-01-02 03:04:05.123456789' AS ns, DATE '10000-01-01' AS far",
        )
    )
    assert row == {
        "a": "P1M2D",
        "b": "-P1DT1H",
        "c": "P1M-2D",
        "ns": "2024-01-02T03:04:05.123456789",
        "far": "10000-01-01",
    }


def encoded(con, sql, params=None):
    statement = con.extract_statements(sql)[-1]
    encoding = execute_encoded(con, statement, params)
    return encoding, encoding.rows(con.fetchall())


def test_timestamptz_is_utc_with_z_whatever_the_session_time_zone(sidecar):
    # The sidecar refuses SET TimeZone, but a database can carry one: the encoder does not rely on UTC.
    con = duckdb.connect()
    con.execute("SET TimeZone = 'America/New_York'")
    encoding, rows = encoded(
        con, "SELECT TIMESTAMPTZ '2024-01-02 03:04:05.5+00' AS t, [TIMESTAMPTZ '2024-01-02 00:00:00+02'] AS l"
    )
    assert rows == [["2024-01-02T03:04:05.5Z", ["2024-01-01T22:00:00Z"]]]
    assert encoding.type_names[0] == "TIMESTAMP WITH TIME ZONE"
    result = run(sidecar, "SELECT TIMESTAMPTZ '2024-01-02 03:04:05+01' AS t")
    assert result["rows"] == [["2024-01-02T02:04:05Z"]]


def test_the_wrapped_select_keeps_order_params_names_and_comments(sidecar):
    result = run(
        sidecar,
        "SELECT (DATE '2024-01-01' + range::INT) AS d, range AS d FROM range(3) WHERE range < $1 ORDER BY range DESC -- done",
        params=[2],
    )
    assert [c["name"] for c in result["columns"]] == ["d", "d"]
    assert result["rows"] == [["2024-01-02", 1], ["2024-01-01", 0]]


def test_statements_other_than_select_use_the_python_values():
    con = duckdb.connect()
    con.execute("CREATE TABLE t (d DATE, x DECIMAL(4,2)[])")
    encoding, rows = encoded(con, "INSERT INTO t VALUES (DATE '2024-01-02', [1.5]) RETURNING *")
    assert encoding.type_names == ["DATE", "DECIMAL(4,2)[]"] and not encoding.renders
    assert rows == [["2024-01-02", ["1.50"]]]


def test_a_struct_field_named_like_an_arrays_size_is_still_rendered():
    con = duckdb.connect()
    _, rows = encoded(con, "SELECT {'size': DATE 'infinity'} AS s")
    assert rows == [[{"size": "infinity"}]]


def test_a_bignum_member_of_a_union_is_a_number_when_it_fits(sidecar):
    """Python hands a UNION's BIGNUM member over as text (tests/test_encode_property.py found it)."""
    union = 'UNION("a" BIGNUM, "b" BOOLEAN)'
    sql = (
        f"SELECT union_value(a := '0'::BIGNUM)::{union} AS small,"
        f" union_value(a := '123456789012345678901234567890'::BIGNUM)::{union} AS wide,"
        f" union_value(b := true)::{union} AS flag"
    )
    assert row_of(run(sidecar, sql)) == {"small": 0, "wide": "123456789012345678901234567890", "flag": True}


def test_the_fast_bind_and_the_public_one_agree_on_names_types_and_params(monkeypatch):
    # execute_encoded binds through DuckDB's private `_seam.bind` (a third of cursor.sql's cost)
    # and falls back to `cursor.sql(...).types` without it: both must give the same encoding.
    from sidecar.engine import encode

    con = duckdb.connect()
    con.execute("CREATE TABLE t (d DATE, x DECIMAL(4,2)[], s STRUCT(ts TIMESTAMP, i INTEGER))")
    con.execute("INSERT INTO t VALUES (DATE 'infinity', [1.5], {'ts': TIMESTAMP '2024-01-02 03:04:05', 'i': 7})")
    cases = [
        ("SELECT d, x, s, $1 AS p, $1 + 1 AS q FROM t", [41]),
        ("SELECT d AS dd, x, $name AS p FROM t", {"name": "text"}),
        ("SELECT 42 AS answer, 'a' AS b", None),
    ]
    assert encode._seam is not None and hasattr(encode._seam, "bind")  # the pinned DuckDB has it
    fast = [(encoded(con, sql, params)[0].type_names, encoded(con, sql, params)[1]) for sql, params in cases]
    monkeypatch.setattr(encode, "_seam", None)
    public = [(encoded(con, sql, params)[0].type_names, encoded(con, sql, params)[1]) for sql, params in cases]
    assert fast == public
    assert fast[0][1] == [["infinity", ["1.50"], {"ts": "2024-01-02T03:04:05", "i": 7}, 41, 42]]
    assert fast[1][0] == ["DATE", "DECIMAL(4,2)[]", "VARCHAR"]
