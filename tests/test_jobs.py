"""Named partitioned jobs survive failure: re-sending the same request resumes them."""

from __future__ import annotations

import os
import signal

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
