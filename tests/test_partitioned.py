"""Partitioned execution over real stdio: the parts plus the combine give the single query's answer.

Differential: each query runs once whole and once with `partition: {parts: 3}` in the same real
sidecar and database; rows (a multiset, floats within tolerance; a sequence under ORDER BY),
column names and types must match. Output files written from part files must equal the unsplit
output (rows, and the Parquet schema: a HUGEINT sum stays what an unsplit COPY writes), and a full
ORDER BY split by sampled ranges must come out in order. And end to end: a real OUT_OF_MEMORY
under a hard budget is recovered by the ladder's `partition` rung.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import pytest

from sidecar.jobs.types import Column, QueryResult, QuerySpec, QueryStats
from sidecar.partition import plan_partitioned
from sidecar.jobs.part_stores import TableStore, run_part
from sidecar.jobs.partitioned import split_again
from sidecar.jobs.steps import Steps

from sidecar.client import RpcError, SidecarProcess

SETUP = """
CREATE OR REPLACE TABLE t AS
SELECT i AS id,
       CASE WHEN i % 17 = 0 THEN NULL ELSE i % 23 END AS g1,
       CASE WHEN i % 13 = 0 THEN NULL ELSE 's' || (i % 7) END AS g2,
       CASE WHEN i % 11 = 0 THEN NULL ELSE (hash(i) % 1000) / 7.0 END AS v,
       hash(i) % 50 AS n,
       CASE WHEN i % 19 = 0 THEN NULL ELSE DATE '2024-01-01' + CAST(hash(i) % 400 AS INTEGER) END AS d
FROM range(2000) r(i)
"""

ORDERED = [
    "SELECT g1, count(*) AS c, median(v) AS m FROM t GROUP BY g1 HAVING count(*) > 50 ORDER BY c DESC, g1 LIMIT 7",
    "SELECT g2, g1, sum(n) FROM t GROUP BY ALL ORDER BY g2 NULLS FIRST, g1 NULLS FIRST",
]
UNORDERED = [
    "SELECT g1, median(v), list(n ORDER BY id), string_agg(g2, ',' ORDER BY id), count(DISTINCT n) FROM t GROUP BY g1",
    "SELECT DISTINCT g2, n % 5 AS k FROM t",
    "SELECT id, g1, row_number() OVER (PARTITION BY g1 ORDER BY id) AS rn, sum(n) OVER (PARTITION BY g1) FROM t",
    "SELECT count(DISTINCT n) AS dn FROM t",
]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return bool(a == b)


def _key(row: list[Any]) -> str:
    return repr([round(x, 6) if isinstance(x, float) else x for x in row])


def _schemas_left(sc: SidecarProcess, database: str) -> list[Any]:
    rows = sc.request(
        "query.run",
        {
            "sql": "SELECT schema_name FROM duckdb_schemas() WHERE schema_name LIKE '\\_\\_bmad\\_job\\_%' ESCAPE '\\'",
            "database": database,
        },
    )["rows"]
    return list(rows)


@pytest.fixture
def database(sidecar: SidecarProcess, data_dir: Path) -> str:
    path = str(data_dir / "p.duckdb")
    sidecar.request("query.run", {"sql": SETUP, "database": path})
    return path


@pytest.mark.timeout(120)
@pytest.mark.parametrize("sql", ORDERED + UNORDERED)
def test_partitioned_equals_the_single_query(sidecar: SidecarProcess, database: str, sql: str) -> None:
    whole = sidecar.request("query.run", {"sql": sql, "database": database})
    split = sidecar.request(
        "query.run", {"sql": sql, "database": database, "partition": {"parts": 3}, "progress_token": "p"}
    )
    assert split["columns"] == whole["columns"]
    assert split["row_count"] == whole["row_count"] > 0
    if sql in ORDERED:
        assert _same(split["rows"], whole["rows"])
    else:
        assert Counter(map(_key, split["rows"])) == Counter(map(_key, whole["rows"]))
    assert split["stats"]["partitions"] == 3 and "partitions" not in whole["stats"]
    (attempt,) = split["stats"]["attempts"]
    assert attempt["rung"] == "partition" and attempt["outcome"] == "ok"
    assert _schemas_left(sidecar, database) == []
    values = [n["params"]["value"] for n in sidecar.notifications if n.get("method") == "$/progress"]
    phases = [v["phase"] for v in values]
    assert phases.count("partition") == 3 and phases.count("done") == 1 and phases[-1] == "done"
    starts = [(v["part"], v["parts"]) for v in values if v["phase"] == "partition"]
    assert starts == [(1, 3), (2, 3), (3, 3)], starts


@pytest.mark.timeout(60)
def test_an_unsplittable_query_is_a_sql_error_naming_its_shape(
    sidecar: SidecarProcess, database: str
) -> None:
    with pytest.raises(RpcError) as err:
        sidecar.request(
            "query.run", {"sql": "SELECT id, v FROM t", "database": database, "partition": {"parts": 2}}
        )
    assert err.value.code == "SQL_ERROR"
    assert "cannot split" in str(err.value.data) and err.value.data["details"]["shape"]
    for sql in ("SELECT id FROM t ORDER BY ALL", "SELECT id, g2::BLOB AS b FROM t ORDER BY b"):
        with pytest.raises(RpcError) as err:
            sidecar.request("query.run", {"sql": sql, "database": database, "partition": {"parts": 2}})
        assert err.value.code == "SQL_ERROR" and err.value.data["details"]["shape"] == "sorted_ranges"
    for bad in ({"parts": 1}, {"parts": 257}, {"parts": 2, "salt": 1}):
        with pytest.raises(RpcError) as err:
            sidecar.request("query.run", {"sql": "SELECT DISTINCT g1 FROM t", "partition": bad})
        assert err.value.code == "INVALID_PARAMS"
    assert _schemas_left(sidecar, database) == []


@pytest.mark.timeout(60)
def test_a_failing_part_leaves_no_scratch_schema(sidecar: SidecarProcess, database: str) -> None:
    sql = "SELECT g1, sum(CASE WHEN id = 1999 THEN error('boom') ELSE n END) FROM t GROUP BY g1"
    with pytest.raises(RpcError) as err:
        sidecar.request("query.run", {"sql": sql, "database": database, "partition": {"parts": 3}})
    assert "boom" in str(err.value.data) or "boom" in str(err.value)
    assert _schemas_left(sidecar, database) == []


HOLISTIC = (
    "SELECT g, median(v) AS m, list(v) AS l FROM "
    "(SELECT i % 100000 AS g, hash(i) % 1000 AS v FROM range(1000000) t(i)) GROUP BY g"
)


@pytest.mark.timeout(120)
def test_a_real_out_of_memory_is_recovered_by_partitioning(sidecar: SidecarProcess) -> None:
    budget = {"memory_limit": "128MiB"}  # an explicit budget: a hard ceiling, `grow` cannot help
    # `parts: 0`: no split up front, whatever the estimate says: this is the ladder's test
    request = {"sql": HOLISTIC, "settings": budget, "max_rows": 3, "partition": {"parts": 0}}
    result = sidecar.request("query.run", request, timeout=100)
    first, *_, last = result["stats"]["attempts"]
    assert first["outcome"] in ("OUT_OF_MEMORY", "MEMORY_CEILING", "MEMORY_EMERGENCY"), result["stats"][
        "attempts"
    ]
    assert last["rung"] == "partition" and last["outcome"] == "ok"
    assert first["skipped"]["grow"] == "the job is at its budget (128 MiB)", first["skipped"]
    assert "partition" not in first["skipped"] and last["skipped"] == {}
    assert result["stats"]["partitions"] == 8
    assert result["row_count"] == 3 and result["truncated"] is True
    assert all(len(row[2]) == 10 for row in result["rows"])  # every group whole: 1e6 rows / 1e5 groups
    assert [c["name"] for c in result["columns"]] == ["g", "m", "l"]


ONE_ORDERED_LIST = "SELECT len(list(i ORDER BY i DESC)) AS n FROM range(40000000) t(i)"  # no part re-combines it


@pytest.mark.timeout(120)
def test_an_unsplittable_out_of_memory_says_what_was_tried_and_why_nothing_else_was(
    sidecar: SidecarProcess,
) -> None:
    request = {"sql": ONE_ORDERED_LIST, "settings": {"memory_limit": "128MiB"}, "partition": {"parts": 0}}
    with pytest.raises(RpcError) as err:
        sidecar.request("query.run", request, timeout=100)
    attempts = err.value.data["details"]["attempts"]
    assert err.value.code in ("OUT_OF_MEMORY", "MEMORY_CEILING", "MEMORY_EMERGENCY"), attempts
    assert [a["rung"] for a in attempts] == ["first"]  # nothing else could help, and each rung says why
    assert attempts[0]["skipped"]["grow"] == "the job is at its budget (128 MiB)"
    assert attempts[0]["skipped"]["partition"].startswith("the planner cannot split it (global_aggregate")
    hint = err.value.hint or ""
    assert hint.startswith(f"Tried: first ({attempts[0]['outcome']}). Not tried: retry: ")
    assert "partition: the planner cannot split it (global_aggregate" in hint


BIG_HOLISTIC = HOLISTIC.replace("range(1000000)", "range(2000000)")


class FaultyJobs:
    """The executor's step runner, run in this process's DuckDB, with a fault hook: the CREATE TABLE
    of each part named in `failing` 'runs out of memory' once. Everything else runs for real."""

    sampled_plan = Steps.sampled_plan
    params_for = Steps.params_for

    def __init__(self, sql: str, failing: set[str]) -> None:
        self.spec = QuerySpec(sql=sql)
        self.con = duckdb.connect()
        self.con.execute("CREATE SCHEMA s")
        self.failing = failing

    def run(self, statement: str, params: object = None, **_: object) -> QueryResult:
        from sidecar.errors import OutOfMemory

        target = statement.split(" AS ", 1)[0].removeprefix("CREATE TABLE ").replace('"', "")
        if target in self.failing:
            self.failing.discard(target)
            raise OutOfMemory("injected: this part needs more memory than its ceiling")
        cursor = self.con.execute(statement)
        columns = [Column(d[0], str(d[1])) for d in cursor.description or []]
        rows = [list(r) for r in cursor.fetchall()] if columns else []
        return QueryResult(columns, rows, len(rows), False, QueryStats(0.0, 0, 0, 0, 1, {}))


def _split_with_faults(sql: str, parts: int, failing: set[str], bounds: list[Any] | None = None) -> tuple[FaultyJobs, list[str], list[str]]:
    jobs = FaultyJobs(sql, failing)
    plan = plan_partitioned(sql, parts, bounds=bounds)
    store = TableStore(jobs, "s", set())  # type: ignore[arg-type]
    resplit: list[str] = []
    tables: list[str] = []
    for part in plan.parts:
        tables += run_part(store, (part.index,), part.sql, split_again(jobs, plan, parts), resplit)  # type: ignore[arg-type]
    return jobs, tables, resplit


def test_a_part_that_runs_out_of_memory_is_split_again_exactly() -> None:
    """The re-split orchestration, with a fault hook: part 1 (and then its first sub-part) 'run out
    of memory'; every statement runs for real in DuckDB, and the union of what was kept is exactly
    the single query's answer."""
    sql = "SELECT g, median(v) AS m, count(*) AS n FROM (SELECT i % 997 AS g, hash(i) % 100 AS v FROM range(50000) t(i)) GROUP BY g"
    jobs, tables, resplit = _split_with_faults(sql, 3, {"s.part_1", "s.part_1_0"})
    assert resplit == ["part_1", "part_1_0"]
    assert "part_1" not in tables and "part_1_0" not in tables and "part_1_0_3" in tables
    union = " UNION ALL ".join(f"SELECT * FROM s.{t}" for t in tables)
    assert sorted(jobs.con.execute(union).fetchall()) == sorted(jobs.con.execute(sql).fetchall())


def test_a_sorted_range_that_runs_out_of_memory_is_split_by_finer_sampled_ranges() -> None:
    """Range part 1 'runs out of memory': it is split again by bounds sampled from its own rows, and
    its sub-parts hold consecutive key ranges, so concatenating every part in order stays sorted."""
    sql = "SELECT i, hash(i) % 10000 AS k FROM range(30000) t(i) ORDER BY k, i"
    jobs, tables, resplit = _split_with_faults(sql, 3, {"s.part_1"}, bounds=[3000, 7000])
    assert resplit == ["part_1"] and tables[0] == "part_0" and tables[-1] == "part_2"
    assert len(tables) > 3 and all(t.startswith("part_1_") for t in tables[1:-1])
    ranges = [jobs.con.execute(f"SELECT min(k), max(k), count(*) FROM s.{t}").fetchone() for t in tables]
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(ranges))  # consecutive, disjoint ranges
    assert ranges[1][0] >= 3000 and ranges[-2][1] < 7000
    union = " UNION ALL ".join(f"SELECT * FROM s.{t}" for t in tables)
    assert sorted(jobs.con.execute(union).fetchall()) == sorted(jobs.con.execute(sql).fetchall())


def _read(path: Path | str, fmt: str) -> list[tuple[Any, ...]]:
    """A result file's rows in file order."""
    reader = {"parquet": "read_parquet", "csv": "read_csv", "json": "read_json"}[fmt]
    return duckdb.connect().execute(f"SELECT * FROM {reader}('{path}')").fetchall()


def _jobs_left(tmp_path: Path) -> list[str]:
    root = tmp_path / "state" / "jobs"
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


FILE_PARTS = "SELECT g1, g2, count(*) AS c, sum(n::BIGINT) AS s, list(id ORDER BY id) AS ids FROM t GROUP BY ALL"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("fmt", ["parquet", "csv", "json"])
def test_parts_written_straight_to_files_make_the_unsplit_output(
    sidecar: SidecarProcess, database: str, data_dir: Path, tmp_path: Path, fmt: str
) -> None:
    def run(name: str, extra: dict[str, Any]) -> dict[str, Any]:
        output = {"path": str(data_dir / f"{name}.{fmt}"), "format": fmt}
        return sidecar.request("query.run", {"sql": FILE_PARTS, "database": database, "output": output, **extra})

    whole = run("whole", {})
    split = run("split", {"partition": {"parts": 3}, "progress_token": "f"})
    assert split["stats"]["partitions"] == 3 and split["stats"]["reused_parts"] == 0
    for field in ("columns", "rows", "row_count", "truncated"):
        assert split[field] == whole[field], field
    assert split["output"]["rows"] == whole["output"]["rows"] == whole["row_count"] > 0
    assert split["output"]["format"] == fmt and split["output"]["path"] == str(data_dir / f"split.{fmt}")
    assert split["output"]["bytes"] == (data_dir / f"split.{fmt}").stat().st_size
    assert Counter(map(repr, _read(data_dir / f"split.{fmt}", fmt))) == Counter(
        map(repr, _read(data_dir / f"whole.{fmt}", fmt))
    )
    assert _schemas_left(sidecar, database) == []  # no scratch tables: the parts were files
    assert _jobs_left(tmp_path) == []  # and their directory is gone
    phases = [n["params"]["value"]["phase"] for n in sidecar.notifications if n.get("method") == "$/progress"]
    assert phases.count("partition") == 3 and phases.count("done") == 1 and phases[-1] == "done"


@pytest.mark.timeout(60)
def test_a_hugeint_sum_written_from_part_files_has_the_unsplit_parquet_schema(
    sidecar: SidecarProcess, database: str, data_dir: Path
) -> None:
    sql = "SELECT g1, sum(n::BIGINT) AS s, count(*) AS c FROM t GROUP BY g1"
    outputs = {}
    for name, extra in (("whole", {}), ("split", {"partition": {"parts": 3}})):
        outputs[name] = str(data_dir / f"{name}.parquet")
        result = sidecar.request(
            "query.run", {"sql": sql, "database": database, "output": {"path": outputs[name]}, **extra}
        )
        assert [c["type"] for c in result["columns"]] == ["BIGINT", "HUGEINT", "BIGINT"]
    schema = "SELECT * EXCLUDE (file_name) FROM parquet_schema('{}')"
    con = duckdb.connect()
    whole, split = (con.execute(schema.format(outputs[n])).fetchall() for n in ("whole", "split"))
    assert split == whole
    assert ("s", "DOUBLE") in [(row[0], row[1]) for row in whole]  # what Parquet makes of a HUGEINT
    assert Counter(_read(outputs["split"], "parquet")) == Counter(_read(outputs["whole"], "parquet"))


@pytest.mark.timeout(60)
def test_a_failing_file_part_leaves_no_output_and_no_job_directory(
    sidecar: SidecarProcess, database: str, data_dir: Path, tmp_path: Path
) -> None:
    sql = "SELECT g1, sum(CASE WHEN id = 1999 THEN error('boom') ELSE n END) AS s FROM t GROUP BY g1"
    target = data_dir / "never.parquet"
    with pytest.raises(RpcError) as err:
        sidecar.request(
            "query.run",
            {"sql": sql, "database": database, "partition": {"parts": 3}, "output": {"path": str(target)}},
        )
    assert "boom" in str(err.value.data) or "boom" in str(err.value)
    assert not target.exists() and _jobs_left(tmp_path) == []
    assert [p.name for p in data_dir.iterdir() if p.name.startswith(".bmad-tmp-")] == []
    existing = data_dir / "taken.csv"
    existing.write_text("keep\n")
    with pytest.raises(RpcError) as err:  # refused up front, as an unsplit run would be
        sidecar.request(
            "query.run",
            {"sql": FILE_PARTS, "database": database, "partition": {"parts": 3},
             "output": {"path": str(existing), "format": "csv"}},
        )
    assert err.value.code == "INPUT_ERROR" and existing.read_text() == "keep\n"


SORTED = [
    "SELECT id, g1, v FROM t ORDER BY g1, id",  # ints with NULLs (last by default)
    "SELECT id, g2 FROM t ORDER BY g2 DESC NULLS FIRST",  # strings; rows within a tie unordered
    "SELECT id, d AS day FROM t ORDER BY day DESC, id",  # dates through an alias, descending
    "SELECT * FROM t ORDER BY v NULLS FIRST, id",  # doubles
    "SELECT id, n % 2 AS odd FROM t ORDER BY n % 2",  # two key values: at most two parts
]


def _same_order(split: list[Any], whole: list[Any], key_at: list[int], *, cut: bool = False) -> None:
    """Equal as ORDER BY defines them: the sort keys row for row, any order of rows within a tie
    (`cut`: both were cut at max_rows, so their last tie may hold different rows of it)."""
    key = lambda row: tuple(row[i] for i in key_at)  # noqa: E731
    assert [key(r) for r in split] == [key(r) for r in whole]
    ties = lambda rows: [sorted(map(repr, g)) for _, g in itertools.groupby(rows, key)]  # noqa: E731
    assert ties(split)[: -1 if cut else None] == ties(whole)[: -1 if cut else None]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("sql", SORTED)
def test_a_full_order_by_is_split_by_sampled_ranges(
    sidecar: SidecarProcess, database: str, data_dir: Path, tmp_path: Path, sql: str
) -> None:
    whole_path, split_path = data_dir / "whole.parquet", data_dir / "split.parquet"
    sidecar.request("query.run", {"sql": sql, "database": database, "output": {"path": str(whole_path)}})
    split = sidecar.request(
        "query.run",
        {"sql": sql, "database": database, "partition": {"parts": 4}, "output": {"path": str(split_path)}},
    )
    names = [c["name"] for c in split["columns"]]
    key_names = {"g1": ["g1", "id"], "g2": ["g2"], "day": ["day", "id"], "v": ["v", "id"], "odd": ["odd"]}
    key_at = [names.index(k) for k in next(v for k, v in key_names.items() if k in names)]
    _same_order(_read(split_path, "parquet"), _read(whole_path, "parquet"), key_at)
    schema = "SELECT * EXCLUDE (file_name) FROM parquet_schema('{}')"  # REQUIRED/OPTIONAL as the whole's
    assert duckdb.sql(schema.format(split_path)).fetchall() == duckdb.sql(schema.format(whole_path)).fetchall()
    assert split["row_count"] == 2000 and _jobs_left(tmp_path) == []
    parts = split["stats"]["partitions"]
    assert parts == 2 if "odd" in names else 2 <= parts <= 4
    # inline: parts in order until max_rows, `truncated` as for the single query
    whole = sidecar.request("query.run", {"sql": sql, "database": database, "max_rows": 700})
    inline = sidecar.request(
        "query.run", {"sql": sql, "database": database, "max_rows": 700, "partition": {"parts": 4}}
    )
    assert inline["columns"] == whole["columns"] and inline["truncated"] is whole["truncated"] is True
    _same_order(inline["rows"], whole["rows"], key_at, cut=True)
    assert inline["stats"]["partitions"] == parts
