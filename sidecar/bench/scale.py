"""Scale: H2O-style Parquet of 1, 3 and 10 GB at a 1 GiB budget, executors side by side.

    python -m sidecar.bench.scale [--sizes 1,3,10] [--dir /tmp/bmad-scale] [--budget 1GiB] [--threads 2]
                                  [--executors serial,local,ray] [--plain 1GiB,4GiB] [--queries q1,...]
                                  [--parts 8|auto] [--timeout 600] [--ray-address host:6379] [--json results.json]

For each size (GB of the groupby table, ~22.6 bytes a row in DuckDB's Parquet) it writes the data
once (sidecar.bench.h2o_partitioned.prepare_all), then runs each question through the sidecar at
the budget (`settings.memory_limit`, a hard ceiling) with each executor, and plain DuckDB at each
`--plain` limit, the sidecar's workers sampled every 20 ms:
- `serial`: a sidecar with one job at a time (BMAD_DATA_MAX_CONCURRENT_JOBS=1): parts one after another;
- `local`: the default, parts that only read files run at once on free workers;
- `ray`: `executor: {kind: ray}`: a local Ray head the sidecar starts, or `--ray-address`.
Questions in SPLIT run with `partition: {parts: --parts}` so every executor really runs parts
(`--parts auto`: as the estimate and the ladder decide, as the others always do). It prints one table per size, then per executor the
exponent b of `time = a * size^b` fitted over the sizes (1 is linear), and the parallel model:
from serial time T1 and local time T2 on this machine's C cores, the parallel share
p = (1 - T2/T1) / (1 - 1/C) and the modelled time at N cores T1 * ((1 - p) + p / N).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from sidecar.bench.h2o_side import sampled_request, start_sidecar
from sidecar.bench.h2o_partitioned import QUERIES, SPLIT, TIMEOUT_S, prepare_all
from sidecar.bench.headroom import GiB, run_one
from sidecar.bench.report import mib
from sidecar.units import duckdb_size, parse_size

__all__ = ["ROWS_PER_GB", "fit_exponent", "parallel_share", "main"]

ROWS_PER_GB = 44_000_000
"""Rows of the H2O groupby table per GB of Parquet (2e7 rows wrote 453 MB here)."""
EXECUTORS = ("serial", "local", "ray")


def fit_exponent(points: list[tuple[float, float]]) -> float | None:
    """b of the least-squares fit log(t) = log(a) + b log(size); None for fewer than two sizes.

    >>> round(fit_exponent([(1, 10.0), (3, 30.0), (10, 100.0)]), 3), fit_exponent([(1, 5.0)])
    (1.0, None)
    """
    if len({s for s, _ in points}) < 2:
        return None
    xs, ys = [math.log(s) for s, _ in points], [math.log(t) for _, t in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def parallel_share(serial_s: float, parallel_s: float, cores: int) -> float:
    """Amdahl's parallel share p from one time on one core's worth of parts and one on `cores`.

    >>> round(parallel_share(100.0, 60.0, 2), 2), parallel_share(100.0, 120.0, 2)
    (0.8, 0.0)
    """
    return min(1.0, max(0.0, (1 - parallel_s / serial_s) / (1 - 1 / cores)))


def _start(root: Path, executor: str, budget: int) -> Any:
    if executor == "serial":
        os.environ["BMAD_DATA_MAX_CONCURRENT_JOBS"] = "1"
    try:
        return start_sidecar(root, f"scale-{executor}", budget)
    finally:
        os.environ.pop("BMAD_DATA_MAX_CONCURRENT_JOBS", None)


def _sidecar(sc: Any, executor: str, sql: str, out: Path, budget: int, args: argparse.Namespace, split: bool) -> dict[str, Any]:
    params: dict[str, Any] = {"sql": sql, "timeout_ms": args.timeout * 1000,
                              "settings": {"memory_limit": duckdb_size(budget), "threads": args.threads},
                              "output": {"path": str(out), "format": "parquet", "overwrite": True}}  # fmt: skip
    if split and args.parts != "auto":
        params["partition"] = {"parts": int(args.parts)}
    if executor == "ray":
        params["executor"] = {"kind": "ray", **({"address": args.ray_address} if args.ray_address else {})}
    report = sampled_request(sc, params, budget + 1 * GiB, args.timeout + 60)
    stats = report.pop("stats")
    report.update(partitions=stats.get("partitions"), at_once=stats.get("parts_at_once"), nodes=len(stats.get("nodes") or {}))
    return report


def _plain(root: Path, data: Path, limit: int, threads: int, sql: str, out: Path, timeout_s: int) -> dict[str, Any]:
    """Plain DuckDB at `limit` in a fresh child (sidecar.bench.headroom.run_one samples and guards it)."""
    spec = {"memory_limit": duckdb_size(limit), "threads": threads, "temp_directory": str(root / "spill-plain"),
            "max_temp_directory_size": "40GiB", "data": str(data), "sql": f"COPY ({sql}) TO '{out}' (FORMAT parquet)"}  # fmt: skip
    return run_one(spec, limit, timeout_s)


def _cell(r: dict[str, Any] | None) -> str:
    if r is None:
        return "- | - | -"
    peak = r.get("sampled_peak", r.get("peak_rss", 0))
    parts = f" p{r['partitions']}x{r['at_once']}" if r.get("partitions") else ""
    return f"{r['status']}{parts} | {r['wall']:.1f} | {mib(peak)}"


def render(size: float, rows: list[dict[str, Any]], executors: list[str], plains: list[str]) -> str:
    head = ["question"] + [f"{e} status | s | peak worker MiB" for e in executors] + [f"plain {p} status | s | RSS MiB" for p in plains]
    lines = [f"\n### {size:g} GB\n", "| " + " | ".join(head) + " |", "|" + "---|" * (1 + 3 * (len(executors) + len(plains)))]
    for row in rows:
        cells = [_cell(row.get(e)) for e in executors] + [_cell(row.get(f"plain {p}")) for p in plains]
        lines.append(f"| {row['query']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> None:
    executors = [e for e in args.executors.split(",") if e]
    plains = [p for p in args.plain.split(",") if p]
    queries = [q for q in args.queries.split(",") if q]
    budget = parse_size(args.budget)
    totals: dict[str, list[tuple[float, float]]] = {e: [] for e in executors}
    load = os.getloadavg()
    for size in [float(s) for s in args.sizes.split(",")]:
        root = Path(args.dir).resolve() / f"{size:g}gb"
        root.mkdir(parents=True, exist_ok=True)
        paths = prepare_all(root, int(size * ROWS_PER_GB), args.threads)
        x = paths["x"]
        fill = {"x": f"read_parquet('{x}')", "xr": f"read_parquet('{x}', file_row_number = true)",
                **{k: f"read_parquet('{paths[k]}')" for k in ("small", "medium", "medium_int")}}  # fmt: skip
        rows: list[dict[str, Any]] = []
        sidecars = {e: _start(root, e, budget) for e in executors}
        try:
            for query in queries:
                sql, out = QUERIES[query].format(**fill), root / "out-scale.parquet"
                row: dict[str, Any] = {"query": query}
                for executor in executors:
                    row[executor] = _sidecar(sidecars[executor], executor, sql, out, budget, args, query in SPLIT)
                    sys.stderr.write(f"{size:g} GB {query} {executor}: {_cell(row[executor])}\n")
                    if not row[executor]["sidecar_alive"]:
                        sidecars[executor] = _start(root, executor, budget)
                for limit in plains:
                    row[f"plain {limit}"] = _plain(root, x, parse_size(limit), args.threads, sql, out, args.timeout)
                    sys.stderr.write(f"{size:g} GB {query} plain {limit}: {_cell(row[f'plain {limit}'])}\n")
                out.unlink(missing_ok=True)
                rows.append(row)
        finally:
            for sc in sidecars.values():
                with contextlib.suppress(subprocess.TimeoutExpired):
                    sc.close(timeout=120)
        for executor in executors:
            if all(r[executor]["status"] == "ok" for r in rows):
                totals[executor].append((size, sum(r[executor]["wall"] for r in rows)))
        sys.stdout.write(render(size, rows, executors, plains))
        if args.json:
            Path(args.json).with_suffix(f".{size:g}gb.json").write_text(json.dumps(rows, indent=1, default=str))
    sys.stdout.write(f"\nload average at start {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; {os.cpu_count()} CPUs\n\n")
    for executor, points in totals.items():
        b = fit_exponent(points)
        listed = ", ".join(f"{s:g} GB {t:.0f} s" for s, t in points) or "not every question completed"
        sys.stdout.write(f"- {executor}: total {listed}; time ~ size^b, b = {'n/a' if b is None else f'{b:.2f}'}\n")
    if totals.get("serial") and totals.get("local"):
        (size, t1), (_, t2) = totals["serial"][-1], totals["local"][-1]
        p = parallel_share(t1, t2, os.cpu_count() or 2)
        model = ", ".join(f"{n} cores {t1 * ((1 - p) + p / n):.0f} s" for n in (8, 16, 64))
        sys.stdout.write(f"- parallel model at {size:g} GB: p = {p:.2f}; {model} (a model, not measured)\n")


def _parts(value: str) -> str:
    """`--parts`: "auto" or a number of parts from 2 to 256, checked before any data is written."""
    if value != "auto" and not (value.isdigit() and 2 <= int(value) <= 256):
        raise argparse.ArgumentTypeError(f'{value!r}: give "auto" or a number of parts from 2 to 256')
    return value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="1,3,10", help="GB of Parquet, comma-separated")
    parser.add_argument("--dir", default="/tmp/bmad-scale")
    parser.add_argument("--budget", default="1GiB")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--parts", default="8", type=_parts, help='parts for the SPLIT questions, or "auto": the estimate decides')
    parser.add_argument("--timeout", type=int, default=TIMEOUT_S, help="seconds per question and side")
    parser.add_argument("--executors", default=",".join(EXECUTORS))
    parser.add_argument("--plain", default="1GiB,4GiB", help="plain DuckDB memory limits")
    parser.add_argument("--queries", default=",".join(QUERIES))
    parser.add_argument("--ray-address", default="")
    parser.add_argument("--json", default="")
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
