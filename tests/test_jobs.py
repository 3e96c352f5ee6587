"""Named partitioned jobs survive failure: re-sending the same request resumes them."""

from __future__ import annotations

import os
import signal

import duckdb
import pytest

from sidecar.client import RpcError

SQL = (
    "SELECT g, count(*) AS n, sum(v) AS s, median(v) AS m FROM "
    "(SELECT i % 50000 AS g, hash(i) % 1000 AS v FROM range(40000000) t(i)) GROUP BY g ORDER BY g LIMIT 5"
)


def partitioned(sc, db, job_id, token=None):
    return sc.call("query.run", {"sql": SQL, "database": db, "job_id": job_id, "partition": {"parts": 6},
                                 "progress_token": token or job_id})


def wait_parts(sc, token, at_least):
    """Wait until the job reports having finished `at_least` parts (progress says which part runs)."""
    sc.wait_for(lambda n: n.get("method") == "$/progress" and n["params"]["token"] == token
                and n["params"]["value"]["phase"] == "partition"
                and (n["params"]["value"]["percent"] or 0) >= 100 * at_least / 6, timeout=120)


def test_a_cancelled_job_resumes_from_its_finished_parts(sidecar, data_dir):
    db = str(data_dir / "work.duckdb")
    expected = sidecar.request("query.run", {"sql": SQL, "database": db}, timeout=300)["rows"]
    request_id, future = partitioned(sidecar, db, "nightly-1")
    wait_parts(sidecar, "nightly-1", 2)
    sidecar.cancel(request_id)
    with pytest.raises(RpcError) as err:
        future.result(timeout=60)
    assert err.value.code == "CANCELLED"
    status = sidecar.request("jobs.status", {"job_id": "nightly-1", "database": db})
    assert status["exists"] and status["parts_total"] == 6 and 2 <= status["parts_done"] < 6
    assert status["running"] is False
    resumed = sidecar.request("query.run", {"sql": SQL, "database": db, "job_id": "nightly-1",
                                            "partition": {"parts": 6}}, timeout=300)
    assert resumed["rows"] == expected  # identical to an uninterrupted run
    assert resumed["stats"]["reused_parts"] == status["parts_done"]
    assert resumed["stats"]["partitions"] == 6
    gone = sidecar.request("jobs.status", {"job_id": "nightly-1", "database": db})
    assert gone["exists"] is False  # a finished job leaves nothing behind


def test_a_job_resumes_after_the_sidecar_itself_was_killed(start_sidecar, data_dir):
    db = str(data_dir / "work.duckdb")
    first = start_sidecar()
    partitioned(first, db, "batch-7")
    wait_parts(first, "batch-7", 3)
    os.kill(first.pid, signal.SIGKILL)
    first.kill()
    second = start_sidecar()
    status = second.request("jobs.status", {"job_id": "batch-7", "database": db}, timeout=60)
    assert status["exists"] and status["parts_done"] >= 3
    result = second.request("query.run", {"sql": SQL, "database": db, "job_id": "batch-7",
                                          "partition": {"parts": 6}}, timeout=300)
    assert result["stats"]["reused_parts"] >= 3
    assert result["rows"] == second.request("query.run", {"sql": SQL, "database": db}, timeout=300)["rows"]
    assert second.close() == 0


def test_a_job_id_is_tied_to_its_plan_and_can_be_discarded(sidecar, data_dir):
    db = str(data_dir / "work.duckdb")
    request_id, future = partitioned(sidecar, db, "tied")
    wait_parts(sidecar, "tied", 1)
    with pytest.raises(RpcError) as err:  # one run per job_id at a time
        sidecar.request("query.run", {"sql": SQL, "database": db, "job_id": "tied", "partition": {"parts": 6}})
    assert err.value.code == "INVALID_PARAMS" and "running" in str(err.value)
    cancelled = sidecar.request("jobs.cancel", {"job_id": "tied", "database": db}, timeout=60)
    assert cancelled["cancelled"] is True and cancelled["exists"] is False
    with pytest.raises(RpcError):
        future.result(timeout=30)
    assert sidecar.request("jobs.status", {"job_id": "tied", "database": db})["exists"] is False
    # a job_id whose kept parts belong to another plan is refused, not mixed
    request_id, future = partitioned(sidecar, db, "tied", token="second run")
    wait_parts(sidecar, "second run", 1)
    sidecar.cancel(request_id)
    with pytest.raises(RpcError):
        future.result(timeout=60)
    with pytest.raises(RpcError) as err:
        sidecar.request("query.run", {"sql": SQL, "database": db, "job_id": "tied", "partition": {"parts": 3}})
    assert err.value.code == "INVALID_PARAMS" and "another" in str(err.value)
    with pytest.raises(RpcError) as err:
        sidecar.request("query.run", {"sql": "SELECT 1", "job_id": "no spaces allowed"})
    assert err.value.code == "INVALID_PARAMS"


# -- jobs whose parts are files in the job directory (an output made of the parts' rows) --------

ROWS = 12_000_000
SORTED = f"SELECT i, hash(i) % 1000000 AS v FROM range({ROWS}) t(i) ORDER BY v"
GROUPED = "SELECT g, count(*) AS n, sum(v) AS s FROM (SELECT i % 50000 AS g, hash(i) % 1000 AS v FROM range(30000000) t(i)) GROUP BY g"


def to_file(sc, sql, path, job_id, *, fmt="parquet", db=None, parts=6, token=None):
    params = {"sql": sql, "job_id": job_id, "partition": {"parts": parts}, "progress_token": token or job_id,
              "output": {"path": str(path), "format": fmt, "overwrite": True}}
    if db is not None:
        params["database"] = db
    return sc.call("query.run", params)


def one(sql):
    return duckdb.connect().execute(sql).fetchone()


def job_dir(tmp_path, job_id):
    return tmp_path / "state" / "jobs" / job_id


def test_a_cancelled_sorted_job_resumes_from_its_part_files(sidecar, data_dir, tmp_path):
    target = data_dir / "sorted.parquet"
    request_id, future = to_file(sidecar, SORTED, target, "sorted-1")
    wait_parts(sidecar, "sorted-1", 2)
    sidecar.cancel(request_id)
    with pytest.raises(RpcError) as err:
        future.result(timeout=60)
    assert err.value.code == "CANCELLED" and not target.exists()
    status = sidecar.request("jobs.status", {"job_id": "sorted-1"})
    assert status["exists"] and status["parts_total"] == 6 and 2 <= status["parts_done"] < 6
    kept = sorted(p.name for p in job_dir(tmp_path, "sorted-1").iterdir())
    assert "plan.json" in kept and "part_0.parquet" in kept and "part_0.rows" in kept
    _, future = to_file(sidecar, SORTED, target, "sorted-1", token="again")
    resumed = future.result(timeout=120)
    assert resumed["stats"]["reused_parts"] == status["parts_done"]  # the recorded bounds, not new ones
    assert resumed["stats"]["partitions"] == 6 and resumed["row_count"] == resumed["output"]["rows"] == ROWS
    check = one(
        f"SELECT count(*), bool_and(v >= prev), sum(hash(i, v)) FROM (SELECT i, v, lag(v, 1, 0) OVER "
        f"(ORDER BY file_row_number) AS prev FROM read_parquet('{target}', file_row_number = true))"
    )
    expected = one(f"SELECT sum(hash(i, hash(i) % 1000000)) FROM range({ROWS}) t(i)")[0]
    assert check == (ROWS, True, expected)  # every row once, in ORDER BY order
    assert not job_dir(tmp_path, "sorted-1").exists()
    assert sidecar.request("jobs.status", {"job_id": "sorted-1"})["exists"] is False


def same_rows(a, b, fmt):
    read = {"csv": "read_csv", "parquet": "read_parquet"}[fmt]
    return one(
        f"SELECT count(*) FROM ((FROM {read}('{a}') EXCEPT ALL FROM {read}('{b}')) "
        f"UNION ALL (FROM {read}('{b}') EXCEPT ALL FROM {read}('{a}')))"
    )[0] == 0


def test_a_file_job_resumes_after_the_sidecar_was_killed(start_sidecar, data_dir, tmp_path):
    db = str(data_dir / "work.duckdb")
    target = data_dir / "grouped.csv"
    first = start_sidecar()
    to_file(first, GROUPED, target, "batch-8", fmt="csv", db=db)
    wait_parts(first, "batch-8", 3)
    os.kill(first.pid, signal.SIGKILL)
    first.kill()
    second = start_sidecar()
    status = second.request("jobs.status", {"job_id": "batch-8", "database": db}, timeout=60)
    assert status["exists"] and status["parts_done"] >= 3 and status["parts_total"] == 6
    _, future = to_file(second, GROUPED, target, "batch-8", fmt="csv", db=db)
    result = future.result(timeout=120)
    assert result["stats"]["reused_parts"] >= 3
    whole = data_dir / "whole.csv"
    expected = second.request("query.run", {"sql": GROUPED, "database": db,
                                            "output": {"path": str(whole), "format": "csv"}}, timeout=120)
    assert result["row_count"] == result["output"]["rows"] == expected["row_count"] == 50000  # counts kept
    assert same_rows(target, whole, "csv")
    assert not job_dir(tmp_path, "batch-8").exists()
    assert second.close() == 0


def test_a_file_job_id_is_tied_to_its_plan_and_can_be_discarded(sidecar, data_dir, tmp_path):
    target = data_dir / "grouped.parquet"
    request_id, future = to_file(sidecar, GROUPED, target, "tied-files")
    wait_parts(sidecar, "tied-files", 1)
    sidecar.cancel(request_id)
    with pytest.raises(RpcError):
        future.result(timeout=60)
    assert job_dir(tmp_path, "tied-files").exists()
    for other in ({"parts": 3}, {"fmt": "csv"}):  # another number of parts, another output format
        with pytest.raises(RpcError) as err:
            to_file(sidecar, GROUPED, target, "tied-files", **other)[1].result(timeout=60)
        assert err.value.code == "INVALID_PARAMS" and "another" in str(err.value)
    cancelled = sidecar.request("jobs.cancel", {"job_id": "tied-files"}, timeout=60)
    assert cancelled["cancelled"] is True and cancelled["exists"] is False
    assert not job_dir(tmp_path, "tied-files").exists()
    assert sidecar.request("jobs.status", {"job_id": "tied-files"})["exists"] is False


def test_a_named_job_is_running_for_a_status_sent_right_after_it(sidecar):
    """The job_id is claimed as the request is read, in order: a jobs.status sent on its heels sees
    the job running and answers at once, instead of reading the job's database (which would wait for
    the whole job, 12 s here) or racing the query's thread. A second run of the same id is refused."""
    slow = "SELECT count(*) AS n FROM range(3000000000) t(i) WHERE hash(i) % 7 = 1"
    for round_ in range(5):
        job = f"heels-{round_}"
        qid, query = sidecar.call("query.run", {"sql": slow, "job_id": job, "partition": {"parts": 0}})
        _, status = sidecar.call("jobs.status", {"job_id": job})
        _, twice = sidecar.call("query.run", {"sql": "SELECT 1", "job_id": job})
        assert status.result(timeout=5)["running"] is True
        with pytest.raises(RpcError, match="is running already"):
            twice.result(timeout=5)
        sidecar.cancel(qid)
        with pytest.raises(RpcError):
            query.result(timeout=30)
    assert sidecar.request("query.run", {"sql": "SELECT 2 AS two", "job_id": "heels-0"})["rows"] == [[2]]
