"""Benchmark: where the time of one `query.run` goes, phase by phase, against plain DuckDB.

    python -m sidecar.bench.phases [--size 1MB,100MB] [--queries 4,10,15] [--repeat 3] [--state DIR]

For each TPC-H query (data from `bmad-data benchmark`'s cache, written by `tpchgen-cli` on first use),
alternating the phases within each repeat, it prints the median of:

- `parse`, `plan`: the sidecar process's own work before any worker runs (DuckDB's parser for
  the statement types, the holistic and may-split checks, cached per SQL text after the warm-up;
  the sqlglot planner's `how_to_split`, asked only when the EXPLAIN says a split could be needed),
  as CPU time of this thread, which a loaded machine does not inflate;
- `looks`: the estimate's looks (EXPLAIN, DESCRIBE, the sample) as the sidecar runs them, each
  one a supervised job, through a real sidecar (`n` looks, their round trips summed);
- `whole`: `query.run` with `partition.parts = 0` (no estimate), its round trip, and `worker`,
  the engine's own `stats.elapsed_ms` inside the worker; `hop` is their difference (pipes,
  admission, the supervisor, encoding to JSON);
- `full`: `query.run` as the benchmark sends it (estimate + run), and `full cpu`, the CPU the
  sidecar and its workers spent on it (psutil, in 10 ms ticks: the mean, not the median); with `--against
  DIR`, `base full` and `base cpu` are the same request to a sidecar of the checkout in DIR (an
  older commit), sent right after, so the two are compared under the same load;
- in this process, on a database opened as a worker opens it (`sidecar.engine.database.Database`):
  `guard` (checked_statements), `bind` (execute_encoded's look at the result types), `exec`
  (execute + fetch), `encode` (rows to the wire encoding);
- `plain`, `plain cpu`: the same SQL in a plain `duckdb.connect()` with the same threads,
  memory_limit and preserve_insertion_order, execute + fetchall, after a `SELECT 1` (so `exec -
  plain` is the cost of the worker's own settings), and the CPU this process spent on it.

Wall times on a shared machine are noisy: read the ratios of phases measured in the same repeat,
and the CPU columns. The load average is printed with the table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["Phases", "main", "measure_query"]

PHASES = ("parse", "plan", "looks", "whole", "worker", "hop", "full", "full cpu", "base full", "base cpu",
          "guard", "bind", "exec", "encode", "plain", "plain cpu")  # fmt: skip


class Phases:
    """Milliseconds per phase of one query, one list per phase (one value per repeat)."""

    def __init__(self) -> None:
        self.ms: dict[str, list[float]] = {p: [] for p in PHASES}
        self.looks: list[int] = []

    @contextmanager
    def timed(self, phase: str, clock: Callable[[], int] = time.perf_counter_ns) -> Iterator[None]:
        started = clock()
        yield
        self.ms[phase].append((clock() - started) / 1e6)

    def median(self, phase: str) -> float:
        """The median of a phase's repeats (nan when it never ran); for the process trees' CPU,
        counted in 10 ms ticks, the mean, which the ticks do not bias.

        >>> p = Phases(); p.ms["plan"] = [3.0, 1.0, 2.0]; p.ms["full cpu"] = [10.0, 0.0, 20.0, 10.0]
        >>> p.median("plan"), p.median("full cpu")
        (2.0, 10.0)
        """
        values = self.ms[phase]
        if not values:
            return float("nan")
        return statistics.fmean(values) if phase in ("full cpu", "base cpu") else statistics.median(values)


def _sidecar(state: Path, data_root: Path, root: Path | None = None) -> Any:
    """A sidecar of this checkout, or of the checkout at `root` (its code first on PYTHONPATH)."""
    from sidecar import client

    env = dict(os.environ, BMAD_DATA_STATE_DIR=str(state / ("base" if root else "subject")),
               BMAD_DATA_LOG_LEVEL="warning", BMAD_DATA_ALLOWED_DIRECTORIES=str(data_root))  # fmt: skip
    ours = client.REPO_ROOT
    client.REPO_ROOT = root or ours  # SidecarProcess puts REPO_ROOT first on the child's PYTHONPATH
    try:  # and `python -m` puts its working directory before that
        sc = client.SidecarProcess(env=env, cwd=client.REPO_ROOT)
    finally:
        client.REPO_ROOT = ours
    sc.request("initialize", {"client": {"name": "bench.phases"}})
    return sc


def measure_query(
    sc: Any, sql: str, settings: dict[str, Any], phases: Phases, database: Any, base: Any = None
) -> None:
    """One repeat of every phase of `sql` (see the module's docstring), appended to `phases`."""
    import duckdb

    from sidecar.engine.encode import execute_encoded
    from sidecar.engine.guard import checked_statements
    from sidecar.jobs.estimate import estimate
    from sidecar.jobs.statements import shape_of
    from sidecar.partition.answer import SplitAnswer, how_to_split

    threads = int(settings.get("threads", 1))
    with phases.timed("parse", time.thread_time_ns):
        shape = shape_of(sql)
        estimated = shape.statement_types == ("SELECT",) and shape.may_split
        is_holistic = estimated and shape.holistic

    looks: list[float] = []
    planned: list[float] = []

    def plan() -> SplitAnswer:
        started = time.thread_time_ns()
        answer = how_to_split(sql, 2)
        planned.append((time.thread_time_ns() - started) / 1e6)
        return answer

    def probe(text: str, params: Any) -> list[list[Any]]:
        started = time.perf_counter_ns()
        result = sc.request("query.run", {"sql": text, "params": params, "settings": settings,
                                          "partition": {"parts": 0}, "max_rows": 100_000})  # fmt: skip
        looks.append((time.perf_counter_ns() - started) / 1e6)
        rows: list[list[Any]] = result["rows"]
        return rows

    if estimated:  # as JobRunner._estimate: the planner only when the EXPLAIN says a split could be needed
        estimate(probe, plan, is_holistic, sql, None, database.settings.memory_limit_bytes, threads)
    phases.ms["plan"].append(sum(planned))
    phases.ms["looks"].append(sum(looks))
    phases.looks.append(len(looks))

    started = time.perf_counter_ns()
    whole = sc.request("query.run", {"sql": sql, "settings": settings, "partition": {"parts": 0},
                                     "max_rows": 1_000_000})  # fmt: skip
    phases.ms["whole"].append((time.perf_counter_ns() - started) / 1e6)
    phases.ms["worker"].append(float(whole["stats"]["elapsed_ms"]))
    phases.ms["hop"].append(phases.ms["whole"][-1] - phases.ms["worker"][-1])
    cpu = _TreeCpu(sc.pid)
    with phases.timed("full"):
        sc.request("query.run", {"sql": sql, "settings": settings, "max_rows": 1_000_000})
    phases.ms["full cpu"].append(cpu.since())
    if base is not None:  # the same request to the baseline checkout's sidecar, right after
        cpu = _TreeCpu(base.pid)
        with phases.timed("base full"):
            base.request("query.run", {"sql": sql, "settings": settings, "max_rows": 1_000_000})
        phases.ms["base cpu"].append(cpu.since())

    cursor = database.acquire_cursor()
    try:
        with phases.timed("guard"):
            statements = checked_statements(cursor, sql)
        with phases.timed("bind"):
            cursor.sql(statements[-1].query)
        with phases.timed("exec"):
            encoding = execute_encoded(cursor, statements[-1], None)
            raw = cursor.fetchmany(1_000_001)
        with phases.timed("encode"):
            encoding.rows(raw)
    finally:
        database.release_cursor(cursor, healthy=True)
    ours = database.settings
    plain = duckdb.connect(config={"threads": threads, "memory_limit": f"{ours.memory_limit_bytes}B",
                                   "preserve_insertion_order": ours.preserve_insertion_order})  # fmt: skip
    try:
        plain.execute("SELECT 1").fetchall()
        with phases.timed("plain cpu", time.process_time_ns), phases.timed("plain"):
            plain.execute(sql).fetchall()
    finally:
        plain.close()


class _TreeCpu:
    """CPU milliseconds (user + system) a process and its children spent since this was made."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
        self.start = self._total()

    def _total(self) -> float:
        total = 0.0
        for proc in self.procs:
            times = proc.cpu_times()
            total += times.user + times.system
        return total

    def since(self) -> float:
        return (self._total() - self.start) * 1000


def _worker_database(sc: Any, state: Path, data_root: Path) -> Any:
    """A database opened as the sidecar's workers open theirs, with the settings the sidecar reports."""
    from sidecar.engine.database import Database, EngineSettings
    from sidecar.units import parse_size

    used = sc.request("query.run", {"sql": "SELECT 1"})["stats"]["settings"]
    settings = EngineSettings(
        memory_limit_bytes=parse_size(used["memory_limit"]),
        threads=int(used["threads"]),
        temp_directory=str(state / "temp"),
        max_temp_directory_size_bytes=parse_size(used["max_temp_directory_size"]),
        preserve_insertion_order=used["preserve_insertion_order"] == "true",
        allowed_directories=(str(data_root), str(state)),
        state_directory=str(state),
    )
    return Database(str(state / "phases.duckdb"), settings)


def _row(name: str, p: Phases) -> str:
    looks = f"{statistics.median(p.looks):.0f}" if p.looks else "-"
    cells = [f"{p.median(ph):.1f}" if p.ms[ph] else "-" for ph in PHASES]
    ratio = p.median("full") / p.median("plain") if p.median("plain") > 0 else float("nan")
    return f"| {name} | {cells[0]} | {cells[1]} | {looks} | " + " | ".join(cells[2:]) + f" | {ratio:.2f} |"


def main(argv: list[str] | None = None) -> int:
    from sidecar.bench.suite.data import Dataset, cache_root, prepare
    from sidecar.bench.suite.questions import questions_for, render_sql
    from sidecar.units import duckdb_size, parse_size

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="1MB,100MB", help="TPC-H sizes (scale factor = size / 1GB)")
    parser.add_argument("--queries", default="", help="query numbers, e.g. 4,10,15 (default: all 22)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--memory-limit", default="auto",
                        help="the request's memory_limit (auto: the job budget)")  # fmt: skip
    parser.add_argument("--against", default="",
                        help="another checkout (git archive REV | tar -x -C DIR): time it too")  # fmt: skip
    parser.add_argument("--state", default=str(Path(tempfile.gettempdir()) / "bmad-bench-phases"),
                        help="where the TPC-H data is cached (its bench/data/tpch)")  # fmt: skip
    args = parser.parse_args(argv)
    state = Path(args.state)
    wanted = {f"tpch_q{int(n):02d}" for n in args.queries.split(",") if n.strip()}
    questions = [q for q in questions_for("tpch") if not wanted or q.name in wanted]
    data_root = cache_root(state)
    sc = _sidecar(state, data_root)
    base = _sidecar(state, data_root, Path(args.against).resolve()) if args.against else None
    database = _worker_database(sc, state / "worker", data_root)
    settings: dict[str, Any] = {"threads": args.threads}
    if args.memory_limit == "auto":
        budget = sc.request("config.get")["settings"]["memory_budget_bytes"]
        settings["memory_limit"] = duckdb_size(budget)
    elif args.memory_limit != "none":
        settings["memory_limit"] = args.memory_limit
    try:
        for text in args.size.split(","):
            size = parse_size(text)
            dataset = prepare(Dataset(data_root, "tpch", size, 0))
            table = {q.name: Phases() for q in questions}
            sqls = {q.name: render_sql(q, dataset, size, "") for q in questions}
            for q in questions:  # warm-up, not counted: the worker's first touch of each file
                measure_query(sc, sqls[q.name], settings, Phases(), database, base)
            for _ in range(args.repeat):
                for q in questions:
                    measure_query(sc, sqls[q.name], settings, table[q.name], database, base)
            load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
            print(f"\nTPC-H {text} (SF {size / 1e9:g}), settings {settings}, median of {args.repeat}, ms;"
                  f" load average {load}")  # fmt: skip
            head = f"| query | {PHASES[0]} | {PHASES[1]} | n looks | " + " | ".join(PHASES[2:])
            print(head + " | full/plain |")
            print("|---" * (len(PHASES) + 3) + "|")
            for q in questions:
                print(_row(q.name, table[q.name]))
            total = {ph: sum(table[n].median(ph) for n in table if table[n].ms[ph]) for ph in PHASES}
            print("| **sum** | " + " | ".join(f"{total[ph]:.0f}" for ph in PHASES[:2]) + " | | "
                  + " | ".join(f"{total[ph]:.0f}" for ph in PHASES[2:])
                  + f" | {total['full'] / total['plain']:.2f} |")  # fmt: skip
    finally:
        database.close()
        sc.close()
        if base is not None:
            base.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
