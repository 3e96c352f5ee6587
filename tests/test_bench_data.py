"""Benchmark data and questions: deterministic by seed, sized by CSV bytes, cached, and both sides agree."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from sidecar.bench.suite.data import Dataset, cache_root, prepare, remove_cache, rows_for, tpchgen_command
from sidecar.bench.suite.questions import SUITES, questions_for, render_sql
from sidecar.bench.suite.sides import fingerprint, run_plain
from sidecar.errors import InputError, InvalidParams


def table_hash(path: Path) -> int:
    return duckdb.execute(f"SELECT sum(hash(columns(*))) FROM read_parquet('{path}')").fetchall()[0][0]


def test_same_seed_same_data_other_seed_other_data(tmp_path: Path) -> None:
    a = prepare(Dataset(tmp_path / "a", "h2o", 200_000, seed=0))
    b = prepare(Dataset(tmp_path / "b", "h2o", 200_000, seed=0))
    c = prepare(Dataset(tmp_path / "c", "h2o", 200_000, seed=1))
    assert table_hash(a.files["x"]) == table_hash(b.files["x"]) != table_hash(c.files["x"])
    assert duckdb.execute(f"SELECT count(*) FROM read_parquet('{a.files['x']}')").fetchall() == [
        (rows_for(200_000),)
    ]


def test_size_is_csv_bytes(tmp_path: Path) -> None:
    """BYTES_PER_ROW's claim: the CSV of a size-S dataset is within 10% of S."""
    load = prepare(Dataset(tmp_path, "load", 1_000_000, seed=0))
    assert 0.9e6 < load.files["csv"].stat().st_size < 1.1e6
    assert load.files["ndjson"].stat().st_size > load.files["csv"].stat().st_size


def test_cached_data_is_not_rewritten_and_cleanup_removes_it(tmp_path: Path) -> None:
    first = prepare(Dataset(cache_root(tmp_path), "h2o", 100_000, seed=0))
    stamp = first.files["x"].stat().st_mtime_ns
    again = prepare(Dataset(cache_root(tmp_path), "h2o", 100_000, seed=0))
    assert again.files["x"].stat().st_mtime_ns == stamp
    freed, files = remove_cache(tmp_path)
    assert freed > 0 and files >= 3 and not cache_root(tmp_path).exists()


def test_a_cancelled_generator_leaves_no_cache(tmp_path: Path) -> None:
    d = prepare(Dataset(tmp_path, "h2o", 100_000_000, seed=0), cancelled=lambda: True)
    assert not d.ready and not list(tmp_path.rglob("*.parquet"))


def test_unknown_suite_and_question_suggest_the_closest(tmp_path: Path) -> None:
    with pytest.raises(InvalidParams, match="did you mean 'smoke'"):
        questions_for("smok")
    with pytest.raises(InvalidParams, match="did you mean 'window'"):
        questions_for("query", ["windw"])
    assert len(questions_for("tpch")) == 22 and set(SUITES["smoke"]) <= set(SUITES["all"])


def test_every_h2o_and_load_question_runs_in_plain_duckdb(tmp_path: Path) -> None:
    h2o = prepare(Dataset(tmp_path, "h2o", 200_000, seed=0))
    load = prepare(Dataset(tmp_path, "load", 200_000, seed=0))
    for q in questions_for("query") + questions_for("load"):
        data = {"h2o": h2o, "load": load}.get(q.dataset)
        m = run_plain(render_sql(q, data, 200_000, str(tmp_path / "out.parquet")), threads=2, budget=None,
                      temp_directory=str(tmp_path / "spill"), timeout_s=120, cancelled=lambda: False)  # fmt: skip
        assert m.status == "ok", (q.name, m.error)
        assert m.fingerprint and m.peak_rss_bytes > 10 * 2**20 and m.wall_ms > 0


def test_out_of_memory_is_recorded_with_its_code(tmp_path: Path) -> None:
    h2o = prepare(Dataset(tmp_path, "h2o", 2_000_000, seed=0))
    (q,) = questions_for("query", ["groupby_all"])
    m = run_plain(render_sql(q, h2o, 2_000_000, ""), threads=1, budget=2_000_000,
                  temp_directory=str(tmp_path / "spill"), timeout_s=120, cancelled=lambda: False)  # fmt: skip
    assert m.status == "OUT_OF_MEMORY" and "memory" in m.error.lower()


def test_fingerprint_ignores_row_order_and_float_noise_only() -> None:
    assert fingerprint([(1, 0.1 + 0.2), (2, "a")]) == fingerprint([[2, "a"], [1, 0.3]])
    assert fingerprint([(1, 0.3)]) != fingerprint([(1, 0.31)])


def have_tpchgen() -> bool:
    try:
        tpchgen_command()
    except InputError:
        return False
    return True


@pytest.mark.skipif(
    not have_tpchgen(),
    reason="needs tpchgen-cli, from the optional `bench` extra (pip install 'bmad-data-sidecar[bench]')",
)
def test_tpch_data_and_all_22_queries_run(tmp_path: Path) -> None:
    tpch = prepare(Dataset(tmp_path, "tpch", 10_000_000, seed=0))  # SF 0.01
    assert tpch.ready and tpch.files["lineitem"].exists()
    for q in questions_for("tpch"):
        m = run_plain(render_sql(q, tpch, 10_000_000, ""), threads=2, budget=None,
                      temp_directory=str(tmp_path / "spill"), timeout_s=120, cancelled=lambda: False)  # fmt: skip
        assert m.status == "ok", (q.name, m.error)


def test_missing_tpchgen_says_which_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("sys.executable", str(tmp_path / "python"))
    with pytest.raises(InputError) as err:
        tpchgen_command()
    assert "bench" in err.value.hint and err.value.details["package"] == "tpchgen-cli"


def test_plain_values_fingerprint_like_the_sidecars_wire_encoding() -> None:
    """DECIMAL and wide integers cross the protocol as strings; plain DuckDB gives Decimal and int."""
    con = duckdb.connect()
    plain = con.execute(
        "SELECT 12.30::DECIMAL(10, 2), (1::BIGINT << 60), DATE '2024-02-29', 0.1::DOUBLE"
    ).fetchall()
    assert fingerprint(plain) == fingerprint([["12.30", "1152921504606846976", "2024-02-29", 0.1]])
