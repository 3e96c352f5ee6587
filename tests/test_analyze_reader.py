"""dataset.analyze reads as a query reads: the CSV sniffer's decisions are reported, a result that
looks like a failed sniff is a finding, the CSV options a query can pass are accepted and
checked, and the reader options reach a real worker over the protocol."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from sidecar.client import RpcError
from sidecar.engine.analyze import CsvOptions, analyze_dataset
from sidecar.errors import InvalidParams

RAGGED = "id,name,city,amount,order_date\n1,Ann,Oslo,10.5,2024-01-02\n2,Bob,Rome,3.25,2024-01-03,extra\n3,Cy,Bern,7,2024-01-04\n"


@pytest.fixture
def con():
    db = duckdb.connect(config={"memory_limit": "1GB", "threads": 2})
    yield db.cursor()
    db.close()


def test_the_sniffers_decisions_are_in_the_result(con, tmp_path):
    path = tmp_path / "semi.csv"
    path.write_text("# exported\na;b\n1;x\n2;y\n")
    result = analyze_dataset(con, str(path), csv=CsvOptions(comment="#"))
    assert result.csv is not None
    assert (result.csv.delimiter, result.csv.header, result.csv.comment) == (";", True, "#")
    assert [(c.name, c.type) for c in result.columns] == [("a", "BIGINT"), ("b", "VARCHAR")]
    assert result.findings == []
    # The dialect's read_csv call reads what analyze read.
    assert con.execute(f"SELECT count(*) FROM {result.csv.read_csv}").fetchone() == (2,)


def test_a_ragged_csv_that_sniffs_as_one_column_is_a_finding_and_options_fix_it(con, tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text(RAGGED)
    result = analyze_dataset(con, str(path))
    assert [c.name for c in result.columns] == ["id,name,city,amount,order_date"]  # what a query sees, too
    (finding,) = result.findings
    assert finding.kind == "suspect_sniff" and finding.column == "id,name,city,amount,order_date"
    assert "delimiter" in finding.message and "null_padding" in finding.hint
    assert "csv: {delimiter: ',', null_padding: true} for short rows" in finding.hint  # one brace, not "}}"
    padded = analyze_dataset(con, str(path), csv=CsvOptions(delimiter=",", null_padding=True))
    assert [c.name for c in padded.columns][:5] == ["id", "name", "city", "amount", "order_date"]
    assert padded.row_count == 3 and padded.findings == [] and padded.csv.delimiter == ","
    skipped = analyze_dataset(con, str(path), csv=CsvOptions(delimiter=",", ignore_errors=True))
    assert skipped.row_count == 2 and len(skipped.columns) == 5


def test_an_empty_csv_is_a_finding_not_a_silent_phantom_column(con, tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    result = analyze_dataset(con, str(path))
    assert [c.name for c in result.columns] == ["column0"] and result.row_count == 0
    (finding,) = result.findings
    assert finding.kind == "empty_file" and finding.files == [str(path)] and "column0" in finding.message


def test_csv_options_are_passed_as_a_query_would(con, tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("skip me\nname|n\nJos\xe9|1\n'a|b'|2\n".encode("latin-1"))
    result = analyze_dataset(
        con, str(path), csv=CsvOptions(delimiter="|", skip=1, encoding="latin-1", quote="'", header=True)
    )
    assert [(c.name, c.type) for c in result.columns] == [("name", "VARCHAR"), ("n", "BIGINT")]
    assert (result.row_count, result.csv.skip_rows, result.csv.quote) == (2, 1, "'")
    name = next(c for c in result.columns if c.name == "name")
    assert (name.min, name.max) == ("José", "a|b")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (CsvOptions(delimiter=""), "csv.delimiter must be 1 to 4 bytes"),
        (CsvOptions(delimiter="abcde"), "csv.delimiter must be 1 to 4 bytes"),
        (CsvOptions(quote="ab"), "csv.quote must be one byte"),
        (CsvOptions(escape="ab"), "csv.escape must be one byte"),
        (CsvOptions(encoding="klingon"), "csv.encoding 'klingon'"),
        (CsvOptions(dateformat="%Q"), "DuckDB refused the csv options"),
    ],
)
def test_bad_csv_options_are_invalid_params_with_a_hint(con, tmp_path, options, message):
    path = tmp_path / "a.csv"
    path.write_text("a,b\n2024-01-01,1\n")
    with pytest.raises(InvalidParams, match=message) as info:
        analyze_dataset(con, str(path), csv=options)
    assert info.value.hint and "{" not in info.value.message


def test_csv_options_on_parquet_are_refused(con, tmp_path):
    con.execute(f"COPY (SELECT 1 AS a) TO '{tmp_path / 'a.parquet'}'")
    with pytest.raises(InvalidParams, match="csv options were given, but .* is parquet"):
        analyze_dataset(con, str(tmp_path / "a.parquet"), csv=CsvOptions(delimiter=";"))


def test_reader_options_cross_the_protocol_to_a_worker(sidecar, data_dir: Path):
    (data_dir / "ragged.csv").write_text(RAGGED)
    result = sidecar.request(
        "dataset.analyze", {"path": str(data_dir / "ragged.csv"), "csv": {"delimiter": ",", "null_padding": True}}
    )
    assert result["csv"]["delimiter"] == "," and result["findings"] == [] and result["row_count"] == 3
    plain = sidecar.request("dataset.analyze", {"path": str(data_dir / "ragged.csv")})
    assert [f["kind"] for f in plain["findings"]] == ["suspect_sniff"]
    duckdb.execute(f"COPY (SELECT 1 AS a, 2 AS b) TO '{data_dir / 'p1.parquet'}'")
    duckdb.execute(f"COPY (SELECT 1 AS a) TO '{data_dir / 'p2.parquet'}'")
    glob = str(data_dir / "*.parquet")
    with pytest.raises(RpcError) as err:
        sidecar.request("dataset.analyze", {"path": glob, "exact": True})
    assert err.value.code == "INPUT_ERROR" and "union_by_name" in err.value.data["hint"]
    assert "exception_type" not in str(err.value) and "schemas differ" in str(err.value)  # DuckDB's JSON stays out of the message
    union = sidecar.request("dataset.analyze", {"path": glob, "union_by_name": True})
    assert union["union_by_name"] is True and [c["name"] for c in union["columns"]] == ["a", "b"]
    assert [f["kind"] for f in union["findings"]] == ["schema_differs"]
    with pytest.raises(RpcError) as err:
        sidecar.request("dataset.analyze", {"path": str(data_dir / "ragged.csv"), "csv": {"delimitr": ","}})
    assert err.value.code == "INVALID_PARAMS"


def test_a_read_error_carries_duckdbs_message_not_its_json(sidecar, data_dir: Path):
    (data_dir / "broken.parquet").write_bytes(b"PAR1 this is not a parquet file at all")
    with pytest.raises(RpcError) as err:
        sidecar.request("dataset.analyze", {"path": str(data_dir / "broken.parquet")})
    text = str(err.value)
    assert err.value.code == "INPUT_ERROR" and "broken.parquet" in text
    assert "exception_type" not in text and "exception_message" not in text and '{"' not in text


WIDE_ROWS = (
    "SELECT range AS id, md5(range::VARCHAR) AS h, md5((range * 7)::VARCHAR) AS h2, range % 1000 AS g "
    "FROM range(600000)"
)


@pytest.fixture
def wide_parquet(tmp_path) -> Path:
    path = tmp_path / "wide.parquet"
    duckdb.execute(f"COPY ({WIDE_ROWS}) TO '{path}' (ROW_GROUP_SIZE 50000)")
    return path


def small(limit: str) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(config={"memory_limit": limit, "threads": 1}).cursor()


def test_a_sample_that_would_not_fit_in_memory_is_not_tried_the_streaming_scan_is(wide_parquet):
    # The 200k-row sample holds ~50 MiB at once; a 40 MB limit cannot hold it, but a scan streams.
    result = analyze_dataset(small("40MB"), str(wide_parquet), sample_rows=200_000)
    assert result.row_count == 600_000 and result.sampled_rows is None
    assert "would not fit in half of memory_limit" in result.notes[0]
    assert all(c.min_max_exact and c.mean_std_exact for c in result.columns)
    h = next(c for c in result.columns if c.name == "h")
    assert (h.null_count, h.min) == (0, min(duckdb.execute(f"SELECT min(h) FROM '{wide_parquet}'").fetchall()[0]))


def test_a_sample_that_runs_out_of_memory_falls_back_to_the_scan(wide_parquet, monkeypatch):
    from sidecar.engine import analyze_profiles

    monkeypatch.setattr(analyze_profiles, "_SAMPLE_OVERHEAD", 0)  # pretend the sample fits: it does not
    # At 20 MB the sample runs out of memory (it does from 10 to 30 MB) and the scan fits (from 16 MB).
    result = analyze_dataset(small("20MB"), str(wide_parquet), sample_rows=200_000)
    assert "the sample ran out of memory" in result.notes[0] and result.row_count_exact
    assert result.sampled_rows is None


def test_a_scan_out_of_memory_is_an_analyze_error_with_an_analyze_hint(wide_parquet):
    from sidecar.errors import OutOfMemory

    with pytest.raises(OutOfMemory, match="dataset.analyze ran out of memory scanning") as info:
        analyze_dataset(small("4MB"), str(wide_parquet), exact=True)
    assert "memory_limit" in info.value.hint and "narrower glob" in info.value.hint
    assert "filter or aggregate" not in info.value.hint and "{" not in info.value.message
