"""Measure peak process RSS against DuckDB's `memory_limit`, to size HEADROOM_RATIO.

    python -m sidecar.bench.headroom [--limits 256MiB,1GiB,4GiB] [--rows 50000000] [--threads 2]
                                     [--dir /tmp/bmad-headroom] [--shapes sort,window,...] [--quick]
                                     [--budgets 512MiB,6GiB [--reserve 256MiB] [--k 1.10]]
                                     [--out docs/performance/headroom.md] [--json results.json]

Default run: ~8 min on 2 cores (data written once, ~1 min); `--quick`: ~1 min. `--budgets`
also runs each budget with DuckDB's limit from the model and reports peak RSS / budget.

DuckDB's limit bounds its buffer manager; the process also holds the interpreter, DuckDB's
code and allocator caches, and operator state outside the buffer pool. Each (limit, shape)
runs in a fresh child process that the parent samples every 20 ms (RSS, spill bytes on disk)
and kills past `3 x limit + 1 GiB`. The peak is the child's VmHWM (read by the child before it
exits), the kernel's `ru_maxrss` from `wait4`, and the sampled maximum, whichever is largest.
The data is an H2O db-benchmark groupby table written once with DuckDB SQL and cached.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sidecar.bench.headroom_report import limit_for_budget, render, write_report
from sidecar.bench.report import mib
from sidecar.bench.suite.data import groupby_sql
from sidecar.bench.suite.plain import BufferWatcher
from sidecar.units import duckdb_size, parse_size

MiB = 1024**2
GiB = 1024**3
SAMPLE_S = 0.020
GUARD_FACTOR = 3
GUARD_SLACK = 1 * GiB


# Each shape reads the view `x`. Results go to a Parquet file (`{out}`) or are folded into one
# row, so nothing large crosses into Python.
SHAPES: dict[str, str] = {
    "sort": "COPY (SELECT * FROM x ORDER BY v3, id3) TO '{out}' (FORMAT parquet)",
    "window": (
        "SELECT sum(rn), sum(s) FROM (SELECT row_number() OVER (PARTITION BY id3 ORDER BY v3) AS rn, "
        "sum(v1) OVER (PARTITION BY id1, id2) AS s FROM x)"
    ),
    "list_agg": "COPY (SELECT id3, list(v1) AS l FROM x GROUP BY id3) TO '{out}' (FORMAT parquet)",
    "string_agg": (
        "COPY (SELECT id3, string_agg(id1, ',') AS s FROM x GROUP BY id3) TO '{out}' (FORMAT parquet)"
    ),
    "groupby_high": (
        "SELECT count(*), sum(v) FROM (SELECT id1, id2, id3, id4, id5, id6, sum(v3) AS v, count(*) AS n "
        "FROM x GROUP BY ALL)"
    ),
    "join_dim": (
        "SELECT count(*), sum(x.v3 * d.a) "
        "FROM x JOIN (SELECT id6, avg(v3) AS a FROM x GROUP BY id6) d USING (id6)"
    ),
    "join_big": (  # both sides carry every column, so either build side is ~the whole table
        "SELECT count(*), sum(length(a.id1) + length(a.id3) + a.id4 + a.id6 + a.v1 + a.v3 "
        "+ length(b.id2) + length(b.id3) + b.id5 + b.id6 + b.v2 + b.v3) "
        "FROM xr a JOIN xr b ON a.file_row_number = b.file_row_number"
    ),
    "count_distinct": "SELECT id1, count(DISTINCT v3), count(DISTINCT id3) FROM x GROUP BY id1",
    "quantile": "SELECT id4, id5, median(v3), quantile_cont(v3, 0.9), stddev(v3) FROM x GROUP BY id4, id5",
    "scan_filter": "COPY (SELECT * FROM x WHERE v2 > 12 AND id4 <= 50) TO '{out}' (FORMAT parquet)",
}
QUICK_SHAPES = ("sort", "list_agg", "groupby_high", "join_big", "quantile", "scan_filter")


# ---- child ------------------------------------------------------------------------------------


def _proc_status(pid: int | str = "self") -> dict[str, int]:
    """VmRSS/VmHWM in bytes from /proc/<pid>/status (empty once the process is gone)."""
    values: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    key, kib, _ = line.split()
                    values[key.rstrip(":")] = int(kib) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return values


def _child(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one query under the given limit; report what DuckDB's own accounting saw."""
    import duckdb

    con = duckdb.connect(config={
        "memory_limit": spec["memory_limit"], "threads": spec["threads"],
        "temp_directory": spec["temp_directory"], "max_temp_directory_size": spec["max_temp_directory_size"],
        "preserve_insertion_order": False,
    })  # fmt: skip
    con.execute(f"CREATE VIEW x AS SELECT * FROM read_parquet('{spec['data']}')")
    con.execute(f"CREATE VIEW xr AS SELECT * FROM read_parquet('{spec['data']}', file_row_number = true)")
    report: dict[str, Any] = {"status": "ok", "error": "", "buffer_peak": 0, "duckdb_temp_peak": 0,
                              "sampler_errors": 0}  # fmt: skip
    if spec["sql"] is None:  # baseline: connected and idle
        con.execute("SELECT 1").fetchall()
        report.update(wall=0.0, **_proc_status())
        return report

    with BufferWatcher(con) as watcher:
        started = time.perf_counter()
        try:
            con.execute(spec["sql"]).fetchall()
        except duckdb.OutOfMemoryException as exc:
            spill = "max_temp_directory_size" in str(exc)  # the sidecar's SPILL_LIMIT test, too
            report.update(status="spill_limit" if spill else "oom", error=str(exc).splitlines()[0])
        except duckdb.Error as exc:
            report.update(status="error", error=f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
        report["wall"] = time.perf_counter() - started
    report.update(buffer_peak=watcher.buffer_peak, duckdb_temp_peak=watcher.temp_peak, sampler_errors=watcher.errors)
    report.update(_proc_status())
    return report


# ---- parent -----------------------------------------------------------------------------------


def _disk_bytes(directory: Path) -> int:
    """Allocated bytes under `directory` (st_blocks, so punched holes do not count)."""
    total = 0
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                try:
                    total += entry.stat(follow_symlinks=False).st_blocks * 512
                except FileNotFoundError:
                    continue
    except FileNotFoundError:
        pass
    return total


def run_one(spec: dict[str, Any], limit: int, timeout_s: float) -> dict[str, Any]:
    """One query in a fresh child; the parent samples RSS and spill, and enforces the guard."""
    import psutil

    temp = Path(spec["temp_directory"])
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir(parents=True)
    guard = GUARD_FACTOR * limit + GUARD_SLACK
    proc = subprocess.Popen(
        [sys.executable, "-m", "sidecar.bench.headroom", "--child", json.dumps(spec)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    ps = psutil.Process(proc.pid)
    sampled = hwm = spill = 0
    verdict = ""
    started = time.perf_counter()
    tick = 0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        try:
            rss = ps.memory_info().rss
        except psutil.NoSuchProcess:
            rss = 0
        sampled = max(sampled, rss)
        hwm = max(hwm, _proc_status(proc.pid).get("VmHWM", 0))
        if tick % 5 == 0:
            spill = max(spill, _disk_bytes(temp))
        tick += 1
        if not verdict and rss > guard:
            verdict = "killed"
            proc.kill()
        elif not verdict and time.perf_counter() - started > timeout_s:
            verdict = "timeout"
            proc.kill()
        time.sleep(SAMPLE_S)
    proc.returncode = os.waitstatus_to_exitcode(status)
    out, err = proc.communicate()
    wall_outside = time.perf_counter() - started
    report: dict[str, Any] = {"status": verdict or "crashed", "error": "", "wall": wall_outside,
                              "buffer_peak": 0, "duckdb_temp_peak": 0}  # fmt: skip
    lines = out.decode().strip().splitlines()
    if not verdict and proc.returncode == 0 and lines:
        report.update(json.loads(lines[-1]))
    elif not verdict:
        report["error"] = f"exit {proc.returncode}: {err.decode().strip()[-300:]}"
    report["peak_rss"] = max(sampled, hwm, report.get("VmHWM", 0), usage.ru_maxrss * 1024)
    report["sampled_rss"] = sampled
    report["ru_maxrss"] = usage.ru_maxrss * 1024
    report["spill"] = max(spill, report["duckdb_temp_peak"])
    shutil.rmtree(temp, ignore_errors=True)
    return report


def generate(root: Path, rows: int) -> Path:
    """Write the table once; the rename makes a half-written file impossible to mistake for done."""
    import duckdb

    target = root / f"h2o_groupby_{rows}.parquet"
    if target.exists():
        return target
    partial = target.with_name(target.name + ".partial")
    config = {
        "memory_limit": "4GB",
        "threads": os.cpu_count() or 2,
        "preserve_insertion_order": False,
        "temp_directory": str(root / "gen-spill"),
    }
    with duckdb.connect(config=config) as con:
        con.execute(groupby_sql(rows, partial))
    os.replace(partial, target)
    return target


def _progress(r: dict[str, Any]) -> None:
    sys.stderr.write(
        f"{r['limit_text']:>7} {r['shape']:<15} {r['status']:<11} {r['wall']:6.1f}s "
        f"peak {mib(r['peak_rss']):>7} MiB ratio {r['peak_rss'] / r['limit']:5.2f} "
        f"buffer {mib(r['buffer_peak']):>6} spill {mib(r['spill'])} {r['error'][:120]}\n"
    )
    sys.stderr.flush()


def run_matrix(args: argparse.Namespace, shapes: list[str], limit_texts: list[str]) -> None:
    import duckdb
    import psutil

    root = Path(args.dir)
    root.mkdir(parents=True, exist_ok=True)
    data = generate(root, args.rows)
    meta = {"duckdb": duckdb.__version__, "python": platform.python_version(), "cpus": os.cpu_count(),
            "ram_gib": psutil.virtual_memory().total / GiB, "threads": args.threads, "rows": args.rows,
            "data_mib": data.stat().st_size / MiB}  # fmt: skip

    def spec(limit: int, sql: str | None) -> dict[str, Any]:
        return {"memory_limit": duckdb_size(limit), "threads": args.threads,
                "temp_directory": str(root / "spill"), "max_temp_directory_size": "40GiB",
                "data": str(data), "sql": sql}  # fmt: skip

    base = run_one(spec(256 * MiB, None), 256 * MiB, 60)
    sys.stderr.write(f"baseline: VmHWM {mib(base['VmHWM'])} MiB\n")
    results: list[dict[str, Any]] = []
    plan = [(parse_size(t), t, 0, "") for t in limit_texts]
    reserve = parse_size(args.reserve)
    meta.update(reserve_text=args.reserve, k=args.k)
    for text in [t.strip() for t in args.budgets.split(",") if t.strip()]:
        budget = parse_size(text)
        limit = limit_for_budget(budget, reserve, args.k)
        plan.append((limit, f"{limit / MiB:.0f}MiB", budget, text))
    for limit, limit_text, budget, budget_text in plan:
        for shape in shapes:
            out = root / "out.parquet"
            runs = []
            for _ in range(args.repeat):  # keep the run with the highest peak
                runs.append(run_one(spec(limit, SHAPES[shape].format(out=out)), limit, args.timeout))
                out.unlink(missing_ok=True)
            r = max(runs, key=lambda run: run["peak_rss"])
            r.update(limit=limit, limit_text=limit_text, shape=shape, runs=len(runs), budget=budget,
                     budget_text=budget_text)  # fmt: skip
            results.append(r)
            _progress(r)
    table = render(results, base, meta)
    sys.stdout.write(table)
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "base": base, "results": results}, indent=1))
    if args.out:
        write_report(Path(args.out), table, "python -m sidecar.bench.headroom " + " ".join(args.argv))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limits", default="256MiB,1GiB,4GiB", help="DuckDB memory_limits, comma-separated")
    parser.add_argument("--rows", type=int, default=50_000_000, help="big enough that 4GiB spills")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dir", default="/tmp/bmad-headroom", help="where the data and the spill go")
    parser.add_argument("--shapes", default=",".join(SHAPES), help="subset of " + ",".join(SHAPES))
    parser.add_argument("--quick", action="store_true", help="10M rows, limits 256MiB,512MiB, six shapes")
    parser.add_argument("--repeat", type=int, default=1, help="runs per (limit, shape); max peak kept")
    parser.add_argument("--budgets", default="", help="also check these budgets, DuckDB limit from the model")
    parser.add_argument("--reserve", default="256MiB", help="model: fixed bytes outside DuckDB's limit")
    parser.add_argument("--k", type=float, default=1.10, help="model: RSS per byte of DuckDB limit")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds before a run is killed")
    parser.add_argument("--out", default="", help="also write the table into this markdown file")
    parser.add_argument("--json", default="", help="also write the raw results to this file")
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        sys.stdout.write(json.dumps(_child(json.loads(args.child))) + "\n")
        return
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.quick:
        args.rows, args.limits, args.shapes = 10_000_000, "256MiB,512MiB", ",".join(QUICK_SHAPES)
    shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    unknown = [s for s in shapes if s not in SHAPES]
    if unknown:
        parser.error(f"unknown shape(s) {unknown}; known: {', '.join(SHAPES)}")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    try:
        limits = [t.strip() for t in args.limits.split(",") if t.strip()]
        for text in [*limits, *args.budgets.split(","), args.reserve]:
            if text.strip():
                parse_size(text)
    except ValueError as exc:
        parser.error(str(exc))
    run_matrix(args, shapes, limits)


if __name__ == "__main__":
    main()
