"""Benchmark `analyze_dataset` against DuckDB's SUMMARIZE on a ~1 GB Parquet file and a ~200 MB CSV.

    python -m sidecar.bench.analyze_bench [--rows 45000000] [--dir /tmp/bmad-analyze-bench] [--runs 20]

The data is generated with DuckDB SQL once and reused (a done-marker guards each file). Each
analysis runs on a fresh connection with the sidecar-like budget (memory_limit 2GB, 2 threads).
The files sit in the page cache after generation, so these are warm-cache figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Callable

import duckdb

from sidecar.engine.analyze import DEFAULT_SAMPLE_ROWS, analyze_dataset

_SELECT = """
SELECT
    range AS id,
    (hash(range) % 1000000)::INTEGER AS user_id,
    round(random() * 1000, 2)::DOUBLE AS amount,
    (random() * 10000)::DECIMAL(12, 2) AS price,
    ['alpha', 'beta', 'gamma', 'delta', 'epsilon'][1 + (range % 5)::INTEGER] AS category,
    'user_' || (hash(range * 7) % 5000000)::VARCHAR AS name,
    DATE '2015-01-01' + (range % 3650)::INTEGER AS event_date,
    TIMESTAMP '2015-01-01' + to_seconds((range * 3)::BIGINT) AS event_ts,
    (range % 3 = 0) AS flag,
    CASE WHEN range % 10 = 0 THEN NULL ELSE (hash(range * 13) % 100000) / 100000.0 END AS score
FROM range({rows})
"""


def _connect() -> duckdb.DuckDBPyConnection:
    return duckdb.connect(config={"memory_limit": "2GB", "threads": 2})


def _generate(target: Path, rows: int, fmt: str) -> None:
    """Write `target` once; the rename makes a half-written file impossible to mistake for done."""
    if target.exists():
        return
    partial = target.with_name(target.name + ".partial")
    with duckdb.connect(config={"memory_limit": "4GB", "threads": 2}) as con:
        options = "FORMAT parquet" if fmt == "parquet" else "FORMAT csv, HEADER true"
        con.execute(f"COPY ({_SELECT.format(rows=rows)}) TO '{partial}' ({options})")
    os.replace(partial, target)


def _time(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _analyze_once(path: str, sample_rows: int, exact: bool = False) -> None:
    with _connect() as con:
        analyze_dataset(con.cursor(), path, sample_rows=sample_rows, exact=exact)


def _summarize_once(path: str) -> None:
    with _connect() as con:
        con.execute(f"SUMMARIZE SELECT * FROM '{path}'").fetchall()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=45_000_000, help="rows in the Parquet file")
    parser.add_argument("--csv-rows", type=int, default=3_000_000, help="rows in the CSV file (~200 MB)")
    parser.add_argument("--dir", default="/tmp/bmad-analyze-bench", help="where the generated data is cached")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--sample-rows", type=int, default=DEFAULT_SAMPLE_ROWS)
    parser.add_argument("--skip-summarize", action="store_true", help="skip the slow SUMMARIZE baseline")
    args = parser.parse_args(argv)

    root = Path(args.dir)
    root.mkdir(parents=True, exist_ok=True)
    datasets = [
        (root / f"analyze_{args.rows}.parquet", args.rows, "parquet"),
        (root / f"analyze_{args.csv_rows}.csv", args.csv_rows, "csv"),
    ]
    print(f"duckdb {duckdb.__version__}, {os.cpu_count()} CPUs, memory_limit 2GB, threads 2, "
          f"sample_rows {args.sample_rows}, {args.runs} runs each")  # fmt: skip
    print("| dataset | size | rows | analyze p50 | p95 | max | exact=true | SUMMARIZE |")
    print("|---|---|---|---|---|---|---|---|")
    for target, rows, fmt in datasets:
        _generate(target, rows, fmt)
        path = str(target)
        _analyze_once(path, args.sample_rows)  # warm-up: first open of the file
        times = [_time(lambda: _analyze_once(path, args.sample_rows)) for _ in range(args.runs)]
        exact = _time(lambda: _analyze_once(path, args.sample_rows, exact=True))
        summarize = "skipped" if args.skip_summarize else f"{_time(lambda: _summarize_once(path)):.2f} s"
        print(
            f"| {target.name} | {target.stat().st_size / 1e6:.0f} MB | {rows:,} | "
            f"{statistics.median(times):.2f} s | {_percentile(times, 0.95):.2f} s | {max(times):.2f} s | "
            f"{exact:.2f} s | {summarize} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
