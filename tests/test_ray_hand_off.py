"""The hand-off to Ray from `scaling_triggers.executor_scaling`, on a real local Ray cluster (the
two-node `cluster` fixture of tests/test_ray_executor.py) and real sidecars over real pipes.

A query split wider than the rule allows runs its parts on Ray and says so in `stats.attempts`,
with the same answer as unsplit DuckDB; under a wider rule, or when the request names the local
executor, it stays here; without the `ray` package, or when its parts read tables of a database,
it stays here too, and the attempt says why.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import duckdb
import pytest

from sidecar.client import SidecarProcess
from test_ray_executor import cluster, ray_blocker  # noqa: F401 (cluster: the module's two-node local Ray cluster)

SQL = "SELECT g, median(v) AS m, count(DISTINCT s) AS ds, sum(id) AS total FROM read_parquet('{path}') GROUP BY g"
THRESHOLDS = "data/resource-thresholds-config.yaml"
STAYED = "split_parts 2 > 1; the parts stayed here: "


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hand_off") / "data"
    root.mkdir()
    duckdb.connect().execute(
        f"""COPY (SELECT i AS id, i % 13 AS g, 's' || (i % 7) AS s, (hash(i) % 1000) / 8.0 AS v
                  FROM range(20000) r(i)) TO '{root / "t.parquet"}' (FORMAT parquet)"""
    )
    return root


@pytest.fixture
def start(
    pack_dir: Path, start_sidecar: Callable[..., SidecarProcess], data: Path
) -> Callable[..., SidecarProcess]:
    """Starts a sidecar whose pack (a copy of the repo's) hands jobs to Ray by `triggers` (YAML list items)."""

    def start(triggers: str, **extra: str) -> SidecarProcess:
        with (pack_dir / THRESHOLDS).open("a") as file:
            file.write("\nscaling_triggers:\n  executor_scaling:\n    hand_off_triggers:\n" + triggers)
        return start_sidecar(BMAD_DATA_ALLOWED_DIRECTORIES=str(data), **extra)

    return start


def _key(row: Any) -> str:
    return repr([round(x, 6) if isinstance(x, float) else x for x in row])


def _expected(data: Path) -> Counter[str]:
    return Counter(map(_key, duckdb.connect().execute(SQL.format(path=data / "t.parquet")).fetchall()))


def _run(sidecar: SidecarProcess, data: Path, **request: Any) -> dict[str, Any]:
    result: dict[str, Any] = sidecar.request("query.run", {"sql": SQL.format(path=data / "t.parquet"), **request}, timeout=240)
    return result


def _where(result: dict[str, Any]) -> tuple[str | None, str | None]:
    """The last attempt's executor and hand-off reason."""
    last = result["stats"]["attempts"][-1]
    return last["executor"], last["hand_off"]


@pytest.mark.timeout(300)
def test_a_split_wider_than_the_rule_runs_on_ray_and_says_so(
    start: Callable[..., SidecarProcess], pack_dir: Path, data: Path, cluster: Any  # noqa: F811
) -> None:
    sidecar = start(f"      - {{condition: split_parts > 4, action: run_on_ray, address: 'ray:{cluster.address}'}}\n")
    settings = sidecar.request("config.get")["settings"]
    assert settings["hand_off"] == {"max_local_parts": 4, "max_machine_percent": None, "address": cluster.address}
    assert settings["sources"]["hand_off"].startswith(f"file:{pack_dir / THRESHOLDS}:")

    handed = _run(sidecar, data, partition={"parts": 8})
    assert Counter(map(_key, handed["rows"])) == _expected(data)
    assert _where(handed) == (f"ray:{cluster.address}", "split_parts 8 > 4")
    assert sum(n["done"] for n in handed["stats"]["nodes"].values()) >= 8  # the parts ran as Ray tasks

    # four parts are within the rule; a request naming the local executor is never handed off
    within = _run(sidecar, data, partition={"parts": 4})
    chosen = _run(sidecar, data, partition={"parts": 8}, executor={"kind": "local"})
    for result in (within, chosen):
        assert Counter(map(_key, result["rows"])) == _expected(data)
        assert "nodes" not in result["stats"]
    assert _where(within) == ("local", None)
    assert _where(chosen) == (None, None)  # no rule in force for it


@pytest.mark.timeout(120)
def test_under_a_wider_rule_the_same_query_stays_here(start: Callable[..., SidecarProcess], data: Path) -> None:
    result = _run(start("      - {condition: split_parts > 16, action: run_on_ray}\n"), data, partition={"parts": 8})
    assert Counter(map(_key, result["rows"])) == _expected(data)
    assert (_where(result), "nodes" in result["stats"]) == (("local", None), False)


@pytest.mark.timeout(120)
def test_parts_that_read_a_databases_tables_stay_here_and_the_attempt_says_why(
    start: Callable[..., SidecarProcess], data: Path
) -> None:
    sidecar = start("      - {condition: split_parts > 1, action: run_on_ray}\n")
    database = str(data / "tables.duckdb")
    sidecar.request("query.run", {"sql": "CREATE TABLE t AS SELECT i, i % 3 AS k FROM range(300) r(i)", "database": database})
    sql = "SELECT k, count(*) AS n, median(i) AS m FROM t GROUP BY k"
    result = sidecar.request("query.run", {"sql": sql, "database": database, "partition": {"parts": 2}})
    assert sorted(result["rows"]) == [[0, 100, 148.5], [1, 100, 149.5], [2, 100, 150.5]]
    assert _where(result) == ("local", f"{STAYED}they read tables of the database, and a Ray task reads only files")


@pytest.mark.timeout(120)
def test_without_the_ray_package_a_hand_off_stays_here_and_the_attempt_says_why(
    start: Callable[..., SidecarProcess], tmp_path: Path, data: Path
) -> None:
    trigger = "      - {condition: split_parts > 1, action: run_on_ray}\n"
    # at level warning the stderr tail (200 lines) keeps the one line this test looks for
    sidecar = start(trigger, PYTHONPATH=str(ray_blocker(tmp_path / "blocker")), BMAD_DATA_LOG_LEVEL="warning")
    result = _run(sidecar, data, partition={"parts": 2})
    assert Counter(map(_key, result["rows"])) == _expected(data)
    executor, why = _where(result)
    assert executor == "local" and why is not None
    assert why.startswith(f"{STAYED}the ray executor needs the optional `ray` package")
    assert "bmad-data[ray]" in why
    deadline = time.monotonic() + 10  # the log line was written before the parts ran; its reader thread may lag
    while not any("not handed to Ray" in line for line in sidecar.stderr_tail):
        assert time.monotonic() < deadline, list(sidecar.stderr_tail)[-10:]
        time.sleep(0.1)


HOLISTIC = (
    "SELECT g, median(v) AS m, list(v) AS l FROM "
    "(SELECT i % 400000 AS g, hash(i) % 1000 AS v FROM range(4000000) t(i)) GROUP BY g"
)
"""Too big for a 128 MiB budget whole (tests/test_ray_executor.py runs it on Ray at that budget)."""


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_job_whose_estimate_outgrows_the_machine_share_goes_to_ray(
    start: Callable[..., SidecarProcess], cluster: Any  # noqa: F811
) -> None:
    rule = f"      - {{condition: estimate_machine_percent > 5, action: run_on_ray, address: 'ray:{cluster.address}'}}\n"
    sidecar = start(rule, BMAD_DATA_MACHINE_BUDGET="2GiB")
    request = {"sql": HOLISTIC, "max_rows": 3, "settings": {"memory_limit": "256MiB"}}
    result = sidecar.request("query.run", request, timeout=500)
    estimate = result["stats"]["estimate"]
    assert estimate["parts"] >= 2 and estimate["bytes"] > 2 * 1024**3 * 5 // 100, estimate
    executor, why = _where(result)
    assert executor == f"ray:{cluster.address}" and why is not None and why.startswith("estimate_machine_percent ")
    assert result["row_count"] == 3 and all(len(row[2]) == 10 for row in result["rows"])


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_ladders_split_rung_after_an_out_of_memory_goes_to_ray(
    start: Callable[..., SidecarProcess], cluster: Any  # noqa: F811
) -> None:
    sidecar = start(f"      - {{condition: split_parts > 1, action: run_on_ray, address: 'ray:{cluster.address}'}}\n")
    request = {"sql": HOLISTIC, "max_rows": 3, "settings": {"memory_limit": "128MiB"}, "partition": {"parts": 0}}
    result = sidecar.request("query.run", request, timeout=500)
    attempts = result["stats"]["attempts"]
    assert attempts[0]["outcome"] != "ok" and attempts[0]["executor"] is None, attempts  # whole: no parts to hand off
    last = attempts[-1]
    assert last["rung"] == "partition" and last["executor"] == f"ray:{cluster.address}", attempts
    assert last["hand_off"] == f"split_parts {result['stats']['partitions']} > 1"
    assert result["row_count"] == 3 and all(len(row[2]) == 10 for row in result["rows"])
