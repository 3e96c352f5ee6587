"""Supervised workers under real faults: SIGKILL, SIGSTOP, real out-of-memory, kills mid-write.

After each fault the sidecar answers a normal query correctly, no temporary file is left,
and the database and any earlier output are intact.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import duckdb
import psutil
import pytest

from sidecar.client import RpcError, SidecarProcess
from sidecar.engine.outputs import TEMP_PREFIX

SLOW_READ = "SELECT count(*) AS n FROM range(3000000000) t(i) WHERE hash(i) % 7 = 1"


WHOLE = {"partition": {"parts": 0}}
"""No looks before the query (the estimate's EXPLAIN runs on the same worker): a fault injected
once the job's worker is known then hits the query itself."""


def job_worker(sc: SidecarProcess, job_id: str, timeout: float = 20.0) -> psutil.Process:
    """The worker running request `job_id`'s job right now, as the sidecar reports it (`jobs.status`):
    never the warm spare, which burns CPU too while it starts."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = sc.request("jobs.status", {"job_id": job_id})["worker_pid"]
        if pid is not None:
            return psutil.Process(pid)
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never ran on a worker; stderr: {list(sc.stderr_tail)[-5:]}")


def no_temps(directory: Path) -> bool:
    return not [p for p in directory.rglob("*") if p.name.startswith(TEMP_PREFIX)]


def assert_healthy(sc: SidecarProcess) -> None:
    assert sc.request("query.run", {"sql": "SELECT 40 + 2 AS answer"})["rows"] == [[42]]


def test_queries_run_in_worker_processes_not_in_the_sidecar(sidecar):
    result = sidecar.request("query.run", {"sql": "SELECT 1 AS one"})
    (attempt,) = result["stats"]["attempts"]
    assert attempt["outcome"] == "ok" and attempt["rung"] == "first"
    assert attempt["ceiling_bytes"] >= attempt["duckdb_memory_limit_bytes"] > 0
    assert psutil.Process(sidecar.pid).children(), "a worker process runs the queries"
    # the sidecar process itself never loads a database file
    assert not [f for f in psutil.Process(sidecar.pid).open_files() if f.path.endswith(".duckdb")]


def test_a_sigkilled_worker_on_a_read_is_retried_transparently(sidecar):
    _, future = sidecar.call(
        "query.run",
        {"sql": "SELECT count(*) AS n FROM range(600000000) t(i) WHERE hash(i) % 7 = 1", "job_id": "read", **WHOLE},
    )
    os.kill(job_worker(sidecar, "read").pid, signal.SIGKILL)
    result = future.result(timeout=120)
    assert result["rows"] == [
        [duckdb.execute("SELECT count(*) FROM range(600000000) t(i) WHERE hash(i) % 7 = 1").fetchall()[0][0]]
    ]
    first, second = result["stats"]["attempts"]
    assert first["outcome"] == "WORKER_CRASHED" and second["rung"] == "retry" and second["outcome"] == "ok"
    assert_healthy(sidecar)


def test_a_crash_that_cannot_be_retried_is_worker_crashed_and_the_next_request_succeeds(sidecar):
    # an explicit transaction is the client's own: the sidecar cannot repeat it safely
    _, future = sidecar.call(
        "query.run", {"sql": f"BEGIN; SELECT count(*) FROM ({SLOW_READ}); COMMIT", "job_id": "txn"}
    )
    os.kill(job_worker(sidecar, "txn").pid, signal.SIGKILL)
    with pytest.raises(RpcError) as err:
        future.result(timeout=60)
    assert err.value.code == "WORKER_CRASHED"
    assert err.value.data["details"]["signal"] == "SIGKILL"
    assert err.value.data["retryable"] is True
    assert_healthy(sidecar)


def test_a_killed_worker_fails_only_its_own_request(start_sidecar, data_dir):
    sc = start_sidecar()
    _, other = sc.call("dataset.analyze", {"path": str(data_dir)})  # an empty dir: a quick INPUT_ERROR
    _, victim = sc.call(
        "query.run", {"sql": f"BEGIN; SELECT count(*) FROM ({SLOW_READ}); COMMIT", "job_id": "victim"}
    )
    with pytest.raises(RpcError):
        other.result(timeout=30)
    os.kill(job_worker(sc, "victim").pid, signal.SIGKILL)
    with pytest.raises(RpcError):
        victim.result(timeout=60)
    assert_healthy(sc)
    assert sc.close() == 0


def test_a_hung_worker_is_stopped_by_the_stall_watchdog(start_sidecar):
    sc = start_sidecar(BMAD_DATA_STALL_TIMEOUT_MS=1500)
    _, future = sc.call("query.run", {"sql": SLOW_READ, "job_id": "hung", **WHOLE})
    worker = job_worker(sc, "hung")
    worker.suspend()  # SIGSTOP: no CPU, no answer to an interrupt
    started = time.monotonic()
    with pytest.raises(RpcError) as err:
        future.result(timeout=60)
    assert err.value.code == "TIMEOUT"
    assert time.monotonic() - started < 20
    assert not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE
    assert_healthy(sc)
    assert sc.close() == 0


def test_a_hung_worker_past_its_timeout_is_killed(sidecar):
    _, future = sidecar.call("query.run", {"sql": SLOW_READ, "timeout_ms": 3000, "job_id": "late", **WHOLE})
    job_worker(sidecar, "late").suspend()
    with pytest.raises(RpcError) as err:
        future.result(timeout=60)
    assert err.value.code == "TIMEOUT"
    assert_healthy(sidecar)


LIST_HEAVY = "SELECT count(*) AS groups, sum(len(l)) AS items FROM (SELECT i % 4 AS g, list(i) AS l FROM range(40000000) t(i) GROUP BY g)"


def test_a_real_out_of_memory_is_recovered_by_the_ladder(start_sidecar):
    # four slots in a 2 GiB machine budget: a job starts with a 512 MiB share, too small for this
    sc = start_sidecar(BMAD_DATA_MACHINE_BUDGET="2GiB", BMAD_DATA_MAX_CONCURRENT_JOBS=4)
    result = sc.request("query.run", {"sql": LIST_HEAVY}, timeout=300)
    assert result["rows"] == [[4, 40000000]]
    attempts = result["stats"]["attempts"]
    grew = len(attempts) > 1 or attempts[0]["grown_to_bytes"] is not None
    assert grew, attempts
    assert attempts[-1]["outcome"] == "ok"
    assert max(a["peak_rss_bytes"] for a in attempts) <= 2 * 1024**3
    assert sc.close() == 0


def test_an_explicit_budget_is_a_hard_ceiling_and_the_error_says_what_was_tried(sidecar):
    with pytest.raises(RpcError) as err:
        sidecar.request("query.run", {"sql": LIST_HEAVY, "settings": {"memory_limit": "300MiB"}}, timeout=300)
    assert err.value.code == "OUT_OF_MEMORY"
    attempts = err.value.data["details"]["attempts"]
    assert attempts and all(a["ceiling_bytes"] <= 300 * 1024**2 for a in attempts)
    assert all(a["peak_rss_bytes"] <= 300 * 1024**2 + 64 * 1024**2 for a in attempts)  # 50 Hz sampling slack
    assert "Tried: first" in err.value.hint
    assert "split" in err.value.hint  # a list() aggregate: more threads or spilling will not help
    assert_healthy(sidecar)


def test_a_worker_killed_mid_output_leaves_the_earlier_file_and_the_retry_writes_it_whole(sidecar, data_dir):
    target = data_dir / "out.parquet"
    target.write_bytes(b"earlier")
    sql = "SELECT i, hash(i) AS h FROM range(150000000) t(i)"
    _, future = sidecar.call(
        "query.run", {"sql": sql, "output": {"path": str(target), "overwrite": True}, "job_id": "export", **WHOLE}
    )
    deadline = time.monotonic() + 30
    while no_temps(data_dir):
        assert time.monotonic() < deadline, "the output never started"
        time.sleep(0.05)
    os.kill(job_worker(sidecar, "export").pid, signal.SIGKILL)
    assert target.read_bytes() == b"earlier"
    result = future.result(timeout=300)
    assert [a["outcome"] for a in result["stats"]["attempts"]] == ["WORKER_CRASHED", "ok"]
    assert duckdb.execute(f"SELECT count(*) FROM '{target}'").fetchall() == [(150000000,)]
    assert no_temps(data_dir)


def test_a_worker_killed_mid_insert_leaves_the_database_as_it_was(sidecar, data_dir):
    db = str(data_dir / "warehouse.duckdb")
    sidecar.request(
        "query.run", {"sql": "CREATE TABLE facts AS SELECT range AS id FROM range(10)", "database": db}
    )
    sql = "INSERT INTO facts SELECT range + 10 FROM range(300000000) WHERE hash(range) % 2 = 0"
    _, future = sidecar.call("query.run", {"sql": sql, "database": db, "job_id": "insert"})
    os.kill(job_worker(sidecar, "insert").pid, signal.SIGKILL)
    result = future.result(timeout=300)  # one transaction, so safe to repeat: retried, applied once
    assert [a["outcome"] for a in result["stats"]["attempts"]] == ["WORKER_CRASHED", "ok"]
    count = sidecar.request("query.run", {"sql": "SELECT count(*) FROM facts WHERE id < 10", "database": db})
    assert count["rows"] == [[10]]
    inserted = sidecar.request(
        "query.run", {"sql": "SELECT count(*) FROM facts WHERE id >= 10", "database": db}
    )
    expected = duckdb.execute("SELECT count(*) FROM range(300000000) WHERE hash(range) % 2 = 0").fetchall()[
        0
    ][0]
    assert inserted["rows"] == [[expected]]


def test_a_failed_create_table_as_leaves_nothing_behind(sidecar, data_dir):
    db = str(data_dir / "warehouse.duckdb")
    sidecar.request("query.run", {"sql": "CREATE TABLE keep AS SELECT 1 AS x", "database": db})
    with pytest.raises(RpcError):
        sidecar.request(
            "query.run",
            {
                "database": db,
                "sql": (
                    "CREATE TABLE half AS SELECT 1 AS x; "
                    "CREATE TABLE broken AS SELECT CASE WHEN i = 500000 THEN error('boom') ELSE i END AS i FROM range(1000000) t(i)"
                ),
            },
        )
    tables = sidecar.request(
        "query.run", {"sql": "SELECT table_name FROM duckdb_tables() ORDER BY 1", "database": db}
    )
    assert tables["rows"] == [["keep"]]


def test_admission_queues_a_job_that_would_oversubscribe(start_sidecar):
    sc = start_sidecar(BMAD_DATA_MACHINE_BUDGET="1GiB")
    _, first = sc.call("query.run", {"sql": SLOW_READ, "settings": {"memory_limit": "700MiB"}, "job_id": "big", **WHOLE})
    job_worker(sc, "big")  # the first job runs, holding its 700 MiB
    _, second = sc.call(
        "dataset.analyze", {"path": ".", "settings": {"memory_limit": "700MiB"}, "progress_token": "q"}
    )
    note = sc.wait_for(lambda n: n.get("method") == "$/progress" and n["params"]["token"] == "q")
    assert note["params"]["value"]["phase"] == "queued"
    assert not second.done()
    first_id = next(k for k, f in sc._pending.items() if f is first)
    sc.cancel(first_id)
    with pytest.raises(RpcError):
        first.result(timeout=30)
    with pytest.raises(RpcError) as err:  # admitted once the first released its share; "." is an empty dir
        second.result(timeout=30)
    assert err.value.code == "INPUT_ERROR"
    assert sc.close() == 0


def test_jobs_on_different_databases_run_at_the_same_time(sidecar, data_dir):
    _, slow = sidecar.call("query.run", {"sql": SLOW_READ, "job_id": "slow", **WHOLE})
    job_worker(sidecar, "slow")
    started = time.monotonic()
    other = sidecar.request(
        "query.run", {"sql": "SELECT 7 AS seven", "database": str(data_dir / "other.duckdb")}
    )
    assert other["rows"] == [[7]] and time.monotonic() - started < 5
    slow_id = next(k for k, f in sidecar._pending.items() if f is slow)
    sidecar.cancel(slow_id)
    with pytest.raises(RpcError) as err:
        slow.result(timeout=10)
    assert err.value.code == "CANCELLED"


@pytest.mark.slow
def test_a_hundred_worker_kills(sidecar):
    for round_ in range(100):
        _, future = sidecar.call(
            "query.run", {"sql": f"SELECT count(*) FROM ({SLOW_READ}) WHERE n > {round_}", "job_id": f"kill-{round_}", **WHOLE}
        )
        os.kill(job_worker(sidecar, f"kill-{round_}").pid, signal.SIGKILL)
        try:
            future.result(timeout=5)
        except (RpcError, TimeoutError):
            pass
        sidecar.cancel(next(iter(sidecar._pending), None))
        assert_healthy(sidecar)
