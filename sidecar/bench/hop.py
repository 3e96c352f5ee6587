"""Where the hop's time goes: `SELECT 42` timed layer by layer, in one run, interleaved.

    python -m sidecar.bench.hop [--calls 2000] [--base DIR] [--json]

Each layer adds one part of the path a `query.run` takes, so the difference between two
neighbours is what that part costs on this machine, at this load:

1. `duckdb`: a DuckDB cursor in this process runs the statement and fetches it;
   `duckdb+bind`: the same after binding it first for its types, as the encoder does;
2. `engine`: the worker's engine in this process (`Engine.run_query`: the guard, the encoder's
   bind, the cursor pool, the job watch, the stats);
3. `worker`: the same job sent to a worker process and read back (`WorkerHandle.start/wait`:
   msgpack frames over two pipes);
4. `echo`: the sidecar's framing over stdio with nothing behind it (`sidecar.bench.echo`);
5. `config.get`: a request dispatched inline by a real sidecar;
6. `query.run`: the whole request through a real sidecar (dispatch, the job runner, admission,
   the supervisor, the worker).
`--base DIR` adds `query.run (base)`: the same request to a sidecar run from another checkout
(e.g. `mkdir /tmp/base && git archive <commit> | tar -x -C /tmp/base`), measured in the same rounds.
Figures are printed, never asserted (docs/performance/latency.md quotes them).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb

from sidecar.bench.roundtrip import summary
from sidecar.client import SidecarProcess
from sidecar.engine.database import EngineSettings
from sidecar.engine.executor import Engine
from sidecar.engine.monitor import Cancellation
from sidecar.jobs.types import QuerySpec
from sidecar.workers.handle import WorkerHandle
from sidecar.workers.protocol import Run

__all__ = ["main"]

SQL = "SELECT 42"
ROUNDS = 20


def engine_settings(tmp: Path) -> EngineSettings:
    return EngineSettings(
        memory_limit_bytes=1 << 30,
        threads=os.cpu_count() or 1,
        temp_directory=str(tmp / "spill"),
        max_temp_directory_size_bytes=1 << 30,
        preserve_insertion_order=True,
        allowed_directories=(str(tmp),),
        state_directory=str(tmp),
    )


def layers(tmp: Path, stack: list[Any], base: Path | None = None) -> dict[str, Callable[[], Any]]:
    """One callable per layer, each running `SQL` once through it; `stack` collects what to close."""
    settings = engine_settings(tmp)
    spec = QuerySpec(sql=SQL, database=str(tmp / "engine.duckdb"), max_rows=10_000)
    cursor = duckdb.connect(str(tmp / "plain.duckdb")).cursor()
    engine = Engine()
    stack.append(engine.close)
    worker = WorkerHandle(env=dict(os.environ, BMAD_DATA_LOG_LEVEL="warning"))
    stack.append(worker.stop)
    worker.wait_ready(60)
    worker_spec = QuerySpec(sql=SQL, database=str(tmp / "worker.duckdb"), max_rows=10_000)
    jobs = iter(range(1, 1 << 62))
    env = dict(os.environ, BMAD_DATA_STATE_DIR=str(tmp / "state"), BMAD_DATA_LOG_LEVEL="warning")
    echo = SidecarProcess(env=env, cwd=tmp, module="sidecar.bench.echo")
    stack.append(echo.close)
    sidecar = SidecarProcess(env=env, cwd=tmp)
    stack.append(sidecar.close)
    sidecar.request("initialize", {"client": {"name": "hop-bench"}})
    targets: dict[str, Callable[[], Any]] = {}
    if base is not None:  # `python -m` puts its working directory first on the path: the base's sidecar
        other = SidecarProcess(env=env, cwd=base)
        stack.append(other.close)
        other.request("initialize", {"client": {"name": "hop-bench-base"}})
        targets["query.run (base)"] = lambda: other.request("query.run", {"sql": SQL})

    def through_worker() -> Any:
        job = next(jobs)
        worker.start(Run(job=job, kind="query", settings=settings, query=worker_spec))
        return worker.wait(job, None)

    def bound() -> Any:
        cursor.sql(SQL).types  # noqa: B018 - the bind is what is timed
        return cursor.execute(SQL).fetchmany(10_001)

    return {
        "duckdb": lambda: cursor.execute(SQL).fetchmany(10_001),
        "duckdb+bind": bound,
        "engine": lambda: engine.run_query(spec, settings, Cancellation()),
        "worker": through_worker,
        "echo": lambda: echo.request("echo"),
        "config.get": lambda: sidecar.request("config.get"),
        "query.run": lambda: sidecar.request("query.run", {"sql": SQL}),
        **targets,
    }


def measure(targets: dict[str, Callable[[], Any]], calls: int) -> dict[str, dict[str, float]]:
    for run in targets.values():
        for _ in range(min(100, calls)):  # warm caches, cursor pools, the worker's database
            run()
    samples: dict[str, list[float]] = {name: [] for name in targets}
    for _ in range(ROUNDS):
        for name, run in targets.items():
            for _ in range(max(1, calls // ROUNDS)):
                started = time.perf_counter()
                run()
                samples[name].append((time.perf_counter() - started) * 1000)
    return {name: summary(values) for name, values in samples.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--base", type=Path, help="also time query.run on a sidecar from this checkout")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.base is not None and not (args.base / "sidecar" / "__main__.py").is_file():
        parser.error(f"--base {args.base} holds no sidecar/__main__.py; name a bmad-data checkout")
    stack: list[Any] = []
    with tempfile.TemporaryDirectory(prefix="bmad-hop-") as tmp:
        try:
            figures = measure(layers(Path(tmp), stack, args.base), args.calls)
        finally:
            for close in reversed(stack):
                close()
    load = os.getloadavg()
    if args.json:
        print(json.dumps({"latency_ms": figures, "load": load}))
        return 0
    print(
        f"{SQL!r}, {args.calls} calls per layer in {ROUNDS} interleaved rounds; {os.cpu_count()} CPUs, "
        f"load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; DuckDB {duckdb.__version__} (ms):"
    )
    over = {
        "duckdb+bind": "duckdb",
        "engine": "duckdb",
        "worker": "engine",
        "config.get": "echo",
        "query.run": "worker",
        "query.run (base)": "query.run",
    }
    for name, f in figures.items():
        base = over.get(name)
        step = "" if base is None else f"   {f['p50'] - figures[base]['p50']:+.3f} over {base}"
        print(f"  {name:11s} p50 {f['p50']:7.3f}  p99 {f['p99']:7.3f}{step}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
