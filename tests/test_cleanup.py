"""What a killed sidecar leaves behind is found and removed; cleanup says what it freed."""

from __future__ import annotations

import os
import signal
import time

import psutil

from sidecar.engine.outputs import TEMP_PREFIX

SLOW_OUTPUT = (
    "SELECT i, hash(i) AS h, repeat('x', 50) AS pad FROM range(400000000) t(i) WHERE hash(i) % 3 = 0"
)


def wait_until(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_sigkilled_sidecar_leaves_nothing_visible_and_its_worker_cleans_up(
    start_sidecar, data_dir, tmp_path
):
    target = data_dir / "result.parquet"
    target.write_bytes(b"the earlier output")
    first = start_sidecar()
    first.call("query.run", {"sql": SLOW_OUTPUT, "output": {"path": str(target), "overwrite": True}})
    temps = lambda: [p for p in data_dir.iterdir() if p.name.startswith(TEMP_PREFIX)]  # noqa: E731
    assert wait_until(lambda: any(p.stat().st_size > 0 for p in temps())), list(first.stderr_tail)[-5:]
    workers = psutil.Process(first.pid).children()
    assert workers, "the query runs in a worker process"
    os.kill(first.pid, signal.SIGKILL)
    first.kill()
    assert target.read_bytes() == b"the earlier output"  # partial output never became visible
    # the worker sees its sidecar gone (EOF on its command pipe), stops the query, removes its temp
    gone, alive = psutil.wait_procs(workers, timeout=20)
    assert not alive
    assert temps() == []
    assert target.read_bytes() == b"the earlier output"

    second = start_sidecar()
    second.request("system.resources")
    assert not [p for p in (tmp_path / "spill").iterdir() if any(p.iterdir())]
    assert second.close() == 0


def test_cleanup_reports_orphaned_spill_and_outputs(sidecar, data_dir, tmp_path):
    sidecar.request("system.resources")  # its own start-up cleanup is done; what follows is new
    live = tmp_path / "spill" / f"memory-{sidecar.pid}"  # a live process's spill must survive
    live.mkdir(parents=True, exist_ok=True)
    (live / "in-use.block").write_bytes(b"z" * 10)
    dead_pid = 2**22 - 7  # above the default pid_max: never a live process here
    orphan = tmp_path / "spill" / f"memory-{dead_pid}"
    orphan.mkdir(parents=True)
    (orphan / "duckdb_temp_block-1.block").write_bytes(b"x" * 4096)
    temp = data_dir / f"{TEMP_PREFIX}deadbeef-out.parquet"
    temp.write_bytes(b"y" * 1000)
    journal = tmp_path / "state" / "pending-outputs"
    journal.mkdir(parents=True, exist_ok=True)
    (journal / f"{dead_pid}-deadbeef").write_text(str(temp))
    result = sidecar.request("cleanup", {"aggressive": True})
    assert result == {"bytes_freed": 5096, "files_removed": 2, "spill_directory": str(tmp_path / "spill")}
    assert not orphan.exists() and not temp.exists()
    assert [p.name for p in (tmp_path / "spill").iterdir()] == [live.name]
    assert (live / "in-use.block").exists()
    assert sidecar.request("cleanup") == {
        "bytes_freed": 0,
        "files_removed": 0,
        "spill_directory": str(tmp_path / "spill"),
    }
    assert sidecar.request("query.run", {"sql": "SELECT 2 AS two"})["rows"] == [[2]]


def _job_dir(root, name, size, age_s=0.0):
    directory = root / name
    directory.mkdir(parents=True)
    (directory / "plan.json").write_bytes(b"{}")
    (directory / "part_0.parquet").write_bytes(b"p" * size)
    then = time.time() - age_s
    for path in (*directory.iterdir(), directory):
        os.utime(path, (then, then))
    return directory


def test_cleanup_removes_job_directories_by_age_but_never_a_running_jobs(sidecar, data_dir, tmp_path):
    sidecar.request("system.resources")
    root = tmp_path / "state" / "jobs"
    week = 7 * 24 * 3600
    old = _job_dir(root, "nightly-old", 1000, age_s=week + 60)
    young = _job_dir(root, "nightly-young", 10, age_s=week - 3600)
    orphan = _job_dir(root, f"anon.{2**22 - 7}.deadbeef", 100)  # its sidecar is gone: nobody resumes it
    own = _job_dir(root, f"anon.{sidecar.pid}.cafe", 100)  # a request of this live sidecar
    result = sidecar.request("cleanup")  # the default age: 7 days
    assert result["bytes_freed"] == 1002 + 102 and result["files_removed"] == 4
    assert not old.exists() and not orphan.exists() and young.exists() and own.exists()
    # a running job's directory stays whatever its age
    slow = (
        "SELECT g, count(*) AS n FROM (SELECT i % 50000 AS g FROM range(60000000) t(i)) GROUP BY g"
    )
    sidecar.call("query.run", {"sql": slow, "job_id": "running", "partition": {"parts": 8}, "progress_token": "r",
                               "output": {"path": str(data_dir / "out.parquet")}})
    sidecar.wait_for(lambda n: n.get("method") == "$/progress" and n["params"]["value"]["phase"] == "partition",
                     timeout=60)
    running = root / "running"
    assert (running / "plan.json").exists()
    for path in (*running.iterdir(), running):
        os.utime(path, (0, 0))
    assert sidecar.request("cleanup", {"job_max_age_ms": 0})["files_removed"] == 2  # `young` alone
    assert running.exists() and not young.exists() and own.exists()
    sidecar.request("jobs.cancel", {"job_id": "running"}, timeout=60)
    assert not running.exists()


def test_a_starting_sidecar_removes_job_directories_by_age(start_sidecar, tmp_path):
    root = tmp_path / "state" / "jobs"
    week = 7 * 24 * 3600
    old = _job_dir(root, "nightly-old", 1000, age_s=week + 60)
    young = _job_dir(root, "nightly-young", 10, age_s=week - 3600)
    orphan = _job_dir(root, f"anon.{2**22 - 7}.deadbeef", 100)  # left by a sidecar that is gone
    sidecar = start_sidecar()
    sidecar.request("system.resources")  # answered once the start-up sweep is done
    assert not old.exists() and not orphan.exists() and young.exists()
    # stderr is read by a thread of its own: the line may arrive just after the answer
    assert wait_until(lambda: any("left behind by earlier runs" in line for line in sidecar.stderr_tail))
    assert sidecar.close() == 0
