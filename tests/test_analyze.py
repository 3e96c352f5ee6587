"""dataset.analyze on real files: exactness flags, footer figures against full scans, every format."""

from __future__ import annotations

import doctest
import math
from pathlib import Path
from typing import Iterator

import duckdb
import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.engine import analyze as analyze_module
from sidecar.engine import analyze_profiles
from sidecar.engine import dataset_stats
from sidecar.engine.analyze import ColumnAnalysis, DatasetAnalysis, analyze_dataset
from sidecar.errors import InputError, InvalidParams

TYPED_ROWS = """
SELECT
    range::INTEGER AS i,
    (range * 0.25)::DECIMAL(10, 2) AS dec,
    range / 7.0 AS dbl,
    DATE '2020-01-01' + (range % 400)::INTEGER AS d,
    TIMESTAMP '2021-03-04 05:06:07' + to_seconds(range) AS ts,
    range % 2 = 0 AS b,
    CASE WHEN range % 5 = 0 THEN NULL ELSE 'name_' || (range % 97)::VARCHAR END AS s,
    NULL::INTEGER AS all_null
FROM range({rows})
"""


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    db = duckdb.connect(config={"memory_limit": "1GB", "threads": 2})
    yield db.cursor()
    db.close()


def write(con: duckdb.DuckDBPyConnection, sql: str, target: Path, options: str = "FORMAT parquet") -> Path:
    con.execute(f"COPY ({sql}) TO '{target}' ({options})")
    return target


def col(result: DatasetAnalysis, name: str) -> ColumnAnalysis:
    return next(c for c in result.columns if c.name == name)


def typed_parquet(con: duckdb.DuckDBPyConnection, tmp_path: Path, rows: int = 20_000) -> Path:
    return write(
        con, TYPED_ROWS.format(rows=rows), tmp_path / "typed.parquet", "FORMAT parquet, ROW_GROUP_SIZE 2048"
    )


def test_small_parquet_is_scanned_exactly_with_json_friendly_values(con, tmp_path):
    path = typed_parquet(con, tmp_path, rows=1000)
    result = analyze_dataset(con, str(path))
    assert (result.format, result.row_count, result.row_count_exact, result.sampled_rows) == (
        "parquet",
        1000,
        True,
        None,
    )
    assert result.files == [str(path)] and result.bytes == path.stat().st_size
    assert all(c.null_count_exact and c.min_max_exact and c.mean_std_exact for c in result.columns)
    assert [(c.name, c.type) for c in result.columns] == [
        ("i", "INTEGER"), ("dec", "DECIMAL(10,2)"), ("dbl", "DOUBLE"), ("d", "DATE"), ("ts", "TIMESTAMP"),
        ("b", "BOOLEAN"), ("s", "VARCHAR"), ("all_null", "INTEGER"),
    ]  # fmt: skip
    assert (col(result, "i").min, col(result, "i").max, col(result, "i").mean) == (0, 999, 499.5)
    assert (col(result, "dec").min, col(result, "dec").max) == ("0.00", "249.75")  # as query.run has them
    assert (col(result, "d").min, col(result, "d").max) == ("2020-01-01", "2021-02-03")
    assert col(result, "ts").min == "2021-03-04T05:06:07"
    assert (col(result, "b").min, col(result, "b").max, col(result, "b").mean) == (False, True, None)
    assert (col(result, "s").null_count, col(result, "s").min, col(result, "s").max) == (
        200,
        "name_0",
        "name_96",
    )
    all_null = col(result, "all_null")
    assert (all_null.null_count, all_null.min, all_null.max, all_null.mean) == (1000, None, None, None)
    # The result is what the method layer encodes: it must round-trip through JSON.
    assert msgspec.json.decode(msgspec.json.encode(result), type=DatasetAnalysis) == result


def test_footer_figures_equal_a_full_scan(con, tmp_path):
    path = typed_parquet(con, tmp_path)
    estimated = analyze_dataset(con, str(path), sample_rows=3000)
    full = analyze_dataset(con, str(path), exact=True)
    assert estimated.row_count == full.row_count == 20_000 and estimated.row_count_exact
    assert estimated.sampled_rows is not None and 3000 <= estimated.sampled_rows < 20_000
    assert full.sampled_rows is None
    for fast, slow in zip(estimated.columns, full.columns):
        assert fast.null_count_exact and fast.min_max_exact and not fast.mean_std_exact, fast.name
        assert (fast.null_count, fast.min, fast.max) == (slow.null_count, slow.min, slow.max), fast.name
    assert any("footers" in note for note in estimated.notes)


def test_sampled_mean_and_distinct_are_close(con, tmp_path):
    sql = "SELECT random() * 100 AS u, range % 50 AS cat, range AS id FROM range(400000)"
    con.execute("SELECT setseed(0.5)")
    path = write(con, sql, tmp_path / "big.parquet", "FORMAT parquet, ROW_GROUP_SIZE 8192")
    result = analyze_dataset(con, str(path), sample_rows=40_000)
    u = col(result, "u")
    assert not u.mean_std_exact and abs(u.mean - 50) < 1.5 and abs(u.std - 100 / math.sqrt(12)) < 1.5
    assert col(result, "cat").approx_distinct == 50
    assert 0.7 * 400_000 <= col(result, "id").approx_distinct <= 400_000
    assert (col(result, "id").min, col(result, "id").max, col(result, "id").min_max_exact) == (
        0,
        399_999,
        True,
    )


def test_nan_keeps_footer_honest(con, tmp_path):
    sql = "SELECT CASE WHEN range = 5 THEN 'nan'::DOUBLE ELSE range END AS x FROM range(10000)"
    path = write(con, sql, tmp_path / "nan.parquet", "FORMAT parquet, ROW_GROUP_SIZE 2048")
    estimated = col(analyze_dataset(con, str(path), sample_rows=2048), "x")
    full = col(analyze_dataset(con, str(path), exact=True), "x")
    assert full.min_max_exact and (full.min, full.max) == (0.0, 9999.0)  # NaN left out
    assert estimated.null_count_exact and not estimated.min_max_exact  # the footer has no bounds


def test_empty_parquet(con, tmp_path):
    path = write(con, "SELECT 1::INTEGER AS a, 'x' AS b WHERE false", tmp_path / "empty.parquet")
    result = analyze_dataset(con, str(path))
    assert result.row_count == 0 and result.row_count_exact
    assert [(c.name, c.null_count, c.min, c.max, c.approx_distinct) for c in result.columns] == [
        ("a", 0, None, None, 0), ("b", 0, None, None, 0)
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("t.csv", "FORMAT csv, HEADER true"),
        ("t.tsv", "FORMAT csv, HEADER true, DELIMITER '\t'"),
        ("t.csv.gz", "FORMAT csv, HEADER true, COMPRESSION gzip"),
        ("t.ndjson", "FORMAT json"),
        ("t.json", "FORMAT json, ARRAY true"),
        ("t.jsonl.gz", "FORMAT json, COMPRESSION gzip"),
    ],
)
def test_text_formats_are_exact_when_small(con, tmp_path, name, options):
    path = write(con, TYPED_ROWS.format(rows=500), tmp_path / name, options)
    result = analyze_dataset(con, str(path))
    assert result.format == ("csv" if ".csv" in name or ".tsv" in name else "json")
    assert (result.row_count, result.row_count_exact, result.sampled_rows) == (500, True, None)
    assert (col(result, "i").min, col(result, "i").max, col(result, "i").mean) == (0, 499, 249.5)
    assert col(result, "s").null_count == 100 and col(result, "s").null_count_exact
    assert col(result, "d").min == "2020-01-01"


@pytest.mark.parametrize("name", ["big.csv", "big.ndjson", "big.csv.gz"])
def test_large_text_is_sampled_and_row_count_estimated(con, tmp_path, monkeypatch, name):
    options = "FORMAT json" if "json" in name else "FORMAT csv, HEADER true"
    path = write(con, TYPED_ROWS.format(rows=60_000), tmp_path / name, options)
    monkeypatch.setattr(analyze_profiles, "SMALL_TEXT_BYTES", 0)
    result = analyze_dataset(con, str(path), sample_rows=5000)
    assert not result.row_count_exact and abs(result.row_count - 60_000) < 0.05 * 60_000
    assert result.sampled_rows == 5000
    assert not col(result, "i").min_max_exact and col(result, "i").min == 0
    exact = analyze_dataset(con, str(path), exact=True)
    assert exact.row_count == 60_000 and exact.row_count_exact and col(exact, "i").max == 59_999


def test_json_array_rows_are_counted_not_guessed(con, tmp_path, monkeypatch):
    path = write(con, TYPED_ROWS.format(rows=3000), tmp_path / "arr.json", "FORMAT json, ARRAY true")
    monkeypatch.setattr(analyze_profiles, "SMALL_TEXT_BYTES", 0)
    result = analyze_dataset(con, str(path), sample_rows=1000)
    assert (result.row_count, result.row_count_exact, result.sampled_rows) == (3000, True, 1000)


def test_head_covering_whole_file_is_exact(con, tmp_path, monkeypatch):
    path = write(con, TYPED_ROWS.format(rows=300), tmp_path / "small.csv", "FORMAT csv, HEADER true")
    monkeypatch.setattr(analyze_profiles, "SMALL_TEXT_BYTES", 0)
    result = analyze_dataset(con, str(path), sample_rows=1000)
    assert (result.row_count, result.row_count_exact, result.sampled_rows) == (300, True, None)
    assert all(c.min_max_exact and c.mean_std_exact for c in result.columns)


def test_glob_and_directory_union_files(con, tmp_path):
    data = tmp_path / "data"
    (data / "nested").mkdir(parents=True)
    write(con, "SELECT range AS a, range * 2 AS b FROM range(0, 6000)", data / "p1.parquet",
          "FORMAT parquet, ROW_GROUP_SIZE 2048")  # fmt: skip
    write(con, "SELECT range AS a FROM range(6000, 10000)", data / "nested" / "p2.parquet",
          "FORMAT parquet, ROW_GROUP_SIZE 2048")  # fmt: skip
    (data / "_SUCCESS").write_text("")
    by_dir = analyze_dataset(con, str(data), sample_rows=2048, union_by_name=True)
    assert by_dir.files == [str(data / "nested" / "p2.parquet"), str(data / "p1.parquet")]
    assert by_dir.row_count == 10_000 and by_dir.sampled_rows is not None and by_dir.union_by_name
    b = col(by_dir, "b")  # missing from p2: its rows are NULL
    assert (b.null_count, b.null_count_exact, b.min, b.max) == (4000, True, 0, 11_998)
    assert (col(by_dir, "a").min, col(by_dir, "a").max) == (0, 9999)
    by_glob = analyze_dataset(con, str(data / "**" / "*.parquet"), exact=True, union_by_name=True)
    assert by_glob.row_count == 10_000 and col(by_glob, "b").null_count == 4000
    assert [f.kind for f in by_glob.findings] == ["schema_differs"]


def test_a_glob_is_analyzed_as_a_query_sees_it_and_schema_differences_are_a_finding(con, tmp_path):
    write(con, "SELECT range::INTEGER AS a, (range + 0.5)::DECIMAL(21,1) AS b FROM range(3)", tmp_path / "f1.parquet")
    write(con, "SELECT range::INTEGER AS a, (range + 0.5)::VARCHAR AS b, range AS c FROM range(3)", tmp_path / "f2.parquet")
    glob = str(tmp_path / "*.parquet")
    query_sees = con.execute(f"DESCRIBE SELECT * FROM '{glob}'").fetchall()
    result = analyze_dataset(con, glob, exact=True)
    assert [(c.name, c.type) for c in result.columns] == [(r[0], r[1]) for r in query_sees] == [
        ("a", "INTEGER"), ("b", "DECIMAL(21,1)")
    ]
    (finding,) = result.findings
    assert finding.kind == "schema_differs" and not result.union_by_name
    (difference,) = finding.differences
    assert difference.files == [str(tmp_path / "f2.parquet")] and finding.files == [str(tmp_path / "f1.parquet")]
    assert difference.extra == ["c"] and msgspec.to_builtins(difference.types) == {
        "b": {"first_file": "DECIMAL(21,1)", "here": "VARCHAR"}
    }
    assert "union_by_name" in finding.hint and "f1.parquet" in finding.message
    union = analyze_dataset(con, glob, exact=True, union_by_name=True)
    assert [(c.name, c.type) for c in union.columns] == [("a", "INTEGER"), ("b", "VARCHAR"), ("c", "BIGINT")]


def test_a_glob_that_a_query_cannot_read_fails_with_the_schema_difference_not_a_corrupt_file_hint(con, tmp_path):
    write(con, "SELECT 1 AS a, 2 AS b", tmp_path / "f1.parquet")
    write(con, "SELECT 1 AS a", tmp_path / "f2.parquet")
    with pytest.raises(InputError, match="schemas differ") as info:
        analyze_dataset(con, str(tmp_path / "*.parquet"), exact=True)
    assert "union_by_name" in info.value.hint and "{" not in info.value.message
    assert info.value.details["differences"][0]["missing"] == ["b"]
    assert analyze_dataset(con, str(tmp_path / "*.parquet"), union_by_name=True).row_count == 2
    write(con, "SELECT 1 AS a, 'x' AS b", tmp_path / "f2.parquet")  # b cannot be read as the first file's INTEGER
    with pytest.raises(InputError, match="schemas differ") as info:
        analyze_dataset(con, str(tmp_path / "*.parquet"), exact=True)
    assert info.value.details["differences"][0]["types"] == {"b": {"first_file": "INTEGER", "here": "VARCHAR"}}


def test_mixed_formats_are_an_input_error(con, tmp_path):
    write(con, "SELECT 1 AS a", tmp_path / "a.parquet")
    write(con, "SELECT 1 AS a", tmp_path / "b.csv", "FORMAT csv")
    with pytest.raises(InputError, match="mixes formats") as info:
        analyze_dataset(con, str(tmp_path))
    assert info.value.details["formats"] == ["csv", "parquet"]


@pytest.mark.parametrize("kind", ["missing", "glob", "empty_dir", "unknown_ext"])
def test_nothing_to_read_is_an_input_error(con, tmp_path, kind):
    if kind == "missing":
        path = tmp_path / "nope.parquet"
    elif kind == "glob":
        path = tmp_path / "*.csv"
    elif kind == "empty_dir":
        path = tmp_path / "empty"
        path.mkdir()
    else:
        path = tmp_path / "data.xlsx"
        path.write_bytes(b"PK")
    with pytest.raises(InputError) as info:
        analyze_dataset(con, str(path))
    assert str(path) in info.value.message and info.value.hint


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_parquet_names_the_file(con, tmp_path, damage):
    good = write(con, "SELECT range AS a FROM range(1000)", tmp_path / "good.parquet")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"this is not parquet at all" * 10 if damage == "garbage" else good.read_bytes()[:-100])
    for path in (bad, tmp_path):  # alone, and hidden in a directory with a good file
        with pytest.raises(InputError, match="bad.parquet") as info:
            analyze_dataset(con, str(path))
        assert info.value.details["file"] == str(bad)
        assert isinstance(info.value.__cause__, duckdb.Error)


def test_other_duckdb_errors_propagate(tmp_path):
    write(duckdb.connect(), "SELECT 1 AS a", tmp_path / "a.parquet")
    db = duckdb.connect()
    db.execute(f"SET allowed_directories = ['{tmp_path / 'elsewhere'}/']")
    db.execute("SET enable_external_access = false")
    with pytest.raises(duckdb.PermissionException):
        analyze_dataset(db.cursor(), str(tmp_path / "a.parquet"))


def test_sample_rows_must_be_positive(con, tmp_path):
    path = write(con, "SELECT 1 AS a", tmp_path / "a.parquet")
    with pytest.raises(InvalidParams):
        analyze_dataset(con, str(path), sample_rows=0)


@given(n=st.integers(1, 10_000), data=st.data())
def test_distinct_estimate_stays_between_seen_and_possible(n, data):
    d = data.draw(st.integers(1, n))
    f1 = data.draw(st.integers(0, d if d < n else n))
    population = data.draw(st.integers(n, 10**9))
    estimate = dataset_stats.estimate_distinct(dataset_stats.DistinctSample(n=n, d=d, f1=f1), population)
    assert d <= estimate <= population


@pytest.mark.parametrize("module", [analyze_module, dataset_stats])
def test_doctests(module):
    assert doctest.testmod(module).failed == 0


@pytest.mark.parametrize(("ext", "options"), [("csv", "FORMAT csv, HEADER true"), ("ndjson", "FORMAT json")])
def test_large_text_glob_samples_the_head_of_every_file(con, tmp_path, monkeypatch, ext, options):
    for i in range(3):
        write(con, f"SELECT range + {i * 10_000} AS x FROM range(10000)", tmp_path / f"f{i}.{ext}", options)
    monkeypatch.setattr(analyze_profiles, "SMALL_TEXT_BYTES", 0)
    result = analyze_dataset(con, str(tmp_path / f"*.{ext}"), sample_rows=3000)
    assert (result.row_count, result.row_count_exact, result.sampled_rows) == (30_000, False, 3000)
    x = col(result, "x")  # 1000 head rows from each file
    assert (x.min, x.max, x.min_max_exact, x.mean) == (0, 20_999, False, 10_499.5)


EDGE_ROWS = """
SELECT
    9007199254740993::BIGINT + range AS big,
    (2::HUGEINT ** 70)::HUGEINT + range AS huge,
    (range + 0.5)::DECIMAL(20, 2) AS dec,
    (range * 0.125)::DECIMAL(6, 3) AS small_dec,
    TIMESTAMPTZ '2024-01-02 03:04:05+00' + to_hours(range) AS tz,
    CASE WHEN range = 0 THEN DATE '-infinity' ELSE DATE '2020-01-01' + range::INTEGER END AS d,
    CASE WHEN range = 1 THEN TIMESTAMP 'infinity' ELSE TIMESTAMP '2020-01-01' END AS ts,
    CASE WHEN range = 2 THEN 'inf'::DOUBLE ELSE range / 3 END AS dbl
FROM range(5000)
"""


@pytest.mark.parametrize(
    ("fmt", "options"),
    [
        ("parquet", {"exact": True}),  # a full scan
        ("parquet", {"sample_rows": 500}),  # footers for min/max, a sample for the rest
        ("csv", {}),  # a full scan of text
        ("csv", {"sample_rows": 500}),
    ],
)
def test_min_max_are_encoded_exactly_as_query_run_encodes_them(con, tmp_path, fmt, options, monkeypatch):
    from sidecar.engine.encode import execute_encoded

    monkeypatch.setattr(analyze_profiles, "SMALL_TEXT_BYTES", 0 if options.get("sample_rows") else 10**9)
    options_sql = "FORMAT parquet, ROW_GROUP_SIZE 1000" if fmt == "parquet" else "FORMAT csv, HEADER true"
    path = write(con, EDGE_ROWS, tmp_path / f"edge.{fmt}", options_sql)
    result = analyze_dataset(con, str(path), **options)
    reader = f"read_{fmt}('{path}')"
    compared = 0
    for column in result.columns:
        name = dataset_stats.quote_ident(column.name)
        (statement,) = con.extract_statements(f"SELECT min({name}), max({name}) FROM {reader}")
        encoding = execute_encoded(con, statement, None)
        (expected,) = encoding.rows(con.fetchall())
        if column.min_max_exact:
            assert [column.min, column.max] == list(expected), column.name
            compared += 1
    by_name = {c.name: c for c in result.columns}
    if fmt == "csv" and "sample_rows" in options:  # estimated from a head: not comparable, but the same form
        assert compared == 0 and isinstance(by_name["big"].min, str)
    else:  # Parquet keeps no footer statistics for a HUGEINT (written as DOUBLE) or a DOUBLE holding inf
        assert all(by_name[n].min_max_exact for n in ("big", "dec", "small_dec", "tz", "d", "ts")) and compared >= 6
    if fmt == "parquet":
        assert (by_name["big"].min, by_name["big"].max) == ("9007199254740993", "9007199254745992")
        assert by_name["dec"].min == "0.50" and by_name["small_dec"].max == "624.875"
        assert by_name["tz"].min == "2024-01-02T03:04:05Z"
        assert by_name["d"].min == "-infinity" and by_name["ts"].max == "infinity"
        assert by_name["dbl"].max == "Infinity"
