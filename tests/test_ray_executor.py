"""The Ray executor on a real two-node local Ray cluster (`ray.cluster_utils.Cluster`, one per module).

Differential: every splittable shape over a Parquet file gives the same answer unsplit (DuckDB in
this process), split on this machine's workers, and split into Ray tasks spread over both nodes.
Then the failures: without the `ray` package the request is refused naming the extra; a Ray worker
killed mid-part is retried; a cancelled request kills its running tasks; a job whose sidecar was
killed resumes from the parts already written. No Ray process outlives the module.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import duckdb
import psutil
import pytest

from sidecar.client import REPO_ROOT, RpcError, SidecarProcess

ROWS = 30_000
SHAPES = [
    "SELECT g, median(v) AS m, list(id ORDER BY id) AS ids, count(DISTINCT s) AS ds FROM {t} GROUP BY g",
    "SELECT DISTINCT s, id % 11 AS k FROM {t}",
    "SELECT id, g, row_number() OVER (PARTITION BY g ORDER BY v, id) AS rn, sum(v) OVER (PARTITION BY g) AS sv FROM {t}",
    "SELECT median(v) AS m, quantile_cont(v, 0.9) AS p90, count(*) AS n, sum(id) AS total FROM {t}",
    "SELECT count(DISTINCT v) AS dv, sum(id) AS total FROM {t}",
]
SORTED = "SELECT id, v FROM {t} ORDER BY v, id"


def _key(row: Any) -> str:
    return repr([round(x, 6) if isinstance(x, float) else x for x in row])


def _ray_processes() -> list[psutil.Process]:
    found = []
    for process in psutil.Process().children(recursive=True):
        try:
            if "ray" in " ".join(process.cmdline()[:3]).lower():
                found.append(process)
        except psutil.Error:
            continue
    return found


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    from ray.cluster_utils import Cluster

    head = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    head.add_node(num_cpus=1)
    head.wait_for_nodes()
    started = _ray_processes()
    yield head
    started += _ray_processes()
    head.shutdown()
    _, alive = psutil.wait_procs(started, timeout=10)
    for process in alive:  # agents a raylet leaves behind for a minute after it stops
        process.kill()
    _, alive = psutil.wait_procs(alive, timeout=10)
    assert alive == [], [p.pid for p in alive]


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ray")
    (root / "data").mkdir()
    duckdb.connect().execute(
        f"""COPY (SELECT i AS id, CASE WHEN i % 17 = 0 THEN NULL ELSE i % 13 END AS g, 's' || (i % 7) AS s,
                         (hash(i) % 1000) / 8.0 AS v FROM range({ROWS}) r(i))
            TO '{root / "data" / "t.parquet"}' (FORMAT parquet)"""
    )
    return root


def _start(place: Path, **extra: str) -> SidecarProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BMAD_DATA_")}
    env.update(
        BMAD_DATA_CONFIG_DIR=str(REPO_ROOT / "expansion-pack"),
        BMAD_DATA_STATE_DIR=str(place / "state"),
        BMAD_DATA_TEMP_DIRECTORY=str(place / "spill"),
        BMAD_DATA_ALLOWED_DIRECTORIES=str(place / "data"),
        **extra,
    )
    return SidecarProcess(env=env, cwd=place / "data")


@pytest.fixture(scope="module")
def sidecar(place: Path, cluster: Any) -> Iterator[SidecarProcess]:
    process = _start(place)
    yield process
    if process.proc.poll() is None:
        assert process.close() == 0, list(process.stderr_tail)[-20:]
    process.kill()


def _table(place: Path) -> str:
    return f"read_parquet('{place / 'data' / 't.parquet'}')"


@pytest.mark.timeout(300)
def test_ray_equals_local_equals_duckdb_for_every_splittable_shape(
    sidecar: SidecarProcess, place: Path, cluster: Any
) -> None:
    ray_executor = {"kind": "ray", "address": cluster.address}
    for shape in SHAPES:
        sql = shape.format(t=_table(place))
        expected = Counter(map(_key, duckdb.connect().execute(sql).fetchall()))
        answers = {}
        for kind, executor in (("local", {"kind": "local"}), ("ray", ray_executor)):
            request = {"sql": sql, "max_rows": 100_000, "partition": {"parts": 4}, "executor": executor,
                       "progress_token": f"{kind}:{shape}"}  # fmt: skip
            answers[kind] = sidecar.request("query.run", request, timeout=240)
            assert Counter(map(_key, answers[kind]["rows"])) == expected, (kind, sql)
        assert answers["ray"]["columns"] == answers["local"]["columns"]
        nodes = answers["ray"]["stats"]["nodes"]
        assert len(nodes) == 2 and all(n["done"] >= 1 for n in nodes.values()), nodes  # spread over both
        assert "nodes" not in answers["local"]["stats"]
        progress = [n["params"] for n in sidecar.notifications if n.get("method") == "$/progress"]
        per_node = [p["value"]["nodes"] for p in progress if p["token"] == f"ray:{shape}" and "nodes" in p["value"]]
        assert per_node and sum(n["done"] for n in per_node[-1].values()) >= 1, per_node  # $/progress per node
        assert not [p for p in progress if p["token"] == f"local:{shape}" and "nodes" in p["value"]]
    for line in sidecar.raw_lines:  # Ray wrote nothing on the JSON-RPC channel
        assert line.startswith(b"{") and line.rstrip().endswith(b"}"), line[:200]


@pytest.mark.timeout(300)
def test_a_full_order_by_to_a_file_on_ray_comes_out_in_order(
    sidecar: SidecarProcess, place: Path, cluster: Any
) -> None:
    sql = SORTED.format(t=_table(place))
    out = place / "data" / "sorted.parquet"
    request = {
        "sql": sql,
        "output": {"path": str(out), "overwrite": True},
        "partition": {"parts": 3},
        "executor": {"kind": "ray", "address": cluster.address},
    }
    result = sidecar.request("query.run", request, timeout=240)
    assert result["row_count"] == ROWS
    written = duckdb.connect().execute(f"SELECT * FROM '{out}'").fetchall()
    assert written == duckdb.connect().execute(sql).fetchall()


def ray_blocker(directory: Path) -> Path:
    """A directory whose sitecustomize.py makes `import ray` fail: on a child's PYTHONPATH, the
    child runs as if the `ray` extra were not installed."""
    directory.mkdir()
    (directory / "sitecustomize.py").write_text(
        "import sys\n"
        "class _NoRay:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'ray' or name.startswith('ray.'):\n"
        "            raise ImportError('No module named ray (blocked by the test)')\n"
        "sys.meta_path.insert(0, _NoRay())\n"
    )
    return directory


@pytest.mark.timeout(120)
def test_without_the_ray_package_the_request_is_refused_naming_the_extra(tmp_path: Path) -> None:
    blocker = ray_blocker(tmp_path / "blocker")
    (tmp_path / "data").mkdir()
    process = _start(tmp_path, PYTHONPATH=str(blocker))
    try:
        sql = "SELECT i % 3 AS k, count(*) FROM range(100) t(i) GROUP BY k"
        with pytest.raises(RpcError) as err:
            process.request("query.run", {"sql": sql, "partition": {"parts": 2}, "executor": {"kind": "ray"}})
        assert err.value.code == "FEATURE_DISABLED"
        assert "bmad-data[ray]" in (err.value.hint or "") and err.value.data["details"]["extra"] == "ray"
        local = process.request("query.run", {"sql": sql, "partition": {"parts": 2}})
        assert sorted(local["rows"]) == [[0, 34], [1, 33], [2, 33]]
    finally:
        process.close()
    # the config default (execution.executor, here from BMAD_DATA_EXECUTOR) is refused the same way
    process = _start(tmp_path, PYTHONPATH=str(blocker), BMAD_DATA_EXECUTOR="ray")
    try:
        assert process.request("config.get", {})["settings"]["sources"]["executor"] == "env:BMAD_DATA_EXECUTOR"
        with pytest.raises(RpcError) as err:
            process.request("query.run", {"sql": sql, "partition": {"parts": 2}})
        assert err.value.code == "FEATURE_DISABLED"
        chosen = {"sql": sql, "partition": {"parts": 2}, "executor": {"kind": "local"}}
        assert process.request("query.run", chosen)["row_count"] == 3  # the request's choice wins
    finally:
        process.close()


def _wait_for(job: Path, pattern: str, sidecar: SidecarProcess, seconds: float) -> None:
    """Until a file matching `pattern` appears in the job directory (a part running, or done)."""
    deadline = time.monotonic() + seconds
    while not list(job.glob(pattern)):
        assert time.monotonic() < deadline, list(sidecar.stderr_tail)[-10:]
        time.sleep(0.2)


SLOW = "SELECT i % 5 AS k, count(*) AS c, sum(hash(i) % 7) AS h FROM range({n}) t(i) GROUP BY k"


@pytest.mark.timeout(300)
def test_a_cancelled_request_kills_its_ray_tasks(sidecar: SidecarProcess, place: Path, cluster: Any) -> None:
    job = place / "state" / "jobs" / "cancel_me"
    request = {
        "sql": SLOW.format(n=4_000_000_000),
        "partition": {"parts": 2},
        "job_id": "cancel_me",
        "executor": {"kind": "ray", "address": cluster.address},
    }
    request_id, answer = sidecar.call("query.run", request)
    _wait_for(job, "part_*.running", sidecar, 120)
    time.sleep(0.5)
    pids = [int(m.read_text().split()[1]) for m in job.glob("part_*.running") if m.read_text().strip()]
    sidecar.cancel(request_id)
    with pytest.raises(RpcError) as err:
        answer.result(timeout=60)
    assert err.value.code == "CANCELLED", (err.value.data, list(sidecar.stderr_tail)[-15:])
    _, alive = psutil.wait_procs([psutil.Process(p) for p in pids if psutil.pid_exists(p)], timeout=30)
    assert alive == []  # ray.cancel(force=True) ended the workers running the parts


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_ray_worker_killed_mid_part_is_retried(place: Path, cluster: Any) -> None:
    mark = place / "killed-part_1"
    process = _start(place, BMAD_DATA_TEST_RAY_FAULT=f"kill_once:part_1:{mark}")
    try:
        sql = SHAPES[0].format(t=_table(place))
        request = {"sql": sql, "max_rows": 100_000, "partition": {"parts": 3}, "executor": {"kind": "ray", "address": cluster.address}}
        result = process.request("query.run", request, timeout=500)
        assert Counter(map(_key, result["rows"])) == Counter(map(_key, duckdb.connect().execute(sql).fetchall()))
        killed = int(mark.read_text())
        assert not psutil.pid_exists(killed) or psutil.Process(killed).status() == psutil.STATUS_ZOMBIE
    finally:
        process.close()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_job_resumes_after_its_sidecar_was_killed(place: Path, cluster: Any) -> None:
    job = place / "state" / "jobs" / "resume_me"
    request = {
        "sql": SLOW.format(n=400_000_000),
        "partition": {"parts": 4},
        "job_id": "resume_me",
        "executor": {"kind": "ray", "address": cluster.address},
    }
    first = _start(place)
    first.call("query.run", request)
    _wait_for(job, "part_*.rows", first, 600)
    first.kill()
    kept = {p.name for p in job.glob("part_*.rows")}
    second = _start(place)
    try:
        result = second.request("query.run", request, timeout=800)
    finally:
        second.close()
    assert result["stats"]["reused_parts"] >= len(kept) >= 1
    assert sorted(r[:2] for r in result["rows"]) == [[k, 400_000_000 // 5] for k in range(5)]


HOLISTIC = (
    "SELECT g, median(v) AS m, list(v) AS l FROM "
    "(SELECT i % 400000 AS g, hash(i) % 1000 AS v FROM range(4000000) t(i)) GROUP BY g"
)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_part_out_of_memory_on_ray_is_retried_with_more_memory(
    sidecar: SidecarProcess, cluster: Any
) -> None:
    """128 MiB (DuckDB's limit 64 MiB inside the task) is too little for half of this holistic
    query: the part fails with DuckDB's own OUT_OF_MEMORY and runs again with twice the memory."""
    request = {
        "sql": HOLISTIC,
        "max_rows": 3,
        "settings": {"memory_limit": "128MiB"},
        "partition": {"parts": 2},
        "executor": {"kind": "ray", "address": cluster.address},
    }
    result = sidecar.request("query.run", request, timeout=500)
    nodes = result["stats"]["nodes"]
    assert sum(n["failed"] for n in nodes.values()) >= 1, nodes
    assert result["row_count"] == 3 and all(len(row[2]) == 10 for row in result["rows"])
