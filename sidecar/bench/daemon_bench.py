"""Cold (a private sidecar per command) against warm (the shared daemon): wall time of real commands.

    python -m sidecar.bench.daemon_bench [--runs 7] [--dir /tmp/bmad-daemon-bench] [--rows 5600000]

Each figure is the wall time of a whole `bmad-data` process, Node's own start included, as an
agent sees it: `query "SELECT 42"` and `analyze` of a ~150 MB Parquet file (generated once with
DuckDB SQL, a done-marker guards it), `--no-daemon` (cold) and with a daemon running (warm).
`node -e 0` is the floor, measured in the same run: under load every figure moves, so the table
gives each median also as a multiple of the floor's, and the load average beside it, and the CPU
time of the command's own processes (Node, and a private sidecar with its workers), which load
hardly moves: what starting a sidecar costs, and what the daemon saves. The daemon
runs in a runtime dir of its own and is stopped at the end. A benchmark, not a test: it prints
figures and asserts nothing (docs/performance/daemon.md holds a run's table).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import duckdb

from sidecar.client import REPO_ROOT

CLI = REPO_ROOT / "bmad_bridge" / "bin" / "bmad-data.js"

DATA_SQL = """
COPY (
    SELECT
        range AS id,
        (hash(range) % 1000000)::INTEGER AS user_id,
        round(random() * 1000, 2)::DOUBLE AS amount,
        ['alpha', 'beta', 'gamma', 'delta', 'epsilon'][1 + (range % 5)::INTEGER] AS category,
        'user_' || (hash(range * 7) % 5000000)::VARCHAR AS name,
        DATE '2015-01-01' + (range % 3650)::INTEGER AS event_date,
        CASE WHEN range % 10 = 0 THEN NULL ELSE (hash(range * 13) % 100000) / 100000.0 END AS score
    FROM range({rows})
) TO '{path}' (FORMAT parquet)
"""


def make_parquet(directory: Path, rows: int) -> Path:
    path = directory / f"events-{rows}.parquet"
    done = path.with_suffix(".done")
    if not done.exists():
        con = duckdb.connect(config={"memory_limit": "2GB", "threads": 2})
        con.execute(DATA_SQL.format(rows=rows, path=str(path).replace("'", "''")))
        con.close()
        done.touch()
    return path


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the command and the processes it waited for: Node, and a
    private sidecar with its workers; not the daemon's, which is no child of the command)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    took = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stdout[-800:]}{done.stderr[-800:]}")
    return took, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/bmad-daemon-bench"))
    parser.add_argument("--rows", type=int, default=5_600_000, help="rows of the Parquet file (5.6M: ~150 MB)")
    args = parser.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    parquet = make_parquet(args.dir, args.rows)
    runtime = args.dir / "run"
    shutil.rmtree(runtime, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BMAD_DATA_")}
    env.update(
        BMAD_DATA_RUNTIME_DIR=str(runtime),
        BMAD_DATA_STATE_DIR=str(args.dir / "state"),
        BMAD_DATA_PYTHON=sys.executable,
        BMAD_DATA_ALLOWED_DIRECTORIES=str(args.dir),
    )
    node = shutil.which("node") or "node"
    commands = {
        "node -e 0 (floor)": [node, "-e", "0"],
        'query "SELECT 42"': [node, str(CLI), "query", "SELECT 42", "--json"],
        f"analyze {parquet.name}": [node, str(CLI), "analyze", str(parquet), "--json"],
    }
    print(f"Parquet: {parquet} ({parquet.stat().st_size / 1e6:.0f} MB); {args.runs} runs each", flush=True)
    times: dict[tuple[str, str], list[float]] = {}
    cpu: dict[tuple[str, str], list[float]] = {}
    try:
        for label, cmd in commands.items():
            modes = ["-"] if label.startswith("node") else ["cold", "warm"]
            for mode in modes:
                if mode == "warm":
                    timed([node, str(CLI), "daemon", "start", "--json"], env, args.dir)
                    timed(cmd, env, args.dir)  # the daemon's first run of this command warms its caches
                argv_mode = [*cmd[:2], "--no-daemon", *cmd[2:]] if mode == "cold" else cmd
                runs = [timed(argv_mode, env, args.dir) for _ in range(args.runs)]
                times[(label, mode)] = [wall for wall, _ in runs]
                cpu[(label, mode)] = [used for _, used in runs]
                print(f"  {label} {mode}: {[round(t, 3) for t in times[(label, mode)]]}", flush=True)
    finally:
        subprocess.run([node, str(CLI), "daemon", "stop"], env=env, cwd=args.dir, capture_output=True, timeout=60)
    floor = statistics.median(times[("node -e 0 (floor)", "-")])
    load = os.getloadavg()
    print(f"\nload average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ({os.cpu_count()} CPUs)\n")
    print("| command | mode | median wall (ms) | min wall (ms) | median / floor | command's own CPU (ms) |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for (label, mode), runs in times.items():
        median = statistics.median(runs)
        used = statistics.median(cpu[(label, mode)]) * 1000
        print(f"| `{label}` | {mode} | {median * 1000:.0f} | {min(runs) * 1000:.0f} | {median / floor:.2f} | {used:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
