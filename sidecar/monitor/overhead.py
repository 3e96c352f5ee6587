"""Benchmark: what the monitor costs a running query (not part of the test suite).

Two real sidecars on the same machine, one with the monitor running (a `monitor.subscribe` at
1 s: sampling, rules, the metrics stream) and one where no monitor.* call was made (the monitor
is not started). The same GROUP BY runs on each in turn, A B A B, so load drift hits both
alike. Two figures per run: wall time, and the CPU seconds the whole sidecar process tree (the
sidecar, where the monitor thread runs, plus its workers, where the query runs) spent on the
query. On a shared, loaded machine wall time swings by 2x from run to run whatever the monitor
does; CPU seconds do not wait in the run queue, but DuckDB's threads still burn more of them
when preempted. The third figure isolates the monitor: its thread runs in the sidecar process
(not in the workers), so the sidecar process's own CPU, on minus off, per second of query, is
what the monitor costs; divided by the query's CPU per second it bounds the overhead. Each
ratio is the median over the pairs. Prints a Markdown table and the load average.

    python -m sidecar.monitor.overhead --rows 100000000 --pairs 5
"""

from __future__ import annotations

import argparse
import os

import psutil
import statistics
import tempfile
import time
from pathlib import Path

from sidecar.client import SidecarProcess

__all__ = ["main", "group_by_sql", "median_ratio"]

REPO = Path(__file__).resolve().parents[2]


def group_by_sql(rows: int) -> str:
    """The measured query: a GROUP BY of `rows` rows into rows/100 groups, folded to one row.

    >>> group_by_sql(1000)
    'SELECT count(*), sum(s) FROM (SELECT i % 10 AS k, sum(i) AS s FROM range(1000) t(i) GROUP BY k)'
    """
    return f"SELECT count(*), sum(s) FROM (SELECT i % {max(rows // 100, 1)} AS k, sum(i) AS s FROM range({rows}) t(i) GROUP BY k)"


def median_ratio(pairs: list[tuple[float, float]]) -> float:
    """The median of on/off over the pairs.

    >>> median_ratio([(10.0, 10.1), (10.0, 9.9), (10.0, 10.5)])
    1.01
    """
    return round(statistics.median(on / off for off, on in pairs), 4)


def _sidecar(root: Path, name: str) -> SidecarProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BMAD_DATA_")}
    env.update(
        BMAD_DATA_CONFIG_DIR=str(REPO / "expansion-pack"),
        BMAD_DATA_STATE_DIR=str(root / name / "state"),
        BMAD_DATA_TEMP_DIRECTORY=str(root / name / "spill"),
        BMAD_DATA_MAX_CONCURRENT_JOBS="1",
    )
    return SidecarProcess(env=env, cwd=root)


def _cpu_seconds(sc: SidecarProcess) -> float:
    """User + system CPU of the sidecar and every process under it (its workers)."""
    root = psutil.Process(sc.proc.pid)
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def _own_cpu_seconds(sc: SidecarProcess) -> float:
    """User + system CPU of the sidecar process alone: its monitor, watchdog and protocol threads."""
    times = psutil.Process(sc.proc.pid).cpu_times()
    return float(times.user + times.system)


def _timed(sc: SidecarProcess, sql: str) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds of the sidecar's process tree, of the sidecar alone) of one query."""
    cpu, own = _cpu_seconds(sc), _own_cpu_seconds(sc)
    started = time.perf_counter()
    sc.request("query.run", {"sql": sql}, timeout=3600)
    return time.perf_counter() - started, _cpu_seconds(sc) - cpu, _own_cpu_seconds(sc) - own


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000_000)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--interval-ms", type=int, default=1000)
    args = parser.parse_args(argv)
    sql = group_by_sql(args.rows)
    with tempfile.TemporaryDirectory(prefix="monitor-overhead-") as tmp:
        off, on = _sidecar(Path(tmp), "off"), _sidecar(Path(tmp), "on")
        try:
            on.request("monitor.subscribe", {"interval_ms": args.interval_ms})
            _timed(off, sql)  # warm both: page cache, workers, DuckDB's first allocation
            _timed(on, sql)
            load_before = os.getloadavg()
            pairs, cpu_pairs, costs = [], [], []
            for i in range(args.pairs):
                a, a_cpu, a_own = _timed(off, sql)
                b, b_cpu, b_own = _timed(on, sql)
                pairs.append((a, b))
                cpu_pairs.append((a_cpu, b_cpu))
                # the monitor's CPU per second of query, against the query's own CPU per second
                costs.append(1 + ((b_own / b) - (a_own / a)) / (a_cpu / a))
                print(f"pair {i + 1}: sidecar process CPU off {a_own * 1000:.0f} ms, on {b_own * 1000:.0f} ms", flush=True)
                print(f"pair {i + 1}: wall off {a:.2f} s, on {b:.2f} s ({b / a:.3f}); "
                      f"CPU off {a_cpu:.2f} s, on {b_cpu:.2f} s ({b_cpu / a_cpu:.3f})", flush=True)
            samples = sum(1 for n in on.notifications if n.get("method") == "monitor/metrics")
        finally:
            off.kill()
            on.kill()
    load_after = os.getloadavg()
    print()
    print(f"rows: {args.rows:,}; monitor interval: {args.interval_ms} ms; {samples} samples streamed")
    print("| pair | wall off (s) | wall on (s) | wall on/off | CPU off (s) | CPU on (s) | CPU on/off |")
    print("|---|---|---|---|---|---|---|")
    for i, ((a, b), (ac, bc)) in enumerate(zip(pairs, cpu_pairs), 1):
        print(f"| {i} | {a:.2f} | {b:.2f} | {b / a:.3f} | {ac:.2f} | {bc:.2f} | {bc / ac:.3f} |")
    print(f"| median | {statistics.median(a for a, _ in pairs):.2f} | {statistics.median(b for _, b in pairs):.2f} "
          f"| {median_ratio(pairs):.3f} | {statistics.median(a for a, _ in cpu_pairs):.2f} "
          f"| {statistics.median(b for _, b in cpu_pairs):.2f} | **{median_ratio(cpu_pairs):.3f}** |")
    print(f"monitor cost (sidecar CPU per query second, on minus off, over the query's CPU per second): "
          f"median **{statistics.median(costs):.4f}x** (pairs: {', '.join(f'{c:.4f}' for c in costs)})")
    print(f"load average (1/5/15 min): before {load_before[0]:.2f}/{load_before[1]:.2f}/{load_before[2]:.2f}, "
          f"after {load_after[0]:.2f}/{load_after[1]:.2f}/{load_after[2]:.2f}; {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
