"""All ten H2O db-benchmark group-by questions, a global median/quantile and the join questions: plain
DuckDB at the budget and at 4x the budget, against the sidecar at the budget, unsplit and partitioned.

    python -m sidecar.bench.h2o_partitioned [--rows 100000000] [--dir /tmp/bmad-h2o] [--budget 1GiB]
                                            [--threads 2] [--parts 4] [--queries q1,q10,...] [--quick]
                                            [--json results.json]

Issue 5's benchmark. Data, guarded plain-DuckDB children, worker sampling and the sidecar client
come from sidecar.bench.h2o and sidecar.bench.headroom. Every question is written with the shape the
partition planner splits as its outermost SELECT (a GROUP BY, a window with PARTITION BY, a join
grouped by a column of `x`, a global SELECT of quantiles), and its whole result goes to a Parquet file: plain DuckDB runs
`COPY (<sql>) TO ...`, the sidecar runs `query.run {sql, output}`. Four columns per question:
- `plain`: DuckDB at memory_limit = budget; `plain4x`: at 4 x budget (both killed past 6 GiB);
- `sidecar`: `settings: {memory_limit: budget, threads}`, no `partition` (the estimate may split it
  up front, `est` in the table; the ladder after a memory failure);
- `split`: the same with `partition: {parts: N}`, for the questions in SPLIT and any whose unsplit
  sidecar run failed.
Full run (1e8 rows): ~15-20 min; `--quick` (2e7 rows): ~3 min.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sidecar.bench import headroom
from sidecar.bench.h2o_data import prepare
from sidecar.bench.h2o_side import sampled_request, start_sidecar
from sidecar.bench.headroom import GiB, MiB, run_one
from sidecar.bench.report import mib
from sidecar.units import duckdb_size, parse_size

PLAIN_GUARD = 6 * GiB  # no plain-DuckDB child may pass this, whatever its limit
TIMEOUT_S = 600
FACTOR = 4
TARGET = 1.3

# {x}: read_parquet of x; {xr}: the same with file_row_number; {small}, {medium}, {medium_int}.
# The big tables are x itself keyed by its row number (1e8 unique keys): `big_int` on the number,
# `big_str` on its text, so the build side of the join is as large as x.
_BIG_INT = "(SELECT file_row_number AS k, v2 AS b2 FROM {xr})"
_BIG_STR = "(SELECT CAST(file_row_number AS VARCHAR) AS ks, v2 AS b2 FROM {xr})"
QUERIES: dict[str, str] = {
    "q1": "SELECT id1, sum(v1) AS v1 FROM {x} GROUP BY id1",
    "q2": "SELECT id1, id2, sum(v1) AS v1 FROM {x} GROUP BY id1, id2",
    "q3": "SELECT id3, sum(v1) AS v1, avg(v3) AS v3 FROM {x} GROUP BY id3",
    "q4": "SELECT id4, avg(v1) AS v1, avg(v2) AS v2, avg(v3) AS v3 FROM {x} GROUP BY id4",
    "q5": "SELECT id6, sum(v1) AS v1, sum(v2) AS v2, sum(v3) AS v3 FROM {x} GROUP BY id6",
    "q6": "SELECT id4, id5, median(v3) AS median_v3, stddev(v3) AS sd_v3 FROM {x} GROUP BY id4, id5",
    "q7": "SELECT id3, max(v1) - min(v2) AS range_v1_v2 FROM {x} GROUP BY id3",
    "q8": (
        "SELECT id6, v3 AS largest2_v3, row_number() OVER (PARTITION BY id6 ORDER BY v3 DESC) AS rn "
        "FROM {x} QUALIFY rn <= 2"
    ),
    "q9": "SELECT id2, id4, pow(corr(v1, v2), 2) AS r2 FROM {x} GROUP BY id2, id4",
    "q10": (
        "SELECT id1, id2, id3, id4, id5, id6, sum(v3) AS v3, count(*) AS count "
        "FROM {x} GROUP BY id1, id2, id3, id4, id5, id6"
    ),
    # the global question: exact median and quantile over all 1e8 rows, no GROUP BY
    "q_quantiles": "SELECT count(DISTINCT id6) AS d, median(v3) AS m, quantile_cont(v3, 0.9) AS q90 FROM {x}",
    # joins, grouped by a column of x so the split filter lands on x's side of the join
    "j_small_str": "SELECT x.id4, count(*) AS n, sum(x.v1 * s.s1) AS s FROM {x} x JOIN {small} s USING (id1) GROUP BY x.id4",
    "j_medium_int": (
        "SELECT x.id4, count(*) AS n, sum(x.v3 + m.m1) AS s FROM {x} x JOIN {medium_int} m USING (id6) GROUP BY x.id4"
    ),
    "j_medium_str": (
        "SELECT x.id4, count(*) AS n, sum(x.v3 + m.m1) AS s FROM {x} x JOIN {medium} m USING (id3) GROUP BY x.id4"
    ),
    "j_big_int": (
        "SELECT x.id4, count(*) AS n, sum(x.v1 + b.b2) AS s FROM {xr} x JOIN " + _BIG_INT +
        " b ON x.file_row_number = b.k GROUP BY x.id4"
    ),
    "j_big_str": (
        "SELECT x.id4, count(*) AS n, sum(x.v1 + b.b2) AS s FROM {xr} x JOIN " + _BIG_STR +
        " b ON CAST(x.file_row_number AS VARCHAR) = b.ks GROUP BY x.id4"
    ),
}  # fmt: skip
# Split explicitly even when the unsplit run succeeds: the shapes issue 5 names.
SPLIT = ("q6", "q10", "q_quantiles", "j_big_int", "j_big_str")

_MEDIUM_INT = (
    "COPY (SELECT id6, min(v3) AS m1 FROM read_parquet('{x}') GROUP BY id6) TO '{target}' (FORMAT parquet)"
)


def _plain(spec: dict[str, Any], limit: int) -> dict[str, Any]:
    """headroom.run_one, its guard (3 x limit + 1 GiB) capped at PLAIN_GUARD."""
    guard = min(headroom.GUARD_FACTOR * limit + headroom.GUARD_SLACK, PLAIN_GUARD)
    saved = headroom.GUARD_FACTOR, headroom.GUARD_SLACK
    headroom.GUARD_FACTOR, headroom.GUARD_SLACK = 0, guard
    try:
        return run_one(spec, limit, TIMEOUT_S)
    finally:
        headroom.GUARD_FACTOR, headroom.GUARD_SLACK = saved


def _spec(root: Path, data: Path, limit: int, threads: int, sql: str) -> dict[str, Any]:
    return {"memory_limit": duckdb_size(limit), "threads": threads, "temp_directory": str(root / "spill-plain"),
            "max_temp_directory_size": "40GiB", "data": str(data), "sql": sql}  # fmt: skip


def prepare_all(root: Path, rows: int, threads: int) -> dict[str, Path]:
    """h2o's tables, plus `medium_int` (id6 -> m1, rows/100 keys) written by a guarded plain child."""
    paths = prepare(root, rows)
    paths["medium_int"] = root / f"h2o_medium_int_{rows}.parquet"
    if not paths["medium_int"].exists():
        partial = paths["medium_int"].with_name(paths["medium_int"].name + ".partial")
        sql = _MEDIUM_INT.format(x=paths["x"], target=partial)
        r = _plain(_spec(root, paths["x"], 4 * GiB, threads, sql), 4 * GiB)
        if r["status"] != "ok":
            raise SystemExit(f"writing medium_int failed: {r['status']} {r['error']}")
        os.replace(partial, paths["medium_int"])
    return paths


def run_sidecar(sc: Any, sql: str, out: Path, budget: int, threads: int, parts: int | None) -> dict[str, Any]:
    """One query.run with `output` (and `partition`); the workers sampled by this process."""
    params: dict[str, Any] = {"sql": sql, "timeout_ms": TIMEOUT_S * 1000,
                              "settings": {"memory_limit": duckdb_size(budget), "threads": threads},
                              "output": {"path": str(out), "format": "parquet", "overwrite": True}}  # fmt: skip
    if parts:
        params["partition"] = {"parts": parts}
    report = sampled_request(sc, params, budget + 1 * GiB, TIMEOUT_S + 60)
    stats = report.pop("stats")
    report.update(partitions=stats.get("partitions"), estimate=stats.get("estimate"))
    return report


# ---- report -----------------------------------------------------------------------------------


def _rungs(r: dict[str, Any]) -> str:
    return " → ".join(f"{a['rung']}:{a['outcome']}" for a in r["attempts"]) or "-"


def _cell_plain(r: dict[str, Any] | None) -> str:
    return f"{r['status']} | {r['wall']:.1f} | {mib(r['peak_rss'])}" if r else "- | - | -"


def _est(r: dict[str, Any]) -> str:
    """`stats.estimate.parts`: the parts chosen before the query ran (0: whole); "-" without an estimate."""
    return str(r["estimate"]["parts"]) if r.get("estimate") else "-"


def _cell_side(r: dict[str, Any] | None) -> str:
    if r is None:
        return "- | - | - | - | -"
    peak = f"{mib(r['sampled_peak'])} / {mib(r['stats_peak'])}"
    return f"{r['status']} | {r['wall']:.1f} | {peak} | {_est(r)} | {r['partitions'] or '-'}"


def _ratio(row: dict[str, Any]) -> str:
    """The fastest successful partitioned run (explicit split or the ladder's) / plain at 4x."""
    p4, side, split = row["plain4x"], row["sidecar"], row.get("split")
    done = [r for r in (side, split) if r is not None and r["partitions"] and r["status"] == "ok"]
    if not done and split is None:
        mine, tag = side, " (unsplit)"
    elif not done:
        return "**failed**"
    else:
        mine, tag = min(done, key=lambda r: r["wall"]), ""
    if mine["status"] != "ok":
        return "**failed**"
    if p4["status"] != "ok":
        return "n/a (plain 4x failed)"
    ratio = math.ceil(100 * mine["wall"] / p4["wall"]) / 100  # rounded up, never in the sidecar's favour
    return f"{ratio:.2f}{tag}" + (" **over**" if not tag and ratio > TARGET else "")


HEADER = (
    "| question | plain {b} | s | RSS | plain {b4} | s | RSS | sidecar | s | RSS sampled / stats | est | parts "
    "| ladder | split N | s | RSS sampled / stats | parts | partitioned / plain 4x |"
)


def render(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    head = (f"DuckDB {meta['duckdb']}, Python {meta['python']}, {meta['cpus']} CPUs, {meta['ram_gib']:.0f} GiB RAM, "
            f"no swap; rows={meta['rows']:,} ({meta['data_mib']:,.0f} MiB Parquet), threads={meta['threads']}, "
            f"budget {meta['budget_text']}; one run each; total {meta['minutes']:.0f} min.")  # fmt: skip
    lines = [head, "", ("Times in s, RSS in MiB. `RSS sampled / stats`: this benchmark's 20 ms samples of the "
             "sidecar's workers / the sidecar's own `stats.peak_rss_bytes`. `est`: `stats.estimate.parts`, "
             "the parts chosen before the query ran (0: whole; -: no estimate). `parts`: `stats.partitions`. "
             "Ratios are rounded up."), "",
             HEADER.format(b=meta["budget_text"], b4=meta["budget4_text"]),
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        split = r.get("split")
        n = str(r["split_parts"]) if split else "-"
        lines.append(
            f"| {r['query']} | {_cell_plain(r['plain'])} | {_cell_plain(r['plain4x'])} | {_cell_side(r['sidecar'])} "
            f"| {_rungs(r['sidecar'])} | {n} | {_split_cell(split) if split else '- | - | -'} "
            f"| {_ratio(r)} |"
        )
    errors = [(r["query"], m, r[m]["error"]) for r in rows for m in ("plain", "plain4x", "sidecar", "split")
              if r.get(m) and r[m]["error"]]  # fmt: skip
    if errors:
        lines += ["", "Errors:", ""] + [f"- {q} ({m}): `{e[:240]}`" for q, m, e in errors]
    return "\n".join(lines) + "\n"


def _split_cell(r: dict[str, Any]) -> str:
    return (
        f"{r['wall']:.1f} | {mib(r['sampled_peak'])} / {mib(r['stats_peak'])} | {r['partitions'] or '-'}"
        + ("" if r["status"] == "ok" else f" **{r['status']}**")
    )


def _progress(query: str, mode: str, r: dict[str, Any]) -> None:
    peak = r.get("peak_rss", r.get("sampled_peak", 0))
    extra = f" est {_est(r)} parts {r['partitions']} [{_rungs(r)}]" if "attempts" in r else ""
    sys.stderr.write(f"{query:<13} {mode:<8} {r['status']:<16} {r['wall']:7.1f}s peak {mib(peak):>6} MiB"
                     f"{extra} {r['error'][:200]}\n")  # fmt: skip
    sys.stderr.flush()


def run(args: argparse.Namespace, queries: list[str]) -> None:
    import duckdb
    import psutil

    began = time.perf_counter()
    root = Path(args.dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    paths = prepare_all(root, args.rows, args.threads)
    budget = parse_size(args.budget)
    x = paths["x"]
    fill = {"x": f"read_parquet('{x}')", "xr": f"read_parquet('{x}', file_row_number = true)",
            **{k: f"read_parquet('{paths[k]}')" for k in ("small", "medium", "medium_int")}}  # fmt: skip
    sc = start_sidecar(root, "budget", budget)
    rows: list[dict[str, Any]] = []
    try:
        for query in queries:
            sql = QUERIES[query].format(**fill)
            out = root / "out-partitioned.parquet"
            row: dict[str, Any] = {"query": query, "sql": QUERIES[query]}
            for mode, limit in (("plain", budget), ("plain4x", FACTOR * budget)):
                copy = f"COPY ({sql}) TO '{out}' (FORMAT parquet)"
                row[mode] = _plain(_spec(root, x, limit, args.threads, copy), limit)
                out.unlink(missing_ok=True)
                _progress(query, mode, row[mode])
            row["sidecar"] = run_sidecar(sc, sql, out, budget, args.threads, None)
            _progress(query, "sidecar", row["sidecar"])
            if not row["sidecar"]["sidecar_alive"]:
                sc = start_sidecar(root, "budget", budget)
            if query in SPLIT or row["sidecar"]["status"] != "ok":
                parts = args.parts if row["sidecar"]["status"] == "ok" else 2 * args.parts
                row["split_parts"] = parts
                row["split"] = run_sidecar(sc, sql, out, budget, args.threads, parts)
                _progress(query, f"split{parts}", row["split"])
                if not row["split"]["sidecar_alive"]:
                    sc = start_sidecar(root, "budget", budget)
            out.unlink(missing_ok=True)
            rows.append(row)
    finally:
        try:
            sc.close(timeout=60)
        except subprocess.TimeoutExpired:
            pass
    meta = {"duckdb": duckdb.__version__, "python": platform.python_version(), "cpus": os.cpu_count(),
            "ram_gib": psutil.virtual_memory().total / GiB, "rows": args.rows, "threads": args.threads,
            "data_mib": x.stat().st_size / MiB, "budget_text": args.budget,
            "budget4_text": f"{FACTOR * budget / GiB:g}GiB", "minutes": (time.perf_counter() - began) / 60}  # fmt: skip
    table = render(rows, meta)
    sys.stdout.write(table)
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1, default=str))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000_000)
    parser.add_argument("--dir", default="/tmp/bmad-h2o", help="data, spill, outputs and the sidecar's state")
    parser.add_argument(
        "--budget", default="1GiB", help="plain DuckDB's memory_limit; the sidecar's memory_limit"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--parts", type=int, default=4, help="explicit split (twice as many after a failure)")
    parser.add_argument("--queries", default=",".join(QUERIES), help="subset of " + ",".join(QUERIES))
    parser.add_argument("--quick", action="store_true", help="20M rows")
    parser.add_argument("--json", default="", help="also write the raw results to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows = 20_000_000
    queries = [q.strip() for q in args.queries.split(",") if q.strip()]
    unknown = [q for q in queries if q not in QUERIES]
    if unknown:
        parser.error(f"unknown question {unknown}; questions: {', '.join(QUERIES)}")
    try:
        parse_size(args.budget)
    except ValueError as exc:
        parser.error(str(exc))
    run(args, queries)


if __name__ == "__main__":
    main()
