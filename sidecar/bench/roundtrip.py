"""Benchmark: what the sidecar costs on top of DuckDB.

    python -m sidecar.bench.roundtrip [--calls 1000] [--rows 60000000] [--repeats 5] [--latency-only] [--json]

Prints
- the round-trip latency (p50, p99 of N calls, measured from the client's write to the answer's
  arrival, through real pipes) of the echo floor (`sidecar.bench.echo`: the same stdio framing
  answering at once), `config.get` (the dispatch floor: served inline), `system.resources` and
  `query.run` for `SELECT 42` (the hop to a worker process and back), each with its ratio to the
  echo floor. The methods are measured in interleaved rounds, so all of them see the same machine;
- the overhead ratio of `query.run` to the same query in plain DuckDB Python, for a
  query of about a second, at the same DuckDB memory_limit and threads (median of the
  repeats, interleaved so both see the same machine).
`--json` prints one JSON object instead (bmad_bridge/scripts/latency-bench.js reads it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from typing import Any

import duckdb

from sidecar.client import SidecarProcess

QUERY = "SELECT id % 1000 AS g, sum(v) AS s, count(*) AS n FROM (SELECT range AS id, hash(range) % 977 AS v FROM range({rows})) GROUP BY g ORDER BY g"

CALLS: dict[str, tuple[str, dict[str, Any]]] = {
    "echo": ("echo", {}),
    "config.get": ("config.get", {}),
    "system.resources": ("system.resources", {}),
    "query.run SELECT 42": ("query.run", {"sql": "SELECT 42"}),
}
"""What `latency` measures: a name, and the method and params sent (the echo floor answers any)."""

ROUNDS = 10
"""Each method's calls are spread over this many rounds, taken in turn."""


def percentile(values: list[float], q: float) -> float:
    """The `q` quantile by nearest rank.

    >>> percentile([4.0, 1.0, 3.0, 2.0], 0.5)
    3.0
    >>> percentile([1.0, 2.0], 0.99)
    2.0
    """
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def summary(samples: list[float]) -> dict[str, float]:
    """p50, p99 and max of samples in ms.

    >>> summary([1.0, 2.0, 3.0])
    {'p50': 2.0, 'p99': 3.0, 'max': 3.0, 'calls': 3}
    """
    return {
        "p50": percentile(samples, 0.5),
        "p99": percentile(samples, 0.99),
        "max": max(samples),
        "calls": len(samples),
    }


def latency(echo: SidecarProcess, sc: SidecarProcess, calls: int) -> dict[str, list[float]]:
    """Round trips in ms per entry of CALLS, `calls` each, in interleaved rounds after a warm-up."""
    targets = {
        name: (echo if name == "echo" else sc, method, params) for name, (method, params) in CALLS.items()
    }
    for process, method, params in targets.values():
        for _ in range(min(50, calls)):  # warm the pool, the cursor pool and the caches
            process.request(method, params)
    samples: dict[str, list[float]] = {name: [] for name in targets}
    per_round = max(1, calls // ROUNDS)
    for _ in range(ROUNDS):
        for name, (process, method, params) in targets.items():
            for _ in range(per_round):
                started = time.perf_counter()
                process.request(method, params)
                samples[name].append((time.perf_counter() - started) * 1000)
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
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=60_000_000, help="rows for the ~1 s query")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--latency-only", action="store_true", help="skip the ~1 s query's overhead ratio")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bmad-bench-") as tmp:
        env = dict(os.environ, BMAD_DATA_STATE_DIR=os.path.join(tmp, "state"), BMAD_DATA_LOG_LEVEL="warning")
        echo_process = SidecarProcess(env=env, cwd=tmp, module="sidecar.bench.echo")
        with echo_process as echo, SidecarProcess(env=env, cwd=tmp) as sc:
            sc.request("initialize", {"client": {"name": "roundtrip-bench"}})
            samples = latency(echo, sc, args.calls)
            measured = None if args.latency_only else overhead(sc, args.rows, args.repeats)
    figures = {name: summary(values) for name, values in samples.items()}
    load = os.getloadavg()
    if args.json:
        print(json.dumps({"latency_ms": figures, "load": load, "cpus": os.cpu_count()}))
        return 0
    print(
        f"machine: {os.cpu_count()} CPUs, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, "
        f"DuckDB {duckdb.__version__}, Python {sys.version.split()[0]}"
    )
    print(f"round trips over stdio, {args.calls} calls each in {ROUNDS} interleaved rounds (ms):")
    floor = figures["echo"]
    for name, f in figures.items():
        print(
            f"  {name:22s} p50 {f['p50']:7.3f}  p99 {f['p99']:7.3f}  max {f['max']:7.3f}   "
            f"x echo: p50 {f['p50'] / floor['p50']:5.2f}  p99 {f['p99'] / floor['p99']:5.2f}"
        )
    if measured is not None:
        plain, through, used = measured
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
