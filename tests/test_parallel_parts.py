"""Parts that only read files run at once on free workers, and give the single query's answer.

Differential, over real stdio: each splittable shape reads a Parquet file, once whole and once
in 4 parts. The split run keeps its parts as Parquet files in the job directory (not tables of
the database) and reads them back with their exact types, so a HUGEINT sum is still exact. The
same query over a table of the database runs its parts one after another (`parts_at_once` 1).
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import pytest

from sidecar.client import SidecarProcess
from sidecar.jobs.statements import reads_only_files

ROWS = 20_000


def _key(row: list[Any]) -> str:
    return repr([round(x, 6) if isinstance(x, float) else x for x in row])


@pytest.fixture
def parquet(data_dir: Path) -> str:
    path = data_dir / "t.parquet"
    duckdb.execute(
        f"""COPY (SELECT i AS id, CASE WHEN i % 17 = 0 THEN NULL ELSE i % 23 END AS g,
                        'k' || (i % 7) AS s, (hash(i) % 1000) / 7.0 AS v,
                        (i * 400000000000000) AS big
                 FROM range({ROWS}) r(i)) TO '{path}' (FORMAT parquet)"""
    )
    return str(path)


SHAPES = [
    "SELECT g, median(v) AS m, count(DISTINCT s) AS ds, sum(big) AS total FROM {t} GROUP BY g",
    "SELECT DISTINCT s, id % 5 AS k FROM {t}",
    "SELECT id, g, row_number() OVER (PARTITION BY g ORDER BY id) AS rn FROM {t}",
    "SELECT sum(big) AS total, count(DISTINCT g) AS dg FROM {t}",
    "SELECT g, sum(v) AS sv FROM {t} GROUP BY g ORDER BY sv DESC LIMIT 5",
]


@pytest.mark.timeout(240)
def test_parts_reading_files_run_apart_and_equal_the_single_query(
    sidecar: SidecarProcess, parquet: str
) -> None:
    for shape in SHAPES:
        sql = shape.format(t=f"read_parquet('{parquet}')")
        assert reads_only_files(sql)
        whole = sidecar.request("query.run", {"sql": sql, "max_rows": 100_000})
        split = sidecar.request("query.run", {"sql": sql, "max_rows": 100_000, "partition": {"parts": 4}})
        assert split["columns"] == whole["columns"], sql
        assert split["row_count"] == whole["row_count"] > 0, sql
        if "ORDER BY sv" in sql:
            assert [r[0] for r in split["rows"]] == [r[0] for r in whole["rows"]]
            assert all(math.isclose(a[1], b[1]) for a, b in zip(split["rows"], whole["rows"]))
        else:
            assert Counter(map(_key, split["rows"])) == Counter(map(_key, whole["rows"])), sql
        assert split["stats"]["partitions"] == 4
        assert split["stats"]["parts_at_once"] >= 1


@pytest.mark.timeout(240)
def test_an_exact_hugeint_sum_survives_parquet_parts(sidecar: SidecarProcess, parquet: str) -> None:
    """Parquet would keep a HUGEINT as DOUBLE; the part file keeps it as text and the combine casts it back."""
    sql = f"SELECT sum(big) AS total FROM read_parquet('{parquet}')"
    whole = sidecar.request("query.run", {"sql": sql})
    split = sidecar.request("query.run", {"sql": sql, "partition": {"parts": 3}})
    expected = sum(i * 400000000000000 for i in range(ROWS))
    assert expected > 2**53  # beyond what a DOUBLE holds exactly
    assert whole["rows"] == split["rows"] == [[str(expected)]] or whole["rows"] == split["rows"] == [[expected]]
    assert split["columns"] == whole["columns"] == [{"name": "total", "type": "HUGEINT"}]


@pytest.mark.timeout(240)
def test_parts_over_a_table_of_the_database_run_one_after_another(
    sidecar: SidecarProcess, parquet: str, data_dir: Path
) -> None:
    database = str(data_dir / "d.duckdb")
    sidecar.request("query.run", {"sql": f"CREATE TABLE t AS FROM read_parquet('{parquet}')", "database": database})
    sql = "SELECT g, count(*) AS c FROM t GROUP BY g"
    assert not reads_only_files(sql)
    split = sidecar.request("query.run", {"sql": sql, "database": database, "partition": {"parts": 4}})
    assert split["stats"]["parts_at_once"] == 1
    assert sum(r[1] for r in split["rows"]) == ROWS


@pytest.mark.timeout(240)
def test_an_output_file_from_parts_run_apart_equals_the_unsplit_one(
    sidecar: SidecarProcess, parquet: str, data_dir: Path
) -> None:
    sql = f"SELECT DISTINCT s, id % 97 AS k FROM read_parquet('{parquet}')"
    outputs = {}
    for name, partition in (("whole", None), ("split", {"parts": 4})):
        request: dict[str, Any] = {"sql": sql, "output": {"path": str(data_dir / f"{name}.parquet")}}
        if partition:
            request["partition"] = partition
        outputs[name] = sidecar.request("query.run", request)
    assert outputs["split"]["stats"]["partitions"] == 4
    rows = {
        name: Counter(duckdb.execute(f"SELECT * FROM '{data_dir / name}.parquet'").fetchall())
        for name in outputs
    }
    assert rows["whole"] == rows["split"] and sum(rows["whole"].values()) == 7 * 97
    assert list((data_dir.parent / "state" / "jobs").glob("*")) == []  # the part files went with the job
