"""Benchmark: what the sidecar costs on top of DuckDB.

    python -m sidecar.bench.roundtrip [--calls 1000] [--rows 60000000] [--repeats 5]

Prints
- the round-trip latency of `query.run` for `SELECT 42` over stdio (p50, p99 of N calls),
  measured from the client's write to the answer's arrival, through real pipes;
- the overhead ratio of `query.run` to the same query in plain DuckDB Python, for a
  query of about a second, at the same DuckDB memory_limit and threads (median of the
  repeats, interleaved so both see the same machine).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import duckdb

from sidecar.client import SidecarProcess

QUERY = "SELECT id % 1000 AS g, sum(v) AS s, count(*) AS n FROM (SELECT range AS id, hash(range) % 977 AS v FROM range({rows})) GROUP BY g ORDER BY g"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def latency(sc: SidecarProcess, calls: int) -> list[float]:
    for _ in range(50):  # warm the pool, the cursor pool and the caches
        sc.request("query.run", {"sql": "SELECT 42"})
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        sc.request("query.run", {"sql": "SELECT 42"})
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def overhead(sc: SidecarProcess, rows: int, repeats: int) -> tuple[list[float], list[float], dict[str, str]]:
    sql = QUERY.format(rows=rows)
    probe = sc.request("query.run", {"sql": sql, "max_rows": 0})
    used = probe["stats"]["settings"]
    con = duckdb.connect(
        config={
            "memory_limit": used["memory_limit"],
            "threads": used["threads"],
            "preserve_insertion_order": used["preserve_insertion_order"],
        }
    )
    plain, sidecar = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        rows_plain = con.execute(sql).fetchall()
        plain.append(time.perf_counter() - started)
        started = time.perf_counter()
        answer = sc.request("query.run", {"sql": sql})
        sidecar.append(time.perf_counter() - started)
        if answer["row_count"] != len(rows_plain):
            raise SystemExit("the sidecar and plain DuckDB disagree; the benchmark is void")
    con.close()
    return plain, sidecar, used


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=60_000_000, help="rows for the ~1 s query")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bmad-bench-") as tmp:
        env = dict(os.environ, BMAD_DATA_STATE_DIR=os.path.join(tmp, "state"), BMAD_DATA_LOG_LEVEL="warning")
        with SidecarProcess(env=env, cwd=tmp) as sc:
            sc.request("initialize", {"client": {"name": "roundtrip-bench"}})
            samples = latency(sc, args.calls)
            plain, through, used = overhead(sc, args.rows, args.repeats)
    print(f"machine: {os.cpu_count()} CPUs, DuckDB {duckdb.__version__}, Python {sys.version.split()[0]}")
    print(f"query.run 'SELECT 42' over stdio, {args.calls} calls:")
    print(
        f"  p50 {percentile(samples, 0.50):.3f} ms   p99 {percentile(samples, 0.99):.3f} ms   "
        f"max {max(samples):.3f} ms   (targets: p50 <= 1 ms, p99 <= 5 ms)"
    )
    p_med, s_med = statistics.median(plain), statistics.median(through)
    print(
        f"~1 s query (GROUP BY over {args.rows:,} generated rows), {args.repeats} interleaved runs, "
        f"memory_limit {used['memory_limit']}, threads {used['threads']}:"
    )
    print(
        f"  plain DuckDB median {p_med:.3f} s   through the sidecar median {s_med:.3f} s   "
        f"ratio {s_med / p_med:.3f}   (target <= 1.05)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
