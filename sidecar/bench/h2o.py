"""H2O db-benchmark style queries: plain DuckDB against the sidecar, at the same 1 GiB budget.

    python -m sidecar.bench.h2o [--rows 100000000] [--dir /tmp/bmad-h2o] [--budget 1GiB] [--threads 2]
                                [--queries q1,q3,...] [--modes plain,budget,machine[,inner]] [--quick]
                                [--out docs/performance/h2o-benchmark.md] [--json results.json]

Each query runs three ways, interleaved so all three see the same machine and page cache:
- `plain`: a fresh child process (sidecar.bench.headroom's child) with DuckDB's memory_limit =
  the budget, sampled every 20 ms and killed past 3 x budget + 1 GiB;
- `budget`: `python -m sidecar`, the request's settings carry `memory_limit` = the budget, which
  makes it a hard ceiling on the worker process's RSS;
- `machine`: a second sidecar with no explicit `memory_limit` but BMAD_DATA_MACHINE_BUDGET=4x the
  budget and 4 job slots: a job starts at a 1/4 share and may grow in place up to the machine budget.
`--modes ...,inner` adds plain DuckDB at the limit the sidecar gives DuckDB inside the budget
(698 MiB for 1 GiB), to tell the lower buffer limit apart from the sidecar's own cost.
The benchmark samples the sidecars' worker processes itself (every 20 ms) to check the ceilings.
Full run (1e8 rows, --repeat 2): ~15 min plus ~1.5 min to write the data once; `--quick` (2e7 rows): ~1-2 min.
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

from sidecar.bench.headroom import GiB, MiB, generate, run_one
from sidecar.bench.report import mib, write_block
from sidecar.bench.suite.data import DIMENSIONS_SQL
from sidecar.bench.suite.sides import TreeSampler
from sidecar.config.settings import duckdb_limit_for
from sidecar.units import duckdb_size, parse_size

MACHINE_FACTOR = 4
TIMEOUT_MS = 900_000
GEN_GUARD = 6 * GiB  # the generator's DuckDB runs at a 4GB limit

# {x}, {small}, {medium}: read_parquet(...) of the cached files; {out}: a Parquet file to write.
# Results are folded to one row or written to {out}, so nothing large crosses into Python.
QUERIES: dict[str, str] = {
    "q1": "SELECT count(*), sum(v1) FROM (SELECT id1, sum(v1) AS v1 FROM {x} GROUP BY id1)",
    "q3": "SELECT count(*), sum(v1), sum(v3) FROM (SELECT id3, sum(v1) AS v1, avg(v3) AS v3 FROM {x} GROUP BY id3)",
    "q5": (
        "SELECT count(*), sum(v1), sum(v2), sum(v3) FROM "
        "(SELECT id6, sum(v1) AS v1, sum(v2) AS v2, sum(v3) AS v3 FROM {x} GROUP BY id6)"
    ),
    "q10": (
        "SELECT count(*), sum(v3), sum(n) FROM (SELECT id1, id2, id3, id4, id5, id6, sum(v3) AS v3, "
        "count(*) AS n FROM {x} GROUP BY id1, id2, id3, id4, id5, id6)"
    ),
    "join_small": "SELECT count(*), sum(x.v1 * s.s1) FROM {x} x JOIN {small} s USING (id1)",
    "join_medium": "SELECT count(*), sum(x.v3 + m.m1), sum(m.id6m) FROM {x} x JOIN {medium} m USING (id3)",
    "sort": "COPY (SELECT * FROM {x} ORDER BY v3) TO '{out}' (FORMAT parquet)",
    "window": "SELECT count(*), sum(rn) FROM (SELECT row_number() OVER (PARTITION BY id3 ORDER BY v3) AS rn FROM {x})",
    "count_distinct": "SELECT count(DISTINCT id3) FROM {x}",
    "distinct": "SELECT count(*), sum(id4) FROM (SELECT DISTINCT id2, id4 FROM {x})",
}
MODES = ("plain", "budget", "machine", "inner")
DEFAULT_MODES = ("plain", "budget", "machine")



# ---- data -------------------------------------------------------------------------------------


def _paths(root: Path, rows: int) -> dict[str, Path]:
    return {"x": root / f"h2o_groupby_{rows}.parquet", "small": root / f"h2o_small_{rows}.parquet",
            "medium": root / f"h2o_medium_{rows}.parquet"}  # fmt: skip


def _generate_child(root: Path, rows: int) -> None:
    """In a child process: the groupby table (headroom's generator), then the two join tables."""
    import duckdb

    paths = _paths(root, rows)
    generate(root, rows)
    if paths["small"].exists() and paths["medium"].exists():
        return
    partial = {k: p.with_name(p.name + ".partial") for k, p in paths.items()}
    config = {"memory_limit": "4GB", "threads": os.cpu_count() or 2, "preserve_insertion_order": False,
              "temp_directory": str(root / "gen-spill")}  # fmt: skip
    with duckdb.connect(config=config) as con:
        con.execute(DIMENSIONS_SQL.format(x=paths["x"], small=partial["small"], medium=partial["medium"]))
    for key in ("small", "medium"):
        os.replace(partial[key], paths[key])


def prepare(root: Path, rows: int) -> dict[str, Path]:
    """Write the data once, in a child the parent samples and kills past GEN_GUARD."""
    import psutil

    paths = _paths(root, rows)
    if all(p.exists() for p in paths.values()):
        return paths
    sys.stderr.write(f"writing {rows:,} rows to {root} (cached for later runs)\n")
    proc = subprocess.Popen([sys.executable, "-m", "sidecar.bench.h2o", "--generate-child", str(root),
                             "--rows", str(rows)], cwd=Path(__file__).resolve().parents[2])  # fmt: skip
    ps = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            if ps.memory_info().rss > GEN_GUARD:
                proc.kill()
                raise SystemExit(f"the data generator went past {GEN_GUARD / GiB:.0f} GiB RSS and was killed")
        except psutil.NoSuchProcess:
            pass
        time.sleep(0.1)
    if proc.returncode != 0:
        raise SystemExit(f"the data generator failed with exit code {proc.returncode}")
    return paths


# ---- the sidecar side -------------------------------------------------------------------------


class WorkerSampler(TreeSampler):
    """A sidecar's tree every 20 ms; kills a worker past `guard` (a bug); `worst` is the worst worker's peak."""

    def __init__(self, sidecar_pid: int, guard: int) -> None:
        super().__init__(sidecar_pid, guard_each=guard)

    @property
    def worst(self) -> int:
        return self.worst_descendant

    @property
    def sidecar_peak(self) -> int:
        return self.peaks.get(self.root.pid, 0)


def start_sidecar(root: Path, mode: str, budget: int) -> Any:
    from sidecar.client import SidecarProcess

    env = dict(os.environ, BMAD_DATA_STATE_DIR=str(root / f"state-{mode}"), BMAD_DATA_ALLOWED_DIRECTORIES=str(root),
               BMAD_DATA_TEMP_DIRECTORY=str(root / f"spill-{mode}"), BMAD_DATA_LOG_LEVEL="warning")  # fmt: skip
    if mode == "machine":
        env.update(BMAD_DATA_MACHINE_BUDGET=duckdb_size(MACHINE_FACTOR * budget),
                   BMAD_DATA_MAX_CONCURRENT_JOBS=str(MACHINE_FACTOR))  # fmt: skip
    sc = SidecarProcess(env=env, cwd=root)
    sc.request("initialize", {"client": {"name": "h2o-bench"}})
    return sc


def sampled_request(sc: Any, params: dict[str, Any], guard: int, timeout_s: float) -> dict[str, Any]:
    """One query.run with the sidecar's workers sampled by this process: its status or error, wall
    time, attempts, peaks (stats' and sampled) and the result's `stats`; never raises for the query."""
    from sidecar.client import RpcError

    report: dict[str, Any] = {"status": "ok", "error": "", "attempts": [], "stats_peak": 0, "stats": {}}
    with WorkerSampler(sc.pid, guard=guard) as sampler:
        started = time.perf_counter()
        try:
            stats = sc.request("query.run", params, timeout=timeout_s)["stats"]
            report.update(attempts=stats.get("attempts", []), stats_peak=stats.get("peak_rss_bytes", 0), stats=stats)
        except RpcError as err:
            report.update(status=err.code or str(err.rpc_code), error=str(err).splitlines()[0][:300],
                          attempts=err.data.get("details", {}).get("attempts", []))  # fmt: skip
        except (EOFError, TimeoutError) as err:
            report.update(status="NO_ANSWER", error=f"{type(err).__name__}: {err}")
        report["wall"] = time.perf_counter() - started
    report["stats_peak"] = max([report["stats_peak"], *(a.get("peak_rss_bytes", 0) for a in report["attempts"])])
    report["sampled_peak"] = sampler.worst
    report["sidecar_rss"] = sampler.sidecar_peak
    report["guard_kills"] = sampler.guard_kills
    report["sidecar_alive"] = sc.proc.poll() is None
    return report


def run_sidecar(sc: Any, mode: str, sql: str, budget: int, threads: int) -> dict[str, Any]:
    """One query.run; wall time on the client's side, the workers sampled by this process."""
    settings: dict[str, Any] = {"threads": threads}
    if mode == "budget":
        settings["memory_limit"] = duckdb_size(budget)
    most = budget if mode == "budget" else MACHINE_FACTOR * budget
    params = {"sql": sql, "timeout_ms": TIMEOUT_MS, "settings": settings}
    report = sampled_request(sc, params, most + 1 * GiB, TIMEOUT_MS / 1000 + 60)
    report["duckdb_settings"] = report.pop("stats").get("settings", {})
    attempts = report["attempts"]
    report["ceiling"] = (
        max([0, *(max(a["ceiling_bytes"], a.get("grown_to_bytes") or 0) for a in attempts)]) or most
    )
    return report


# ---- report -----------------------------------------------------------------------------------


def _attempts(r: dict[str, Any]) -> str:
    parts = []
    for a in r["attempts"]:
        grown = f" grown to {mib(a['grown_to_bytes'])} MiB" if a.get("grown_to_bytes") else ""
        parts.append(f"{a['rung']}: {a['outcome']} @{mib(a['ceiling_bytes'])}/{mib(a['duckdb_memory_limit_bytes'])}"
                     f" t{a['threads']}{grown}")  # fmt: skip
    return "; ".join(parts) or "-"


def _ratio(plain: dict[str, Any], side: dict[str, Any], target: float) -> str:
    if plain["status"] != "ok":
        return "n/a (plain failed)"
    if side["status"] != "ok":
        return "**failed**"
    ratio = side["wall"] / plain["wall"]
    return f"{ratio:.2f}" + (" **over**" if ratio > target else "")


def _within(side: dict[str, Any]) -> str:
    """Own sampling against the ceiling; a worker the watchdog killed may overshoot by one 20 ms step."""
    over = side["sampled_peak"] - side["ceiling"]
    if side["guard_kills"]:
        return "**killed by the benchmark's guard**"
    if over <= 0:
        return f"yes ({side['sampled_peak'] / side['ceiling']:.2f})"
    killed = any(a["outcome"] == "MEMORY_CEILING" for a in side["attempts"])
    return f"over by {mib(over)} MiB" + (" (watchdog killed it)" if killed else " **not killed**")


HEADER = (
    "| query | plain | s | peak RSS | sidecar | s | peak RSS (stats) | peak RSS (sampled) "
    "| attempts | sidecar / plain |"
)
CEILINGS = (
    "**Ceilings** (this process sampled every worker every 20 ms; a sample can lag a growth by up to "
    "20 ms, so a worker the watchdog kills at its ceiling may show a little above it):"
)
CEILING_HEADER = (
    "| query | mode | ceiling MiB (largest granted) | worker peak MiB (sampled) "
    "| within (peak / ceiling) | sidecar alive | sidecar process peak MiB |"
)


def render(rows: list[dict[str, Any]], meta: dict[str, Any], target: float) -> str:
    head = (f"DuckDB {meta['duckdb']}, Python {meta['python']}, {meta['cpus']} CPUs, {meta['ram_gib']:.0f} GiB RAM, "
            f"no swap; rows={meta['rows']:,} ({meta['data_mib']:,.0f} MiB Parquet), threads={meta['threads']}, "
            f"budget {meta['budget_text']}; total {meta['minutes']:.0f} min.")  # fmt: skip
    lines = [head, ""]
    titles = {"budget": f"sidecar, `memory_limit: {meta['budget_text']}` (a hard {meta['budget_text']} worker ceiling)",
              "machine": f"sidecar, no memory_limit, machine budget {meta['machine_text']}, 4 slots "
                         f"(starts at {meta['budget_text']}, may grow)"}  # fmt: skip
    for mode in [m for m in ("budget", "machine") if m in meta["modes"]]:
        title = (f"**Plain DuckDB (memory_limit {meta['budget_text']}) against the {titles[mode]}.** Times in s, "
                 f"RSS in MiB. Time: the fastest of {meta['repeat']} runs; peaks and failures: the worst run. "
                 "Attempts as `rung: outcome @ceiling/DuckDB limit MiB, threads`.")  # fmt: skip
        lines += [title, "", HEADER, "|---|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            p, s = r.get("plain"), r.get(mode)
            if s is None:
                continue
            plain = f"{p['status']} | {p['wall']:.1f} | {mib(p['peak_rss'])}" if p else "- | - | -"
            lines.append(
                f"| {r['query']} | {plain} | {s['status']} | {s['wall']:.1f} | {mib(s['stats_peak'])} "
                f"| {mib(s['sampled_peak'])} | {_attempts(s)} | {_ratio(p, s, target) if p else '-'} |"
            )
        lines.append("")
    if "inner" in meta["modes"]:
        inner = f"{duckdb_limit_for(parse_size(meta['budget_text'])) / MiB:.0f} MiB"
        title = f"**Plain DuckDB at the limit the sidecar gives DuckDB inside the {meta['budget_text']} ceiling ({inner}):**"
        header = f"| query | plain at budget | s | peak RSS | plain at {inner} | s | peak RSS | time ratio |"
        lines += [title, "", header, "|---|---|---|---|---|---|---|---|"]
        for r in rows:
            p, i = r.get("plain"), r["inner"]
            ratio = f"{i['wall'] / p['wall']:.2f}" if p and p["status"] == i["status"] == "ok" else "-"
            plain = f"{p['status']} | {p['wall']:.1f} | {mib(p['peak_rss'])}" if p else "- | - | -"
            lines.append(
                f"| {r['query']} | {plain} | {i['status']} | {i['wall']:.1f} | {mib(i['peak_rss'])} | {ratio} |"
            )
        lines.append("")
    lines += [CEILINGS, "", CEILING_HEADER, "|---|---|---|---|---|---|---|"]
    for r in rows:
        for mode in ("budget", "machine"):
            s = r.get(mode)
            if s is not None:
                lines.append(
                    f"| {r['query']} | {mode} | {mib(s['ceiling'])} | {mib(s['sampled_peak'])} "
                    f"| {_within(s)} | {'yes' if s['sidecar_alive'] else '**no**'} | {mib(s['sidecar_rss'])} |"
                )
    errors = [(r["query"], m, r[m]["error"]) for r in rows for m in MODES if r.get(m) and r[m]["error"]]
    if errors:
        lines += ["", "Errors:", ""] + [f"- {q} ({m}): `{e[:240]}`" for q, m, e in errors]
    return "\n".join(lines) + "\n"


def write_report(path: Path, table: str, command: str) -> None:
    """Replace the generated block of `path`, keeping the prose around it."""
    write_block(path, "h2o", "H2O db-benchmark: plain DuckDB against the sidecar", table, command)


def merge(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest run's time (a neighbour's load only ever adds time), the worst run's peaks and failure."""
    failed = [r for r in runs if r["status"] != "ok"]
    best = dict(failed[0] if failed else min(runs, key=lambda r: r["wall"]))
    for key in ("peak_rss", "stats_peak", "sampled_peak", "sidecar_rss", "ceiling"):
        if key in best:
            best[key] = max(r[key] for r in runs)
    if "attempts" in best:  # the attempts of the run with the highest sampled peak
        best["attempts"] = max(runs, key=lambda r: r["sampled_peak"])["attempts"]
        best["sidecar_alive"] = all(r["sidecar_alive"] for r in runs)
        best["guard_kills"] = [k for r in runs for k in r["guard_kills"]]
    best["walls"] = [round(r["wall"], 2) for r in runs]
    best["runs"] = len(runs)
    return best


def _progress(query: str, mode: str, r: dict[str, Any]) -> None:
    peak = r.get("peak_rss", r.get("sampled_peak", 0))
    extra = (
        f" stats {mib(r['stats_peak'])} attempts [{_attempts(r)}]" if mode not in ("plain", "inner") else ""
    )
    sys.stderr.write(f"{query:<15} {mode:<8} {r['status']:<16} {r['wall']:7.1f}s peak {mib(peak):>6} MiB"
                     f"{extra} {r['error'][:160]}\n")  # fmt: skip
    sys.stderr.flush()


def run(args: argparse.Namespace, queries: list[str], modes: list[str]) -> None:
    import duckdb
    import psutil

    began = time.perf_counter()
    root = Path(args.dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    paths = prepare(root, args.rows)
    budget = parse_size(args.budget)
    fill = {"x": f"read_parquet('{paths['x']}')", "small": f"read_parquet('{paths['small']}')",
            "medium": f"read_parquet('{paths['medium']}')"}  # fmt: skip
    sidecars = {m: start_sidecar(root, m, budget) for m in modes if m in ("budget", "machine")}
    rows: list[dict[str, Any]] = []
    try:
        for query in queries:
            runs: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
            for _ in range(args.repeat):
                for mode in modes:
                    out = root / f"out-{mode}.parquet"
                    sql = QUERIES[query].format(out=out, **fill)
                    if mode in ("plain", "inner"):
                        limit = budget if mode == "plain" else duckdb_limit_for(budget)
                        spec = {"memory_limit": duckdb_size(limit), "threads": args.threads,
                                "temp_directory": str(root / "spill-plain"), "max_temp_directory_size": "40GiB",
                                "data": str(paths["x"]), "sql": sql}  # fmt: skip
                        r = run_one(spec, limit, TIMEOUT_MS / 1000)
                    else:
                        r = run_sidecar(sidecars[mode], mode, sql, budget, args.threads)
                    r["load1"] = os.getloadavg()[0]
                    out.unlink(missing_ok=True)
                    runs[mode].append(r)
                    _progress(query, mode, r)
            rows.append({"query": query, **{m: merge(rs) for m, rs in runs.items()}})
    finally:
        for sc in sidecars.values():
            try:
                sc.close(timeout=60)
            except subprocess.TimeoutExpired:
                pass
        for mode in modes:
            shutil.rmtree(root / f"spill-{mode}", ignore_errors=True)
    meta = {"duckdb": duckdb.__version__, "python": platform.python_version(), "cpus": os.cpu_count(),
            "ram_gib": psutil.virtual_memory().total / GiB, "rows": args.rows, "threads": args.threads,
            "data_mib": paths["x"].stat().st_size / MiB, "budget_text": args.budget, "modes": modes,
            "machine_text": f"{MACHINE_FACTOR * budget / GiB:g}GiB", "repeat": args.repeat, "minutes": (time.perf_counter() - began) / 60}  # fmt: skip
    table = render(rows, meta, args.target)
    sys.stdout.write(table)
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1, default=str))
    if args.out:
        write_report(Path(args.out), table, "python -m sidecar.bench.h2o " + " ".join(args.argv))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000_000)
    parser.add_argument("--dir", default="/tmp/bmad-h2o", help="data, spill, outputs and the sidecars' state")
    parser.add_argument(
        "--budget", default="1GiB", help="plain DuckDB's memory_limit; the sidecar's memory_limit"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--queries", default=",".join(QUERIES), help="subset of " + ",".join(QUERIES))
    parser.add_argument("--modes", default=",".join(DEFAULT_MODES), help="subset of " + ",".join(MODES))
    parser.add_argument(
        "--repeat", type=int, default=2, help="runs per (query, mode): fastest time, worst peak"
    )
    parser.add_argument("--quick", action="store_true", help="20M rows")
    parser.add_argument("--target", type=float, default=1.10, help="sidecar / plain time ratio to meet")
    parser.add_argument("--out", default="", help="also write the tables into this markdown file")
    parser.add_argument("--json", default="", help="also write the raw results to this file")
    parser.add_argument("--generate-child", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.generate_child:
        _generate_child(Path(args.generate_child), args.rows)
        return
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.quick:
        args.rows = 20_000_000
    queries = [q.strip() for q in args.queries.split(",") if q.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [q for q in queries if q not in QUERIES] + [m for m in modes if m not in MODES]
    if unknown:
        parser.error(
            f"unknown query or mode {unknown}; queries: {', '.join(QUERIES)}; modes: {', '.join(MODES)}"
        )
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    try:
        parse_size(args.budget)
    except ValueError as exc:
        parser.error(str(exc))
    run(args, queries, modes)


if __name__ == "__main__":
    main()
