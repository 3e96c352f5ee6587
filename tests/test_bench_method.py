"""bench.run / bench.compare / bench.list over a real sidecar's pipes, measuring real sidecars and plain DuckDB."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import rpc_error
from test_bench_data import have_tpchgen

from sidecar.bench.suite.data import Dataset, cache_root, prepare
from sidecar.bench.suite.questions import questions_for, render_sql
from sidecar.bench.suite.sides import run_plain
from sidecar.client import RpcError, SidecarProcess

SMOKE = {"suite": "smoke", "questions": ["scan_filter", "load_csv"], "repeat": 2}
CPU = {"suite": "query", "questions": ["cpu_hash"], "sizes": ["100MB"], "repeat": 7}


@pytest.fixture
def sc(start_sidecar: Callable[..., SidecarProcess]) -> SidecarProcess:
    process = start_sidecar()
    process.request("initialize", {"client": {"name": "test"}})
    return process


def progress(sc: SidecarProcess, token: str) -> list[dict[str, Any]]:
    return [n["params"]["value"] for n in sc.notifications
            if n.get("method") == "$/progress" and n["params"]["token"] == token]  # fmt: skip


@pytest.mark.timeout(300)
def test_smoke_run_is_recorded_side_by_side_with_progress(sc: SidecarProcess, tmp_path: Path) -> None:
    r = sc.request("bench.run", {**SMOKE, "label": "base", "progress_token": "b"}, timeout=240)
    assert r["run"]["status"] == "done" and r["run"]["suite"] == "smoke" and r["run"]["sizes"] == ["1MB"]
    assert r["run"]["machine"]["cores"] >= 1 and r["run"]["versions"]["duckdb"] == duckdb.__version__
    assert [c["question"] for c in r["cases"]] == ["scan_filter", "load_csv"]
    for case in r["cases"]:
        assert case["answers_agree"] and case["ratio"] > 0
        for side in ("sidecar", "plain"):
            s = case[side]
            assert s["status"] == "ok" and s["runs"] == 2 and s["min_ms"] <= s["median_ms"] <= s["max_ms"]
            assert s["peak_rss_bytes"] > 20 * 2**20  # a python with DuckDB loaded, at least
    assert r["failures"] == 0 and r["wrong_answers"] == 0
    values = progress(sc, "b")
    assert {v["side"] for v in values} == {"data", "sidecar", "plain"}
    assert {(v["question"], v["questions"], v["size"]) for v in values} == {(1, 2, "1MB"), (2, 2, "1MB")}
    assert [v["repeat"] for v in values if v["side"] == "sidecar" and v["question"] == 1] == [0, 1, 2]
    rows = (
        duckdb.connect(r["results_file"], read_only=True)
        .execute(
            "SELECT side, count(*) FROM results WHERE run_id = ? GROUP BY side ORDER BY side",
            [r["run"]["run_id"]],
        )
        .fetchall()
    )
    assert rows == [("plain", 4), ("sidecar", 4)]  # 2 questions x 2 repeats; warm-ups not counted
    listed = sc.request("bench.list", {})["runs"]
    assert [x["run_id"] for x in listed] == [r["run"]["run_id"]] and listed[0]["label"] == "base"
    data = Path(r["results_file"]).parent / "data"
    assert (data / "h2o" / "1000000-seed0" / "x.parquet").exists() and (data / "load").is_dir()
    sc.request("cleanup", {})  # a plain cleanup keeps the cache; an aggressive one removes it
    assert data.exists()
    freed = sc.request("cleanup", {"aggressive": True})
    assert not data.exists() and freed["bytes_freed"] > 1_000_000


@pytest.mark.timeout(300)
def test_failing_cases_are_recorded_with_their_codes(sc: SidecarProcess) -> None:
    r = sc.request("bench.run", {"suite": "memory", "questions": ["groupby_all"], "sizes": ["10MB"], "repeat": 1},
                   timeout=240)  # fmt: skip
    budgets = {c["budget_bytes"]: c for c in r["cases"]}
    assert set(budgets) == {None, 40_000_000, 10_000_000, 2_500_000}  # no limit, 4x, 1x, 1/4 of the input
    assert budgets[None]["sidecar"]["status"] == budgets[None]["plain"]["status"] == "ok"
    tiny = budgets[2_500_000]
    assert tiny["plain"]["status"] == "OUT_OF_MEMORY" and "memory" in tiny["plain"]["error"].lower()
    assert tiny["sidecar"]["status"] == "INVALID_PARAMS" and "minimum" in tiny["sidecar"]["error"]
    assert r["failures"] >= 2


@pytest.mark.timeout(300)
def test_cancel_stops_the_run_and_keeps_it_listed(sc: SidecarProcess) -> None:
    request_id, future = sc.call("bench.run", {**CPU, "sizes": ["100MB"], "progress_token": "c"})
    deadline = time.monotonic() + 120
    while not any(v["side"] == "sidecar" for v in progress(sc, "c")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sc.request("query.run", {"sql": "SELECT 42"}, timeout=60)["rows"] == [[42]]  # served meanwhile
    sc.cancel(request_id)
    with pytest.raises(RpcError) as err:
        future.result(timeout=120)
    assert rpc_error(err)["code"] == "CANCELLED"
    (run,) = sc.request("bench.list", {})["runs"]
    assert run["status"] == "cancelled"
    assert sc.request("system.resources")["logical_cpus"] >= 1  # the sidecar still serves


def test_bad_params_say_what_to_do(sc: SidecarProcess) -> None:
    with pytest.raises(RpcError) as err:
        sc.request("bench.run", {"suite": "qeury"})
    assert "did you mean 'query'" in rpc_error(err)["message"]
    with pytest.raises(RpcError) as err:
        sc.request("bench.run", {"suite": "smoke", "sizes": ["1XB"]})
    assert "1XB" in rpc_error(err)["message"] and "1MB" in rpc_error(err)["hint"]
    with pytest.raises(RpcError) as err:
        sc.request("bench.compare", {"baseline": "nope"})
    assert rpc_error(err)["code"] == "INVALID_PARAMS" and "--label" in rpc_error(err)["hint"]


@pytest.mark.timeout(300)
def test_runs_of_another_machine_are_compared_only_when_allowed(sc: SidecarProcess) -> None:
    a = sc.request("bench.run", {**SMOKE, "questions": ["scan_filter"], "label": "a"}, timeout=240)
    b = sc.request("bench.run", {**SMOKE, "questions": ["scan_filter"], "label": "b"}, timeout=240)
    with duckdb.connect(a["results_file"]) as con:  # as if run "a" came from another machine
        con.execute("UPDATE runs SET machine_fingerprint = 'elsewhere', machine = json_merge_patch(machine, "
                    "'{\"fingerprint\": \"elsewhere\"}') WHERE label = 'a'")  # fmt: skip
    with pytest.raises(RpcError) as err:
        sc.request("bench.compare", {"baseline": "a", "candidate": "b"})
    assert (
        "different machines" in rpc_error(err)["message"] and "allow_other_machine" in rpc_error(err)["hint"]
    )
    c = sc.request("bench.compare", {"baseline": "a", "candidate": "b", "allow_other_machine": True})
    assert not c["same_machine"] and any("DIFFERENT machines" in n for n in c["notes"])
    assert c["candidate"]["run_id"] == b["run"]["run_id"]


def parallel_speedup(state: Path) -> float:
    """What a second thread buys on this machine right now: plain DuckDB, threads 1 and 2 alternated,
    on the CPU-bound question over the data the runs use."""
    (q,) = questions_for("query", ["cpu_hash"])
    sql = render_sql(q, prepare(Dataset(cache_root(state), "h2o", 100_000_000, 0)), 100_000_000, "")
    walls: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(3):
        for threads in (1, 2):
            m = run_plain(
                sql,
                threads=threads,
                budget=None,
                temp_directory="/tmp",
                timeout_s=120,
                cancelled=lambda: False,
            )
            walls[threads].append(m.wall_ms)
    return statistics.median(walls[1]) / statistics.median(walls[2])


@pytest.mark.exclusive  # both cores for threads 2 against 1: not beside the Node tests
@pytest.mark.timeout(600)
def test_a_repeated_run_is_not_flagged(sc: SidecarProcess) -> None:
    sc.request("bench.run", {**CPU, "label": "first"}, timeout=400)
    sc.request("bench.run", {**CPU, "label": "again"}, timeout=400)
    same = sc.request("bench.compare", {"baseline": "first", "candidate": "again"}, timeout=400)
    (case,) = same["cases"]
    assert case["verdict"] in ("unchanged", "improvement") and same["regressions"] == 0, (
        case["reason"],
        same["notes"],
    )


@pytest.mark.exclusive  # both cores for threads 2 against 1: not beside the Node tests
@pytest.mark.timeout(600)
def test_threads_1_is_flagged_against_threads_2(sc: SidecarProcess, tmp_path: Path) -> None:
    """The issue's acceptance test: a real slowdown is flagged (after its re-measurement)."""
    speedup = parallel_speedup(tmp_path / "state")
    if speedup < 1.25:
        pytest.skip(
            f"a second thread gives {speedup:.2f}x on this machine now (busy): threads 1 is no slowdown here"
        )
    sc.request("bench.run", {**CPU, "settings": {"threads": 2}, "label": "two"}, timeout=400)
    sc.request("bench.run", {**CPU, "settings": {"threads": 1}, "label": "one"}, timeout=400)
    slow = sc.request("bench.compare", {"baseline": "two", "candidate": "one"}, timeout=400)
    (case,) = slow["cases"]
    after = parallel_speedup(tmp_path / "state")
    if case["verdict"] != "regression" and after < 1.25:
        pytest.skip(
            f"a second thread gave {speedup:.2f}x before the runs but {after:.2f}x after (busy machine)"
        )
    assert case["verdict"] == "regression", (case["reason"], case["baseline_ms"], case["candidate_ms"])
    assert case["rerun"] and slow["regressions"] == 1 and case["test"] in ("mann-whitney", "ranges", "both")
    assert any("baseline and candidate settings alternately" in n for n in slow["notes"])


@pytest.mark.slow  # 10 s; the regression rule itself is checked in CI by the threads and repeat tests
@pytest.mark.timeout(600)
def test_the_false_positive_script_counts_pairs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sidecar.bench.suite.false_positives import main

    out = tmp_path / "fp.json"
    assert main(["--pairs", "1", "--suite", "smoke", "--size", "1MB", "--repeat", "1", "--state",
                 str(tmp_path / "state"), "--json", str(out)]) == 0  # fmt: skip
    line = capsys.readouterr().out
    assert line.startswith("1 same-code pairs, suite smoke at 1MB, repeat 1: 7 case comparisons")
    (pair,) = json.loads(out.read_text())
    assert pair["cases"] == 7 and pair["baseline"] != pair["candidate"]


@pytest.mark.skipif(
    not have_tpchgen(),
    reason="needs tpchgen-cli, from the optional `bench` extra (pip install 'bmad-data-sidecar[bench]')",
)
@pytest.mark.slow  # 12 s; all 22 queries run in CI in tests/test_bench_data.py
@pytest.mark.timeout(600)
def test_tpch_answers_agree_on_both_sides(sc: SidecarProcess) -> None:
    r = sc.request("bench.run", {"suite": "tpch", "sizes": ["1MB"], "repeat": 1}, timeout=500)
    assert len(r["cases"]) == 22 and r["wrong_answers"] == 0 and r["failures"] == 0, [
        (c["question"], c["sidecar"]["error"], c["plain"]["error"])
        for c in r["cases"]
        if not c["answers_agree"]
    ]
