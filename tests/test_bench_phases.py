"""`python -m sidecar.bench.phases` prints where a TPC-H query's time goes through a real sidecar:
the estimate's one look (an EXPLAIN) and no planner call for a query that fits (issue 15). Slow
(a sidecar, TPC-H data): the fast tests of that behaviour are in test_estimate.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_bench_data import have_tpchgen

from sidecar.bench import phases


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.skipif(not have_tpchgen(), reason="needs tpchgen-cli, from the optional `bench` extra")
def test_the_phase_table_shows_one_look_and_no_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--size", "1MB", "--queries", "1,13", "--repeat", "1", "--state", str(tmp_path)]
    assert phases.main(args) == 0
    out = capsys.readouterr().out
    assert "load average" in out and "| query | parse | plan | n looks | looks |" in out
    lines = [line.split(" | ") for line in out.splitlines() if "tpch_q" in line]
    rows = {cells[0].strip("| "): cells for cells in lines}
    assert set(rows) == {"tpch_q01", "tpch_q13"}
    for cells in rows.values():
        assert cells[2] == "0.0" and cells[3] == "1"  # the planner not asked; one look, the EXPLAIN
        measured = [c for c in cells[4:-1] if c != "-"]  # base full, base cpu: only with --against
        assert len(measured) == len(cells[4:-1]) - 2 and all(float(c) >= 0 for c in measured)
        assert float(cells[-1].strip(" |")) > 0
